"""The execution report computed in PostgreSQL (push-down) equals the report computed from the
loaded orders (pandas): on the small demo data for several windows, and on hand-built orders
with the edge cases; and the path is chosen as asked, and recorded.

Money and counts compare exactly; floats to a relative 1e-12 (PostgreSQL's exact NUMERIC means
and percentile_cont can differ from numpy in the last bits); every table with
pandas.testing.assert_frame_equal (index, categories, dtypes); histograms bin for bin.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from _compare import assert_path_follows_settings, assert_same_summary, assert_same_tables, png
from _databases import POSTGRESQL_ONLY, engine_of, seeded_postgres_database
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from test_reports import U1, U2, seed_users, settle_order, t

from shivx_analytics import plots
from shivx_analytics.aggregates import PushdownUnavailable, execution_aggregates, read_connection
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.frames import load_orders
from shivx_analytics.metrics import latency_seconds
from shivx_analytics.models import Order, OrderCreate
from shivx_analytics.reports import Report, execution_report

AS_OF = "2025-10-28T00:00:00Z"


@pytest.fixture(scope="module")
def demo_url(migrated_templates) -> Iterator[str]:
    """The small demo data (seed 0) on PostgreSQL, shared by the tests of this module (reports
    only read)."""
    with seeded_postgres_database(
            migrated_templates, lambda url: generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)) as url:
        yield url


# Both paths give the same report ----------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize(("window", "empty"), [
    ({}, False),  # the default: the 30 days before as_of
    ({"since": "2025-10-03T07:30:00.250000", "until": "2025-10-20T13:15:00"}, False),  # bounds inside days
    ({"since": "2025-10-10T00:00:00", "until": "2025-10-10T00:00:00"}, True),
], ids=["default", "not_day_aligned", "empty"])
@POSTGRESQL_ONLY
def test_pushdown_equals_pandas_on_the_demo_data(backend, demo_url, window, empty):
    pandas_report = execution_report(demo_url, as_of=AS_OF, pushdown=False, **window)
    pushed = execution_report(demo_url, as_of=AS_OF, pushdown=True, **window)
    assert_same_report(pandas_report, pushed)
    assert_histograms_match_numpy(demo_url, pushed.parameters["since"], pushed.parameters["until"])
    if empty:
        assert pushed.summary["orders"] == 0 and pushed.summary["fill_rate"] is None
        assert len(pushed.exact_tables["daily_notional"]) == 0
    else:
        assert pushed.summary["orders"] > 0 and pushed.summary["slippage_bps_median"] is not None


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_pushdown_path_loads_no_order_rows(backend, demo_url, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load_orders called on the push-down path")

    monkeypatch.setattr("shivx_analytics.reports.execution.load_orders", refuse)
    report = execution_report(demo_url, as_of=AS_OF, pushdown=True)
    assert report.parameters["path"] == "pushdown" and report.summary["executed"] > 0


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_every_kind_of_source_gives_the_same_pushed_down_report(backend, demo_url):
    expected = execution_report(demo_url, as_of=AS_OF, pushdown=True)
    with engine_of(demo_url) as engine, engine.connect() as connection, Session(engine) as session:
        for source in (engine, connection, session):
            report = execution_report(source, as_of=AS_OF, pushdown=True)
            assert report.to_json() == expected.to_json()


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_a_callers_connection_keeps_its_settings(backend, demo_url):
    with engine_of(demo_url) as engine, engine.connect() as connection:
        shown = lambda: [connection.exec_driver_sql(f"SHOW {name}").scalar() for name in ("jit", "work_mem")]  # noqa: E731
        before = shown()
        execution_report(connection, as_of=AS_OF, pushdown=True)
        assert shown() == before


# Hand-built orders with the edge cases ---------------------------------------------------------
#
# The window is [2025-01-02 00:00, 2025-01-05 00:00). One row per order:
# (n, token, action, order_type, amount_in, price, status, created, executed or failed_reason,
#  amount_out, slippage_bps, slippage_actual (None = as computed; "null" = no slippage known))
EDGE_SINCE, EDGE_UNTIL = "2025-01-02T00:00:00", "2025-01-05T00:00:00"
EDGE_ORDERS = [
    # before the window, and exactly at its bounds (the first is in, the last out)
    (1, "SOL", "buy", "market", "100", "100", "executed", "2025-01-01T23:59:59.999999", "2025-01-02T00:00:01", "1", 50, None),
    (2, "SOL", "buy", "market", "100", "100", "executed", "2025-01-02T00:00:00", "2025-01-02T00:00:00", "0.995", 50, None),
    (3, "SOL", "sell", "market", "1", "100", "pending", "2025-01-05T00:00:00", None, None, 50, None),
    # executed without a known slippage; at, above and below the tolerance
    (4, "ETH", "buy", "limit", "2000", "2000", "executed", "2025-01-02T10:00:00", "2025-01-02T10:00:02.5", "1", 50, "null"),
    (5, "ETH", "sell", "limit", "1", "2000", "executed", "2025-01-02T11:00:00", "2025-01-02T11:01:00", "1990", 50, "50"),
    (6, "SOL", "sell", "stop_loss", "2", "100", "executed", "2025-01-02T12:00:00", "2025-01-02T12:00:03", "199.99", 50, "50.0001"),
    (7, "SOL", "buy", "market", "100", "100", "executed", "2025-01-03T09:00:00", "2025-01-03T09:00:01.000001", "1.02", 100, "-200"),
    # executed across midnight UTC, and after the window's end (not in the daily notional)
    (8, "btc", "sell", "market", "0.5", "40000", "executed", "2025-01-03T23:59:59.999999", "2025-01-04T00:00:00.5", "19990.12345678", 20, None),
    (9, "BTC", "sell", "market", "0.1", "40000", "executed", "2025-01-04T23:00:00", "2025-01-05T01:00:00", "3999.5", 20, None),
    # sells not executed: total_value = amount_in x price, rounded half to even at the tie
    (10, "Éth", "sell", "market", "0.00000025", "0.5", "pending", "2025-01-03T01:00:00", None, None, 50, None),
    (11, "SOL", "sell", "market", "0.00000015", "0.5", "failed", "2025-01-03T02:00:00", None, None, 50, None),
    (12, "SOL", "sell", "limit", "123456.12345678", "9999.99999999", "cancelled", "2025-01-03T03:00:00", None, None, 50, None),
    # failed without a reason, with the text "(none)", and reasons that sort differently by locale
    (13, "SOL", "buy", "market", "10", "100", "failed", "2025-01-04T04:00:00", None, None, 50, None),
    (14, "ETH", "buy", "market", "10", "100", "failed", "2025-01-04T05:00:00", "(none)", None, 50, None),
    (15, "SOL", "buy", "market", "10", "100", "failed", "2025-01-04T06:00:00", "rpc timeout", None, 50, None),
    (16, "SOL", "buy", "market", "10", "100", "failed", "2025-01-04T07:00:00", "RPC timeout", None, 50, None),
    (17, "SOL", "buy", "market", "10", "100", "failed", "2025-01-04T08:00:00", "RPC timeout", None, 50, None),
    (18, "SOL", "buy", "take_profit", "10", "100", "cancelled", "2025-01-04T09:00:00", None, None, 50, None),
]
PENDING_ONLY = [
    (1, "SOL", "buy", "market", "100", "100", "pending", "2025-01-02T08:00:00", None, None, 50, None),
    (2, "ETH", "sell", "limit", "0.3", "1999.99999999", "pending", "2025-01-03T08:00:00", None, None, 50, None),
]


def seed_edge_orders(url: str, rows: list[tuple]) -> None:
    with engine_of(url) as engine, Session(engine) as session:
        seed_users(session)
        for (n, token, action, kind, amount_in, price, status, created, last, amount_out, tolerance,
             slippage) in rows:
            order = Order.model_validate(
                OrderCreate(user_id=U1 if n % 2 else U2, token=token, action=action, order_type=kind,
                            amount_in=Decimal(amount_in), price=Decimal(price), slippage_bps=tolerance),
                update={"order_id": uuid.UUID(int=1000 + n), "created_at": t(created)})
            settle_order(order, status, last, amount_out, signature=f"edge{n}")
            if status == "executed" and slippage is not None:
                order.slippage_actual = None if slippage == "null" else Decimal(slippage)
            session.add(order)
        session.commit()


@POSTGRESQL_ONLY
@pytest.mark.parametrize("rows", [EDGE_ORDERS, PENDING_ONLY], ids=["edge_cases", "pending_only"])
def test_pushdown_equals_pandas_on_hand_built_orders(backend, db_url, rows):
    seed_edge_orders(db_url, rows)
    window = {"since": EDGE_SINCE, "until": EDGE_UNTIL, "as_of": EDGE_UNTIL}
    pandas_report = execution_report(db_url, pushdown=False, **window)
    pushed = execution_report(db_url, pushdown=True, **window)
    assert_same_report(pandas_report, pushed)
    assert_histograms_match_numpy(db_url, EDGE_SINCE, EDGE_UNTIL)
    s = pushed.summary
    if rows is PENDING_ONLY:
        assert (s["orders"], s["pending"], s["fill_rate"], s["slippage_bps_median"]) == (2, 2, None, None)
        assert pushed.exact_tables["by_status"].loc["pending", "notional_usd"] == Decimal("700.00000000")
        return
    # orders 2-18 but 3: 16 orders, 7 executed (4 has no slippage), 6 failed, 2 cancelled, 1 pending
    assert (s["orders"], s["executed"], s["failed"], s["cancelled"], s["pending"]) == (16, 7, 6, 2, 1)
    assert s["over_tolerance_rate"] == 1 / 6  # only 50.0001 > 50 among the 6 with a slippage
    # 0.00000025 x 0.5 = 0.000000125 -> 0.00000012 (half to even); 0.000000075 -> 0.00000008
    notional = pushed.exact_tables["by_status"]["notional_usd"]
    assert notional["pending"] == Decimal("0.00000012")
    assert notional["failed"] == Decimal("50.00000008")
    daily = pushed.exact_tables["daily_notional"]
    assert list(daily.index.strftime("%m-%d")) == ["01-02", "01-03", "01-04"]
    assert daily.loc["2025-01-04", "sell"] == Decimal("19990.12345678")  # order 9 executed after until
    reasons = pushed.exact_tables["failure_reasons"]
    assert list(reasons["reason"]) == ["(none)", "RPC timeout", "rpc timeout"]
    assert list(reasons["count"]) == [3, 2, 1]


@POSTGRESQL_ONLY
def test_days_are_utc_days_whatever_the_session_time_zone(backend, db_url):
    seed_edge_orders(db_url, EDGE_ORDERS)
    window = {"since": EDGE_SINCE, "until": EDGE_UNTIL, "as_of": EDGE_UNTIL}
    expected = execution_report(db_url, pushdown=False, **window)
    for zone in ("Pacific/Kiritimati", "America/Adak"):  # UTC+14, UTC-10
        engine = sa.create_engine(make_url(db_url).set(drivername="postgresql+psycopg"),
                                  connect_args={"options": f"-c TimeZone={zone}"})
        try:
            assert_same_report(expected, execution_report(engine, pushdown=True, **window))
        finally:
            engine.dispose()


# Which path runs -------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["sqlite"])
def test_pushdown_on_sqlite_is_refused_naming_sqlite(backend, db_url):
    with pytest.raises(PushdownUnavailable, match="(?i)sqlite"):
        execution_report(db_url, as_of=AS_OF, pushdown=True)
    assert execution_report(db_url, as_of=AS_OF).parameters["path"] == "pandas"


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_argument_then_the_settings_choose_the_path(backend, demo_url, settings_env):
    assert_path_follows_settings(lambda **path: execution_report(demo_url, as_of=AS_OF, **path), settings_env)


def test_histogram_counts_draws_the_figure_histogram_draws():
    rng = np.random.default_rng(0)
    for values in (rng.normal(size=500), np.full(7, 5.0), np.empty(0)):
        counts, edges = np.histogram(values, bins=50) if len(values) else (np.empty(0, dtype=int), np.empty(0))
        style = {"title": "t", "xlabel": "x", "marker": 1.0, "marker_label": "m"}
        drawn = [plots.histogram(pd.Series(values, dtype="float64"), **style),
                 plots.histogram_counts(edges, counts, **style)]
        assert png(drawn[0]) == png(drawn[1])


# Comparisons -----------------------------------------------------------------------------------

def assert_same_report(pandas_report: Report, pushed: Report) -> None:
    """Same summary, tables, figures and notes; only the recorded path differs."""
    assert (pandas_report.parameters["path"], pushed.parameters["path"]) == ("pandas", "pushdown")
    drop_path = lambda parameters: {k: v for k, v in parameters.items() if k not in ("path", "database")}  # noqa: E731
    assert drop_path(pandas_report.parameters) == drop_path(pushed.parameters)
    assert_same_summary(pandas_report.summary, pushed.summary)
    assert_same_tables(pandas_report.exact_tables, pushed.exact_tables)
    for name, expected in pandas_report.exact_tables.items():
        exact = [c for c in expected.columns if expected[c].dtype != "Float64" and c != "value"]
        pd.testing.assert_frame_equal(pushed.exact_tables[name][exact], expected[exact], check_exact=True, obj=name)
    assert list(pushed.figures) == list(pandas_report.figures)
    for name in ("slippage_histogram", "latency_histogram"):
        assert _drawn(pushed.figures[name]) == _drawn(pandas_report.figures[name]), name
    assert pushed.notes == pandas_report.notes


def assert_histograms_match_numpy(url: str, since: object, until: object) -> None:
    """The pushed-down bins are numpy.histogram(values, bins=50) of the loaded values."""
    orders = load_orders(url, since=since, until=until)
    executed = orders[orders["status"] == "executed"]
    with read_connection(url) as connection:
        found = execution_aggregates(connection, since, until)
    for histogram, values in ((found.slippage_histogram, executed["slippage_actual"]),
                              (found.latency_histogram, latency_seconds(orders))):
        values = values.dropna().to_numpy()
        if len(values) == 0:
            assert len(histogram.edges) == len(histogram.counts) == 0
            continue
        counts, edges = np.histogram(values, bins=50)
        assert np.array_equal(histogram.counts, counts) and histogram.counts.dtype == np.int64
        assert np.array_equal(histogram.edges, edges)


def _drawn(figure) -> tuple:
    """What a histogram shows: its bars, lines, texts and legend."""
    ax = figure.axes[0]
    bars = [(p.get_x(), p.get_width(), p.get_height()) for p in ax.patches]
    lines = [tuple(line.get_xdata()) for line in ax.lines]
    legend = ax.get_legend()
    return (bars, lines, [text.get_text() for text in ax.texts],
            None if legend is None else [text.get_text() for text in legend.get_texts()],
            ax.get_title(), ax.get_xlabel())
