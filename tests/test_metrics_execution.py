"""Execution metrics worked by hand on small order frames."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pytest
from metrics_fixtures import orders_frame, ts

from shivx_analytics import metrics as m

D = Decimal


def orders() -> pd.DataFrame:
    return orders_frame([
        # buy 1000 USD -> 10 SOL, 10 bps worse than quoted, 2 s latency
        {"action": "buy", "amount_in": "1000", "amount_out": "10", "slippage_actual": 10,
         "created_at": "2024-01-01T10:00:00", "executed_at": "2024-01-01T10:00:02"},
        # sell 5 SOL quoted 100 -> 480 USD: (500 - 480) / 500 = 400 bps > 50 tolerance; 10 s
        {"action": "sell", "amount_in": "5", "amount_out": "480", "slippage_actual": 400,
         "order_type": "limit", "created_at": "2024-01-01T11:00:00",
         "executed_at": "2024-01-01T11:00:10"},
        # buy 200 USD of ETH quoted 199 -> 1 ETH: 50 bps, tolerance 100; 60 s
        {"action": "buy", "token": "ETH", "amount_in": "200", "amount_out": "1", "price": "199",
         "slippage_bps": 100, "slippage_actual": 50, "created_at": "2024-01-02T09:00:00",
         "executed_at": "2024-01-02T09:01:00"},
        {"status": "failed", "failed_reason": "insufficient_liquidity"},
        {"status": "failed", "failed_reason": "insufficient_liquidity", "token": "ETH"},
        {"status": "failed", "failed_reason": "expired"},
        {"status": "failed", "failed_reason": None},
        {"status": "cancelled", "created_at": "2024-01-03T00:00:00"},
        {"status": "pending", "created_at": "2024-01-03T00:00:00"},
    ])


def test_execution_summary_counts_rates_and_notional():
    summary = m.execution_summary(orders())
    assert {k: summary[k] for k in ("orders", "executed", "failed", "cancelled", "pending")} == {
        "orders": 9, "executed": 3, "failed": 4, "cancelled": 1, "pending": 1}
    # 8 orders are not pending
    assert summary["fill_rate"] == pytest.approx(3 / 8)
    assert summary["fail_rate"] == pytest.approx(4 / 8)
    assert summary["cancel_rate"] == pytest.approx(1 / 8)
    assert summary["executed_notional"] == D("1680.00000000")  # 1000 + 480 + 200
    assert isinstance(summary["executed_notional"], Decimal)


def test_execution_summary_slippage_and_latency_distributions():
    summary = m.execution_summary(orders())
    # slippage 10, 400, 50 bps; p95 by linear interpolation: 50 + 0.9 x (400 - 50) = 365
    assert summary["slippage_bps_mean"] == pytest.approx(460 / 3)
    assert summary["slippage_bps_median"] == 50.0
    assert summary["slippage_bps_p95"] == pytest.approx(365.0)
    assert summary["slippage_bps_max"] == 400.0
    assert summary["over_tolerance_rate"] == pytest.approx(1 / 3)  # only the 400 > 50
    # latency 2, 10, 60 s; p95 = 10 + 0.9 x 50 = 55
    assert summary["latency_seconds_mean"] == pytest.approx(24.0)
    assert summary["latency_seconds_median"] == 10.0
    assert summary["latency_seconds_p95"] == pytest.approx(55.0)


def test_execution_summary_of_no_orders_has_zeros_and_nones():
    summary = m.execution_summary(orders_frame([]))
    assert summary["orders"] == 0 and summary["executed_notional"] == 0
    assert all(summary[k] is None for k in ("fill_rate", "fail_rate", "slippage_bps_mean",
                                           "over_tolerance_rate", "latency_seconds_p95"))


def test_fill_rate_of_only_pending_orders_is_none():
    summary = m.execution_summary(orders_frame([{"status": "pending"}, {"status": "pending"}]))
    assert summary["pending"] == 2 and summary["fill_rate"] is None


def test_executed_notional_is_exact():
    frame = orders_frame([
        {"action": "buy", "amount_in": "0.1", "amount_out": "1", "executed_at": "2024-01-01T00:00:00"},
        {"action": "buy", "amount_in": "0.2", "amount_out": "1", "executed_at": "2024-01-01T00:00:00"},
    ])
    assert m.execution_summary(frame)["executed_notional"] == D("0.3")


def test_over_tolerance_rate_leaves_out_orders_without_a_measured_slippage():
    frame = orders_frame([
        {"action": "buy", "amount_out": "1", "executed_at": "2024-01-01T00:00:00", "slippage_actual": 60},
        {"action": "buy", "amount_out": "1", "executed_at": "2024-01-01T00:00:00", "slippage_actual": None},
    ])
    stats = m.slippage_stats(frame)
    assert (stats.executed, stats.over_tolerance, stats.over_tolerance_rate) == (2, 1, 1.0)
    assert stats.slippage_bps.count == 1


def test_slippage_by_token():
    table = m.slippage_by(orders(), "token")
    assert list(table.index) == ["ETH", "SOL"]
    assert table.loc["ETH", "slippage_bps_mean"] == 50.0
    assert table.loc["SOL", "slippage_bps_mean"] == pytest.approx(205.0)  # (10 + 400) / 2
    assert table.loc["SOL", "over_tolerance_rate"] == pytest.approx(0.5)
    assert table.loc["SOL", "executed"] == 2


def test_slippage_by_order_type_lists_every_type():
    table = m.slippage_by(orders(), "order_type")
    assert list(table.index) == ["market", "limit", "stop_loss", "take_profit"]
    assert table.loc["limit", "slippage_bps_max"] == 400.0
    assert table.loc["stop_loss", "executed"] == 0
    assert pd.isna(table.loc["stop_loss", "slippage_bps_mean"])


def test_slippage_by_rejects_an_unknown_key():
    with pytest.raises(ValueError, match="order_type"):
        m.slippage_by(orders(), "status")


def test_latency_stats_in_seconds():
    stats = m.latency_stats(orders())
    assert (stats.count, stats.max) == (3, 60.0)
    assert m.latency_seconds(orders()).to_list() == [2.0, 10.0, 60.0]


def test_failure_reasons_ranked_by_count_then_reason():
    table = m.failure_reasons(orders())
    assert table["reason"].to_list() == ["insufficient_liquidity", "(none)", "expired"]
    assert table["count"].to_list() == [2, 1, 1]
    assert table["share"].to_list() == [0.5, 0.25, 0.25]
    assert m.failure_reasons(orders_frame([])).empty


def test_daily_notional_by_action_has_every_day():
    table = m.daily_notional_by_action(orders(), ts("2024-01-01"), ts("2024-01-04"))
    assert list(table.index) == [ts("2024-01-01"), ts("2024-01-02"), ts("2024-01-03")]
    assert table["buy"].to_list() == [D("1000"), D("200"), D("0")]
    assert table["sell"].to_list() == [D("480"), D("0"), D("0")]
    assert table["total"].to_list() == [D("1480"), D("200"), D("0")]


def test_daily_notional_by_action_uses_executed_at_within_the_window():
    table = m.daily_notional_by_action(orders(), ts("2024-01-02"), ts("2024-01-03"))
    assert table["buy"].to_list() == [D("200")]
    empty = m.daily_notional_by_action(orders_frame([]), ts("2024-01-01"), ts("2024-01-03"))
    assert empty["total"].to_list() == [D("0"), D("0")]


def test_status_by_day_counts_created_orders_per_status():
    table = m.status_by_day(orders())
    assert list(table.columns) == ["pending", "executed", "failed", "cancelled"]
    # created Jan 1: 2 executed + 4 failed (default created_at); Jan 2: 1 executed; Jan 3: 1 + 1
    assert table.loc[ts("2024-01-01")].to_list() == [0, 2, 4, 0]
    assert table.loc[ts("2024-01-02")].to_list() == [0, 1, 0, 0]
    assert table.loc[ts("2024-01-03")].to_list() == [1, 0, 0, 1]
    window = m.status_by_day(orders(), ts("2024-01-03"), ts("2024-01-06"))
    assert len(window) == 3 and window["pending"].to_list() == [1, 0, 0]
    assert m.status_by_day(orders_frame([])).empty
