"""Security metrics worked by hand on small audit and user frames."""

from __future__ import annotations

import pandas as pd
import pytest
from metrics_fixtures import audit_frame, login, ts, users_frame

from shivx_analytics import metrics as m

AS_OF = ts("2024-01-03T00:00:00")


def attack(ip: str = "6.6.6.6", start_minute: int = 0, failures: int = 10,
           step_seconds: int = 60) -> list[dict]:
    """`failures` failed logins from one IP, one every step_seconds from 2024-01-01 10:00."""
    start = ts("2024-01-01T10:00") + pd.Timedelta(minutes=start_minute)
    return [login((start + pd.Timedelta(seconds=i * step_seconds)).isoformat(), False, ip=ip,
                  user=f"u{i % 3}") for i in range(failures)]


def audit() -> pd.DataFrame:
    return audit_frame([
        *attack(),                                              # Mon 10:00..10:09, 10 failures
        login("2024-01-01T10:09:30", True, ip="6.6.6.6", user="u1"),   # success right after
        login("2024-01-02T08:00:00", False, ip="1.1.1.1", user="u5"),  # Tue 08:00
        login("2024-01-02T08:30:00", True, ip="1.1.1.1", user="u5"),   # 30 min later
        login("2024-01-02T08:31:00", False, ip="1.1.1.1", user=None),  # unknown username
        login("2024-01-02T09:00:00", False, ip="1.1.1.1", user="u5", action="lockout"),
        {"event_type": "authorization", "action": "access_denied", "success": False,
         "timestamp": "2024-01-02T09:00:00"},
        {"event_type": "something_new", "action": "?", "success": None,
         "timestamp": "2024-01-02T09:00:00"},
    ])


def test_failed_logins_are_authentication_login_with_success_false():
    failures = m.failed_logins(audit())
    assert len(failures) == 12  # 10 + 2; the lockout and access_denied are not logins
    assert failures["timestamp"].is_monotonic_increasing


def test_failed_logins_by_day_includes_zero_days():
    per_day = m.failed_logins_by_day(audit(), ts("2024-01-01"), ts("2024-01-04"))
    assert per_day.to_list() == [10, 2, 0]
    assert m.failed_logins_by_day(audit()).to_list() == [10, 2]


def test_failed_logins_by_ip_and_by_user():
    by_ip = m.failed_logins_by_ip(audit())
    assert by_ip[["ip_address", "failures", "users"]].values.tolist() == [
        ["6.6.6.6", 10, 3], ["1.1.1.1", 2, 1]]
    assert by_ip["last_at"].iloc[0] == ts("2024-01-01T10:09")
    by_user = m.failed_logins_by_user(audit())
    # u0: attempts 0, 3, 6, 9 -> 4; u1: 1, 4, 7 -> 3; u2: 3; u5: 1; unknown: 1 (last)
    assert by_user["failures"].to_list() == [4, 3, 3, 1, 1]
    assert by_user["user_id"].iloc[:4].to_list() == ["u0", "u1", "u2", "u5"]
    assert pd.isna(by_user["user_id"].iloc[4])


def test_lockouts_are_listed():
    table = m.lockouts(audit())
    assert table["user_id"].to_list() == ["u5"]


def test_brute_force_suspect_has_n_failures_inside_the_rolling_window():
    suspects = m.brute_force_suspects(audit(), min_failures=10, window="10min")
    # 10:00 .. 10:09 is inside [10:00, 10:10)
    assert suspects["ip_address"].to_list() == ["6.6.6.6"]
    row = suspects.iloc[0]
    assert (row["failures_in_window"], row["total_failures"], row["users"]) == (10, 10, 3)
    assert (row["window_first_at"], row["window_last_at"]) == (ts("2024-01-01T10:00"), ts("2024-01-01T10:09"))


def test_brute_force_window_is_half_open():
    frame = audit_frame(attack(failures=9) + [login("2024-01-01T10:10:00", False, ip="6.6.6.6")])
    # first at 10:00, tenth at 10:10: never 10 inside any [t, t + 10 min)
    assert m.brute_force_suspects(frame, min_failures=10, window="10min").empty
    assert len(m.brute_force_suspects(frame, min_failures=10, window="601s")) == 1


def test_brute_force_finds_a_dense_burst_inside_a_slow_trickle():
    frame = audit_frame(attack(failures=5, step_seconds=3600)
                        + attack(start_minute=600, failures=4, step_seconds=5))
    suspects = m.brute_force_suspects(frame, min_failures=5, window="1min")
    # hourly trickle 10:00 .. 14:00 (5 failures); burst of 4 at 20:00:00 .. 20:00:15
    assert suspects.empty
    suspects = m.brute_force_suspects(frame, min_failures=4, window="1min")
    assert suspects["failures_in_window"].to_list() == [4]
    assert suspects["window_first_at"].to_list() == [ts("2024-01-01T20:00")]
    assert suspects["total_failures"].to_list() == [9]


def test_brute_force_rejects_a_bad_window():
    with pytest.raises(ValueError, match="window"):
        m.brute_force_suspects(audit(), window="soon")


def test_success_after_failures_within_the_window():
    table = m.success_after_failures(audit(), window="10min")
    # 6.6.6.6 succeeds at 10:09:30: failures from 09:59:30 on -> all 10 (10:00 .. 10:09)
    assert table["ip_address"].to_list() == ["6.6.6.6"]
    assert table["failures_before"].to_list() == [10]
    assert table["first_failure_at"].to_list() == [ts("2024-01-01T10:00")]
    assert table["failed_users"].to_list() == [3]
    # 1.1.1.1's success comes 30 min after its failure: outside 10 min, inside 1 h
    assert m.success_after_failures(audit(), window="1h")["ip_address"].to_list() == ["6.6.6.6", "1.1.1.1"]


def test_failures_heatmap_is_a_full_hour_by_weekday_grid():
    grid = m.failures_heatmap(audit())
    assert grid.shape == (24, 7) and list(grid.columns) == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    assert grid.loc[10, "Mon"] == 10  # 2024-01-01 is a Monday
    assert grid.loc[8, "Tue"] == 2
    assert int(grid.to_numpy().sum()) == 12
    empty = m.failures_heatmap(audit_frame([]))
    assert empty.shape == (24, 7) and int(empty.to_numpy().sum()) == 0


def test_locked_users_are_those_locked_after_as_of():
    users = users_frame([
        {"locked_until": "2024-01-03T00:15:00", "failed_login_attempts": 5},
        {"locked_until": "2024-01-03T00:00:00"},  # lock ends exactly at as_of: not locked
        {},
    ])
    table = m.locked_users(users, AS_OF)
    assert table["user_id"].to_list() == ["u0"]
    assert table["failed_login_attempts"].to_list() == [5]


def test_event_type_breakdown_counts_unknown_types_too():
    table = m.event_type_breakdown(audit())
    assert table["event_type"].to_list() == ["authentication", "authorization", "something_new"]
    assert table["events"].to_list() == [15, 1, 1]
    assert table["failures"].to_list() == [13, 1, 0]  # 12 failed logins + the lockout row
    assert table["failure_share"].iloc[1] == 1.0


def test_security_summary():
    users = users_frame([{"locked_until": "2024-01-03T00:15:00"}])
    assert m.security_summary(audit(), users, as_of=AS_OF) == {
        "failed_logins": 12, "lockouts": 1, "locked_users": 1, "suspicious_ips": 1,
        "success_after_failures": 1, "access_denied": 1,
    }


def test_security_metrics_of_empty_frames():
    empty = audit_frame([])
    assert m.security_summary(empty, users_frame([]), as_of=AS_OF) == {
        "failed_logins": 0, "lockouts": 0, "locked_users": 0, "suspicious_ips": 0,
        "success_after_failures": 0, "access_denied": 0,
    }
    assert m.failed_logins_by_day(empty).empty
    assert m.failed_logins_by_ip(empty).empty
    assert m.brute_force_suspects(empty).empty
    assert m.event_type_breakdown(empty).empty
