"""The API usage report: requests per key and endpoint, rate-limit utilisation, key hygiene.

Requests are the audit log's `api_request` events with timestamp in [since, until): until
defaults to the end of as_of's UTC day (as_of: now), since to until - 30 days
(docs/windows.md). ``user_id`` keeps the requests and keys of some users. Key hygiene (expired but active, never
used, idle, no expiry) is judged as of as_of on the api_keys table as it is stored.

Two paths give the same report (parameters["path"] names the one taken): "pandas" loads the
window's requests and hands them to the metrics; "pushdown" has PostgreSQL aggregate them
(shivx_analytics.aggregates.audit) and loads no audit row; "views" reads the requests per key
per day from mv_daily_api_key_usage (a stale view is bypassed by push-down and the report says
so). API keys are few: both load them. A filtered report takes the pandas path.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import pandas as pd

from shivx_analytics import aggregates, metrics, plots
from shivx_analytics.frames import load_api_keys, load_audit_logs
from shivx_analytics.metrics._common import day_index

from ._common import empty_window_note, filter_values, filtered_path_note, report_window
from ._shape import Context, ReportShape, run
from .base import Report

NEAR_LIMIT = 0.8  # utilisation at or above which a key is "near its limit"
IDLE_DAYS = 30
TOP_KEYS = 5
TOP_ENDPOINTS = 10
REQUEST_COLUMNS = ["log_id", "timestamp", "event_type", "action", "resource", "api_key_id",
                   "status_code", "reason"]

NOTES = [
    "A request is an audit event of type api_request; error: status_code >= 400; rate limited: "
    "reason rate_limited or status_code 429.",
    "Utilisation = the most requests of one key in one UTC calendar minute / its rate_limit "
    "(requests per minute). Refused requests count too, so a key pushed past its limit shows "
    f"more than 100 %; a key is near its limit at >= {NEAR_LIMIT:.0%}.",
    f"Key hygiene as of as_of: expired but active (expires_at <= as_of), never used (no "
    f"last_used_at), idle (last used more than {IDLE_DAYS} days before as_of), no expiry.",
]


def api_usage_report(source: Any = None, *, since: object = None, until: object = None,
                     as_of: object = None, user_id: Any = None, pushdown: bool | None = None,
                     use_views: bool | None = None) -> Report:
    """API usage over [since, until) (default: the 30 days up to the end of as_of's UTC day) and
    key hygiene as of as_of, optionally of some users only (``user_id``: one id or a list; their
    keys and the requests their audit events name): summary, per key per day, top endpoints, utilisation, keys near their limit,
    hygiene and keys per user tables, and figures.

    ``pushdown``: True aggregates in PostgreSQL (PushdownUnavailable elsewhere), False loads the
    requests; None follows Settings.pushdown (auto: PostgreSQL, when the planner expects at
    least Settings.pushdown_min_rows requests in the window). ``use_views``: True reads the
    requests per key per day from the materialized view mv_daily_api_key_usage (the rest is
    pushed down), None follows Settings.use_views; PostgreSQL only. A filtered report is
    computed from the loaded requests."""
    window = report_window(since, until, as_of)
    filters = filter_values(user_id=user_id)
    shape: ReportShape[pd.DataFrame, ApiUsageInputs] = ReportShape(
        load=partial(_load, user_id=user_id), compute=_compute, assemble=_assemble,
        window_rows=aggregates.api_request_rows, views=("mv_daily_api_key_usage",),
        shared=partial(_keys, user_id=user_id))
    return run(shape, source, window, filters, pushdown=pushdown, use_views=use_views)


@dataclass(frozen=True, eq=False)
class ApiUsageInputs:
    """The API usage report's inputs: the keys (both paths load them) and what the report
    computes from the window's requests (from the loaded requests, or in PostgreSQL)."""

    keys: pd.DataFrame
    summary: dict[str, Any]
    outcomes: metrics.RequestOutcomes
    per_key_day: pd.DataFrame
    utilization: pd.DataFrame
    endpoints: pd.DataFrame
    near_limit: pd.DataFrame


def _keys(context: Context, *, user_id: Any) -> tuple[pd.DataFrame, Context]:
    """The API keys, which both paths read (they are few)."""
    return load_api_keys(context.rows, user_id=user_id), context


def _load(context: Context, keys: pd.DataFrame, *, user_id: Any) -> ApiUsageInputs:
    """The pandas path: the window's requests, loaded, handed to the metrics."""
    since, until, as_of = context.since, context.until, context.as_of
    audit = cast(pd.DataFrame, load_audit_logs(context.rows, since=since, until=until, event_type="api_request", user_id=user_id,
                            columns=REQUEST_COLUMNS))
    return ApiUsageInputs(
        keys=keys,
        summary=metrics.api_usage_summary(keys, audit, as_of=as_of, threshold=NEAR_LIMIT, idle_days=IDLE_DAYS),
        outcomes=metrics.request_outcomes(audit),
        per_key_day=metrics.requests_per_key_per_day(audit, since, until),
        utilization=metrics.key_utilization(keys, audit),
        endpoints=metrics.top_endpoints(audit, TOP_ENDPOINTS),
        near_limit=metrics.keys_near_limit(keys, audit, NEAR_LIMIT),
    )


def _compute(context: Context, keys: pd.DataFrame) -> ApiUsageInputs:
    """The in-database path: the same figures aggregated in PostgreSQL (no audit row is loaded),
    around the requests per key per day summed there or read from mv_daily_api_key_usage."""
    connection, since, until = context.sql, context.since, context.until
    per_key_day = (aggregates.requests_per_key_per_day_from_view if context.path == "views"
                   else aggregates.requests_per_key_per_day)(connection, since, until)
    outcomes = aggregates.request_outcomes(connection, since, until, per_key_day=per_key_day)
    utilization = aggregates.key_utilization(connection, since, until, keys)
    return ApiUsageInputs(
        keys=keys,
        summary=aggregates.api_usage_summary(connection, since, until, keys, as_of=context.as_of,
                                             threshold=NEAR_LIMIT, idle_days=IDLE_DAYS, outcomes=outcomes,
                                             utilization=utilization),
        outcomes=outcomes,
        per_key_day=per_key_day,
        utilization=utilization,
        endpoints=aggregates.top_endpoints(connection, since, until, TOP_ENDPOINTS),
        near_limit=aggregates.keys_near_limit(connection, since, until, keys, NEAR_LIMIT, utilization=utilization),
    )


def _assemble(usage: ApiUsageInputs, context: Context) -> Report:
    since_ts, until_ts, keys = context.since, context.until, usage.keys
    summary = usage.summary | {"error_share": usage.outcomes.error_share,
                               "rate_limited_share": usage.outcomes.rate_limited_share}
    per_key_day, utilization, endpoints = usage.per_key_day, usage.utilization, usage.endpoints
    tables = {
        "requests_per_key_per_day": per_key_day,
        "top_endpoints": endpoints,
        "utilization": utilization,
        "keys_near_limit": usage.near_limit,
        "hygiene": metrics.key_hygiene(keys, context.as_of, IDLE_DAYS),
        "keys_per_user": metrics.keys_per_user(keys),
    }
    figures = {
        "requests_per_day_top_keys": plots.daily_lines(
            _top_keys_per_day(per_key_day, utilization, since_ts, until_ts),
            title=f"API requests per day, top {TOP_KEYS} keys by requests", ylabel="Requests per day"),
        "utilization": _utilization_figure(utilization),
        "top_endpoints": plots.horizontal_bars(
            pd.Series(endpoints["requests"].astype("float64").to_numpy(),
                      index=[f"{m} {r}" for m, r in zip(endpoints["method"], endpoints["resource"])]),
            title=f"Top {TOP_ENDPOINTS} endpoints by requests", xlabel="Requests", signed=False,
            usd=False),
    }
    notes = list(NOTES)
    if context.filters:
        notes.append(filtered_path_note(context.filters))
    if not summary["requests"]:
        notes.append(empty_window_note("API requests", since_ts, until_ts, context.filters))
    notes += context.path_notes()
    return Report(name="api_usage", title="API usage report", summary=summary, tables=tables, figures=figures,
                  parameters=context.parameters(near_limit_threshold=NEAR_LIMIT, idle_days=IDLE_DAYS),
                  notes=notes, usernames=context.usernames)


def _key_label(key_id: object, name: Any) -> str:
    short = str(key_id)[:8]
    return short if name is None or pd.isna(name) else f"{name} ({short})"


def _top_keys_per_day(per_key_day: pd.DataFrame, utilization: pd.DataFrame,
                      since: pd.Timestamp, until: pd.Timestamp) -> pd.DataFrame:
    """Requests per day (every day of the window, zeros kept) of the keys with most requests."""
    days = day_index(since, until)
    keyed = per_key_day[per_key_day["api_key_id"].notna().to_numpy(dtype=bool)]
    totals = keyed.groupby("api_key_id", sort=True)["requests"].sum()
    top = totals.reset_index().sort_values(["requests", "api_key_id"], ascending=[False, True],
                                           kind="mergesort")["api_key_id"].head(TOP_KEYS).tolist()
    names = dict(zip(utilization["key_id"], utilization["name"]))
    frame = pd.DataFrame(index=days)
    for key in top:
        rows = keyed[keyed["api_key_id"] == key]
        frame[_key_label(key, names.get(key))] = (
            pd.Series(rows["requests"].to_numpy(dtype="int64"), index=pd.DatetimeIndex(rows["day"]))
            .reindex(days, fill_value=0))
    return frame


def _utilization_figure(utilization: pd.DataFrame):
    measured = utilization[utilization["utilization"].notna().to_numpy(dtype=bool)]
    percent = pd.Series((measured["utilization"].astype("float64") * 100).to_numpy(),
                        index=[_key_label(k, n) for k, n in zip(measured["key_id"], measured["name"])])
    return plots.horizontal_bars(
        percent, title="Peak rate-limit utilisation per key (highest 20)",
        xlabel="Peak requests per minute / rate limit (%)", signed=False, usd=False,
        reference=100.0, reference_label="rate limit")
