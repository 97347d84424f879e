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

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, cast

import numpy as np
import pandas as pd

from shivx_analytics.domain.enums import PositionStatus
from shivx_analytics.domain.window import end_of_day

from ._common import (
    PRECISION,
    ZERO,
    counts,
    day_index,
    decimals,
    distribution,
    equals,
    in_window,
    money_mean,
    money_series,
    money_sum,
    money_sum_by,
    nullable_floats,
    quantize,
    ratio,
    require_columns,
    timestamp,
)
from .tearsheet import (
    MIN_DAYS_FOR_RATIOS,
    cagr_pct,
    calmar,
    drawdown,
    equity_curve,
    pnl_by_period,
    return_pct,
    sharpe,
    sortino,
    volatility,
    volatility_pct,
)

REALIZED_STATUSES = (PositionStatus.CLOSED.value, PositionStatus.LIQUIDATED.value)
BREAKDOWNS = ("token", "strategy", "user_id")
_POSITION_COLUMNS = ("position_id", "status", "opened_at", "closed_at", "pnl")


@dataclass(frozen=True)
class PnlWindow:
    """A resolved half-open UTC window [since, until)."""

    since: pd.Timestamp
    until: pd.Timestamp


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


def _longest_run(flags: np.ndarray) -> int:
    longest = current = 0
    for flag in flags:
        current = current + 1 if flag else 0
        longest = max(longest, current)
    return longest
