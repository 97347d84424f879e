"""The security report: failed logins, lockouts, brute-force suspects, locked users, and whether
the audit log's hash chain is intact.

Audit events with timestamp in [since, until): until defaults to as_of (now, UTC), since to
until - 30 days. Users are locked as of as_of when locked_until > as_of. The hash chain is
verified over the whole log, whatever the window (verify_audit_chain).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shivx_analytics import metrics, plots
from shivx_analytics.audit_chain import ChainVerification, verify_audit_chain
from shivx_analytics.frames import load_audit_logs, load_users

from ._common import base_parameters, label_missing, opened, resolve_as_of, trailing_window
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
]
CHAIN_COLUMNS = {"log_id": "string", "chain_seq": "Int64", "reason": "string"}


def security_report(source: Any, *, since: object = None, until: object = None,
                    as_of: object = None, verify_chain: bool = True) -> Report:
    """Security events over [since, until) (default: the 30 days before as_of) and users locked as
    of as_of: summary, failed logins by day, IP and user, lockouts, brute-force suspects, success
    after failures, hour x weekday grid, locked users, event types, the audit hash chain's
    verification, and figures.

    ``verify_chain=False`` skips the hash-chain check (it reads the whole log, about 12 s per
    million rows here): audit_chain_ok and audit_chain_rows are then None."""
    as_of_ts = resolve_as_of(as_of)
    since_ts, until_ts = trailing_window(since, until, as_of_ts)
    with opened(source) as connection:
        # Logins, lockouts and access denials in full; every event, two columns, for the breakdown.
        audit = load_audit_logs(connection, since=since_ts, until=until_ts, event_type=EVENT_TYPES,
                                columns=EVENT_COLUMNS)
        kinds = load_audit_logs(connection, since=since_ts, until=until_ts,
                                columns=["event_type", "success"])
        users = load_users(connection)
        chain = verify_audit_chain(connection) if verify_chain else None

    summary = metrics.security_summary(audit, users, as_of=as_of_ts, min_failures=MIN_FAILURES,
                                       window=WINDOW)
    summary |= {"audit_chain_ok": None if chain is None else chain.ok,
                "audit_chain_rows": None if chain is None else chain.rows}
    per_day = metrics.failed_logins_by_day(audit, since_ts, until_ts)
    by_ip = metrics.failed_logins_by_ip(audit)
    heatmap = metrics.failures_heatmap(audit)
    tables = {
        "failed_logins_by_day": per_day.to_frame(),
        "failed_logins_by_ip": by_ip,
        "failed_logins_by_user": metrics.failed_logins_by_user(audit),
        "lockouts": metrics.lockouts(audit),
        "brute_force_suspects": metrics.brute_force_suspects(audit, MIN_FAILURES, WINDOW),
        "success_after_failures": metrics.success_after_failures(audit, WINDOW),
        "failures_by_hour_weekday": heatmap,
        "locked_users": metrics.locked_users(users, as_of_ts),
        "event_types": metrics.event_type_breakdown(kinds),
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
    parameters = {**base_parameters(source, since_ts, until_ts, as_of_ts),
                  "brute_force_min_failures": MIN_FAILURES, "brute_force_window": WINDOW}
    return Report(name="security", title="Security report", summary=summary, tables=tables,
                  figures=figures, parameters=parameters, notes=list(NOTES))


def _chain_table(chain: ChainVerification | None) -> pd.DataFrame:
    """The first broken row of the audit hash chain (no rows when the chain is intact or unchecked)."""
    broken = [chain.first_broken] if chain is not None and chain.first_broken else []
    return pd.DataFrame({name: pd.Series([row[name] for row in broken], dtype=dtype)
                         for name, dtype in CHAIN_COLUMNS.items()})
