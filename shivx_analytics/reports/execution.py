"""The order execution report: outcomes, fill rate, notional, slippage, latency, failures.

The window is half-open [since, until) on the orders' created_at: until defaults to the end of
as_of's UTC day (as_of: now), since to until - 30 days (docs/windows.md). Status is the orders'
status as stored. ``user_id`` and ``token`` filter the orders as load_orders does.

Two paths give the same report: the metrics functions over the loaded orders ("pandas"), or the
same aggregates computed in PostgreSQL by aggregates.execution_aggregates ("pushdown": no order
row is loaded; the histograms are drawn from bin counts). parameters["path"] records which ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import pandas as pd
from matplotlib.figure import Figure

from shivx_analytics import metrics, plots
from shivx_analytics.aggregates import Histogram, by_status_table, execution_aggregates, orders_window
from shivx_analytics.frames import load_orders
from shivx_analytics.metrics._common import Distribution, equals, float_or_none, money_sum
from shivx_analytics.metrics.execution import STATUSES

from ._common import empty_window_note, filter_values, filtered_path_note, label_missing, report_window, stats_table
from ._shape import Context, ReportShape, run
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
    filters = filter_values(user_id=user_id, token=token)
    shape: ReportShape[None, ExecutionInputs] = ReportShape(
        load=partial(_load, user_id=user_id, token=token), compute=_compute, assemble=_assemble,
        window_rows=orders_window)
    return run(shape, source, window, filters, pushdown=pushdown)


@dataclass(frozen=True, eq=False)
class ExecutionInputs:
    """The execution report's inputs, from the loaded orders or computed in PostgreSQL: the
    summary, latency and median tolerance, the tables, and the two histograms' data (the values,
    or their bins counted in the database)."""

    summary: dict[str, Any]
    latency: Distribution
    tolerance: float | None
    tables: dict[str, pd.DataFrame]
    slippage: pd.Series | Histogram
    latency_seconds: pd.Series | Histogram


def _load(context: Context, shared: None, *, user_id: Any, token: Any) -> ExecutionInputs:
    """The pandas path: the window's orders, loaded, handed to the metrics."""
    orders = cast(pd.DataFrame, load_orders(context.rows, since=context.since, until=context.until, user_id=user_id, token=token,
                         money="decimal"))
    executed = orders[equals(orders["status"], "executed")]
    return ExecutionInputs(
        summary=metrics.execution_summary(orders),
        latency=metrics.latency_stats(orders),
        tolerance=float_or_none(executed["slippage_bps"].astype("Float64").median()),
        tables={
            "by_status": _by_status(orders),
            "slippage_by_token": metrics.slippage_by(orders, "token"),
            "slippage_by_order_type": metrics.slippage_by(orders, "order_type"),
            "slippage_by_action": metrics.slippage_by(orders, "action"),
            "failure_reasons": metrics.failure_reasons(orders),
            "daily_notional": metrics.daily_notional_by_action(orders, context.since, context.until),
            "status_by_day": metrics.status_by_day(orders, context.since, context.until),
        },
        slippage=executed["slippage_actual"],
        latency_seconds=metrics.latency_seconds(orders),
    )


def _compute(context: Context, shared: None) -> ExecutionInputs:
    """The push-down path: the same aggregates computed in PostgreSQL (no order row is loaded)."""
    found = execution_aggregates(context.sql, context.since, context.until)
    return ExecutionInputs(
        summary=found.summary,
        latency=found.latency,
        tolerance=found.slippage_tolerance_median,
        tables={
            "by_status": found.by_status,
            "slippage_by_token": found.slippage_by_token,
            "slippage_by_order_type": found.slippage_by_order_type,
            "slippage_by_action": found.slippage_by_action,
            "failure_reasons": found.failure_reasons,
            "daily_notional": found.daily_notional,
            "status_by_day": found.status_by_day,
        },
        slippage=found.slippage_histogram,
        latency_seconds=found.latency_histogram,
    )


def _assemble(inputs: ExecutionInputs, context: Context) -> Report:
    summary, latency = inputs.summary, inputs.latency
    tables = dict(inputs.tables)
    tables["latency"] = stats_table([("count", latency.count), ("mean", latency.mean),
                                     ("median", latency.median), ("p95", latency.p95), ("max", latency.max)],
                                    ["count", "seconds", "seconds", "seconds", "seconds"])

    mean_by_token = tables["slippage_by_token"]["slippage_bps_mean"].dropna()
    mean_by_token = mean_by_token.reindex(mean_by_token.abs().sort_values(ascending=False).index[:TOP_TOKENS])
    figures = {
        "slippage_histogram": _histogram(inputs.slippage, **SLIPPAGE_HISTOGRAM,
                                         **_tolerance_marker(inputs.tolerance)),
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
        "latency_histogram": _histogram(inputs.latency_seconds, **LATENCY_HISTOGRAM),
    }
    notes = list(NOTES)
    if context.filters:
        notes.append(filtered_path_note(context.filters))
    if not summary["orders"]:
        notes.append(empty_window_note("orders", context.since, context.until, context.filters))
    return Report(name="execution", title="Order execution report", summary=summary, tables=tables,
                  figures=figures, parameters=context.parameters(), notes=notes, usernames=context.usernames)


def _histogram(data: pd.Series | Histogram, **labels: Any) -> Figure:
    """A histogram of the values, or of the bins the database counted (the same figure)."""
    if isinstance(data, Histogram):
        return plots.histogram_counts(*data, **labels)
    return plots.histogram(data, **labels)


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
