"""matplotlib figures from frames and series (no SQL, no metrics: inputs are already computed).

Every function returns a new ``matplotlib.figure.Figure`` (no pyplot state, so they work
headless and do not leak), with a fixed size, a title and axis labels with units.

The house style (STYLE) applies only while a figure is built (``matplotlib.rc_context``):
importing this module leaves matplotlib's global rcParams, and so the analyst's own figures,
untouched; and the analyst's rcParams do not change how these figures look where STYLE sets them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, cast, overload

import matplotlib
import matplotlib.style
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

STYLE = {"figure.facecolor": "white", "axes.facecolor": "white", "axes.grid": True, "grid.alpha": 0.3,
         "font.size": 9}

WIDE = (10, 4)
TALL = (10, 6)
SQUARE = (8, 5)
GAIN, LOSS, NEUTRAL = "#2a9d5c", "#c8443c", "#3b6ea8"
_HISTOGRAM_BARS: dict[str, Any] = {"color": NEUTRAL, "alpha": 0.85}


def _usd(value: float, _position=None) -> str:
    if value == 0:
        return "$0"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.0f}" if abs(value) >= 100 else f"{sign}${abs(value):,.2f}"


USD = FuncFormatter(_usd)
_P = ParamSpec("_P")


def styled(build: Callable[_P, Figure]) -> Callable[_P, Figure]:
    """Build the figure inside matplotlib's defaults plus STYLE (a style context): the style is
    read while artists are made (the first tick of each axis too, made when the axes' grid is
    set), not at drawing time. Starting from the defaults keeps the figures the same whatever
    the analyst's session changed globally (a library such as quantstats restyles on import)."""
    @functools.wraps(build)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> Figure:
        with matplotlib.style.context(["default", STYLE]):
            return build(*args, **kwargs)
    return wrapper


@overload
def as_float(values: pd.DataFrame) -> pd.DataFrame: ...


@overload
def as_float(values: pd.Series | Sequence[object] | np.ndarray) -> pd.Series: ...


def as_float(values) -> pd.Series | pd.DataFrame:
    """Decimal / Arrow-decimal / nullable values as float64 for plotting (NA -> NaN)."""
    if isinstance(values, pd.DataFrame):
        return values.apply(lambda column: pd.to_numeric(column.astype("object"), errors="coerce")).astype("float64")
    return pd.to_numeric(pd.Series(values).astype("object"), errors="coerce").astype("float64")


def _figure(size: tuple[float, float], title: str):
    """A new figure with one titled axes."""
    figure = Figure(figsize=size, layout="constrained")
    ax = figure.subplots()
    ax.set_title(title)
    return figure, ax


def _date_axis(figure: Figure, ax, ylabel: str, *, usd: bool = False) -> Figure:
    """Label a time x axis (UTC days) and the y axis, slant the dates; returns the figure."""
    ax.set_xlabel("Date (UTC)")
    ax.set_ylabel(ylabel)
    if usd:
        ax.yaxis.set_major_formatter(USD)
    figure.autofmt_xdate()
    return figure


def _empty(ax, message: str = "no data in this window") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="#777")
    ax.set_xticks([])
    ax.set_yticks([])


@styled
def equity_and_drawdown(equity: pd.Series, drawdown: pd.Series, *, drawdown_unit: str = "USD",
                        title: str = "Equity and drawdown", equity_label: str = "Equity (USD)") -> Figure:
    """Equity curve (USD) above its underwater drawdown (USD or %), on a shared date axis."""
    figure = Figure(figsize=TALL, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    figure.suptitle(title)
    if len(equity) == 0:
        _empty(top)
        _empty(bottom)
        return figure
    x = pd.to_datetime(equity.index)
    top.plot(x, as_float(equity).to_numpy(), color=NEUTRAL, linewidth=1.5)
    top.set_ylabel(equity_label)
    top.yaxis.set_major_formatter(USD)
    _underwater_area(bottom, drawdown, drawdown_unit)
    bottom.set_xlabel("Date (UTC)")
    figure.autofmt_xdate()
    return figure


def _underwater_area(ax, drawdown: pd.Series, unit: str) -> None:
    """Drawdown (<= 0) per day as a red area down from 0, in % or USD."""
    values = as_float(drawdown).to_numpy()
    ax.fill_between(pd.to_datetime(drawdown.index), values, 0, color=LOSS, alpha=0.4, step="post")
    ax.set_ylabel(f"Drawdown ({'%' if unit == '%' else 'USD'})")
    if unit != "%":
        ax.yaxis.set_major_formatter(USD)


@styled
def underwater(drawdown: pd.Series, *, unit: str = "%", title: str = "Underwater: drawdown from the running peak") -> Figure:
    """The underwater plot: how far below its running peak equity is each day (% or USD)."""
    figure, ax = _figure(WIDE, title)
    if len(drawdown) == 0:
        _empty(ax)
        return figure
    _underwater_area(ax, drawdown, unit)
    ax.axhline(0, color="#333", linewidth=0.8)
    ax.set_xlabel("Date (UTC)")
    figure.autofmt_xdate()
    return figure


@styled
def rolling_sharpe_volatility(rolling: pd.DataFrame, *, window_days: int,
                              title: str | None = None) -> Figure:
    """Rolling Sharpe (dimensionless) above rolling annualised volatility (USD), shared date
    axis; ``rolling`` has the columns rolling_sharpe and rolling_volatility (NA before the
    first full window)."""
    figure = Figure(figsize=TALL, layout="constrained")
    top, bottom = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title or f"Rolling {window_days}-day Sharpe and volatility of daily realized P&L")
    numbers = as_float(rolling[["rolling_sharpe", "rolling_volatility"]])
    if numbers.dropna(how="all").empty:
        _empty(top, f"fewer than {window_days} days in this window")
        _empty(bottom, f"fewer than {window_days} days in this window")
        return figure
    x = pd.to_datetime(numbers.index)
    top.plot(x, numbers["rolling_sharpe"].to_numpy(), color=NEUTRAL, linewidth=1.3)
    top.axhline(0, color="#333", linewidth=0.8)
    top.set_ylabel("Sharpe (annualised, 365 d)")
    bottom.plot(x, numbers["rolling_volatility"].to_numpy(), color=LOSS, linewidth=1.3)
    bottom.set_ylabel("Volatility (USD, annualised)")
    bottom.yaxis.set_major_formatter(USD)
    bottom.set_xlabel("Date (UTC)")
    figure.autofmt_xdate()
    return figure


@styled
def daily_pnl_bars(daily: pd.Series, *, title: str = "Daily realized P&L") -> Figure:
    """Bars per UTC day, green for gains and red for losses."""
    figure, ax = _figure(WIDE, title)
    if len(daily) == 0:
        _empty(ax)
        return figure
    values = as_float(daily).to_numpy()
    ax.bar(pd.to_datetime(daily.index), values, color=np.where(values >= 0, GAIN, LOSS), width=0.8)
    ax.axhline(0, color="#333", linewidth=0.8)
    return _date_axis(figure, ax, "Realized P&L (USD)", usd=True)


@styled
def horizontal_bars(values: pd.Series, *, title: str, xlabel: str, signed: bool = True,
                    usd: bool = True, limit: int = 20, reference: float | None = None,
                    reference_label: str | None = None, higher_is_better: bool = True) -> Figure:
    """Categories as horizontal bars, largest magnitude first, at most ``limit`` of them (P&L by
    token or strategy, ...); signed bars are green where good and red where bad (positive is
    bad when ``higher_is_better`` is False, e.g. slippage); an optional vertical reference line
    (e.g. 100 % of a limit)."""
    figure, ax = _figure(SQUARE, title)
    numbers = as_float(values)
    if len(numbers) == 0:
        _empty(ax)
        return figure
    numbers = numbers.reindex(numbers.abs().sort_values(ascending=False).index[:limit])[::-1]
    good, bad = (GAIN, LOSS) if higher_is_better else (LOSS, GAIN)
    colors = np.where(numbers.to_numpy() >= 0, good, bad) if signed else NEUTRAL
    ax.barh([str(i) for i in numbers.index], numbers.to_numpy(), color=colors)
    if signed:
        ax.axvline(0, color="#333", linewidth=0.8)
    if reference is not None:
        ax.axvline(reference, color=LOSS, linestyle="--", linewidth=1, label=reference_label)
        if reference_label:
            ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel(xlabel)
    if usd:
        ax.xaxis.set_major_formatter(USD)
    return figure


@styled
def histogram(values: pd.Series, *, title: str, xlabel: str, bins: int = 50,
              marker: float | None = None, marker_label: str | None = None) -> Figure:
    """Distribution of a numeric series, with an optional vertical reference line."""
    numbers = as_float(values).dropna().to_numpy()
    return _histogram(lambda ax: ax.hist(numbers, bins=bins, range=_bin_range(numbers, bins), **_HISTOGRAM_BARS),
                      len(numbers) > 0, title=title, xlabel=xlabel, marker=marker, marker_label=marker_label)


def _bin_range(numbers: np.ndarray, bins: int) -> tuple[float, float] | None:
    """None (numpy's own range) unless that range is too narrow for ``bins`` distinct float edges:
    values near 1e24 (a position of 999999999999 x 999999999999) all alike, where numpy's
    [value - 0.5, value + 0.5] collapses to one float. Then bins two float spacings wide around them."""
    low, high = float(numbers.min()), float(numbers.max())
    if low == high:
        low, high = low - 0.5, high + 0.5
    if np.all(np.diff(np.linspace(low, high, bins + 1)) > 0):
        return None
    middle = low / 2 + high / 2
    half = bins * float(np.spacing(max(abs(low), abs(high))))
    return middle - half, middle + half


@styled
def histogram_counts(edges: Sequence[float] | np.ndarray, counts: Sequence[int] | np.ndarray, *, title: str,
                     xlabel: str, marker: float | None = None, marker_label: str | None = None) -> Figure:
    """``histogram`` from counts already binned (``numpy.histogram``'s edges and counts, e.g.
    computed in the database): the same figure as ``histogram`` of the values themselves."""
    edges = np.asarray(edges, dtype="float64")
    counts = np.asarray(counts)
    return _histogram(lambda ax: ax.hist(edges[:-1], bins=cast(Sequence[float], edges), weights=counts, **_HISTOGRAM_BARS),
                      int(counts.sum()) > 0, title=title, xlabel=xlabel, marker=marker,
                      marker_label=marker_label)


def _histogram(draw: Callable[[Axes], object], has_data: bool, *, title: str, xlabel: str,
               marker: float | None, marker_label: str | None) -> Figure:
    """The look of a histogram: bars drawn by ``draw``, a reference line, axis labels."""
    figure, ax = _figure(SQUARE, title)
    if not has_data:
        _empty(ax)
        return figure
    draw(ax)
    if marker is not None:
        ax.axvline(marker, color=LOSS, linestyle="--", label=marker_label)
        if marker_label:
            ax.legend()
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Count")
    return figure


def _columns_by_day(frame: pd.DataFrame, title: str) -> tuple[Figure, Axes, pd.DataFrame, pd.DatetimeIndex | None]:
    """A wide figure for one series per column over days: the figure, its axes, the frame as floats
    and its days; the days are None (and the axes say there is no data) when the frame is empty."""
    figure, ax = _figure(WIDE, title)
    numbers = as_float(frame)
    if numbers.empty or numbers.shape[1] == 0:
        _empty(ax)
        return figure, ax, numbers, None
    return figure, ax, numbers, pd.to_datetime(numbers.index)


@styled
def stacked_daily(frame: pd.DataFrame, *, title: str, ylabel: str, usd: bool = False,
                  colors: Sequence[str] | None = None) -> Figure:
    """Stacked bars per day, one colour per column (notional by action, orders by status, ...)."""
    figure, ax, numbers, x = _columns_by_day(frame, title)
    if x is None:
        return figure
    bottom = np.zeros(len(numbers))
    palette = colors or cast(Sequence[str], cast(ListedColormap, matplotlib.colormaps["tab10"]).colors)
    for i, column in enumerate(numbers.columns):
        heights = numbers[column].fillna(0).to_numpy()
        ax.bar(x, heights, bottom=bottom, label=str(column), color=palette[i % len(palette)], width=0.8)
        bottom = bottom + heights
    ax.legend(loc="upper left", fontsize=8)
    return _date_axis(figure, ax, ylabel, usd=usd)


@styled
def daily_lines(frame: pd.DataFrame, *, title: str, ylabel: str, usd: bool = False) -> Figure:
    """One line per column over days (requests per day for the top keys, cumulative P&L per
    strategy, ...)."""
    figure, ax, numbers, x = _columns_by_day(frame, title)
    if x is None:
        return figure
    for column in numbers.columns:
        ax.plot(x, numbers[column].to_numpy(), label=str(column), linewidth=1.2)
    ax.legend(loc="upper left", fontsize=7)
    return _date_axis(figure, ax, ylabel, usd=usd)


@styled
def daily_series(series: pd.Series, *, title: str, ylabel: str) -> Figure:
    """A count per day as bars (failed logins per day, ...)."""
    figure, ax = _figure(WIDE, title)
    numbers = as_float(series)
    if len(numbers) == 0:
        _empty(ax)
        return figure
    ax.bar(pd.to_datetime(numbers.index), numbers.fillna(0).to_numpy(), color=LOSS, width=0.8)
    return _date_axis(figure, ax, ylabel)


@styled
def heatmap(grid: pd.DataFrame, *, title: str, xlabel: str, ylabel: str, colorbar_label: str,
            signed: bool = False, usd: bool = False) -> Figure:
    """A labelled grid: counts from 0 (failures by weekday x hour of day) or, ``signed``, values
    either side of 0 (P&L by year x month: green gains, red losses, each cell written; an empty
    cell is a month outside the window)."""
    figure = Figure(figsize=(10, 3.6), layout="constrained")
    ax = figure.subplots()
    ax.set_title(title)
    if signed:
        numbers = as_float(grid)
        if numbers.empty:
            _empty(ax)
            return figure
        values = numbers.to_numpy()
        limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 0.0
        limit = limit or 1.0
        image = ax.imshow(np.ma.masked_invalid(values), aspect="auto", cmap="RdYlGn", vmin=-limit, vmax=limit)
        for (row, column), value in np.ndenumerate(values):
            if np.isfinite(value):
                ax.text(column, row, _usd(value) if usd else f"{value:,.0f}", ha="center", va="center",
                        fontsize=7)
    else:
        numbers = as_float(grid).fillna(0)
        image = ax.imshow(numbers.to_numpy(), aspect="auto", cmap="Reds", vmin=0)
    ax.set_xticks(range(numbers.shape[1]), [str(c) for c in numbers.columns], fontsize=7)
    ax.set_yticks(range(numbers.shape[0]), [str(i) for i in numbers.index])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(False)
    colorbar = figure.colorbar(image, ax=ax, label=colorbar_label)
    if usd:
        colorbar.formatter = USD
    return figure
