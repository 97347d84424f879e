"""Security metrics from the audit log and users.

Conventions (DESIGN.md "SecurityAuditLog" and "User"):
- A failed login is an audit row with event_type "authentication", action "login" and success
  False; a successful login the same with success True; a lockout has action "lockout".
- Unknown event types and actions are counted by event_type_breakdown() and ignored elsewhere.
- A rolling window of length W holds the events with first <= t < first + W.
- A user is locked as of `as_of` when locked_until > as_of.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ._common import (
    days_covering,
    duration,
    equals,
    in_window,
    is_false,
    is_true,
    nullable_floats,
    ratio,
    require_columns,
    timestamp,
    typed_frame,
    utc_day,
)

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_AUDIT_COLUMNS = ("log_id", "timestamp", "event_type", "user_id", "ip_address", "action", "success")
_EVENT_COLUMNS = ["log_id", "timestamp", "user_id", "ip_address"]


def failed_logins(audit: pd.DataFrame) -> pd.DataFrame:
    """Failed login rows (authentication / login / success False), by timestamp then log_id."""
    logins = _logins(audit)
    return logins[is_false(logins["success"])]


def failed_logins_by_day(audit: pd.DataFrame, since: object = None,
                         until: object = None) -> pd.Series:
    """Failed logins per UTC day for every day of [since, until) (the span of the failures when
    a bound is None), zero days included; Int64 indexed by day."""
    failures = failed_logins(audit)
    failures = failures[in_window(failures["timestamp"], since, until)]
    days = days_covering(failures["timestamp"], since, until)
    per_day = utc_day(failures["timestamp"]).astype("datetime64[us, UTC]").value_counts()
    return per_day.reindex(days, fill_value=0).astype("Int64").rename("failed_logins")


def failed_logins_by_ip(audit: pd.DataFrame) -> pd.DataFrame:
    """Per ip_address: failures, users (distinct user_id), first_at, last_at; most failures
    first, then ip_address."""
    return _failures_by(failed_logins(audit), "ip_address", "user_id", "users")


def failed_logins_by_user(audit: pd.DataFrame) -> pd.DataFrame:
    """Per user_id (NA: no known user): failures, ips (distinct ip_address), first_at, last_at;
    most failures first, then user_id."""
    return _failures_by(failed_logins(audit), "user_id", "ip_address", "ips")


def lockouts(audit: pd.DataFrame) -> pd.DataFrame:
    """Lockout events (authentication / lockout): log_id, timestamp, user_id, ip_address."""
    require_columns(audit, _AUDIT_COLUMNS, "audit_logs")
    mask = equals(audit["event_type"], "authentication") & equals(audit["action"], "lockout")
    return _in_time_order(audit[mask])[_EVENT_COLUMNS].reset_index(drop=True)


def brute_force_suspects(audit: pd.DataFrame, min_failures: int = 10,
                         window: object = "10min") -> pd.DataFrame:
    """IPs with >= min_failures failed logins inside one rolling window of length `window`.

    Per IP the densest window (earliest when tied): failures_in_window, window_first_at and
    window_last_at (its first and last failure), plus total_failures and users (distinct
    user_id over all its failures). Most failures in window first, then ip_address.
    """
    length = duration(window, "window")
    rows = []
    for ip, group in _groups(failed_logins(audit), "ip_address"):
        times = group["timestamp"].to_numpy(dtype="datetime64[us]")
        ends = np.searchsorted(times, times + length.to_timedelta64(), side="left")
        in_window_counts = ends - np.arange(times.size)
        best = int(np.argmax(in_window_counts))
        if in_window_counts[best] >= min_failures:
            rows.append((ip, int(in_window_counts[best]), group["timestamp"].iloc[best],
                         group["timestamp"].iloc[ends[best] - 1], len(group),
                         group["user_id"].nunique(dropna=True)))
    table = typed_frame(rows, {
        "ip_address": "string",
        "failures_in_window": "Int64",
        "window_first_at": "datetime64[us, UTC]",
        "window_last_at": "datetime64[us, UTC]",
        "total_failures": "Int64",
        "users": "Int64",
    })
    return table.sort_values(["failures_in_window", "ip_address"], ascending=[False, True],
                             kind="mergesort").reset_index(drop=True)


def success_after_failures(audit: pd.DataFrame, window: object = "10min",
                           min_failures: int = 1) -> pd.DataFrame:
    """Successful logins from an IP with >= min_failures failed logins in the `window` before
    (failure time in [success - window, success)): log_id, timestamp, user_id, ip_address,
    failures_before, first_failure_at, failed_users (distinct user_id among those failures)."""
    length = duration(window, "window")
    logins = _logins(audit)
    rows = []
    for ip, group in _groups(logins, "ip_address"):
        failed = group[is_false(group["success"])]
        fail_times = failed["timestamp"].to_numpy(dtype="datetime64[us]")
        for success in group[is_true(group["success"])].itertuples(index=False):
            at: np.datetime64 = np.datetime64(success.timestamp.tz_convert("UTC").tz_localize(None), "us")
            first = np.searchsorted(fail_times, at - length.to_timedelta64(), side="left")
            last = np.searchsorted(fail_times, at, side="left")
            if last - first >= min_failures:
                before = failed.iloc[first:last]
                rows.append((success.log_id, success.timestamp, success.user_id, ip,
                             last - first, before["timestamp"].iloc[0],
                             before["user_id"].nunique(dropna=True)))
    table = typed_frame(rows, {
        "log_id": "string",
        "timestamp": "datetime64[us, UTC]",
        "user_id": "string",
        "ip_address": "string",
        "failures_before": "Int64",
        "first_failure_at": "datetime64[us, UTC]",
        "failed_users": "Int64",
    })
    return table.sort_values(["timestamp", "log_id"], kind="mergesort").reset_index(drop=True)


def failures_heatmap(audit: pd.DataFrame) -> pd.DataFrame:
    """Failed logins by UTC hour (rows 0-23) and weekday (columns Mon..Sun): the full 24 x 7
    grid of Int64 counts, zeros included."""
    times = failed_logins(audit)["timestamp"].dt.tz_convert("UTC")
    cells = pd.DataFrame({"hour": times.dt.hour, "weekday": times.dt.day_of_week})
    grid = np.zeros((24, 7), dtype="int64")
    np.add.at(grid, (cells["hour"].to_numpy(dtype=int), cells["weekday"].to_numpy(dtype=int)), 1)
    table = pd.DataFrame(grid, index=pd.RangeIndex(24, name="hour"), columns=list(WEEKDAYS))
    table.columns.name = "weekday"
    return table.astype("Int64")


def locked_users(users: pd.DataFrame, as_of: object) -> pd.DataFrame:
    """Users with locked_until > as_of: user_id, username, locked_until, failed_login_attempts;
    by locked_until, then user_id."""
    require_columns(users, ("user_id", "username", "locked_until", "failed_login_attempts"), "users")
    as_of = timestamp(as_of, "as_of")
    locked = users[(users["locked_until"] > as_of).fillna(False).to_numpy(dtype=bool)]
    columns = ["user_id", "username", "locked_until", "failed_login_attempts"]
    return locked.sort_values(["locked_until", "user_id"], kind="mergesort")[columns].reset_index(
        drop=True)


def event_type_breakdown(audit: pd.DataFrame) -> pd.DataFrame:
    """Per event_type (any value, NA included): events, successes, failures (success False),
    failure_share = failures / events; most events first, then event_type."""
    require_columns(audit, ("event_type", "success"), "audit_logs")
    frame = pd.DataFrame({
        "event_type": audit["event_type"].astype("string"),
        "events": 1,
        "successes": is_true(audit["success"]).astype(int),
        "failures": is_false(audit["success"]).astype(int),
    })
    table = frame.groupby("event_type", dropna=False, sort=True).sum().reset_index()
    table = table.sort_values(["events", "event_type"], ascending=[False, True],
                              kind="mergesort", na_position="last").reset_index(drop=True)
    for name in ("events", "successes", "failures"):
        table[name] = table[name].astype("Int64")
    table["failure_share"] = nullable_floats(
        [ratio(int(f), int(e)) for f, e in zip(table["failures"], table["events"])],
        table.index, "failure_share")
    return table


def security_summary(audit: pd.DataFrame, users: pd.DataFrame, *, as_of: object,
                     min_failures: int = 10, window: object = "10min") -> dict[str, object]:
    """Headline security figures: failed_logins, lockouts (events), locked_users (as of as_of),
    suspicious_ips (brute_force_suspects()), success_after_failures (successful logins after
    failures from the same IP within window), access_denied (authorization / access_denied)."""
    require_columns(audit, _AUDIT_COLUMNS, "audit_logs")
    denied = equals(audit["event_type"], "authorization") & equals(audit["action"], "access_denied")
    return {
        "failed_logins": len(failed_logins(audit)),
        "lockouts": len(lockouts(audit)),
        "locked_users": len(locked_users(users, as_of)),
        "suspicious_ips": len(brute_force_suspects(audit, min_failures, window)),
        "success_after_failures": len(success_after_failures(audit, window)),
        "access_denied": int(denied.sum()),
    }


def _logins(audit: pd.DataFrame) -> pd.DataFrame:
    require_columns(audit, _AUDIT_COLUMNS, "audit_logs")
    mask = equals(audit["event_type"], "authentication") & equals(audit["action"], "login")
    return _in_time_order(audit[mask])


def _in_time_order(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["timestamp", "log_id"], kind="mergesort")


def _groups(frame: pd.DataFrame, key: str):
    """(key, rows in time order) per value of key, sorted by key; rows with a null key skipped."""
    return frame.groupby(frame[key].astype("string"), dropna=True, sort=True)


def _failures_by(failures: pd.DataFrame, key: str, distinct: str, distinct_name: str) -> pd.DataFrame:
    grouped = failures.assign(**{key: failures[key].astype("string")}).groupby(
        key, dropna=False, sort=True)
    table = pd.DataFrame({
        "failures": grouped.size(),
        distinct_name: grouped[distinct].nunique(dropna=True),
        "first_at": grouped["timestamp"].min(),
        "last_at": grouped["timestamp"].max(),
    }).reset_index()
    table = table.sort_values(["failures", key], ascending=[False, True], kind="mergesort",
                              na_position="last").reset_index(drop=True)
    table[key] = table[key].astype("string")
    for name in ("failures", distinct_name):
        table[name] = table[name].astype("Int64")
    return table
