"""The tearsheet of a daily realized P&L series: equity, drawdown, Sharpe, Sortino, volatility,
returns, CAGR, Calmar, rolling ratios, period sums, the monthly heatmap and the worst drawdown
periods (docs/conventions.md, the formulas and the minimum sample sizes with their reasons).

Separate from pnl.py because these functions take the daily series, whichever path computed it
(loaded positions, push-down or views), never positions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any, cast

import numpy as np
import pandas as pd

from ._common import (
    DAY,
    MONEY_TOTAL,
    PRECISION,
    ZERO,
    counts,
    decimals,
    float_or_none,
    floats,
    money_series,
    money_sum,
    money_sum_by,
    nullable_floats,
    quantize,
    ratio,
    to_decimal,
)

PERIODS = ("D", "W", "M")
DAYS_PER_YEAR = 365  # annualisation: crypto trades every calendar day
# Fewer daily observations than this give no Sharpe, Sortino, volatility, CAGR or Calmar (None):
# annualising a few days is noise (one losing day would give Sortino = -sqrt(365)).
MIN_DAYS_FOR_RATIOS = 30
ROLLING_DAYS = 30  # window of the rolling Sharpe and volatility
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


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


# Helpers -----------------------------------------------------------------------------------


def _finite(values: pd.Series) -> np.ndarray:
    array = floats(values)
    return array[np.isfinite(array)]


def _capital(value: object) -> Decimal:
    capital = to_decimal(value, "starting_capital")
    if capital <= 0:
        raise ValueError(f"starting_capital must be > 0 USD (or None for P&L from 0), got {value!r}")
    return quantize(capital)
