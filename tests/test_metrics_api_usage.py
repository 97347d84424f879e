"""API usage metrics worked by hand on small api_keys and audit frames."""

from __future__ import annotations

import pandas as pd
import pytest
from metrics_fixtures import api_keys_frame, api_request, audit_frame, login, ts

from shivx_analytics import metrics as m

AS_OF = ts("2024-03-01")


def keys() -> pd.DataFrame:
    return api_keys_frame([
        # k0: 2 per minute, expired Feb 1 but still active, last used Jan 10 (> 30 days ago)
        {"rate_limit": 2, "expires_at": "2024-02-01T00:00:00", "last_used_at": "2024-01-10T00:00:00"},
        # k1: 10 per minute, never used, no expiry
        {"rate_limit": 10},
        # k2: u2's revoked key, expired, used yesterday
        {"user_id": "u2", "rate_limit": 5, "is_active": False, "expires_at": "2024-02-01T00:00:00",
         "last_used_at": "2024-02-29T00:00:00"},
    ])


def audit() -> pd.DataFrame:
    return audit_frame([
        api_request("2024-01-10T00:00:01", "k0"),
        api_request("2024-01-10T00:00:59", "k0", status_code=429),           # same minute: 2
        api_request("2024-01-10T00:01:00", "k0", path="/api/positions", status_code=500),
        api_request("2024-01-10T12:00:00", "k1", reason="rate_limited", status_code=403),
        api_request("2024-01-11T00:00:00", "k9"),                            # unknown key
        api_request("2024-01-11T00:00:30", None, method="POST"),             # no key
        login("2024-01-10T00:00:00", False),                                 # not a request
        {"event_type": "something_new", "timestamp": "2024-01-10T00:00:00"},  # unknown type
    ])


def test_request_outcomes_count_errors_and_rate_limits():
    outcomes = m.request_outcomes(audit())
    # 6 requests; errors 429, 500, 403; rate limited: the 429 and reason=rate_limited
    assert (outcomes.requests, outcomes.errors, outcomes.rate_limited) == (6, 3, 2)
    assert outcomes.error_share == pytest.approx(0.5)
    assert outcomes.rate_limited_share == pytest.approx(2 / 6)


def test_requests_per_key_per_day():
    table = m.requests_per_key_per_day(audit())
    assert table["day"].to_list() == [ts("2024-01-10")] * 2 + [ts("2024-01-11")] * 2
    assert table["api_key_id"].iloc[:3].to_list() == ["k0", "k1", "k9"]
    assert pd.isna(table["api_key_id"].iloc[3])
    assert table["requests"].to_list() == [3, 1, 1, 1]
    assert table["errors"].to_list() == [2, 1, 0, 0]
    assert table["rate_limited"].to_list() == [1, 1, 0, 0]


def test_requests_per_key_per_day_respects_the_window():
    table = m.requests_per_key_per_day(audit(), ts("2024-01-11"), ts("2024-01-12"))
    assert table["requests"].sum() == 2


def test_top_endpoints_ranked_by_requests():
    table = m.top_endpoints(audit(), n=2)
    assert table[["method", "resource"]].values.tolist() == [["GET", "/api/orders"],
                                                             ["GET", "/api/positions"]]
    assert table["requests"].to_list() == [4, 1]
    assert table["error_share"].to_list() == [pytest.approx(0.5), 1.0]  # 429 + 403 of 4


def test_key_utilization_is_peak_requests_per_minute_over_rate_limit():
    table = m.key_utilization(keys(), audit()).set_index("key_id")
    assert list(table.index) == ["k0", "k1", "k2", "k9"]
    # k0: 2 requests in minute 00:00, 1 in 00:01 -> peak 2 of 2 per minute
    assert table.loc["k0", "peak_requests_per_minute"] == 2
    assert table.loc["k0", "peak_minute"] == ts("2024-01-10T00:00")
    assert table.loc["k0", "utilization"] == 1.0
    assert table.loc["k1", "utilization"] == pytest.approx(0.1)  # 1 / 10
    assert table.loc["k2", "utilization"] == 0.0
    assert pd.isna(table.loc["k9", "utilization"])  # unknown key: no rate limit
    assert table.loc["k9", "requests"] == 1


def test_keys_near_limit_uses_the_threshold():
    assert m.keys_near_limit(keys(), audit())["key_id"].to_list() == ["k0"]
    assert m.keys_near_limit(keys(), audit(), threshold=0.05)["key_id"].to_list() == ["k0", "k1"]


def test_key_hygiene_flags_as_of():
    table = m.key_hygiene(keys(), AS_OF).set_index("key_id")
    assert table["expired_but_active"].to_list() == [True, False, False]  # k2 is inactive
    assert table["never_used"].to_list() == [False, True, False]
    assert table["idle"].to_list() == [True, False, False]  # Jan 10 < Mar 1 - 30 days
    assert table["no_expiry"].to_list() == [False, True, False]


def test_key_is_expired_at_exactly_its_expiry():
    frame = api_keys_frame([{"expires_at": "2024-03-01T00:00:00"}])
    assert m.key_hygiene(frame, AS_OF)["expired_but_active"].to_list() == [True]
    assert m.key_hygiene(frame, ts("2024-02-29T23:59:59"))["expired_but_active"].to_list() == [False]


def test_keys_per_user():
    table = m.keys_per_user(keys())
    assert table.values.tolist() == [["u1", 2, 2], ["u2", 1, 0]]


def test_api_usage_summary():
    summary = m.api_usage_summary(keys(), audit(), as_of=AS_OF)
    assert summary == {
        "keys": 3, "active_keys": 2, "expired_active_keys": 1, "never_used_keys": 1,
        "idle_keys": 1, "no_expiry_keys": 1, "requests": 6, "error_requests": 3,
        "rate_limited_requests": 2, "peak_utilization": 1.0, "keys_near_limit": 1,
    }


def test_api_usage_of_empty_frames_is_zeros_and_none():
    summary = m.api_usage_summary(api_keys_frame([]), audit_frame([]), as_of=AS_OF)
    assert summary["keys"] == 0 and summary["requests"] == 0
    assert summary["peak_utilization"] is None
    assert m.request_outcomes(audit_frame([])).error_share is None
    assert m.top_endpoints(audit_frame([])).empty
    assert m.requests_per_key_per_day(audit_frame([])).empty
    assert m.key_utilization(api_keys_frame([]), audit_frame([])).empty


def test_keys_without_requests_have_zero_utilization():
    table = m.key_utilization(keys(), audit_frame([]))
    assert table["requests"].to_list() == [0, 0, 0]
    assert table["utilization"].to_list() == [0.0, 0.0, 0.0]
