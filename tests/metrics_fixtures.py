"""Hand-built frames with exactly the dtypes the loaders return, for the metrics tests.

Each builder takes a list of dicts (only the fields a test cares about; the rest default) and
returns a typed frame; an empty list gives a typed empty frame.
"""

from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal, localcontext

import numpy as np
import pandas as pd
import pyarrow as pa

MONEY = pd.ArrowDtype(pa.decimal128(20, 8))
UTC_US = "datetime64[us, UTC]"
Q = Decimal("0.00000001")


def ts(value: str) -> pd.Timestamp:
    """An aware UTC Timestamp from an ISO string."""
    return pd.Timestamp(value, tz="UTC")


def d(value: str) -> Decimal:
    return Decimal(value)


def _q(value: Decimal) -> Decimal:
    return value.quantize(Q, rounding=ROUND_HALF_EVEN)


def _money(values: list[object]) -> pd.Series:
    return pd.Series([None if v is None else Decimal(str(v)) for v in values], dtype=MONEY)


def _times(values: list[object]) -> pd.Series:
    return pd.Series([pd.NaT if v is None else pd.Timestamp(v).tz_convert("UTC")
                      if pd.Timestamp(v).tzinfo else pd.Timestamp(v, tz="UTC") for v in values],
                     dtype=UTC_US)


def _cat(values: list[object], categories: list[str]) -> pd.Series:
    return pd.Series(pd.Categorical(values, categories=categories))


def _str(values: list[object]) -> pd.Series:
    return pd.Series(values, dtype="string")


def positions_frame(rows: list[dict]) -> pd.DataFrame:
    """Positions as load_positions returns them (entry_value, position_value, pnl computed exactly)."""
    defaults = {"user_id": "u1", "token": "SOL", "size": "1", "entry_price": "100",
                "current_price": "100", "stop_loss": None, "take_profit": None, "status": "closed",
                "opened_at": "2024-01-01T00:00:00", "closed_at": None, "strategy": None}
    rows = [{**defaults, "position_id": f"p{i:03d}", **row} for i, row in enumerate(rows)]
    col = lambda name: [r[name] for r in rows]  # noqa: E731
    size = [Decimal(str(v)) for v in col("size")]
    entry = [Decimal(str(v)) for v in col("entry_price")]
    current = [Decimal(str(v)) for v in col("current_price")]
    with localcontext() as ctx:
        ctx.prec = 60
        entry_value = [_q(s * e) for s, e in zip(size, entry)]
        position_value = [_q(s * c) for s, c in zip(size, current)]
        pnl = [_q(s * (c - e)) for s, c, e in zip(size, current, entry)]
        pnl_pct = [float(s * (c - e) / (s * e) * 100) for s, c, e in zip(size, current, entry)]
    return pd.DataFrame({
        "position_id": _str(col("position_id")),
        "user_id": _str(col("user_id")),
        "token": _str(col("token")),
        "size": _money(size),
        "entry_price": _money(entry),
        "current_price": _money(current),
        "stop_loss": _money(col("stop_loss")),
        "take_profit": _money(col("take_profit")),
        "status": _cat(col("status"), ["open", "closed", "liquidated"]),
        "opened_at": _times(col("opened_at")),
        "closed_at": _times(col("closed_at")),
        "strategy": _str(col("strategy")),
        "entry_value": _money(entry_value),
        "position_value": _money(position_value),
        "pnl": _money(pnl),
        "pnl_pct": pd.Series(pnl_pct, dtype="float64"),
    })


def closed(pnl: str, closed_at: str, **fields: object) -> dict:
    """A closed position of size 1 entered at 100 whose realized pnl is `pnl`."""
    price = Decimal("100") + Decimal(pnl)
    return {"status": "closed", "current_price": str(price), "closed_at": closed_at, **fields}


def orders_frame(rows: list[dict]) -> pd.DataFrame:
    """Orders as load_orders returns them (total_value and executed_price computed)."""
    defaults = {"user_id": "u1", "position_id": None, "token": "SOL", "action": "buy",
                "order_type": "market", "amount_in": "100", "amount_out": None, "price": "100",
                "slippage_bps": 50, "slippage_actual": None, "status": "executed",
                "transaction_signature": None, "created_at": "2024-01-01T00:00:00",
                "executed_at": None, "failed_reason": None}
    rows = [{**defaults, "order_id": f"o{i:03d}", **row} for i, row in enumerate(rows)]
    col = lambda name: [r[name] for r in rows]  # noqa: E731
    total_value, executed_price = [], []
    with localcontext() as ctx:
        ctx.prec = 60
        for r in rows:
            amount_in = Decimal(str(r["amount_in"]))
            amount_out = None if r["amount_out"] is None else Decimal(str(r["amount_out"]))
            price = Decimal(str(r["price"]))
            executed = r["status"] == "executed"
            if r["action"] == "buy":
                total_value.append(amount_in)
                executed_price.append(_q(amount_in / amount_out) if executed else None)
            else:
                total_value.append(amount_out if executed else _q(amount_in * price))
                executed_price.append(_q(amount_out / amount_in) if executed else None)
    return pd.DataFrame({
        "order_id": _str(col("order_id")),
        "user_id": _str(col("user_id")),
        "position_id": _str(col("position_id")),
        "token": _str(col("token")),
        "action": _cat(col("action"), ["buy", "sell"]),
        "order_type": _cat(col("order_type"), ["market", "limit", "stop_loss", "take_profit"]),
        "amount_in": _money(col("amount_in")),
        "amount_out": _money(col("amount_out")),
        "price": _money(col("price")),
        "slippage_bps": pd.Series(col("slippage_bps"), dtype="Int64"),
        "slippage_actual": pd.Series([np.nan if v is None else float(v)
                                      for v in col("slippage_actual")], dtype="float64"),
        "status": _cat(col("status"), ["pending", "executed", "failed", "cancelled"]),
        "transaction_signature": _str(col("transaction_signature")),
        "created_at": _times(col("created_at")),
        "executed_at": _times(col("executed_at")),
        "failed_reason": _str(col("failed_reason")),
        "total_value": _money(total_value),
        "executed_price": _money(executed_price),
    })


def audit_frame(rows: list[dict]) -> pd.DataFrame:
    """Audit log rows as load_audit_logs returns them (api_key_id, status_code, reason extracted)."""
    defaults = {"event_type": "authentication", "user_id": "u1", "ip_address": "10.0.0.1",
                "resource": "/auth/login", "action": "login", "success": True,
                "request_id": None, "api_key_id": None, "status_code": None, "reason": None}
    rows = [{**defaults, "log_id": f"l{i:04d}", **row} for i, row in enumerate(rows)]
    col = lambda name: [r[name] for r in rows]  # noqa: E731
    details = [json.dumps({k: r[k] for k in ("api_key_id", "status_code", "reason")
                           if r[k] is not None}, sort_keys=True) for r in rows]
    return pd.DataFrame({
        "log_id": _str(col("log_id")),
        "timestamp": _times(col("timestamp")),
        "event_type": _str(col("event_type")),
        "user_id": _str(col("user_id")),
        "ip_address": _str(col("ip_address")),
        "resource": _str(col("resource")),
        "action": _str(col("action")),
        "success": pd.Series(col("success"), dtype="boolean"),
        "request_id": _str(col("request_id")),
        "details": _str(details),
        "api_key_id": _str(col("api_key_id")),
        "status_code": pd.Series(col("status_code"), dtype="Int64"),
        "reason": _str(col("reason")),
    })


def api_request(timestamp: str, key: str | None, path: str = "/api/orders", method: str = "GET",
                status_code: int = 200, reason: str | None = None, **fields: object) -> dict:
    """One api_request audit row."""
    return {"event_type": "api_request", "timestamp": timestamp, "api_key_id": key,
            "resource": path, "action": method, "status_code": status_code, "reason": reason,
            "success": status_code < 400, **fields}


def login(timestamp: str, success: bool, ip: str = "10.0.0.1", user: str | None = "u1",
          action: str = "login") -> dict:
    """One authentication audit row."""
    return {"event_type": "authentication", "timestamp": timestamp, "success": success,
            "ip_address": ip, "user_id": user, "action": action, "resource": "/auth/login"}


def api_keys_frame(rows: list[dict]) -> pd.DataFrame:
    """API keys as load_api_keys returns them (no key_hash)."""
    defaults = {"user_id": "u1", "name": "bot", "rate_limit": 60, "requests_count": 0,
                "last_used_at": None, "expires_at": None, "is_active": True,
                "created_at": "2024-01-01T00:00:00"}
    rows = [{**defaults, "key_id": f"k{i}", **row} for i, row in enumerate(rows)]
    col = lambda name: [r[name] for r in rows]  # noqa: E731
    return pd.DataFrame({
        "key_id": _str(col("key_id")),
        "user_id": _str(col("user_id")),
        "name": _str(col("name")),
        "key_prefix": _str(["shx_" + str(k)[:4] for k in col("key_id")]),
        "rate_limit": pd.Series(col("rate_limit"), dtype="Int64"),
        "requests_count": pd.Series(col("requests_count"), dtype="Int64"),
        "last_used_at": _times(col("last_used_at")),
        "expires_at": _times(col("expires_at")),
        "is_active": pd.Series(col("is_active"), dtype="boolean"),
        "created_at": _times(col("created_at")),
    })


def users_frame(rows: list[dict]) -> pd.DataFrame:
    """Users as load_users returns them (no password_hash)."""
    defaults = {"failed_login_attempts": 0, "locked_until": None, "last_login": None,
                "is_active": True, "created_at": "2024-01-01T00:00:00"}
    rows = [{**defaults, "user_id": f"u{i}", **row} for i, row in enumerate(rows)]
    col = lambda name: [r[name] for r in rows]  # noqa: E731
    return pd.DataFrame({
        "user_id": _str(col("user_id")),
        "username": _str([r.get("username", f"user_{r['user_id']}") for r in rows]),
        "email": _str([r.get("email", f"{r['user_id']}@example.com") for r in rows]),
        "failed_login_attempts": pd.Series(col("failed_login_attempts"), dtype="Int64"),
        "locked_until": _times(col("locked_until")),
        "last_login": _times(col("last_login")),
        "is_active": pd.Series(col("is_active"), dtype="boolean"),
        "created_at": _times(col("created_at")),
    })
