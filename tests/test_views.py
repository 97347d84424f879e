"""The materialized views (PostgreSQL): refreshed by `db refresh-views` and the demo generator,
read by the reports when asked, with results identical to the direct path."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from _compare import assert_same_summary, png
from _databases import POSTGRESQL_ONLY
from sqlalchemy.orm import Session

import shivx_analytics as sx
from shivx_analytics import aggregates, metrics
from shivx_analytics.aggregates import PushdownUnavailable, views
from shivx_analytics.metrics._common import MONEY_TOTAL, quantize
from shivx_analytics.models import Position, PositionStatus
from shivx_analytics.models.audit_chain import append_audit_entries

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

AS_OF = "2025-10-28T00:00:00Z"
CLI = [sys.executable, "-m", "shivx_analytics.cli"]
WINDOWS = [
    {},  # the report's default window: whole days
    {"since": "2025-09-03T05:17:00Z", "until": "2025-10-20T13:00:00Z"},  # partial first and last day
    {"since": "2025-10-02T01:00:00Z", "until": "2025-10-02T23:00:00Z"},  # inside one day
    {"since": "2025-10-05", "until": "2025-10-05"},  # empty
]


@pytest.fixture
def demo(db_url):
    sx.generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    return db_url


TEARSHEET_TABLES = ("monthly_heatmap", "rolling", "drawdown_periods")
TEARSHEET_FIGURES = ("monthly_pnl_heatmap", "rolling_sharpe_volatility", "underwater", "equity_by_strategy")


@POSTGRESQL_ONLY
@pytest.mark.parametrize("capital", [None, "100000"], ids=["no-capital", "capital"])
@pytest.mark.parametrize("window", WINDOWS, ids=["default", "partial-days", "one-day", "empty"])
def test_pnl_report_from_views_equals_the_direct_path(backend, demo, window, capital):
    arguments = {**window, "as_of": AS_OF, "starting_capital": capital}
    direct = sx.pnl_report(demo, pushdown=False, use_views=False, **arguments)
    viewed = sx.pnl_report(demo, use_views=True, **arguments)
    pushed = sx.pnl_report(demo, pushdown=True, use_views=False, **arguments)
    assert (direct.parameters["path"], viewed.parameters["path"], pushed.parameters["path"]) == (
        "pandas", "views", "pushdown")
    assert set(TEARSHEET_TABLES) <= direct.tables.keys() and set(TEARSHEET_FIGURES) <= direct.figures.keys()
    # Each figure drawn once: constrained layout settles on the first draw, so a second PNG of the
    # same figure can differ by a pixel from the first.
    drawn = {id(r): {name: png(r.figures[name]) for name in TEARSHEET_FIGURES} for r in (direct, viewed, pushed)}
    for other in (viewed, pushed):
        assert other.summary == direct.summary
        assert other.notes == direct.notes
        assert other.exact_tables.keys() == direct.exact_tables.keys()
        for name, table in direct.exact_tables.items():
            pd.testing.assert_frame_equal(other.exact_tables[name], table, check_exact=True, obj=name)
        assert drawn[id(other)] == drawn[id(direct)]
    assert direct.exact_tables["daily"]["realized_pnl"].dtype == MONEY_TOTAL
    if window == {}:  # the demo's whole history: more than 30 days, so every ratio exists
        assert direct.tables["rolling"]["rolling_sharpe"].notna().any() and len(direct.tables["drawdown_periods"])
        assert direct.summary["sharpe"] is not None and (direct.summary["calmar"] is None) == (capital is None)


@POSTGRESQL_ONLY
def test_views_are_as_fresh_as_their_last_refresh(backend, demo, engine):
    with Session(engine) as session:  # a new closed position on the last day
        user_id = session.execute(sa.text("SELECT user_id FROM users LIMIT 1")).scalar_one()
        session.add(Position(user_id=user_id, token="SOL", size=Decimal("2"), entry_price=Decimal("100"),
                             current_price=Decimal("100.12345678"), status=PositionStatus.CLOSED,
                             opened_at=datetime(2025, 10, 27, 1, tzinfo=timezone.utc),
                             closed_at=datetime(2025, 10, 27, 2, tzinfo=timezone.utc)))
        session.commit()
    direct = sx.pnl_report(engine, as_of=AS_OF, pushdown=False)
    stale = sx.pnl_report(engine, as_of=AS_OF, use_views=True)
    assert stale.summary["realized_pnl"] == direct.summary["realized_pnl"]
    # The view, not refreshed, is stale for the window: bypassed by push-down (issue 12: one report
    # showed the stale view's daily table beside the positions' summary).
    assert stale.parameters["path"] == "pushdown" and stale.parameters["stale_views"] == [
        "mv_daily_trading_performance"]
    pd.testing.assert_frame_equal(stale.exact_tables["daily"], direct.exact_tables["daily"], check_exact=True)
    result = subprocess.run([*CLI, "db", "refresh-views", "--url", demo], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert all(name in result.stdout for name in aggregates.VIEW_NAMES)
    fresh = sx.pnl_report(engine, as_of=AS_OF, use_views=True)
    assert fresh.parameters["path"] == "views" and "stale_views" not in fresh.parameters
    pd.testing.assert_frame_equal(fresh.exact_tables["daily"], direct.exact_tables["daily"], check_exact=True)


@POSTGRESQL_ONLY
def test_stale_views_are_detected_and_bypassed_so_every_figure_agrees(backend, demo, engine):
    """Issue 12: every figure of a report from one path. A row newer than the views' last refresh
    makes them stale for the window; the reports then compute by push-down and say so."""
    aggregates.refresh_views(engine)  # 1. refreshed: each view records how far its rows were written
    with engine.connect() as connection:
        assert all(views.refresh_record(connection, name) is not None for name in views.VIEW_NAMES)
        assert not any(views.view_freshness(connection, name, "2025-07-01", "2025-10-29").stale
                       for name in ("mv_daily_trading_performance", "mv_daily_api_key_usage"))
    newer = datetime(2025, 10, 27, 23, 59, 30, tzinfo=timezone.utc)  # after every demo row, before as_of
    with engine.begin() as connection:  # 2. a newer closed position and API request, plain inserts
        user_id, key_id = connection.execute(sa.text("SELECT user_id, key_id FROM api_keys LIMIT 1")).one()
        connection.execute(sa.insert(Position.__table__).values(
            position_id=uuid.uuid4(), user_id=user_id, token="SOL", size=Decimal("3"), entry_price=Decimal("100"),
            current_price=Decimal("101.00000001"), status="closed", strategy="Momentum Breakout",
            extra_data={}, opened_at=newer - timedelta(hours=1), closed_at=newer))
        append_audit_entries(connection, [{
            "event_type": "api_request", "action": "GET", "success": True, "user_id": user_id,
            "resource": "/api/v1/positions", "timestamp": newer,
            "details": {"key_id": str(key_id), "status_code": 200}}])

    # 3. the reports with views, and the pandas path over the same data
    pnl = sx.pnl_report(engine, as_of=AS_OF, use_views=True, starting_capital="100000")
    pnl_direct = sx.pnl_report(engine, as_of=AS_OF, pushdown=False, use_views=False, starting_capital="100000")
    usage = sx.api_usage_report(engine, as_of=AS_OF, use_views=True)
    usage_direct = sx.api_usage_report(engine, as_of=AS_OF, pushdown=False, use_views=False)

    # 4. every figure agrees: the daily table sums to the summary's realized P&L, as on the pandas path
    daily = pnl.exact_tables["daily"]["realized_pnl"]
    assert quantize(sum(daily, Decimal(0))) == pnl.summary["realized_pnl"] == pnl_direct.summary["realized_pnl"]
    with engine.connect() as connection:  # what the stale view alone shows: not the new position's 3.00000003
        from_view = aggregates.daily_realized_pnl_from_view(connection, pnl.parameters["since"], pnl.parameters["until"])
    assert pnl.summary["realized_pnl"] - quantize(sum(from_view, Decimal(0))) == Decimal("3.00000003")
    assert pnl.summary == pnl_direct.summary
    for name, table in pnl_direct.exact_tables.items():
        pd.testing.assert_frame_equal(pnl.exact_tables[name], table, check_exact=True, obj=name)
    per_key_day = usage.exact_tables["requests_per_key_per_day"]
    assert int(per_key_day["requests"].sum()) == usage.summary["requests"] == usage_direct.summary["requests"]
    assert_same_summary(usage_direct.summary, usage.summary)
    for name, table in usage_direct.exact_tables.items():
        pd.testing.assert_frame_equal(usage.exact_tables[name], table, check_exact=False, rtol=1e-12, obj=name)

    # 5. each report says its view was stale and was bypassed
    for report, view in ((pnl, "mv_daily_trading_performance"), (usage, "mv_daily_api_key_usage")):
        assert report.parameters["path"] == "pushdown" and report.parameters["stale_views"] == [view]
        stale_notes = [note for note in report.notes if note.startswith("Materialized views stale")]
        assert len(stale_notes) == 1 and view in stale_notes[0] and "refresh-views" in stale_notes[0]
        assert report.notes[:-1] == (pnl_direct if report is pnl else usage_direct).notes

    # After a refresh the views are fresh again and read
    aggregates.refresh_views(engine)
    again = sx.pnl_report(engine, as_of=AS_OF, use_views=True, starting_capital="100000")
    assert again.parameters["path"] == "views" and "stale_views" not in again.parameters
    assert again.summary == pnl_direct.summary and again.notes == pnl_direct.notes


@POSTGRESQL_ONLY
def test_a_view_without_a_recorded_refresh_is_stale(backend, demo, engine):
    with engine.begin() as connection:  # e.g. refreshed by hand, or its comment replaced
        connection.exec_driver_sql("COMMENT ON MATERIALIZED VIEW mv_daily_trading_performance IS NULL")
    report = sx.pnl_report(engine, as_of=AS_OF, use_views=True)
    assert report.parameters["path"] == "pushdown"
    assert "mv_daily_trading_performance has no recorded refresh" in report.notes[-1]
    with engine.connect() as connection:  # a window of no whole day reads nothing from the view
        assert not views.view_freshness(connection, "mv_daily_trading_performance", "2025-10-02T01:00:00Z",
                                        "2025-10-02T23:00:00Z").stale
        assert views.view_freshness(connection, "mv_daily_trading_performance", "2025-10-01", "2025-10-10").stale
        assert not views.view_freshness(connection, "mv_daily_api_key_usage", "2025-10-01", "2025-10-10").stale
        with pytest.raises(ValueError, match="no report reads 'mv_user_statistics' by window"):
            views.view_freshness(connection, "mv_user_statistics", "2025-10-01", "2025-10-10")


@POSTGRESQL_ONLY
def test_user_statistics_view_matches_the_loaded_tables(backend, demo):
    stats = aggregates.load_user_statistics(demo).set_index("user_id")
    users = sx.load_users(demo).set_index("user_id")
    positions, orders = sx.load_positions(demo, money="decimal"), sx.load_orders(demo, money="decimal")
    keys, audit = sx.load_api_keys(demo), sx.load_audit_logs(demo, event_type="authentication")
    assert set(stats.index) == set(users.index)
    closed = positions[positions["status"].astype(str).isin(["closed", "liquidated"])]
    executed = orders[orders["status"].astype(str) == "executed"]
    failed_logins = audit[(audit["action"] == "login") & ~audit["success"].astype(bool)]
    for user_id, row in stats.iterrows():
        own_positions = positions[positions["user_id"] == user_id]
        own_closed = closed[closed["user_id"] == user_id]
        own_orders = orders[orders["user_id"] == user_id]
        assert row["username"] == users.loc[user_id, "username"]
        assert row["positions"] == len(own_positions)
        assert row["open_positions"] == int((own_positions["status"].astype(str) == "open").sum())
        assert row["closed_positions"] == len(own_closed)
        assert row["realized_pnl"] == metrics.quantize(metrics._common.money_sum(own_closed["pnl"]))
        assert row["wins"] == int((own_closed["pnl"] > 0).sum())
        assert row["losses"] == int((own_closed["pnl"] < 0).sum())
        assert row["orders"] == len(own_orders)
        assert row["executed_orders"] == int((own_orders["status"].astype(str) == "executed").sum())
        assert row["failed_orders"] == int((own_orders["status"].astype(str) == "failed").sum())
        assert row["executed_notional"] == metrics._common.money_sum(
            executed.loc[executed["user_id"] == user_id, "total_value"])
        if len(own_orders):
            assert row["first_order_at"] == own_orders["created_at"].min()
            assert row["last_order_at"] == own_orders["created_at"].max()
        else:
            assert pd.isna(row["first_order_at"])
        assert row["api_keys"] == int((keys["user_id"] == user_id).sum())
        assert row["active_api_keys"] == int(((keys["user_id"] == user_id) & keys["is_active"].astype(bool)).sum())
        assert row["failed_logins"] == int((failed_logins["user_id"] == user_id).sum())
    assert stats["realized_pnl"].dtype == MONEY_TOTAL and stats["positions"].dtype == "Int64"
    assert quantize(sum(stats["realized_pnl"], Decimal(0))) == metrics._common.money_sum(closed["pnl"])


@POSTGRESQL_ONLY
def test_views_setting_and_explicit_choice(backend, demo, settings_env):
    settings_env.set(SHIVX_USE_VIEWS="true")
    assert sx.pnl_report(demo, as_of=AS_OF).parameters["path"] == "views"
    assert sx.pnl_report(demo, as_of=AS_OF, use_views=False, pushdown=False).parameters["path"] == "pandas"


def test_views_on_sqlite_are_refused_with_a_clear_error(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    sx.migrate(url)
    sx.generate_demo_data(url, seed=0, scale=200, as_of=AS_OF)
    with pytest.raises(PushdownUnavailable, match="PostgreSQL only; this source is sqlite"):
        sx.pnl_report(url, as_of=AS_OF, use_views=True)
    with pytest.raises(ValueError, match="PostgreSQL only"):
        aggregates.refresh_views(url)
    result = subprocess.run([*CLI, "db", "refresh-views", "--url", url], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "PostgreSQL only" in result.stderr
    assert np.isfinite(float(sx.pnl_report(url, as_of=AS_OF).summary["realized_pnl"]))


@POSTGRESQL_ONLY
@pytest.mark.parametrize(("min_rows", "expected"), [("0", "pushdown"), ("1000000000", "pandas")])
def test_auto_pushes_the_pnl_daily_series_down_above_the_planner_estimate(backend, demo, engine, settings_env,
                                                                           min_rows, expected):
    settings_env.set(SHIVX_PUSHDOWN_MIN_ROWS=min_rows)
    assert sx.pnl_report(demo, as_of=AS_OF).parameters["path"] == expected
    with engine.connect() as connection:  # the estimate the choice used: close to the true count
        statement = aggregates.closed_positions_rows("2025-07-01", "2025-11-01")
        estimate = aggregates._common.estimated_rows(connection, statement)
        actual = connection.execute(sa.select(sa.func.count()).select_from(statement.subquery())).scalar_one()
    assert actual > 0 and 0.5 * actual <= estimate <= 2 * actual


@POSTGRESQL_ONLY
@pytest.mark.parametrize("window", WINDOWS, ids=["default", "partial-days", "one-day", "empty"])
def test_api_usage_report_from_views_equals_the_direct_path(backend, demo, window):
    direct = sx.api_usage_report(demo, as_of=AS_OF, pushdown=False, use_views=False, **window)
    viewed = sx.api_usage_report(demo, as_of=AS_OF, use_views=True, **window)
    assert (direct.parameters["path"], viewed.parameters["path"]) == ("pandas", "views")
    assert_same_summary(direct.summary, viewed.summary)
    assert viewed.tables.keys() == direct.exact_tables.keys()
    for name, table in direct.exact_tables.items():
        pd.testing.assert_frame_equal(viewed.tables[name], table, check_exact=False, rtol=1e-12, obj=name)
    if not window:
        assert len(direct.exact_tables["requests_per_key_per_day"]) > 0
