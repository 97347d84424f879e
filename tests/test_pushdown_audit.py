"""The security and API usage reports pushed down into PostgreSQL.

The push-down path (aggregates computed in SQL, shivx_analytics.aggregates.audit) gives the same
report as the pandas path (audit rows loaded, metrics in pandas): the same summary, the same
tables to the dtype, the same figures and notes, on the small demo dataset and on a hand-built
dataset of edge cases, for the default window, a window not aligned to days and an empty window.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest
from _compare import assert_path_follows_settings, assert_same_summary, assert_same_tables, png
from _databases import engine_of, seeded_postgres_database
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from shivx_analytics import aggregates, metrics
from shivx_analytics.aggregates import PushdownUnavailable
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.frames import load_api_keys, load_audit_logs, load_users
from shivx_analytics.models import APIKeyCreate, SecurityAuditLog, User, UserCreate, build_api_key
from shivx_analytics.reports import Report, api_usage_report, security_report

DEMO_AS_OF = "2025-10-28T00:00:00Z"
REPORTS = {"security": security_report, "api_usage": api_usage_report}
WINDOWS = {
    "default": {},  # the 30 days before as_of
    "unaligned": {"since": "2025-09-03T05:17:03.123456Z", "until": "2025-10-20T13:01:59.500001Z"},
    "empty": {"since": "2025-10-01T12:00:00Z", "until": "2025-10-01T12:00:00Z"},
}


# Comparing the two paths -----------------------------------------------------------------------


def both_paths(build, url: str, **window) -> tuple[Report, Report]:
    return build(url, pushdown=False, **window), build(url, pushdown=True, **window)


def assert_same_report(pandas_report: Report, pushdown_report: Report) -> None:
    """Equal summaries, tables (exact dtypes; floats to a relative 1e-12), figures and notes."""
    assert pandas_report.parameters.pop("path") == "pandas"
    assert pushdown_report.parameters.pop("path") == "pushdown"
    assert pandas_report.parameters == pushdown_report.parameters
    assert_same_summary(pandas_report.summary, pushdown_report.summary)
    assert_same_tables(pandas_report.exact_tables, pushdown_report.exact_tables)
    assert list(pandas_report.figures) == list(pushdown_report.figures)
    for name, figure in pandas_report.figures.items():
        assert png(pushdown_report.figures[name]) == png(figure), f"figure {name}"
    assert pandas_report.notes == pushdown_report.notes


# The small demo --------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["postgresql"])
def demo_url(migrated_templates) -> Iterator[str]:
    """The small demo dataset (seed 0) on PostgreSQL, shared by this module's tests (they read)."""
    with seeded_postgres_database(
            migrated_templates, lambda url: generate_demo_data(url, seed=0, scale="small", as_of=DEMO_AS_OF)) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("report", REPORTS)
def test_pushdown_gives_the_pandas_report_on_the_demo(demo_url, report, window):
    pandas_report, pushdown_report = both_paths(REPORTS[report], demo_url, as_of=DEMO_AS_OF, **WINDOWS[window])
    if window != "empty":  # the comparison means something: the window has what the report counts
        summary = pandas_report.summary
        assert summary["failed_logins"] > 0 if report == "security" else summary["requests"] > 0
    assert_same_report(pandas_report, pushdown_report)


@pytest.mark.slow
def test_the_pushdown_path_loads_no_audit_row(demo_url, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the push-down path loaded audit rows")

    monkeypatch.setattr("shivx_analytics.reports.security.load_audit_logs", refuse)
    monkeypatch.setattr("shivx_analytics.reports.api_usage.load_audit_logs", refuse)
    assert security_report(demo_url, as_of=DEMO_AS_OF, pushdown=True).summary["failed_logins"] > 0
    assert api_usage_report(demo_url, as_of=DEMO_AS_OF, pushdown=True).summary["requests"] > 0


# Edge cases, by hand ---------------------------------------------------------------------------
#
# Written through the models into a database whose sessions run in Asia/Kathmandu (UTC+05:45),
# so a day, hour or minute taken in the session's time zone instead of UTC would show.

EDGE_AS_OF = "2025-03-10T00:00:00Z"
EDGE_WINDOWS = {
    "default": {},
    "unaligned": {"since": "2025-03-02T23:59:59.999999Z", "until": "2025-03-09T00:00:00.000001Z"},
}
U1, U2, U3 = (uuid.UUID(int=n) for n in (1, 2, 3))
K1, K2, K3 = (uuid.UUID(int=n) for n in (301, 302, 303))
T0 = datetime(2025, 3, 3, 10, 0, tzinfo=timezone.utc)  # a Monday


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def edge_events() -> list[dict]:
    """Audit events for every edge the two reports handle (see the comments)."""
    login = {"event_type": "authentication", "action": "login", "resource": "/auth/login"}
    events: list[dict] = []

    def failures(ip, start, offsets, user=U1):
        events.extend({**login, "success": False, "ip_address": ip, "user_id": user, "timestamp": start + offset}
                      for offset in offsets)

    # 10 failures inside [first, first + 10 min): the last at first + 10 min - 1 us (a suspect)
    failures("198.51.100.7", T0, [s(i) for i in range(9)] + [timedelta(minutes=10) - timedelta(microseconds=1)])
    # the 10th exactly at first + 10 min: outside every window that holds the other 9 (no suspect)
    failures("198.51.100.8", T0, [s(i) for i in range(9)] + [timedelta(minutes=10)], user=U2)
    # ties: 10 failures, 4 of them at one instant, the burst starting on the tie (a suspect)
    failures("2001:db8::1", T0 + timedelta(hours=1), [s(0)] * 4 + [s(i) for i in range(1, 7)], user=None)
    # a dense burst at the threshold after a slow trickle: the densest window is the later one
    failures("10.0.0.10", T0 + timedelta(hours=2), [timedelta(minutes=20 * i) for i in range(5)]
             + [timedelta(hours=3, seconds=i) for i in range(10)], user=U3)
    failures("10.0.0.9", T0, [s(30)])
    # failed logins with no IP and with no user
    failures(None, T0 + timedelta(days=1), [s(0), s(1)])
    failures("10.0.0.9", T0 + timedelta(days=1), [s(5)], user=None)
    # success after failures: the failure exactly 10 min before counts, the one 1 us earlier and
    # the one at the same instant do not; a success with no IP is never matched
    success_at = T0 + timedelta(days=2)
    failures("203.0.113.5", success_at, [-timedelta(minutes=10), -timedelta(minutes=10, microseconds=1), s(0)])
    failures("203.0.113.5", success_at, [-s(30)], user=U2)
    events += [{**login, "success": True, "ip_address": "203.0.113.5", "user_id": U1, "timestamp": success_at},
               {**login, "success": True, "ip_address": None, "user_id": U1, "timestamp": success_at},
               {**login, "success": True, "ip_address": "198.51.100.7", "user_id": U1,
                "timestamp": T0 + timedelta(minutes=10)}]
    # logins on both sides of UTC midnight (a Wednesday / Thursday in UTC, both Thursday in Kathmandu)
    midnight = datetime(2025, 3, 6, tzinfo=timezone.utc)
    failures("192.0.2.1", midnight, [-timedelta(microseconds=1), timedelta(0), timedelta(minutes=10)])
    # lockouts, one with neither user nor IP; access denials; unknown types and actions
    events += [
        {"event_type": "authentication", "action": "lockout", "success": True, "ip_address": "198.51.100.7",
         "user_id": U1, "timestamp": T0 + timedelta(minutes=11)},
        {"event_type": "authentication", "action": "lockout", "success": True, "ip_address": None,
         "user_id": None, "timestamp": T0 + timedelta(minutes=11)},
        {"event_type": "authentication", "action": "logout", "success": True, "ip_address": "10.0.0.9",
         "user_id": U1, "timestamp": T0 + timedelta(hours=5)},
        {"event_type": "authorization", "action": "access_denied", "success": False, "ip_address": "10.0.0.9",
         "user_id": U2, "resource": "/admin", "timestamp": T0 + timedelta(hours=6)},
        {"event_type": "custom_event", "action": "noop", "success": True, "timestamp": T0 + timedelta(hours=7)},
        {"event_type": "authentication", "action": "mystery", "success": False, "ip_address": "10.0.0.9",
         "timestamp": T0 + timedelta(hours=8)},
    ]
    events += api_events()
    # the window's bounds: at since (in), at until (out), 1 us before until (in)
    since = datetime(2025, 2, 8, tzinfo=timezone.utc)  # as_of - 30 days
    until = datetime(2025, 3, 10, tzinfo=timezone.utc)
    for at in (since, until, until - timedelta(microseconds=1)):
        events.append({**login, "success": False, "ip_address": "192.0.2.99", "user_id": U1, "timestamp": at})
        events.append(request(at, {"key_id": str(K1), "status_code": 500}))
    return events


def request(at: datetime, details: dict, method: str = "GET", resource: str | None = "/api/v1/orders",
            success: bool = True) -> dict:
    return {"event_type": "api_request", "action": method, "resource": resource, "success": success,
            "ip_address": "10.0.0.5", "user_id": U1, "details": details, "timestamp": at}


def api_events() -> list[dict]:
    """Requests: K1 (limit 5) peaks twice at 5 per minute (the earlier minute wins), right up to
    the minute's last microsecond; every odd status_code and key_id the loader reads."""
    key1, key2 = str(K1), str(K2)
    minute = datetime(2025, 3, 4, 9, 0, tzinfo=timezone.utc)
    events = [request(minute + s(12 * i), {"key_id": key1, "status_code": 200}) for i in range(4)]
    events.append(request(minute + timedelta(seconds=59, microseconds=999999), {"key_id": key1, "status_code": 200}))
    events.append(request(minute + s(60), {"key_id": key1, "status_code": 200}))  # the next minute
    later = minute + timedelta(hours=30)  # the next UTC day
    events += [request(later + s(i), {"key_id": key1, "status_code": 429, "reason": "rate_limited"})
               for i in range(5)]
    odd_details = [
        {"key_id": key2, "status_code": "404"},            # digits in a string
        {"key_id": key2, "status_code": " 429 "},          # with spaces: 429, rate limited
        {"key_id": key2, "status_code": "-5"},
        {"key_id": key2, "status_code": "4o4"},            # not a number: no status
        {"key_id": key2, "status_code": 404.0},            # a float: no status (the loader's rule)
        {"key_id": key2, "status_code": 500.5},
        {"key_id": key2, "status_code": True},
        {"key_id": key2, "status_code": None},
        {"key_id": key2, "reason": "rate_limited"},        # rate limited by reason alone
        {"key_id": key2, "reason": 429},                   # a reason that is not text
        {"key_id": "unknown-key", "status_code": 503},     # a key api_keys does not know
        {"key_id": 7, "status_code": 200},                 # an integer key id
        {"key_id": None, "status_code": 200},
        {"status_code": 401},                              # no key
        {},                                                # neither key nor status
    ]
    events += [request(minute + timedelta(hours=2, seconds=i), details) for i, details in enumerate(odd_details)]
    # endpoints: 12 of them (top 10 cut), ties on requests ordered by method then resource by code
    # point ("/api/Z" before "/api/a" before "/api/é"), a missing resource last among equals
    resources = ["/api/a", "/api/Z", "/api/é", None, "/api/b", "/api/c", "/api/d", "/api/e", "/api/f",
                 "/api/g", "/api/h"]
    base = datetime(2025, 3, 5, 18, 0, tzinfo=timezone.utc)
    for i, resource in enumerate(resources):
        for method in ("GET", "DELETE") if i < 3 else ("POST",):
            events.append(request(base + timedelta(minutes=i), {"key_id": key2, "status_code": 200},
                                  method=method, resource=resource))
    return events


def seed_edge_cases(url: str) -> None:
    with engine_of(url) as engine:
        with Session(engine) as session:
            for user_id, name in ((U1, "alice"), (U2, "bob"), (U3, "carol")):
                session.add(User.model_validate(
                    UserCreate(username=name, email=f"{name}@example.com", password="x" * 12),
                    update={"password_hash": "pbkdf2_sha256$1$c2FsdA$aGFzaA", "user_id": user_id,
                            "created_at": datetime(2025, 1, 1, tzinfo=timezone.utc)}))
            session.flush()
            for key_id, user_id, name, limit in ((K1, U1, "bot", 5), (K2, U1, "reader", 60), (K3, U2, "idle", 100)):
                _, key = build_api_key(APIKeyCreate(user_id=user_id, name=name, rate_limit=limit))
                key.key_id = key_id
                session.add(key)
            session.flush()
            session.add_all(SecurityAuditLog.create_entry(**event) for event in edge_events())
            session.commit()
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql(f"ALTER DATABASE \"{make_url(url).database}\" SET timezone TO 'Asia/Kathmandu'")


@pytest.fixture(scope="module", params=["postgresql"])
def edge_url(migrated_templates) -> Iterator[str]:
    """The edge-case dataset on PostgreSQL, shared by this module's tests (they read)."""
    with seeded_postgres_database(migrated_templates, seed_edge_cases) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("window", EDGE_WINDOWS)
@pytest.mark.parametrize("report", REPORTS)
def test_pushdown_gives_the_pandas_report_on_edge_cases(edge_url, report, window):
    pandas_report, pushdown_report = both_paths(REPORTS[report], edge_url, as_of=EDGE_AS_OF,
                                                **EDGE_WINDOWS[window])
    assert_same_report(pandas_report, pushdown_report)


def test_the_edge_cases_are_what_they_claim(edge_url):
    """The edge dataset does reach the edges (otherwise the comparison above proves little)."""
    security = security_report(edge_url, as_of=EDGE_AS_OF, pushdown=True)
    suspects = security.exact_tables["brute_force_suspects"]
    assert suspects["ip_address"].tolist() == ["10.0.0.10", "198.51.100.7", "2001:db8::1"]
    assert suspects["failures_in_window"].tolist() == [10, 10, 10]
    assert suspects["window_first_at"].iloc[0] == pd.Timestamp("2025-03-03T15:00:00Z")  # the burst
    after = security.exact_tables["success_after_failures"]
    assert after["ip_address"].tolist() == ["198.51.100.7", "203.0.113.5"]
    assert after["failures_before"].tolist() == [10, 2] and after["failed_users"].tolist() == [1, 2]
    assert pd.isna(security.exact_tables["failed_logins_by_ip"]["ip_address"]).any()
    assert security.summary["lockouts"] == 2 and security.summary["access_denied"] == 1
    assert "custom_event" in security.exact_tables["event_types"]["event_type"].tolist()
    per_day = security.exact_tables["failed_logins_by_day"]["failed_logins"]
    # 4 around the success of 03-05 10:00 and 1 at 23:59:59.999999; 2 from midnight on
    assert per_day[pd.Timestamp("2025-03-05T00:00:00Z")] == 5 and per_day[pd.Timestamp("2025-03-06T00:00:00Z")] == 2

    usage = api_usage_report(edge_url, as_of=EDGE_AS_OF, pushdown=True)
    utilization = usage.exact_tables["utilization"].set_index("key_id")
    assert utilization.loc[str(K1), "peak_requests_per_minute"] == 5
    assert utilization.loc[str(K1), "peak_minute"] == pd.Timestamp("2025-03-04T09:00:00Z")
    assert {"unknown-key", "7"} <= set(utilization.index)
    assert usage.summary["rate_limited_requests"] == 5 + 2  # K1's 429s; " 429 " and reason alone
    endpoints = usage.exact_tables["top_endpoints"]
    assert len(endpoints) == 10
    assert endpoints["method"].iloc[1:4].tolist() == ["DELETE"] * 3  # after GET /api/v1/orders
    assert endpoints["resource"].iloc[1:4].tolist() == ["/api/Z", "/api/a", "/api/é"]


@pytest.fixture(scope="module")
def edge_frames(edge_url) -> dict[str, object]:
    until = pd.Timestamp(EDGE_AS_OF)
    since = until - pd.Timedelta(days=30)
    return {"since": since, "until": until, "audit": load_audit_logs(edge_url, since=since, until=until),
            "keys": load_api_keys(edge_url), "users": load_users(edge_url)}


@pytest.mark.parametrize("min_failures, window", [(10, "10min"), (4, "1min"), (3, "601s"), (1, "1500ms")])
def test_rolling_windows_match_the_metrics_for_any_length(edge_url, edge_frames, min_failures, window):
    audit, since, until = edge_frames["audit"], edge_frames["since"], edge_frames["until"]
    pd.testing.assert_frame_equal(
        aggregates.brute_force_suspects(edge_url, since, until, min_failures, window),
        metrics.brute_force_suspects(audit, min_failures, window))
    pd.testing.assert_frame_equal(
        aggregates.success_after_failures(edge_url, since, until, window),
        metrics.success_after_failures(audit, window))


@pytest.mark.parametrize("n", [0, 3, 100])
def test_top_endpoints_cut_matches_the_metrics(edge_url, edge_frames, n):
    pd.testing.assert_frame_equal(
        aggregates.top_endpoints(edge_url, edge_frames["since"], edge_frames["until"], n),
        metrics.top_endpoints(edge_frames["audit"], n), check_exact=False, rtol=1e-12, atol=0)


def test_request_outcomes_counted_or_summed_from_the_days_match_the_metrics(edge_url, edge_frames):
    since, until = edge_frames["since"], edge_frames["until"]
    expected = metrics.request_outcomes(edge_frames["audit"])
    assert aggregates.request_outcomes(edge_url, since, until) == expected
    per_key_day = aggregates.requests_per_key_per_day(edge_url, since, until)
    assert aggregates.request_outcomes(edge_url, since, until, per_key_day=per_key_day) == expected


def test_near_limit_threshold_matches_the_metrics(edge_url, edge_frames):
    keys, audit = edge_frames["keys"], edge_frames["audit"]
    for threshold in (0.0, 0.05, 1.0, 2.0):
        pd.testing.assert_frame_equal(
            aggregates.keys_near_limit(edge_url, edge_frames["since"], edge_frames["until"], keys, threshold),
            metrics.keys_near_limit(keys, audit, threshold), check_exact=False, rtol=1e-12, atol=0)


# Choosing the path -----------------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("report", REPORTS)
def test_pushdown_on_sqlite_is_refused_naming_sqlite(backend, db_url, report):
    with pytest.raises(PushdownUnavailable, match="(?i)sqlite"):
        REPORTS[report](db_url, as_of=EDGE_AS_OF, pushdown=True)
    assert REPORTS[report](db_url, as_of=EDGE_AS_OF).parameters["path"] == "pandas"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_api_usage_views_are_refused_on_sqlite(backend, db_url):
    with pytest.raises(PushdownUnavailable, match="PostgreSQL only; this source is sqlite"):
        api_usage_report(db_url, as_of=EDGE_AS_OF, use_views=True)
    assert api_usage_report(db_url, as_of=EDGE_AS_OF, use_views=False).parameters["path"] == "pandas"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_aggregates_refuse_sqlite(backend, db_url):
    with pytest.raises(PushdownUnavailable, match="(?i)sqlite"):
        aggregates.failed_logins_by_ip(db_url, "2025-01-01", "2025-02-01")


@pytest.mark.slow
@pytest.mark.parametrize("report", REPORTS)
def test_the_path_taken_is_recorded(demo_url, settings_env, report):
    assert_path_follows_settings(lambda **path: REPORTS[report](demo_url, as_of=DEMO_AS_OF, **path), settings_env)
