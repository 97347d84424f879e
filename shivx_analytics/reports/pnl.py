"""The P&L report: realized and unrealized P&L, equity and drawdown, trade statistics,
breakdowns, triggered exits and the FIFO reconciliation of the order ledger.

Conventions (docs/conventions.md): realized P&L is the pnl of closed and liquidated
positions with closed_at in [since, until), on the UTC day of closed_at; unrealized P&L is the
pnl of positions still open, opened before until, marked at current_price. as_of defaults to
now (UTC), until to the day after as_of, since to the UTC day of the first opened_at
(docs/windows.md). ``user_id``, ``strategy`` and ``token`` keep some positions (as
load_positions filters them) and the orders of the same users and tokens (those of the
strategy's positions, with ``strategy``); a filtered report takes the pandas path.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from functools import partial
from typing import Any, cast

import pandas as pd

from shivx_analytics import aggregates, metrics, plots
from shivx_analytics.domain.window import check_window
from shivx_analytics.frames import load_orders, load_positions
from shivx_analytics.metrics._common import in_window, to_decimal

from ._common import (
    ReportWindow,
    empty_window_note,
    filter_values,
    filtered_path_note,
    label_missing,
    report_window,
    stats_table,
)
from ._shape import Context, ReportShape, run
from .base import Report

NOTES = [
    "Realized P&L: closed and liquidated positions with closed_at in [since, until), booked on "
    "the UTC day of closed_at. Unrealized P&L: positions still open, opened before until, marked "
    "at their current_price. A position closed after until is in neither.",
    "Equity = starting_capital + cumulative daily realized P&L (from 0 without starting_capital); "
    "drawdown = equity - running peak (USD), max_drawdown_pct = min(equity / peak - 1) x 100. "
    "Sharpe = mean / std (ddof=1) x sqrt(365) and Sortino = mean / sqrt(mean(min(x, 0)^2)) x "
    "sqrt(365) of the daily realized P&L series, zero days included.",
    "Tearsheet: volatility = std (ddof=1) of daily realized P&L x sqrt(365) (USD), volatility_pct "
    "the same of daily returns on the previous day's equity (%); return_pct = realized P&L / "
    "starting_capital; cagr_pct = (ending / starting equity)^(365 / days) - 1; calmar = cagr_pct / "
    "|max_drawdown_pct|; rolling figures over the trailing 30 days. Ratios need at least "
    f"{metrics.MIN_DAYS_FOR_RATIOS} daily observations (docs/conventions.md).",
    "win_rate = wins / closed positions (break-even trades stay in the denominator); "
    "profit_factor = gross profit / |gross loss| (empty without losses); expectancy = mean "
    "realized P&L per closed position.",
    "FIFO reconciliation per user and token: realized P&L of executed orders in [since, until) "
    "(FIFO lots over the whole ledger; the P&L of the sells executed in the window, summed once) "
    "against the realized P&L of the positions closed in the window. A difference comes from "
    "fills whose amounts differ from the positions' prices. fifo_ledger is the ledger through "
    "until (cumulative realized P&L and the lots still open).",
]


LEDGER_COLUMNS = ["order_id", "user_id", "token", "action", "status", "amount_in", "amount_out",
                  "executed_at"]


def pnl_report(source: Any = None, *, since: object = None, until: object = None, as_of: object = None,
               user_id: Any = None, strategy: Any = None, token: Any = None,
               starting_capital: object = None, pushdown: bool | None = None,
               use_views: bool | None = None) -> Report:
    """P&L of positions over [since, until) (docs/conventions.md): summary, daily,
    weekly and monthly series, breakdowns by token, strategy and user, trade statistics,
    triggered exits, FIFO reconciliation, the tearsheet (monthly heatmap, rolling 30-day Sharpe
    and volatility, underwater, worst drawdown periods, equity by strategy) and their figures.

    ``user_id``, ``strategy``, ``token``: one value or a list each, as load_positions takes
    them; the FIFO ledger keeps the executed orders of those users and tokens (and, with
    ``strategy``, of the strategy's positions).

    The daily series (and every figure drawn from it, the summary's realized_pnl included) comes
    from the loaded positions ("pandas"), PostgreSQL ("pushdown") or the materialized view
    mv_daily_trading_performance ("views"; a stale view is bypassed by push-down and the report
    says so); the per-position figures from the positions, loaded on every path."""
    window = report_window(since, until, as_of, lookback=None)
    capital = _starting_capital(starting_capital)
    filters = filter_values(user_id=user_id, strategy=strategy, token=token)
    shape: ReportShape[_Ledger, PnlInputs] = ReportShape(
        load=_load, compute=_compute, assemble=partial(_assemble, capital=capital),
        window_rows=aggregates.closed_positions_rows, views=("mv_daily_trading_performance",),
        shared=partial(_ledger, user_id=user_id, strategy=strategy, token=token))
    return run(shape, source, window, filters, pushdown=pushdown, use_views=use_views)


@dataclass(frozen=True, eq=False)
class _Ledger:
    """What both paths read: the positions alive in the window and the executed orders of the
    FIFO ledger (docs/conventions.md)."""

    positions: pd.DataFrame
    orders: pd.DataFrame


@dataclass(frozen=True, eq=False)
class PnlInputs:
    """The P&L report's inputs: the positions and the ledger's orders (both paths load them) and
    the daily realized P&L series, computed by one path."""

    positions: pd.DataFrame
    orders: pd.DataFrame
    daily: pd.Series


def _ledger(context: Context, *, user_id: Any, strategy: Any, token: Any) -> tuple[_Ledger, Context]:
    """The positions and orders both paths read, and the window they settle (since defaults to
    the UTC day of the first opened_at)."""
    chosen = {"user_id": user_id, "strategy": strategy, "token": token}
    since_arg, load_until = context.window.since, context.until
    # Alive in the window: opened before until, still open at since or later (all of them when
    # since defaults to the first opened_at).
    positions = cast(pd.DataFrame, load_positions(context.rows, since=since_arg, until=load_until, **chosen, money="decimal"))
    # The ledger needs every lot bought before the window: executed orders created before until.
    orders = cast(pd.DataFrame, load_orders(context.rows, status="executed", until=load_until, user_id=user_id, token=token,
                         columns=LEDGER_COLUMNS + (["position_id"] if strategy is not None else []),
                         money="decimal"))
    if strategy is not None:  # orders carry no strategy: those of the strategy's positions
        owned = positions if since_arg is None else cast(pd.DataFrame, load_positions(
            context.rows, until=load_until, **chosen, columns=["position_id"], money="decimal"))
        orders = orders[orders["position_id"].isin(owned["position_id"]).to_numpy(dtype=bool)]
        orders = orders[LEDGER_COLUMNS].reset_index(drop=True)
    found = metrics.pnl_window(positions, since=since_arg, until=load_until, as_of=context.as_of)
    check_window(found.since, found.until)
    settled = ReportWindow(found.since, found.until, context.as_of)
    return _Ledger(positions, orders), dataclasses.replace(context, window=settled)


def _load(context: Context, ledger: _Ledger) -> PnlInputs:
    """The pandas path: the daily series from the loaded positions."""
    daily = metrics.daily_realized_pnl(ledger.positions, context.since, context.until)
    return PnlInputs(ledger.positions, ledger.orders, daily)


def _compute(context: Context, ledger: _Ledger) -> PnlInputs:
    """The in-database path: the daily series summed in PostgreSQL, or read from the view."""
    from_database = (aggregates.daily_realized_pnl_from_view if context.path == "views"
                     else aggregates.daily_realized_pnl)
    return PnlInputs(ledger.positions, ledger.orders, from_database(context.sql, context.since, context.until))


def _assemble(inputs: PnlInputs, context: Context, *, capital: Decimal | None) -> Report:
    positions, orders, daily = inputs.positions, inputs.orders, inputs.daily
    since_ts, until_ts = context.since, context.until
    stats = metrics.trade_stats(positions, since=since_ts, until=until_ts)
    falls = metrics.drawdown(daily, capital)
    equity = metrics.equity_curve(daily, capital)
    exits = metrics.triggered_exits(positions)
    through_until = orders[in_window(orders["executed_at"], None, until_ts)]
    ledger = metrics.fifo_realized_pnl(through_until)
    fifo = metrics.fifo_realized_pnl(through_until, since=since_ts)  # the window's sells, rounded once
    reconciliation = metrics.reconcile_fifo_with_positions(
        fifo, metrics.realized_positions(positions, since_ts, until_ts))

    summary = metrics.pnl_summary(positions, since=since_ts, until=until_ts, starting_capital=capital,
                                  daily=daily)
    summary.update({
        "wins": stats.wins,
        "losses": stats.losses,
        "break_even": stats.break_even,
        "gross_profit": stats.gross_profit,
        "gross_loss": stats.gross_loss,
        "payoff_ratio": stats.payoff_ratio,
        "largest_win": stats.largest_win,
        "largest_loss": stats.largest_loss,
        "ending_equity": equity.iloc[-1] if capital is not None and len(equity) else None,
        "triggered_exits": len(exits),
        "fifo_mismatches": int((~reconciliation["matches"]).sum()),
        "fifo_problems": len(fifo.problems),
    })

    by_token = metrics.pnl_by(positions, "token", since=since_ts, until=until_ts)
    by_strategy = metrics.pnl_by(positions, "strategy", since=since_ts, until=until_ts)
    monthly_grid = metrics.monthly_heatmap(daily)
    rolling = metrics.rolling_ratios(daily)
    daily_table = pd.DataFrame({"realized_pnl": daily, "equity": equity, "drawdown": falls.drawdown},
                               index=daily.index)
    if falls.drawdown_pct is not None:
        daily_table["drawdown_pct"] = falls.drawdown_pct
    tables = {
        "daily": daily_table,
        "weekly": metrics.pnl_by_period(daily, "W").to_frame(),
        "monthly": metrics.pnl_by_period(daily, "M").to_frame(),
        "monthly_heatmap": monthly_grid,
        "rolling": rolling,
        "drawdown_periods": metrics.drawdown_periods(daily, capital),
        "by_token": by_token,
        "by_strategy": by_strategy,
        "by_user": metrics.pnl_by(positions, "user_id", since=since_ts, until=until_ts),
        "trade_stats": _trade_stats_table(stats),
        "triggered_exits": exits,
        "fifo_reconciliation": reconciliation,
        "fifo_problems": fifo.problems,
        "fifo_ledger": ledger.realized,
    }

    closed = metrics.realized_positions(positions, since_ts, until_ts)
    figures = {
        "equity_and_drawdown": _equity_figure(equity, falls, capital),
        "daily_pnl": plots.daily_pnl_bars(daily, title="Daily realized P&L (UTC day of close)"),
        "pnl_by_token": _by_figure(by_token, "token"),
        "pnl_by_strategy": _by_figure(by_strategy, "strategy"),
        "pnl_distribution": plots.histogram(
            closed["pnl"], title="Distribution of realized P&L per closed position",
            xlabel="Realized P&L per position (USD)", marker=0.0, marker_label="break-even"),
        "monthly_pnl_heatmap": plots.heatmap(
            monthly_grid, title="Realized P&L by month (UTC; edge months partial)", xlabel="Month",
            ylabel="Year", colorbar_label="Realized P&L (USD)", signed=True, usd=True),
        "rolling_sharpe_volatility": plots.rolling_sharpe_volatility(
            rolling, window_days=metrics.ROLLING_DAYS),
        "underwater": _underwater_figure(falls, capital),
        "equity_by_strategy": _equity_by_figure(
            metrics.cumulative_pnl_by(positions, "strategy", since=since_ts, until=until_ts), "strategy"),
    }

    filters = context.filters
    notes = list(NOTES) + metrics.ratio_notes(daily, capital)
    if filters:
        notes.append(filtered_path_note(filters))
    if positions.empty:
        notes.append(empty_window_note("positions", since_ts, until_ts, filters))
    if len(fifo.problems):
        notes.append(f"The order ledger has {len(fifo.problems)} problem order(s) (see "
                     "fifo_problems): e.g. a sell larger than the holdings.")
    notes += context.path_notes()
    return Report(name="pnl", title="P&L report", summary=summary, tables=tables, figures=figures,
                  parameters=context.parameters(starting_capital=capital), notes=notes,
                  usernames=context.usernames)


def _starting_capital(value: object) -> Decimal | None:
    if value is None:
        return None
    capital = metrics.quantize(to_decimal(value, "starting_capital"))
    if capital <= 0:
        raise ValueError(f"starting_capital must be > 0 USD (or None for P&L from 0), got {value!r}")
    return capital


def _trade_stats_table(stats: metrics.TradeStats) -> pd.DataFrame:
    rows, units = [], []
    for field in dataclasses.fields(stats):
        value = getattr(stats, field.name)
        rows.append((field.name, value))
        if "seconds" in field.name:
            units.append("seconds")
        elif field.name in ("win_rate", "profit_factor", "payoff_ratio"):
            units.append("ratio")
        elif field.name in ("closed_positions", "wins", "losses", "break_even") or "streak" in field.name:
            units.append("count")
        else:
            units.append("USD")
    return stats_table(rows, units)


def _equity_figure(equity: pd.Series, falls: metrics.Drawdown, capital: Decimal | None):
    if capital is None:
        return plots.equity_and_drawdown(
            equity, falls.drawdown, drawdown_unit="USD",
            title="Cumulative realized P&L and drawdown (no starting capital given)",
            equity_label="Cumulative realized P&L (USD)")
    return plots.equity_and_drawdown(
        equity, cast(pd.Series, falls.drawdown_pct), drawdown_unit="%",
        title=f"Equity (starting capital {capital:,.2f} USD + realized P&L) and drawdown")


def _underwater_figure(falls: metrics.Drawdown, capital: Decimal | None):
    if capital is None:
        return plots.underwater(falls.drawdown, unit="USD",
                                title="Underwater: drawdown in USD (no starting capital given, so no %)")
    return plots.underwater(cast(pd.Series, falls.drawdown_pct), unit="%",
                            title="Underwater: equity / running peak - 1 (%)")


def _equity_by_figure(curves: pd.DataFrame, key: str):
    labelled = curves.set_axis(label_missing(curves.columns), axis="columns")
    return plots.daily_lines(labelled, title=f"Cumulative realized P&L by {key}",
                             ylabel="Cumulative realized P&L (USD)", usd=True)


def _by_figure(table: pd.DataFrame, key: str):
    total = pd.Series(table["total"].to_numpy(), index=label_missing(table.index))
    return plots.horizontal_bars(total, title=f"P&L by {key} (realized + unrealized)",
                                 xlabel="P&L (USD)")
