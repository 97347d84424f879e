"""The order execution report: outcomes, fill rate, notional, slippage, latency, failures.

The window is half-open [since, until) on the orders' created_at: until defaults to the end of
as_of's UTC day (as_of: now), since to until - 30 days (docs/windows.md). Status is the orders'
status as stored. ``user_id`` and ``token`` filter the orders as load_orders does.

Two paths give the same report: the metrics functions over the loaded orders ("pandas"), or the
same aggregates computed in PostgreSQL by aggregates.execution_aggregates ("pushdown": no order
row is loaded; the histograms are drawn from bin counts). parameters["path"] records which ran.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from shivx_analytics import metrics, plots
from shivx_analytics.aggregates import (
    by_status_table, choose_path, execution_aggregates, orders_window, read_connection,
)
from shivx_analytics.frames import load_orders
from shivx_analytics.metrics._common import equals, float_or_none, money_sum
from shivx_analytics.metrics.execution import STATUSES

from ._common import (
    base_parameters, empty_window_note, filter_values, filtered_path_note, label_missing, opened,
    report_window, stats_table, usernames,
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
SLIPPAGE_HISTOGRAM = {"title": "Realized slippage of executed orders",
                      "xlabel": "Slippage (bps, positive = worse for the trader)"}
LATENCY_HISTOGRAM = {"title": "Latency from creation to execution", "xlabel": "Latency (seconds)"}


def execution_report(source: Any = None, *, since: object = None, until: object = None,
                     as_of: object = None, user_id: Any = None, token: Any = None,
                     pushdown: bool | None = None) -> Report:
    """Execution quality of orders created in [since, until) (default: the 30 days up to the end
    of as_of's UTC day), optionally of some users (``user_id``) and tokens (``token``; one value
    or a list each, as load_orders takes them):
    summary, status, slippage, failure, notional, daily status and latency tables, and figures.

    pushdown: True computes the aggregates in PostgreSQL (no order row is loaded; an error on
    SQLite), False from the loaded orders, None as Settings.pushdown says (auto, always, never:
    see aggregates.choose_path). Both paths give the same report; ``parameters["path"]`` says
    which ran ("pandas" or "pushdown"); a filtered report is computed from the loaded orders.
    """
    window = report_window(since, until, as_of)
    since_ts, until_ts, as_of_ts = window.since, window.until, window.as_of
    filters = filter_values(user_id=user_id, token=token)
    with opened(source) as readable:
        names = usernames(readable)
        path = "pandas"
        if not filters:
            with read_connection(readable) as connection:
                path = choose_path(connection, pushdown=pushdown, use_views=False,
                                   window_rows=orders_window(since_ts, until_ts), views=False)
                if path == "pushdown":
                    found = execution_aggregates(connection, since_ts, until_ts)
        if path == "pandas":
            orders = load_orders(readable, since=since_ts, until=until_ts, user_id=user_id, token=token,
                                 money="decimal")

    if path == "pushdown":
        summary, latency, tolerance = found.summary, found.latency, found.slippage_tolerance_median
        tables = {
            "by_status": found.by_status,
            "slippage_by_token": found.slippage_by_token,
            "slippage_by_order_type": found.slippage_by_order_type,
            "slippage_by_action": found.slippage_by_action,
            "failure_reasons": found.failure_reasons,
            "daily_notional": found.daily_notional,
            "status_by_day": found.status_by_day,
        }
        slippage_histogram = plots.histogram_counts(*found.slippage_histogram, **SLIPPAGE_HISTOGRAM,
                                                    **_tolerance_marker(tolerance))
        latency_histogram = plots.histogram_counts(*found.latency_histogram, **LATENCY_HISTOGRAM)
    else:
        executed = orders[equals(orders["status"], "executed")]
        summary, latency = metrics.execution_summary(orders), metrics.latency_stats(orders)
        tolerance = float_or_none(executed["slippage_bps"].astype("Float64").median())
        tables = {
            "by_status": _by_status(orders),
            "slippage_by_token": metrics.slippage_by(orders, "token"),
            "slippage_by_order_type": metrics.slippage_by(orders, "order_type"),
            "slippage_by_action": metrics.slippage_by(orders, "action"),
            "failure_reasons": metrics.failure_reasons(orders),
            "daily_notional": metrics.daily_notional_by_action(orders, since_ts, until_ts),
            "status_by_day": metrics.status_by_day(orders, since_ts, until_ts),
        }
        slippage_histogram = plots.histogram(executed["slippage_actual"], **SLIPPAGE_HISTOGRAM,
                                             **_tolerance_marker(tolerance))
        latency_histogram = plots.histogram(metrics.latency_seconds(orders), **LATENCY_HISTOGRAM)
    tables["latency"] = stats_table([("count", latency.count), ("mean", latency.mean),
                                     ("median", latency.median), ("p95", latency.p95), ("max", latency.max)],
                                    ["count", "seconds", "seconds", "seconds", "seconds"])

    mean_by_token = tables["slippage_by_token"]["slippage_bps_mean"].dropna()
    mean_by_token = mean_by_token.reindex(mean_by_token.abs().sort_values(ascending=False).index[:TOP_TOKENS])
    figures = {
        "slippage_histogram": slippage_histogram,
        "slippage_by_token": plots.horizontal_bars(
            pd.Series(mean_by_token.to_numpy(dtype="float64"), index=label_missing(mean_by_token.index)),
            title="Mean realized slippage by token (executed orders)",
            xlabel="Slippage (bps, positive = worse for the trader)", usd=False,
            higher_is_better=False),
        "daily_notional": plots.stacked_daily(
            tables["daily_notional"][["buy", "sell"]], title="Executed notional per day by action",
            ylabel="Notional (USD)", usd=True, colors=[plots.GAIN, plots.LOSS]),
        "status_over_time": plots.stacked_daily(
            tables["status_by_day"], title="Orders created per day by status", ylabel="Orders",
            colors=["#9a9a9a", plots.GAIN, plots.LOSS, "#e0a030"]),
        "latency_histogram": latency_histogram,
    }
    parameters = {**base_parameters(source, since_ts, until_ts, as_of_ts, filters), "path": path}
    notes = list(NOTES)
    if filters:
        notes.append(filtered_path_note(filters))
    if not summary["orders"]:
        notes.append(empty_window_note("orders", since_ts, until_ts, filters))
    return Report(name="execution", title="Order execution report", summary=summary,
                  tables=tables, figures=figures, parameters=parameters, notes=notes, usernames=names)


def _tolerance_marker(tolerance: float | None) -> dict[str, Any]:
    """The median tolerance as the slippage histogram's reference line (none without one)."""
    if tolerance is None:
        return {"marker": None, "marker_label": None}
    return {"marker": tolerance, "marker_label": f"median tolerance ({tolerance:g} bps)"}


def _by_status(orders: pd.DataFrame) -> pd.DataFrame:
    """Orders, share of all orders and notional_usd (exact sum of total_value) per status."""
    masks = [equals(orders["status"], status) for status in STATUSES]
    return by_status_table([int(m.sum()) for m in masks], [money_sum(orders.loc[m, "total_value"]) for m in masks],
                           len(orders))
