"""Money that works with all of pandas: the default frames (money="float") take everyday operations.

Every operation below runs on the DEFAULT frame of every loader, on both backends (the small demo
dataset): money operations on positions and orders, the applicable ones on audit logs, API keys and
users (their numeric columns are counts). Each checks its result against a plain numpy computation
of the same values, so a wrong dtype or a wrong value fails, not only an exception.

Then the edge of what the database accepts: a position whose size and prices are 999999999999 and
orders with amounts at NUMERIC(20,8)'s limit load in both money modes on both backends; the exact
mode equals the models to the last digit, the float mode is the nearest float of each exact value;
pnl_report runs over that database.
"""

from __future__ import annotations

import math
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from _databases import BACKENDS, copy_migrated_database, drop_postgres_database, require_backend
from sqlalchemy.orm import Session

import shivx_analytics as sx
from shivx_analytics import demo
from shivx_analytics.db import create_engine
from shivx_analytics.models import (
    Order,
    OrderCreate,
    Position,
    PositionCreate,
    UserCreate,
    build_order,
    build_position,
    build_user,
)

AS_OF = "2025-10-28"
EXACT = pd.ArrowDtype(pa.decimal128(20, 8))
EXACT_DERIVED = pd.ArrowDtype(pa.decimal128(38, 8))

# The money columns of each frame (stored, then derived)
MONEY_COLUMNS = {
    "positions": ("size", "entry_price", "current_price", "stop_loss", "take_profit",
                  "entry_value", "position_value", "pnl"),
    "orders": ("amount_in", "amount_out", "price", "total_value", "executed_price"),
    "audit_logs": (), "api_keys": (), "users": (),
}
DERIVED = {"entry_value", "position_value", "pnl", "total_value", "executed_price"}
LOADERS = {"positions": sx.load_positions, "orders": sx.load_orders, "audit_logs": sx.load_audit_logs,
           "api_keys": sx.load_api_keys, "users": sx.load_users}


@dataclass(frozen=True)
class Spec:
    """What the operations work on in one frame: two numeric columns, a time and a group key."""

    value: str  # a money column (positions, orders) or a count
    other: str  # a second one, for products, correlations and merges
    time: str
    group: str
    money: bool


SPECS = {
    "positions": Spec("pnl", "size", "opened_at", "token", True),
    "orders": Spec("amount_in", "price", "created_at", "token", True),
    "audit_logs": Spec("status_code", "status_code", "timestamp", "event_type", False),
    "api_keys": Spec("requests_count", "rate_limit", "created_at", "user_id", False),
    "users": Spec("failed_login_attempts", "failed_login_attempts", "created_at", "is_active", False),
}


def plain(series: pd.Series) -> np.ndarray:
    """The values as float64 numpy (NaN for missing): the reference every result is checked against."""
    return series.astype("float64").to_numpy(na_value=np.nan) if series.dtype != np.float64 else series.to_numpy()


# The operations ------------------------------------------------------------------------------------
# Each takes (frame, spec, tmp_path) and asserts its own result.


def op_times_two(f, s, _):
    assert np.allclose(plain(f[s.value] * 2), plain(f[s.value]) * 2, equal_nan=True, rtol=0)


def op_product_of_two_columns(f, s, _):
    assert np.allclose(plain(f[s.value] * f[s.other]), plain(f[s.value]) * plain(f[s.other]), equal_nan=True)


def op_divide_by_100(f, s, _):
    assert np.allclose(plain(f[s.value] / 100), plain(f[s.value]) / 100, equal_nan=True)


def op_add_and_subtract(f, s, _):
    assert np.allclose(plain(f[s.value] + f[s.other] - f[s.other]), plain(f[s.value]), equal_nan=True)


def op_sum_and_mean(f, s, _):
    values = plain(f[s.value])
    assert math.isclose(float(f[s.value].sum()), np.nansum(values), rel_tol=1e-12, abs_tol=1e-9)
    if np.isfinite(values).any():
        assert math.isclose(float(f[s.value].mean()), np.nanmean(values), rel_tol=1e-12, abs_tol=1e-9)


def op_cumsum(f, s, _):
    assert np.allclose(plain(f[s.value].cumsum()), np.nancumsum(plain(f[s.value])) + 0 * plain(f[s.value]),
                       equal_nan=True, rtol=1e-12, atol=1e-6)


def op_cummax(f, s, _):
    running = f[s.value].cummax().dropna()
    assert running.is_monotonic_increasing


def op_describe(f, s, _):
    summary = f[s.value].describe()
    values = plain(f[s.value])
    assert summary["count"] == np.isfinite(values).sum()
    if summary["count"]:
        assert summary["max"] == np.nanmax(values) and summary["min"] == np.nanmin(values)
        assert "mean" in summary.index and "50%" in summary.index


def op_nlargest(f, s, _):
    top = f[s.value].nlargest(3)
    values = plain(f[s.value])
    assert list(plain(top)) == sorted(values[np.isfinite(values)], reverse=True)[:3]


def op_pct_change(f, s, _):
    changes = f[s.value].pct_change(fill_method=None)
    values = plain(f[s.value])
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = values[1:] / values[:-1] - 1
    assert np.allclose(plain(changes)[1:], expected, equal_nan=True)


def op_rolling_mean(f, s, _):
    rolled = f[s.value].rolling(5, min_periods=1).mean()
    assert len(rolled) == len(f) and rolled.dtype.kind == "f"
    values = plain(f[s.value])
    if len(values) >= 5 and np.isfinite(values[:5]).all():
        assert math.isclose(rolled.iloc[4], values[:5].mean(), rel_tol=1e-12)


def op_groupby_sum_and_mean(f, s, _):
    grouped = f.groupby(s.group, observed=True)[s.value].agg(["sum", "mean"])
    assert math.isclose(float(grouped["sum"].sum()), np.nansum(plain(f[s.value])), rel_tol=1e-9, abs_tol=1e-6)
    assert grouped["mean"].dtype.kind == "f"


def op_resample_daily(f, s, _):
    daily = f.set_index(s.time)[s.value].resample("D").sum()
    assert math.isclose(float(daily.sum()), np.nansum(plain(f[s.value])), rel_tol=1e-9, abs_tol=1e-6)
    assert isinstance(daily.index, pd.DatetimeIndex) and str(daily.index.tz) == "UTC"


def op_log1p(f, s, _):
    magnitude = f[s.value].abs()
    logs = np.log1p(magnitude)
    assert np.allclose(plain(logs), np.log1p(plain(magnitude)), equal_nan=True)


def op_plot_hist(f, s, _):
    import matplotlib.pyplot as plt

    previous = matplotlib.get_backend()
    plt.switch_backend("Agg")  # headless, for this test only
    try:
        values = f[s.value].dropna()
        axes = values.plot.hist(bins=10)
        heights = [patch.get_height() for patch in axes.patches]
        assert sum(heights) == len(values)
        plt.close(axes.figure)
    finally:
        plt.switch_backend(previous)


def op_parquet_round_trip(f, s, tmp_path):
    path = tmp_path / "frame.parquet"
    f.to_parquet(path)
    back = pd.read_parquet(path)
    assert list(back.columns) == list(f.columns)
    assert np.array_equal(plain(back[s.value]), plain(f[s.value]), equal_nan=True)


def op_to_sql(f, s, _):
    connection = sqlite3.connect(":memory:")
    try:
        frame = f[[s.time, s.value, s.group]].astype({s.group: "string"})
        assert frame.to_sql("frame", connection, index=False) == len(f)
        total, count = connection.execute(f'SELECT TOTAL("{s.value}"), COUNT(*) FROM frame').fetchone()
    finally:
        connection.close()
    assert count == len(f)
    assert math.isclose(total, np.nansum(plain(f[s.value])), rel_tol=1e-9, abs_tol=1e-6)


def op_quantile(f, s, _):
    values = plain(f[s.value])
    if not np.isfinite(values).any():
        return
    q = f[s.value].quantile([0.1, 0.5, 0.9])
    assert np.nanmin(values) <= q.min() <= q.max() <= np.nanmax(values)
    assert math.isclose(q.loc[0.5], np.nanmedian(values), rel_tol=1e-12)


def op_corr(f, s, _):
    correlation = f[s.value].corr(f[s.other])
    assert math.isnan(correlation) or -1 - 1e-12 <= correlation <= 1 + 1e-12


def op_clip(f, s, _):
    clipped = f[s.value].clip(lower=0, upper=100)
    assert np.allclose(plain(clipped), np.clip(plain(f[s.value]), 0, 100), equal_nan=True)


def op_rank(f, s, _):
    ranks = f[s.value].rank()
    values = plain(f[s.value])
    if np.isfinite(values).any():
        assert plain(ranks)[np.nanargmax(values)] == np.nanmax(plain(ranks))


def op_diff(f, s, _):
    assert np.allclose(plain(f[s.value].diff())[1:], np.diff(plain(f[s.value])), equal_nan=True)


def op_round_2(f, s, _):
    assert np.allclose(plain(f[s.value].round(2)), np.round(plain(f[s.value]), 2), equal_nan=True)


def op_sort_values(f, s, _):
    ordered = f.sort_values(s.value, na_position="last")[s.value].dropna()
    assert ordered.is_monotonic_increasing


def op_merge(f, s, _):
    left = f[[s.group, s.value]].dropna()
    right = left.groupby(s.group, observed=True, as_index=False)[s.value].sum().rename(columns={s.value: "total"})
    merged = left.merge(right, on=s.group)
    assert len(merged) == len(left)
    assert (merged["total"] - merged.groupby(s.group, observed=True)[s.value].transform("sum")).abs().max() < 1e-6 \
        or merged.empty


def op_apply_and_where(f, s, _):
    positive = f[s.value].where(f[s.value] > 0)
    assert (positive.dropna() > 0).all()
    assert np.allclose(plain(f[s.value].apply(lambda v: v * 3)), plain(f[s.value]) * 3, equal_nan=True)


def op_quantstats_sharpe(f, s, _):
    if not s.money:
        return
    import quantstats as qs

    daily = f.set_index(s.time)[s.value].resample("D").sum()
    returns = (daily.diff() / 10_000_000).dropna().tz_localize(None)  # a daily return series, +/- around 0
    sharpe = qs.stats.sharpe(returns)
    expected = returns.mean() / returns.std(ddof=1) * math.sqrt(252)
    assert math.isclose(float(sharpe), expected, rel_tol=1e-9)


OPERATIONS = [
    op_times_two, op_product_of_two_columns, op_divide_by_100, op_add_and_subtract, op_sum_and_mean, op_cumsum,
    op_cummax, op_describe, op_nlargest, op_pct_change, op_rolling_mean, op_groupby_sum_and_mean,
    op_resample_daily, op_log1p, op_plot_hist, op_parquet_round_trip, op_to_sql, op_quantile, op_corr, op_clip,
    op_rank, op_diff, op_round_2, op_sort_values, op_merge, op_apply_and_where, op_quantstats_sharpe,
]


@pytest.fixture(scope="module", params=BACKENDS)
def demo_frames(request, migrated_templates, tmp_path_factory):
    """The DEFAULT frame of every loader over the small demo dataset, on one backend."""
    backend = request.param
    require_backend(backend)
    url = copy_migrated_database(backend, migrated_templates, tmp_path_factory.mktemp("pandas_ops"), "ops.db")
    try:
        demo.generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
        yield url, {name: load(url) for name, load in LOADERS.items()}
    finally:
        if backend == "postgresql":
            drop_postgres_database(url)


@pytest.mark.slow
def test_default_frames_hold_every_money_column_as_float64(demo_frames):
    url, frames = demo_frames
    for name, frame in frames.items():
        assert len(frame) > 0, name
        for column in MONEY_COLUMNS[name]:
            assert frame[column].dtype == np.float64, (name, column)
        assert not any(isinstance(dtype, pd.ArrowDtype) and pa.types.is_decimal(dtype.pyarrow_dtype)
                       for dtype in frame.dtypes), name
    exact = sx.load_orders(url, money="decimal")
    for column in MONEY_COLUMNS["orders"]:
        assert exact[column].dtype == (EXACT_DERIVED if column in DERIVED else EXACT), column
        # each float is the nearest float64 of the exact value; nulls are NaN
        expected = [np.nan if pd.isna(v) else float(v) for v in exact[column]]
        assert np.array_equal(frames["orders"][column].to_numpy(), np.array(expected), equal_nan=True), column


@pytest.mark.slow
def test_frames_without_money_are_the_same_in_both_modes(demo_frames):
    url, frames = demo_frames
    for name in ("audit_logs", "api_keys", "users"):
        pd.testing.assert_frame_equal(LOADERS[name](url, money="decimal"), frames[name], check_exact=True, obj=name)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(LOADERS))
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.__name__[3:])
def test_everyday_pandas_operations_work_on_the_default_frames(demo_frames, name, operation, tmp_path):
    _, frames = demo_frames
    frame = frames[name]
    operation(frame, SPECS[name], tmp_path)


def test_the_operation_list_is_long_enough():
    assert len(OPERATIONS) >= 20 and len({op.__name__ for op in OPERATIONS}) == len(OPERATIONS)


# The largest rows the database accepts ----------------------------------------------------------------

T0 = datetime(2025, 10, 20, tzinfo=timezone.utc)
HUGE = Decimal("999999999999")
LARGEST = Decimal("999999999999.99999999")
TINY = Decimal("0.00000001")


def _huge_rows() -> tuple[list, list, list]:
    user = build_user(UserCreate(username="whale", email="whale@example.com", password="correct horse 9"))
    user.user_id = uuid.uuid4()

    def position(size, entry, current, hours, *, status="open", closed=None):
        row = build_position(PositionCreate(user_id=user.user_id, token="SOL", size=size, entry_price=entry,
                                            current_price=current, status=status, opened_at=T0 + timedelta(hours=hours),
                                            closed_at=None if closed is None else T0 + timedelta(hours=closed)))
        row.created_at = row.updated_at = T0 + timedelta(hours=hours)
        return row

    positions = [
        position(HUGE, HUGE, HUGE, 0),  # entry_value = position_value = 999999999998000000000001
        position(HUGE, HUGE, TINY, 1, status="closed", closed=30),  # a loss of ~1e24, realized
        position(LARGEST, LARGEST, Decimal("999999999998.5"), 2),
    ]

    def order(action, amount_in, price, hours, *, filled=None):
        row = build_order(OrderCreate(user_id=user.user_id, position_id=positions[0].position_id, token="SOL",
                                      action=action, amount_in=amount_in, price=price))
        row.created_at = row.updated_at = T0 + timedelta(hours=hours)
        if filled is not None:
            row.execute(f"sig-{hours}", filled, at=T0 + timedelta(hours=hours, minutes=1))
        return row

    orders = [
        order("buy", LARGEST, HUGE, 0, filled=TINY),  # executed_price = LARGEST / 0.00000001 ~ 1e20
        order("sell", LARGEST, LARGEST, 1),  # pending: total_value = amount_in x price ~ 1e24
        order("sell", HUGE, HUGE, 2, filled=LARGEST),
    ]
    return [user], positions, orders


@pytest.fixture(scope="module", params=BACKENDS)
def huge(request, migrated_templates, tmp_path_factory):
    """(url, positions, orders): a database holding the largest rows it accepts, and their models."""
    backend = request.param
    require_backend(backend)
    url = copy_migrated_database(backend, migrated_templates, tmp_path_factory.mktemp("huge"), "huge.db")
    engine = create_engine(url)
    users, positions, orders = _huge_rows()
    try:
        with Session(engine, expire_on_commit=False) as session:
            for rows in (users, positions, orders):
                session.add_all(rows)
                session.flush()
            session.commit()
        with Session(engine) as session:  # the rows as the database returns them
            positions = session.scalars(sa.select(Position).order_by(Position.opened_at)).all()
            orders = session.scalars(sa.select(Order).order_by(Order.created_at)).all()
            session.expunge_all()
        yield url, positions, orders
    finally:
        engine.dispose()
        if backend == "postgresql":
            drop_postgres_database(url)


def test_huge_positions_load_exactly_in_decimal_mode(huge):
    url, positions, _ = huge
    frame = sx.load_positions(url, money="decimal")
    assert len(frame) == len(positions)
    for row, model in zip(frame.itertuples(index=False), positions):
        for column in MONEY_COLUMNS["positions"]:
            got, want = getattr(row, column), getattr(model, column)
            assert (pd.isna(got) and want is None) or got == want, (column, got, want)
    assert frame["entry_value"].iloc[0] == Decimal("999999999998000000000001.00000000")
    assert frame["pnl"].iloc[1] == Decimal("-999999999997999999990001.00000001")  # 999999999999 x (1e-8 - 999999999999)
    assert {frame[c].dtype for c in ("entry_value", "position_value", "pnl")} == {EXACT_DERIVED}
    assert {frame[c].dtype for c in ("size", "entry_price", "current_price")} == {EXACT}
    chunks = pd.concat(sx.load_positions(url, money="decimal", chunksize=2), ignore_index=True)
    pd.testing.assert_frame_equal(chunks, frame, check_exact=True)


def test_huge_positions_load_as_nearest_floats_in_float_mode(huge):
    url, positions, _ = huge
    frame = sx.load_positions(url)
    for row, model in zip(frame.itertuples(index=False), positions):
        for column in MONEY_COLUMNS["positions"]:
            want = getattr(model, column)
            assert (math.isnan(getattr(row, column)) and want is None) or getattr(row, column) == float(want), column
    # exact first, then one conversion: not the float product of float operands
    assert frame["entry_value"].iloc[2] == float(positions[2].entry_value)
    assert (frame["size"] * frame["entry_price"]).sum() > 1e24  # and float arithmetic goes on from there
    chunks = pd.concat(sx.load_positions(url, chunksize=2), ignore_index=True)
    pd.testing.assert_frame_equal(chunks, frame, check_exact=True)


def test_huge_orders_load_in_both_modes(huge):
    url, _, orders = huge
    exact, floats = sx.load_orders(url, money="decimal"), sx.load_orders(url)
    assert len(exact) == len(floats) == len(orders)
    for i, model in enumerate(orders):
        for column in MONEY_COLUMNS["orders"]:
            want = getattr(model, column)
            if want is None:
                assert pd.isna(exact[column].iloc[i]) and math.isnan(floats[column].iloc[i]), column
            else:
                assert exact[column].iloc[i] == want and floats[column].iloc[i] == float(want), column
    assert exact["executed_price"].iloc[0] == Decimal("99999999999999999999")  # LARGEST / 0.00000001
    assert exact["total_value"].iloc[1] == Decimal("999999999999999999980000.00000000")  # LARGEST x LARGEST


@pytest.mark.slow
def test_reports_run_over_the_largest_rows(huge):
    url, positions, _ = huge
    report = sx.pnl_report(url, as_of="2025-10-28", starting_capital=100_000)
    assert report.summary
    assert sx.execution_report(url, as_of="2025-10-28").summary


def test_float_money_is_the_nearest_float_of_every_exact_value():
    """The float mode's conversion, on values around 2^53 units (where it changes method), nulls
    and slices: always float(Decimal), never Arrow's direct cast (one ulp off for some values)."""
    from shivx_analytics import _arrow

    rng = np.random.default_rng(11)
    units = [int(u) * int(10 ** int(e)) for u, e in zip(rng.integers(1, 10**16, 20_000), rng.integers(0, 16, 20_000))]
    units += [2**53 - 1, 2**53, 2**53 + 1, 10**28 - 1, 1, 0]
    values = [None if i % 13 == 0 else Decimal(u if i % 2 else -u).scaleb(-8) for i, u in enumerate(units)]
    for type_ in (pa.decimal128(38, 8), pa.decimal128(20, 8)):
        fitting = [v for v in values if v is None or abs(v) < Decimal(10) ** (type_.precision - 8)]
        array = pa.array(fitting, type_)
        for got, source in ((array, fitting), (array.slice(7, 5000), fitting[7:5007])):
            floats = _arrow.to_float(got).to_numpy(zero_copy_only=False)
            assert np.array_equal(floats, np.array([np.nan if v is None else float(v) for v in source]), equal_nan=True)
    direct = pa.array([v for v in values if v is not None], pa.decimal128(38, 8)).cast(pa.float64()).to_numpy()
    assert not np.array_equal(direct, np.array([float(v) for v in values if v is not None]))  # why not Arrow's cast


@pytest.mark.slow
def test_metrics_given_a_float_frame_say_to_load_it_exact(demo_frames):
    from shivx_analytics import metrics

    url, frames = demo_frames
    with pytest.raises(TypeError, match='floats are not exact money: load frames for metrics with money="decimal"'):
        metrics.trade_stats(frames["positions"])
    assert metrics.trade_stats(sx.load_positions(url, money="decimal")).closed_positions > 0
