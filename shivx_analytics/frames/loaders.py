"""The public loaders: a frame's filters, then one load through a transport into pandas.

Each loader checks its arguments (arguments.py), adds its conditions to a query (query.py) and
hands it to ``_load``, which picks where to read (targets.py), reads raw Arrow batches through a
transport and converts them (convert.py). What the frames hold and how a load runs:
shivx_analytics/frames/__init__.py and docs/performance.md.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from typing import Any, cast

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from shivx_analytics.domain.money import DEFAULT_MONEY_MODE, MoneyMode, parse_money_mode
from shivx_analytics.models import OrderAction, OrderStatus, OrderType, PositionStatus
from shivx_analytics.sources import Source

from .arguments import DetailValue, _chunksize, _details_filter, _output_columns, _Window
from .convert import _empty, _in_order, _joined, _ordered_map, _rechunk, _to_pandas, _typed
from .query import _Query
from .schemas import API_KEYS, AUDIT_LOGS, ORDERS, POSITIONS, USERS, _Frame
from .targets import _batches, _resolve, _Target

__all__ = ["load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users"]


def load_positions(source: Source = None, *, since: Any = None, until: Any = None, user_id: Any = None,
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


def load_orders(source: Source = None, *, since: Any = None, until: Any = None, user_id: Any = None,
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


def load_audit_logs(source: Source = None, *, since: Any = None, until: Any = None, event_type: Any = None,
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


def load_api_keys(source: Source = None, *, user_id: Any = None, active: Any = None,
                  money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame:
    """API keys (never their hash), ordered by created_at then key_id; ``active`` filters is_active.

    No column is money: ``money`` is accepted (and checked) so every loader takes the same argument."""
    return _load_of_users(API_KEYS, source, user_id, active, money)


def load_users(source: Source = None, *, user_id: Any = None, active: Any = None,
               money: MoneyMode | str = DEFAULT_MONEY_MODE) -> pd.DataFrame:
    """Users (never their password hash), ordered by created_at then user_id.

    No column is money: ``money`` is accepted (and checked) so every loader takes the same argument."""
    return _load_of_users(USERS, source, user_id, active, money)


def _load_of_users(frame: _Frame, source: Source, user_id: Any, active: Any, money: Any) -> pd.DataFrame:
    """A whole frame filtered by user_id and is_active (``active``): API keys and users."""
    query = _Query(frame)
    query.equals("user_id", user_id, "uuid")
    query.equals("is_active", active, "bool", argument="active")
    return cast(pd.DataFrame, _load(query, source, None, None, money))  # no chunksize: one frame


# Loading ------------------------------------------------------------------------------------


def _load(query: _Query, source: Source, columns: Sequence[str] | None, chunksize: Any,
          money: Any) -> pd.DataFrame | Iterator[pd.DataFrame]:
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


def _chunks(frame: _Frame, target: _Target, batches: Generator[pa.Table, None, None], fetch: list[str],
            output: list[str], size: int, mode: MoneyMode) -> Iterator[pd.DataFrame]:
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
