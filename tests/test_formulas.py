"""The derived formulas, every rendering checked against one table of cases.

The formulas (docs/conventions.md, "Derived formulas"): a position's entry_value, position_value,
pnl and pnl_pct; an order's total_value, executed_price and slippage_actual. They are written in
Python (models/position.py, models/order.py), in Arrow (frames/schemas.py, the loaders' derived
columns) and in SQL (aggregates/orders.py and aggregates/positions.py push-down, the materialized
views of migration 0005). The tables POSITION_CASES and ORDER_CASES give inputs and the exact
expected values, worked out by hand (money: Decimal, 8 places, half to even; slippage: 4 places,
half to even; pnl_pct: the exact ratio as a Fraction, whose float is the nearest float). Each
rendering is checked against the same rows:

- the models, built from the inputs;
- the loaders' derived columns, money="decimal" (exact) and money="float" (the nearest float of
  the exact value), on SQLite and PostgreSQL;
- on PostgreSQL, the SQL of the push-down (per row: daily_realized_pnl with one position per day,
  the total_value expression; summed: execution_aggregates' notional per status) and of the
  views (per row: mv_daily_trading_performance with one position per day, mv_user_statistics
  with one user per case).

Directions: positions are long-only spot (size > 0, docs/conventions.md): a loss is a long whose
price fell, and a short (negative size) is refused; orders are buys (USD -> token) and sells
(token -> USD).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext
from fractions import Fraction

import pydantic
import pytest
import sqlalchemy as sa
from _databases import BACKENDS, copy_migrated_database, drop_postgres_database, require_backend
from sqlalchemy.orm import Session

from shivx_analytics import aggregates, frames
from shivx_analytics.aggregates.orders import _total_value
from shivx_analytics.db import create_engine
from shivx_analytics.frames.query import _binder
from shivx_analytics.frames.schemas import ORDERS
from shivx_analytics.models import (
    Order,
    OrderAction,
    OrderCreate,
    OrderStatus,
    Position,
    PositionCreate,
    PositionStatus,
    User,
    build_order,
    build_position,
)

T0 = datetime(2025, 10, 1, tzinfo=timezone.utc)
NAMESPACE = uuid.UUID("0c3f5a52-7d4b-4c55-9a61-3f0e9d1b2a77")
HUGE = "999999999999"  # size and price 999999999999 are valid rows (issue 13, item 10)
MAX = "999999999999.99999999"  # the largest NUMERIC(20,8)


def uid(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def D(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


# The table -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PositionCase:
    name: str
    size: str
    entry_price: str
    current_price: str
    entry_value: str  # size x entry_price, 8 places, half to even
    position_value: str  # size x current_price
    pnl: str  # size x (current_price - entry_price)
    pnl_pct: Fraction  # (current_price - entry_price) / entry_price x 100, exact


@dataclass(frozen=True)
class OrderCase:
    name: str
    action: str
    status: str  # executed, pending, failed, cancelled
    amount_in: str
    price: str
    amount_out: str | None  # set exactly when executed
    total_value: str  # buy: amount_in; executed sell: amount_out; else amount_in x price, 8 places
    executed_price: str | None  # buy: amount_in / amount_out; sell: amount_out / amount_in; 8 places
    slippage_actual: str | None  # (expected_out - amount_out) / expected_out x 10,000, 4 places


POSITION_CASES = [
    # 1.5 x 100.75308643 = 151.129629645 and 1.5 x 2100.87654321 = 3151.314814815: ties, to even
    PositionCase("long_gain_ties", "1.5", "2000.12345678", "2100.87654321",
                 "3000.18518517", "3151.31481482", "151.12962964", Fraction(10075308643, 200012345678) * 100),
    PositionCase("long_loss", "10", "150", "120", "1500.00000000", "1200.00000000", "-300.00000000", Fraction(-20)),
    PositionCase("breakeven", "3", "7.5", "7.5", "22.50000000", "22.50000000", "0.00000000", Fraction(0)),
    # 1e-16 everywhere: rounds to zero
    PositionCase("tiny", "0.00000001", "0.00000001", "0.00000002",
                 "0.00000000", "0.00000000", "0.00000000", Fraction(100)),
    # 0.000000005 -> 0.00000000 (0 even), 0.000000015 -> 0.00000002 (2 even)
    PositionCase("half_way_up", "0.5", "0.00000001", "0.00000003",
                 "0.00000000", "0.00000002", "0.00000001", Fraction(200)),
    PositionCase("half_way_down", "0.5", "0.00000003", "0.00000001",
                 "0.00000002", "0.00000000", "-0.00000001", Fraction(-200, 3)),
    # pnl -0.000000005 -> -0.00000000: a break-even, not a loss
    PositionCase("negative_half_way", "0.5", "0.00000002", "0.00000001",
                 "0.00000001", "0.00000000", "-0.00000000", Fraction(-50)),
    PositionCase("huge_flat", HUGE, HUGE, HUGE, "999999999998000000000001.00000000",
                 "999999999998000000000001.00000000", "0.00000000", Fraction(0)),
    # (1e12 - 1e-8)(1e12 - 2e-8) = 1e24 - 3e4 + 2e-16
    PositionCase("huge_gain", MAX, "0.00000001", MAX, "10000.00000000",
                 "999999999999999999980000.00000000", "999999999999999999970000.00000000",
                 Fraction(9999999999999999999800)),
    PositionCase("huge_loss", HUGE, HUGE, "0.00000001", "999999999998000000000001.00000000",
                 "9999.99999999", "-999999999997999999990001.00000001",
                 Fraction(-99999999999899999999, 999999999999000000)),
    PositionCase("third", "1", "3", "4", "3.00000000", "4.00000000", "1.00000000", Fraction(100, 3)),
]

ORDER_CASES = [
    # buy: expected_out = amount_in / price tokens
    OrderCase("buy_executed", "buy", "executed", "100", "2", "49.5",
              "100", "2.02020202", "100.0000"),
    OrderCase("buy_better_fill", "buy", "executed", "100", "2", "51",
              "100", "1.96078431", "-200.0000"),
    # expected_out 1/3 (not a terminating decimal): 0.33 is 1 % short
    OrderCase("buy_third", "buy", "executed", "1", "3", "0.33", "1", "3.03030303", "100.0000"),
    # executed_price 0.000000005 -> 0.00000000 and 0.000000015 -> 0.00000002
    OrderCase("buy_price_half_way_down", "buy", "executed", "0.00000001", "0.00000001", "2",
              "0.00000001", "0.00000000", "-10000.0000"),
    OrderCase("buy_price_half_way_up", "buy", "executed", "0.00000003", "0.00000001", "2",
              "0.00000003", "0.00000002", "3333.3333"),
    OrderCase("buy_huge", "buy", "executed", HUGE, "0.00000001", "0.00000001",
              HUGE, "99999999999900000000.00000000", "10000.0000"),
    OrderCase("buy_pending", "buy", "pending", "250.5", "3", None, "250.5", None, None),
    OrderCase("buy_failed", "buy", "failed", "0.00000001", HUGE, None, "0.00000001", None, None),
    # sell: expected_out = amount_in x price USD; slippage 0.00015 -> 0.0002, 0.00005 -> 0.0000
    OrderCase("sell_executed_slippage_half_way_up", "sell", "executed", "2", "1", "1.99999997",
              "1.99999997", "0.99999998", "0.0002"),
    OrderCase("sell_executed_slippage_half_way_down", "sell", "executed", "2", "1", "1.99999999",
              "1.99999999", "1.00000000", "0.0000"),
    OrderCase("sell_huge_executed", "sell", "executed", HUGE, HUGE, MAX,
              MAX, "1.00000000", "10000.0000"),
    # no execution data: total_value = amount_in x price (0.617283945 -> 0.61728394, a tie)
    OrderCase("sell_pending_half_way", "sell", "pending", "1.23456789", "0.5", None, "0.61728394", None, None),
    OrderCase("sell_failed_tie_up", "sell", "failed", "0.5", "0.00000003", None, "0.00000002", None, None),
    OrderCase("sell_cancelled_tiny", "sell", "cancelled", "0.00000001", "0.00000001", None,
              "0.00000000", None, None),
    OrderCase("sell_pending_huge", "sell", "pending", HUGE, HUGE, None,
              "999999999998000000000001.00000000", None, None),
]


# The rows --------------------------------------------------------------------------------------


def _user(name: str) -> User:
    user = User(username=f"u{uid(name).hex[:16]}", email=f"{name.replace('_', '-')}@example.com",
                password_hash="not a real hash: these users never log in")
    user.user_id, user.created_at, user.updated_at = uid(f"user {name}"), T0, T0
    return user


def _position(case: PositionCase, day: int = 0) -> Position:
    """Closed on UTC day ``day`` (one position per day and per user, so per-day and per-user
    aggregates in SQL are per-row values)."""
    opened = T0 + timedelta(days=day)
    row = build_position(PositionCreate(
        user_id=uid(f"user {case.name}"), token="SOL", size=Decimal(case.size), entry_price=Decimal(case.entry_price),
        current_price=Decimal(case.current_price), status=PositionStatus.CLOSED, opened_at=opened,
        closed_at=opened + timedelta(hours=1), strategy=case.name))
    row.position_id, row.created_at, row.updated_at = uid(case.name), opened, opened
    return row


def _order(case: OrderCase, hour: int = 0) -> Order:
    created = T0 + timedelta(hours=hour)
    row = build_order(OrderCreate(user_id=uid(f"user {case.name}"), token="SOL", action=case.action,
                                  amount_in=Decimal(case.amount_in), price=Decimal(case.price)))
    row.order_id, row.created_at, row.updated_at = uid(case.name), created, created
    if case.status == "executed":
        assert case.amount_out is not None
        row.execute(f"sig-{case.name}", Decimal(case.amount_out), at=created + timedelta(minutes=30))
    elif case.status == "failed":
        row.fail("no route")
    elif case.status == "cancelled":
        row.cancel()
    assert row.status == case.status
    return row


def test_the_table_covers_the_directions_and_edges():
    assert {case.action for case in ORDER_CASES} == {a.value for a in OrderAction}
    assert {case.status for case in ORDER_CASES} == {s.value for s in OrderStatus}
    signs = {Decimal(case.pnl).compare(0) for case in POSITION_CASES}
    assert signs == {Decimal(-1), Decimal(0), Decimal(1)}
    assert any(case.size == HUGE and case.entry_price == HUGE for case in POSITION_CASES)


def test_positions_are_long_only_a_short_is_refused():
    with pytest.raises(pydantic.ValidationError, match="size"):
        PositionCreate(user_id=uid("user short"), token="SOL", size=Decimal("-1"), entry_price=Decimal("100"),
                       current_price=Decimal("90"))


# Python: the models ----------------------------------------------------------------------------


@pytest.mark.parametrize("case", POSITION_CASES, ids=lambda c: c.name)
def test_position_model(case):
    position = _position(case)
    assert (position.entry_value, position.position_value, position.pnl) == (
        Decimal(case.entry_value), Decimal(case.position_value), Decimal(case.pnl))
    assert position.pnl.as_tuple() == Decimal(case.pnl).as_tuple()  # 8 places, and the sign of a zero kept
    assert position.pnl_pct == float(case.pnl_pct)


@pytest.mark.parametrize("case", ORDER_CASES, ids=lambda c: c.name)
def test_order_model(case):
    order = _order(case)
    assert order.total_value == Decimal(case.total_value)
    assert order.executed_price == D(case.executed_price)
    assert order.slippage_actual == D(case.slippage_actual)
    if case.slippage_actual is not None:
        assert order.slippage_actual.as_tuple() == Decimal(case.slippage_actual).as_tuple()  # 4 places


# The loaders (Arrow) and the SQL, one database per backend --------------------------------------


@pytest.fixture(scope="module")
def databases(migrated_templates, tmp_path_factory):
    """backend -> url: the table's rows in one migrated database per backend for the module
    (made on first use), position i closed on day i, order i created at hour i, each case with a
    user of its own."""
    urls: dict[str, str] = {}

    def database_of(backend: str) -> str:
        if backend not in urls:
            require_backend(backend)
            url = copy_migrated_database(backend, migrated_templates, tmp_path_factory.mktemp("formulas"),
                                         "formulas.db")
            urls[backend] = url
            engine = create_engine(url)
            try:
                with Session(engine) as session:
                    session.add_all([_user(case.name) for case in [*POSITION_CASES, *ORDER_CASES]])
                    session.flush()
                    session.add_all([_position(case, day) for day, case in enumerate(POSITION_CASES)])
                    session.add_all([_order(case, hour) for hour, case in enumerate(ORDER_CASES)])
                    session.commit()
                if backend == "postgresql":
                    aggregates.refresh_views(engine, concurrently=False)
            finally:
                engine.dispose()
        return urls[backend]

    yield database_of
    if "postgresql" in urls:
        drop_postgres_database(urls["postgresql"])


@pytest.fixture(params=BACKENDS)
def database(request, databases) -> str:
    """The URL of the table's database on each backend."""
    return databases(request.param)


@pytest.fixture
def postgresql(databases) -> Iterator[sa.Connection]:
    """A connection to the table's PostgreSQL database (push-down and views exist there only)."""
    engine = create_engine(databases("postgresql"))
    try:
        with engine.connect() as connection:
            yield connection
    finally:
        engine.dispose()


def _by_id(frame, id_column):
    return {str(row[id_column]): row for row in frame.to_dict("records")}


def _none(value):
    return None if value is None or value != value else value  # NaN / NA -> None


def test_loaded_positions_decimal(database):
    url = database
    rows = _by_id(frames.load_positions(url, money="decimal"), "position_id")
    assert len(rows) == len(POSITION_CASES)
    for case in POSITION_CASES:
        row = rows[str(uid(case.name))]
        got = (row["entry_value"], row["position_value"], row["pnl"])
        assert got == (Decimal(case.entry_value), Decimal(case.position_value), Decimal(case.pnl)), case.name
        # pnl_pct: not checked here, see the note at test_loaded_positions_float


def test_loaded_positions_float(database):
    url = database
    rows = _by_id(frames.load_positions(url), "position_id")
    for case in POSITION_CASES:
        row = rows[str(uid(case.name))]
        got = (row["entry_value"], row["position_value"], row["pnl"])
        assert got == (float(Decimal(case.entry_value)), float(Decimal(case.position_value)),
                       float(Decimal(case.pnl))), case.name
    # The loaders' pnl_pct (frames.schemas._pnl_pct) is float64 arithmetic, a ratio and not money
    # (docs/conventions.md, Derived formulas): within 4 ulp of the nearest float of the exact ratio
    # (case "third": 33.33333333333333 where the nearest float is 33.333333333333336).
    for mode in ("float", "decimal"):
        loaded = _by_id(frames.load_positions(url, money=mode), "position_id")
        for case in POSITION_CASES:
            nearest, got_pct = float(case.pnl_pct), float(loaded[str(uid(case.name))]["pnl_pct"])
            assert abs(got_pct - nearest) <= 4 * math.ulp(nearest), (case.name, mode, got_pct, nearest)


@pytest.mark.parametrize("money", ["decimal", "float"])
def test_loaded_orders(database, money):
    url = database
    rows = _by_id(frames.load_orders(url, money=money), "order_id")
    assert len(rows) == len(ORDER_CASES)
    convert = Decimal if money == "decimal" else (lambda text: float(Decimal(text)))
    for case in ORDER_CASES:
        row = rows[str(uid(case.name))]
        assert row["total_value"] == convert(case.total_value), case.name
        expected_price = None if case.executed_price is None else convert(case.executed_price)
        assert _none(row["executed_price"]) == expected_price, case.name
        # slippage_actual is stored (Order.execute) and loaded as a float in both modes
        expected_slippage = None if case.slippage_actual is None else float(Decimal(case.slippage_actual))
        assert _none(row["slippage_actual"]) == expected_slippage, case.name


def test_pushdown_daily_realized_pnl_per_position(postgresql):
    series = aggregates.daily_realized_pnl(postgresql, T0, T0 + timedelta(days=len(POSITION_CASES)))
    assert [series.iloc[day] for day in range(len(POSITION_CASES))] == [Decimal(c.pnl) for c in POSITION_CASES]


def test_view_daily_trading_performance_per_position(postgresql):
    rows = {row.strategy: row for row in postgresql.execute(sa.text(
        "SELECT strategy, closed_positions, wins, losses, break_even, realized_pnl, entry_value "
        "FROM mv_daily_trading_performance"))}
    assert len(rows) == len(POSITION_CASES)
    for case in POSITION_CASES:
        row, pnl = rows[case.name], Decimal(case.pnl)
        assert (row.realized_pnl, row.entry_value) == (pnl, Decimal(case.entry_value)), case.name
        assert (row.closed_positions, row.wins, row.losses, row.break_even) == (
            1, int(pnl > 0), int(pnl < 0), int(pnl == 0)), case.name


def test_view_user_statistics_per_case(postgresql):
    rows = {row.user_id: row for row in postgresql.execute(sa.text(
        "SELECT user_id, realized_pnl, executed_notional FROM mv_user_statistics"))}
    for case in POSITION_CASES:
        assert rows[uid(f"user {case.name}")].realized_pnl == Decimal(case.pnl), case.name
    for case in ORDER_CASES:  # executed_notional: the total_value of the executed orders
        expected = Decimal(case.total_value) if case.status == "executed" else Decimal(0)
        assert rows[uid(f"user {case.name}")].executed_notional == expected, case.name


def test_pushdown_total_value_per_order(postgresql):
    t = ORDERS.table
    values = dict(postgresql.execute(sa.select(t.c.order_id, _total_value(t, _binder("postgresql")))).all())
    assert values == {uid(case.name): Decimal(case.total_value) for case in ORDER_CASES}


def test_pushdown_execution_notional_per_status(postgresql):
    result = aggregates.execution_aggregates(postgresql, T0, T0 + timedelta(days=1))
    for status in OrderStatus:
        cases = [case for case in ORDER_CASES if case.status == status.value]
        with localcontext() as context:
            context.prec = 60  # the exact sum
            expected = sum((Decimal(case.total_value) for case in cases), Decimal(0))
        assert result.by_status.loc[status.value, "orders"] == len(cases)
        assert result.by_status.loc[status.value, "notional_usd"] == expected, status.value
