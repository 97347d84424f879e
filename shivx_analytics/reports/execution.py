"""The order execution report: outcomes, fill rate, notional, slippage, latency, failures.

The window is half-open [since, until) on the orders' created_at: until defaults to as_of (now,
UTC), since to until - 30 days. Status is the orders' status as stored.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shivx_analytics import metrics, plots
from shivx_analytics.frames import load_orders
from shivx_analytics.metrics._common import (
    counts, equals, money_series, money_sum, nullable_floats, ratio,
)
from shivx_analytics.metrics.execution import STATUSES

from ._common import (
    base_parameters, label_missing, opened, resolve_as_of, stats_table, trailing_window,
)
from .base import Report

NOTES = [
    "Orders created in [since, until); counts by their stored status. fill_rate = executed / "
    "(executed + failed + cancelled): pending orders are left out of the rates.",
    "Notional (total_value, USD): amount_in of a buy; amount_out of an executed sell, else "
    "amount_in x price. Daily notional counts executed orders on the UTC day of executed_at.",
    "Slippage: slippage_actual in bps of executed orders, positive = worse for the trader; an "
    "order is over tolerance when slippage_actual > its slippage_bps. Latency = executed_at - "
    "created_at in seconds.",
]
TOP_TOKENS = 20


def execution_report(source: Any, *, since: object = None, until: object = None,
                     as_of: object = None) -> Report:
    """Execution quality of orders created in [since, until) (default: the 30 days before as_of):
    summary, status, slippage, failure, notional, daily status and latency tables, and figures."""
    as_of_ts = resolve_as_of(as_of)
    since_ts, until_ts = trailing_window(since, until, as_of_ts)
    with opened(source) as connection:
        orders = load_orders(connection, since=since_ts, until=until_ts)

    summary = metrics.execution_summary(orders)
    executed = orders[equals(orders["status"], "executed")]
    slippage_by_token = metrics.slippage_by(orders, "token")
    daily_notional = metrics.daily_notional_by_action(orders, since_ts, until_ts)
    by_day = metrics.status_by_day(orders, since_ts, until_ts)
    latency = metrics.latency_stats(orders)
    tables = {
        "by_status": _by_status(orders),
        "slippage_by_token": slippage_by_token,
        "slippage_by_order_type": metrics.slippage_by(orders, "order_type"),
        "slippage_by_action": metrics.slippage_by(orders, "action"),
        "failure_reasons": metrics.failure_reasons(orders),
        "daily_notional": daily_notional,
        "status_by_day": by_day,
        "latency": stats_table([("count", latency.count), ("mean", latency.mean),
                                ("median", latency.median), ("p95", latency.p95),
                                ("max", latency.max)],
                               ["count", "seconds", "seconds", "seconds", "seconds"]),
    }

    tolerance = executed["slippage_bps"].astype("Float64").median()
    mean_by_token = slippage_by_token["slippage_bps_mean"].dropna()
    mean_by_token = mean_by_token.reindex(mean_by_token.abs().sort_values(ascending=False).index[:TOP_TOKENS])
    figures = {
        "slippage_histogram": plots.histogram(
            executed["slippage_actual"], title="Realized slippage of executed orders",
            xlabel="Slippage (bps, positive = worse for the trader)",
            marker=None if pd.isna(tolerance) else float(tolerance),
            marker_label=None if pd.isna(tolerance) else f"median tolerance ({float(tolerance):g} bps)"),
        "slippage_by_token": plots.horizontal_bars(
            pd.Series(mean_by_token.to_numpy(dtype="float64"), index=label_missing(mean_by_token.index)),
            title="Mean realized slippage by token (executed orders)",
            xlabel="Slippage (bps, positive = worse for the trader)", usd=False,
            higher_is_better=False),
        "daily_notional": plots.stacked_daily(
            daily_notional[["buy", "sell"]], title="Executed notional per day by action",
            ylabel="Notional (USD)", usd=True, colors=[plots.GAIN, plots.LOSS]),
        "status_over_time": plots.stacked_daily(
            by_day, title="Orders created per day by status", ylabel="Orders",
            colors=["#9a9a9a", plots.GAIN, plots.LOSS, "#e0a030"]),
        "latency_histogram": plots.histogram(
            metrics.latency_seconds(orders), title="Latency from creation to execution",
            xlabel="Latency (seconds)"),
    }
    return Report(name="execution", title="Order execution report", summary=summary,
                  tables=tables, figures=figures,
                  parameters=base_parameters(source, since_ts, until_ts, as_of_ts), notes=list(NOTES))


def _by_status(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders, share of all orders and notional_usd (exact sum of total_value) per status."""
    masks = [equals(orders["status"], status) for status in STATUSES]
    index = pd.Index(list(STATUSES), name="status", dtype="string")
    return pd.DataFrame({
        "orders": counts([int(m.sum()) for m in masks], index, "orders"),
        "share": nullable_floats([ratio(int(m.sum()), len(orders)) for m in masks], index, "share"),
        "notional_usd": money_series([money_sum(orders.loc[m, "total_value"]) for m in masks], index,
                                     "notional_usd"),
    }, index=index)
