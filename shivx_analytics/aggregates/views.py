"""The materialized views of migration 0005 (PostgreSQL): refreshing and reading them, and
telling whether they are stale.

A view is as fresh as its last refresh (``refresh_views``, ``shivx-analytics db refresh-views``;
the demo generator refreshes them after seeding). Reports read them only when asked
(``use_views=True`` or SHIVX_USE_VIEWS=true). Every refresh records, in the database, when it
ran and how far the rows it summarises were written (the view's comment: ``refresh_record``); a
report checks whether a row of its window was written since (``view_freshness``) and bypasses a
stale view (docs/operations.md, "Stale views are bypassed").
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics.metrics._common import MONEY_TOTAL, quantize, typed_frame
from shivx_analytics.models import PositionStatus, metadata
from shivx_analytics.sources import Source, write_transaction

from ._common import read_connection, split_days

VIEW_NAMES = ("mv_daily_trading_performance", "mv_daily_api_key_usage", "mv_user_statistics")
REFRESH_RECORD = "shivx refresh "  # the comment refresh_in writes on a view starts with this

USER_STATISTICS_DTYPES: dict[str, Any] = {
    "user_id": "string", "username": "string", "is_active": "boolean",
    "positions": "Int64", "open_positions": "Int64", "closed_positions": "Int64",
    "realized_pnl": MONEY_TOTAL, "wins": "Int64", "losses": "Int64",
    "orders": "Int64", "executed_orders": "Int64", "failed_orders": "Int64",
    "executed_notional": MONEY_TOTAL, "first_order_at": "datetime64[us, UTC]",
    "last_order_at": "datetime64[us, UTC]", "api_keys": "Int64", "active_api_keys": "Int64",
    "failed_logins": "Int64",
}


def has_views(connection: Connection) -> bool:
    """Whether the database has the materialized views (PostgreSQL at revision 0005 or later)."""
    if connection.dialect.name != "postgresql":
        return False
    found = connection.execute(sa.text(
        "SELECT count(*) FROM pg_matviews WHERE schemaname = current_schema() AND matviewname = ANY(:names)"),
        {"names": list(VIEW_NAMES)}).scalar_one()
    return found == len(VIEW_NAMES)


def refresh_views(source: Source, *, concurrently: bool = True) -> dict[str, float]:
    """Refresh every materialized view (CONCURRENTLY: readers are not blocked); returns the
    seconds each took. In sources.write_transaction: a URL, None (the primary database) or an
    Engine is refreshed in a transaction of its own, committed here; a Session or a Connection
    in a transaction in the caller's, which the caller commits (a Connection not in one: begun
    and committed here). Raises ValueError on SQLite (no views there)."""
    with write_transaction(source) as connection:
        return _refresh_checked(connection, concurrently)


def _refresh_checked(connection: Connection, concurrently: bool) -> dict[str, float]:
    if connection.dialect.name != "postgresql":
        raise ValueError(f"materialized views exist on PostgreSQL only; this database is {connection.dialect.name}")
    if not has_views(connection):
        raise ValueError("the materialized views are missing: run `shivx-analytics db upgrade` first")
    return refresh_in(connection, concurrently=concurrently)


def refresh_in(connection: Connection, *, concurrently: bool = True) -> dict[str, float]:
    """Refresh the views in the caller's transaction (the demo generator, after seeding), and
    record on each (its comment, in the same transaction) when the refresh began and how far the
    rows it summarises were written, read just before it: the refresh sees at least those rows."""
    seconds = {}
    for name in VIEW_NAMES:
        refreshed_at = connection.exec_driver_sql("SELECT clock_timestamp()").scalar_one()
        written = _written_up_to(connection, name)
        started = time.perf_counter()
        connection.exec_driver_sql(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY ' if concurrently else ''}{name}")
        seconds[name] = time.perf_counter() - started
        record = json.dumps({"refreshed_at": _iso(refreshed_at),
                             "written_up_to": _iso(written) if isinstance(written, datetime) else written})
        literal = (REFRESH_RECORD + record).replace("'", "''")
        connection.exec_driver_sql(f"COMMENT ON MATERIALIZED VIEW {name} IS '{literal}'")
    return seconds


@dataclass(frozen=True)
class _Summarised:
    """The rows a daily view summarises: ``condition`` on their table, ``day_time`` the time that
    puts a row on a day, ``written`` a column that grows with every write (positions.updated_at,
    stamped on insert and by a trigger on every update; the audit log's chain_seq, append-only and
    in commit order)."""

    condition: sa.ColumnElement[bool]
    day_time: sa.ColumnElement[Any]
    written: sa.ColumnElement[Any]


_POSITIONS, _AUDIT = metadata.tables["positions"], metadata.tables["security_audit_logs"]
_SUMMARISED: dict[str, _Summarised] = {  # mv_user_statistics: no report reads it by window
    "mv_daily_trading_performance": _Summarised(
        _POSITIONS.c.status.in_([PositionStatus.CLOSED.value, PositionStatus.LIQUIDATED.value]),
        _POSITIONS.c.closed_at, _POSITIONS.c.updated_at),
    "mv_daily_api_key_usage": _Summarised(_AUDIT.c.event_type == "api_request", _AUDIT.c.timestamp,
                                          _AUDIT.c.chain_seq),
}


def _written_up_to(connection: Connection, name: str) -> datetime | int | None:
    """How far the rows view ``name`` summarises were written: the largest ``written`` of its
    table (None: no row, or a view that records only its refresh time)."""
    summarised = _SUMMARISED.get(name)
    if summarised is None:
        return None
    found = connection.execute(sa.select(sa.func.max(summarised.written))).scalar_one()
    return _utc(found) if isinstance(found, datetime) else found


@dataclass(frozen=True)
class RefreshRecord:
    """What the last refresh_views / refresh_in recorded on a view: when it began, and how far
    the rows it summarises were written (the largest positions.updated_at or audit chain_seq
    then; None: there was none)."""

    refreshed_at: datetime
    written_up_to: datetime | int | None


def refresh_record(connection: Connection, name: str) -> RefreshRecord | None:
    """The refresh recorded on view ``name``; None when none is (a view refreshed before this
    record existed, by hand, or its comment replaced)."""
    comment = connection.execute(sa.text("SELECT obj_description(to_regclass(:name), 'pg_class')"),
                                 {"name": name}).scalar_one()
    if not isinstance(comment, str) or not comment.startswith(REFRESH_RECORD):
        return None
    try:
        fields = json.loads(comment[len(REFRESH_RECORD):])
        refreshed_at = _utc(datetime.fromisoformat(fields["refreshed_at"]))
        written = fields["written_up_to"]
        if isinstance(written, str):
            written = _utc(datetime.fromisoformat(written))
    except (ValueError, KeyError, TypeError):
        return None
    if not (written is None or isinstance(written, (int, datetime))):
        return None
    return RefreshRecord(refreshed_at, written)


@dataclass(frozen=True)
class ViewFreshness:
    """Whether view ``view`` still holds every row of the whole UTC days a report reads from it
    (``read``: the window has such days): stale when no refresh is recorded, or when a row of
    those days was written after the refresh (``written_since``: its positions.updated_at or
    chain_seq is beyond the recorded one)."""

    view: str
    record: RefreshRecord | None
    read: bool
    written_since: bool

    @property
    def stale(self) -> bool:
        return self.read and (self.record is None or self.written_since)

    def describe(self) -> str:
        """One sentence for a report's notes."""
        if self.record is None:
            return f"{self.view} has no recorded refresh"
        if not self.written_since:
            return f"{self.view} was refreshed at {_iso(self.record.refreshed_at)}"
        return f"{self.view} was refreshed at {_iso(self.record.refreshed_at)}, rows of the window were written since"


def view_freshness(connection: Connection, name: str, since: object, until: object) -> ViewFreshness:
    """Whether view ``name`` is fresh for the whole UTC days of [since, until), the days a report
    reads from it (split_days; the partial days come from the tables): one EXISTS over the rows
    of those days written after the refresh."""
    summarised = _SUMMARISED.get(name)
    if summarised is None:
        raise ValueError(f"no report reads {name!r} by window; the daily views are {', '.join(_SUMMARISED)}")
    record = refresh_record(connection, name)
    split = split_days(since, until)
    if record is None or not split.whole_days:
        return ViewFreshness(name, record, split.whole_days, False)
    conditions = [summarised.condition,
                  summarised.day_time >= sa.bindparam(None, _midnight(split.first_day), type_=sa.DateTime(timezone=True)),
                  summarised.day_time < sa.bindparam(None, _midnight(split.end_day), type_=sa.DateTime(timezone=True))]
    if record.written_up_to is not None:
        conditions.append(summarised.written > sa.bindparam(None, record.written_up_to,
                                                             type_=summarised.written.type))
    written_since = connection.execute(sa.select(sa.exists().where(*conditions))).scalar_one()
    return ViewFreshness(name, record, True, bool(written_since))


def _midnight(day: date) -> datetime:
    return pd.Timestamp(day, tz="UTC").to_pydatetime()


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _iso(moment: datetime) -> str:
    return _utc(moment).isoformat()


def load_user_statistics(source: Any) -> pd.DataFrame:
    """mv_user_statistics as a typed frame, ordered by user_id (see migration 0005 for the columns)."""
    with read_connection(source) as connection:
        if connection.dialect.name != "postgresql":
            raise ValueError(f"materialized views exist on PostgreSQL only; this database is {connection.dialect.name}")
        rows = connection.execute(sa.text(
            f"SELECT {', '.join(USER_STATISTICS_DTYPES)} FROM mv_user_statistics ORDER BY user_id::text")).all()
    return user_statistics_frame(rows)


def user_statistics_frame(rows: Sequence[Sequence[Any]]) -> pd.DataFrame:
    """The user statistics frame from row tuples in USER_STATISTICS_DTYPES order (ids as
    dashed text, money quantized to 8 places as the metrics give it)."""
    money = [i for i, dtype in enumerate(USER_STATISTICS_DTYPES.values()) if dtype is MONEY_TOTAL]

    def typed(row: Sequence[Any]) -> tuple[Any, ...]:
        values = list(row)
        values[0] = str(values[0])
        for i in money:
            values[i] = quantize(values[i])
        return tuple(values)

    return typed_frame([typed(row) for row in rows], USER_STATISTICS_DTYPES)


def requests_per_key_per_day_from_view(connection: Connection, since: object, until: object) -> pd.DataFrame:
    """metrics.requests_per_key_per_day from mv_daily_api_key_usage for the whole UTC days of
    [since, until), and from the audit log for a day the window covers in part: the same table
    as the direct path (by day, then api_key_id in code-point order, no key last)."""
    from .audit import PER_KEY_DAY_DTYPES, requests_per_key_per_day

    split = split_days(since, until)
    parts = [requests_per_key_per_day(connection, start, stop) for start, stop in split.partial]
    if split.whole_days:
        view = sa.table("mv_daily_api_key_usage", sa.column("day", sa.Date()), sa.column("api_key_id", sa.String()),
                        sa.column("requests"), sa.column("errors"), sa.column("rate_limited"))
        rows: Sequence[Any] = connection.execute(sa.select(view).where(view.c.day >= split.first_day,
                                                                       view.c.day < split.end_day)).all()
        days = [(datetime.combine(day, datetime.min.time(), timezone.utc), *rest) for day, *rest in rows]
        parts.append(typed_frame(days, PER_KEY_DAY_DTYPES))
    table = pd.concat(parts, ignore_index=True) if parts else typed_frame([], PER_KEY_DAY_DTYPES)
    table = table.astype(PER_KEY_DAY_DTYPES)
    return table.sort_values(["day", "api_key_id"], na_position="last", kind="mergesort").reset_index(drop=True)
