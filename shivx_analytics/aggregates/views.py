"""The materialized views of migration 0005 (PostgreSQL): refreshing and reading them.

A view is as fresh as its last refresh (``refresh_views``, ``shivx-analytics db refresh-views``;
the demo generator refreshes them after seeding). Reports read them only when asked
(``use_views=True`` or SHIVX_USE_VIEWS=true) and then equal the direct path as long as the
tables did not change since the refresh.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics.metrics._common import MONEY_TOTAL, quantize, typed_frame
from shivx_analytics.sources import Source, write_transaction

from ._common import read_connection, split_days

VIEW_NAMES = ("mv_daily_trading_performance", "mv_daily_api_key_usage", "mv_user_statistics")

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
    """Refresh the views in the caller's transaction (the demo generator, after seeding)."""
    seconds = {}
    for name in VIEW_NAMES:
        started = time.perf_counter()
        connection.exec_driver_sql(f"REFRESH MATERIALIZED VIEW {'CONCURRENTLY ' if concurrently else ''}{name}")
        seconds[name] = time.perf_counter() - started
    return seconds


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

    def typed(row: Sequence[Any]) -> tuple:
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
