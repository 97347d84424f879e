"""The security report: failed logins, lockouts, brute-force suspects, locked users, and whether
the audit log's hash chain is intact.

Audit events with timestamp in [since, until): until defaults to the end of as_of's UTC day
(as_of: now), since to until - 30 days (docs/windows.md). ``user_id`` keeps the events and
users of some users (events without a user, e.g. failed logins of unknown names, drop out). Users are locked as of as_of when locked_until > as_of. The hash chain is
verified over the whole log, whatever the window (verify_audit_chain): from the latest stored
checkpoint on, or from position 1 with ``full_chain=True``; the summary, parameters and notes say
which positions were read (docs/security.md, "Chain checkpoints").

Two paths give the same report (parameters["path"] names the one taken): "pandas" loads the
window's audit rows and hands them to the metrics; "pushdown" has PostgreSQL aggregate them
(shivx_analytics.aggregates.audit) and loads no audit row. A filtered report takes the
pandas path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import pandas as pd

from shivx_analytics import aggregates, metrics, plots
from shivx_analytics.audit_chain import ChainVerification, verify_audit_chain
from shivx_analytics.frames import load_audit_logs, load_users

from ._common import empty_window_note, filter_values, filtered_path_note, label_missing, report_window
from ._shape import Context, ReportShape, run
from .base import Report

MIN_FAILURES = 10  # brute-force suspect: at least this many failed logins from one IP ...
WINDOW = "10min"   # ... within this rolling window
TOP_IPS = 20
EVENT_TYPES = ["authentication", "authorization"]  # every event the security metrics read
EVENT_COLUMNS = ["log_id", "timestamp", "event_type", "user_id", "ip_address", "resource", "action",
                 "success"]

NOTES = [
    "A failed login is an authentication event with action login and success false; a lockout "
    "is an authentication event with action lockout. Other event types are counted in "
    "event_types only; unknown types are listed, never dropped.",
    f"Brute-force suspect: an IP with at least {MIN_FAILURES} failed logins within {WINDOW}. "
    f"Success after failures: a successful login from an IP that failed in the {WINDOW} before.",
    "Hours and weekdays are UTC. Locked users: locked_until > as_of.",
    "audit_chain_ok: the audit log's hash chain verifies over the whole log, not only the window "
    "(every row links to the one before and hashes to its row_hash, and the log ends at the recorded "
    "tip); audit_chain_rows: rows verified intact. The audit_chain table names the first broken row, "
    "if any.",
    "audit_chain_scope: where the verification started: the full chain, or the latest stored checkpoint "
    "(whose row must still have the hash it records; the rows before it are not read again: "
    "full_chain=True or --full-chain reads them). audit_chain_first_seq..audit_chain_last_seq: the "
    "positions read.",
]
CHAIN_COLUMNS = {"log_id": "string", "chain_seq": "Int64", "reason": "string"}


def security_report(source: Any = None, *, since: object = None, until: object = None,
                    as_of: object = None, user_id: Any = None, verify_chain: bool = True,
                    pushdown: bool | None = None, full_chain: bool = False) -> Report:
    """Security events over [since, until) (default: the 30 days up to the end of as_of's UTC
    day) and users locked as of as_of, optionally of some users only (``user_id``: one id or a
    list): summary, failed logins by day, IP and user, lockouts, brute-force suspects, success
    after failures, hour x weekday grid, locked users, event types, the audit hash chain's
    verification, and figures.

    ``verify_chain=False`` skips the hash-chain check (it reads the whole log, about 12 s per
    million rows here): audit_chain_ok and audit_chain_rows are then None. The check reads the
    rows after the latest stored checkpoint (verify_audit_chain); ``full_chain=True`` reads the
    whole chain.
    ``pushdown``: True aggregates in PostgreSQL (PushdownUnavailable elsewhere), False loads the
    audit rows; None follows Settings.pushdown (auto: PostgreSQL, when the planner expects at
    least Settings.pushdown_min_rows events in the window). A filtered report is computed from
    the loaded events; the hash chain is verified over the whole log either way."""
    window = report_window(since, until, as_of)
    filters = filter_values(user_id=user_id)
    shape: ReportShape[_Shared, SecurityInputs] = ReportShape(
        load=partial(_load, user_id=user_id), compute=_compute, assemble=partial(_assemble, full_chain=full_chain),
        window_rows=aggregates.security_rows, shared=partial(_shared, user_id=user_id, verify_chain=verify_chain,
                       full_chain=full_chain))
    return run(shape, source, window, filters, pushdown=pushdown)


@dataclass(frozen=True, eq=False)
class _Shared:
    """What both paths read: the users and the hash chain's verification (None: not verified)."""

    users: pd.DataFrame
    chain: ChainVerification | None


@dataclass(frozen=True, eq=False)
class SecurityInputs:
    """The security report's inputs: the users and the chain's verification (both paths read
    them) and what the report computes from the window's audit events (from the loaded rows, or
    in PostgreSQL)."""

    users: pd.DataFrame
    chain: ChainVerification | None
    summary: dict[str, Any]
    per_day: pd.Series
    by_ip: pd.DataFrame
    by_user: pd.DataFrame
    lockouts: pd.DataFrame
    suspects: pd.DataFrame
    success_after_failures: pd.DataFrame
    heatmap: pd.DataFrame
    event_types: pd.DataFrame


def _shared(context: Context, *, user_id: Any, verify_chain: bool, full_chain: bool) -> tuple[_Shared, Context]:
    """The users, and the hash chain verified over the whole log whatever the window."""
    users = load_users(context.rows, user_id=user_id)
    chain = verify_audit_chain(context.rows, full_chain=full_chain) if verify_chain else None
    return _Shared(users, chain), context


def _load(context: Context, shared: _Shared, *, user_id: Any) -> SecurityInputs:
    """The pandas path: the window's audit rows, loaded, handed to the metrics."""
    since, until, users = context.since, context.until, shared.users
    # Logins, lockouts and access denials in full; every event, two columns, for the breakdown.
    audit = cast(pd.DataFrame, load_audit_logs(context.rows, since=since, until=until, event_type=EVENT_TYPES, user_id=user_id,
                            columns=EVENT_COLUMNS))
    kinds = cast(pd.DataFrame, load_audit_logs(context.rows, since=since, until=until, user_id=user_id,
                            columns=["event_type", "success"]))
    return SecurityInputs(
        users=users,
        chain=shared.chain,
        summary=metrics.security_summary(audit, users, as_of=context.as_of, min_failures=MIN_FAILURES,
                                         window=WINDOW),
        per_day=metrics.failed_logins_by_day(audit, since, until),
        by_ip=metrics.failed_logins_by_ip(audit),
        by_user=metrics.failed_logins_by_user(audit),
        lockouts=metrics.lockouts(audit),
        suspects=metrics.brute_force_suspects(audit, MIN_FAILURES, WINDOW),
        success_after_failures=metrics.success_after_failures(audit, WINDOW),
        heatmap=metrics.failures_heatmap(audit),
        event_types=metrics.event_type_breakdown(kinds),
    )


def _compute(context: Context, shared: _Shared) -> SecurityInputs:
    """The push-down path: the same figures aggregated in PostgreSQL (no audit row is loaded)."""
    connection, since, until = context.sql, context.since, context.until
    return SecurityInputs(
        users=shared.users,
        chain=shared.chain,
        summary=aggregates.security_summary(connection, since, until, shared.users, as_of=context.as_of,
                                            min_failures=MIN_FAILURES, window=WINDOW),
        per_day=aggregates.failed_logins_by_day(connection, since, until),
        by_ip=aggregates.failed_logins_by_ip(connection, since, until),
        by_user=aggregates.failed_logins_by_user(connection, since, until),
        lockouts=aggregates.lockouts(connection, since, until),
        suspects=aggregates.brute_force_suspects(connection, since, until, MIN_FAILURES, WINDOW),
        success_after_failures=aggregates.success_after_failures(connection, since, until, WINDOW),
        heatmap=aggregates.failures_heatmap(connection, since, until),
        event_types=aggregates.event_type_breakdown(connection, since, until),
    )


def _assemble(measured: SecurityInputs, context: Context, *, full_chain: bool) -> Report:
    chain = measured.chain
    summary = measured.summary | {"audit_chain_ok": None if chain is None else chain.ok,
                                  "audit_chain_rows": None if chain is None else chain.rows,
                                  **chain_scope(chain)}
    per_day, by_ip, heatmap = measured.per_day, measured.by_ip, measured.heatmap
    tables = {
        "failed_logins_by_day": per_day.to_frame(),
        "failed_logins_by_ip": by_ip,
        "failed_logins_by_user": measured.by_user,
        "lockouts": measured.lockouts,
        "brute_force_suspects": measured.suspects,
        "success_after_failures": measured.success_after_failures,
        "failures_by_hour_weekday": heatmap,
        "locked_users": metrics.locked_users(measured.users, context.as_of),
        "event_types": measured.event_types,
        "audit_chain": _chain_table(chain),
    }
    top_ips = by_ip.head(TOP_IPS)
    figures = {
        "failed_logins_per_day": plots.daily_series(
            per_day, title="Failed logins per day", ylabel="Failed logins"),
        "failures_heatmap": plots.heatmap(
            heatmap.T, title="Failed logins by weekday and hour of day (UTC)",
            xlabel="Hour of day (UTC)", ylabel="Weekday", colorbar_label="Failed logins"),
        "failed_logins_by_ip": plots.horizontal_bars(
            pd.Series(top_ips["failures"].astype("float64").to_numpy(),
                      index=label_missing(pd.Index(top_ips["ip_address"]), "(no IP)")),
            title=f"Failed logins by IP address (top {TOP_IPS})", xlabel="Failed logins",
            signed=False, usd=False),
    }
    notes = list(NOTES) + ([chain_note(chain)] if chain is not None else [])
    if context.filters:
        notes.append(filtered_path_note(context.filters))
    if not int(measured.event_types["events"].sum()):
        notes.append(empty_window_note("audit events", context.since, context.until, context.filters))
    return Report(name="security", title="Security report", summary=summary, tables=tables, figures=figures,
                  parameters=context.parameters(brute_force_min_failures=MIN_FAILURES, brute_force_window=WINDOW,
                                                 full_chain=full_chain),
                  notes=notes, usernames=context.usernames)


def chain_scope(chain: ChainVerification | None) -> dict[str, Any]:
    """The summary's audit_chain_* fields saying which positions the verification read."""
    if chain is None:
        return {"audit_chain_scope": None, "audit_chain_checkpoint_id": None, "audit_chain_first_seq": None,
                "audit_chain_last_seq": None}
    return {"audit_chain_scope": chain.scope,
            "audit_chain_checkpoint_id": None if chain.checkpoint is None else chain.checkpoint.id,
            "audit_chain_first_seq": chain.first_seq, "audit_chain_last_seq": chain.last_seq}


def chain_note(chain: ChainVerification) -> str:
    """The verification's range in words: positions from..to, from which checkpoint, or full."""
    verdict = "intact" if chain.ok else f"BROKEN at chain_seq {chain.first_broken and chain.first_broken['chain_seq']}"
    read = (f"positions {chain.first_seq:,}..{chain.last_seq:,} read" if chain.last_seq >= chain.first_seq
            else "no position after it to read")
    if chain.checkpoint is None:
        return f"Audit chain {verdict}: {chain.scope}, {read}."
    return (f"Audit chain {verdict}: verified {chain.scope}, {read}; positions 1..{chain.checkpoint.chain_seq:,} "
            "were verified when the checkpoint was recorded and are not read again (full_chain=True / "
            "--full-chain reads them).")


def _chain_table(chain: ChainVerification | None) -> pd.DataFrame:
    """The first broken row of the audit hash chain (no rows when the chain is intact or unchecked)."""
    broken = [chain.first_broken] if chain is not None and chain.first_broken else []
    return pd.DataFrame({name: pd.Series([row[name] for row in broken], dtype=dtype)
                         for name, dtype in CHAIN_COLUMNS.items()})
