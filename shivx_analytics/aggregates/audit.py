"""The security and API-usage reports' aggregates of the audit log, computed in PostgreSQL.

Each function takes a source (Engine, Connection, Session or URL of a PostgreSQL database) and
the window [since, until), and returns exactly what the metrics function of the same name
returns from the window's loaded audit rows (metrics/security.py, metrics/api_usage.py): same
index, columns, dtypes, row order and missing values. Conventions are those of the metrics:

- A failed login is an authentication / login event with success false; a lockout an
  authentication / lockout event. A request is an api_request event; its key is details.key_id,
  an error has details.status_code >= 400, a rate-limited request details.reason
  "rate_limited" or status_code 429.
- Days, hours, weekdays and minutes are UTC, computed with ``timezone('UTC', ...)`` whatever the
  session's TimeZone. A rolling window of length W holds the events with first <= t < first + W.
- Text keys are grouped and sorted by code point (``COLLATE "C"``), missing keys last.

Statements are SQLAlchemy Core on the model tables; every value is a bound parameter, and every
statement filters ``timestamp`` with the window's two bounds, so PostgreSQL prunes the audit
log's monthly partitions. Only aggregates (and the rows of row-level tables) leave the database;
counts and ratios are computed from them exactly as the metrics compute them.

details.key_id, status_code and reason are read as the loader reads them (frames/schemas.py): a status
code is a JSON integer or a string of digits (404.0, true or "4o4" is none); a key_id or reason
is its string, or PostgreSQL's text of another JSON value. Where the two readings can differ is
outside what the event vocabulary writes: a key_id that is a fraction, an object or an array
(PostgreSQL's spelling of it, not json.dumps'), a status code in exponent notation (an integer
here, a float to the loader), digits other than ASCII 0-9.

The statements run on the given connection, in its transaction: under READ COMMITTED, rows
written between two of them can make two tables of one report disagree by those rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from shivx_analytics.metrics._common import (
    day_index,
    duration,
    nullable_floats,
    ratio,
    timestamp,
    typed_frame,
)
from shivx_analytics.metrics.api_usage import (
    RequestOutcomes,
    api_usage_summary_from,
    key_hygiene,
    key_utilization_table,
)
from shivx_analytics.metrics.security import WEEKDAYS, locked_users
from shivx_analytics.models import SecurityAuditLog

from ._common import PushdownUnavailable, backend_of, instant, read_connection

__all__ = [
    "security_rows", "api_request_rows",
    "security_summary", "failed_logins_by_day", "failed_logins_by_ip", "failed_logins_by_user",
    "lockouts", "brute_force_suspects", "success_after_failures", "failures_heatmap",
    "event_type_breakdown",
    "api_usage_summary", "request_outcomes", "requests_per_key_per_day", "top_endpoints",
    "key_utilization", "keys_near_limit",
]

_AUDIT = SecurityAuditLog.__table__
_UTC_TIME = "datetime64[us, UTC]"
_MICROSECOND = pd.Timedelta(microseconds=1)
PER_KEY_DAY_DTYPES = {"day": _UTC_TIME, "api_key_id": "string", "requests": "Int64", "errors": "Int64",
                      "rate_limited": "Int64"}  # requests_per_key_per_day's frame


# Window statements (choose_path) --------------------------------------------------------------


def security_rows(since: object, until: object) -> sa.Select:
    """SELECT of the security report's window: every audit event in [since, until) (the event
    type breakdown reads them all)."""
    return sa.select(_AUDIT.c.log_id).where(*_in_window(since, until))


def api_request_rows(since: object, until: object) -> sa.Select:
    """SELECT of the API usage report's window: the api_request events in [since, until)."""
    return sa.select(_AUDIT.c.log_id).where(*_in_window(since, until), _AUDIT.c.event_type == _text("api_request"))


# Security -------------------------------------------------------------------------------------


def security_summary(source: Any, since: object, until: object, users: pd.DataFrame, *, as_of: object,
                     min_failures: int = 10, window: object = "10min") -> dict[str, object]:
    """metrics.security_summary of the window's audit rows (locked_users from ``users``, the
    frame load_users returns)."""
    t = _AUDIT
    failed = _is_login() & sa.not_(t.c.success)
    lockout = (t.c.event_type == _text("authentication")) & (t.c.action == _text("lockout"))
    denied = (t.c.event_type == _text("authorization")) & (t.c.action == _text("access_denied"))
    statement = sa.select(*[sa.func.count().filter(condition) for condition in (failed, lockout, denied)]).where(
        *_in_window(since, until), t.c.event_type.in_([_text("authentication"), _text("authorization")]))
    with _postgresql(source) as connection:
        failures, lockout_events, denials = connection.execute(statement).one()  # type: ignore[misc]
        suspects = brute_force_suspects(connection, since, until, min_failures, window)
        after = success_after_failures(connection, since, until, window)
    return {
        "failed_logins": failures,
        "lockouts": lockout_events,
        "locked_users": len(locked_users(users, as_of)),
        "suspicious_ips": len(suspects),
        "success_after_failures": len(after),
        "access_denied": denials,
    }


def failed_logins_by_day(source: Any, since: object, until: object) -> pd.Series:
    """metrics.failed_logins_by_day: failed logins per UTC day of [since, until), zero days
    included; Int64 indexed by day."""
    day = _utc_floor("day", _AUDIT.c.timestamp)
    statement = (sa.select(day, sa.func.count()).where(*_in_window(since, until), *_failed_login())
                 .group_by(day))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    per_day = pd.Series([n for _, n in rows], dtype="int64",
                        index=pd.DatetimeIndex(pd.Series([d for d, _ in rows], dtype=_UTC_TIME)))
    days = day_index(timestamp(since, "since"), timestamp(until, "until"))
    return per_day.reindex(days, fill_value=0).astype("Int64").rename("failed_logins")


def failed_logins_by_ip(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.failed_logins_by_ip: per ip_address, failures, users (distinct user_id), first_at,
    last_at; most failures first, then ip_address (no IP last)."""
    return _failures_by(source, since, until, _AUDIT.c.ip_address, _AUDIT.c.user_id, "ip_address", "users")


def failed_logins_by_user(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.failed_logins_by_user: per user_id, failures, ips (distinct ip_address), first_at,
    last_at; most failures first, then user_id (no user last)."""
    return _failures_by(source, since, until, _AUDIT.c.user_id, _AUDIT.c.ip_address, "user_id", "ips")


def lockouts(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.lockouts: the lockout events (log_id, timestamp, user_id, ip_address) in time order."""
    t = _AUDIT
    statement = (sa.select(_id_text(t.c.log_id), t.c.timestamp, _id_text(t.c.user_id), t.c.ip_address)
                 .where(*_in_window(since, until), t.c.event_type == _text("authentication"),
                        t.c.action == _text("lockout"))
                 .order_by(t.c.timestamp, t.c.log_id))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    return typed_frame(rows, {"log_id": "string", "timestamp": _UTC_TIME, "user_id": "string",
                              "ip_address": "string"})


def brute_force_suspects(source: Any, since: object, until: object, min_failures: int = 10,
                         window: object = "10min") -> pd.DataFrame:
    """metrics.brute_force_suspects: IPs with >= min_failures failed logins inside one rolling
    window, each with its densest window (earliest when tied).

    Per IP, failures in (timestamp, log_id) order: the window opened by the failure at position
    i holds the failures up to the last one before timestamp_i + window, that is (range frame up
    to timestamp_i + window - 1 microsecond, timestamps being whole microseconds) minus the i
    failures before it.
    """
    t = _AUDIT
    length = duration(window, "window")
    failures = (sa.select(t.c.log_id, t.c.timestamp, t.c.user_id, t.c.ip_address)
                .where(*_in_window(since, until), *_failed_login(), t.c.ip_address.is_not(None))
                .cte("failures"))
    f = failures.c
    reach = sa.FrameClause(None, _interval(length.ceil("us") - _MICROSECOND),
                           sa.FrameClauseType.UNBOUNDED, sa.FrameClauseType.FOLLOWING)
    position = sa.func.row_number().over(partition_by=f.ip_address, order_by=(f.timestamp, f.log_id))
    windows = sa.select(
        f.ip_address, f.timestamp.label("first_at"),
        (sa.func.count().over(partition_by=f.ip_address, order_by=f.timestamp, range_=reach)
         - position + 1).label("failures_in_window"),
        sa.func.max(f.timestamp).over(partition_by=f.ip_address, order_by=f.timestamp, range_=reach).label("last_at"),
        position.label("position"),
    ).subquery("windows")
    w = windows.c
    densest = sa.select(
        w.ip_address, w.failures_in_window, w.first_at, w.last_at,
        sa.func.row_number().over(partition_by=w.ip_address,
                                  order_by=(w.failures_in_window.desc(), w.position)).label("rank"),
    ).subquery("densest")
    totals = (sa.select(f.ip_address, sa.func.count().label("total"),
                        sa.func.count(sa.distinct(f.user_id)).label("users"))
              .group_by(f.ip_address).subquery("totals"))
    d = densest.c
    statement = (sa.select(d.ip_address, d.failures_in_window, d.first_at, d.last_at, totals.c.total,
                           totals.c.users)
                 .join_from(densest, totals, totals.c.ip_address == d.ip_address)
                 .where(d.rank == 1, d.failures_in_window >= sa.bindparam(None, int(min_failures), sa.Integer()))
                 .order_by(d.failures_in_window.desc(), _code_points(d.ip_address)))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    return typed_frame(rows, {"ip_address": "string", "failures_in_window": "Int64", "window_first_at": _UTC_TIME,
                              "window_last_at": _UTC_TIME, "total_failures": "Int64", "users": "Int64"})


def success_after_failures(source: Any, since: object, until: object, window: object = "10min",
                           min_failures: int = 1) -> pd.DataFrame:
    """metrics.success_after_failures: successful logins from an IP with >= min_failures (>= 1)
    failed logins in [success - window, success), with failures_before, first_failure_at and
    failed_users; in time order.

    A range frame (window back to 1 microsecond back, timestamps being whole microseconds)
    counts the failures before each login; only the logins it finds are joined to their
    failures to count distinct users.
    """
    t = _AUDIT
    length = duration(window, "window").floor("us")
    logins = (sa.select(t.c.log_id, t.c.timestamp, t.c.user_id, t.c.ip_address, t.c.success)
              .where(*_in_window(since, until), _is_login(), t.c.ip_address.is_not(None))
              .cte("logins"))
    g = logins.c
    before = sa.FrameClause(_interval(length), _interval(_MICROSECOND),
                            sa.FrameClauseType.PRECEDING, sa.FrameClauseType.PRECEDING)
    failed = sa.not_(g.success)
    counted = sa.select(
        g.log_id, g.timestamp, g.user_id, g.ip_address, g.success,
        sa.func.count().filter(failed).over(partition_by=g.ip_address, order_by=g.timestamp, range_=before)
        .label("failures_before"),
        sa.func.min(g.timestamp).filter(failed).over(partition_by=g.ip_address, order_by=g.timestamp, range_=before)
        .label("first_failure_at"),
    ).subquery("counted")
    c = counted.c
    found = (sa.select(c.log_id, c.timestamp, c.user_id, c.ip_address, c.failures_before, c.first_failure_at)
             .where(c.success, c.failures_before >= sa.bindparam(None, int(min_failures), sa.Integer()))
             .subquery("found"))
    s = found.c
    earlier = logins.alias("earlier")
    e = earlier.c
    statement = (
        sa.select(_id_text(s.log_id), s.timestamp, _id_text(s.user_id), s.ip_address, s.failures_before,
                  s.first_failure_at, sa.func.count(sa.distinct(e.user_id)))
        .join_from(found, earlier, sa.and_(e.ip_address == s.ip_address, sa.not_(e.success),
                                           e.timestamp >= s.timestamp - _interval(length),
                                           e.timestamp < s.timestamp))
        .group_by(s.log_id, s.timestamp, s.user_id, s.ip_address, s.failures_before, s.first_failure_at)
        .order_by(s.timestamp, s.log_id))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    return typed_frame(rows, {"log_id": "string", "timestamp": _UTC_TIME, "user_id": "string",
                              "ip_address": "string", "failures_before": "Int64", "first_failure_at": _UTC_TIME,
                              "failed_users": "Int64"})


def failures_heatmap(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.failures_heatmap: failed logins by UTC hour (rows 0-23) and weekday (columns
    Mon..Sun), the full 24 x 7 grid of Int64 counts."""
    local = sa.func.timezone(_text("UTC"), _AUDIT.c.timestamp)
    hour = sa.cast(sa.extract("hour", local), sa.Integer)
    weekday = sa.cast(sa.extract("isodow", local), sa.Integer) - 1  # Monday 0, as pandas counts
    statement = (sa.select(hour, weekday, sa.func.count()).where(*_in_window(since, until), *_failed_login())
                 .group_by(hour, weekday))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    table = pd.DataFrame(0, index=pd.RangeIndex(24, name="hour"), columns=list(WEEKDAYS), dtype="int64")
    table.columns.name = "weekday"
    for h, day, n in rows:
        table.iloc[h, day] = n
    return table.astype("Int64")


def event_type_breakdown(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.event_type_breakdown of every event in the window: per event_type, events,
    successes, failures, failure_share; most events first, then event_type."""
    t = _AUDIT
    events = sa.func.count()
    statement = (sa.select(t.c.event_type, events, sa.func.count().filter(t.c.success),
                           sa.func.count().filter(sa.not_(t.c.success)))
                 .where(*_in_window(since, until)).group_by(t.c.event_type)
                 .order_by(events.desc(), _code_points(t.c.event_type)))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    table = typed_frame(rows, {"event_type": "string", "events": "Int64", "successes": "Int64", "failures": "Int64"})
    table["failure_share"] = nullable_floats(
        [ratio(f, e) for _, e, _, f in rows], table.index, "failure_share")
    return table


# API usage ------------------------------------------------------------------------------------


def api_usage_summary(source: Any, since: object, until: object, api_keys: pd.DataFrame, *, as_of: object,
                      threshold: float = 0.8, idle_days: int = 30, outcomes: RequestOutcomes | None = None,
                      utilization: pd.DataFrame | None = None) -> dict[str, object]:
    """metrics.api_usage_summary: key hygiene of ``api_keys`` (the frame load_api_keys returns)
    as of as_of, request outcomes and key utilization of the window's requests.

    ``outcomes`` and ``utilization``: request_outcomes() and key_utilization() of the same window
    and keys, when the caller has them (their statements are then not run again)."""
    hygiene = key_hygiene(api_keys, as_of, idle_days)
    with _postgresql(source) as connection:
        if outcomes is None:
            outcomes = request_outcomes(connection, since, until)
        if utilization is None:
            utilization = key_utilization(connection, since, until, api_keys)
    return api_usage_summary_from(api_keys, hygiene, outcomes, utilization, threshold)


def request_outcomes(source: Any, since: object, until: object, *,
                     per_key_day: pd.DataFrame | None = None) -> RequestOutcomes:
    """metrics.request_outcomes: requests, errors and rate-limited requests, with their shares.

    ``per_key_day``: requests_per_key_per_day() of the same window, when the caller has it (it
    counts every request, keyed or not): the outcomes are its totals, and no statement runs."""
    if per_key_day is not None:
        requests, errors, limited = (int(per_key_day[name].sum()) for name in ("requests", "errors", "rate_limited"))
    else:
        r = _requests(since, until).c
        statement = sa.select(sa.func.count(), sa.func.count().filter(r.error),
                              sa.func.count().filter(r.rate_limited))
        with _postgresql(source) as connection:
            requests, errors, limited = connection.execute(statement).one()
    return RequestOutcomes(requests, errors, ratio(errors, requests), limited, ratio(limited, requests))


def requests_per_key_per_day(source: Any, since: object, until: object) -> pd.DataFrame:
    """metrics.requests_per_key_per_day: requests, errors, rate_limited per (UTC day,
    api_key_id), the pairs with requests only; by day, then api_key_id (no key last)."""
    r = _requests(since, until).c
    day = _utc_floor("day", r.timestamp)
    statement = (sa.select(day, r.api_key_id, sa.func.count(), sa.func.count().filter(r.error),
                           sa.func.count().filter(r.rate_limited))
                 .group_by(day, r.api_key_id).order_by(day, _code_points(r.api_key_id)))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    return typed_frame(rows, PER_KEY_DAY_DTYPES)


def top_endpoints(source: Any, since: object, until: object, n: int = 10) -> pd.DataFrame:
    """metrics.top_endpoints: the n (>= 0) endpoints with most requests, ranked by requests,
    then method and resource (missing last); method, resource, requests, errors, error_share,
    rate_limited."""
    if n < 0:
        raise ValueError(f"n must be 0 or more endpoints, got {n}")
    r = _requests(since, until).c
    requests = sa.func.count()
    statement = (sa.select(r.method, r.resource, requests, sa.func.count().filter(r.error),
                           sa.func.count().filter(r.rate_limited))
                 .group_by(r.method, r.resource)
                 .order_by(requests.desc(), _code_points(r.method), _code_points(r.resource))
                 .limit(sa.bindparam(None, int(n), sa.Integer())))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    table = typed_frame(rows, {"method": "string", "resource": "string", "requests": "Int64", "errors": "Int64",
                               "rate_limited": "Int64"})
    table.insert(4, "error_share", nullable_floats([ratio(e, q) for _, _, q, e, _ in rows], table.index,
                                                   "error_share"))
    return table


def key_utilization(source: Any, since: object, until: object, api_keys: pd.DataFrame) -> pd.DataFrame:
    """metrics.key_utilization: per key of ``api_keys`` (the frame load_api_keys returns) and per
    api_key_id seen in the window's requests, requests, peak_requests_per_minute (most requests
    in one UTC calendar minute; the earliest such minute is peak_minute) and utilization = peak /
    rate_limit (NA without a positive rate_limit); by key_id."""
    r = _requests(since, until).c
    minute = _utc_floor("minute", r.timestamp)
    per_minute = (sa.select(r.api_key_id, minute.label("minute"), sa.func.count().label("n"))
                  .where(r.api_key_id.is_not(None)).group_by(r.api_key_id, minute).subquery("per_minute"))
    m = per_minute.c
    # The peak minute has the largest [requests, -epoch]: most requests, the earliest among equals.
    peak = sa.func.max(postgresql.array([sa.cast(m.n, sa.Numeric), -sa.extract("epoch", m.minute)]))
    per_key = (sa.select(m.api_key_id, sa.func.sum(m.n).label("total"), peak.label("peak"))
               .group_by(m.api_key_id).subquery("per_key"))
    k = per_key.c
    statement = sa.select(k.api_key_id, sa.cast(k.total, sa.BigInteger), sa.cast(k.peak[1], sa.BigInteger),
                          sa.func.to_timestamp(-k.peak[2], type_=sa.DateTime(timezone=True)))
    with _postgresql(source) as connection:
        peaks = {key: (total, peak, at) for key, total, peak, at in connection.execute(statement)}
    return key_utilization_table(api_keys, peaks)


def keys_near_limit(source: Any, since: object, until: object, api_keys: pd.DataFrame,
                    threshold: float = 0.8, *, utilization: pd.DataFrame | None = None) -> pd.DataFrame:
    """metrics.keys_near_limit: key_utilization() rows with utilization >= threshold, highest
    utilization first, then key_id (``utilization``: key_utilization() of the same window and
    keys, when the caller has it)."""
    table = key_utilization(source, since, until, api_keys) if utilization is None else utilization
    near = table[(table["utilization"] >= threshold).fillna(False).to_numpy(dtype=bool)]
    return near.sort_values(["utilization", "key_id"], ascending=[False, True],
                            kind="mergesort").reset_index(drop=True)


# SQL building blocks --------------------------------------------------------------------------


@contextmanager
def _postgresql(source: Any) -> Iterator[Connection]:
    with read_connection(source) as connection:
        backend = backend_of(connection)
        if backend != "postgresql":
            raise PushdownUnavailable(
                f"the audit aggregates are computed in PostgreSQL; this source is {backend}: "
                "load the audit rows and use shivx_analytics.metrics instead")
        yield connection


def _in_window(since: object, until: object) -> list[sa.ColumnElement[bool]]:
    """since <= timestamp < until as plain bound timestamps (the planner prunes partitions by them)."""
    return [_AUDIT.c.timestamp >= instant(since, "since"), _AUDIT.c.timestamp < instant(until, "until")]


def _interval(length: pd.Timedelta) -> sa.BindParameter:
    return sa.bindparam(None, length.to_pytimedelta(), type_=sa.Interval())


def _text(value: str) -> sa.BindParameter:
    return sa.bindparam(None, value, type_=sa.String())


def _is_login() -> sa.ColumnElement[bool]:
    return (_AUDIT.c.event_type == _text("authentication")) & (_AUDIT.c.action == _text("login"))


def _failed_login() -> list[sa.ColumnElement[bool]]:
    return [_is_login(), sa.not_(_AUDIT.c.success)]


def _utc_floor(unit: str, moment: sa.ColumnElement) -> sa.ColumnElement[datetime]:
    """The start of the UTC calendar day or minute of a timestamptz, as a timestamptz."""
    utc = _text("UTC")
    return sa.func.timezone(utc, sa.func.date_trunc(_text(unit), sa.func.timezone(utc, moment)),
                            type_=sa.DateTime(timezone=True))


def _id_text(column: sa.ColumnElement) -> sa.ColumnElement[str]:
    """A UUID as the frames show it: dashed lowercase text (NULL stays NULL)."""
    return sa.cast(column, sa.Text)


def _code_points(column: sa.ColumnElement) -> sa.ColumnElement:
    """Ascending by code point (pandas' order of strings), missing values last."""
    return sa.cast(column, sa.Text).collate("C").asc().nulls_last()


def _failures_by(source: Any, since: object, until: object, key: sa.Column, distinct: sa.Column,
                 key_name: str, distinct_name: str) -> pd.DataFrame:
    t = _AUDIT
    key_text = sa.cast(key, sa.Text)
    failures = sa.func.count()
    statement = (sa.select(key_text, failures, sa.func.count(sa.distinct(distinct)), sa.func.min(t.c.timestamp),
                           sa.func.max(t.c.timestamp))
                 .where(*_in_window(since, until), *_failed_login()).group_by(key_text)
                 .order_by(failures.desc(), _code_points(key_text)))
    with _postgresql(source) as connection:
        rows = connection.execute(statement).all()
    dtypes = {key_name: "string", "failures": "Int64", distinct_name: "Int64", "first_at": _UTC_TIME,
              "last_at": _UTC_TIME}
    return typed_frame(rows, dtypes)


def _requests(since: object, until: object) -> sa.Subquery:
    """The window's api_request events: timestamp, method, resource, api_key_id, error,
    rate_limited, with details read as the loader reads them."""
    t = _AUDIT
    details = t.c.details
    status = details["status_code"]
    status_text = status.as_string()
    status_kind = sa.func.jsonb_typeof(status)
    status_number = sa.cast(status, sa.Numeric)
    # An integer (no fraction) or a string of digits; nested CASEs, as PostgreSQL may evaluate
    # the operands of AND in any order and a jsonb string does not cast to numeric.
    status_code = sa.case(
        (status_kind == _text("number"),
         sa.case((sa.func.scale(status_number) == sa.bindparam(None, 0, sa.Integer()), status_number))),
        (status_kind == _text("string"),
         sa.case((status_text.regexp_match(_text(r"^\s*-?[0-9]+\s*$")), sa.cast(status_text, sa.Numeric)))),
    )
    error = sa.func.coalesce(status_code >= sa.bindparam(None, 400, sa.Integer()), sa.false())
    rate_limited = sa.func.coalesce(
        (details["reason"].as_string() == _text("rate_limited"))
        | (status_code == sa.bindparam(None, 429, sa.Integer())), sa.false())
    return (sa.select(t.c.timestamp, t.c.action.label("method"), t.c.resource,
                      details["key_id"].as_string().label("api_key_id"),
                      error.label("error"), rate_limited.label("rate_limited"))
            .where(*_in_window(since, until), t.c.event_type == _text("api_request"))
            .subquery("requests"))
