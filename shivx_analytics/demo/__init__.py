"""The deterministic demo dataset: users, API keys, positions, orders and security audit events.

    import shivx_analytics as sx
    sx.migrate("sqlite:///demo.db")
    sx.generate_demo_data("sqlite:///demo.db", seed=0, scale="small", as_of="2025-10-28")

The same ``seed``, ``scale`` and ``as_of`` give identical rows, ids and timestamps included, on
SQLite and PostgreSQL. Everything happens in the 90 days before ``as_of``, which defaults to the
start of the current UTC day: pass ``as_of`` for output that is stable from day to day.

What the data promise (DESIGN.md semantics, checked by tests/test_demo.py):

- Every position has its executed buy order (position_id set) whose executed price is exactly
  the entry price; every closed or liquidated position has its executed sell order whose executed
  price is exactly the exit price (current_price). Sizes and prices are chosen so that
  size x price has at most 8 decimals, so amounts are exact products and nothing is rounded.
- A (user, token) holds one position at a time, so the FIFO ledger of executed orders matches
  the positions: realized P&L from the orders equals the sum of the closed positions' pnl exactly.
  Every executed order belongs to a position; failed, cancelled and pending orders have none.
- slippage_actual = calculate_slippage(expected_out(...), amount_out) from the order model.
- Users' failed_login_attempts, locked_until and last_login replay their authentication events;
  API keys' requests_count and last_used_at count their accepted api_request events (status not
  401/429). Orders placed with an API key appear as ``api_request POST /api/v1/orders``; orders
  placed in the web app appear as ``trading`` events (order_create, order_execute, position_close).
- Every user's password is DEMO_PASSWORD. PBKDF2 at 600,000 iterations costs ~0.2 s per hash, so
  users share a small pool of deterministic salts (a few users carry the legacy ``hash:salt``
  form, which verifies and asks for a re-hash): identical hashes across users are expected here.

Rows are written with the driver's bulk path (sqlite3 executemany, PostgreSQL COPY) as the exact
text the column types in types.py produce, all tables in one transaction.
The audit rows form a valid hash chain (models/audit_chain.py): chain_seq, prev_hash and row_hash
are computed in Python as the batches are formatted, from the chain's tip (locked for the
transaction), and the tip in security_audit_chain is moved to the last row at the end.
"""

from __future__ import annotations

import hashlib
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from decimal import Decimal
from functools import lru_cache
from typing import Any

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import partitions, security
from shivx_analytics.aggregates import views
from shivx_analytics.db import create_engine, run_in_transaction
from shivx_analytics.domain.window import instant
from shivx_analytics.models import (
    APIKey, Order, OrderAction, Position, SecurityAuditLog, User, calculate_slippage, expected_out,
)
from shivx_analytics.models.audit_chain import CHAIN_TABLE, ChainTip, lock_chain, store_tip

__all__ = ["generate_demo_data", "parse_scale", "is_seeded", "seed_once", "SCALES", "DEMO_PASSWORD", "HISTORY_DAYS"]

SCALES = {"small": 2_000, "medium": 100_000, "large": 1_000_000}  # orders
MIN_ORDERS = 20
HISTORY_DAYS = 90
# The generated times reach back HISTORY_DAYS + 181 days before as_of (accounts created before
# the window) and 365 days after it (API-key expiries): as_of keeps all of them within the
# years 1-9999 that datetimes, the loaders and both databases share.
EARLIEST_DAYS_BEFORE_AS_OF = HISTORY_DAYS + 181
LATEST_DAYS_AFTER_AS_OF = 365
AS_OF_EARLIEST = datetime(1, 1, 1, tzinfo=timezone.utc) + timedelta(days=EARLIEST_DAYS_BEFORE_AS_OF + 1)
AS_OF_LATEST = datetime(9999, 12, 31, tzinfo=timezone.utc) - timedelta(days=LATEST_DAYS_AFTER_AS_OF + 1)
AUDIT_ROWS_PER_ORDER = 2.5
MAX_USERS = 500
DEMO_PASSWORD = "shivx-demo-password"
PASSWORD_SALT_POOL = 4
LEGACY_PASSWORD_USERS = 2
BATCH_ROWS = 20_000
SQLITE_BULK_CACHE_KIB = 512 * 1024  # page cache while loading (SQLite allocates it as needed)

TABLE_ORDER = ("users", "api_keys", "positions", "orders", "security_audit_logs")
_MODELS = {"users": User, "api_keys": APIKey, "positions": Position, "orders": Order,
           "security_audit_logs": SecurityAuditLog}


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
        with _transaction(source) as connection:
            write(connection)
    return {table.name: table.n_rows for table in built}


def _partitions_for(connection: Connection, tables: Sequence[_Table]) -> None:
    """PostgreSQL: the audit log's monthly partitions for the months the rows fall in."""
    for table in tables:
        times = table.columns.get("timestamp") if table.name == "security_audit_logs" else None
        if times is not None and table.n_rows:
            known = times.micros[times.micros != NULL_TIME]
            epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
            first, last = (epoch + timedelta(microseconds=int(v)) for v in (known.min(), known.max()))
            partitions.ensure_covering(connection, first, last)


# Arguments


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


# Connections and the transaction


@contextmanager
def _transaction(source: Any) -> Iterator[Connection]:
    """A Connection inside a transaction that is rolled back if anything fails."""
    if isinstance(source, Session):
        yield source.connection()  # the session's transaction; the caller commits
    elif isinstance(source, Connection):
        if source.in_transaction():
            yield source
        else:
            with source.begin():
                yield source
    elif isinstance(source, Engine):
        with source.begin() as connection:
            yield connection
    elif isinstance(source, (str, sa.URL)):
        engine = create_engine(source)
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()
    else:
        raise ValueError(f"source must be an Engine, Connection, Session or URL, not {type(source).__name__}")


def _refuse_unless_empty(connection: Connection) -> None:
    inspector = sa.inspect(connection)
    missing = [name for name in (*TABLE_ORDER, CHAIN_TABLE) if not inspector.has_table(name)]
    if missing:
        raise ValueError(f"the database has no {', '.join(missing)} table(s): run the migrations first "
                         "(sx.migrate(url) or `shivx-analytics db upgrade`)")
    held = {}
    for name in ("orders", "positions", "users", "api_keys", "security_audit_logs"):
        count = connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        if count:
            held[name] = count
    if held:
        listing = ", ".join(f"{count:,} {name}" for name, count in held.items())
        raise ValueError(f"database already holds {listing}; seed an empty database (a new one, or downgrade "
                         "and upgrade the migrations to empty this one)")


# Writing


@dataclass
class _Table:
    """A table as columns (each formats a slice of rows for a dialect)."""

    name: str
    n_rows: int
    columns: dict[str, "_Column"]
    chain: "_AuditChain | None" = None  # the audit log's hash chain, linked as its rows are formatted

    def rows(self, start: int, stop: int, dialect: str) -> list[tuple]:
        return list(zip(*(column.values(start, stop, dialect) for column in self.columns.values())))


def _write_tables(connection: Connection, tables: Sequence[_Table], *, progress: bool) -> None:
    from tqdm import tqdm

    dialect = connection.dialect.name
    for table in tables:
        _check_columns(table)
    with _bulk_load_settings(connection), \
            tqdm(total=sum(t.n_rows for t in tables), unit="rows", unit_scale=True, file=sys.stderr,
                 disable=not progress, desc="demo data") as bar:
        for table in tables:
            bar.set_description(table.name)
            with _indexes_rebuilt(connection, table.name):
                for start in range(0, table.n_rows, BATCH_ROWS):
                    stop = min(table.n_rows, start + BATCH_ROWS)
                    _insert_rows(connection, table.name, list(table.columns), table.rows(start, stop, dialect))
                    bar.update(stop - start)


@contextmanager
def _bulk_load_settings(connection: Connection) -> Iterator[None]:
    """SQLite: an explicit transaction and a page cache large enough not to spill mid-transaction."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver_connection = connection.connection.driver_connection
    if not driver_connection.in_transaction:  # sqlite3 would otherwise autocommit the index DDL
        driver_connection.execute("BEGIN")
    (cache_size,) = driver_connection.execute("PRAGMA cache_size").fetchone()
    driver_connection.execute(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")
    try:
        yield
    finally:
        driver_connection.execute(f"PRAGMA cache_size = {int(cache_size)}")


@contextmanager
def _indexes_rebuilt(connection: Connection, table: str) -> Iterator[None]:
    """Bulk load without the table's secondary indexes, then recreate them from their own definitions.

    Building an index over loaded rows is several times faster than updating it row by row.
    Primary keys, unique constraints and unique indexes stay: the audit log's unique
    (chain_seq, timestamp) index serves the chain's triggers, which look up the tip's row on
    every insert (SQLite) or statement (PostgreSQL); without it each lookup scans the table and
    the load grows with the square of the rows. Everything happens inside the transaction.
    """
    if connection.dialect.name == "sqlite":
        definitions = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
            "AND sql NOT LIKE 'CREATE UNIQUE %'",
            (table,)).all()
    else:  # indexes that back no constraint, on a table we own (DROP INDEX needs ownership)
        definitions = connection.exec_driver_sql(
            "SELECT i.indexname, replace(i.indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes i "
            "JOIN pg_tables t ON t.schemaname = i.schemaname AND t.tablename = i.tablename "
            "WHERE i.schemaname = current_schema() AND i.tablename = %(table)s AND i.indexdef NOT LIKE 'CREATE UNIQUE %%' "
            "AND pg_has_role(current_user, t.tableowner, 'USAGE') AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint c WHERE c.conindid = "
            "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)", {"table": table}).all()
    for name, _ in definitions:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    except BaseException:
        with suppress(Exception):  # restores them should the caller commit regardless
            for _, definition in definitions:
                connection.exec_driver_sql(definition)
        raise
    for _, definition in definitions:
        connection.exec_driver_sql(definition)


def _insert_rows(connection: Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Bulk insert pre-formatted rows: executemany on sqlite3, COPY on PostgreSQL."""
    names = ", ".join(f'"{name}"' for name in columns)
    driver_connection = connection.connection.driver_connection
    if connection.dialect.name == "sqlite":
        cursor = driver_connection.cursor()
        try:
            cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)
        finally:
            cursor.close()
        return
    # COPY FROM is refused where row-level security applies (the audit log's policies, forced
    # on its owner too, when the owner is not a superuser): COPY into a temporary copy of the
    # table, then one INSERT ... SELECT, which the policies check like any insert.
    secured = connection.exec_driver_sql("SELECT row_security_active(%(t)s::regclass)", {"t": f'"{table}"'}).scalar_one()
    target = f'"shivx_seed_{table}"' if secured else f'"{table}"'
    with driver_connection.cursor() as cursor:
        if secured:
            cursor.execute(f'CREATE TEMPORARY TABLE {target} (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP')
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if secured:
            cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {target}')
            cursor.execute(f"DROP TABLE {target}")


def _check_columns(table: _Table) -> None:
    """Every column written exists; every column left out may be left out."""
    model_table = _MODELS[table.name].__table__
    unknown = set(table.columns) - set(model_table.columns.keys())
    required = {c.name for c in model_table.columns
                if not c.nullable and c.server_default is None and c.name not in table.columns}
    if unknown or required:
        raise RuntimeError(f"demo data for {table.name} is out of date with the model: "
                           f"unknown columns {sorted(unknown)}, missing required columns {sorted(required)}")


# Columns: each holds compact arrays and formats a slice as the column type stores it


NULL_TIME = np.iinfo(np.int64).min


class _Column:
    def values(self, start: int, stop: int, dialect: str) -> list:
        raise NotImplementedError


@dataclass
class _Ids(_Column):
    """Uuid: 32 lowercase hex digits (sa.Uuid on SQLite; PostgreSQL's uuid input accepts them)."""

    hex_ids: np.ndarray  # S32
    index: np.ndarray | None = None  # rows -> hex_ids; -1 = NULL

    def values(self, start, stop, dialect):
        if self.index is None:
            return self.hex_ids[start:stop].astype("U32").tolist()
        index = self.index[start:stop]
        out = self.hex_ids[np.maximum(index, 0)].astype("U32").astype(object)
        out[index < 0] = None
        return out.tolist()


@dataclass
class _Money(_Column):
    """Money: positive fixed-point integers in units of 10**-scale, as text with exactly scale decimals."""

    units: np.ndarray  # int64; 0 = NULL (money columns hold positive values only)
    scale: int = 8

    def values(self, start, stop, dialect):
        units = self.units[start:stop]
        whole, fraction = np.divmod(units, 10**self.scale)
        pattern = f"{{}}.{{:0{self.scale}d}}"
        return [pattern.format(w, f) if u else None
                for u, w, f in zip(units.tolist(), whole.tolist(), fraction.tolist())]


@dataclass
class _Times(_Column):
    """UTCDateTime: 'YYYY-MM-DD HH:MM:SS.ffffff' naive UTC on SQLite, with '+00' for PostgreSQL."""

    micros: np.ndarray  # int64 microseconds since the epoch; NULL_TIME = NULL

    def values(self, start, stop, dialect):
        micros = self.micros[start:stop]
        null = micros == NULL_TIME
        text = np.datetime_as_string(np.where(null, 0, micros).astype("datetime64[us]"), unit="us")
        chars = np.ascontiguousarray(text.astype("S26")).view(np.uint8).reshape(-1, 26).copy()
        chars[:, 10] = ord(" ")
        if dialect == "postgresql":
            chars = np.hstack([chars, np.frombuffer(b"+00", np.uint8)[None, :].repeat(len(chars), 0)])
        out = chars.view(f"S{chars.shape[1]}").ravel().astype(f"U{chars.shape[1]}").astype(object)
        out[null] = None
        return out.tolist()


@dataclass
class _Codes(_Column):
    """Low-cardinality values (enums, tokens, JSON documents ...) as codes into a list; -1 = NULL."""

    codes: np.ndarray
    categories: Sequence[Any]

    def values(self, start, stop, dialect):
        lookup = np.array(list(self.categories) + [None], dtype=object)
        return lookup[self.codes[start:stop]].tolist()


@dataclass
class _Plain(_Column):
    """Integers, booleans, or a list of ready Python values."""

    data: np.ndarray | list

    def values(self, start, stop, dialect):
        chunk = self.data[start:stop]
        return chunk.tolist() if isinstance(chunk, np.ndarray) else list(chunk)


@dataclass
class _Computed(_Column):
    """Values computed per slice by a function of (start, stop)."""

    compute: Callable[[int, int], list]

    def values(self, start, stop, dialect):
        return self.compute(start, stop)


class _AuditChain:
    """chain_seq, prev_hash and row_hash of the audit rows (models/audit_chain.py), computed in
    Python while the batches are formatted, in order: each row links to the one before it."""

    def __init__(self, content: Callable[[int, int], list[dict[str, Any]]]):
        self.content = content  # (start, stop) -> the hashed fields of those rows
        self.restart(ChainTip())

    def restart(self, tip: ChainTip) -> None:
        self.tip = ChainTip(tip.last_seq, tip.last_hash)
        self._next = 0
        self._last: tuple[int, int, tuple[list, list, list]] | None = None

    def values(self, start: int, stop: int) -> tuple[list, list, list]:
        if self._last is not None and self._last[:2] == (start, stop):
            return self._last[2]
        if start != self._next:
            raise RuntimeError(f"audit rows {start}..{stop} formatted out of order (next is {self._next}): "
                               "the hash chain links each row to the one before")
        link = self.tip.link
        seqs, prevs, hashes = [], [], []
        for entry in self.content(start, stop):
            seq, prev, digest = link(entry)
            seqs.append(seq)
            prevs.append(prev)
            hashes.append(digest)
        self._next = stop
        self._last = (start, stop, (seqs, prevs, hashes))
        return self._last[2]


def _last_slice(compute: Callable[[int, int], list]) -> Callable[[int, int], list]:
    """compute(start, stop), remembering the last slice (a column the chain reads as well)."""
    last: list = [None, None]

    def cached(start: int, stop: int) -> list:
        if last[0] != (start, stop):
            last[:] = [(start, stop), compute(start, stop)]
        return last[1]

    return cached


# The data


SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
PRICE_STEP = 5 * MINUTE

# symbol, USD price when the history starts, annualised volatility, popularity, meme (jumpy, wide tolerance)
TOKENS = (
    ("SOL", 148.0, 0.75, 10.0, False),
    ("BONK", 0.0000221, 1.6, 5.0, True),
    ("WIF", 2.15, 1.7, 5.0, True),
    ("JUP", 0.86, 1.1, 4.0, False),
    ("RAY", 3.45, 1.1, 3.0, False),
    ("ORCA", 3.05, 1.0, 1.5, False),
    ("PYTH", 0.36, 1.1, 2.0, False),
    ("JTO", 2.85, 1.1, 2.0, False),
    ("mSOL", 176.0, 0.75, 1.5, False),
    ("JitoSOL", 182.0, 0.75, 2.0, False),
    ("WBTC", 97_800.0, 0.5, 3.0, False),
    ("WETH", 3_380.0, 0.6, 2.5, False),
    ("POPCAT", 1.18, 1.8, 3.0, True),
    ("MEW", 0.0081, 1.8, 2.0, True),
    ("BOME", 0.0094, 1.8, 1.5, True),
    ("RENDER", 7.45, 1.0, 1.5, False),
    ("HNT", 6.2, 1.0, 1.0, False),
    ("W", 0.44, 1.2, 1.0, False),
    ("TNSR", 0.61, 1.3, 0.8, False),
    ("KMNO", 0.088, 1.3, 0.8, False),
)
PRICE_BAND = math.log(4.0)  # prices stay within 1/4 .. 4x of their start (a soft, tanh bound)

# name, edge on the exit price (mean log return), share of positions with stop loss / take profit
STRATEGIES = (
    ("RL Trading (PPO)", 0.004, 0.95),
    ("Momentum Breakout", 0.0015, 0.9),
    ("Mean Reversion", 0.001, 0.9),
    ("Grid Trading", 0.0, 0.5),
    ("DCA", -0.0005, 0.2),
    ("Jupiter Arbitrage", 0.002, 0.3),
    ("Manual", -0.002, 0.6),
)
UNLABELLED_STRATEGY_SHARE = 0.04  # positions with strategy NULL (older clients did not send one)

ROLE_ADMIN, ROLE_TRADER, ROLE_BOT, ROLE_ANALYST = range(4)
ROLE_ROLES = {ROLE_ADMIN: ["admin"], ROLE_TRADER: ["trader"], ROLE_BOT: ["trader", "bot"], ROLE_ANALYST: ["analyst"]}
ROLE_PERMISSIONS = {
    ROLE_ADMIN: {"read": True, "trade": True, "manage_users": True},
    ROLE_TRADER: {"read": True, "trade": True},
    ROLE_BOT: {"read": True, "trade": True},
    ROLE_ANALYST: {"read": True, "export": True},
}
FIRST_NAMES = ("alice", "bilal", "chen", "dmitri", "elena", "farah", "gabriel", "hana", "ivan", "jonas",
               "kofi", "lucia", "mateo", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tariq",
               "uma", "victor", "wen", "ximena", "yusuf", "zara", "arjun", "beatriz", "cyrus", "dalia")
LAST_NAMES = ("nakamura", "okafor", "silva", "kowalski", "haddad", "lindqvist", "moreau", "patel", "rossi",
              "schmidt", "tanaka", "usman", "vargas", "weber", "yilmaz", "zhang", "abara", "brennan",
              "costa", "duarte", "eriksen", "fischer", "garcia", "hoang", "ibrahim", "jensen")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "shivx.io")
BOT_NAMES = ("ppo", "momentum", "meanrev", "grid", "dca", "arb")
KEY_NAMES = {ROLE_ADMIN: ("ops-console", "admin-cli"), ROLE_TRADER: ("trading-bot", "mobile", "tradingview-webhook"),
             ROLE_BOT: ("ppo-agent-prod", "ppo-agent-canary", "executor", "signal-ingest"),
             ROLE_ANALYST: ("jupyter", "grafana-readonly", "backtest")}
RATE_LIMITS = np.array([30, 60, 120, 300, 600, 1200])
RATE_LIMIT_SHARES = np.array([0.15, 0.3, 0.2, 0.15, 0.12, 0.08])

FAILED_REASONS = ("slippage tolerance exceeded", "insufficient SOL for fees", "blockhash expired", "RPC timeout",
                  "insufficient token balance")
FAILED_REASON_SHARES = np.array([0.38, 0.14, 0.2, 0.2, 0.08])
EXTRA_ORDER_SHARE = 0.09  # failed, cancelled and pending orders among all orders
OPEN_POSITION_SHARE = 0.06
LIQUIDATED_SHARE = 0.04
BASE58 = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)

ORDER_TYPES = ("market", "limit", "stop_loss", "take_profit")
MARKET, LIMIT, STOP_LOSS, TAKE_PROFIT = range(4)
ORDER_STATUSES = ("pending", "executed", "failed", "cancelled")
PENDING, EXECUTED, FAILED, CANCELLED = range(4)
POSITION_STATUSES = ("open", "closed", "liquidated")
OPEN, CLOSED, LIQUIDATED = range(3)
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "liquidation")

EVENT_TYPES = ("authentication", "api_request", "api_key", "authorization", "trading", "admin")
AUTHN, API_REQUEST, API_KEY, AUTHZ, TRADING, ADMIN = range(6)
ACTIONS = ("login", "logout", "lockout", "password_change", "GET", "POST", "create", "revoke", "rotate",
           "access_denied", "order_create", "order_execute", "position_close", "user_deactivate")
A = {name: code for code, name in enumerate(ACTIONS)}
RESOURCES = ("/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/password", "/api/v1/orders",
             "/api/v1/positions", "/api/v1/market/prices", "/api/v1/portfolio", "/api/v1/strategies",
             "/api/v1/keys", "/api/v1/admin/users", "/api/v1/admin/audit-logs")
R = {name: code for code, name in enumerate(RESOURCES)}
GET_RESOURCES = np.array([R["/api/v1/positions"], R["/api/v1/orders"], R["/api/v1/market/prices"],
                          R["/api/v1/portfolio"], R["/api/v1/strategies"]])
GET_RESOURCE_SHARES = np.array([0.3, 0.25, 0.3, 0.1, 0.05])
API_STATUSES = np.array([200, 400, 404, 500, 503])
API_STATUS_SHARES = np.array([0.962, 0.01, 0.015, 0.007, 0.006])
API_REASONS = ("rate_limited", "key_expired")
RATE_LIMITED, KEY_EXPIRED = range(2)
LOCKOUT_THRESHOLD = 5
LOCKOUT_PERIOD = 15 * MINUTE
BRUTE_FORCE_USERNAMES = ("admin", "root", "administrator", "test", "support", "solana")
# audit details formats: 0 = a ready JSON string, the others are formatted per batch
D_STATIC, D_API, D_ORDER_CREATE, D_ORDER_EXECUTE, D_POSITION_CLOSE = range(5)


def _json(value: Any) -> str:
    """JSON text exactly as the JSONData column type stores it (keys sorted)."""
    return json.dumps(value, sort_keys=True)


def _iso(micros: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))).isoformat()


def _uuid_hex(rng: np.random.Generator, n: int) -> np.ndarray:
    """n version-4 UUIDs from the generator, as 32 lowercase hex digits (S32), like uuid.UUID(...).hex."""
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    chars = np.empty((n, 32), np.uint8)
    chars[:, 0::2] = HEX[raw >> 4]
    chars[:, 1::2] = HEX[raw & 0x0F]
    return chars.view("S32").ravel()


def _uuid_strings(hex_ids: np.ndarray) -> list[str]:
    """Hyphenated UUID text (str(uuid.UUID(...))) of S32 hex ids."""
    if len(hex_ids) == 0:
        return []
    chars = np.ascontiguousarray(hex_ids).view(np.uint8).reshape(-1, 32)
    out = np.full((len(chars), 36), ord("-"), np.uint8)
    for (a, b), c in zip(((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)), (0, 9, 14, 19, 24)):
        out[:, c:c + b - a] = chars[:, a:b]
    return out.view("S36").ravel().astype("U36").tolist()


def _signatures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Solana-like transaction signatures: 88 base58 characters (S88)."""
    digits = rng.integers(0, 58, size=(n, 88), dtype=np.uint8)
    digits[:, 0] = rng.integers(1, 6, size=n, dtype=np.uint8)  # 64 bytes stay below 58**88
    return BASE58[digits].view("S88").ravel()


def _money_text(units: int, scale: int = 8) -> str:
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10**scale)
    return f"{sign}{whole}.{fraction:0{scale}d}"


@lru_cache(maxsize=64)
def _password_hash(salt: bytes, legacy: bool) -> str:
    """DEMO_PASSWORD hashed with ``salt``: the current format, or the seed's legacy ``hash:salt``."""
    iterations = security.LEGACY_ITERATIONS if legacy else security.PASSWORD_ITERATIONS
    digest = hashlib.pbkdf2_hmac("sha256", DEMO_PASSWORD.encode("utf-8"), salt, iterations)
    if legacy:
        return f"{digest.hex()}:{salt.hex()}"
    return f"{security.PASSWORD_ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


class _DemoBuilder:
    """Builds the five tables as columns from one random generator, in a fixed order of draws."""

    def __init__(self, seed: int, n_orders: int, as_of: datetime):
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.n_orders = n_orders
        self.as_of = (as_of - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
        self.t0 = self.as_of - HISTORY_DAYS * DAY
        self.n_users = int(np.clip(round(25 * math.sqrt(n_orders / SCALES["small"])), 5, MAX_USERS))
        self.n_audit = int(round(AUDIT_ROWS_PER_ORDER * n_orders))
        self.ips: list[str] = []

    def build(self) -> list[_Table]:
        self._prices()
        self._users()
        self._api_keys()
        self._positions()
        self._extra_orders()
        self._order_sources()
        self._audit()
        self._replay_logins()
        self._key_usage()
        return [self._users_table(), self._api_keys_table(), self._positions_table(), self._orders_table(),
                self._audit_table()]

    # Prices

    def _prices(self) -> None:
        """A 5-minute log-price path per token: random walk with jumps for memes, softly bounded."""
        rng = self.rng
        n_steps = HISTORY_DAYS * DAY // PRICE_STEP + 1
        start = np.array([t[1] for t in TOKENS])
        vol = np.array([t[2] for t in TOKENS])
        meme = np.array([t[4] for t in TOKENS])
        step_sigma = vol * math.sqrt(PRICE_STEP / (365 * DAY))
        shocks = rng.standard_normal((len(TOKENS), n_steps - 1)) * step_sigma[:, None]
        jump_rate = np.where(meme, 0.5, 0.03) * PRICE_STEP / DAY  # jumps per step
        jump_size = np.where(meme, 0.07, 0.04)
        jumps = (rng.random(shocks.shape) < jump_rate[:, None]) * rng.normal(0.0, 1.0, shocks.shape)
        jumps *= jump_size[:, None]
        walk = np.concatenate([np.zeros((len(TOKENS), 1)), np.cumsum(shocks + jumps, axis=1)], axis=1)
        self.log_price = np.log(start)[:, None] + PRICE_BAND * np.tanh(walk / PRICE_BAND)
        # decimals: about 7 significant digits, so that size decimals + price decimals = 8
        self.price_decimals = np.clip(6 - np.floor(np.log10(start)), 0, 8).astype(np.int64)
        self.size_decimals = 8 - self.price_decimals
        self.token_popularity = np.array([t[3] for t in TOKENS])
        self.token_meme = meme

    def _price_ints(self, token: np.ndarray, micros: np.ndarray, factor: np.ndarray | float = 1.0) -> np.ndarray:
        """Market price x factor at those times, as integers in units of 10**-price_decimals (>= 1)."""
        step = np.clip((micros - self.t0) // PRICE_STEP, 0, self.log_price.shape[1] - 1)
        price = np.exp(self.log_price[token, step]) * factor * 10.0 ** self.price_decimals[token]
        return np.maximum(1, np.rint(price)).astype(np.int64)

    # Users

    def _new_ips(self, n: int, attacker: bool = False) -> list[int]:
        """n new IP addresses (documentation and shared ranges), returned as codes into self.ips."""
        rng = self.rng
        codes = []
        for _ in range(n):
            if attacker:
                text = f"192.0.2.{int(rng.integers(2, 255))}"
            else:
                kind = rng.random()
                if kind < 0.3:
                    text = f"198.51.100.{int(rng.integers(2, 255))}"
                elif kind < 0.55:
                    text = f"203.0.113.{int(rng.integers(2, 255))}"
                elif kind < 0.9:
                    text = f"100.{int(rng.integers(64, 128))}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
                else:
                    groups = rng.integers(1, 65536, size=3).tolist()
                    text = f"2001:db8:{groups[0]:x}:{groups[1]:x}::{groups[2]:x}"
            self.ips.append(text)
            codes.append(len(self.ips) - 1)
        return codes

    def _users(self) -> None:
        rng, n = self.rng, self.n_users
        role = np.full(n, ROLE_TRADER)
        n_admin = max(2, round(0.03 * n))
        role[:n_admin] = ROLE_ADMIN
        rest = np.arange(n_admin, n)
        kinds = rng.choice([ROLE_TRADER, ROLE_BOT, ROLE_ANALYST], size=rest.size, p=[0.68, 0.18, 0.14])
        role[rest] = kinds
        if not (role == ROLE_BOT).any():
            role[n - 1] = ROLE_BOT
        self.role = role
        self.user_ids = _uuid_hex(rng, n)

        names, seen = [], set()
        for i in range(n):
            if role[i] == ROLE_BOT:
                base = f"{BOT_NAMES[int(rng.integers(len(BOT_NAMES)))]}-bot"
            elif role[i] == ROLE_ADMIN:
                base = f"ops.{FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]}"
            else:
                first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
                last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
                base = (f"{first}.{last}", f"{first}_{last[0]}", f"{first}{last[:3]}")[int(rng.integers(3))]
            name, suffix = base, 1
            while name in seen or role[i] == ROLE_BOT and suffix == 1:
                suffix += 1
                name = f"{base}-{suffix - 1:02d}" if role[i] == ROLE_BOT else f"{base}{suffix}"
            seen.add(name)
            names.append(name)
        self.usernames = names
        self.emails = [f"{name}@{EMAIL_DOMAINS[int(rng.integers(len(EMAIL_DOMAINS)))]}" for name in names]

        # signed up before the history (most) or during its first 60 days; start trading later
        new = rng.random(n) < 0.3
        new[:n_admin] = False
        created = np.where(new, self.t0 + (rng.random(n) * 60 * DAY).astype(np.int64),
                           self.t0 - (DAY + rng.random(n) * 180 * DAY).astype(np.int64))
        self.user_created = created
        self.user_start = np.maximum(created, self.t0) + (HOUR + rng.random(n) * 3 * DAY).astype(np.int64)
        inactive = rng.random(n) < 0.05
        inactive[:n_admin] = False
        if n >= 10 and not inactive.any():
            inactive[n_admin + int(rng.integers(n - n_admin))] = True
        self.user_active = ~inactive
        span = self.as_of - self.user_start
        self.user_end = np.where(inactive, self.user_start + (span * rng.uniform(0.4, 0.9, n)).astype(np.int64),
                                 self.as_of)
        activity = rng.lognormal(0.0, 0.9, n)
        activity = np.where(role == ROLE_BOT, rng.lognormal(1.2, 0.6, n), activity)
        activity = np.where(role == ROLE_ANALYST, 0.05 * activity, activity)
        self.user_activity = np.where(role == ROLE_ADMIN, 0.1 * activity, activity)
        self.api_share = np.select([role == ROLE_BOT, role == ROLE_TRADER], [rng.uniform(0.9, 1.0, n),
                                   rng.uniform(0.2, 0.85, n)], 0.1)
        self.size_usd = rng.lognormal(math.log(400), 1.0, n)  # typical position, USD
        self.user_ips = [self._new_ips(int(rng.integers(1, 4))) for _ in range(n)]

        # strategies each user runs (up to 3), as codes into STRATEGIES
        self.user_strategies = np.zeros((n, 3), np.int64)
        self.n_user_strategies = np.zeros(n, np.int64)
        bot_strategy = {"ppo": 0, "momentum": 1, "meanrev": 2, "grid": 3, "dca": 4, "arb": 5}
        for i in range(n):
            if role[i] == ROLE_BOT:
                chosen = [bot_strategy[names[i].split("-")[0]]]
            else:
                k = int(rng.integers(1, 4))
                chosen = list(rng.choice(len(STRATEGIES), size=k, replace=False,
                                         p=np.array([0.25, 0.15, 0.12, 0.1, 0.1, 0.06, 0.22])))
            self.user_strategies[i, :len(chosen)] = chosen
            self.n_user_strategies[i] = len(chosen)

        # passwords: a small pool of deterministic salts; a few users still on the legacy format
        salts = [rng.bytes(16) for _ in range(min(n, PASSWORD_SALT_POOL))]
        pool = rng.integers(0, len(salts), n)
        legacy = np.zeros(n, bool)
        legacy[rng.choice(np.arange(n_admin, n), size=min(LEGACY_PASSWORD_USERS, n - n_admin), replace=False)] = True
        self.password_hashes = [_password_hash(salts[pool[i]], bool(legacy[i])) for i in range(n)]

    # API keys

    def _api_keys(self) -> None:
        rng, n_users = self.rng, self.n_users
        per_user = np.select([self.role == ROLE_BOT, self.role == ROLE_TRADER, self.role == ROLE_ANALYST],
                             [1 + rng.poisson(1.2, n_users), rng.poisson(1.0, n_users),
                              rng.poisson(0.8, n_users)], 1)
        per_user = np.minimum(per_user, 5)
        owner = np.repeat(np.arange(n_users), per_user)
        n = owner.size
        start, end = self.user_start[owner], self.user_end[owner]
        early = np.where(self.role[owner] == ROLE_BOT, 0.1, 0.5)
        created = start + (rng.random(n) * early * (end - start)).astype(np.int64)
        rate_limit = rng.choice(RATE_LIMITS, size=n, p=RATE_LIMIT_SHARES)
        lifetime_days = rng.choice([30, 60, 90, 180, 365], size=n)
        expires = np.where(rng.random(n) < 0.35, NULL_TIME, created + lifetime_days * DAY)
        never_used = rng.random(n) < 0.12
        revoked = (rng.random(n) < 0.08) | ~self.user_active[owner]
        if n >= 5 and not revoked.any():
            revoked[int(rng.integers(n))] = True
        revoke_time = np.where(~self.user_active[owner], end,
                               created + (rng.uniform(0.2, 0.9, n) * (end - created)).astype(np.int64))
        trade = np.isin(self.role[owner], [ROLE_TRADER, ROLE_BOT]) & (rng.random(n) < 0.9)
        names = [KEY_NAMES[self.role[o]][int(rng.integers(len(KEY_NAMES[self.role[o]])))] for o in owner]

        # a few guaranteed cases: never used; expired but still active
        if n >= 5 and never_used.sum() < 2:
            never_used[rng.choice(n, size=2, replace=False)] = True
        expired_active = ~revoked & (expires != NULL_TIME) & (expires <= self.as_of)
        eligible = np.flatnonzero(~revoked & ~never_used & (created <= self.as_of - 35 * DAY))
        want = max(0, min(2, eligible.size) - int(expired_active.sum()))
        if want:
            chosen = rng.choice(eligible, size=want, replace=False)
            expires[chosen] = created[chosen] + 30 * DAY

        # rotations: the old key is retired at R, a new key with the same settings replaces it
        usable = ~revoked & ~never_used & ((expires == NULL_TIME) | (expires > self.as_of)) & \
            (created <= self.as_of - 10 * DAY)
        rotated = np.flatnonzero(usable & (rng.random(n) < 0.06))
        if rotated.size == 0 and usable.any():
            rotated = rng.choice(np.flatnonzero(usable), size=1)
        rotate_time = created[rotated] + (rng.uniform(0.3, 0.95, rotated.size)
                                          * (self.as_of - DAY - created[rotated] - 5 * DAY)).astype(np.int64) + 5 * DAY
        revoked[rotated] = True
        revoke_time[rotated] = rotate_time
        self.rotated_from = np.concatenate([np.full(n, -1), rotated])
        new_expires = np.where(expires[rotated] == NULL_TIME, NULL_TIME,
                               rotate_time + (expires[rotated] - created[rotated]))

        self.key_owner = np.concatenate([owner, owner[rotated]])
        self.key_created = np.concatenate([created, rotate_time])
        self.key_rate_limit = np.concatenate([rate_limit, rate_limit[rotated]])
        self.key_expires = np.concatenate([expires, new_expires])
        self.key_never_used = np.concatenate([never_used, np.zeros(rotated.size, bool)])
        self.key_revoked = np.concatenate([revoked, np.zeros(rotated.size, bool)])
        self.key_revoke_time = np.concatenate([np.where(revoked, revoke_time, NULL_TIME),
                                               np.full(rotated.size, NULL_TIME)])
        self.key_trade = np.concatenate([trade, trade[rotated]])
        self.key_names = names + [names[i] for i in rotated]
        self.n_keys = self.key_owner.size
        self.key_ids = _uuid_hex(rng, self.n_keys)
        self.key_id_text = _uuid_strings(self.key_ids)
        plaintexts = [security.API_KEY_PREFIX + _urlsafe(rng.bytes(security.API_KEY_BYTES)) for _ in range(self.n_keys)]
        self.key_hashes = [security.hash_api_key(p) for p in plaintexts]
        self.key_prefixes = [security.api_key_display_prefix(p) for p in plaintexts]
        self.key_ips = [self.user_ips[o][0] if rng.random() < 0.5 else self._new_ips(1)[0] for o in self.key_owner]
        # requests are accepted from creation until expiry, revocation or as_of
        end_times = np.minimum(np.where(self.key_expires == NULL_TIME, self.as_of, self.key_expires), self.as_of)
        end_times = np.where(self.key_revoked, np.minimum(end_times, self.key_revoke_time), end_times)
        self.key_usage_end = np.where(self.key_never_used, self.key_created, np.maximum(end_times, self.key_created))

    # Positions and their orders

    def _positions(self) -> None:
        """Positions per (user, token), one at a time, with their buy and (when closed) sell orders."""
        rng = self.rng
        n_tokens = len(TOKENS)
        pair_user, pair_token = [], []
        popularity = self.token_popularity / self.token_popularity.sum()
        for u in range(self.n_users):
            k = int(rng.integers(2, 11))
            pair_token.extend(rng.choice(n_tokens, size=k, replace=False, p=popularity).tolist())
            pair_user.extend([u] * k)
        pair_user, pair_token = np.array(pair_user), np.array(pair_token)
        weight = self.user_activity[pair_user] * self.token_popularity[pair_token]
        weight = weight * rng.lognormal(0, 0.5, pair_user.size)
        self.pair_user, self.pair_token, self.pair_weight = pair_user, pair_token, weight / weight.sum()

        n_positions = max(1, round(self.n_orders * (1 - EXTRA_ORDER_SHARE) / (2 - OPEN_POSITION_SHARE)))
        counts = rng.multinomial(n_positions, self.pair_weight)
        eligible = np.flatnonzero((counts > 0) & self.user_active[pair_user])
        n_open = min(eligible.size, round(OPEN_POSITION_SHARE * n_positions))
        open_pairs = rng.choice(eligible, size=n_open, replace=False)

        # opening times: sorted within each pair by cumulative gaps, spread over the user's window
        slots = counts + 1
        group = np.repeat(np.arange(pair_user.size), slots)
        gaps = rng.exponential(1.0, group.size) + 0.25
        cumulative = np.cumsum(gaps)
        first = np.cumsum(slots) - slots
        last = first + slots - 1
        within = cumulative - (cumulative[first] - gaps[first])[group]
        is_position = np.ones(group.size, bool)
        is_position[last] = False
        fraction = (within / within[last][group])[is_position]
        pos_pair = group[is_position]
        user = pair_user[pos_pair]
        token = pair_token[pos_pair]
        start, end = self.user_start[user], self.user_end[user]
        opened = start + (fraction * (end - start)).astype(np.int64)

        is_last = np.zeros(n_positions, bool)
        is_last[np.cumsum(counts)[counts > 0] - 1] = True
        next_open = np.empty(n_positions, np.int64)
        next_open[:-1] = opened[1:]
        next_open[is_last] = end[is_last]
        status = np.full(n_positions, CLOSED)
        status[is_last & np.isin(pos_pair, open_pairs)] = OPEN
        hold = rng.lognormal(math.log(6 * HOUR), 1.3, n_positions)
        closed = opened + np.minimum(hold, (next_open - opened) * rng.uniform(0.3, 0.95, n_positions)).astype(np.int64)
        closed = np.where(status == OPEN, NULL_TIME, np.maximum(closed, opened + SECOND))
        liquidated = (status == CLOSED) & (rng.random(n_positions) < LIQUIDATED_SHARE)
        status[liquidated] = LIQUIDATED
        is_closed = status != OPEN

        # strategy, size, entry
        pick = (rng.random(n_positions) * self.n_user_strategies[user]).astype(np.int64)
        strategy = self.user_strategies[user, pick]
        unlabelled = rng.random(n_positions) < UNLABELLED_STRATEGY_SHARE
        entry = self._price_ints(token, opened, np.exp(rng.normal(0, 0.0015, n_positions)))
        notional = np.clip(self.size_usd[user] * rng.lognormal(0, 0.9, n_positions), 10, 100_000)
        size_int = np.maximum(1, np.floor(notional * 1e8 / entry)).astype(np.int64)  # units of 10**-size_decimals

        # stop loss / take profit (in price units)
        protected = rng.random(n_positions) < np.array([s[2] for s in STRATEGIES])[strategy]
        stop = np.where(protected, np.maximum(1, np.floor(entry * (1 - rng.uniform(0.03, 0.15, n_positions)))), 0)
        take = np.where(protected, np.ceil(entry * (1 + rng.uniform(0.05, 0.4, n_positions))), 0)
        stop, take = stop.astype(np.int64), take.astype(np.int64)

        # exit (closed) or mark (open) price
        edge = np.array([s[1] for s in STRATEGIES])[strategy]
        exit_factor = np.exp(rng.normal(edge, 0.006, n_positions))
        exit_factor = np.where(liquidated, 1 - rng.uniform(0.02, 0.08, n_positions), exit_factor)
        exit_price = self._price_ints(token, np.where(is_closed, closed, self.as_of),
                                      np.where(is_closed, exit_factor, 1.0))
        exit_reason = np.where(liquidated, 3, 0)
        hit_stop = is_closed & ~liquidated & protected & (exit_price <= stop)
        exit_price = np.where(hit_stop, np.maximum(1, np.floor(stop * (1 - rng.uniform(0, 0.008, n_positions)))),
                              exit_price).astype(np.int64)
        hit_take = is_closed & ~liquidated & protected & ~hit_stop & (exit_price >= take)
        exit_price = np.where(hit_take, np.ceil(take * (1 + rng.uniform(0, 0.004, n_positions))),
                              exit_price).astype(np.int64)
        exit_reason = np.select([hit_stop, hit_take], [1, 2], exit_reason)

        # some open positions have already crossed their stop loss or take profit
        open_idx = np.flatnonzero(status == OPEN)
        if open_idx.size:
            n_cross = max(1, round(0.05 * open_idx.size))
            down = open_idx[exit_price[open_idx] < entry[open_idx]]
            up = open_idx[exit_price[open_idx] > entry[open_idx]]
            stop_crossed = rng.permutation(down if down.size else open_idx)[:n_cross]
            candidates = np.setdiff1d(up if up.size else open_idx, stop_crossed)
            take_crossed = rng.permutation(candidates)[:n_cross]
            mark = exit_price
            # crossed stop loss: stop at or above the mark; a take profit (if any) above the stop
            stop[stop_crossed] = np.ceil(mark[stop_crossed] * (1 + rng.uniform(0, 0.01, stop_crossed.size)))
            take[stop_crossed] = np.where(take[stop_crossed] > 0,
                                          np.maximum(take[stop_crossed], stop[stop_crossed] + 1), 0)
            # crossed take profit: take at or below the mark; a stop loss (if any) below the take
            below = 1 - rng.uniform(0, 0.01, take_crossed.size)
            take[take_crossed] = np.maximum(1, np.floor(mark[take_crossed] * below))
            too_high = stop[take_crossed] >= take[take_crossed]
            stop[take_crossed[too_high]] = take[take_crossed[too_high]] * 9 // 10  # 0 = no stop loss
            self.stop_crossed, self.take_crossed = stop_crossed, take_crossed

        to_money8 = 10 ** self.size_decimals[token]  # price units -> 10**-8 USD
        self.n_positions = n_positions
        self.pos_user, self.pos_token, self.pos_status = user, token, status
        self.pos_opened, self.pos_closed = opened, closed
        self.pos_strategy = np.where(unlabelled, -1, strategy)
        self.pos_size = size_int * 10 ** self.price_decimals[token]
        self.pos_entry = entry * to_money8
        self.pos_current = exit_price * to_money8
        self.pos_stop = stop * to_money8
        self.pos_take = take * to_money8
        self.pos_exit_reason = np.where(is_closed, exit_reason, -1)
        self.pos_ids = _uuid_hex(rng, n_positions)
        # the ledger: size x price is exact at 8 decimals, so pnl = sell amount_out - buy amount_in
        self.pos_cost = size_int * entry
        self.pos_proceeds = np.where(is_closed, size_int * exit_price, 0)

        # the executed orders: a buy per position, a sell per closed position
        closed_idx = np.flatnonzero(is_closed)
        self._position_orders(closed_idx, rng)

    def _position_orders(self, closed_idx: np.ndarray, rng: np.random.Generator) -> None:
        n_buy = self.n_positions
        pos = np.concatenate([np.arange(n_buy), closed_idx])
        sell = np.arange(pos.size) >= n_buy
        token = self.pos_token[pos]
        meme = self.token_meme[token]
        tolerance = np.where(meme, rng.choice([100, 300], size=pos.size),
                             rng.choice([50, 100, 300], size=pos.size, p=[0.6, 0.3, 0.1]))
        exit_reason = self.pos_exit_reason[pos]
        order_type = np.where(rng.random(pos.size) < np.where(sell, 0.15, 0.25), LIMIT, MARKET)
        order_type = np.select([sell & (exit_reason == 1), sell & (exit_reason == 2), sell & (exit_reason == 3)],
                               [STOP_LOSS, TAKE_PROFIT, MARKET], order_type)

        # realized slippage in bps (positive = worse): fat-tailed for market fills, improvement for limits
        t = rng.standard_t(3, pos.size)
        t = np.where(t < 0, 0.3 * t, t)  # price improvement is rarer and smaller than slippage
        slippage = np.select(
            [order_type == MARKET, order_type == STOP_LOSS],
            [2 + 0.2 * tolerance * t, 6 + 0.3 * tolerance * t],
            -np.abs(rng.normal(0, 6, pos.size)))
        slippage = np.where(sell & (exit_reason == 3), 25 + 0.4 * tolerance * np.abs(t), slippage)
        slippage = np.clip(slippage, np.maximum(-0.3 * tolerance, -200), np.minimum(8 * tolerance, 2500))

        executed = np.where(sell, self.pos_closed[pos], self.pos_opened[pos])
        fill_price = np.where(sell, self.pos_current[pos], self.pos_entry[pos])  # 10**-8 USD per token
        # the quote: buy s = 1 - price/fill; sell s = 1 - fill/price
        quote = np.where(sell, fill_price / (1 - slippage / 1e4), fill_price * (1 - slippage / 1e4))
        quote = np.maximum(1, np.rint(quote)).astype(np.int64)
        size = self.pos_size[pos]
        cost = self.pos_cost[pos]
        proceeds = self.pos_proceeds[pos]

        latency = np.where(order_type == MARKET, rng.uniform(0.3, 4.0, pos.size) * SECOND,
                           np.minimum(rng.lognormal(math.log(20 * MINUTE), 1.0, pos.size), 45 * MINUTE))
        created = executed - latency.astype(np.int64)
        created = np.where(sell, np.maximum(created, self.pos_opened[pos] + 1), created)

        self.o_user = self.pos_user[pos]
        self.o_token = token
        self.o_action = sell.astype(np.int64)  # 0 buy, 1 sell
        self.o_type = order_type
        self.o_amount_in = np.where(sell, size, cost)
        self.o_amount_out = np.where(sell, proceeds, size)
        self.o_price = quote
        self.o_tolerance = tolerance
        self.o_status = np.full(pos.size, EXECUTED)
        self.o_position = pos
        self.o_created = created
        self.o_updated = executed
        self.o_executed = executed
        self.o_reason = np.full(pos.size, -1)
        self.o_strategy = self.pos_strategy[pos]
        self.o_exit_reason = np.where(sell, exit_reason, -1)
        self.o_attempt = np.zeros(pos.size, np.int64)

    def _extra_orders(self) -> None:
        """Failed, cancelled and pending orders (no position; nothing on the ledger)."""
        rng = self.rng
        n_executed = self.o_user.size
        n = self.n_orders - n_executed
        n_pending = min(n, max(3, round(0.03 * n)))
        n_failed = round(0.57 * (n - n_pending))
        status = np.concatenate([np.full(n_pending, PENDING), np.full(n_failed, FAILED),
                                 np.full(n - n_pending - n_failed, CANCELLED)])
        active_pairs = self.user_active[self.pair_user]
        weight = np.where(active_pairs, self.pair_weight, 0.0)
        pair = np.where(status == PENDING, rng.choice(self.pair_user.size, size=n, p=weight / weight.sum()),
                        rng.choice(self.pair_user.size, size=n, p=self.pair_weight))
        user, token = self.pair_user[pair], self.pair_token[pair]
        start, end = self.user_start[user], self.user_end[user]

        order_type = np.select(
            [status == FAILED, status == CANCELLED],
            [np.where(rng.random(n) < 0.85, MARKET, LIMIT),
             rng.choice([LIMIT, STOP_LOSS, TAKE_PROFIT], size=n, p=[0.8, 0.1, 0.1])],
            np.where(rng.random(n) < 0.7, LIMIT, MARKET))
        created = start + (rng.random(n) * (end - start)).astype(np.int64)
        recent = np.where(order_type == MARKET, 10 * MINUTE, 2 * DAY)
        created = np.where(status == PENDING, np.maximum(start, self.as_of - (rng.random(n) * recent).astype(np.int64)),
                           created)
        updated = np.select(
            [status == FAILED, status == CANCELLED],
            [created + (rng.uniform(0.5, 90, n) * SECOND).astype(np.int64),
             created + rng.lognormal(math.log(30 * MINUTE), 1.2, n).astype(np.int64)],
            created)
        updated = np.minimum(updated, end - 1)
        created = np.minimum(created, updated)

        sell = rng.random(n) < 0.2
        factor = np.select([(order_type == LIMIT) & ~sell, (order_type == LIMIT) & sell,
                            order_type == STOP_LOSS, order_type == TAKE_PROFIT],
                           [1 - rng.uniform(0.01, 0.06, n), 1 + rng.uniform(0.01, 0.08, n),
                            1 - rng.uniform(0.03, 0.12, n), 1 + rng.uniform(0.05, 0.3, n)],
                           np.exp(rng.normal(0, 0.002, n)))
        price = self._price_ints(token, created, factor)
        notional = np.clip(self.size_usd[user] * rng.lognormal(0, 0.7, n), 10, 100_000)
        tokens_int = np.maximum(1, np.floor(notional * 1e8 / price)).astype(np.int64)
        amount_in = np.where(sell, tokens_int * 10 ** self.price_decimals[token],
                             np.rint(notional * 100).astype(np.int64) * 1_000_000)
        meme = self.token_meme[token]
        tolerance = np.where(meme, rng.choice([100, 300], size=n),
                             rng.choice([50, 100, 300], size=n, p=[0.6, 0.3, 0.1]))
        reason = rng.choice(len(FAILED_REASONS), size=n, p=FAILED_REASON_SHARES)
        reason = np.where(sell | (reason != 4), reason, 0)  # token balance only fails sells

        self.o_user = np.concatenate([self.o_user, user])
        self.o_token = np.concatenate([self.o_token, token])
        self.o_action = np.concatenate([self.o_action, sell.astype(np.int64)])
        self.o_type = np.concatenate([self.o_type, order_type])
        self.o_amount_in = np.concatenate([self.o_amount_in, amount_in])
        self.o_amount_out = np.concatenate([self.o_amount_out, np.zeros(n, np.int64)])
        self.o_price = np.concatenate([self.o_price, price * 10 ** self.size_decimals[token]])
        self.o_tolerance = np.concatenate([self.o_tolerance, tolerance])
        self.o_status = np.concatenate([self.o_status, status])
        self.o_position = np.concatenate([self.o_position, np.full(n, -1)])
        self.o_created = np.concatenate([self.o_created, created])
        self.o_updated = np.concatenate([self.o_updated, updated])
        self.o_executed = np.concatenate([self.o_executed, np.full(n, NULL_TIME)])
        self.o_reason = np.concatenate([self.o_reason, np.where(status == FAILED, reason, -1)])
        strategy = self.user_strategies[user, (rng.random(n) * self.n_user_strategies[user]).astype(np.int64)]
        self.o_strategy = np.concatenate([self.o_strategy, strategy])
        self.o_exit_reason = np.concatenate([self.o_exit_reason, np.full(n, -1)])
        self.o_attempt = np.concatenate([self.o_attempt, np.where(status == FAILED, rng.integers(1, 4, n), 0)])
        self.n_orders_total = self.o_user.size
        self.order_ids = _uuid_hex(rng, self.n_orders_total)
        executed = self.o_status == EXECUTED
        self.o_signature = np.full(self.n_orders_total, -1)
        self.o_signature[executed] = np.arange(int(executed.sum()))
        self.signatures = _signatures(rng, int(executed.sum()))

    def _order_sources(self) -> None:
        """Which orders came through an API key (and which key), and which from the web app."""
        rng = self.rng
        n = self.n_orders_total
        slots = int(np.bincount(self.key_owner, minlength=self.n_users).max()) if self.n_keys else 0
        key_table = np.full((self.n_users, max(slots, 1)), -1)
        fill = np.zeros(self.n_users, np.int64)
        for k, owner in enumerate(self.key_owner.tolist()):
            key_table[owner, fill[owner]] = k
            fill[owner] += 1
        candidates = key_table[self.o_user]  # (orders, slots)
        safe = np.maximum(candidates, 0)
        valid = (candidates >= 0) & self.key_trade[safe] & ~self.key_never_used[safe] & \
            (self.key_created[safe] <= self.o_created[:, None]) & (self.o_created[:, None] < self.key_usage_end[safe])
        score = rng.random(valid.shape) * valid
        choice = candidates[np.arange(n), np.argmax(score, axis=1)]
        wants_api = rng.random(n) < self.api_share[self.o_user]
        self.o_key = np.where(wants_api & valid.any(axis=1), choice, -1)

    # Audit events

    def _audit(self) -> None:
        self.ev: list[dict[str, np.ndarray]] = []
        self.static_details: list[str] = []
        self.api = {"ts": [], "key": [], "resource": [], "action": [], "status": [], "latency": [], "reason": []}
        self._authentication_events()
        self._api_key_events()
        self._admin_and_authorization_events()
        self._trading_events()
        self._api_request_events()
        self._api_request_rows()

    def _add(self, ts, event, action, resource, user, ip, success, dkind, darg) -> None:
        n = len(ts)
        def column(value, dtype=np.int64) -> np.ndarray:
            return np.full(n, value, dtype) if np.isscalar(value) else np.asarray(value, dtype)

        self.ev.append({"ts": column(ts), "event": column(event), "action": column(action),
                        "resource": column(resource), "user": column(user), "ip": column(ip),
                        "success": column(success, bool), "dkind": column(dkind), "darg": column(darg)})

    def _static(self, details: list[dict]) -> np.ndarray:
        first = len(self.static_details)
        self.static_details.extend(_json(d) for d in details)
        return np.arange(first, first + len(details))

    def _authentication_events(self) -> None:
        """Logins (with typos), logouts, password changes, lockouts, two locked accounts, brute force."""
        rng = self.rng
        n = self.n_users
        humans = np.flatnonzero((self.role != ROLE_BOT) & self.user_active & (self.role != ROLE_ADMIN))
        n_locked_now = min(2, humans.size)
        locked_now = set(rng.choice(humans, size=n_locked_now, replace=False).tolist()) if n_locked_now else set()
        n_lockouts = max(1, round(0.1 * n))
        people = np.flatnonzero(self.role != ROLE_BOT)
        lockout_users = set(rng.choice(people, size=min(n_lockouts, people.size), replace=False).tolist())
        n_changes = min(people.size, max(1, round(0.1 * people.size)))
        password_changers = set(rng.choice(people, size=n_changes, replace=False).tolist())
        rows: list[tuple] = []  # (ts, action, success, user, ip, details)

        for u in range(n):
            start, end = int(self.user_start[u]), int(self.user_end[u])
            ips = self.user_ips[u]
            p_login = 0.03 if self.role[u] == ROLE_BOT else float(rng.uniform(0.25, 0.85))
            first_day = start // DAY + 1
            days = np.arange(first_day, max(first_day, end // DAY + 1)) * DAY
            login_days = days[rng.random(days.size) < p_login]
            hours = np.clip(rng.normal(13.5, 4.0, login_days.size), 0.2, 23.8)
            logins = login_days + (hours * HOUR).astype(np.int64)
            logins = logins[(logins > start) & (logins < end)]
            excluded: list[tuple[int, int]] = []
            special: list[tuple] = []
            if u in lockout_users and end - start > 3 * DAY:
                tau = start + int(rng.random() * (end - start - 2 * DAY)) + DAY
                special += self._lockout_episode(u, tau, recover=True)
                excluded.append((tau - MINUTE, tau + LOCKOUT_PERIOD + 3 * HOUR))
            if u in locked_now:
                tau = self.as_of - int(rng.uniform(3, 12) * MINUTE)
                special += self._lockout_episode(u, tau, recover=False)
                excluded.append((tau - MINUTE, self.as_of))
            for lo, hi in excluded:
                logins = logins[(logins < lo) | (logins > hi)]
            typo = rng.random(logins.size) < 0.05
            session = rng.lognormal(math.log(40 * MINUTE), 0.8, logins.size).astype(np.int64)
            logs_out = rng.random(logins.size) < 0.7
            for t, has_typo, length, out in zip(logins.tolist(), typo.tolist(), session.tolist(), logs_out.tolist()):
                ip = ips[int(rng.integers(len(ips)))]
                if has_typo:
                    rows.append((t - int(rng.uniform(5, 60) * SECOND), A["login"], False, u, ip,
                                 {"reason": "invalid_password", "username": self.usernames[u]}))
                rows.append((t, A["login"], True, u, ip, {"method": "password"}))
                if out and t + length < min(end, self.as_of) and not any(lo <= t + length <= hi for lo, hi in excluded):
                    rows.append((t + length, A["logout"], True, u, ip, {}))
            if u in password_changers and logins.size:
                t = int(logins[int(rng.integers(logins.size))]) + 5 * MINUTE
                if t < end:
                    rows.append((t, A["password_change"], True, u, ips[0], {}))
            rows.extend(special)

        rows.extend(self._brute_force())
        rows.sort(key=lambda r: (r[0], r[3] if r[3] is not None else -1))
        self.auth_rows = rows
        ts = [r[0] for r in rows]
        paths = {A["logout"]: R["/api/v1/auth/logout"], A["password_change"]: R["/api/v1/auth/password"]}
        resource = [paths.get(r[1], R["/api/v1/auth/login"]) for r in rows]
        self._add(ts, AUTHN, [r[1] for r in rows], resource, [-1 if r[3] is None else r[3] for r in rows],
                  [r[4] for r in rows], [r[2] for r in rows], D_STATIC, self._static([r[5] for r in rows]))

    def _lockout_episode(self, u: int, tau: int, *, recover: bool) -> list[tuple]:
        """Five failed logins within two minutes, the lockout, and (if recover) a later successful login."""
        rng = self.rng
        ip = self.user_ips[u][0]
        times = tau + np.sort((rng.random(LOCKOUT_THRESHOLD) * 2 * MINUTE).astype(np.int64))
        rows = [(int(t), A["login"], False, u, ip, {"reason": "invalid_password", "username": self.usernames[u]})
                for t in times]
        locked_at = int(times[-1]) + 1000
        rows.append((locked_at, A["lockout"], False, u, ip,
                     {"failed_attempts": LOCKOUT_THRESHOLD, "locked_until": _iso(int(times[-1]) + LOCKOUT_PERIOD)}))
        if recover:
            back = locked_at + LOCKOUT_PERIOD + int(rng.uniform(1, 120) * MINUTE)
            rows.append((back, A["login"], True, u, ip, {"method": "password"}))
        return rows

    def _brute_force(self) -> list[tuple]:
        """Bursts of failed logins from one IP: >= 30 within 5 minutes, known and unknown usernames."""
        rng = self.rng
        rows = []
        n_bursts = max(1, self.n_audit // 500_000)
        for _ in range(n_bursts):
            ip = self._new_ips(1, attacker=True)[0]
            at = self.t0 + int(rng.uniform(0.55, 0.95) * HISTORY_DAYS * DAY)
            targets = np.flatnonzero((self.role != ROLE_BOT) & (self.user_start < at) & (self.user_end > at + HOUR))
            attempts = int(rng.integers(40, 70))
            times = at + np.sort((rng.random(attempts) * 4 * MINUTE).astype(np.int64))
            victims = rng.choice(targets, size=min(2, targets.size), replace=False).tolist()
            names = list(BRUTE_FORCE_USERNAMES) + [self.usernames[v] for v in victims]
            failures: dict[int, int] = {}
            for t in times.tolist():
                k = int(rng.integers(len(names)))
                user = victims[k - len(BRUTE_FORCE_USERNAMES)] if k >= len(BRUTE_FORCE_USERNAMES) else None
                reason = "invalid_password" if user is not None else "unknown_user"
                rows.append((t, A["login"], False, user, ip, {"reason": reason, "username": names[k]}))
                if user is not None:
                    failures[user] = failures.get(user, 0) + 1
                    if failures[user] == LOCKOUT_THRESHOLD:
                        rows.append((t + 1000, A["lockout"], False, user, ip,
                                     {"failed_attempts": LOCKOUT_THRESHOLD, "locked_until": _iso(t + LOCKOUT_PERIOD)}))
        return rows

    def _api_key_events(self) -> None:
        """Key creation, revocation and rotation."""
        n = self.n_keys
        fresh = np.flatnonzero(self.rotated_from < 0)
        rotated_new = np.flatnonzero(self.rotated_from >= 0)
        revoked_plain = np.flatnonzero(self.key_revoked & ~np.isin(np.arange(n), self.rotated_from[rotated_new]))
        owner = self.key_owner
        ip = np.array(self.key_ips)
        user_ip = np.array([self.user_ips[o][0] for o in owner]) if n else np.zeros(0, np.int64)
        self._add(self.key_created[fresh], API_KEY, A["create"], R["/api/v1/keys"], owner[fresh], user_ip[fresh], True,
                  D_STATIC, self._static([{"key_id": self.key_id_text[k], "key_prefix": self.key_prefixes[k],
                                           "name": self.key_names[k], "rate_limit": int(self.key_rate_limit[k])}
                                          for k in fresh.tolist()]))
        reason = ["user_deactivated" if not self.user_active[owner[k]] else "user_request" for k in revoked_plain]
        self._add(self.key_revoke_time[revoked_plain], API_KEY, A["revoke"], R["/api/v1/keys"], owner[revoked_plain],
                  user_ip[revoked_plain], True, D_STATIC,
                  self._static([{"key_id": self.key_id_text[k], "reason": r} for k, r in zip(revoked_plain, reason)]))
        old = self.rotated_from[rotated_new]
        self._add(self.key_created[rotated_new], API_KEY, A["rotate"], R["/api/v1/keys"], owner[rotated_new],
                  ip[rotated_new] if n else [], True, D_STATIC,
                  self._static([{"new_key_id": self.key_id_text[k], "old_key_id": self.key_id_text[o]}
                                for k, o in zip(rotated_new.tolist(), old.tolist())]))

    def _admin_and_authorization_events(self) -> None:
        """Admins deactivating users; requests refused for lack of a role or permission."""
        rng = self.rng
        inactive = np.flatnonzero(~self.user_active)
        admin = int(np.flatnonzero(self.role == ROLE_ADMIN)[0])
        self._add(self.user_end[inactive], ADMIN, A["user_deactivate"], R["/api/v1/admin/users"], admin,
                  self.user_ips[admin][0], True, D_STATIC,
                  self._static([{"target_user_id": _uuid_strings(self.user_ids[[u]])[0],
                                 "target_username": self.usernames[u]} for u in inactive.tolist()]))
        candidates = np.flatnonzero(self.role != ROLE_ADMIN)
        n = max(5, round(0.002 * self.n_audit))
        user = rng.choice(candidates, size=n)
        ts = self.user_start[user] + (rng.random(n) * (self.user_end[user] - self.user_start[user])).astype(np.int64)
        analyst = self.role[user] == ROLE_ANALYST
        admin_path = rng.random(n) < 0.5
        resource = np.where(analyst & ~admin_path, R["/api/v1/orders"],
                            np.where(rng.random(n) < 0.7, R["/api/v1/admin/users"], R["/api/v1/admin/audit-logs"]))
        details = [{"method": "POST", "required": "trade", "role": "analyst"} if r == R["/api/v1/orders"] else
                   {"method": "GET", "required": "admin", "role": ROLE_ROLES[int(self.role[u])][0]}
                   for u, r in zip(user.tolist(), resource.tolist())]
        ip = [self.user_ips[u][0] for u in user.tolist()]
        self._add(ts, AUTHZ, A["access_denied"], resource, user, ip, False, D_STATIC, self._static(details))

    def _trading_events(self) -> None:
        """Orders placed in the web app: order_create, order_execute (executed or failed), position_close."""
        web = self.o_key < 0
        user_ip = np.array([ips[0] for ips in self.user_ips])
        idx = np.flatnonzero(web)
        self._add(self.o_created[idx], TRADING, A["order_create"], R["/api/v1/orders"], self.o_user[idx],
                  user_ip[self.o_user[idx]], True, D_ORDER_CREATE, idx)
        done = np.flatnonzero(web & np.isin(self.o_status, [EXECUTED, FAILED]))
        self._add(np.where(self.o_status[done] == EXECUTED, self.o_executed[done], self.o_updated[done]), TRADING,
                  A["order_execute"], R["/api/v1/orders"], self.o_user[done], user_ip[self.o_user[done]],
                  self.o_status[done] == EXECUTED, D_ORDER_EXECUTE, done)
        closes = np.flatnonzero(web & (self.o_action == 1) & (self.o_status == EXECUTED))
        position = self.o_position[closes]
        self._add(self.pos_closed[position], TRADING, A["position_close"], R["/api/v1/positions"],
                  self.o_user[closes], user_ip[self.o_user[closes]], True, D_POSITION_CLOSE, position)

    def _api_request_events(self) -> None:
        """api_request rows: orders placed with keys, background reads, expired keys, rate-limited bursts."""
        rng = self.rng
        api = self.api
        # POST /api/v1/orders for every order placed with a key
        placed = np.flatnonzero(self.o_key >= 0)
        self._api_rows(self.o_created[placed], self.o_key[placed], R["/api/v1/orders"], A["POST"],
                       np.full(placed.size, 201), -1)
        # requests with an expired (still active) key are refused
        expired = np.flatnonzero(~self.key_revoked & ~self.key_never_used & (self.key_expires != NULL_TIME)
                                 & (self.key_expires <= self.as_of))
        for k in expired.tolist():
            m = int(rng.integers(3, 16))
            ts = self.key_expires[k] + (rng.random(m) * (self.as_of - self.key_expires[k])).astype(np.int64)
            self._api_rows(ts, np.full(m, k), rng.choice(GET_RESOURCES, size=m, p=GET_RESOURCE_SHARES), A["GET"],
                           np.full(m, 401), KEY_EXPIRED)

        used_so_far = sum(len(e["ts"]) for e in self.ev) + sum(len(t) for t in api["ts"])
        budget = max(0, self.n_audit - used_so_far)
        usable = np.flatnonzero(~self.key_never_used & (self.key_usage_end - self.key_created > HOUR))
        self.rate_limited_keys = []
        if usable.size == 0:
            return
        # rate-limited bursts: a minute with more requests than the key's limit; the excess gets 429
        burst_budget = max(int(0.04 * budget), 1)
        # keys whose limit a burst can exceed within the budget (at small scales: the low limits)
        limits = self.key_rate_limit[usable]
        burstable = usable[limits <= max(burst_budget, 2 * limits.min())]
        weights = 1.0 / self.key_rate_limit[burstable]
        busy = {int(k): set() for k in burstable}
        for ts_chunk, key_chunk in zip(api["ts"], api["key"]):
            for t, k in zip((np.asarray(ts_chunk) // MINUTE).tolist(), np.asarray(key_chunk).tolist()):
                if k in busy:
                    busy[k].add(t)
        bursts, spent, burst_keys, tries = [], 0, set(), 0
        while (spent < burst_budget or len(burst_keys) < min(2, burstable.size)) and tries < 20_000:
            tries += 1
            k = int(rng.choice(burstable, p=weights / weights.sum()))
            limit = int(self.key_rate_limit[k])
            first, last = -(-int(self.key_created[k]) // MINUTE), int(self.key_usage_end[k]) // MINUTE - 1
            minute = first + int(rng.random() * (last - first + 1))  # a whole minute inside the key's life
            if minute in busy[k]:
                continue
            busy[k].add(minute)
            extra = max(3, round(limit * rng.uniform(0.1, 0.8)))
            bursts.append((k, minute, limit, extra))
            burst_keys.add(k)
            spent += limit + extra
        # background reads, spread over each key's life, avoiding the burst minutes
        n_reads = max(0, budget - spent)
        life = (self.key_usage_end[usable] - self.key_created[usable]).astype(float)
        share = np.sqrt(self.key_rate_limit[usable]) * rng.lognormal(0, 1.0, usable.size) * np.sqrt(life)
        per_key = rng.multinomial(n_reads, share / share.sum())
        keys = np.repeat(usable, per_key)
        life_of = self.key_usage_end[keys] - self.key_created[keys]
        ts = self.key_created[keys] + (rng.random(keys.size) * life_of).astype(np.int64)
        burst_minutes = {(k, m) for k, m, _, _ in bursts}
        if burst_minutes:  # a burst minute holds the burst's requests only
            keep = np.array([(k, m) not in burst_minutes for k, m in zip(keys.tolist(), (ts // MINUTE).tolist())], bool)
            keys, ts = keys[keep], ts[keep]
        status = rng.choice(API_STATUSES, size=keys.size, p=API_STATUS_SHARES)
        self._api_rows(ts, keys, rng.choice(GET_RESOURCES, size=keys.size, p=GET_RESOURCE_SHARES), A["GET"], status, -1)
        for k, minute, limit, extra in bursts:
            m = limit + extra
            ts = minute * MINUTE + np.sort((rng.random(m) * MINUTE).astype(np.int64))
            status = np.where(np.arange(m) < limit, 200, 429)
            resource = rng.choice(GET_RESOURCES, size=m, p=GET_RESOURCE_SHARES)
            self._api_rows(ts, np.full(m, k), resource, A["GET"], status, np.where(status == 429, RATE_LIMITED, -1))

        self.rate_limited_keys = sorted(burst_keys)

    def _api_request_rows(self) -> None:
        """Concatenate the api_request rows and add them to the audit events."""
        api = self.api
        for name in api:
            api[name] = np.concatenate(api[name]) if api[name] else np.zeros(0, np.int64)
        key = api["key"]
        self._add(api["ts"], API_REQUEST, api["action"], api["resource"], self.key_owner[key],
                  np.asarray(self.key_ips, np.int64)[key], api["status"] < 400, D_API, np.arange(key.size))

    def _api_rows(self, ts, keys, resource, action, status, reason) -> None:
        n = len(ts)
        columns = {"ts": ts, "key": keys, "resource": resource, "action": action, "status": status, "reason": reason,
                   "latency": np.maximum(1, self.rng.lognormal(math.log(85), 0.7, n))}
        for name, values in columns.items():
            self.api[name].append(np.broadcast_to(np.asarray(values).astype(np.int64), (n,)))

    # State derived from the events

    def _replay_logins(self) -> None:
        """failed_login_attempts, locked_until, last_login as the model's login bookkeeping leaves them."""
        n = self.n_users
        attempts = np.zeros(n, np.int64)
        locked_until = np.full(n, NULL_TIME)
        last_login = np.full(n, NULL_TIME)
        touched = self.user_created.copy()
        for t, action, success, user, _ip, _details in self.auth_rows:
            if user is None or action not in (A["login"], A["password_change"]):
                continue
            touched[user] = max(touched[user], t)
            if action != A["login"]:
                continue
            if success:
                attempts[user], locked_until[user], last_login[user] = 0, NULL_TIME, t
            else:
                attempts[user] += 1
                if attempts[user] >= LOCKOUT_THRESHOLD:
                    locked_until[user] = t + LOCKOUT_PERIOD
        deactivated = ~self.user_active
        touched[deactivated] = np.maximum(touched[deactivated], self.user_end[deactivated])
        self.user_attempts, self.user_locked_until, self.user_last_login = attempts, locked_until, last_login
        self.user_updated = touched

    def _key_usage(self) -> None:
        """requests_count and last_used_at: the key's accepted requests (not refused with 401 or 429)."""
        api = self.api
        accepted = (api["status"] != 401) & (api["status"] != 429)
        keys = api["key"][accepted]
        self.key_requests = np.bincount(keys, minlength=self.n_keys).astype(np.int64)
        last = np.full(self.n_keys, NULL_TIME)
        np.maximum.at(last, keys, api["ts"][accepted])
        self.key_last_used = last
        updated = np.maximum(self.key_created, last)
        self.key_updated = np.where(self.key_revoked, np.maximum(updated, self.key_revoke_time), updated)

    # Tables

    def _users_table(self) -> _Table:
        roles = [_json(ROLE_ROLES[r]) for r in range(4)]
        permissions = [_json(ROLE_PERMISSIONS[r]) for r in range(4)]
        return _Table("users", self.n_users, {
            "user_id": _Ids(self.user_ids),
            "username": _Plain(self.usernames),
            "email": _Plain(self.emails),
            "permissions": _Codes(self.role, permissions),
            "roles": _Codes(self.role, roles),
            "password_hash": _Plain(self.password_hashes),
            "is_active": _Plain(self.user_active),
            "failed_login_attempts": _Plain(self.user_attempts),
            "locked_until": _Times(self.user_locked_until),
            "last_login": _Times(self.user_last_login),
            "created_at": _Times(self.user_created),
            "updated_at": _Times(self.user_updated),
        })

    def _api_keys_table(self) -> _Table:
        order = np.argsort(self.key_created, kind="stable")
        permissions = [_json({"read": True, "trade": False}), _json({"read": True, "trade": True})]
        return _Table("api_keys", self.n_keys, {
            "key_id": _Ids(self.key_ids[order]),
            "user_id": _Ids(self.user_ids, self.key_owner[order]),
            "name": _Plain([self.key_names[k] for k in order]),
            "permissions": _Codes(self.key_trade[order].astype(np.int64), permissions),
            "rate_limit": _Plain(self.key_rate_limit[order]),
            "expires_at": _Times(self.key_expires[order]),
            "key_hash": _Plain([self.key_hashes[k] for k in order]),
            "key_prefix": _Plain([self.key_prefixes[k] for k in order]),
            "requests_count": _Plain(self.key_requests[order]),
            "last_used_at": _Times(self.key_last_used[order]),
            "is_active": _Plain(~self.key_revoked[order]),
            "created_at": _Times(self.key_created[order]),
            "updated_at": _Times(self.key_updated[order]),
        })

    def _positions_table(self) -> _Table:
        order = np.argsort(self.pos_opened, kind="stable")
        buy_source = np.full(self.n_positions, -1)
        is_buy = self.o_position >= 0
        buy_source[self.o_position[is_buy & (self.o_action == 0)]] = self.o_key[is_buy & (self.o_action == 0)]
        # extra_data: where the position was opened from, and why it was closed
        combos = [_json({"source": source}) for source in ("api", "web")] + [
            _json({"exit_reason": reason, "source": source}) for reason in EXIT_REASONS for source in ("api", "web")]
        web = (buy_source < 0).astype(np.int64)
        extra = np.where(self.pos_exit_reason < 0, web, 2 + 2 * self.pos_exit_reason + web)
        marked = np.maximum(self.pos_opened, self.as_of - 5 * MINUTE)  # open positions: the last mark
        updated = np.where(self.pos_status == OPEN, marked, self.pos_closed)
        return _Table("positions", self.n_positions, {
            "position_id": _Ids(self.pos_ids[order]),
            "user_id": _Ids(self.user_ids, self.pos_user[order]),
            "token": _Codes(self.pos_token[order], [t[0] for t in TOKENS]),
            "size": _Money(self.pos_size[order]),
            "entry_price": _Money(self.pos_entry[order]),
            "current_price": _Money(self.pos_current[order]),
            "stop_loss": _Money(self.pos_stop[order]),
            "take_profit": _Money(self.pos_take[order]),
            "strategy": _Codes(self.pos_strategy[order], [s[0] for s in STRATEGIES]),
            "extra_data": _Codes(extra[order], combos),
            "status": _Codes(self.pos_status[order], POSITION_STATUSES),
            "opened_at": _Times(self.pos_opened[order]),
            "closed_at": _Times(self.pos_closed[order]),
            "created_at": _Times(self.pos_opened[order]),
            "updated_at": _Times(updated[order]),
        })

    def _orders_table(self) -> _Table:
        order = np.argsort(self.o_created, kind="stable")
        n_strategies = len(STRATEGIES) + 1  # + unlabelled
        combos, combo_index = [], {}
        for source in ("api", "web"):
            for strategy in range(n_strategies):
                for reason in range(len(EXIT_REASONS) + 1):
                    for attempt in range(4):
                        document = {"source": source}
                        if strategy < len(STRATEGIES):
                            document["strategy"] = STRATEGIES[strategy][0]
                        if reason < len(EXIT_REASONS):
                            document["exit_reason"] = EXIT_REASONS[reason]
                        if attempt:
                            document["attempt"] = attempt
                        combo_index[(source, strategy, reason, attempt)] = len(combos)
                        combos.append(_json(document))
        web = (self.o_key < 0).astype(np.int64)
        strategy = np.where(self.o_strategy < 0, len(STRATEGIES), self.o_strategy)
        reason = np.where(self.o_exit_reason < 0, len(EXIT_REASONS), self.o_exit_reason)
        extra = ((web * n_strategies + strategy) * (len(EXIT_REASONS) + 1) + reason) * 4 + self.o_attempt
        signature = self.o_signature[order]
        signatures = self.signatures

        def signature_values(start: int, stop: int) -> list:
            chunk = signature[start:stop]
            out = signatures[np.maximum(chunk, 0)].astype("U88").astype(object)
            out[chunk < 0] = None
            return out.tolist()

        action, amount_in, price, amount_out = (self.o_action[order], self.o_amount_in[order], self.o_price[order],
                                                self.o_amount_out[order])

        def slippage_values(start: int, stop: int) -> list:
            return _slippage_text(action[start:stop], amount_in[start:stop], price[start:stop], amount_out[start:stop])

        return _Table("orders", self.n_orders_total, {
            "order_id": _Ids(self.order_ids[order]),
            "user_id": _Ids(self.user_ids, self.o_user[order]),
            "position_id": _Ids(self.pos_ids, self.o_position[order]),
            "token": _Codes(self.o_token[order], [t[0] for t in TOKENS]),
            "action": _Codes(self.o_action[order], ("buy", "sell")),
            "order_type": _Codes(self.o_type[order], ORDER_TYPES),
            "amount_in": _Money(amount_in),
            "price": _Money(price),
            "slippage_bps": _Plain(self.o_tolerance[order]),
            "extra_data": _Codes(extra[order], combos),
            "amount_out": _Money(amount_out),
            "slippage_actual": _Computed(slippage_values),
            "status": _Codes(self.o_status[order], ORDER_STATUSES),
            "transaction_signature": _Computed(signature_values),
            "executed_at": _Times(self.o_executed[order]),
            "failed_reason": _Codes(self.o_reason[order], FAILED_REASONS),
            "created_at": _Times(self.o_created[order]),
            "updated_at": _Times(self.o_updated[order]),
        })

    def _audit_table(self) -> _Table:
        columns = {name: np.concatenate([e[name] for e in self.ev]) for name in self.ev[0]}
        n = columns["ts"].size
        order = np.argsort(columns["ts"], kind="stable")
        columns = {name: values[order] for name, values in columns.items()}
        log_ids = _uuid_hex(self.rng, n)
        request_ids = self.rng.integers(0, 2**63, size=n, dtype=np.int64)
        dkind, darg = columns["dkind"], columns["darg"]

        @_last_slice
        def request_id_values(start: int, stop: int) -> list:
            return [f"req_{value:016x}" for value in request_ids[start:stop].tolist()]

        @_last_slice
        def details_values(start: int, stop: int) -> list:
            return self._details(dkind[start:stop], darg[start:stop])

        stored = {
            "log_id": _Ids(log_ids),
            "timestamp": _Times(columns["ts"]),
            "event_type": _Codes(columns["event"], EVENT_TYPES),
            "user_id": _Ids(self.user_ids, columns["user"]),
            "ip_address": _Codes(columns["ip"], self.ips),
            "resource": _Codes(columns["resource"], RESOURCES),
            "action": _Codes(columns["action"], ACTIONS),
            "success": _Plain(columns["success"]),
            "details": _Computed(details_values),
            "request_id": _Computed(request_id_values),
        }
        times = columns["ts"]

        def chain_content(start: int, stop: int) -> list[dict[str, Any]]:
            """The hashed fields of rows start..stop (user_id is not hashed), as the chain's text."""
            iso = np.datetime_as_string(times[start:stop].astype("datetime64[us]"), unit="us").tolist()
            fields = zip(_uuid_strings(log_ids[start:stop]), iso, *(
                stored[name].values(start, stop, "")
                for name in ("event_type", "ip_address", "resource", "action", "success", "details", "request_id")))
            return [{"log_id": log_id, "timestamp": f"{time}+00:00", "event_type": event_type,
                     "ip_address": ip_address, "resource": resource, "action": action, "success": success,
                     "details": details, "request_id": request_id}
                    for log_id, time, event_type, ip_address, resource, action, success, details, request_id in fields]

        chain = _AuditChain(chain_content)
        return _Table("security_audit_logs", n, stored | {
            "chain_seq": _Computed(lambda start, stop: chain.values(start, stop)[0]),
            "prev_hash": _Computed(lambda start, stop: chain.values(start, stop)[1]),
            "row_hash": _Computed(lambda start, stop: chain.values(start, stop)[2]),
        }, chain=chain)

    def _details(self, dkind: np.ndarray, darg: np.ndarray) -> list[str]:
        """The details JSON of a slice of audit rows, as json.dumps(..., sort_keys=True) writes it."""
        out: list[Any] = [None] * dkind.size
        for kind in np.unique(dkind).tolist():
            where = np.flatnonzero(dkind == kind)
            arg = darg[where]
            if kind == D_STATIC:
                texts = [self.static_details[i] for i in arg.tolist()]
            elif kind == D_API:
                api = self.api
                texts = [
                    (f'{{"key_id": "{self.key_id_text[k]}", "latency_ms": {lat}, '
                     f'"reason": "{API_REASONS[r]}", "status_code": {s}}}') if r >= 0 else
                    f'{{"key_id": "{self.key_id_text[k]}", "latency_ms": {lat}, "status_code": {s}}}'
                    for k, lat, r, s in zip(api["key"][arg].tolist(), api["latency"][arg].tolist(),
                                            api["reason"][arg].tolist(), api["status"][arg].tolist())]
            elif kind == D_ORDER_CREATE:
                ids = _uuid_strings(self.order_ids[arg])
                texts = [f'{{"action": "{("buy", "sell")[a]}", "order_id": "{i}", "token": "{TOKENS[t][0]}"}}'
                         for i, a, t in zip(ids, self.o_action[arg].tolist(), self.o_token[arg].tolist())]
            elif kind == D_ORDER_EXECUTE:
                ids = _uuid_strings(self.order_ids[arg])
                texts = [f'{{"order_id": "{i}", "status": "executed"}}' if s == EXECUTED else
                         f'{{"order_id": "{i}", "reason": "{FAILED_REASONS[r]}", "status": "failed"}}'
                         for i, s, r in zip(ids, self.o_status[arg].tolist(), self.o_reason[arg].tolist())]
            else:  # D_POSITION_CLOSE
                ids = _uuid_strings(self.pos_ids[arg])
                pnl = (self.pos_proceeds[arg] - self.pos_cost[arg]).tolist()
                texts = [f'{{"pnl": "{_money_text(p)}", "position_id": "{i}", "status": "{POSITION_STATUSES[s]}"}}'
                         for i, p, s in zip(ids, pnl, self.pos_status[arg].tolist())]
            for position, text in zip(where.tolist(), texts):
                out[position] = text
        return out


def _slippage_text(action: np.ndarray, amount_in: np.ndarray, price: np.ndarray, amount_out: np.ndarray) -> list:
    """slippage_actual of executed orders (amount_out set) via the order model's own functions."""
    out: list[str | None] = []
    buy, sell = OrderAction.BUY, OrderAction.SELL
    for a, i, p, o in zip(action.tolist(), amount_in.tolist(), price.tolist(), amount_out.tolist()):
        if not o:
            out.append(None)
            continue
        expected = expected_out(sell if a else buy, Decimal(i).scaleb(-8), Decimal(p).scaleb(-8))
        out.append(f"{calculate_slippage(expected, Decimal(o).scaleb(-8)):f}")
    return out


def _urlsafe(raw: bytes) -> str:
    """secrets.token_urlsafe's encoding of ``raw`` (base64url, no padding)."""
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def parse_scale(scale: str | int) -> str | int:
    """``scale`` as generate_demo_data accepts it ("small", "medium", "large" or a number of orders)."""
    _orders_for(scale)
    if isinstance(scale, str) and scale.strip().isdecimal():  # not isdigit: int("²") fails
        return int(scale.strip())
    return scale


def is_seeded(source: Any) -> bool:
    """True if the database already holds orders, positions or users (generate_demo_data would refuse)."""
    with _transaction(source) as connection:
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
