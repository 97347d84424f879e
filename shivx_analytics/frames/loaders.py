"""Loaders: positions, orders, audit logs, API keys and users as typed, exact pandas DataFrames.

    import shivx_analytics as sx
    orders = sx.load_orders(engine, since="2025-01-01", status=["executed", "failed"])  # money as float64
    exact = sx.load_orders(engine, since="2025-01-01", money="decimal")  # money as exact decimals
    for chunk in sx.load_audit_logs(url, event_type="api_request", chunksize=100_000): ...

Every frame has the same columns, order and dtypes on SQLite and PostgreSQL:

- ids (position_id, order_id, user_id, ...): ``string`` (pd.StringDtype("pyarrow")), canonical
  dashed lowercase UUID text; other text the same dtype.
- money, in one of two modes chosen with ``money=`` (every loader; domain.money decides):

  - ``money="float"`` (the default): ``float64``, NaN for nulls, so every pandas, numpy,
    matplotlib and quantstats operation works (``orders.amount_in * 2``, ``.cumsum()``,
    ``.describe()``, ``np.log1p``, ``.plot.hist()``, ``to_sql`` ...). Each value is the nearest
    float of the exact decimal value below (derived money too: computed exactly, then converted
    once; never a float product of float operands).
  - ``money="decimal"``: exact ``pd.ArrowDtype``: stored money (size, prices, amounts) as
    ``decimal128(20, 8)`` (NUMERIC(20,8)); derived money (entry_value, position_value, pnl,
    total_value, executed_price) as ``decimal128(38, 8)``, wide enough for every row the
    database accepts (999999999999 x 999999999999 is about 1e24). For reconciliation to the last
    digit; the reports, metrics and aggregates load this way.

  Derived money is computed exactly and rounded once, half to even, to 8 places (the models'
  rule, domain.money.round_money): equal to the model properties for every row.
- times: ``datetime64[us, UTC]``. Enums: categorical with every member as a category.
  Counts: ``Int64``. Flags: ``boolean``. Ratios (pnl_pct, slippage_actual): ``float64``.
- JSON (details, permissions, roles): compact text with sorted keys.
- password_hash and key_hash are never selected.

Rows come in a fixed order: the frame's time column, then its id. Filters are bound parameters
of a statement composed with SQLAlchemy Core; a filter takes one value or a list of values.
``since``/``until`` accept datetime, date or ISO text, naive meaning UTC; the window is
half-open ``[since, until)``.

How a load runs (ORM objects are never built):

1. SQLAlchemy Core composes the SELECT on the model tables and compiles it for the backend.
2. PostgreSQL: DuckDB attaches the database with its postgres scanner (read only) and runs the
   statement with its parameters; the scanner reads through binary COPY on parallel connections
   (ctid ranges, one exported snapshot) and pushes the filters into those COPY queries (DuckDB
   quotes the values there). A filtered load reads through one connection, so PostgreSQL can use
   its indexes. A filter the scanner cannot push down (load_audit_logs' ``details``: jsonb
   containment, for the GIN index) sends the whole statement to PostgreSQL through DuckDB's
   ``postgres_query``, its values as escaped literals (_pg_literal). SQLite: the standard
   library's sqlite3 runs the statement with its parameters (the same SQLite as the engines: a
   second copy in the process corrupts WAL databases).
3. Arrow converts the columns batch by batch (SQLite text -> decimal128 and timestamps, 32-hex
   ids -> dashed ids) on two threads, computes the derived money exactly, sorts the whole frame
   by time then id (cheaper than the database's sort, and without a second copy of the rows held
   by it), and hands the columns to pandas, applying the money mode last (float: each exact
   decimal to its nearest float64). With ``chunksize`` the database sorts instead, and
   each chunk is converted on its own.

Why these paths (orders, 1M rows of the demo data, this 2-core machine; a fresh process per
run, median of 3; benchmarks/load_benchmark.py): on PostgreSQL the DuckDB scanner read and
converted the table in 2.3-3.1 s, ADBC in 7.1-8.2 s (ADBC decodes NUMERIC slowly: 2.1 s of its
time went to four NUMERIC columns; casting them to text in SQL brought ADBC to about 3.6 s, still
above DuckDB), and the bare binary COPY took 1.7-2.2 s: DuckDB gets near that single-connection
floor because it reads with two PostgreSQL backends at once. On SQLite, ADBC (2.0-2.5 s) beat
DuckDB's scanner (2.7-3.3 s), and uses the indexes: DuckDB's SQLite scanner pushes no filters
down and scanned all 1M rows for a token filter (0.74 s against 0.10 s). Both bundle their own
copy of SQLite, which corrupts a WAL database that the process also writes through sqlite3
(see _sqlite_batches), so SQLite is read through sqlite3: about 2.5x ADBC's time for 1M orders.

Sources: an Engine, a URL string, a Connection or a Session; None (the default) is the analytics
database, ``db.analytics_url()``: SHIVX_ANALYTICS_DATABASE_URL (a read replica, say), else
SHIVX_DATABASE_URL, else the local SQLite file. The fast paths open their own read-only
connection from the source's URL, so they see committed data. A Connection or Session
whose transaction has written something (PostgreSQL: the transaction has an xid; SQLite: the
driver has a transaction open; a Session's pending objects are flushed first, as its own
queries would) is read through that connection instead, as are in-memory SQLite databases:
correct, but row by row and so slower. Without the duckdb packages PostgreSQL is read that way
too, with a RuntimeWarning.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
import uuid
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import _arrow
from shivx_analytics._arrow import FrameDataError
from shivx_analytics import db as _db
from shivx_analytics.config import get_settings
from shivx_analytics.db import DatabaseUnavailable, database_path, mask_url
from shivx_analytics.deadline import register_interrupter
from shivx_analytics.domain.money import DEFAULT_MONEY_MODE, MoneyMode, parse_money_mode
from shivx_analytics.domain.window import check_window, optional_instant
from shivx_analytics.models import (
    APIKey, Order, OrderAction, OrderStatus, OrderType, Position, PositionStatus, SecurityAuditLog, User,
)

__all__ = [
    "load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users",
    "FRAME_COLUMNS", "FrameDataError", "LoadError", "MoneyMode",
]

Source = Engine | Connection | Session | str | URL
DetailValue = str | int | float | bool | None


class LoadError(RuntimeError):
    """The database answered with an error (the message never contains a password)."""


# Public API ---------------------------------------------------------------------------------


def load_positions(source: Source | None = None, *, since: Any = None, until: Any = None, user_id: Any = None,
                   token: Any = None, status: Any = None, strategy: Any = None,
                   columns: Sequence[str] | None = None, chunksize: int | None = None,
                   money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Positions alive during ``[since, until)``, ordered by opened_at then position_id.

    A position is in the window when it was opened before ``until`` and was still open at
    ``since`` or later (closed_at is null or closed_at >= since): every position that held
    exposure at some instant of the window, open ones included.
    Columns: position_id, user_id, token, size, entry_price, current_price, stop_loss,
    take_profit, status, opened_at, closed_at, created_at, updated_at, strategy,
    entry_value, position_value, pnl (money, computed exactly) and pnl_pct (float).
    """
    window = _Window.parse(since, until)
    query = _Query(POSITIONS)
    if window.until is not None:
        query.where(lambda t, bind: t.c.opened_at < bind(window.until, "time"))
    if window.since is not None:
        query.where(lambda t, bind: sa.or_(t.c.closed_at.is_(None), t.c.closed_at >= bind(window.since, "time")))
    query.equals("user_id", user_id, "uuid")
    query.equals("token", token, "text")
    query.equals("status", status, PositionStatus)
    query.equals("strategy", strategy, "text")
    return _load(query, source, columns, chunksize, money)


def load_orders(source: Source | None = None, *, since: Any = None, until: Any = None, user_id: Any = None,
                token: Any = None, status: Any = None, action: Any = None, order_type: Any = None,
                position_id: Any = None, columns: Sequence[str] | None = None, chunksize: int | None = None,
                money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Orders created in ``[since, until)``, ordered by created_at then order_id.

    Columns: order_id, user_id, position_id, token, action, order_type, amount_in, amount_out,
    price, slippage_bps, slippage_actual, status, transaction_signature, failed_reason,
    created_at, executed_at, updated_at, total_value and executed_price (as Order's properties).
    """
    window = _Window.parse(since, until)
    query = _Query(ORDERS)
    query.window("created_at", window)
    query.equals("user_id", user_id, "uuid")
    query.equals("token", token, "text")
    query.equals("status", status, OrderStatus)
    query.equals("action", action, OrderAction)
    query.equals("order_type", order_type, OrderType)
    query.equals("position_id", position_id, "uuid")
    return _load(query, source, columns, chunksize, money)


def load_audit_logs(source: Source | None = None, *, since: Any = None, until: Any = None, event_type: Any = None,
                    user_id: Any = None, ip_address: Any = None, success: Any = None,
                    request_id: Any = None, details: Mapping[str, DetailValue] | None = None,
                    columns: Sequence[str] | None = None, chunksize: int | None = None,
                    money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Security audit events with timestamp in ``[since, until)``, ordered by timestamp then log_id.

    Columns: log_id, timestamp, event_type, user_id, ip_address, resource, action, success,
    request_id, details (JSON text) and, read from details, api_key_id (details.key_id),
    status_code (details.status_code) and reason (details.reason).

    ``details`` keeps the events whose details object holds every given key with exactly that
    JSON value, e.g. ``details={"key_id": key_id}`` (one key's requests) or
    ``details={"reason": "rate_limited", "status_code": 429}``. Keys are strings (any text:
    dots and quotes are part of the key, never a path); values are JSON scalars: str, int
    (64-bit), float (finite), bool or None. Types are compared as JSON compares them: ``True``
    matches only JSON true (not 1), ``"1"`` only the string "1", 1 and 1.0 the same number;
    ``None`` matches a key holding null, not a missing key; a key holding an array or object
    matches no scalar. An empty mapping filters nothing. Anything else raises ValueError.
    PostgreSQL evaluates it as ``details @> '{...}'::jsonb``, which the GIN index on details
    (jsonb_path_ops) answers: such a load is sent to PostgreSQL whole, through DuckDB's
    ``postgres_query`` (the scanner pushes no JSON operator down), its values written as
    escaped, typed literals. SQLite compares each key through ``json_each(details)`` (key,
    JSON type and value; json_extract paths cannot name every key), without an index.
    """
    window = _Window.parse(since, until)
    query = _Query(AUDIT_LOGS)
    query.window("timestamp", window)
    query.equals("event_type", event_type, "text")
    query.equals("user_id", user_id, "uuid")
    query.equals("ip_address", ip_address, "text")
    query.equals("success", success, "bool")
    query.equals("request_id", request_id, "text")
    query.contains("details", _details_filter(details))
    return _load(query, source, columns, chunksize, money)


def load_api_keys(source: Source | None = None, *, user_id: Any = None, active: Any = None,
                  money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame:
    """API keys (never their hash), ordered by created_at then key_id; ``active`` filters is_active.

    No column is money: ``money`` is accepted (and checked) so every loader takes the same argument."""
    query = _Query(API_KEYS)
    query.equals("user_id", user_id, "uuid")
    query.equals("is_active", active, "bool", argument="active")
    return _load(query, source, None, None, money)


def load_users(source: Source | None = None, *, user_id: Any = None, active: Any = None,
               money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame:
    """Users (never their password hash), ordered by created_at then user_id.

    No column is money: ``money`` is accepted (and checked) so every loader takes the same argument."""
    query = _Query(USERS)
    query.equals("user_id", user_id, "uuid")
    query.equals("is_active", active, "bool", argument="active")
    return _load(query, source, None, None, money)


# Frame definitions --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Column:
    name: str
    kind: str  # id, text, money, float, int, bool, time, json, enum
    categories: tuple[str, ...] = ()
    inputs: tuple[str, ...] = ()  # a derived column: the stored columns it is computed from
    derive: Callable[[dict[str, pa.Array]], pa.Array] | None = None


@dataclass(frozen=True)
class _Frame:
    name: str
    table: sa.Table
    columns: tuple[_Column, ...]
    time: str
    id: str

    def column(self, name: str) -> _Column:
        return next(c for c in self.columns if c.name == name)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]


def _enum(name: str, members: type[Enum]) -> _Column:
    return _Column(name, "enum", tuple(m.value for m in members))


def _derived(name: str, kind: str, inputs: tuple[str, ...], derive) -> _Column:
    return _Column(name, kind, inputs=inputs, derive=derive)


def _entry_value(c):
    return _arrow.money_product(c["size"], c["entry_price"], "entry_value")


def _position_value(c):
    return _arrow.money_product(c["size"], c["current_price"], "position_value")


def _pnl(c):
    return _arrow.money_difference_product(c["size"], c["current_price"], c["entry_price"], "pnl")


def _pnl_pct(c):
    difference = pc.subtract(c["current_price"], c["entry_price"]).cast(pa.float64())
    return pc.multiply(pc.divide(difference, c["entry_price"].cast(pa.float64())), 100.0)


def _executed(c) -> pa.Array:
    return pc.fill_null(pc.and_(pc.equal(c["status"], OrderStatus.EXECUTED.value), pc.is_valid(c["amount_out"])), False)


def _total_value(c):
    """buy: amount_in; sell: amount_out once executed, else amount_in x price (Order.total_value)."""
    buy = pc.fill_null(pc.equal(c["action"], OrderAction.BUY.value), False)
    executed = _executed(c)
    amount_in, amount_out = c["amount_in"].cast(_arrow.DERIVED_MONEY_TYPE), c["amount_out"].cast(_arrow.DERIVED_MONEY_TYPE)
    value = pc.if_else(buy, amount_in, pc.if_else(executed, amount_out, pa.scalar(None, _arrow.DERIVED_MONEY_TYPE)))
    quoted = pc.and_(pc.invert(buy), pc.invert(executed))
    if pc.any(quoted).as_py():
        notional = _arrow.money_product(pc.filter(c["amount_in"], quoted), pc.filter(c["price"], quoted), "total_value")
        value = pc.replace_with_mask(value, quoted, notional)
    return value


def _executed_price(c):
    """buy: amount_in / amount_out; sell: amount_out / amount_in; null unless executed."""
    executed = _executed(c)
    mask = executed.to_numpy(zero_copy_only=False)
    if not mask.any():
        return pa.nulls(len(executed), _arrow.DERIVED_MONEY_TYPE)
    buy = pc.filter(pc.equal(c["action"], OrderAction.BUY.value), executed)
    amount_in, amount_out = pc.filter(c["amount_in"], executed), pc.filter(c["amount_out"], executed)
    price = _arrow.money_quotient(pc.if_else(buy, amount_in, amount_out), pc.if_else(buy, amount_out, amount_in),
                                  "executed_price")
    return _arrow.scatter(len(executed), mask, price, _arrow.DERIVED_MONEY_TYPE)


def _detail(key: str, kind: str):
    def extract(c):
        def field_value(document):
            value = _arrow.json_field(document, key)
            if value is None:
                return None
            if kind == "int":
                if isinstance(value, bool):
                    return None
                if isinstance(value, int):
                    return value
                return int(value) if isinstance(value, str) and value.strip().lstrip("-").isdigit() else None
            return value if isinstance(value, str) else json.dumps(value, sort_keys=True, separators=(",", ":"))

        type_ = pa.int64() if kind == "int" else _arrow.TEXT_TYPE
        if c["details"].null_count == len(c["details"]):
            return pa.nulls(len(c["details"]), type_)
        return _arrow.map_unique(c["details"], field_value, type_)

    return extract


POSITIONS = _Frame("positions", Position.__table__, (
    _Column("position_id", "id"), _Column("user_id", "id"), _Column("token", "text"),
    _Column("size", "money"), _Column("entry_price", "money"), _Column("current_price", "money"),
    _Column("stop_loss", "money"), _Column("take_profit", "money"), _enum("status", PositionStatus),
    _Column("opened_at", "time"), _Column("closed_at", "time"), _Column("created_at", "time"),
    _Column("updated_at", "time"), _Column("strategy", "text"),
    _derived("entry_value", "money", ("size", "entry_price"), _entry_value),
    _derived("position_value", "money", ("size", "current_price"), _position_value),
    _derived("pnl", "money", ("size", "current_price", "entry_price"), _pnl),
    _derived("pnl_pct", "float", ("current_price", "entry_price"), _pnl_pct),
), time="opened_at", id="position_id")

ORDERS = _Frame("orders", Order.__table__, (
    _Column("order_id", "id"), _Column("user_id", "id"), _Column("position_id", "id"), _Column("token", "text"),
    _enum("action", OrderAction), _enum("order_type", OrderType), _Column("amount_in", "money"),
    _Column("amount_out", "money"), _Column("price", "money"), _Column("slippage_bps", "int"),
    _Column("slippage_actual", "float"), _enum("status", OrderStatus), _Column("transaction_signature", "text"),
    _Column("failed_reason", "text"), _Column("created_at", "time"), _Column("executed_at", "time"),
    _Column("updated_at", "time"),
    _derived("total_value", "money", ("action", "status", "amount_in", "amount_out", "price"), _total_value),
    _derived("executed_price", "money", ("action", "status", "amount_in", "amount_out"), _executed_price),
), time="created_at", id="order_id")

AUDIT_LOGS = _Frame("audit_logs", SecurityAuditLog.__table__, (
    _Column("log_id", "id"), _Column("timestamp", "time"), _Column("event_type", "text"), _Column("user_id", "id"),
    _Column("ip_address", "text"), _Column("resource", "text"), _Column("action", "text"),
    _Column("success", "bool"), _Column("request_id", "text"), _Column("details", "json"),
    _derived("api_key_id", "text", ("details",), _detail("key_id", "text")),
    _derived("status_code", "int", ("details",), _detail("status_code", "int")),
    _derived("reason", "text", ("details",), _detail("reason", "text")),
), time="timestamp", id="log_id")

API_KEYS = _Frame("api_keys", APIKey.__table__, (
    _Column("key_id", "id"), _Column("user_id", "id"), _Column("name", "text"), _Column("key_prefix", "text"),
    _Column("permissions", "json"), _Column("rate_limit", "int"), _Column("requests_count", "int"),
    _Column("last_used_at", "time"), _Column("expires_at", "time"), _Column("created_at", "time"),
    _Column("updated_at", "time"), _Column("is_active", "bool"),
), time="created_at", id="key_id")

USERS = _Frame("users", User.__table__, (
    _Column("user_id", "id"), _Column("username", "text"), _Column("email", "text"), _Column("roles", "json"),
    _Column("permissions", "json"), _Column("failed_login_attempts", "int"), _Column("locked_until", "time"),
    _Column("last_login", "time"), _Column("created_at", "time"), _Column("updated_at", "time"),
    _Column("is_active", "bool"),
), time="created_at", id="user_id")

# The columns of every frame, in order: the allow-list for ``columns=``.
FRAME_COLUMNS: dict[str, tuple[str, ...]] = {
    frame.name: tuple(frame.names) for frame in (POSITIONS, ORDERS, AUDIT_LOGS, API_KEYS, USERS)
}
_SECRETS = {"password_hash", "key_hash"}
assert not _SECRETS & {name for names in FRAME_COLUMNS.values() for name in names}


# Arguments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Window:
    since: datetime | None
    until: datetime | None

    @classmethod
    def parse(cls, since: Any, until: Any) -> _Window:
        window = cls(optional_instant(since, "since"), optional_instant(until, "until"))
        check_window(window.since, window.until)
        return window


def _values(argument: str, value: Any, parse: Callable[[Any], Any]) -> list[Any] | None:
    """A filter's values (one value or a list of them), each checked; None means no filter."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, set, frozenset, pd.Series, pd.Index, np.ndarray)) else [value]
    return [parse(item) for item in items]


def _parser(argument: str, kind: str | type[Enum]) -> Callable[[Any], Any]:
    if isinstance(kind, type) and issubclass(kind, Enum):
        valid = [m.value for m in kind]

        def parse_enum(item):
            text = item.value if isinstance(item, kind) else item
            if not isinstance(text, str) or text not in valid:
                raise ValueError(f"{argument}={item!r} is not valid: choose from {valid}")
            return text
        return parse_enum
    if kind == "uuid":
        def parse_uuid(item):
            if isinstance(item, uuid.UUID):
                return item
            try:
                return uuid.UUID(str(item))
            except ValueError:
                raise ValueError(f"{argument}={item!r} is not a UUID") from None
        return parse_uuid
    if kind == "bool":
        def parse_bool(item):
            if isinstance(item, (bool, np.bool_)):
                return bool(item)
            raise ValueError(f"{argument}={item!r} is not valid: choose from [True, False]")
        return parse_bool

    def parse_text(item):
        if not isinstance(item, str):
            raise ValueError(f"{argument}={item!r} must be a string (or a list of strings)")
        if "\x00" in item or not item.isascii() and _has_surrogate(item):  # no stored text holds these
            raise ValueError(f"{argument}={item!r} cannot match anything: text with a NUL character or "
                             "an unpaired surrogate is not valid in the database")
        return item
    return parse_text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _details_filter(details: Any) -> list[tuple[str, DetailValue]] | None:
    """``details=``: (key, value) pairs, each key a string and each value a JSON scalar."""
    if details is None:
        return None
    if not isinstance(details, Mapping):
        raise ValueError(f"details={details!r} is not valid: give a mapping of keys to JSON scalars, "
                         f"e.g. details={{'key_id': '...'}}, not a {type(details).__name__}")
    pairs = []
    for key, value in details.items():
        if not isinstance(key, str):
            raise ValueError(f"details key {key!r} is not valid: details keys must be strings, "
                             f"not {type(key).__name__}")
        _check_text(key, f"details key {key!r}")
        pairs.append((key, _detail_value(key, value)))
    return pairs


def _detail_value(key: str, value: Any) -> DetailValue:
    if isinstance(value, np.generic):  # numpy scalars as the Python values they hold
        value = value.item()
    what = f"details[{key!r}]={value!r}"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, what)
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{what} is not valid: an integer must fit 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} is not valid: JSON has no NaN or infinity")
        return value
    raise ValueError(f"{what} is not valid: details values must be JSON scalars "
                     f"(str, int, float, bool or None), not {type(value).__name__}")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text or not text.isascii() and _has_surrogate(text):
        raise ValueError(f"{what} cannot match anything: text with a NUL character or an unpaired "
                         "surrogate is not valid in the database")


def _output_columns(frame: _Frame, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return frame.names
    requested = [columns] if isinstance(columns, str) else list(columns)
    unknown = [c for c in requested if c not in frame.names]
    if unknown or not requested:
        what = f"unknown column(s) {unknown}" if unknown else "columns is empty"
        raise ValueError(f"{what} for {frame.name}: choose from {frame.names}")
    return list(dict.fromkeys(requested))


def _chunksize(chunksize: Any) -> int | None:
    if chunksize is None:
        return None
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive integer or None, not {chunksize!r}")
    return int(chunksize)


# Query composition --------------------------------------------------------------------------

Bind = Callable[[Any, str], sa.ColumnElement]  # with .backend: 'sqlite' or 'postgresql'


@dataclass
class _Query:
    """A frame, the conditions on its table (built once the backend is known) and nothing else."""

    frame: _Frame
    conditions: list[Callable[[sa.Table, Bind], sa.ColumnElement]] = field(default_factory=list)
    filtered: bool = False
    native: bool = False  # a condition DuckDB's scanner cannot push down: PostgreSQL runs the query

    def where(self, condition: Callable[[sa.Table, Bind], sa.ColumnElement]) -> None:
        self.conditions.append(condition)
        self.filtered = True

    def window(self, column: str, window: _Window) -> None:
        if window.since is not None:
            self.where(lambda t, bind: t.c[column] >= bind(window.since, "time"))
        if window.until is not None:
            self.where(lambda t, bind: t.c[column] < bind(window.until, "time"))

    def equals(self, column: str, value: Any, kind: str | type[Enum], *, argument: str | None = None) -> None:
        values = _values(argument or column, value, _parser(argument or column, kind))
        if values is None:
            return
        bind_kind = kind if isinstance(kind, str) else "text"

        def condition(t, bind):
            if not values:
                return sa.false()
            if len(values) == 1:
                return t.c[column] == bind(values[0], bind_kind)
            return t.c[column].in_([bind(v, bind_kind) for v in values])
        self.where(condition)

    def contains(self, column: str, pairs: list[tuple[str, DetailValue]] | None) -> None:
        """The JSON object in ``column`` holds each key with exactly that JSON scalar value."""
        if not pairs:
            return

        def condition(t, bind):
            if bind.backend == "sqlite":
                return sa.and_(*[_sqlite_json_has(t.c[column], key, value, bind) for key, value in pairs])
            document = json.dumps(dict(pairs), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
            return t.c[column].op("@>", is_comparison=True)(bind(document, "jsonb"))
        self.where(condition)
        self.native = True

    def select(self, fetch: Sequence[str], backend: str, *, ordered: bool = True, inline: bool = False) -> sa.Select:
        t = self.frame.table
        bind = _binder(backend, inline=inline)
        statement = sa.select(*[t.c[name] for name in fetch]).where(*[condition(t, bind) for condition in self.conditions])
        return statement.order_by(t.c[self.frame.time], t.c[self.frame.id]) if ordered else statement


def _binder(backend: str, *, inline: bool = False) -> Bind:
    """Bound parameters holding values as each backend stores them (never formatted into SQL).

    ``inline`` (PostgreSQL): escaped, typed literals instead (_pg_literal), for a statement
    that DuckDB hands to PostgreSQL as text (postgres_query takes no parameters).
    """
    def bind(value: Any, kind: str) -> sa.ColumnElement:
        if backend == "sqlite":
            if kind == "uuid":
                return sa.bindparam(None, value.hex, type_=sa.String())
            if kind == "time":
                return sa.bindparam(None, _sqlite_time(value), type_=sa.String())
            if kind == "bool":
                return sa.bindparam(None, int(value), type_=sa.Integer())
            if kind == "number":
                return sa.bindparam(None, value, type_=sa.Float() if isinstance(value, float) else sa.BigInteger())
            return sa.bindparam(None, value, type_=sa.String())
        if inline:
            return sa.literal_column(_pg_literal(value, kind))
        if kind == "uuid":
            return sa.bindparam(None, value, type_=sa.Uuid())
        if kind == "time":
            return sa.bindparam(None, value, type_=sa.DateTime(timezone=True))
        if kind == "bool":
            return sa.bindparam(None, value, type_=sa.Boolean())
        if kind == "jsonb":
            return sa.cast(sa.bindparam(None, value, type_=sa.String()), JSONB)
        return sa.bindparam(None, value, type_=sa.String())
    bind.backend = backend
    return bind


def _pg_literal(value: Any, kind: str) -> str:
    """A PostgreSQL literal of ``value``: printable ASCII only, every quote and backslash escaped."""
    if kind == "uuid":
        return f"'{uuid.UUID(str(value))}'::uuid"
    if kind == "time":
        return f"'{value.astimezone(timezone.utc).isoformat()}'::timestamptz"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "jsonb":
        return f"{_pg_string(value)}::jsonb"
    if kind == "text":
        return _pg_string(value)
    raise ValueError(f"no PostgreSQL literal for a {kind} value")


def _pg_string(text: str) -> str:
    """An escape string constant, E'...': read the same whatever standard_conforming_strings and
    client_encoding say. Printable ASCII stays, quote and backslash are escaped, anything else
    becomes a \\uXXXX or \\UXXXXXXXX escape (NUL and lone surrogates are refused before this)."""
    parts = []
    for character in text:
        code = ord(character)
        if character in "\\'":
            parts.append("\\" + character)
        elif 0x20 <= code < 0x7F:
            parts.append(character)
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    return "E'" + "".join(parts) + "'"


def _sqlite_json_has(column: sa.ColumnElement, key: str, value: DetailValue, bind: Bind) -> sa.ColumnElement:
    """SQLite: the JSON object in ``column`` has ``key`` holding ``value``, as PostgreSQL's @> decides.

    json_each gives each top-level entry's decoded key, JSON type and SQL value (true/false
    read 1/0, hence the type test). Not json_extract: a path cannot name every key (SQLite
    3.40 compares a quoted path label with the key as written, escapes and all).
    """
    entry = sa.func.json_each(column).table_valued("key", "type", "atom").alias()
    conditions = [entry.c.key == bind(key, "text")]
    if value is None or isinstance(value, bool):
        conditions.append(entry.c.type == bind({None: "null", True: "true", False: "false"}[value], "text"))
    elif isinstance(value, str):
        conditions += [entry.c.type == bind("text", "text"), entry.c.atom == bind(value, "text")]
    else:
        conditions += [entry.c.type.in_([bind("integer", "text"), bind("real", "text")]),
                       entry.c.atom == bind(value, "number")]
    return sa.exists(sa.select(sa.literal_column("1")).select_from(entry).where(*conditions))


def _sqlite_time(value: datetime) -> str:
    """UTC text comparable with what UTCDateTime stores on SQLite.

    Stored values read 'YYYY-MM-DD HH:MM:SS.ffffff' (or, from a server default, without the
    fraction). Leaving the fraction out when it is zero keeps text order equal to time order for
    both forms: '... 00:00:00' <= '... 00:00:00.000000' and '... 00:00:00' < '... 00:00:00.5'.
    """
    value = value.astimezone(timezone.utc)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


# Loading ------------------------------------------------------------------------------------


def _load(query: _Query, source: Source, columns: Sequence[str] | None, chunksize: Any, money: Any):
    frame = query.frame
    output = _output_columns(frame, columns)
    size = _chunksize(chunksize)
    mode = parse_money_mode(money)
    needed = {name for name in output if frame.column(name).derive is None}
    needed |= {i for name in output for i in frame.column(name).inputs}
    needed |= {frame.time, frame.id}
    fetch = [name for name in frame.names if name in needed]
    target = _resolve(source)
    try:
        # A whole frame is sorted in Arrow (cheaper than the database's sort, and no second copy
        # held by it); chunks must arrive in order, so the database sorts them.
        batches = _batches(target, query, fetch, size, ordered=size is not None)
    except BaseException:
        target.close()
        raise
    if size is None:
        keep = list(dict.fromkeys([*output, frame.time, frame.id]))
        try:
            typed = list(_ordered_map(lambda raw: _typed(frame, raw, keep), batches))
        finally:
            batches.close()
            target.close()
        return _to_pandas(frame, _in_order(frame, typed or [_typed(frame, _empty(fetch), keep)]), output, mode)
    return _chunks(frame, target, batches, fetch, output, size, mode)


def _chunks(frame, target, batches, fetch, output, size, mode) -> Iterator[pd.DataFrame]:
    chunks = _ordered_map(lambda raw: _to_pandas(frame, _joined([_typed(frame, raw, output)]), output, mode),
                          _rechunk(batches, size))
    try:
        produced = False
        for chunk in chunks:
            produced = True
            yield chunk
        if not produced:
            yield _to_pandas(frame, _joined([_typed(frame, _empty(fetch), output)]), output, mode)
    finally:
        chunks.close()
        batches.close()
        target.close()


def _typed(frame: _Frame, raw: pa.Table, keep: list[str]) -> dict[str, pa.Array]:
    """One batch: every fetched column converted to its frame type, then the derived ones."""
    typed = {}
    for name in raw.column_names:
        try:
            typed[name] = _convert(raw.column(name), frame.column(name))
        except FrameDataError as exc:  # a value that cannot be converted: say where it is stored
            position = getattr(exc, "position", None)
            if position is None:
                raise
            row = (f"{frame.id} {_arrow.to_id(raw.column(frame.id).slice(position, 1))[0]}"
                   if frame.id in raw.column_names else f"row {position + 1} of its batch")
            raise FrameDataError(f"{frame.name}.{name} at {row}: {exc}") from None
    typed = _arrow.detach(typed, raw)
    for name in keep:
        column = frame.column(name)
        if column.derive is not None:
            typed[name] = column.derive(typed)
    kept = {name: typed[name] for name in keep}
    del raw, typed
    pa.default_memory_pool().release_unused()  # give the conversions' scratch memory back
    return kept


def _joined(batches: list[dict[str, pa.Array]]) -> dict[str, pa.Array | pa.ChunkedArray]:
    names = list(batches[0])
    return {name: batches[0][name] if len(batches) == 1 else pa.chunked_array([b.pop(name) for b in batches])
            for name in names}


def _in_order(frame: _Frame, batches: list[dict[str, pa.Array]]) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The batches as one set of columns, sorted by the frame's time column, then its id."""
    columns = _joined(batches)
    keys = pa.table({"time": columns[frame.time], "id": columns[frame.id]})
    order = pc.sort_indices(keys, sort_keys=[("time", "ascending"), ("id", "ascending")])
    if np.array_equal(order.to_numpy(), np.arange(len(order))):
        return columns
    pool = pa.default_memory_pool()
    for name in list(columns):
        column = columns.pop(name)
        columns[name] = column.take(order)
        del column
        pool.release_unused()
    return columns


def _to_pandas(frame: _Frame, columns: dict[str, pa.Array | pa.ChunkedArray], output: list[str],
               money: MoneyMode) -> pd.DataFrame:
    """The typed columns as a DataFrame; the money mode is applied here, last, to money columns."""
    series = {}
    for name in output:
        column = frame.column(name)
        series[name] = _arrow.to_series(columns.pop(name), column.kind, column.categories, money)
    return pd.DataFrame(series)


def _ordered_map(function: Callable[[Any], Any], items: Iterable[Any], workers: int = 2) -> Iterator[Any]:
    """function(item) for each item, in order, on ``workers`` threads (Arrow releases the GIL)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shivx-frames") as pool:
        pending: deque = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _empty(fetch: list[str]) -> pa.Table:
    return pa.table({name: pa.nulls(0) for name in fetch})


def _convert(array: pa.ChunkedArray, column: _Column) -> pa.Array:
    kind = column.kind
    if kind == "id":
        return _arrow.to_id(array)
    if kind == "money":
        return _arrow.to_money(array)
    if kind == "float":
        return _arrow.to_float(array)
    if kind == "time":
        return _arrow.to_time(array)
    if kind == "int":
        return _arrow.to_int(array)
    if kind == "bool":
        return _arrow.to_bool(array)
    if kind == "json":
        return _arrow.to_json(array)
    if kind == "enum":
        return _arrow.to_enum(array, column.categories, column.name)
    return _arrow.to_text(array)


def _rechunk(batches: Iterable[pa.Table], size: int) -> Iterator[pa.Table]:
    """Tables of exactly ``size`` rows (the last one shorter) from batches of any size."""
    pending: list[pa.Table] = []
    count = 0
    for table in batches:
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        while count >= size:
            joined = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            yield joined.slice(0, size)
            rest = joined.slice(size)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]


# Sources ------------------------------------------------------------------------------------


@dataclass
class _Target:
    backend: str  # "sqlite" or "postgresql"
    url: URL | None  # the fast path reads from here
    connection: Connection | None = None  # ... or, when set, rows are read through this connection
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    statement_timeout_ms: int | None = None  # the SQLite reader's own limit (PostgreSQL's is in the URL)

    def close(self) -> None:
        while self.cleanup:
            try:
                self.cleanup.pop()()
            except sa.exc.DBAPIError as exc:  # a lost connection has nothing left to roll back
                if not _db.is_connection_lost(exc):
                    raise


def _resolve(source: Source | None) -> _Target:
    """Where to read from: a URL for the fast path, or a connection whose writes must be seen.

    None: the analytics database (SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL, else the
    local SQLite file), as ``sx.connect(analytics=True)``. A URL (and None) gets the settings' TLS,
    connect timeout, keepalives and statement timeout, as create_engine gives them; an Engine's own
    connections follow the settings it was created with (its URL carries PostgreSQL's)."""
    if source is None:
        return _resolve(_db.analytics_url())
    if isinstance(source, (str, URL)):
        url = _db.engine_url(source)
        if _in_memory(url):
            engine = sa.create_engine(url)
            connection = engine.connect()
            return _Target("sqlite", None, connection, [engine.dispose, connection.close])
        return _Target(url.get_backend_name(), url, statement_timeout_ms=get_settings().statement_timeout_ms)
    if isinstance(source, Engine):
        url = source.url
        if _in_memory(url):
            connection = source.connect()
            return _Target("sqlite", None, connection, [connection.close])
        return _Target(url.get_backend_name(), url,
                       statement_timeout_ms=_db.engine_settings(source).statement_timeout_ms)
    if isinstance(source, Session):
        if source.autoflush and (source.new or source.dirty or source.deleted):
            source.flush()
        bind = source.get_bind()
        if source.in_transaction():
            return _from_connection(source.connection())
        return _resolve(bind)
    if isinstance(source, Connection):
        return _from_connection(source)
    raise TypeError(f"source must be an Engine, a Connection, a Session or a database URL, not {type(source).__name__}")


def _from_connection(connection: Connection) -> _Target:
    url = connection.engine.url
    backend = url.get_backend_name()
    if _in_memory(url) or _has_uncommitted_writes(connection, backend):
        return _Target(backend, None, connection)
    return _Target(backend, url, statement_timeout_ms=_db.engine_settings(connection.engine).statement_timeout_ms)


def _has_uncommitted_writes(connection: Connection, backend: str) -> bool:
    if not connection.in_transaction():
        return False
    if backend == "sqlite":
        return bool(getattr(connection.connection.dbapi_connection, "in_transaction", True))
    return bool(connection.exec_driver_sql("SELECT txid_current_if_assigned() IS NOT NULL").scalar())


def _in_memory(url: URL) -> bool:
    database = url.database or ""
    return url.get_backend_name() == "sqlite" and (
        database in ("", ":memory:") or database.startswith("file::memory:") or "mode=memory" in database
        or url.query.get("mode") == "memory")


# Transports: each yields raw Arrow tables of the fetched columns, in order --------------------


def _batches(target: _Target, query: _Query, fetch: list[str], size: int | None, *, ordered: bool) -> Iterator[pa.Table]:
    if target.connection is not None:
        return _rows_batches(target.connection, query.select(fetch, target.backend), query.frame, size)
    if target.backend == "postgresql":
        if _duckdb_available():
            return _duckdb_batches(target.url, query, fetch, size, ordered)
        engine = sa.create_engine(target.url)
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise _unavailable(exc, target.url, query.frame) from None
        target.cleanup += [engine.dispose, connection.close]
        return _rows_batches(connection, query.select(fetch, "postgresql"), query.frame, size)
    return _sqlite_batches(target.url, query, fetch, size, ordered, target.statement_timeout_ms)


def _positional(statement: sa.ClauseElement, dialect) -> tuple[str, list[Any]]:
    compiled = statement.compile(dialect=dialect)
    values = compiled.params  # computed afresh on every access: once, not once per parameter
    return str(compiled), [values[name] for name in (compiled.positiontup or [])]


# SQLite through the standard library's sqlite3, the SQLite that SQLAlchemy's engines use.
# Not through ADBC's driver (which bundles a second copy of SQLite): two copies of SQLite in one
# process corrupt a WAL database (sqlite.org/howtocorrupt.html, 2.3). Each copy sees the other's
# POSIX locks as its own, so a reader opening the file truncated the shared-memory wal-index under
# the engine's connections: writers beside a load died of SIGBUS or left "database disk image is
# malformed" (tests/test_load.py). Rows arrive as tuples and become Arrow columns, text or int64
# as SQLite stores them, so the converters in _arrow.py see what ADBC handed them.

_SQLITE_BATCH_ROWS = 65_536


def _sqlite_batches(url: URL, query: _Query, fetch: list[str], size: int | None, ordered: bool,
                    statement_timeout_ms: int | None = None) -> Iterator[pa.Table]:
    import sqlite3

    frame = query.frame
    t = frame.table
    bind = _binder("sqlite")
    statement = sa.select(*[t.c[n].label(n) for n in fetch]).where(*[condition(t, bind) for condition in query.conditions])
    if ordered:
        statement = statement.order_by(t.c[frame.time], t.c[frame.id])
    sql, params = _positional(statement, SQLiteDialect())
    path = database_path(url)  # a file: URI (mode=ro&uri=true) names its file too
    if path is None or not path.exists():
        raise DatabaseUnavailable(f"cannot read {mask_url(url)}: no such SQLite file")
    types = [pa.int64() if frame.column(n).kind in ("int", "bool") else pa.string() for n in fetch]
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=get_settings().sqlite_busy_timeout, check_same_thread=False)
    # The statement timeout as the engines apply it: the query and the fetching of its rows
    clock = None if statement_timeout_ms is None else _db.watch_statement_time(connection, statement_timeout_ms)

    def failed(exc: sqlite3.Error) -> LoadError:
        reason = _db.statement_timeout_message(statement_timeout_ms) if clock and clock.fired else _first_line(exc)
        return LoadError(f"loading {frame.name} from {mask_url(url)}: {reason}")

    try:
        if clock is not None:
            clock.start()
        try:
            cursor = connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise failed(exc) from None
        rows_per_batch = min(size or _SQLITE_BATCH_ROWS, _SQLITE_BATCH_ROWS)
        while True:
            try:
                rows = cursor.fetchmany(rows_per_batch)
            except sqlite3.Error as exc:
                raise failed(exc) from None
            if not rows:
                return
            yield pa.table([_sqlite_array(column, kind) for column, kind in zip(zip(*rows), types)], names=fetch)
    finally:
        connection.close()


def _sqlite_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """A column of one batch; a value stored with another SQLite type than its column's is converted."""
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        convert = str if arrow_type == pa.string() else int
        return pa.array([None if v is None else convert(v) for v in values], arrow_type)


# PostgreSQL through DuckDB's postgres scanner (one DuckDB instance per process, the extension
# loaded once; each load attaches the database read-only under its own name and detaches it).

_DUCKDB_BATCH_ROWS = 65_536
_duckdb_lock = threading.Lock()
_duckdb_database = None
_duckdb_running: dict[Any, URL] = {}  # the cursors of the loads under way and their databases


def _interrupt_duckdb() -> None:
    """End every DuckDB load under way (a run's time limit expired: deadline.py).

    DuckDB checks its interrupt flag between tasks only, and the postgres scanner waits for COPY
    data in a blocking socket read: against a database whose network path froze it would wait
    forever. So the process's own sockets to those databases are shut down as well: the read
    returns, libpq reports the connection closed and the load raises."""
    with _duckdb_lock:
        running = dict(_duckdb_running)
    for cursor in running:
        cursor.interrupt()
    _shut_down_sockets_to({(url.host, url.port or 5432) for url in running.values()})


def _shut_down_sockets_to(servers: set[tuple[str | None, int]]) -> None:
    """shutdown() this process's sockets connected to ``servers`` ((host or None for the local
    Unix socket, port)); Linux (/proc/self/fd), elsewhere nothing happens."""
    import os
    import socket

    addresses = set()
    for host, port in servers:
        if host is None or host.startswith("/"):
            addresses.add(f".s.PGSQL.{port}")
            continue
        try:
            addresses |= {(info[4][0], port) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except OSError:
            continue
    try:
        descriptors = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for descriptor in descriptors:
        try:
            copy = os.dup(descriptor)
        except OSError:  # closed meanwhile
            continue
        try:
            duplicate = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        with duplicate:
            try:
                peer = duplicate.getpeername()
            except OSError:
                continue
            matches = (isinstance(peer, str) and any(peer.endswith(a) for a in addresses if isinstance(a, str))
                       or isinstance(peer, tuple) and tuple(peer[:2]) in addresses)
            if matches and duplicate.type == socket.SOCK_STREAM:
                try:
                    duplicate.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


register_interrupter(_interrupt_duckdb)


def _duckdb_available() -> bool:
    try:
        _duckdb()
    except ImportError as exc:
        warnings.warn(f"{exc}: reading PostgreSQL row by row instead (slow)", RuntimeWarning, stacklevel=4)
        return False
    return True


def _duckdb():
    global _duckdb_database
    with _duckdb_lock:
        if _duckdb_database is None:
            import duckdb

            try:
                import duckdb_extension_postgres_scanner as scanner
            except ImportError:
                raise ImportError("the package duckdb-extension-postgres-scanner is not installed") from None
            found = sorted(Path(scanner.__path__[0]).rglob(f"v{duckdb.__version__}/postgres_scanner.duckdb_extension"))
            if not found:
                raise ImportError(f"duckdb-extension-postgres-scanner has no build for duckdb {duckdb.__version__}")
            database = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                          "autoload_known_extensions": False})
            database.execute(f"LOAD {_sql_string(str(found[0]))}")
            database.execute("SET TimeZone = 'UTC'")
            # a sort too big for memory (chunked loads) spills here, not into the working directory
            spill = Path(tempfile.gettempdir()) / "shivx-analytics-duckdb"
            database.execute(f"SET temp_directory = {_sql_string(str(spill))}")
            _duckdb_database = database
        return _duckdb_database


def _duckdb_batches(url: URL, query: _Query, fetch: list[str], size: int | None, ordered: bool) -> Iterator[pa.Table]:
    import duckdb

    frame = query.frame
    alias = f"shivx_{uuid.uuid4().hex}"
    if query.native:
        # PostgreSQL runs the whole statement (values inlined as escaped literals: postgres_query
        # takes no parameters), so it can use indexes DuckDB knows nothing of, e.g. GIN on details.
        remote = _compiled_inline(query.select(fetch, "postgresql", ordered=False, inline=True))
        sql = "SELECT * FROM postgres_query($1, $2)"
        if ordered:
            sql += f" ORDER BY {_duckdb_identifier(frame.time)}, {_duckdb_identifier(frame.id)}"
        params = [alias, remote]
    else:
        sql, params = _positional(query.select(fetch, "postgresql", ordered=ordered),
                                  PGDialect(paramstyle="numeric_dollar"))
    libpq = _libpq_uri(url)
    schema = frame.table.schema or "public"
    cursor = _duckdb().cursor()
    with _duckdb_lock:
        _duckdb_running[cursor] = url
    attached = False
    try:
        try:
            # Unfiltered loads read ctid ranges in parallel; filtered ones one COPY that can use indexes.
            cursor.execute(f"SET pg_use_ctid_scan = {'false' if query.filtered else 'true'}")
            cursor.execute(f"ATTACH {_sql_string(libpq)} AS {alias} (TYPE postgres, READ_ONLY)")
            attached = True
            cursor.execute(f"USE {alias}.{schema}")
            result = cursor.execute(sql, params)
            to_reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
            reader = to_reader(min(size or _DUCKDB_BATCH_ROWS, _DUCKDB_BATCH_ROWS))
        except duckdb.Error as exc:
            raise _duckdb_error(exc, url, frame) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, OSError) as exc:  # Arrow's stream reader hands DuckDB's errors on as OSError
                raise _duckdb_error(exc, url, frame) from None
            yield pa.Table.from_batches([batch])
    finally:
        try:
            if attached:
                cursor.execute("USE memory")
                cursor.execute(f"DETACH {alias}")
        finally:
            with _duckdb_lock:
                _duckdb_running.pop(cursor, None)
            cursor.close()


def _compiled_inline(statement: sa.Select) -> str:
    """PostgreSQL SQL text of a statement built with inline literals (no parameters left)."""
    compiled = statement.compile(dialect=PGDialect(paramstyle="numeric_dollar"))
    if compiled.params:
        raise AssertionError(f"a parameter was left in an inline statement: {sorted(compiled.params)}")
    return str(compiled)


def _duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _libpq_uri(url: URL) -> str:
    """``url`` as libpq reads it: query values (sslrootcert, options ...) percent-encoded, since
    libpq takes '+' literally where SQLAlchemy's rendering means a space."""
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return f"{base}?{urlencode(dict(url.query), doseq=True, quote_via=quote)}" if url.query else base


def _duckdb_error(exc: Exception, url: URL, frame: _Frame) -> Exception:
    message = _first_line(exc)
    if url.password:
        for secret in {str(url.password), quote(str(url.password), safe="")}:
            message = message.replace(secret, "***")
    if "connect" in message.lower():
        return DatabaseUnavailable(f"loading {frame.name} from {mask_url(url)}: {message}; {_RETRY_ADVICE}")
    return LoadError(f"loading {frame.name} from {mask_url(url)}: {message}")


_RETRY_ADVICE = ("the database could not be reached or went away mid-load: check that it is up and "
                 "reachable (`shivx-analytics health`), then load again")


def _unavailable(exc: BaseException, url: URL, frame: _Frame) -> DatabaseUnavailable:
    """A lost or refused connection on the row-by-row path, said as the fast paths say it."""
    return DatabaseUnavailable(f"loading {frame.name} from {mask_url(url)}: {_first_line(getattr(exc, 'orig', None) or exc)}; {_RETRY_ADVICE}")


# Any backend, through a SQLAlchemy connection: the statement's column types convert each value
# (Money -> Decimal, Uuid -> UUID, ...), then Arrow arrays are built per kind.

def _rows_batches(connection: Connection, statement: sa.Select, frame: _Frame, size: int | None) -> Iterator[pa.Table]:
    try:
        result = connection.execute(statement)
    except sa.exc.DBAPIError as exc:
        if _db.is_connection_lost(exc):
            raise _unavailable(exc, connection.engine.url, frame) from None
        raise
    names = list(result.keys())
    produced = False
    try:
        while True:
            try:
                rows = result.fetchmany(size or 100_000)
            except sa.exc.DBAPIError as exc:
                if _db.is_connection_lost(exc):
                    raise _unavailable(exc, connection.engine.url, frame) from None
                raise
            if not rows and produced:
                return
            produced = True
            values = list(zip(*rows)) if rows else [() for _ in names]
            yield pa.table({name: _python_array(column, frame.column(name).kind)
                            for name, column in zip(names, values)})
            if not rows:
                return
    finally:
        result.close()


def _python_array(values: Sequence[Any], kind: str) -> pa.Array:
    if kind == "id":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if kind in ("money", "float"):
        return pa.array([None if v is None else Decimal(v) for v in values], pa.decimal128(38, 12))
    if kind == "time":
        return pa.array(list(values), pa.timestamp("us", tz="UTC"))
    if kind == "json":
        return pa.array([None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"),
                                                           ensure_ascii=False) for v in values], pa.string())
    if kind == "enum":
        return pa.array([v.value if isinstance(v, Enum) else v for v in values], pa.string())
    if kind == "int":
        return pa.array(list(values), pa.int64())
    if kind == "bool":
        return pa.array(list(values), pa.bool_())
    return pa.array(list(values), pa.string())


def _sql_string(text: str) -> str:
    """A SQL string literal (for DuckDB's ATTACH and LOAD, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
