"""The five frames: their columns, kinds and order, and the derived columns computed from them.

Separate because it is the one statement of what a frame holds: the loaders, the query builder,
the converters and the push-down aggregates (aggregates/orders.py) all read these definitions.
Derived money (entry_value, pnl, total_value, executed_price ...) is computed here in Arrow,
exactly, as the models compute it (shivx_analytics/_arrow.py has the kernels).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from shivx_analytics import _arrow
from shivx_analytics.models import (
    APIKey,
    Order,
    OrderAction,
    OrderStatus,
    OrderType,
    Position,
    PositionStatus,
    SecurityAuditLog,
    User,
)


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
