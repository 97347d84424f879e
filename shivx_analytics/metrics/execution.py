"""Order execution metrics: outcomes, slippage, latency, failure reasons, daily activity.

Conventions (DESIGN.md "Order"):
- slippage_actual is realized slippage in bps, positive = worse for the trader; slippage_bps is
  the tolerance. Slippage statistics use executed orders with a known slippage_actual.
- latency = executed_at - created_at of executed orders, in float seconds.
- total_value is the USD notional; sums are exact Decimal.
- Rates are floats; a rate without a denominator is None.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

import pandas as pd

from shivx_analytics.domain.enums import OrderAction, OrderStatus

from ._common import (
    ZERO,
    Distribution,
    counts,
    day_index,
    days_covering,
    distribution,
    equals,
    in_window,
    money_sum,
    money_sum_by,
    nullable_floats,
    ratio,
    require_columns,
    utc_day,
)

STATUSES = tuple(status.value for status in OrderStatus)  # pending, executed, failed, cancelled
ACTIONS = tuple(action.value for action in OrderAction)  # buy, sell
SLIPPAGE_BREAKDOWNS = ("token", "order_type", "action")
_ORDER_COLUMNS = ("order_id", "status", "created_at", "executed_at", "slippage_bps",
                  "slippage_actual", "total_value")


@dataclass(frozen=True)
class SlippageStats:
    """Realized slippage (bps) of executed orders; over_tolerance_rate = share of executed orders
    with known slippage_actual and slippage_bps where slippage_actual > slippage_bps."""

    executed: int
    slippage_bps: Distribution
    over_tolerance: int
    over_tolerance_rate: float | None


def execution_summary(orders: pd.DataFrame) -> dict[str, object]:
    """Headline execution figures.

    orders / executed / failed / cancelled / pending: counts by status; fill_rate = executed /
    (orders not pending), fail_rate and cancel_rate likewise (None when every order is pending);
    executed_notional: exact sum of total_value of executed orders (Decimal);
    slippage_bps_mean / _median / _p95 / _max and over_tolerance_rate: slippage_stats();
    latency_seconds_mean / _median / _p95: latency_stats().
    """
    require_columns(orders, _ORDER_COLUMNS, "orders")
    by_status = {status: int(equals(orders["status"], status).sum()) for status in STATUSES}
    executed = orders[equals(orders["status"], "executed")]
    return execution_summary_from(len(orders), by_status, money_sum(executed["total_value"]),
                                  slippage_stats(orders), latency_stats(orders))


def execution_summary_from(orders: int, by_status: dict[str, int], executed_notional: Decimal,
                           slippage: SlippageStats, latency: Distribution) -> dict[str, object]:
    """The execution_summary dict from its parts, however they were computed (loaded rows or
    PostgreSQL aggregates): the number of orders, the orders per status (in STATUSES order), the
    exact executed notional, slippage_stats() and latency_stats()."""
    settled = by_status["executed"] + by_status["failed"] + by_status["cancelled"]
    return {
        "orders": orders,
        **by_status,
        "fill_rate": ratio(by_status["executed"], settled),
        "fail_rate": ratio(by_status["failed"], settled),
        "cancel_rate": ratio(by_status["cancelled"], settled),
        "executed_notional": executed_notional,
        "slippage_bps_mean": slippage.slippage_bps.mean,
        "slippage_bps_median": slippage.slippage_bps.median,
        "slippage_bps_p95": slippage.slippage_bps.p95,
        "slippage_bps_max": slippage.slippage_bps.max,
        "over_tolerance_rate": slippage.over_tolerance_rate,
        "latency_seconds_mean": latency.mean,
        "latency_seconds_median": latency.median,
        "latency_seconds_p95": latency.p95,
    }


def slippage_stats(orders: pd.DataFrame) -> SlippageStats:
    """Distribution of slippage_actual (bps) over executed orders, and how often it exceeded the
    order's tolerance slippage_bps (orders missing either value are left out of that rate)."""
    require_columns(orders, ("status", "slippage_bps", "slippage_actual"), "orders")
    executed = orders[equals(orders["status"], "executed")]
    actual = executed["slippage_actual"].astype("Float64")
    tolerance = executed["slippage_bps"].astype("Float64")
    known = (actual.notna() & tolerance.notna()).to_numpy(dtype=bool)
    over = int((actual[known] > tolerance[known]).sum())
    return SlippageStats(
        executed=len(executed),
        slippage_bps=distribution(actual),
        over_tolerance=over,
        over_tolerance_rate=ratio(over, int(known.sum())),
    )


def slippage_by(orders: pd.DataFrame, by: str = "token") -> pd.DataFrame:
    """slippage_stats() per token, order_type or action, indexed by that key.

    Columns: executed, slippage_bps_mean, _median, _p95, _max, over_tolerance_rate (NA when
    absent). Rows in key order (category order for a categorical key, where every category is
    a row, with 0 executed when unused).
    """
    if by not in SLIPPAGE_BREAKDOWNS:
        raise ValueError(f"by must be one of {SLIPPAGE_BREAKDOWNS}, got {by!r}")
    require_columns(orders, (by,), "orders")
    rows = [(key, slippage_stats(group))
            for key, group in orders.groupby(by, observed=False, dropna=True, sort=True)]
    index = pd.Index([r[0] for r in rows], name=by, dtype=object)
    dtype = orders[by].dtype
    if isinstance(dtype, pd.CategoricalDtype):
        index = pd.CategoricalIndex(index, categories=dtype.categories, name=by)
    return slippage_table([r[1] for r in rows], index)


def slippage_table(stats: Sequence[SlippageStats], index: pd.Index) -> pd.DataFrame:
    """The slippage_by table from one slippage_stats() per row of ``index``, however they were
    computed (loaded rows or PostgreSQL aggregates)."""
    return pd.DataFrame({
        "executed": counts([s.executed for s in stats], index, "executed"),
        "slippage_bps_mean": nullable_floats([s.slippage_bps.mean for s in stats], index, ""),
        "slippage_bps_median": nullable_floats([s.slippage_bps.median for s in stats], index, ""),
        "slippage_bps_p95": nullable_floats([s.slippage_bps.p95 for s in stats], index, ""),
        "slippage_bps_max": nullable_floats([s.slippage_bps.max for s in stats], index, ""),
        "over_tolerance_rate": nullable_floats([s.over_tolerance_rate for s in stats], index, ""),
    }, index=index)


def latency_stats(orders: pd.DataFrame) -> Distribution:
    """Distribution of executed_at - created_at in seconds over executed orders (both set)."""
    require_columns(orders, ("status", "created_at", "executed_at"), "orders")
    return distribution(latency_seconds(orders))


def latency_seconds(orders: pd.DataFrame) -> pd.Series:
    """executed_at - created_at in float seconds per executed order (NaN when a time is missing)."""
    executed = orders[equals(orders["status"], "executed")]
    seconds = (executed["executed_at"] - executed["created_at"]).dt.total_seconds()
    return seconds.astype("float64").rename("latency_seconds")


def failure_reasons(orders: pd.DataFrame) -> pd.DataFrame:
    """Failed orders per failed_reason (a missing reason is "(none)"): reason, count, share of
    failed orders; ranked by count descending, then reason."""
    require_columns(orders, ("status", "failed_reason"), "orders")
    failed = orders[equals(orders["status"], "failed")]
    reasons = failed["failed_reason"].astype(object).where(failed["failed_reason"].notna(), "(none)")
    ranked = reasons.value_counts(sort=False).rename("count").rename_axis("reason").reset_index()
    ranked = ranked.sort_values(["count", "reason"], ascending=[False, True], kind="mergesort")
    ranked = ranked.reset_index(drop=True)
    ranked["reason"] = ranked["reason"].astype("string")
    ranked["count"] = ranked["count"].astype("Int64")
    ranked["share"] = nullable_floats([ratio(int(n), len(failed)) for n in ranked["count"]],
                                      ranked.index, "share")
    return ranked


def daily_notional_by_action(orders: pd.DataFrame, since: object, until: object) -> pd.DataFrame:
    """USD notional (exact sum of total_value) of executed orders per UTC day of executed_at and
    action, for every day of [since, until): columns buy, sell, total (MONEY_TOTAL), zeros kept."""
    require_columns(orders, ("status", "action", "executed_at", "total_value"), "orders")
    days = day_index(since, until)
    mask = equals(orders["status"], "executed") & in_window(orders["executed_at"], since, until)
    executed = orders[mask]
    frame = pd.DataFrame({
        "day": utc_day(executed["executed_at"]).astype("datetime64[us, UTC]"),
        "action": executed["action"].astype(object),
        "total_value": executed["total_value"],
    })
    table = pd.DataFrame(index=days)
    for action in ACTIONS:
        table[action] = _sum_per_day(frame[frame["action"] == action], days)
    table["total"] = _sum_per_day(frame, days)
    return table


def status_by_day(orders: pd.DataFrame, since: object = None, until: object = None) -> pd.DataFrame:
    """Orders created per UTC day (created_at in [since, until)) by status: one Int64 column per
    status, every day of the window (the span of the data when a bound is None), zeros kept."""
    require_columns(orders, ("status", "created_at"), "orders")
    created = orders[in_window(orders["created_at"], since, until)]
    days = days_covering(created["created_at"], since, until)
    day = utc_day(created["created_at"]).astype("datetime64[us, UTC]")
    table = pd.DataFrame(index=days)
    for status in STATUSES:
        per_day = day[equals(created["status"], status)].value_counts()
        table[status] = per_day.reindex(days, fill_value=0).astype("Int64")
    return table


def _sum_per_day(frame: pd.DataFrame, days: pd.DatetimeIndex) -> pd.Series:
    return money_sum_by(frame, "day", "total_value").reindex(days, fill_value=cast(Any, ZERO))  # stubs: no Decimal fill
