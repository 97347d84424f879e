"""P&L metrics: docs/conventions.md, worked by hand on small frames."""

from __future__ import annotations

import math
import statistics
import warnings
from decimal import Decimal

import pandas as pd
import pytest
from metrics_fixtures import closed, orders_frame, positions_frame, ts

from shivx_analytics import metrics as m

D = Decimal
SINCE, UNTIL = ts("2024-01-01"), ts("2024-01-06")  # five days: Jan 1..5


def book() -> pd.DataFrame:
    """Size 1 entered at 100, so pnl = exit - 100. Daily realized: +30, -10, -40, 0, +25."""
    return positions_frame([
        closed("30", "2024-01-01T10:00:00", opened_at="2024-01-01T00:00:00", token="SOL",
               strategy="momentum"),                                     # held 10 h = 36000 s
        closed("-10", "2024-01-02T09:00:00", opened_at="2024-01-01T00:00:00", token="ETH",
               strategy="momentum"),                                     # 33 h = 118800 s
        closed("-40", "2024-01-03T12:00:00", opened_at="2024-01-02T12:00:00", token="SOL",
               status="liquidated"),                                     # 24 h = 86400 s
        closed("0", "2024-01-03T13:00:00", opened_at="2024-01-03T12:00:00", token="SOL"),  # 3600 s
        closed("25", "2024-01-05T23:59:59", opened_at="2024-01-05T23:00:00", token="ETH",
               user_id="u2"),                                            # 3599 s
        closed("50", "2024-01-06T00:00:00", opened_at="2024-01-05T00:00:00"),  # at until: out
        closed("5", "2023-12-31T23:59:59", opened_at="2023-12-31T00:00:00"),   # before since: out
        {"status": "open", "current_price": "110", "opened_at": "2024-01-04T00:00:00",
         "token": "SOL"},                                                # unrealized +10
        {"status": "open", "current_price": "90", "opened_at": "2024-01-06T00:00:00"},  # after
    ])


def days_series(values: list[str], start: str = "2024-01-01") -> pd.Series:
    """A daily realized P&L series (MONEY_TOTAL) from `start`, one value a day."""
    index = pd.date_range(start, periods=len(values), freq="D", tz="UTC", unit="us", name="day")
    return pd.Series([D(v) for v in values], index=index, dtype=m.MONEY_TOTAL, name="realized_pnl")


def alternating(days: int = 30) -> pd.Series:
    """+20 on even days, -10 on odd days, from 2024-01-01: 30 days sum to 15 x 10 = 150 USD;
    mean 5, every deviation +-15, so var(ddof=1) = 30 x 225 / 29 = 6750 / 29."""
    return days_series(["20" if i % 2 == 0 else "-10" for i in range(days)])


# Daily series, equity, drawdown ------------------------------------------------------------


def test_daily_realized_pnl_has_every_day_of_the_window_including_zero_days():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    assert list(daily.index) == [ts(f"2024-01-0{d}") for d in range(1, 6)]
    # day 3: -40 (liquidated) + 0; day 4: nothing closed; closes at until and before since: out
    assert daily.to_list() == [D("30"), D("-10"), D("-40"), D("0"), D("25")]
    assert daily.dtype == m.MONEY_TOTAL


def test_daily_realized_pnl_of_no_positions_is_all_zero_days():
    daily = m.daily_realized_pnl(positions_frame([]), SINCE, UNTIL)
    assert len(daily) == 5 and all(v == 0 for v in daily)


def test_daily_realized_pnl_of_empty_window_is_empty():
    assert m.daily_realized_pnl(book(), SINCE, SINCE).empty


def test_realized_pnl_is_summed_exactly():
    positions = positions_frame([
        closed("0.1", "2024-01-01T01:00:00"), closed("0.2", "2024-01-01T02:00:00"),
        *[{"status": "closed", "closed_at": "2024-01-02T00:00:00", "entry_price": "0.00000001",
           "current_price": "999999999999.99999999"} for _ in range(10)],
    ])
    daily = m.daily_realized_pnl(positions, SINCE, UNTIL)
    assert daily.iloc[0] == D("0.3")  # not 0.30000000000000004
    # 10 x 999999999999.99999998: 21 significant digits, exact
    assert daily.iloc[1] == D("9999999999999.9999998")


def test_equity_curve_adds_cumulative_pnl_to_starting_capital():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    # 1000 + 30, -10, -40, 0, +25
    assert m.equity_curve(daily, 1000).to_list() == [D(x) for x in ("1030", "1020", "980", "980", "1005")]
    assert m.equity_curve(daily).to_list() == [D(x) for x in ("30", "20", "-20", "-20", "5")]


def test_drawdown_is_the_largest_fall_from_the_running_peak():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    result = m.drawdown(daily, D("1000"))
    # equity 1030, 1020, 980, 980, 1005: peak 1030, trough 980 -> -50 USD, 980/1030 - 1
    assert result.max_drawdown == D("-50.00000000")
    assert result.max_drawdown_pct == pytest.approx((980 / 1030 - 1) * 100)  # -4.854...
    assert result.trough_day == ts("2024-01-03")
    assert result.drawdown.to_list() == [D(x) for x in ("0", "-10", "-50", "-50", "-25")]


def test_drawdown_without_capital_uses_cumulative_pnl_from_zero_and_has_no_percentage():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    result = m.drawdown(daily)
    # cumulative 30, 20, -20, -20, 5: peak 30 -> -50
    assert result.max_drawdown == D("-50")
    assert result.max_drawdown_pct is None and result.drawdown_pct is None


def test_drawdown_counts_a_loss_on_the_first_day_from_the_starting_capital():
    daily = pd.Series([D("-100"), D("50")], index=pd.date_range("2024-01-01", periods=2, tz="UTC"),
                      dtype=m.MONEY_TOTAL)
    result = m.drawdown(daily, 1000)
    assert result.max_drawdown == D("-100")  # 1000 -> 900
    assert result.max_drawdown_pct == pytest.approx(-10.0)


def test_drawdown_of_a_rising_curve_is_zero_and_of_no_days_is_none():
    daily = pd.Series([D("1"), D("2")], index=pd.date_range("2024-01-01", periods=2, tz="UTC"),
                      dtype=m.MONEY_TOTAL)
    rising = m.drawdown(daily, 100)
    assert (rising.max_drawdown, rising.max_drawdown_pct, rising.trough_day) == (D("0"), 0.0, None)
    empty = m.drawdown(daily.iloc[:0], 100)
    assert (empty.max_drawdown, empty.max_drawdown_pct) == (None, None)


def test_starting_capital_must_be_positive():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    with pytest.raises(ValueError, match="starting_capital"):
        m.drawdown(daily, 0)


# Sharpe and Sortino ------------------------------------------------------------------------


def test_sharpe_is_mean_over_sample_std_annualized_by_365():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    # x = 30, -10, -40, 0, 25: mean 1; squared deviations 841+121+1681+1+576 = 3220; var 3220/4
    assert m.sharpe(daily, min_days=5) == pytest.approx(1 / math.sqrt(805) * math.sqrt(365))  # 0.6734


def test_sortino_uses_downside_over_all_days():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    # min(x, 0)^2 = 0, 100, 1600, 0, 0: mean over 5 days = 340
    assert m.sortino(daily, min_days=5) == pytest.approx(1 / math.sqrt(340) * math.sqrt(365))  # 1.0361


def test_sharpe_needs_two_days_and_some_variation():
    one_day = m.daily_realized_pnl(book(), SINCE, ts("2024-01-02"))
    assert m.sharpe(one_day, min_days=0) is None
    flat = m.daily_realized_pnl(positions_frame([]), SINCE, UNTIL)
    assert m.sharpe(flat) is None
    assert m.sortino(flat) is None


def test_sortino_without_a_losing_day_is_none():
    positions = positions_frame([closed("5", "2024-01-01T00:00:00"), closed("7", "2024-01-02T00:00:00")])
    assert m.sortino(m.daily_realized_pnl(positions, SINCE, UNTIL), min_days=2) is None
    assert m.sortino(alternating().abs()) is None  # 30 days, none lost: None, not infinity


def test_a_single_losing_day_has_no_sortino():
    # It used to be -10 / sqrt(100) x sqrt(365) = -sqrt(365) for any loss: a sample of one.
    one_day = m.daily_realized_pnl(book(), ts("2024-01-02"), ts("2024-01-03"))  # [-10]
    assert m.sortino(one_day) is None and m.sharpe(one_day) is None and m.volatility(one_day) is None


def test_ratios_need_min_days_for_ratios_daily_observations():
    assert m.MIN_DAYS_FOR_RATIOS == 30
    full, short = alternating(), alternating(29)
    for ratio in (m.sharpe, m.sortino, m.volatility):
        assert ratio(full) is not None and ratio(short) is None, ratio
        assert ratio(short, min_days=29) is not None, ratio
    assert m.cagr_pct(full, 1000) is not None and m.cagr_pct(short, 1000) is None
    assert m.volatility_pct(full, 1000) is not None and m.volatility_pct(short, 1000) is None


def _quantstats():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantstats.stats as qs
    return qs


@pytest.mark.parametrize("capital", ["1000", "250000"])
@pytest.mark.slow
def test_sharpe_and_sortino_match_quantstats_on_returns_over_constant_capital(capital):
    qs = _quantstats()
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)
    returns = daily.astype("float64") / float(capital)
    returns.index = returns.index.tz_localize(None)
    # Sharpe is scale-free: P&L / constant capital has the same ratio as P&L.
    assert m.sharpe(daily, min_days=5) == pytest.approx(qs.sharpe(returns, periods=365))
    # quantstats' sortino: sqrt(sum(r[r < 0]^2) / count(r)), i.e. downside over ALL periods too.
    assert m.sortino(daily, min_days=5) == pytest.approx(qs.sortino(returns, periods=365))


def test_quantstats_sortino_is_nan_where_ours_is_none():
    qs = _quantstats()
    returns = pd.Series([0.01, 0.02, 0.0], index=pd.date_range("2024-01-01", periods=3))
    assert math.isnan(qs.sortino(returns, periods=365))
    assert m.sortino(returns, min_days=3) is None


# Trade statistics --------------------------------------------------------------------------


def test_trade_stats_of_mixed_trades():
    stats = m.trade_stats(book(), since=SINCE, until=UNTIL)
    # in window (closed_at order): +30, -10, -40 (liquidated), 0, +25
    assert (stats.closed_positions, stats.wins, stats.losses, stats.break_even) == (5, 2, 2, 1)
    assert stats.win_rate == pytest.approx(2 / 5)  # break-even stays in the denominator
    assert (stats.gross_profit, stats.gross_loss) == (D("55"), D("-50"))
    assert stats.profit_factor == pytest.approx(55 / 50)
    assert (stats.average_win, stats.average_loss) == (D("27.5"), D("-25"))
    assert stats.payoff_ratio == pytest.approx(27.5 / 25)
    assert stats.expectancy == D("1.00000000")  # 5 / 5
    assert (stats.largest_win, stats.largest_loss) == (D("30"), D("-40"))
    assert (stats.longest_win_streak, stats.longest_loss_streak) == (1, 2)


def test_trade_stats_holding_times_are_seconds():
    stats = m.trade_stats(book(), since=SINCE, until=UNTIL)
    # 36000, 118800, 86400, 3600, 3599 s
    assert stats.mean_holding_seconds == pytest.approx(248399 / 5)
    assert stats.median_holding_seconds == 36000.0
    assert stats.mean_holding_seconds_wins == pytest.approx((36000 + 3599) / 2)
    assert stats.median_holding_seconds_losses == pytest.approx((118800 + 86400) / 2)


def test_trade_stats_without_window_takes_every_closed_position():
    assert m.trade_stats(book()).closed_positions == 7


def test_payoff_ratio_comes_from_exact_sums_not_rounded_averages():
    positions = positions_frame([
        *[closed(p, f"2024-01-0{i + 1}T00:00:00") for i, p in enumerate(["0.5", "0.25", "0.25"])],
        *[closed(p, f"2024-01-0{i + 4}T00:00:00") for i, p in enumerate(["-1", "-0.5", "-0.5"])],
    ])
    stats = m.trade_stats(positions)
    # average win 1/3 and average loss -2/3: exactly 0.5. From the 8 dp averages 0.33333333 /
    # 0.66666667 it would be 0.4999999925.
    assert (stats.average_win, stats.average_loss) == (D("0.33333333"), D("-0.66666667"))
    assert stats.payoff_ratio == 0.5
    assert m.payoff_ratio(D("1"), 3, D("-2"), 3) == 0.5
    assert m.payoff_ratio(D("1"), 3, D("0"), 0) is None and m.payoff_ratio(D("0"), 0, D("-2"), 3) is None


def test_trade_stats_of_all_winners_has_no_profit_factor_or_payoff():
    positions = positions_frame([closed("10", "2024-01-01T00:00:00"), closed("20", "2024-01-02T00:00:00")])
    stats = m.trade_stats(positions)
    assert stats.win_rate == 1.0
    assert stats.profit_factor is None and stats.payoff_ratio is None
    assert stats.largest_loss is None and stats.average_loss is None
    assert stats.longest_win_streak == 2 and stats.longest_loss_streak == 0
    assert stats.expectancy == D("15")
    assert stats.mean_holding_seconds_losses is None


def test_trade_stats_of_all_losers_has_zero_profit_factor():
    positions = positions_frame([closed("-10", "2024-01-01T00:00:00"), closed("-30", "2024-01-02T00:00:00")])
    stats = m.trade_stats(positions)
    assert stats.win_rate == 0.0
    assert stats.profit_factor == 0.0  # 0 / 40
    assert stats.payoff_ratio is None and stats.largest_win is None
    assert stats.expectancy == D("-20")
    assert stats.longest_loss_streak == 2


def test_trade_stats_of_break_even_trades_only():
    positions = positions_frame([closed("0", "2024-01-01T00:00:00"), closed("0", "2024-01-02T00:00:00")])
    stats = m.trade_stats(positions)
    assert (stats.closed_positions, stats.wins, stats.losses, stats.break_even) == (2, 0, 0, 2)
    assert stats.win_rate == 0.0 and stats.profit_factor is None
    assert stats.expectancy == D("0")


def test_trade_stats_of_no_positions_is_zero_counts_and_none_ratios():
    stats = m.trade_stats(positions_frame([]))
    assert stats.closed_positions == 0 and stats.realized_pnl == D("0")
    assert stats.win_rate is None and stats.expectancy is None and stats.profit_factor is None
    assert stats.mean_holding_seconds is None


def test_break_even_trade_ends_a_winning_streak():
    positions = positions_frame([
        closed("1", "2024-01-01T00:00:00"), closed("1", "2024-01-02T00:00:00"),
        closed("0", "2024-01-03T00:00:00"),
        closed("1", "2024-01-04T00:00:00"), closed("1", "2024-01-05T00:00:00"),
        closed("1", "2024-01-06T00:00:00"),
    ])
    assert m.trade_stats(positions).longest_win_streak == 3  # W W | 0 | W W W


def test_streaks_follow_closed_at_then_position_id_not_row_order():
    positions = positions_frame([
        closed("-1", "2024-01-01T00:00:00", position_id="b"),
        closed("1", "2024-01-02T00:00:00", position_id="c"),
        closed("1", "2024-01-01T00:00:00", position_id="a"),  # same time as "b", sorts first
        closed("-1", "2023-12-31T00:00:00", position_id="z"),
    ])
    # order: z(-1), a(+1), b(-1), c(+1): no streak longer than 1
    stats = m.trade_stats(positions)
    assert (stats.longest_win_streak, stats.longest_loss_streak) == (1, 1)


# Breakdowns --------------------------------------------------------------------------------


def test_pnl_by_token_splits_realized_and_unrealized():
    table = m.pnl_by(book(), "token", since=SINCE, until=UNTIL)
    assert list(table.index) == ["ETH", "SOL"]
    # ETH: -10 + 25 realized, 2 trades, 1 win. SOL: 30 - 40 + 0 realized, +10 open (opened Jan 4)
    assert table.loc["ETH", ["realized", "unrealized", "total"]].to_list() == [D("15"), D("0"), D("15")]
    assert table.loc["SOL", ["realized", "unrealized", "total"]].to_list() == [D("-10"), D("10"), D("0")]
    assert table.loc["ETH", "trades"] == 2 and table.loc["SOL", "trades"] == 3
    assert table.loc["ETH", "win_rate"] == pytest.approx(0.5)
    assert table.loc["SOL", "win_rate"] == pytest.approx(1 / 3)
    assert table.loc["SOL", "open_positions"] == 1


def test_pnl_by_strategy_keeps_positions_without_strategy_as_na():
    table = m.pnl_by(book(), "strategy", since=SINCE, until=UNTIL)
    assert table.loc["momentum", "realized"] == D("20")  # 30 - 10
    missing = table[table.index.isna()]
    assert missing["realized"].iloc[0] == D("-15")  # -40 + 0 + 25
    assert missing["unrealized"].iloc[0] == D("10")


def test_pnl_by_user_with_only_open_positions_has_no_win_rate():
    positions = positions_frame([{"status": "open", "current_price": "105", "user_id": "u9"}])
    table = m.pnl_by(positions, "user_id", until=UNTIL)
    assert table.loc["u9", "unrealized"] == D("5")
    assert table.loc["u9", "trades"] == 0
    assert pd.isna(table.loc["u9", "win_rate"])


def test_pnl_by_rejects_an_unknown_key():
    with pytest.raises(ValueError, match="token"):
        m.pnl_by(book(), "colour")


def test_pnl_by_of_no_positions_is_an_empty_frame():
    table = m.pnl_by(positions_frame([]), "token")
    assert table.empty and "win_rate" in table.columns


def test_pnl_by_period_sums_iso_weeks_and_months():
    positions = positions_frame([
        closed("1", "2024-01-28T00:00:00"),   # Sun: week of Mon Jan 22
        closed("2", "2024-01-29T00:00:00"),   # Mon: week of Jan 29 (also January)
        closed("4", "2024-02-01T00:00:00"),   # Thu: week of Jan 29, February
    ])
    daily = m.daily_realized_pnl(positions, ts("2024-01-28"), ts("2024-02-02"))
    weekly = m.pnl_by_period(daily, "W")
    assert list(weekly.index) == [ts("2024-01-22"), ts("2024-01-29")]
    assert weekly.to_list() == [D("1"), D("6")]
    monthly = m.pnl_by_period(daily, "M")
    assert monthly.to_list() == [D("3"), D("4")]
    assert m.pnl_by_period(daily, "D").to_list() == daily.to_list()
    with pytest.raises(ValueError, match="freq"):
        m.pnl_by_period(daily, "Q")


def test_triggered_exits_lists_open_positions_past_their_stop_or_target():
    positions = positions_frame([
        {"status": "open", "current_price": "90", "stop_loss": "90"},       # at the stop: crossed
        {"status": "open", "current_price": "91", "stop_loss": "90"},       # above the stop
        {"status": "open", "current_price": "130", "take_profit": "120"},   # past the target
        {"status": "open", "current_price": "100"},                          # no levels
        closed("-50", "2024-01-01T00:00:00", stop_loss="60"),               # closed: never
    ])
    exits = m.triggered_exits(positions)
    assert exits["position_id"].to_list() == ["p000", "p002"]
    assert exits["trigger"].to_list() == ["stop_loss", "take_profit"]
    assert m.triggered_exits(positions_frame([])).empty


# FIFO ledger -------------------------------------------------------------------------------


def fifo_orders() -> pd.DataFrame:
    return orders_frame([
        # lot A: 4 SOL for 100 USD (25/token)
        {"action": "buy", "amount_in": "100", "amount_out": "4", "executed_at": "2024-01-01T00:00:00"},
        # sell 5 for 160: A's 4 (cost 100) + 1 of B (90 x 1/3 = 30) -> 160 - 130 = +30
        {"action": "sell", "amount_in": "5", "amount_out": "160", "executed_at": "2024-01-03T00:00:00"},
        # lot B: 3 SOL for 90 (30/token) -- listed later, executed earlier
        {"action": "buy", "amount_in": "90", "amount_out": "3", "executed_at": "2024-01-02T00:00:00"},
        # sell 3 for 75 with 2 held: covers 2/3 -> 50 - 60 = -10; 1 token / 25 USD unmatched
        {"action": "sell", "amount_in": "3", "amount_out": "75", "executed_at": "2024-01-04T00:00:00"},
        # not executed: ignored
        {"action": "sell", "amount_in": "9", "status": "pending"},
        {"action": "buy", "amount_in": "9", "status": "failed"},
        # another user: separate book, buy only
        {"action": "buy", "amount_in": "50", "amount_out": "1", "user_id": "u2",
         "executed_at": "2024-01-01T00:00:00"},
    ])


def test_fifo_consumes_lots_oldest_first_pro_rata_within_a_lot():
    result = m.fifo_realized_pnl(fifo_orders())
    u1 = result.realized.set_index(["user_id", "token"]).loc[("u1", "SOL")]
    assert u1["realized_pnl"] == D("20")  # +30 - 10
    assert (u1["buys"], u1["sells"]) == (2, 2)
    assert (u1["open_tokens"], u1["open_cost"]) == (D("0"), D("0"))


def test_fifo_reports_an_oversold_sell_as_a_problem():
    problems = m.fifo_realized_pnl(fifo_orders()).problems
    assert problems["order_id"].to_list() == ["o003"]
    row = problems.iloc[0]
    assert row["problem"] == "oversold"
    assert (row["tokens_sold"], row["tokens_held"], row["tokens_unmatched"]) == (D("3"), D("2"), D("1"))
    assert row["proceeds_unmatched"] == D("25")  # 75 x 1/3


def test_fifo_keeps_open_lots_of_a_buy_only_book():
    realized = m.fifo_realized_pnl(fifo_orders()).realized.set_index(["user_id", "token"])
    u2 = realized.loc[("u2", "SOL")]
    assert (u2["realized_pnl"], u2["open_tokens"], u2["open_cost"]) == (D("0"), D("1"), D("50"))


def test_fifo_quantizes_once_not_per_sell():
    orders = orders_frame([
        {"action": "buy", "amount_in": "100", "amount_out": "3", "executed_at": "2024-01-01T00:00:00"},
        *[{"action": "sell", "amount_in": "1", "amount_out": "40",
           "executed_at": f"2024-01-0{d}T00:00:00"} for d in (2, 3, 4)],
    ])
    # each sell: 40 - 33.333...: per-sell rounding would give 3 x 6.66666667 = 20.00000001
    realized = m.fifo_realized_pnl(orders).realized
    assert realized["realized_pnl"].iloc[0] == D("20.00000000")


def straddling_sells() -> pd.DataFrame:
    """2 tokens bought for 0.00000001 USD; two sells of 1 token for 0.00000001 each realize
    +0.000000005 apiece (cost 0.000000005 a token), one before 2024-01-03 and one after."""
    return orders_frame([
        {"action": "buy", "amount_in": "0.00000001", "amount_out": "2", "executed_at": "2024-01-01T00:00:00"},
        {"action": "sell", "amount_in": "1", "amount_out": "0.00000001", "executed_at": "2024-01-02T00:00:00"},
        {"action": "sell", "amount_in": "1", "amount_out": "0.00000001", "executed_at": "2024-01-04T00:00:00"},
        {"action": "sell", "amount_in": "5", "amount_out": "1", "executed_at": "2024-01-01T12:00:00",
         "order_id": "early-oversold", "token": "ETH"},  # nothing held: a problem before the window
    ])


def test_fifo_since_sums_the_windows_sells_once_and_rounds_once():
    orders = straddling_sells()
    # The window's P&L is +0.000000005: half-even to 8 places, 0.
    window = m.fifo_realized_pnl(orders, since=ts("2024-01-03")).realized.set_index("token")
    assert window["realized_pnl"].to_dict() == {"ETH": D("0"), "SOL": D("0")}
    # The difference of two rounded ledgers is 1e-8 off: 0.00000001 - round(0.000000005) = 0.00000001.
    through_until = m.fifo_realized_pnl(orders).realized.set_index("token")["realized_pnl"]
    through_since = m.fifo_realized_pnl(orders[orders["executed_at"] < ts("2024-01-03")]).realized
    assert (through_until["SOL"], through_since.set_index("token")["realized_pnl"]["SOL"]) == (
        D("0.00000001"), D("0"))
    # buys, sells and open lots are the whole ledger's; problems only the window's orders
    assert (window.loc["SOL", "buys"], window.loc["SOL", "sells"]) == (1, 2)
    assert m.fifo_realized_pnl(orders, since=ts("2024-01-03")).problems.empty
    assert m.fifo_realized_pnl(orders).problems["order_id"].to_list() == ["early-oversold"]


def test_fifo_breaks_executed_at_ties_by_order_id():
    orders = orders_frame([
        {"action": "buy", "amount_in": "10", "amount_out": "1", "executed_at": "2024-01-01T00:00:00",
         "order_id": "o2"},
        {"action": "sell", "amount_in": "1", "amount_out": "12", "executed_at": "2024-01-01T00:00:00",
         "order_id": "o1"},
    ])
    result = m.fifo_realized_pnl(orders)
    # o1 (sell) runs before o2 (buy): nothing held -> oversold, nothing realized, lot stays open
    assert result.problems["order_id"].to_list() == ["o1"]
    assert result.realized["realized_pnl"].iloc[0] == D("0")
    assert result.realized["open_tokens"].iloc[0] == D("1")


def test_fifo_of_no_orders_is_empty_frames():
    result = m.fifo_realized_pnl(orders_frame([]))
    assert result.realized.empty and result.problems.empty
    assert "proceeds_unmatched" in result.problems.columns


def test_reconcile_fifo_with_positions_flags_differences():
    positions = positions_frame([
        closed("20", "2024-01-05T00:00:00", user_id="u1", token="SOL"),
        closed("7", "2024-01-05T00:00:00", user_id="u3", token="BTC"),
        {"status": "open", "current_price": "150", "user_id": "u2", "token": "SOL"},  # unrealized
    ])
    table = m.reconcile_fifo_with_positions(m.fifo_realized_pnl(fifo_orders()), positions)
    rows = table.set_index(["user_id", "token"])
    assert rows.loc[("u1", "SOL"), "matches"]  # 20 == 20
    assert rows.loc[("u2", "SOL"), "difference"] == D("0")
    assert not rows.loc[("u3", "BTC"), "matches"]  # no orders: 0 - 7
    assert rows.loc[("u3", "BTC"), "difference"] == D("-7")


def test_reconcile_accepts_a_tolerance():
    positions = positions_frame([closed("20.00000002", "2024-01-05T00:00:00")])
    fifo = m.fifo_realized_pnl(fifo_orders())
    assert not m.reconcile_fifo_with_positions(fifo, positions)["matches"].iloc[0]
    assert m.reconcile_fifo_with_positions(fifo, positions, tolerance="0.00000005")["matches"].iloc[0]


# Summary and window ------------------------------------------------------------------------


def test_pnl_summary_headline_figures():
    summary = m.pnl_summary(book(), since=SINCE, until=UNTIL, starting_capital=1000)
    assert summary == {
        "realized_pnl": D("5"),          # 30 - 10 - 40 + 0 + 25
        "unrealized_pnl": D("10"),       # open, opened before until
        "total_pnl": D("15"),
        "closed_positions": 5,
        "open_positions": 1,
        "win_rate": pytest.approx(0.4),
        "profit_factor": pytest.approx(1.1),
        "expectancy": D("1"),
        "max_drawdown": D("-50"),
        "max_drawdown_pct": pytest.approx((980 / 1030 - 1) * 100),
        "return_pct": pytest.approx(0.5),  # 5 / 1000 x 100
        # five days: fewer than MIN_DAYS_FOR_RATIOS (30), so no ratios (see test_pnl_summary_ratios)
        "cagr_pct": None,
        "volatility": None,
        "volatility_pct": None,
        "sharpe": None,
        "sortino": None,
        "calmar": None,
        "best_day": D("30"),
        "worst_day": D("-40"),
        "best_month": D("5"),            # one month, January
        "worst_month": D("5"),
    }


def test_pnl_summary_ratios_of_thirty_days():
    daily = alternating()
    positions = positions_frame([closed(v, f"{day.date()}T12:00:00") for day, v in
                                 zip(daily.index, ["20" if i % 2 == 0 else "-10" for i in range(30)])])
    summary = m.pnl_summary(positions, since=SINCE, until=ts("2024-01-31"), starting_capital=1000)
    std = math.sqrt(6750 / 29)
    assert summary["sharpe"] == pytest.approx(5 / std * math.sqrt(365))
    assert summary["sortino"] == pytest.approx(5 / math.sqrt(50) * math.sqrt(365))  # 15 x 100 / 30
    assert isinstance(summary["volatility"], Decimal)
    assert summary["volatility"] == pytest.approx(D(repr(std * math.sqrt(365))), abs=D("1e-8"))
    assert summary["return_pct"] == pytest.approx(15.0)  # 150 / 1000
    cagr = (1.15 ** (365 / 30) - 1) * 100
    assert summary["cagr_pct"] == pytest.approx(cagr)
    # equity 1020, 1010, 1030, 1020, ...: the deepest fall is the first, 1010 / 1020 - 1
    assert summary["max_drawdown_pct"] == pytest.approx((1010 / 1020 - 1) * 100)
    assert summary["calmar"] == pytest.approx(cagr / abs((1010 / 1020 - 1) * 100))
    assert summary["volatility_pct"] == pytest.approx(m.volatility_pct(daily, 1000))
    assert (summary["best_month"], summary["worst_month"]) == (D("150"), D("150"))
    assert m.pnl_summary(positions, since=SINCE, until=ts("2024-01-31"), daily=daily) == {
        **summary, "max_drawdown": D("-10"), "max_drawdown_pct": None, "return_pct": None,
        "cagr_pct": None, "volatility_pct": None, "calmar": None}


def test_pnl_summary_money_is_decimal_quantized_to_8_places():
    summary = m.pnl_summary(book(), since=SINCE, until=UNTIL)
    for key in ("realized_pnl", "unrealized_pnl", "total_pnl", "expectancy", "max_drawdown",
                "best_day", "worst_day"):
        assert isinstance(summary[key], Decimal) and summary[key].as_tuple().exponent == -8, key
    assert summary["max_drawdown_pct"] is None  # no starting capital


def test_pnl_summary_of_no_positions_has_zeros_and_nones_never_nan():
    summary = m.pnl_summary(positions_frame([]), since=SINCE, until=UNTIL)
    assert summary["realized_pnl"] == 0 and summary["closed_positions"] == 0
    for key in ("win_rate", "profit_factor", "expectancy", "max_drawdown_pct", "sharpe", "sortino"):
        assert summary[key] is None, key
    assert summary["best_day"] == 0 and summary["max_drawdown"] == 0


def test_pnl_summary_of_only_open_positions():
    positions = positions_frame([
        {"status": "open", "current_price": "80"}, {"status": "open", "current_price": "130"},
    ])
    summary = m.pnl_summary(positions, since=SINCE, until=UNTIL)
    assert (summary["realized_pnl"], summary["unrealized_pnl"], summary["total_pnl"]) == (0, D("10"), D("10"))
    assert summary["open_positions"] == 2 and summary["win_rate"] is None


# Tearsheet ---------------------------------------------------------------------------------


def test_volatility_is_the_annualised_sample_std_in_usd_exactly_rounded():
    daily = days_series(["1", "2", "3"])  # mean 2, var (1 + 0 + 1) / 2 = 1
    assert m.volatility(daily, min_days=3) == m.quantize(D(365).sqrt())  # 19.10497317
    assert m.volatility(daily, min_days=3) == D("19.10497317")


def test_volatility_pct_is_of_daily_returns_on_the_previous_days_equity():
    daily = days_series(["100", "-110"])
    # r1 = 100 / 1000 = 0.1; equity 1100; r2 = -110 / 1100 = -0.1; std(ddof=1) = sqrt(0.02)
    assert m.daily_returns(daily, 1000).to_list() == [pytest.approx(0.1), pytest.approx(-0.1)]
    assert m.volatility_pct(daily, 1000, min_days=2) == pytest.approx(math.sqrt(0.02) * math.sqrt(365) * 100)
    wiped = days_series(["-1000", "5", "1"])  # equity 0 after day 1: no return on day 2
    assert m.daily_returns(wiped, 1000).isna().to_list() == [False, True, False]
    assert m.volatility_pct(wiped, 1000, min_days=2) is None


def test_return_cagr_and_calmar():
    daily = alternating()
    assert m.return_pct(daily, 1000) == pytest.approx(15.0) and m.return_pct(daily) is None
    assert m.cagr_pct(daily, 1000) == pytest.approx((1.15 ** (365 / 30) - 1) * 100)
    assert m.cagr_pct(daily) is None
    # a year of days compounds to the plain return; ending equity <= 0 has no CAGR
    year = days_series(["0"] * 364 + ["100"])
    assert m.cagr_pct(year, 1000) == pytest.approx(10.0)
    assert m.cagr_pct(days_series(["-1000"] + ["0"] * 29), 1000) is None
    assert m.calmar(20.0, -4.0) == 5.0
    assert m.calmar(20.0, 0.0) is None and m.calmar(None, -4.0) is None and m.calmar(20.0, None) is None


def test_rolling_ratios_are_sharpe_and_volatility_of_the_trailing_window():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)  # 30, -10, -40, 0, 25
    rolling = m.rolling_ratios(daily, window=3)
    assert list(rolling.index) == list(daily.index)
    assert rolling["rolling_sharpe"].isna().to_list() == [True, True, False, False, False]
    for end, window in ((3, [30, -10, -40]), (4, [-10, -40, 0]), (5, [-40, 0, 25])):
        expected = statistics.mean(window) / statistics.stdev(window) * math.sqrt(365)
        assert rolling["rolling_sharpe"].iloc[end - 1] == pytest.approx(expected)
        assert float(rolling["rolling_volatility"].iloc[end - 1]) == pytest.approx(
            statistics.stdev(window) * math.sqrt(365), abs=1e-8)
    assert rolling["rolling_volatility"].dtype == m.MONEY_TOTAL
    flat = m.rolling_ratios(days_series(["0"] * 4), window=2)
    assert flat["rolling_sharpe"].isna().all() and flat["rolling_volatility"].iloc[-1] == 0
    with pytest.raises(ValueError, match="window"):
        m.rolling_ratios(daily, window=1)


def test_monthly_heatmap_is_a_year_by_month_grid():
    values = ["0"] * 62
    values[0], values[15], values[20], values[61] = "5", "-3", "1", "2"  # Dec 31, Jan 15, Jan 20, Mar 1
    daily = days_series(values, start="2023-12-31")
    grid = m.monthly_heatmap(daily)
    assert list(grid.index) == [2023, 2024] and list(grid.columns) == list(m.tearsheet.MONTHS)
    assert grid.loc[2023, "Dec"] == D("5") and pd.isna(grid.loc[2023, "Jan"])
    assert (grid.loc[2024, "Jan"], grid.loc[2024, "Feb"], grid.loc[2024, "Mar"]) == (D("-2"), D("0"), D("2"))
    assert grid.loc[2024, "Apr":"Dec"].isna().all()
    assert (grid.dtypes == m.MONEY_TOTAL).all()
    assert m.monthly_heatmap(daily.iloc[:0]).empty


def test_drawdown_periods_start_at_the_peak_and_end_at_recovery():
    daily = days_series(["-100", "50", "60", "-10"])  # equity from 1000: 900, 950, 1010, 1000
    table = m.drawdown_periods(daily, 1000)
    # 1: peak is the starting equity (the day before Jan 1), trough Jan 1, back at 1010 >= 1000 on
    # Jan 3: 3 days. 2: peak 1010 on Jan 3, trough Jan 4, not recovered: Jan 4 - Jan 3 = 1 day.
    assert table["start"].to_list() == [ts("2023-12-31"), ts("2024-01-03")]
    assert table["trough"].to_list() == [ts("2024-01-01"), ts("2024-01-04")]
    assert table["recovery"].iloc[0] == ts("2024-01-03") and pd.isna(table["recovery"].iloc[1])
    assert table["depth"].to_list() == [D("-100"), D("-10")]
    assert table["depth_pct"].to_list() == [pytest.approx(-10.0), pytest.approx((1000 / 1010 - 1) * 100)]
    assert table["length_days"].to_list() == [3, 1]
    assert len(m.drawdown_periods(daily, 1000, top=1)) == 1
    # without capital: the peak starts at 0 (-100, -50, 10, 0); no percentages
    usd = m.drawdown_periods(daily)
    assert usd["depth"].to_list() == [D("-100"), D("-10")] and usd["depth_pct"].isna().all()


def test_drawdown_periods_agree_with_drawdown_and_rank_the_top_five():
    daily = m.daily_realized_pnl(book(), SINCE, UNTIL)  # equity 1030, 1020, 980, 980, 1005
    table = m.drawdown_periods(daily, 1000)
    assert table[["start", "trough"]].iloc[0].to_list() == [ts("2024-01-01"), ts("2024-01-03")]
    assert table["depth"].iloc[0] == m.drawdown(daily, 1000).max_drawdown == D("-50")
    assert table["length_days"].iloc[0] == 4  # not recovered: Jan 1 .. Jan 5
    many = m.drawdown_periods(alternating(), 1000)  # 15 falls of 10 USD: the five earliest
    assert len(many) == 5 and (many["depth"] == D("-10")).all()
    assert many["start"].to_list() == [ts(f"2024-01-{d:02d}") for d in (1, 3, 5, 7, 9)]
    assert m.drawdown_periods(days_series(["1", "2"]), 100).empty
    assert m.drawdown_periods(days_series([]), 100).empty


def test_cumulative_pnl_by_strategy_is_each_strategys_equity_from_zero():
    curves = m.cumulative_pnl_by(book(), "strategy", since=SINCE, until=UNTIL)
    assert list(curves.index) == list(m.daily_realized_pnl(book(), SINCE, UNTIL).index)
    momentum, other = curves.columns[0], curves.columns[1]
    assert momentum == "momentum" and pd.isna(other)
    assert curves[momentum].to_list() == [D(x) for x in ("30", "20", "20", "20", "20")]
    assert curves[other].to_list() == [D(x) for x in ("0", "0", "-40", "-40", "-15")]
    with pytest.raises(ValueError, match="by must be one of"):
        m.cumulative_pnl_by(book(), "colour", since=SINCE, until=UNTIL)


def test_ratio_notes_say_why_ratios_are_missing():
    notes = " ".join(m.ratio_notes(m.daily_realized_pnl(book(), SINCE, UNTIL)))
    assert "at least 30 daily observations; this window has 5" in notes
    assert "need a starting capital" in notes and "None" not in notes  # notes are for readers
    assert m.ratio_notes(alternating(), 1000) == []
    gains = " ".join(m.ratio_notes(alternating().abs(), 1000))
    assert "Sortino is not given: no day of the window has a loss" in gains
    assert "Calmar is not given: the equity never fell" in gains


def test_pnl_summary_of_a_one_day_window():
    summary = m.pnl_summary(book(), since=SINCE, until=ts("2024-01-02"), starting_capital=100)
    assert summary["realized_pnl"] == D("30") and summary["best_day"] == summary["worst_day"] == D("30")
    assert summary["sharpe"] is None and summary["sortino"] is None
    assert summary["max_drawdown"] == 0 and summary["max_drawdown_pct"] == 0.0


def test_pnl_window_defaults_to_first_open_day_and_the_day_after_as_of():
    window = m.pnl_window(book(), as_of=ts("2024-01-10T15:30"))
    assert (window.since, window.until) == (ts("2023-12-31"), ts("2024-01-11"))
    empty = m.pnl_window(positions_frame([]), as_of=ts("2024-01-10T15:30"))
    assert (empty.since, empty.until) == (ts("2024-01-10"), ts("2024-01-11"))
    assert m.pnl_window(book(), since="2024-01-02", as_of=ts("2024-01-10")).since == ts("2024-01-02")


def test_window_arguments_must_be_readable():
    with pytest.raises(ValueError, match="since"):
        m.daily_realized_pnl(book(), "yesterday-ish", UNTIL)
