"""API usage metrics from api_keys and the audit log's `api_request` events.

Conventions (DESIGN.md "API keys" and the audit event vocabulary):
- A request is an audit row with event_type == "api_request"; its endpoint is (action = HTTP
  method, resource = path) and its key is api_key_id. Other event types are ignored.
- error: status_code >= 400; rate limited: reason == "rate_limited" or status_code == 429.
- rate_limit is requests per minute. The peak is the most requests of one key in one UTC
  calendar minute (timestamp floored to the minute); utilization = peak / rate_limit.
- Key hygiene is judged as of `as_of`: expired means expires_at <= as_of (is_expired).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ._common import (
    counts,
    equals,
    in_window,
    is_true,
    nullable_floats,
    ratio,
    require_columns,
    timestamp,
    utc_day,
)

_AUDIT_COLUMNS = ("timestamp", "event_type", "action", "resource", "api_key_id", "status_code",
                  "reason")
_KEY_COLUMNS = ("key_id", "user_id", "name", "rate_limit", "last_used_at", "expires_at",
                "is_active")


@dataclass(frozen=True)
class RequestOutcomes:
    """Requests, errors (status_code >= 400) and rate-limited requests, with their shares."""

    requests: int
    errors: int
    error_share: float | None
    rate_limited: int
    rate_limited_share: float | None


def api_requests(audit: pd.DataFrame) -> pd.DataFrame:
    """The audit rows with event_type == "api_request", in timestamp order."""
    require_columns(audit, _AUDIT_COLUMNS, "audit_logs")
    requests = audit[equals(audit["event_type"], "api_request")]
    return requests.sort_values("timestamp", kind="mergesort")


def request_outcomes(audit: pd.DataFrame) -> RequestOutcomes:
    """Counts and shares of error and rate-limited requests among all api_request events."""
    requests = api_requests(audit)
    errors = int(_is_error(requests).sum())
    limited = int(_is_rate_limited(requests).sum())
    return RequestOutcomes(len(requests), errors, ratio(errors, len(requests)),
                           limited, ratio(limited, len(requests)))


def requests_per_key_per_day(audit: pd.DataFrame, since: object = None,
                             until: object = None) -> pd.DataFrame:
    """Requests per (UTC day, api_key_id), timestamps in [since, until): columns day, api_key_id
    (NA for requests without a key), requests, errors, rate_limited. Only (day, key) pairs with
    requests appear; rows sorted by day, then api_key_id."""
    requests = api_requests(audit)
    requests = requests[in_window(requests["timestamp"], since, until)]
    frame = pd.DataFrame({
        "day": utc_day(requests["timestamp"]).astype("datetime64[us, UTC]"),
        "api_key_id": requests["api_key_id"].astype("string"),
        "requests": 1,
        "errors": _is_error(requests).astype(int),
        "rate_limited": _is_rate_limited(requests).astype(int),
    })
    table = frame.groupby(["day", "api_key_id"], dropna=False, sort=True).sum().reset_index()
    for name in ("requests", "errors", "rate_limited"):
        table[name] = table[name].astype("Int64")
    return table


def top_endpoints(audit: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The n endpoints with most requests: method, resource, requests, errors, error_share,
    rate_limited; ranked by requests descending, then method and resource."""
    requests = api_requests(audit)
    frame = pd.DataFrame({
        "method": requests["action"].astype("string"),
        "resource": requests["resource"].astype("string"),
        "requests": 1,
        "errors": _is_error(requests).astype(int),
        "rate_limited": _is_rate_limited(requests).astype(int),
    })
    table = frame.groupby(["method", "resource"], dropna=False, sort=True).sum().reset_index()
    table = table.sort_values(["requests", "method", "resource"], ascending=[False, True, True],
                              kind="mergesort", na_position="last").head(n).reset_index(drop=True)
    table["error_share"] = nullable_floats(
        [ratio(int(e), int(r)) for e, r in zip(table["errors"], table["requests"])],
        table.index, "error_share")
    for name in ("requests", "errors", "rate_limited"):
        table[name] = table[name].astype("Int64")
    return table[["method", "resource", "requests", "errors", "error_share", "rate_limited"]]


def key_utilization(api_keys: pd.DataFrame, audit: pd.DataFrame) -> pd.DataFrame:
    """Per key: requests, peak_requests_per_minute (most requests in one UTC calendar minute),
    peak_minute, utilization = peak / rate_limit (NA without a positive rate_limit).

    One row per key in api_keys plus one per api_key_id seen in requests but unknown to
    api_keys (user_id, name, rate_limit NA); sorted by key_id.
    """
    require_columns(api_keys, _KEY_COLUMNS, "api_keys")
    requests = api_requests(audit)
    requests = requests[requests["api_key_id"].notna().to_numpy(dtype=bool)]
    per_minute = (
        pd.DataFrame({"key_id": requests["api_key_id"].astype(object),
                      "minute": requests["timestamp"].dt.floor("min")})
        .groupby(["key_id", "minute"], sort=True).size().rename("n").reset_index()
    )
    total = per_minute.groupby("key_id")["n"].sum()
    peak_rows = per_minute.sort_values(["key_id", "n", "minute"], ascending=[True, False, True],
                                       kind="mergesort").drop_duplicates("key_id").set_index("key_id")
    return key_utilization_table(api_keys, {
        key: (int(total[key]), int(peak_rows["n"][key]), peak_rows["minute"][key]) for key in total.index})


def key_utilization_table(api_keys: pd.DataFrame, peaks: Mapping[Any, tuple[int, int, object]]) -> pd.DataFrame:
    """The key_utilization table from ``api_keys`` and, per api_key_id seen in requests, its
    (requests, peak requests in one UTC minute, that minute), however they were computed (loaded
    rows or PostgreSQL aggregates): one row per key of either, sorted by key_id."""
    keys = api_keys.assign(key_id=api_keys["key_id"].astype(object)).set_index("key_id")
    ids = sorted(set(keys.index) | set(peaks))
    known = keys.reindex(ids)
    table = pd.DataFrame({
        "key_id": pd.Series(ids, dtype="string"),
        "user_id": known["user_id"].astype("string").array,
        "name": known["name"].astype("string").array,
        "is_active": known["is_active"].astype("boolean").array,
        "rate_limit": known["rate_limit"].astype("Int64").array,
    })
    measured = [peaks.get(key, (0, 0, None)) for key in ids]
    table["requests"] = counts([total for total, _, _ in measured], table.index, "requests")
    table["peak_requests_per_minute"] = counts([peak for _, peak, _ in measured], table.index,
                                               "peak_requests_per_minute")
    table["peak_minute"] = pd.Series([at for _, _, at in measured], index=table.index, dtype="datetime64[us, UTC]")
    table["utilization"] = nullable_floats(
        [_utilization(peak, limit) for (_, peak, _), limit in zip(measured, table["rate_limit"])],
        table.index, "utilization")
    return table


def keys_near_limit(api_keys: pd.DataFrame, audit: pd.DataFrame,
                    threshold: float = 0.8) -> pd.DataFrame:
    """key_utilization() rows with utilization >= threshold, highest utilization first."""
    table = key_utilization(api_keys, audit)
    near = table[(table["utilization"] >= threshold).fillna(False).to_numpy(dtype=bool)]
    return near.sort_values(["utilization", "key_id"], ascending=[False, True],
                            kind="mergesort").reset_index(drop=True)


def key_hygiene(api_keys: pd.DataFrame, as_of: object, idle_days: int = 30) -> pd.DataFrame:
    """Per key, boolean flags as of `as_of`: expired_but_active (expires_at <= as_of and
    is_active), never_used (last_used_at null), idle (last_used_at < as_of - idle_days days),
    no_expiry (expires_at null). Sorted by key_id."""
    require_columns(api_keys, _KEY_COLUMNS, "api_keys")
    as_of = timestamp(as_of, "as_of")
    keys = api_keys.sort_values("key_id", kind="mergesort").reset_index(drop=True)
    table = keys[["key_id", "user_id", "name", "is_active", "expires_at", "last_used_at"]].copy()
    active = is_true(keys["is_active"])
    table["expired_but_active"] = active & (keys["expires_at"] <= as_of).fillna(False).to_numpy(bool)
    table["never_used"] = keys["last_used_at"].isna().to_numpy(dtype=bool)
    idle_since = as_of - pd.Timedelta(days=idle_days)
    table["idle"] = (keys["last_used_at"] < idle_since).fillna(False).to_numpy(dtype=bool)
    table["no_expiry"] = keys["expires_at"].isna().to_numpy(dtype=bool)
    return table


def keys_per_user(api_keys: pd.DataFrame) -> pd.DataFrame:
    """Per user_id: keys, active_keys (is_active); sorted by keys descending, then user_id."""
    require_columns(api_keys, ("key_id", "user_id", "is_active"), "api_keys")
    frame = pd.DataFrame({"user_id": api_keys["user_id"].astype("string"), "keys": 1,
                          "active_keys": is_true(api_keys["is_active"]).astype(int)})
    table = frame.groupby("user_id", dropna=False, sort=True).sum().reset_index()
    table = table.sort_values(["keys", "user_id"], ascending=[False, True],
                              kind="mergesort").reset_index(drop=True)
    for name in ("keys", "active_keys"):
        table[name] = table[name].astype("Int64")
    return table


def api_usage_summary(api_keys: pd.DataFrame, audit: pd.DataFrame, *, as_of: object,
                      threshold: float = 0.8, idle_days: int = 30) -> dict[str, object]:
    """Headline API usage figures: keys, active_keys, expired_active_keys, never_used_keys,
    idle_keys, no_expiry_keys (key_hygiene() as of as_of); requests, error_requests,
    rate_limited_requests (request_outcomes()); peak_utilization (highest key utilization,
    None without a measurable key) and keys_near_limit (utilization >= threshold)."""
    hygiene = key_hygiene(api_keys, as_of, idle_days)
    return api_usage_summary_from(api_keys, hygiene, request_outcomes(audit), key_utilization(api_keys, audit),
                                  threshold)


def api_usage_summary_from(api_keys: pd.DataFrame, hygiene: pd.DataFrame, outcomes: RequestOutcomes,
                           utilization: pd.DataFrame, threshold: float) -> dict[str, object]:
    """The api_usage_summary dict from its parts, however they were computed (loaded rows or
    PostgreSQL aggregates): ``api_keys``, their key_hygiene(), the window's request_outcomes()
    and key_utilization() (its utilization column; keys without one are not measured)."""
    measured = utilization["utilization"].dropna()
    return {
        "keys": len(api_keys),
        "active_keys": int(is_true(api_keys["is_active"]).sum()),
        "expired_active_keys": int(hygiene["expired_but_active"].sum()),
        "never_used_keys": int(hygiene["never_used"].sum()),
        "idle_keys": int(hygiene["idle"].sum()),
        "no_expiry_keys": int(hygiene["no_expiry"].sum()),
        "requests": outcomes.requests,
        "error_requests": outcomes.errors,
        "rate_limited_requests": outcomes.rate_limited,
        "peak_utilization": float(measured.max()) if len(measured) else None,
        "keys_near_limit": int((measured >= threshold).sum()),
    }


def _is_error(requests: pd.DataFrame) -> np.ndarray:
    return (requests["status_code"].astype("Int64") >= 400).fillna(False).to_numpy(dtype=bool)


def _is_rate_limited(requests: pd.DataFrame) -> np.ndarray:
    by_reason = equals(requests["reason"], "rate_limited")
    by_status = (requests["status_code"].astype("Int64") == 429).fillna(False).to_numpy(dtype=bool)
    return by_reason | by_status


def _utilization(peak: int, rate_limit: Any) -> float | None:
    if rate_limit is None or rate_limit is pd.NA or int(rate_limit) <= 0:
        return None
    return ratio(int(peak), int(rate_limit))
