"""Seeding: what the CLI (`seed`, `demo`), notebooks/conftest.py and the tests call.

generate_demo_data checks its arguments (scale, seed, as_of), builds the tables once
(demo/builder.py) and writes them in one transaction (demo/writing.py), retried as a whole on a
serialization failure; parse_scale reads the CLI's --scale; is_seeded and seed_once let several
`shivx-analytics demo` runs share one new SQLite file (a file lock, a check under it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shivx_analytics.aggregates import views
from shivx_analytics.db import create_engine, run_in_transaction
from shivx_analytics.demo.builder import _DemoBuilder
from shivx_analytics.demo.columns import _Table
from shivx_analytics.demo.vocabulary import HISTORY_DAYS, SCALES
from shivx_analytics.demo.writing import (
    TABLE_ORDER,
    _partitions_for,
    _refuse_unless_empty,
    _write_tables,
)
from shivx_analytics.domain.window import instant
from shivx_analytics.models.audit_chain import lock_chain, store_tip
from shivx_analytics.sources import write_transaction

MIN_ORDERS = 20
# The generated times reach back HISTORY_DAYS + 181 days before as_of (accounts created before
# the window) and 365 days after it (API-key expiries): as_of keeps all of them within the
# years 1-9999 that datetimes, the loaders and both databases share.
EARLIEST_DAYS_BEFORE_AS_OF = HISTORY_DAYS + 181
LATEST_DAYS_AFTER_AS_OF = 365
AS_OF_EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(days=EARLIEST_DAYS_BEFORE_AS_OF + 1)
AS_OF_LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc) - timedelta(days=LATEST_DAYS_AFTER_AS_OF + 1)


def generate_demo_data(source: Any, *, seed: int = 0, scale: str | int = "small",
                       as_of: datetime | date | str | None = None, progress: bool = False) -> dict[str, int]:
    """Fill an empty, migrated database with the demo dataset; returns the row count per table.

    ``source``: Engine, Connection, Session or URL. With an Engine or URL (or a Connection not in
    a transaction) the rows are committed here; with a Session or a Connection already in a
    transaction they are written in the caller's transaction, which the caller commits.
    ``scale``: "small" (2k orders), "medium" (100k), "large" (1M) or a number of orders; audit
    rows are about 2.5 per order. Raises ValueError if the database already holds rows.
    """
    n_orders = _orders_for(scale)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    as_of_time = _resolve_as_of(as_of)
    built: list[_Table] = []

    def write(connection: Connection) -> None:
        if connection.dialect.name not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {connection.dialect.name!r}: use SQLite or PostgreSQL")
        _refuse_unless_empty(connection)
        if not built:  # once, even if the transaction is retried
            built.extend(_DemoBuilder(int(seed), n_orders, as_of_time).build())
        chained = [table.chain for table in built if table.chain is not None]
        for chain in chained:  # audit rows link to the chain's tip, locked until the transaction ends
            chain.restart(lock_chain(connection))
        _partitions_for(connection, built)
        _write_tables(connection, built, progress=progress)
        for chain in chained:
            store_tip(connection, chain.tip)
        if connection.dialect.name == "postgresql":  # the planner's statistics describe the new rows
            connection.exec_driver_sql(f"ANALYZE {', '.join(TABLE_ORDER)}")
        if views.has_views(connection):  # PostgreSQL: the materialized views show the new rows
            views.refresh_in(connection, concurrently=False)

    if isinstance(source, (Engine, str, sa.URL)):
        # our own transaction: retried on a serialization failure or deadlock, all or nothing
        engine = source if isinstance(source, Engine) else create_engine(source)
        try:
            run_in_transaction(engine, write)
        finally:
            if engine is not source:
                engine.dispose()
    else:
        with write_transaction(source) as connection:
            write(connection)
    return {table.name: table.n_rows for table in built}


def _orders_for(scale: str | int) -> int:
    if isinstance(scale, str) and scale.strip().isdecimal():  # not isdigit: int("²") fails
        scale = int(scale.strip())
    if isinstance(scale, str) and scale in SCALES:
        return SCALES[scale]
    if isinstance(scale, (int, np.integer)) and not isinstance(scale, bool) and scale >= MIN_ORDERS:
        return int(scale)
    raise ValueError(f"scale must be one of {sorted(SCALES)} or a number of orders >= {MIN_ORDERS}, got {scale!r}")


def _resolve_as_of(as_of: datetime | date | str | None) -> datetime:
    """as_of as an aware UTC datetime (domain.window.instant: naive means UTC); default: the
    start of the current UTC day, so a day's seeds are identical."""
    if as_of is None:
        return datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    try:
        resolved: datetime | None = instant(as_of, "as_of")
    except ValueError as exc:  # an offset that moves it out of the years 1-9999: out of range too
        if "outside the years" not in str(exc):
            raise
        resolved = None
    if resolved is None or not AS_OF_EARLIEST <= resolved <= AS_OF_LATEST:
        raise ValueError(f"as_of (--as-of) {as_of!s} is outside the range the demo can generate: "
                         f"{AS_OF_EARLIEST.date().isoformat()} to {AS_OF_LATEST.date().isoformat()} UTC (its history "
                         f"starts up to {EARLIEST_DAYS_BEFORE_AS_OF} days before as_of, API keys expire up to "
                         f"{LATEST_DAYS_AFTER_AS_OF} days after)")
    return resolved


def parse_scale(scale: str | int) -> str | int:
    """``scale`` as generate_demo_data accepts it ("small", "medium", "large" or a number of orders)."""
    _orders_for(scale)
    if isinstance(scale, str) and scale.strip().isdecimal():  # not isdigit: int("²") fails
        return int(scale.strip())
    return scale


def is_seeded(source: Any) -> bool:
    """True if the database already holds orders, positions or users (generate_demo_data would refuse)."""
    with write_transaction(source) as connection:
        try:
            _refuse_unless_empty(connection)
        except ValueError as exc:
            if "run the migrations" in str(exc):
                raise
            return True
    return False


def seed_once(url: str, *, seed: int = 0, scale: str | int = "small", as_of: datetime | date | str | None = None,
              progress: bool = False) -> bool:
    """Migrate ``url`` and fill it with the demo unless it already holds rows; True if it seeded.

    The first run of `shivx-analytics demo` on a new file: several at once (cron, a few
    terminals) each migrated and seeded the same file, and all but one failed (a migration or
    a seed racing another). For a SQLite file an exclusive lock on a file next to it
    (``<database>.lock``) makes the runs take turns, and each checks again under the lock: the
    first seeds, the others find it seeded.
    """
    from shivx_analytics.db import database_path, migrate

    _resolve_as_of(as_of)  # a bad as_of is refused before any file or lock is made
    path = database_path(url)
    with _exclusive_lock(path.with_name(path.name + ".lock")) if path is not None else suppress():
        migrate(url)
        if is_seeded(url):
            return False
        generate_demo_data(url, seed=seed, scale=scale, as_of=as_of, progress=progress)
        return True


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (flock) on ``lock_path``, held until the block ends."""
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
