"""The loaders: exact, typed frames, identical on SQLite and PostgreSQL.

One hand-built database per backend (module scope, read-only for most tests) holds rows chosen
for their edges: money at 999999999999.99999999 and 0.00000001, derived values that round
half-even at an exact tie, equal timestamps ordered by id, JSON out of key order. Every expected
frame below is built from the model objects themselves (their properties give the derived money).
"""

from __future__ import annotations

import math
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, localcontext

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import sqlalchemy as sa
from _databases import BACKENDS, copy_migrated_database, drop_postgres_database, require_backend
from pandas.testing import assert_frame_equal
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

import shivx_analytics as sx
from shivx_analytics import _arrow, frames
from shivx_analytics.db import DatabaseUnavailable, create_engine, mask_url, normalize_url
from shivx_analytics.models import (
    APIKey,
    APIKeyCreate,
    Order,
    OrderCreate,
    Position,
    PositionCreate,
    PositionStatus,
    SecurityAuditLog,
    User,
    UserCreate,
    build_api_key,
    build_order,
    build_position,
    build_user,
    metadata,
)

MONEY = pd.ArrowDtype(pa.decimal128(20, 8))  # stored money, money="decimal"
DERIVED_MONEY = pd.ArrowDtype(pa.decimal128(38, 8))  # derived money (products, quotients), money="decimal"
UTC = "datetime64[us, UTC]"
STRING = pd.StringDtype("pyarrow")
T0 = datetime(2025, 10, 1, tzinfo=timezone.utc)
NAMESPACE = uuid.UUID("5b0c6a3e-8d0e-4f64-9d7a-2f1c3e5a7b90")
INJECTION = "SOL'; DROP TABLE orders; --"


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def uid(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def ids(*names: str) -> set[str]:
    return {str(uid(name)) for name in names}


# The dataset ---------------------------------------------------------------------------------


def _dataset() -> dict[str, list]:
    """Model objects with fixed ids and times (built through the validated Create models)."""
    alice = build_user(UserCreate(username="alice", email="Alice@Example.com", password="correct horse 1",
                                  roles=["trader", "admin"], permissions={"trade": True, "admin": True}))
    bob = build_user(UserCreate(username="bob", email="bob@example.com", password="correct horse 2",
                                permissions={"trade": False, "read": True}, is_active=False))
    for user, name, hours in ((alice, "alice", -200), (bob, "bob", -199)):
        user.user_id, user.created_at, user.updated_at = uid(name), at(hours), at(hours)
    bob.failed_login_attempts, bob.locked_until, alice.last_login = 5, at(2), at(1)

    _, key_a = build_api_key(APIKeyCreate(user_id=alice.user_id, name="alice bot", permissions={"trade": True},
                                          rate_limit=120))
    _, key_b = build_api_key(APIKeyCreate(user_id=bob.user_id, name="bob reader", rate_limit=5,
                                          expires_at=at(-1)))
    for key, name, hours in ((key_a, "key_a", -150), (key_b, "key_b", -140)):
        key.key_id, key.created_at, key.updated_at = uid(name), at(hours), at(hours)
    key_a.requests_count, key_a.last_used_at, key_b.is_active = 42, at(3), False

    def position(name, user, token, size, entry, current, hours, *, status="open", closed=None,
                 strategy=None, stop_loss=None, take_profit=None):
        row = build_position(PositionCreate(
            user_id=user.user_id, token=token, size=Decimal(size), entry_price=Decimal(entry),
            current_price=Decimal(current), status=status, opened_at=at(hours),
            closed_at=None if closed is None else at(closed), strategy=strategy,
            stop_loss=None if stop_loss is None else Decimal(stop_loss),
            take_profit=None if take_profit is None else Decimal(take_profit)))
        row.position_id, row.created_at, row.updated_at = uid(name), at(hours), at(hours)
        return row

    positions = [
        position("p_big", alice, "SOL", "999999999999.99999999", "0.00000001", "0.00000002", 0,
                 strategy="RL Trading (PPO)"),
        position("p_eth", alice, "ETH", "1.5", "2000.12345678", "2100.87654321", 1, status="closed", closed=30,
                 strategy="Momentum"),
        position("p_btc", bob, "BTC", "0.00000001", "99999.99999999", "50000.5", 2, status="liquidated", closed=3),
        # entry_value 0.000000005 and position_value 0.000000015: exact ties, rounded half to even
        position("p_tie", bob, "SOL", "0.5", "0.00000001", "0.00000003", 5, status="closed", closed=6),
        position("p_sl", alice, "SOL", "10", "150", "120", 10, strategy="RL Trading (PPO)", stop_loss="130",
                 take_profit="200"),
        position("p_old", bob, "ETH", "2", "1000", "900", -100, status="closed", closed=-50, strategy="Momentum"),
    ]

    def order(name, user, position_name, token, action, amount_in, price, hours, *, order_type="market",
              filled=None, failed=None, cancelled=False):
        row = build_order(OrderCreate(
            user_id=user.user_id, position_id=None if position_name is None else uid(position_name), token=token,
            action=action, order_type=order_type, amount_in=Decimal(amount_in), price=Decimal(price),
            slippage_bps=75 if action == "sell" else 50))
        row.order_id, row.created_at, row.updated_at = uid(name), at(hours), at(hours)
        if filled is not None:
            row.execute(f"sig-{name}", Decimal(filled), at=at(hours + 0.5))
        elif failed is not None:
            row.fail(failed)
        elif cancelled:
            row.cancel()
        return row

    orders = [
        order("o1", alice, "p_big", "SOL", "buy", "9999.99999999", "0.00000001", 0, filled="999999999999.00000000"),
        order("o2", alice, "p_eth", "ETH", "buy", "3000.18518517", "2000.12345678", 1, order_type="limit",
              filled="1.5"),
        order("o3", alice, "p_eth", "ETH", "sell", "1.5", "2100.87654321", 30, filled="3151.31481481"),
        order("o4", bob, "p_btc", "BTC", "buy", "0.00099999", "99999.99999999", 2, filled="0.00000001"),
        # executed_price 1.00000001 / 2 = 0.500000005: a tie, half to even -> 0.50000000
        order("o5", bob, "p_tie", "SOL", "buy", "1.00000001", "2", 5, filled="2"),
        order("o6", bob, None, "SOL", "sell", "3", "0.33333333", 7, order_type="limit"),
        order("o7", alice, None, "SOL", "sell", "999999999999.99999999", "0.00000001", 8, order_type="stop_loss",
              failed="insufficient liquidity"),
        order("o8", alice, None, "BTC", "buy", "0.00000001", "50000", 9, order_type="take_profit", cancelled=True),
        order("o9", bob, "p_tie", "SOL", "sell", "0.5", "0.00000003", 6, filled="0.00000001"),
        order("o10", alice, None, "ETH", "sell", "0.00000003", "0.5", 11, filled="0.00000001"),
        order("o11", bob, None, "SOL", "buy", "10", "150", 12, filled="0.06666666"),
        order("o12", alice, None, "SOL", "buy", "20", "150", 12, filled="0.13333333"),  # same created_at as o11
    ]

    def event(name, event_type, action, success, hours, **fields):
        row = SecurityAuditLog.create_entry(event_type=event_type, action=action, success=success,
                                            timestamp=at(hours), **fields)
        row.log_id = uid(name)
        return row

    key_id = str(uid("key_a"))
    audit = [
        event("a1", "authentication", "login", True, 0, user_id=alice.user_id, ip_address="10.0.0.1",
              resource="/auth/login", request_id="req-1"),
        event("a2", "authentication", "login", False, 1, ip_address="203.0.113.9", resource="/auth/login",
              details={"username": "alice", "reason": "bad_password"}),
        event("a3", "api_request", "GET", True, 2, user_id=bob.user_id, ip_address="10.0.0.2",
              resource="/api/orders", details={"status_code": 200, "key_id": key_id}, request_id="req-2"),
        event("a4", "api_request", "POST", False, 3, user_id=bob.user_id, ip_address="10.0.0.2",
              resource="/api/orders", details={"reason": "rate_limited", "status_code": 429, "key_id": key_id}),
        event("a5", "admin", "user_update", True, 4, user_id=alice.user_id,
              details={"note": "héllo", "changes": {"z": 1, "a": [1, 2.5]}}),
        event("a6", "authorization", "access_denied", False, 4, user_id=bob.user_id, ip_address="10.0.0.2",
              resource="/admin"),  # same timestamp as a5
    ]
    return {"users": [alice, bob], "api_keys": [key_a, key_b], "positions": positions, "orders": orders,
            "audit": audit}


def _insert(engine, data) -> None:
    with Session(engine, expire_on_commit=False) as session:
        for name in ("users", "api_keys", "positions", "orders", "audit"):
            session.add_all(data[name])
            session.flush()
        session.commit()


def _database_url(backend, migrated_templates, directory) -> str:
    return copy_migrated_database(backend, migrated_templates, directory, "frames.db")


@pytest.fixture(scope="module", params=BACKENDS)
def loaded(request, migrated_templates, tmp_path_factory):
    """(backend, engine, data): one database per backend holding the dataset, read-only for the tests."""
    backend = request.param
    require_backend(backend)
    url = _database_url(backend, migrated_templates, tmp_path_factory.mktemp("frames"))
    engine = create_engine(url)
    data = _dataset()
    try:
        _insert(engine, data)
        with Session(engine) as session:  # the objects as the database returns them
            data = {name: [session.get(type(row), sa.inspect(row).identity) for row in rows]
                    for name, rows in data.items()}
            session.expunge_all()
        yield backend, engine, data
    finally:
        engine.dispose()
        if backend == "postgresql":
            drop_postgres_database(url)


# Expected frames, from the model objects -------------------------------------------------------


def _money(values, dtype=MONEY):
    return pd.Series([None if v is None else Decimal(v) for v in values], dtype=dtype)


def _derived(values):
    return _money(values, DERIVED_MONEY)


def as_float_money(expected: pd.DataFrame) -> pd.DataFrame:
    """The money="float" frame of an exact expected frame: each decimal as its nearest float64."""
    converted = expected.copy()
    for name, dtype in expected.dtypes.items():
        if dtype in (MONEY, DERIVED_MONEY):
            converted[name] = pd.Series([np.nan if pd.isna(v) else float(v) for v in expected[name]],
                                        dtype="float64", index=expected.index)
    return converted


def _times(values):
    return pd.Series([None if v is None else pd.Timestamp(v) for v in values], dtype=UTC)


def _text(values):
    return pd.Series([None if v is None else str(v) for v in values], dtype=STRING)


def _category(values, categories):
    return pd.Series(pd.Categorical([None if v is None else v.value for v in values], categories=categories))


def expected_positions(rows) -> pd.DataFrame:
    rows = sorted(rows, key=lambda p: (p.opened_at, str(p.position_id)))
    col = lambda name: [getattr(p, name) for p in rows]  # noqa: E731
    return pd.DataFrame({
        "position_id": _text(col("position_id")), "user_id": _text(col("user_id")), "token": _text(col("token")),
        "size": _money(col("size")), "entry_price": _money(col("entry_price")),
        "current_price": _money(col("current_price")), "stop_loss": _money(col("stop_loss")),
        "take_profit": _money(col("take_profit")),
        "status": _category(col("status"), ["open", "closed", "liquidated"]),
        "opened_at": _times(col("opened_at")), "closed_at": _times(col("closed_at")),
        "created_at": _times(col("created_at")), "updated_at": _times(col("updated_at")),
        "strategy": _text(col("strategy")), "entry_value": _derived(col("entry_value")),
        "position_value": _derived(col("position_value")), "pnl": _derived(col("pnl")),
        "pnl_pct": pd.Series(col("pnl_pct"), dtype="float64"),
    })


def expected_orders(rows) -> pd.DataFrame:
    rows = sorted(rows, key=lambda o: (o.created_at, str(o.order_id)))
    col = lambda name: [getattr(o, name) for o in rows]  # noqa: E731
    return pd.DataFrame({
        "order_id": _text(col("order_id")), "user_id": _text(col("user_id")),
        "position_id": _text(col("position_id")), "token": _text(col("token")),
        "action": _category(col("action"), ["buy", "sell"]),
        "order_type": _category(col("order_type"), ["market", "limit", "stop_loss", "take_profit"]),
        "amount_in": _money(col("amount_in")), "amount_out": _money(col("amount_out")),
        "price": _money(col("price")), "slippage_bps": pd.Series(col("slippage_bps"), dtype="Int64"),
        "slippage_actual": pd.Series([np.nan if v is None else float(v) for v in col("slippage_actual")],
                                     dtype="float64"),
        "status": _category(col("status"), ["pending", "executed", "failed", "cancelled"]),
        "transaction_signature": _text(col("transaction_signature")),
        "failed_reason": _text(col("failed_reason")), "created_at": _times(col("created_at")),
        "executed_at": _times(col("executed_at")), "updated_at": _times(col("updated_at")),
        "total_value": _derived(col("total_value")), "executed_price": _derived(col("executed_price")),
    })


# Frames: values and dtypes ---------------------------------------------------------------------


@pytest.mark.parametrize("money", ["decimal", "float"])
def test_positions_frame_equals_the_models_row_for_row(loaded, money):
    _, engine, data = loaded
    frame = sx.load_positions(engine, money=money)
    expected = expected_positions(data["positions"])
    if money == "float":
        expected = as_float_money(expected)
    assert list(frame.columns) == list(frames.FRAME_COLUMNS["positions"])
    assert_frame_equal(frame.drop(columns="pnl_pct"), expected.drop(columns="pnl_pct"), check_exact=True)
    for got, want in zip(frame["pnl_pct"], expected["pnl_pct"]):
        assert math.isclose(got, want, rel_tol=1e-13)


def test_the_default_money_mode_is_float(loaded):
    _, engine, _ = loaded
    assert_frame_equal(sx.load_positions(engine), sx.load_positions(engine, money="float"), check_exact=True)
    assert_frame_equal(sx.load_orders(engine), sx.load_orders(engine, money=frames.MoneyMode.FLOAT), check_exact=True)
    assert sx.load_orders(engine)["amount_in"].dtype == np.float64


def test_derived_money_rounds_once_half_to_even(loaded):
    _, engine, _ = loaded
    tie = sx.load_positions(engine, user_id=uid("bob"), token="SOL", money="decimal").iloc[0]
    assert tie["entry_value"] == Decimal("0.00000000")  # 0.000000005 -> even
    assert tie["position_value"] == Decimal("0.00000002")  # 0.000000015 -> even
    big = sx.load_positions(engine, strategy="RL Trading (PPO)", status="open", money="decimal").iloc[0]
    assert big["entry_value"] == Decimal("10000.00000000")  # 9999.9999999999999999
    orders = sx.load_orders(engine, money="decimal").set_index("order_id")
    assert orders.loc[str(uid("o5")), "executed_price"] == Decimal("0.50000000")
    assert orders.loc[str(uid("o7")), "total_value"] == Decimal("10000.00000000")


@pytest.mark.parametrize("money", ["decimal", "float"])
def test_orders_frame_equals_the_models_row_for_row(loaded, money):
    _, engine, data = loaded
    frame = sx.load_orders(engine, money=money)
    expected = expected_orders(data["orders"])
    assert list(frame.columns) == list(frames.FRAME_COLUMNS["orders"])
    assert_frame_equal(frame, expected if money == "decimal" else as_float_money(expected), check_exact=True)


def test_rows_with_equal_times_are_ordered_by_id(loaded):
    _, engine, _ = loaded
    same = sx.load_orders(engine, since=at(12), until=at(13))["order_id"].tolist()
    assert same == sorted(ids("o11", "o12"))
    events = sx.load_audit_logs(engine, since=at(4), until=at(5))["log_id"].tolist()
    assert events == sorted(ids("a5", "a6"))


def test_audit_frame_has_canonical_details_and_extracted_fields(loaded):
    _, engine, data = loaded
    frame = sx.load_audit_logs(engine).set_index("log_id")
    assert list(frame.reset_index().columns) == list(frames.FRAME_COLUMNS["audit_logs"])
    assert frame.dtypes.to_dict() == {
        "timestamp": UTC, "event_type": STRING, "user_id": STRING, "ip_address": STRING, "resource": STRING,
        "action": STRING, "success": pd.BooleanDtype(), "request_id": STRING, "details": STRING,
        "api_key_id": STRING, "status_code": pd.Int64Dtype(), "reason": STRING}
    key_id = str(uid("key_a"))
    a4 = frame.loc[str(uid("a4"))]
    assert a4["details"] == f'{{"key_id":"{key_id}","reason":"rate_limited","status_code":429}}'
    assert (a4["api_key_id"], a4["status_code"], a4["reason"], a4["success"]) == (key_id, 429, "rate_limited", False)
    a5 = frame.loc[str(uid("a5"))]
    assert a5["details"] == '{"changes":{"a":[1,2.5],"z":1},"note":"héllo"}'
    assert pd.isna(a5["api_key_id"]) and pd.isna(a5["status_code"]) and pd.isna(a5["reason"])
    assert frame.loc[str(uid("a1")), "details"] == "{}"
    assert pd.isna(frame.loc[str(uid("a2")), "user_id"])
    assert frame.loc[str(uid("a3")), "timestamp"] == pd.Timestamp(at(2))


def test_api_keys_and_users_frames(loaded):
    _, engine, data = loaded
    keys = sx.load_api_keys(engine)
    assert list(keys.columns) == list(frames.FRAME_COLUMNS["api_keys"])
    assert keys.dtypes.to_dict() == {
        "key_id": STRING, "user_id": STRING, "name": STRING, "key_prefix": STRING, "permissions": STRING,
        "rate_limit": pd.Int64Dtype(), "requests_count": pd.Int64Dtype(), "last_used_at": UTC,
        "expires_at": UTC, "created_at": UTC, "updated_at": UTC, "is_active": pd.BooleanDtype()}
    assert keys["key_id"].tolist() == [str(uid("key_a")), str(uid("key_b"))]
    assert keys["permissions"].tolist() == ['{"trade":true}', "{}"]
    assert keys["requests_count"].tolist() == [42, 0] and keys["is_active"].tolist() == [True, False]
    assert keys["key_prefix"].tolist() == [k.key_prefix for k in data["api_keys"]]
    users = sx.load_users(engine)
    assert list(users.columns) == list(frames.FRAME_COLUMNS["users"])
    assert users.dtypes.to_dict() == {
        "user_id": STRING, "username": STRING, "email": STRING, "roles": STRING, "permissions": STRING,
        "failed_login_attempts": pd.Int64Dtype(), "locked_until": UTC, "last_login": UTC, "created_at": UTC,
        "updated_at": UTC, "is_active": pd.BooleanDtype()}
    assert users["email"].tolist() == ["alice@example.com", "bob@example.com"]
    assert users["roles"].tolist() == ['["trader","admin"]', "[]"]
    assert users["permissions"].tolist() == ['{"admin":true,"trade":true}', '{"read":true,"trade":false}']
    assert users["locked_until"].tolist()[1] == pd.Timestamp(at(2))


def test_password_and_key_hashes_never_leave_the_database(loaded):
    _, engine, data = loaded
    secrets = {u.password_hash for u in data["users"]} | {k.key_hash for k in data["api_keys"]}
    for loader in (sx.load_positions, sx.load_orders, sx.load_audit_logs, sx.load_api_keys, sx.load_users):
        frame = loader(engine)
        assert not {"password_hash", "key_hash"} & set(frame.columns)
        cells = {str(v) for column in frame.columns for v in frame[column].tolist()}
        assert not any(secret in cell for secret in secrets for cell in cells)


def test_money_sums_equal_exact_sums(loaded):
    backend, engine, _ = loaded
    columns = {"orders": ("amount_in", "amount_out", "price", "total_value", "executed_price"),
               "positions": ("size", "entry_price", "current_price", "stop_loss", "take_profit")}
    loaders = {"orders": sx.load_orders, "positions": sx.load_positions}
    for table, names in columns.items():
        frame = loaders[table](engine, money="decimal")
        for name in names:
            array = frame[name].array.__arrow_array__().cast(pa.decimal256(76, 8))
            got = pc.sum(array).as_py() or Decimal(0)
            if name in ("total_value", "executed_price"):
                expected = _exact_sum(getattr(o, name) for o in _orders_from_db(engine))
            elif backend == "postgresql":
                with engine.connect() as connection:
                    expected = connection.execute(sa.text(f"SELECT COALESCE(SUM({name}), 0) FROM {table}")).scalar()
            else:
                model = Order if table == "orders" else Position
                with Session(engine) as session:
                    expected = _exact_sum(session.scalars(sa.select(getattr(model, name))))
            assert got == expected, (table, name)
            if name == "amount_in":
                assert got > Decimal("999999999999.99999999")  # the exact sum needs more than 20 digits


def _exact_sum(values) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60
        return sum((v for v in values if v is not None), Decimal(0))


def _orders_from_db(engine) -> list[Order]:
    with Session(engine) as session:
        rows = session.scalars(sa.select(Order)).all()
        session.expunge_all()
    return rows


def test_exact_money_arithmetic_matches_python_decimal_to_the_last_digit():
    rng = np.random.default_rng(7)

    def money(n: int, max_digits: int = 12) -> list[Decimal]:
        digits = rng.integers(0, max_digits + 1, n)
        whole = [int(rng.integers(0, 10 ** int(d))) if d else 0 for d in digits]
        fraction = rng.integers(1, 10**8, n)
        return [Decimal(f"{w}.{f:08d}") for w, f in zip(whole, fraction)]

    a, b = money(3000), money(3000)
    # exact ties, and the near-tie that truncated division would round the wrong way
    a += [Decimal("1.00000001"), Decimal("0.00000003"), Decimal("0.00000001")]
    b += [Decimal("2"), Decimal("2"), Decimal("1.99999999")]
    left, right = pa.array(a, pa.decimal128(20, 8)), pa.array(b, pa.decimal128(20, 8))
    quantum = Decimal("0.00000001")
    with localcontext() as ctx:
        ctx.prec = 60
        # every quotient and product of NUMERIC(20,8) values fits decimal128(38, 8): none is refused
        quotients = [(x / y).quantize(quantum) for x, y in zip(a, b)]
        got = _arrow.money_quotient(left, right, "q")
        assert got.type == pa.decimal128(38, 8) and got.to_pylist() == quotients
        assert max(abs(q) for q in quotients) >= 10**12  # beyond NUMERIC(20,8): loads all the same
        products = [(x * y).quantize(quantum) for x, y in zip(a, b)]
        got = _arrow.money_product(left, right, "p")
        assert got.type == pa.decimal128(38, 8) and got.to_pylist() == products
        assert max(abs(p) for p in products) >= 10**20
        small_values = money(len(b), max_digits=6)
        small = pa.array(small_values, pa.decimal128(20, 8))
        products = [(x * y).quantize(quantum) for x, y in zip(small_values, b)]
        assert _arrow.money_product(small, right, "p").to_pylist() == products  # the decimal128 kernels
    assert _arrow.money_quotient(pa.array([Decimal("0.00000001")], pa.decimal128(20, 8)),
                                        pa.array([Decimal("1.99999999")], pa.decimal128(20, 8)), "q")[0].as_py() \
        == Decimal("0.00000001")  # 0.0000000050000000125... lies above the tie
    largest = pa.array([Decimal("999999999999.99999999")], pa.decimal128(20, 8))
    assert _arrow.money_product(largest, largest, "position_value")[0].as_py() \
        == Decimal("999999999999999999980000.00000000")  # exactly ...980000.0000000000000001: rounded once
    assert _arrow.money_quotient(largest, pa.array([Decimal("0.00000001")], pa.decimal128(20, 8)),
                                        "executed_price")[0].as_py() == Decimal("99999999999999999999.00000000")


# Filters ----------------------------------------------------------------------------------------

FILTERS = [
    ("positions", {"user_id": uid("bob")}, ("p_btc", "p_tie", "p_old")),
    ("positions", {"user_id": [str(uid("alice")), uid("bob")]}, ("p_big", "p_eth", "p_btc", "p_tie", "p_sl", "p_old")),
    ("positions", {"token": "SOL"}, ("p_big", "p_tie", "p_sl")),
    ("positions", {"token": ["ETH", "BTC"]}, ("p_eth", "p_btc", "p_old")),
    ("positions", {"status": "open"}, ("p_big", "p_sl")),
    ("positions", {"status": [PositionStatus.CLOSED, "liquidated"]}, ("p_eth", "p_btc", "p_tie", "p_old")),
    ("positions", {"strategy": "RL Trading (PPO)"}, ("p_big", "p_sl")),
    ("positions", {"strategy": ["Momentum", "none such"]}, ("p_eth", "p_old")),
    # alive in the window: opened before until, not closed before since
    ("positions", {"since": at(4), "until": at(20)}, ("p_big", "p_eth", "p_tie", "p_sl")),
    ("positions", {"since": at(3)}, ("p_big", "p_eth", "p_btc", "p_tie", "p_sl")),  # closed_at == since counts
    ("positions", {"until": at(10)}, ("p_big", "p_eth", "p_btc", "p_tie", "p_old")),  # opened_at == until does not
    ("orders", {"user_id": uid("alice")}, ("o1", "o2", "o3", "o7", "o8", "o10", "o12")),
    ("orders", {"user_id": [uid("bob")]}, ("o4", "o5", "o6", "o9", "o11")),
    ("orders", {"token": "BTC"}, ("o4", "o8")),
    ("orders", {"token": ["BTC", "ETH"]}, ("o2", "o3", "o4", "o8", "o10")),
    ("orders", {"status": "pending"}, ("o6",)),
    ("orders", {"status": ["failed", "cancelled"]}, ("o7", "o8")),
    ("orders", {"action": "sell"}, ("o3", "o6", "o7", "o9", "o10")),
    ("orders", {"action": ["buy"]}, ("o1", "o2", "o4", "o5", "o8", "o11", "o12")),
    ("orders", {"order_type": "limit"}, ("o2", "o6")),
    ("orders", {"order_type": ["stop_loss", "take_profit"]}, ("o7", "o8")),
    ("orders", {"position_id": uid("p_tie")}, ("o5", "o9")),
    ("orders", {"position_id": [uid("p_eth"), uid("p_btc")]}, ("o2", "o3", "o4")),
    ("orders", {"since": at(5), "until": at(8)}, ("o5", "o6", "o9")),  # [since, until): o7 at 8 is out
    ("orders", {"since": "2025-10-01T05:00:00Z", "until": date(2025, 10, 2)},
     ("o5", "o6", "o7", "o8", "o9", "o10", "o11", "o12")),
    ("orders", {"token": "SOL", "status": "executed", "action": "buy"}, ("o1", "o5", "o11", "o12")),
    ("orders", {"token": []}, ()),
    ("audit_logs", {"event_type": "api_request"}, ("a3", "a4")),
    ("audit_logs", {"event_type": ["admin", "authorization"]}, ("a5", "a6")),
    ("audit_logs", {"user_id": uid("bob")}, ("a3", "a4", "a6")),
    ("audit_logs", {"user_id": [uid("alice"), uid("bob")]}, ("a1", "a3", "a4", "a5", "a6")),
    ("audit_logs", {"ip_address": "10.0.0.2"}, ("a3", "a4", "a6")),
    ("audit_logs", {"ip_address": ["10.0.0.1", "203.0.113.9"]}, ("a1", "a2")),
    ("audit_logs", {"success": False}, ("a2", "a4", "a6")),
    ("audit_logs", {"success": [True]}, ("a1", "a3", "a5")),
    ("audit_logs", {"request_id": "req-2"}, ("a3",)),
    ("audit_logs", {"request_id": ["req-1", "req-2"]}, ("a1", "a3")),
    ("audit_logs", {"since": at(1), "until": at(3)}, ("a2", "a3")),
    ("api_keys", {"user_id": uid("bob")}, ("key_b",)),
    ("api_keys", {"user_id": [uid("alice"), uid("bob")]}, ("key_a", "key_b")),
    ("api_keys", {"active": True}, ("key_a",)),
    ("api_keys", {"active": [False]}, ("key_b",)),
    ("users", {"active": False}, ("bob",)),
    ("users", {"active": [True, False]}, ("alice", "bob")),
]
LOADERS = {"positions": (sx.load_positions, "position_id"), "orders": (sx.load_orders, "order_id"),
           "audit_logs": (sx.load_audit_logs, "log_id"), "api_keys": (sx.load_api_keys, "key_id"),
           "users": (sx.load_users, "user_id")}


@pytest.mark.slow
def test_every_filter_with_one_value_and_with_a_list(loaded):
    _, engine, _ = loaded
    for frame_name, arguments, expected in FILTERS:
        loader, id_column = LOADERS[frame_name]
        frame = loader(engine, **arguments)
        assert set(frame[id_column]) == ids(*expected), (frame_name, arguments)
        assert frame[id_column].is_unique


def test_a_naive_since_is_utc_and_mixes_with_an_aware_until(loaded):
    _, engine, _ = loaded
    naive = sx.load_orders(engine, since=datetime(2025, 10, 1, 5), until=at(8).astimezone(timezone(timedelta(hours=2))))
    assert set(naive["order_id"]) == ids("o5", "o6", "o9")
    assert naive["created_at"].dt.tz is not None
    as_text = sx.load_orders(engine, since="2025-10-01 05:00", until="2025-10-01T10:00:00+02:00")
    assert set(as_text["order_id"]) == ids("o5", "o6", "o9")
    stamps = sx.load_orders(engine, since=pd.Timestamp("2025-10-01 05:00"), until=pd.Timestamp(at(8)))
    assert set(stamps["order_id"]) == ids("o5", "o6", "o9")


def test_an_injection_string_is_data(loaded):
    _, engine, data = loaded
    assert sx.load_orders(engine, token=INJECTION).empty
    assert sx.load_audit_logs(engine, ip_address=[INJECTION, "10.0.0.1' OR '1'='1"]).empty
    assert sx.load_positions(engine, strategy=INJECTION).empty
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar() == len(data["orders"])
    assert len(sx.load_orders(engine)) == len(data["orders"])


# Bad input ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("arguments, message", [
    ({"since": "yesterday"}, "since: expected an ISO 8601 date or datetime such as 2025-10-28 or "
                             "2025-10-28T12:00:00Z, got 'yesterday'"),
    ({"until": "2025-13-01"}, "until: expected an ISO 8601 date or datetime"),
    ({"since": 20251001}, "since: expected an ISO 8601 date or datetime such as 2025-10-28 or "
                          "2025-10-28T12:00:00Z, got 20251001"),
    ({"since": "2025-10-02", "until": "2025-10-01"}, "is after until"),
    ({"columns": ["order_id", "password_hash"]}, "unknown column(s) ['password_hash'] for orders: choose from"),
    ({"columns": []}, "columns is empty"),
    ({"status": "done"}, "status='done' is not valid: choose from ['pending', 'executed', 'failed', 'cancelled']"),
    ({"action": ["buy", "hold"]}, "action='hold' is not valid: choose from ['buy', 'sell']"),
    ({"order_type": "market-ish"}, "order_type='market-ish' is not valid"),
    ({"user_id": INJECTION}, f"user_id={INJECTION!r} is not a UUID"),
    ({"token": 42}, "token=42 must be a string"),
    ({"chunksize": 0}, "chunksize must be a positive integer"),
    ({"money": "exact"}, "money='exact' is not valid: choose from ['float', 'decimal']"),
    ({"money": float}, "money=<class 'float'> is not valid: choose from ['float', 'decimal']"),
])
def test_bad_arguments_raise_value_errors_naming_the_argument(arguments, message):
    # validation happens before any connection is made: this source does not even exist
    with pytest.raises(ValueError) as error:
        sx.load_orders("sqlite:////nonexistent/never.db", **arguments)
    assert message in str(error.value)


def test_unknown_column_error_lists_every_valid_column():
    with pytest.raises(ValueError) as error:
        sx.load_positions("sqlite:////nonexistent/never.db", columns=["pnl", "nope"])
    assert str(list(frames.FRAME_COLUMNS["positions"])) in str(error.value)
    with pytest.raises(ValueError, match=r"success=1 is not valid: choose from \[True, False\]"):
        sx.load_audit_logs("sqlite:////nonexistent/never.db", success=1)
    with pytest.raises(ValueError, match="status='open' is not valid"):
        sx.load_orders("sqlite:////nonexistent/never.db", status="open")  # a position status, not an order's
    with pytest.raises(TypeError, match="source must be"):
        sx.load_users(42)


def test_errors_name_the_database_but_never_its_password(backend, fresh_url):
    url = make_url(fresh_url).set(password="s3cret-pw") if backend == "postgresql" else make_url(fresh_url)
    with pytest.raises((frames.LoadError, DatabaseUnavailable)) as error:  # not migrated: no orders table
        sx.load_orders(url.render_as_string(hide_password=False))
    assert "s3cret-pw" not in str(error.value)
    assert mask_url(normalize_url(url)) in str(error.value)


# Columns and chunks ------------------------------------------------------------------------------


def test_columns_selects_and_orders_the_columns(loaded):
    _, engine, _ = loaded
    full = sx.load_orders(engine)
    some = sx.load_orders(engine, columns=["executed_price", "order_id", "status"])
    assert list(some.columns) == ["executed_price", "order_id", "status"]
    assert_frame_equal(some, full[["executed_price", "order_id", "status"]])
    pnl = sx.load_positions(engine, columns="pnl")
    assert_frame_equal(pnl, sx.load_positions(engine)[["pnl"]])


@pytest.mark.parametrize("money", ["float", "decimal"])
@pytest.mark.parametrize("name", ["orders", "positions", "audit_logs"])
def test_chunks_have_the_frame_dtypes_and_concatenate_to_the_whole_frame(loaded, name, money):
    _, engine, _ = loaded
    loader, _ = LOADERS[name]
    whole = loader(engine, money=money)
    chunks = list(loader(engine, chunksize=4, money=money))
    assert [len(c) for c in chunks] == [4] * (len(whole) // 4) + ([len(whole) % 4] if len(whole) % 4 else [])
    for chunk in chunks:
        assert chunk.dtypes.to_dict() == whole.dtypes.to_dict()
    assert_frame_equal(pd.concat(chunks, ignore_index=True), whole, check_exact=True)
    empty = list(loader(engine, until=at(-1000), chunksize=4, money=money))
    assert len(empty) == 1 and empty[0].empty and empty[0].dtypes.to_dict() == whole.dtypes.to_dict()


def test_an_empty_result_has_the_frame_dtypes(loaded):
    _, engine, _ = loaded
    whole = sx.load_orders(engine)
    empty = sx.load_orders(engine, token="NOPE")
    assert empty.empty and list(empty.columns) == list(whole.columns)
    assert empty.dtypes.to_dict() == whole.dtypes.to_dict()


# Sources -----------------------------------------------------------------------------------------


def test_engine_connection_session_and_url_sources_give_the_same_frame(loaded):
    _, engine, _ = loaded
    expected = sx.load_orders(engine, action="sell")
    url = engine.url.render_as_string(hide_password=False)
    assert_frame_equal(sx.load_orders(url, action="sell"), expected)
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))  # a transaction is open, nothing written
        assert_frame_equal(sx.load_orders(connection, action="sell"), expected)
    with Session(engine) as session:
        session.get(User, uid("alice"))
        assert_frame_equal(sx.load_orders(session, action="sell"), expected)


def test_a_sessions_own_uncommitted_rows_are_seen_through_it(loaded):
    _, engine, data = loaded
    with Session(engine) as session:
        extra = build_order(OrderCreate(user_id=uid("alice"), token="DOGE", action="buy",
                                        amount_in=Decimal("1.23456789"), price=Decimal("0.1")))
        extra.created_at = at(40)
        session.add(extra)  # pending: flushed by the loader, as the session's own queries would
        through_session = sx.load_orders(session, money="decimal")
        assert len(through_session) == len(data["orders"]) + 1
        row = through_session.iloc[-1]
        assert row["token"] == "DOGE" and row["total_value"] == Decimal("1.23456789")
        assert row["status"] == "pending" and pd.isna(row["executed_price"])
        # same types on both paths
        assert_frame_equal(through_session.iloc[:-1], sx.load_orders(engine, money="decimal"))
        assert_frame_equal(sx.load_orders(session).iloc[:-1], sx.load_orders(engine))
        assert sx.load_orders(session)["total_value"].iloc[-1] == 1.23456789
        assert len(sx.load_orders(engine)) == len(data["orders"])  # other connections do not see it
        chunks = list(sx.load_orders(session, chunksize=5, money="decimal"))
        assert [len(c) for c in chunks] == [5, 5, 3]
        assert_frame_equal(pd.concat(chunks, ignore_index=True), through_session)
        session.rollback()
    assert len(sx.load_orders(engine)) == len(data["orders"])


def test_in_memory_sqlite_is_read_through_the_engine():
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    metadata.create_all(engine)
    data = _dataset()
    _insert(engine, data)
    positions = sx.load_positions(engine, money="decimal")
    expected = expected_positions(data["positions"])
    assert_frame_equal(positions.drop(columns="pnl_pct"), expected.drop(columns="pnl_pct"), check_exact=True)
    assert_frame_equal(sx.load_positions(engine).drop(columns="pnl_pct"),
                       as_float_money(expected).drop(columns="pnl_pct"), check_exact=True)
    assert_frame_equal(sx.load_orders(engine, money="decimal"), expected_orders(data["orders"]), check_exact=True)
    assert_frame_equal(sx.load_orders(engine), as_float_money(expected_orders(data["orders"])), check_exact=True)
    with engine.connect() as connection:
        assert len(sx.load_audit_logs(connection, event_type="api_request")) == 2
    engine.dispose()


# The demo dataset ---------------------------------------------------------------------------------

from shivx_analytics import demo  # noqa: E402


@pytest.fixture(scope="module", params=BACKENDS)
def demo_frames(request, migrated_templates, tmp_path_factory):
    """Every frame of the small demo dataset on one backend, exact (money="decimal")."""
    backend = request.param
    require_backend(backend)
    url = _database_url(backend, migrated_templates, tmp_path_factory.mktemp("demo_frames"))
    try:
        demo.generate_demo_data(url, seed=0, scale="small", as_of="2025-10-28")
        yield backend, url, {name: loader(url, money="decimal") for name, (loader, _) in LOADERS.items()}
    finally:
        if backend == "postgresql":
            drop_postgres_database(url)


@pytest.mark.slow
def test_demo_derived_columns_equal_the_model_properties_for_every_row(demo_frames):
    _, _, loaded_frames = demo_frames
    positions, orders = loaded_frames["positions"], loaded_frames["orders"]
    assert len(positions) > 100 and len(orders) > 1000
    for row in positions.itertuples(index=False):
        model = Position(size=row.size, entry_price=row.entry_price, current_price=row.current_price)
        assert (row.entry_value, row.position_value, row.pnl) == (model.entry_value, model.position_value, model.pnl)
        assert math.isclose(row.pnl_pct, model.pnl_pct, rel_tol=1e-13, abs_tol=1e-13)
    for row in orders.itertuples(index=False):
        model = Order(action=row.action, status=row.status, amount_in=row.amount_in, price=row.price,
                      amount_out=None if pd.isna(row.amount_out) else row.amount_out)
        executed_price = None if pd.isna(row.executed_price) else row.executed_price
        assert (row.total_value, executed_price) == (model.total_value, model.executed_price)


@pytest.mark.slow
def test_demo_frames_are_sorted_typed_and_free_of_secrets(demo_frames):
    _, url, loaded_frames = demo_frames
    for name, frame in loaded_frames.items():
        assert not {"password_hash", "key_hash"} & set(frame.columns)
        assert frame[LOADERS[name][1]].is_unique
    orders = loaded_frames["orders"]
    keys = list(zip(orders["created_at"], orders["order_id"]))
    assert keys == sorted(keys)
    audit = loaded_frames["audit_logs"]
    assert audit["timestamp"].is_monotonic_increasing
    assert (audit.loc[audit["event_type"] == "api_request", "status_code"].notna()).all()
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            hashes = set(session.scalars(sa.select(User.password_hash))) | set(session.scalars(sa.select(APIKey.key_hash)))
    finally:
        engine.dispose()
    for frame in loaded_frames.values():
        for column in frame.columns:
            if frame[column].dtype == STRING:
                assert not set(frame[column].dropna()) & hashes


@pytest.mark.slow
@pytest.mark.parametrize("demo_frames", ["postgresql"], indirect=True)  # compared once, from the PostgreSQL side
def test_demo_frames_are_identical_on_sqlite_and_postgresql(demo_frames, migrated_templates, tmp_path):
    backend, _, loaded_frames = demo_frames
    url = _database_url("sqlite", migrated_templates, tmp_path)
    demo.generate_demo_data(url, seed=0, scale="small", as_of="2025-10-28")
    for name, (loader, _) in LOADERS.items():
        assert_frame_equal(loader(url, money="decimal"), loaded_frames[name], check_exact=True, obj=name)
        assert_frame_equal(loader(url), loader(demo_frames[1]), check_exact=True, obj=f"{name} (float)")
