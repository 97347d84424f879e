"""What the push-down functions share: the connection they read through (sources.read_connection,
one snapshot), the choice between the pandas path and PostgreSQL, and SQL twins of the formulas
the frames compute in Arrow.

The push-down functions return exactly what the metrics functions return from loaded frames
(same index, columns and dtypes; money exact). Floats that PostgreSQL computes from exact
NUMERIC sums (means) can differ from numpy's in the last bits; tests compare them to 1e-12.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics.config import get_settings
from shivx_analytics.metrics._common import timestamp
from shivx_analytics.sources import read_connection

__all__ = ["PATHS", "PushdownUnavailable", "read_connection", "backend_of", "estimated_rows", "choose_path",
           "instant", "money", "utc_date", "DaySplit", "split_days"]

PATHS = ("pandas", "pushdown", "views")


class PushdownUnavailable(ValueError):
    """Push-down (or the materialized views) was asked for on a database that cannot do it."""


def backend_of(connection: Connection) -> str:
    return connection.dialect.name


def estimated_rows(connection: Connection, statement: sa.Select) -> int:
    """The planner's estimate of the rows ``statement`` returns (PostgreSQL; no rows are read).
    Bound values must be plain driver values (bindparams of sa.DateTime, sa.Uuid, sa.String)."""
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    return int(plan[0]["Plan"]["Plan Rows"])


def choose_path(connection: Connection, *, pushdown: bool | None, use_views: bool | None,
                window_rows: sa.Select | None, views: bool = False) -> str:
    """'pandas', 'pushdown' or 'views' for one report.

    pushdown / use_views: True or False decide; None takes Settings (SHIVX_PUSHDOWN: auto,
    always, never; SHIVX_USE_VIEWS). Views win over push-down when a report has views
    (``views``) and they are asked for. auto pushes down on PostgreSQL when the planner
    estimates at least Settings.pushdown_min_rows rows for ``window_rows`` (a SELECT of the
    report's window on its main table). On SQLite an explicit request is an error.
    """
    settings = get_settings()
    backend = backend_of(connection)
    want_views = settings.use_views if use_views is None else bool(use_views)
    if use_views and not views:
        raise PushdownUnavailable("this report has no materialized views: pass use_views=False")
    if want_views and views:
        if backend != "postgresql":
            if use_views:
                raise PushdownUnavailable(
                    f"the materialized views exist on PostgreSQL only; this source is {backend}: "
                    "pass use_views=False")
        else:
            return "views"
    if pushdown is None:
        if settings.pushdown == "never" or backend != "postgresql":
            return "pandas"
        if settings.pushdown == "always":
            return "pushdown"
        if window_rows is None:
            return "pandas"
        return "pushdown" if estimated_rows(connection, window_rows) >= settings.pushdown_min_rows else "pandas"
    if not pushdown:
        return "pandas"
    if backend != "postgresql":
        raise PushdownUnavailable(
            f"push-down computes aggregates in PostgreSQL; this source is {backend}: pass pushdown=False")
    return "pushdown"


def instant(value: object, name: str) -> sa.BindParameter:
    """A window bound as a plain bound timestamptz (the planner prunes partitions by it). Stored
    times are whole microseconds, so a bound with nanoseconds is rounded up, as the loaders do."""
    return sa.bindparam(None, timestamp(value, name).ceil("us").to_pydatetime(), type_=sa.DateTime(timezone=True))


def money(expression: sa.ColumnElement) -> sa.ColumnElement:
    """SQL twin of the frames' money rounding: exact NUMERIC rounded half to even to 8 places
    (the function shivx_round_half_even, created by migration 0004 on PostgreSQL)."""
    return sa.func.shivx_round_half_even(expression, 8, type_=sa.Numeric(38, 8))


def utc_date(column: sa.ColumnElement) -> sa.ColumnElement:
    """The UTC calendar day of a timestamptz column, whatever the session's TimeZone."""
    return sa.cast(sa.func.timezone("UTC", column), sa.Date)


@dataclass(frozen=True)
class DaySplit:
    """[since, until) as the whole UTC days a daily view answers, [first_day, end_day), and the
    parts of the window outside them, which the tables answer."""

    first_day: date
    end_day: date
    partial: list[tuple[pd.Timestamp, pd.Timestamp]]

    @property
    def whole_days(self) -> bool:
        return self.first_day < self.end_day


def split_days(since: object, until: object) -> DaySplit:
    since_ts, until_ts = timestamp(since, "since"), timestamp(until, "until")
    if until_ts <= since_ts:
        return DaySplit(since_ts.date(), since_ts.date(), [])
    first, end = since_ts.ceil("D"), until_ts.floor("D")
    if first >= end:  # no whole day: all of it is partial
        return DaySplit(first.date(), first.date(), [(since_ts, until_ts)])
    partial = []
    if since_ts < first:
        partial.append((since_ts, first))
    if end < until_ts:
        partial.append((end, until_ts))
    return DaySplit(first.date(), end.date(), partial)
