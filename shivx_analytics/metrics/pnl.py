"""P&L metrics: daily realized P&L, equity, drawdown, Sharpe / Sortino, trade statistics,
breakdowns, triggered exits and the FIFO ledger over executed orders.

Conventions (docs/conventions.md, the formulas and minimum sample sizes with their reasons):
- Realized P&L is the `pnl` of closed and liquidated positions; it belongs to the UTC day of
  closed_at, and such a position is in a window when closed_at is in [since, until).
- Unrealized P&L is the `pnl` of positions still open (status open) opened before `until`.
- win: pnl > 0, loss: pnl < 0, break-even: pnl == 0 (kept in the win-rate denominator).
- Money is exact Decimal (8 dp, ROUND_HALF_EVEN); ratios are floats; absent figures are None.
- Holding times are float seconds (closed_at - opened_at).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, cast

import numpy as np
import pandas as pd

from shivx_analytics.domain.enums import PositionStatus
from shivx_analytics.domain.window import end_of_day

from ._common import (
    DAY,
    MONEY_TOTAL,
    PRECISION,
    ZERO,
    counts,
    day_index,
    decimals,
    distribution,
    equals,
    float_or_none,
    floats,
    in_window,
    money_mean,
    money_series,
    money_sum,
    money_sum_by,
    nullable_floats,
    optional_timestamp,
    quantize,
    ratio,
    require_columns,
    timestamp,
    to_decimal,
)

REALIZED_STATUSES = (PositionStatus.CLOSED.value, PositionStatus.LIQUIDATED.value)
BREAKDOWNS = ("token", "strategy", "user_id")
PERIODS = ("D", "W", "M")
DAYS_PER_YEAR = 365  # annualisation: crypto trades every calendar day
# Fewer daily observations than this give no Sharpe, Sortino, volatility, CAGR or Calmar (None):
# annualising a few days is noise (one losing day would give Sortino = -sqrt(365)).
MIN_DAYS_FOR_RATIOS = 30
ROLLING_DAYS = 30  # window of the rolling Sharpe and volatility
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_POSITION_COLUMNS = ("position_id", "status", "opened_at", "closed_at", "pnl")
_ORDER_COLUMNS = ("order_id", "user_id", "token", "action", "status", "amount_in", "amount_out",
                  "executed_at")


@dataclass(frozen=True)
class PnlWindow:
    """A resolved half-open UTC window [since, until)."""

    since: pd.Timestamp
    until: pd.Timestamp


@dataclass(frozen=True, eq=False)
class Drawdown:
    """Drawdown of equity = starting_capital (0 if None) + cumulative daily realized P&L.

    max_drawdown: most negative (equity - running peak), USD Decimal (<= 0); None without days.
    max_drawdown_pct: most negative (equity / running peak - 1) x 100; None without
    starting_capital or days. trough_day: day of max_drawdown (None when there was no fall).
    The running peak starts at the starting equity, so a loss on the first day is a drawdown.
    """

    max_drawdown: Decimal | None
    max_drawdown_pct: float | None
    trough_day: pd.Timestamp | None
    drawdown: pd.Series  # USD per day (MONEY_TOTAL), <= 0
    drawdown_pct: pd.Series | None  # Float64 per day, None without starting_capital


@dataclass(frozen=True)
class TradeStats:
    """Statistics of closed (closed + liquidated) positions; see trade_stats()."""

    closed_positions: int
    wins: int
    losses: int
    break_even: int
    win_rate: float | None
    realized_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    profit_factor: float | None
    average_win: Decimal | None
    average_loss: Decimal | None
    payoff_ratio: float | None
    expectancy: Decimal | None
    largest_win: Decimal | None
    largest_loss: Decimal | None
    longest_win_streak: int
    longest_loss_streak: int
    mean_holding_seconds: float | None
    median_holding_seconds: float | None
    mean_holding_seconds_wins: float | None
    median_holding_seconds_wins: float | None
    mean_holding_seconds_losses: float | None
    median_holding_seconds_losses: float | None


@dataclass(frozen=True, eq=False)
class FifoResult:
    """FIFO realized P&L from executed orders.

    realized: one row per (user_id, token): realized_pnl, buys, sells, open_tokens, open_cost.
    problems: one row per order the ledger could not use fully: problem "oversold" (a sell larger
    than the holdings; only the covered part is realized, the rest is in tokens_unmatched /
    proceeds_unmatched), "missing_execution_data" or "non_positive_amount" (order skipped).
    """

    realized: pd.DataFrame
    problems: pd.DataFrame


# Selections --------------------------------------------------------------------------------


def realized_positions(positions: pd.DataFrame, since: object = None,
                       until: object = None) -> pd.DataFrame:
    """Closed and liquidated positions with closed_at in [since, until) (None bounds are open)."""
    require_columns(positions, _POSITION_COLUMNS, "positions")
    mask = np.isin(positions["status"].astype(object), REALIZED_STATUSES)
    mask = mask & in_window(positions["closed_at"], since, until)
    return positions[mask]


def unrealized_positions(positions: pd.DataFrame, until: object = None) -> pd.DataFrame:
    """Positions still open (status open) with opened_at < until (all open ones if until is None)."""
    require_columns(positions, _POSITION_COLUMNS, "positions")
    mask = equals(positions["status"], "open") & in_window(positions["opened_at"], None, until)
    return positions[mask]


def pnl_window(positions: pd.DataFrame, *, since: object = None, until: object = None,
               as_of: object) -> PnlWindow:
    """The report window: since defaults to the UTC day of the first opened_at (the day of as_of
    without positions), until to the day after as_of."""
    as_of = timestamp(as_of, "as_of")
    if since is None:
        first = positions["opened_at"].min() if len(positions) else pd.NaT
        since = timestamp(as_of if pd.isna(first) else first, "since").floor("D")
    until = pd.Timestamp(end_of_day(as_of)) if until is None else until
    return PnlWindow(timestamp(since, "since"), timestamp(until, "until"))


# Daily series ------------------------------------------------------------------------------


def daily_realized_pnl(positions: pd.DataFrame, since: object, until: object) -> pd.Series:
    """Realized P&L per UTC day of closed_at, for every calendar day of [since, until).

    sum(pnl) of closed + liquidated positions with closed_at in [since, until), grouped by
    closed_at's UTC day; days without closes are 0. MONEY_TOTAL values, index `day` (UTC).
    """
    days = day_index(since, until)
    closed = realized_positions(positions, since, until)
    frame = pd.DataFrame({
        "day": closed["closed_at"].dt.tz_convert("UTC").dt.floor("D").astype("datetime64[us, UTC]"),
        "pnl": closed["pnl"],
    })
    sums = money_sum_by(frame, "day", "pnl")
    return sums.reindex(days, fill_value=cast(Any, ZERO)).rename("realized_pnl")  # stubs: no Decimal fill


def equity_curve(daily: pd.Series, starting_capital: object = None) -> pd.Series:
    """equity_d = starting_capital + sum of daily P&L up to and including day d.

    Without starting_capital the curve is the cumulative P&L from 0. MONEY_TOTAL values.
    """
    level = ZERO if starting_capital is None else _capital(starting_capital)
    curve = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for value in decimals(daily, "daily"):
            level += value
            curve.append(level)
    return money_series(curve, daily.index, "equity")


def drawdown(daily: pd.Series, starting_capital: object = None) -> Drawdown:
    """Drawdown of the equity curve (see Drawdown): falls from the running peak of equity,
    the peak starting at starting_capital (at 0 when None)."""
    capital = None if starting_capital is None else _capital(starting_capital)
    equity = decimals(equity_curve(daily, capital), "equity")
    peak = ZERO if capital is None else capital
    falls: list[Decimal] = []
    falls_pct: list[float] = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for level in equity:
            peak = max(peak, level)
            falls.append(level - peak)
            if capital is not None:
                falls_pct.append(float((level / peak - 1) * 100))
    series = money_series(falls, daily.index, "drawdown")
    series_pct = None if capital is None else nullable_floats(falls_pct, daily.index, "drawdown_pct")
    if not falls:
        return Drawdown(None, None, None, series, series_pct)
    deepest = min(falls)
    trough_day = daily.index[falls.index(deepest)] if deepest < 0 else None
    max_pct = None if capital is None else float_or_none(min(falls_pct))
    return Drawdown(quantize(deepest), max_pct, trough_day, series, series_pct)


def sharpe(daily: pd.Series, periods: int = DAYS_PER_YEAR, *,
           min_days: int = MIN_DAYS_FOR_RATIOS) -> float | None:
    """mean(x) / std(x, ddof=1) x sqrt(periods) of the daily series x (docs/conventions.md).

    Scale-free: the same on daily P&L and on daily P&L / constant capital. Accepts money or
    float series (NaN left out). None with fewer than max(min_days, 2) days or when every day
    is the same.
    """
    values = _finite(daily)
    if values.size < max(min_days, 2) or np.ptp(values) == 0:
        return None
    return float_or_none(values.mean() / values.std(ddof=1) * math.sqrt(periods))


def sortino(daily: pd.Series, periods: int = DAYS_PER_YEAR, *,
            min_days: int = MIN_DAYS_FOR_RATIOS) -> float | None:
    """mean(x) / sqrt(mean(min(x, 0)^2)) x sqrt(periods); the downside mean is over ALL days
    (as quantstats.stats.sortino does). None with fewer than min_days days, and None (not
    infinity) without a negative day: there is no downside deviation to divide by.
    """
    values = _finite(daily)
    if values.size < max(min_days, 1) or not (values < 0).any():
        return None
    downside = math.sqrt(float(np.mean(np.minimum(values, 0.0) ** 2)))
    return float_or_none(values.mean() / downside * math.sqrt(periods))


def volatility(daily: pd.Series, periods: int = DAYS_PER_YEAR, *,
               min_days: int = MIN_DAYS_FOR_RATIOS) -> Decimal | None:
    """Annualised volatility of the daily P&L in USD: std(x, ddof=1) x sqrt(periods).

    Computed in Decimal at 60 digits (mean, squared deviations, square root) and rounded once
    to 8 places, so every path that gives the same daily series gives the same figure. None
    with fewer than max(min_days, 2) days.
    """
    values = decimals(daily, "daily")
    if len(values) < max(min_days, 2):
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        mean = sum(values, Decimal(0)) / len(values)
        variance = sum(((v - mean) ** 2 for v in values), Decimal(0)) / (len(values) - 1)
        return quantize(variance.sqrt() * Decimal(periods).sqrt())


def daily_returns(daily: pd.Series, starting_capital: object) -> pd.Series:
    """Daily return on equity r_d = pnl_d / equity_(d-1), equity_0 = starting_capital (Float64).

    <NA> on a day that starts with equity <= 0 (a return on nothing is not defined).
    """
    level = _capital(starting_capital)
    returns: list[float | None] = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for value in decimals(daily, "daily"):
            returns.append(float(value / level) if level > 0 else None)
            level += value
    return nullable_floats(returns, daily.index, "return")


def volatility_pct(daily: pd.Series, starting_capital: object, periods: int = DAYS_PER_YEAR, *,
                   min_days: int = MIN_DAYS_FOR_RATIOS) -> float | None:
    """Annualised volatility of daily_returns() in %: std(r, ddof=1) x sqrt(periods) x 100.

    None with fewer than max(min_days, 2) days or when a day's return is not defined.
    """
    returns = daily_returns(daily, starting_capital)
    if len(returns) < max(min_days, 2) or returns.isna().any():
        return None
    values = returns.to_numpy(dtype="float64")
    return float_or_none(values.std(ddof=1) * math.sqrt(periods) * 100)


def return_pct(daily: pd.Series, starting_capital: object = None) -> float | None:
    """Return on starting capital over the window: sum(daily P&L) / starting_capital x 100.

    None without starting_capital.
    """
    if starting_capital is None:
        return None
    return ratio(money_sum(daily) * 100, _capital(starting_capital))


def cagr_pct(daily: pd.Series, starting_capital: object = None, periods: int = DAYS_PER_YEAR, *,
             min_days: int = MIN_DAYS_FOR_RATIOS) -> float | None:
    """CAGR-style annualised return: ((capital + sum(daily P&L)) / capital)^(periods / n) - 1,
    x 100, n = the number of days in the series (a 365-day year).

    None without starting_capital, with fewer than min_days days (annualising a few days
    explodes), or when the ending equity is <= 0 (no real root).
    """
    if starting_capital is None or len(daily) < max(min_days, 1):
        return None
    capital = _capital(starting_capital)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        growth = (capital + money_sum(daily)) / capital
    if growth <= 0:
        return None
    return float_or_none((float(growth) ** (periods / len(daily)) - 1) * 100)


def calmar(annual_return_pct: float | None, max_drawdown_pct: float | None) -> float | None:
    """Calmar ratio: annualised return (cagr_pct) / |max_drawdown_pct|, both in %.

    None when either is None (no starting capital, too few days) or without a drawdown.
    """
    if annual_return_pct is None or max_drawdown_pct is None or max_drawdown_pct == 0:
        return None
    return float_or_none(annual_return_pct / abs(max_drawdown_pct))


def rolling_ratios(daily: pd.Series, window: int = ROLLING_DAYS,
                   periods: int = DAYS_PER_YEAR) -> pd.DataFrame:
    """Rolling Sharpe and volatility of the daily P&L over the last `window` days (inclusive).

    Per day d: rolling_sharpe = sharpe() and rolling_volatility = volatility() (USD, annualised)
    of days d - window + 1 .. d; <NA> on the first window - 1 days and where the ratio does not
    exist (a flat window has no Sharpe). Indexed like `daily`.
    """
    if window < 2:
        raise ValueError(f"window must be >= 2 days, got {window!r}")
    sharpes: list[float | None] = []
    vols: list[Decimal | None] = []
    for end in range(1, len(daily) + 1):
        if end < window:
            sharpes.append(None)
            vols.append(None)
            continue
        part = daily.iloc[end - window:end]
        sharpes.append(sharpe(part, periods, min_days=window))
        vols.append(volatility(part, periods, min_days=window))
    return pd.DataFrame({
        "rolling_sharpe": nullable_floats(sharpes, daily.index, "rolling_sharpe"),
        "rolling_volatility": pd.Series([None if v is None else quantize(v) for v in vols],
                                        index=daily.index, dtype=MONEY_TOTAL),
    }, index=daily.index)


def pnl_by_period(daily: pd.Series, freq: str = "W") -> pd.Series:
    """Sum of the daily series per period: "D" day, "W" ISO week (Monday start), "M" month.

    Indexed by the first day of each period (UTC); edge periods hold only the days in the series.
    """
    if freq not in PERIODS:
        raise ValueError(f"freq must be one of {PERIODS} (day, ISO week, month), got {freq!r}")
    days = pd.DatetimeIndex(daily.index)
    if freq == "W":
        starts = days - pd.to_timedelta(days.day_of_week, unit="D")
    elif freq == "M":
        starts = days - pd.to_timedelta(days.day - 1, unit="D")
    else:
        starts = days
    frame = pd.DataFrame({"period": starts, "pnl": daily.array})
    sums = money_sum_by(frame, "period", "pnl")
    if sums.empty:
        sums.index = pd.DatetimeIndex([], dtype="datetime64[us, UTC]", name="period")
    return sums.rename("realized_pnl")


def monthly_heatmap(daily: pd.Series) -> pd.DataFrame:
    """Realized P&L per calendar month as a year x month grid (pnl_by_period(daily, "M")).

    Index `year` (every year from the first to the last day of the series), columns Jan..Dec,
    MONEY_TOTAL; <NA> for a month with no day in the series (edge months hold only their days).
    """
    months = pnl_by_period(daily, "M")
    cells = {(day.year, day.month): value for day, value in cast(Iterable[tuple[pd.Timestamp, Any]], months.items())}
    years = list(range(min(y for y, _ in cells), max(y for y, _ in cells) + 1)) if cells else []
    index = pd.Index(years, dtype="int64", name="year")
    return pd.DataFrame({
        name: pd.Series([cells.get((year, month)) for year in years], index=index, dtype=MONEY_TOTAL)
        for month, name in enumerate(MONTHS, start=1)
    }, index=index)


def drawdown_periods(daily: pd.Series, starting_capital: object = None, top: int = 5) -> pd.DataFrame:
    """The `top` deepest drawdowns of the equity curve (drawdown()'s equity and running peak).

    A period starts when equity falls below the running peak and ends on the first day it is
    back at (or above) the peak. start: the peak's day (the last day at the peak; the day
    before the series' first day when the peak is the starting equity); trough: the day of the
    lowest equity; recovery: the day back at the peak (NaT if not recovered); depth: trough
    equity - peak (USD, < 0); depth_pct: (trough equity / peak - 1) x 100 (<NA> without
    starting_capital); length_days: recovery - start, or last day - start if not recovered.
    Deepest first (earlier start first on ties).
    """
    capital = None if starting_capital is None else _capital(starting_capital)
    equity = decimals(equity_curve(daily, capital), "equity")
    days = pd.DatetimeIndex(daily.index)
    peak = ZERO if capital is None else capital
    peak_day = days[0] - DAY if len(days) else None
    periods: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        for day, level in zip(days, equity):
            if level >= peak:
                if current is not None:
                    current["recovery"] = day
                    current = None
                peak, peak_day = level, day
            elif current is None:
                current = {"start": peak_day, "trough": day, "recovery": None, "peak": peak,
                           "low": level}
                periods.append(current)
            elif level < current["low"]:
                current.update(trough=day, low=level)
        rows = []
        for period in periods:
            end = period["recovery"] if period["recovery"] is not None else days[-1]
            pct = None if capital is None else float((period["low"] / period["peak"] - 1) * 100)
            rows.append((period["start"], period["trough"], period["recovery"],
                         quantize(period["low"] - period["peak"]), pct, (end - period["start"]).days))
    rows.sort(key=lambda row: (row[3], row[0]))
    rows = rows[:top]
    index = pd.RangeIndex(len(rows))
    day_dtype = "datetime64[us, UTC]"
    return pd.DataFrame({
        "start": pd.Series([r[0] for r in rows], index=index, dtype=day_dtype),
        "trough": pd.Series([r[1] for r in rows], index=index, dtype=day_dtype),
        "recovery": pd.Series([pd.NaT if r[2] is None else r[2] for r in rows], index=index, dtype=day_dtype),
        "depth": money_series([r[3] for r in rows], index, "depth"),
        "depth_pct": nullable_floats([r[4] for r in rows], index, "depth_pct"),
        "length_days": counts([r[5] for r in rows], index, "length_days"),
    })


def cumulative_pnl_by(positions: pd.DataFrame, by: str = "strategy", *, since: object,
                      until: object) -> pd.DataFrame:
    """Cumulative realized P&L per day for each token, strategy or user_id (equity_curve() of
    each key's daily_realized_pnl(), from 0): one MONEY_TOTAL column per key that has realized
    positions in [since, until) (sorted; a missing key is a column named <NA>), every day.
    """
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {BREAKDOWNS}, got {by!r}")
    require_columns(positions, (by,), "positions")
    closed = realized_positions(positions, since, until)
    days = day_index(since, until)
    columns = {}
    for key, group in closed.groupby(by, dropna=False, observed=True, sort=True):
        columns[key] = equity_curve(daily_realized_pnl(group, since, until)).rename(key)
    frame = pd.DataFrame(columns, index=days)
    frame.columns.name = by
    return frame


# Trades ------------------------------------------------------------------------------------


def trade_stats(positions: pd.DataFrame, *, since: object = None, until: object = None) -> TradeStats:
    """Statistics of closed + liquidated positions (closed_at in [since, until) when given).

    win_rate = wins / closed (break-even stays in the denominator); profit_factor = gross profit
    / |gross loss| (None without losses); payoff_ratio = average win / |average loss| (None
    without wins or losses); expectancy = mean realized pnl per closed position; streaks run in
    closed_at order (position_id breaks ties) and a break-even trade ends a streak; holding
    times in seconds for all closed positions, winners and losers.
    """
    closed = realized_positions(positions, since, until)
    closed = closed.sort_values(["closed_at", "position_id"], kind="mergesort")
    pnls = decimals(closed["pnl"], "positions.pnl")
    seconds = (closed["closed_at"] - closed["opened_at"]).dt.total_seconds().to_numpy()
    won = np.array([p > 0 for p in pnls], dtype=bool)
    lost = np.array([p < 0 for p in pnls], dtype=bool)
    win_values = [p for p in pnls if p > 0]
    loss_values = [p for p in pnls if p < 0]
    gross_profit, gross_loss = money_sum(win_values), money_sum(loss_values)
    average_win, average_loss = money_mean(win_values), money_mean(loss_values)
    every, winners, losers = distribution(seconds), distribution(seconds[won]), distribution(seconds[lost])
    return TradeStats(
        closed_positions=len(pnls),
        wins=len(win_values),
        losses=len(loss_values),
        break_even=len(pnls) - len(win_values) - len(loss_values),
        win_rate=win_rate(len(win_values), len(pnls)),
        realized_pnl=money_sum(pnls),
        gross_profit=gross_profit,
        gross_loss=gross_loss,
        profit_factor=ratio(gross_profit, -gross_loss),
        average_win=average_win,
        average_loss=average_loss,
        payoff_ratio=payoff_ratio(gross_profit, len(win_values), gross_loss, len(loss_values)),
        expectancy=money_mean(pnls),
        largest_win=quantize(max(win_values)) if win_values else None,
        largest_loss=quantize(min(loss_values)) if loss_values else None,
        longest_win_streak=_longest_run(won),
        longest_loss_streak=_longest_run(lost),
        mean_holding_seconds=every.mean,
        median_holding_seconds=every.median,
        mean_holding_seconds_wins=winners.mean,
        median_holding_seconds_wins=winners.median,
        mean_holding_seconds_losses=losers.mean,
        median_holding_seconds_losses=losers.median,
    )


def payoff_ratio(gross_profit: Decimal, wins: int, gross_loss: Decimal, losses: int) -> float | None:
    """average win / |average loss| = (gross_profit / wins) / (|gross_loss| / losses), from the
    exact sums (not from averages rounded to 8 places); None without wins or losses."""
    if not wins or not losses:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return ratio(gross_profit * losses, -gross_loss * wins)


def win_rate(wins: int, closed: int) -> float | None:
    """wins / closed positions (break-even trades count in `closed`); None without closes."""
    return ratio(wins, closed)


def pnl_by(positions: pd.DataFrame, by: str = "token", *, since: object = None,
           until: object = None) -> pd.DataFrame:
    """P&L per token, strategy or user_id, indexed by that key (sorted; a missing key is NA).

    realized: closed + liquidated with closed_at in [since, until); unrealized: open positions
    opened before until; total = realized + unrealized (MONEY_TOTAL); trades: closed positions;
    wins; open_positions; win_rate = wins / trades (NA without trades).
    """
    if by not in BREAKDOWNS:
        raise ValueError(f"by must be one of {BREAKDOWNS}, got {by!r}")
    require_columns(positions, (by,), "positions")
    closed = realized_positions(positions, since, until).assign(_realized=True)
    still_open = unrealized_positions(positions, until).assign(_realized=False)
    frame = pd.concat([closed, still_open], ignore_index=True)
    rows = []
    for key, group in frame.groupby(by, dropna=False, observed=True, sort=True):
        realized = group[group["_realized"]]
        pnls = decimals(realized["pnl"], "positions.pnl")
        wins = sum(1 for p in pnls if p > 0)
        realized_sum = money_sum(pnls)
        unrealized_sum = money_sum(group.loc[~group["_realized"], "pnl"])
        rows.append((key, realized_sum, unrealized_sum, money_sum([realized_sum, unrealized_sum]),
                     len(pnls), wins, int((~group["_realized"]).sum()), win_rate(wins, len(pnls))))
    index = pd.Index([r[0] for r in rows], dtype=positions[by].dtype, name=by)
    return pd.DataFrame({
        "realized": money_series([r[1] for r in rows], index, "realized"),
        "unrealized": money_series([r[2] for r in rows], index, "unrealized"),
        "total": money_series([r[3] for r in rows], index, "total"),
        "trades": counts([r[4] for r in rows], index, "trades"),
        "wins": counts([r[5] for r in rows], index, "wins"),
        "open_positions": counts([r[6] for r in rows], index, "open_positions"),
        "win_rate": nullable_floats([r[7] for r in rows], index, "win_rate"),
    }, index=index)


def triggered_exits(positions: pd.DataFrame) -> pd.DataFrame:
    """Open positions whose exit level is crossed, with `trigger` = stop_loss / take_profit / both.

    stop_loss: stop_loss set and current_price <= stop_loss; take_profit: take_profit set and
    current_price >= take_profit (docs/conventions.md, "Triggered exits").
    """
    require_columns(positions, ("current_price", "stop_loss", "take_profit"), "positions")
    still_open = unrealized_positions(positions)
    price = still_open["current_price"]
    stop = (price <= still_open["stop_loss"]).fillna(False).to_numpy(dtype=bool)
    take = (price >= still_open["take_profit"]).fillna(False).to_numpy(dtype=bool)
    trigger = np.where(stop & take, "both", np.where(stop, "stop_loss", "take_profit"))
    columns = [c for c in ("position_id", "user_id", "token", "strategy", "size", "entry_price",
                           "current_price", "stop_loss", "take_profit", "pnl")
               if c in positions.columns]
    crossed = still_open.loc[stop | take, columns].assign(
        trigger=pd.Series(trigger[stop | take], index=still_open.index[stop | take], dtype="string"))
    return crossed.sort_values("position_id", kind="mergesort").reset_index(drop=True)


# FIFO ledger -------------------------------------------------------------------------------


def fifo_realized_pnl(orders: pd.DataFrame, *, since: object = None) -> FifoResult:
    """Realized P&L per (user_id, token) from executed orders, FIFO (docs/conventions.md).

    Executed orders in executed_at order (order_id breaks ties). A buy adds a lot (tokens =
    amount_out, cost = amount_in); a sell consumes lots oldest first and realizes amount_out -
    cost of the tokens consumed, pro rata within a lot. A sell larger than the holdings realizes
    only its covered part (proceeds pro rata) and is listed in `problems`, never hidden.

    since: realized_pnl counts only the sells executed at or after since (lots bought before
    still feed FIFO) and `problems` only the orders executed then; buys, sells and the open lots
    are the whole ledger's. The window's P&L is summed once and rounded once, not taken as the
    difference of two rounded ledgers (which can be 1e-8 off).
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    since = optional_timestamp(since, "since")
    executed = orders[equals(orders["status"], "executed")]
    executed = executed.sort_values(["executed_at", "order_id"], kind="mergesort", na_position="last")
    books: dict[tuple[str, str], _Book] = {}
    problems: list[dict[str, object]] = []
    with localcontext() as ctx:
        ctx.prec = PRECISION
        rows: Iterable[Any] = executed[list(_ORDER_COLUMNS)].itertuples(index=False)
        for row in rows:
            book = books.setdefault((row.user_id, row.token), _Book())
            counted = since is None or (not pd.isna(row.executed_at) and row.executed_at >= since)
            problem = book.apply(row, counted)
            if problem is not None and counted:
                problems.append(problem)
    keys = sorted(books)
    realized = pd.DataFrame({
        "user_id": pd.Series([k[0] for k in keys], dtype="string"),
        "token": pd.Series([k[1] for k in keys], dtype="string"),
    })
    realized["realized_pnl"] = money_series([books[k].realized for k in keys], realized.index, "")
    realized["buys"] = counts([books[k].buys for k in keys], realized.index, "buys")
    realized["sells"] = counts([books[k].sells for k in keys], realized.index, "sells")
    realized["open_tokens"] = money_series([books[k].open_tokens() for k in keys], realized.index, "")
    realized["open_cost"] = money_series([books[k].open_cost() for k in keys], realized.index, "")
    return FifoResult(realized=realized, problems=_problems_frame(problems))


def reconcile_fifo_with_positions(fifo: FifoResult, positions: pd.DataFrame, *,
                                  tolerance: object = 0) -> pd.DataFrame:
    """Per (user_id, token): fifo_pnl (ledger), position_pnl (sum of realized position pnl),
    difference = fifo_pnl - position_pnl, matches = |difference| <= tolerance (USD, default 0).

    A key present on one side only has 0 on the other. The two differ legitimately when fills
    carry slippage the position prices do not show; `matches` says where to look.
    """
    tolerance = to_decimal(tolerance, "tolerance")
    realized = realized_positions(positions)
    require_columns(realized, ("user_id", "token"), "positions")
    position_pnl = money_sum_by(realized, ["user_id", "token"], "pnl")
    ledger = {(r.user_id, r.token): r.realized_pnl
              for r in fifo.realized.itertuples(index=False)}
    booked = dict(zip(position_pnl.index, position_pnl.to_list()))
    keys = sorted(set(ledger) | set(booked))
    fifo_values = [quantize(ledger.get(k, ZERO)) for k in keys]
    position_values = [quantize(booked.get(k, ZERO)) for k in keys]
    differences = [money_sum([f, -p]) for f, p in zip(fifo_values, position_values)]
    index = pd.RangeIndex(len(keys))
    return pd.DataFrame({
        "user_id": pd.Series([k[0] for k in keys], dtype="string"),
        "token": pd.Series([k[1] for k in keys], dtype="string"),
        "fifo_pnl": money_series(fifo_values, index, "fifo_pnl"),
        "position_pnl": money_series(position_values, index, "position_pnl"),
        "difference": money_series(differences, index, "difference"),
        "matches": pd.Series([abs(d) <= tolerance for d in differences], dtype="bool"),
    })


# Headline ----------------------------------------------------------------------------------


def pnl_summary(positions: pd.DataFrame, *, since: object, until: object,
                starting_capital: object = None, daily: pd.Series | None = None) -> dict[str, object]:
    """Headline P&L figures for [since, until): money as Decimal, percentages x 100 (_pct),
    ratios as float, counts as int, absent None (docs/conventions.md).

    closed_positions: closed + liquidated with closed_at in the window; unrealized_pnl /
    open_positions: still open, opened before until; total = realized + unrealized; win_rate,
    profit_factor, expectancy: trade_stats(). From the daily series (`daily`, e.g. summed in the
    database; daily_realized_pnl() of positions when None), so that the summary and the daily
    table are one computation: realized_pnl, its sum;
    max_drawdown(_pct): drawdown(); return_pct, cagr_pct, volatility, volatility_pct, sharpe,
    sortino, calmar: their functions (365 periods; the ratios need MIN_DAYS_FOR_RATIOS days);
    best_day / worst_day, best_month / worst_month: largest / smallest daily and calendar-month
    realized P&L (edge months hold only the window's days).
    """
    if daily is None:
        daily = daily_realized_pnl(positions, since, until)
    stats = trade_stats(positions, since=since, until=until)
    realized = money_sum(daily)
    still_open = unrealized_positions(positions, until)
    unrealized = money_sum(still_open["pnl"])
    falls = drawdown(daily, starting_capital)
    day_values = decimals(daily, "daily")
    month_values = decimals(pnl_by_period(daily, "M"), "monthly")
    annual = cagr_pct(daily, starting_capital)
    return {
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "total_pnl": money_sum([realized, unrealized]),
        "closed_positions": stats.closed_positions,
        "open_positions": len(still_open),
        "win_rate": stats.win_rate,
        "profit_factor": stats.profit_factor,
        "expectancy": stats.expectancy,
        "max_drawdown": falls.max_drawdown,
        "max_drawdown_pct": falls.max_drawdown_pct,
        "return_pct": return_pct(daily, starting_capital),
        "cagr_pct": annual,
        "volatility": volatility(daily),
        "volatility_pct": None if starting_capital is None else volatility_pct(daily, starting_capital),
        "sharpe": sharpe(daily),
        "sortino": sortino(daily),
        "calmar": calmar(annual, falls.max_drawdown_pct),
        "best_day": quantize(max(day_values)) if day_values else None,
        "worst_day": quantize(min(day_values)) if day_values else None,
        "best_month": quantize(max(month_values)) if month_values else None,
        "worst_month": quantize(min(month_values)) if month_values else None,
    }


def ratio_notes(daily: pd.Series, starting_capital: object = None) -> list[str]:
    """Why pnl_summary()'s ratios are None for this daily series, one sentence each (for a
    report's notes); empty when every ratio exists."""
    notes = []
    days = len(daily)
    if days < MIN_DAYS_FOR_RATIOS:
        notes.append(f"Sharpe, Sortino, volatility, CAGR and Calmar need at least {MIN_DAYS_FOR_RATIOS} "
                     f"daily observations; this window has {days}, so they are not given (annualising a "
                     "few days is noise).")
    else:
        if sharpe(daily) is None:
            notes.append("Sharpe is not given: every day of the window has the same realized P&L.")
        if sortino(daily) is None:
            notes.append("Sortino is not given: no day of the window has a loss (no downside deviation).")
    if starting_capital is None:
        notes.append("Return, CAGR, volatility (%), Calmar and the underwater % need a "
                     "starting capital; without it they are not given and drawdowns are in USD.")
    elif days >= MIN_DAYS_FOR_RATIOS:
        if cagr_pct(daily, starting_capital) is None:
            notes.append("CAGR and Calmar are not given: the ending equity is <= 0.")
        elif drawdown(daily, starting_capital).max_drawdown_pct == 0:
            notes.append("Calmar is not given: the equity never fell below its running peak.")
        if volatility_pct(daily, starting_capital) is None:
            notes.append("volatility_pct is None: a day starts with equity <= 0 (no return on it).")
    return notes


# Helpers -----------------------------------------------------------------------------------


def _finite(values: pd.Series) -> np.ndarray:
    array = floats(values)
    return array[np.isfinite(array)]


def _capital(value: object) -> Decimal:
    capital = to_decimal(value, "starting_capital")
    if capital <= 0:
        raise ValueError(f"starting_capital must be > 0 USD (or None for P&L from 0), got {value!r}")
    return quantize(capital)


def _longest_run(flags: np.ndarray) -> int:
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest


class _Book:
    """FIFO lots of one (user_id, token); arithmetic runs in the caller's 60-digit context."""

    def __init__(self) -> None:
        self.lots: deque[list[Decimal]] = deque()  # [tokens, cost] per lot, oldest first
        self.realized = Decimal(0)
        self.buys = 0
        self.sells = 0

    def apply(self, row: Any, counted: bool = True) -> dict[str, object] | None:
        """Apply one executed order; a sell's P&L goes to `realized` only when `counted`."""
        if pd.isna(row.executed_at) or pd.isna(row.amount_out) or pd.isna(row.amount_in):
            return _problem(row, "missing_execution_data")
        amount_in, amount_out = to_decimal(row.amount_in), to_decimal(row.amount_out)
        if amount_in <= 0 or amount_out <= 0:
            return _problem(row, "non_positive_amount")
        if row.action == "buy":
            self.buys += 1
            self.lots.append([amount_out, amount_in])
            return None
        if row.action != "sell":
            return _problem(row, "unknown_action")
        self.sells += 1
        remaining, cost = amount_in, Decimal(0)
        while remaining > 0 and self.lots:
            lot = self.lots[0]
            take = min(remaining, lot[0])
            consumed = lot[1] if take == lot[0] else lot[1] * take / lot[0]
            lot[0] -= take
            lot[1] -= consumed
            remaining -= take
            cost += consumed
            if lot[0] == 0:
                self.lots.popleft()
        if remaining == 0:
            if counted:
                self.realized += amount_out - cost
            return None
        matched = amount_in - remaining
        proceeds = amount_out * matched / amount_in
        if counted:
            self.realized += proceeds - cost
        return _problem(row, "oversold", tokens_sold=amount_in, tokens_held=matched,
                        tokens_unmatched=remaining, proceeds_unmatched=amount_out - proceeds)

    def open_tokens(self) -> Decimal:
        return money_sum([lot[0] for lot in self.lots])

    def open_cost(self) -> Decimal:
        return money_sum([lot[1] for lot in self.lots])


_PROBLEM_AMOUNTS = ("tokens_sold", "tokens_held", "tokens_unmatched", "proceeds_unmatched")


def _problem(row: Any, problem: str, **amounts: Decimal) -> dict[str, object]:
    return {"order_id": row.order_id, "user_id": row.user_id, "token": row.token,
            "action": row.action, "executed_at": row.executed_at, "problem": problem, **amounts}


def _problems_frame(problems: list[dict[str, object]]) -> pd.DataFrame:
    index = pd.RangeIndex(len(problems))
    frame = pd.DataFrame({
        name: pd.Series([p[name] for p in problems], index=index, dtype="string")
        for name in ("order_id", "user_id", "token", "action")
    })
    frame["executed_at"] = pd.Series([p["executed_at"] for p in problems], index=index,
                                     dtype="datetime64[us, UTC]")
    frame["problem"] = pd.Series([p["problem"] for p in problems], index=index, dtype="string")
    for name in _PROBLEM_AMOUNTS:
        frame[name] = pd.Series([quantize(p[name]) if name in p else None for p in problems],
                                index=index, dtype=MONEY_TOTAL)
    return frame
