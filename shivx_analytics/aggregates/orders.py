"""The execution report's aggregates over the orders created in [since, until), computed in
PostgreSQL by four statements (activity per day and status, distributions of the executed
orders, slippage per token / order_type / action, histogram bins): no order row leaves the
database.

    with read_connection(engine) as connection:
        result = execution_aggregates(connection, since, until)
        result.summary, result.slippage_by_token, result.latency_histogram.counts, ...

Each result is what the metrics function returns from ``load_orders(source, since=since,
until=until)`` (same index, categories, columns, dtypes, None and NA), computed by SQL twins of
the frames' formulas:

- total_value: buy -> amount_in; executed sell with amount_out -> amount_out; else
  money(amount_in x price), rounded as the frames round (frames/schemas.py, _total_value).
- slippage_actual and latency as float8 (PostgreSQL converts NUMERIC to float8 correctly
  rounded, as the loaders do); latency = extract(epoch from executed_at - created_at), exact.
- days: UTC calendar days of timezone('UTC', t), whatever the session's TimeZone.
- means: avg over exact NUMERIC, medians and p95: percentile_cont (linear interpolation, numpy's
  default method). Floats can differ from numpy's in the last bits (numpy sums pairwise and
  interpolates from the upper neighbour past the midpoint); compare them to a relative 1e-12.
- histograms: numpy.histogram(values, bins=50): the edges are numpy's, computed from the
  sample's min and max; the counts come from width_bucket against those edges (a value on the
  last edge in the last bin).

The statements run on the caller's connection, in its transaction: a database written to
between them (under READ COMMITTED) can make the tables disagree by the rows written meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, NamedTuple, cast

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, RowMapping

from shivx_analytics.frames.arguments import _Window
from shivx_analytics.frames.query import _binder, _Query
from shivx_analytics.frames.schemas import ORDERS
from shivx_analytics.metrics._common import (
    Distribution,
    counts,
    day_index,
    float_or_none,
    money_series,
    money_sum,
    nullable_floats,
    ratio,
)
from shivx_analytics.metrics.execution import (
    ACTIONS,
    SLIPPAGE_BREAKDOWNS,
    STATUSES,
    SlippageStats,
    execution_summary_from,
    slippage_table,
)

from ._common import money, utc_date

__all__ = ["Histogram", "ExecutionAggregates", "execution_aggregates", "orders_window", "by_status_table",
           "HISTOGRAM_BINS"]

HISTOGRAM_BINS = 50
_QUANTILES = [0.5, 0.95]
_FLOAT: sa.Double[float] = sa.Double()
_FLOATS: ARRAY[float] = ARRAY(sa.Double())
_EXACT = sa.Numeric(asdecimal=True)
# Transaction-local settings for these statements (1M orders, this 2-core machine): JIT compiled
# each of them for 0.5-1.6 s, more than it saved; with the default 4MB work_mem the sorts of the
# percentiles and of the grouping sets spilled to disk (about 20 % slower than with 32MB).
_STATEMENT_SETTINGS = {"jit": "off", "work_mem": "32MB"}


class Histogram(NamedTuple):
    """What numpy.histogram(values, bins) returns, in the order plots.histogram_counts takes it
    (numpy returns counts first): ``edges`` of equal-width bins between the sample's min and max
    (one more than the bins) and the ``counts`` per bin (int64), the last bin closed; both empty
    for an empty sample."""

    edges: np.ndarray
    counts: np.ndarray


@dataclass(frozen=True)
class ExecutionAggregates:
    """Everything the execution report shows over one window, each as its metrics function
    returns it from the loaded orders: summary (execution_summary), by_status (by_status_table),
    slippage_by_token / _order_type / _action (slippage_by), failure_reasons, daily_notional
    (daily_notional_by_action), status_by_day, latency (latency_stats); slippage_tolerance_median:
    median slippage_bps of executed orders (None without any); the histograms of slippage_actual
    of executed orders and of latency seconds (HISTOGRAM_BINS bins)."""

    summary: dict[str, object]
    by_status: pd.DataFrame
    slippage_by_token: pd.DataFrame
    slippage_by_order_type: pd.DataFrame
    slippage_by_action: pd.DataFrame
    failure_reasons: pd.DataFrame
    daily_notional: pd.DataFrame
    status_by_day: pd.DataFrame
    latency: Distribution
    slippage_tolerance_median: float | None
    slippage_histogram: Histogram
    latency_histogram: Histogram


def orders_window(since: Any, until: Any) -> sa.Select:
    """SELECT order_id of the orders created in [since, until), the window as load_orders binds it
    (sa.DateTime(timezone=True) parameters): the ``window_rows`` of choose_path."""
    return _window_query(_Window.parse(since, until)).select(["order_id"], "postgresql", ordered=False)


def execution_aggregates(connection: Connection, since: Any, until: Any) -> ExecutionAggregates:
    """The execution report's aggregates over the orders created in [since, until), computed by
    PostgreSQL on ``connection`` (both bounds required, as load_orders and day_index take them)."""
    days = day_index(since, until)
    orders = _orders(_Window.parse(since, until))
    with _settings(connection, _STATEMENT_SETTINGS):
        activity = _Activity(connection.execute(_activity_statement(orders)).mappings().all(), days)
        executed = connection.execute(_executed_statement(orders)).mappings().one()
        breakdowns = _slippage_breakdowns(connection.execute(_breakdown_statement(orders)).mappings().all())
        slippage, latency = _slippage_stats(executed), _distribution(executed, "latency")
        histograms = _histograms(connection, orders, {
            "slippage": _edges(executed["slippage_min"], executed["slippage_max"], slippage.slippage_bps.count),
            "latency": _edges(executed["latency_min"], executed["latency_max"], latency.count),
        })
    counts_by_status = [activity.orders[status] for status in STATUSES]
    return ExecutionAggregates(
        summary=execution_summary_from(activity.total, activity.orders, activity.notional["executed"],
                                       slippage, latency),
        by_status=by_status_table(counts_by_status, [activity.notional[status] for status in STATUSES],
                                  activity.total),
        slippage_by_token=breakdowns["token"],
        slippage_by_order_type=breakdowns["order_type"],
        slippage_by_action=breakdowns["action"],
        failure_reasons=activity.failure_reasons(),
        daily_notional=activity.daily_notional(),
        status_by_day=activity.status_by_day(),
        latency=latency,
        slippage_tolerance_median=float_or_none(executed["tolerance_median"]),
        slippage_histogram=histograms["slippage"],
        latency_histogram=histograms["latency"],
    )


def by_status_table(orders: Sequence[int], notional: Sequence[Decimal], total: int) -> pd.DataFrame:
    """The report's by_status table from the orders and the exact sum of total_value per status
    (in STATUSES order) and the number of orders: orders (Int64), share of all orders (Float64,
    NA without orders), notional_usd (MONEY_TOTAL), indexed by status (string)."""
    index = pd.Index(list(STATUSES), name="status", dtype="string")
    return pd.DataFrame({
        "orders": counts(orders, index, "orders"),
        "share": nullable_floats([ratio(n, total) for n in orders], index, "share"),
        "notional_usd": money_series(notional, index, "notional_usd"),
    }, index=index)


# Statements ----------------------------------------------------------------------------------


@contextmanager
def _settings(connection: Connection, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` for the statements run inside (set_config, local to the transaction), then
    the values they had (after an error the transaction is rolled back, which restores them)."""
    previous = connection.execute(sa.select(*[sa.func.current_setting(name) for name in settings])).one()
    connection.execute(sa.select(*[sa.func.set_config(name, value, True) for name, value in settings.items()]))
    yield
    connection.execute(sa.select(*[sa.func.set_config(name, value, True) for name, value in zip(settings, previous)]))


def _window_query(window: _Window) -> _Query:
    query = _Query(ORDERS)
    query.window("created_at", window)
    return query


def _orders(window: _Window) -> sa.Subquery:
    """The orders of the window with the columns every statement reads (text keys, float8
    slippage and latency, exact total_value and latency, UTC days)."""
    t = ORDERS.table
    bind = _binder("postgresql")
    executed = t.c.status == bind("executed", "text")
    executed_in_window = sa.and_(executed, t.c.executed_at >= bind(window.since, "time"),
                                 t.c.executed_at < bind(window.until, "time"))
    latency = sa.type_coerce(sa.extract("epoch", t.c.executed_at - t.c.created_at), _EXACT)
    return sa.select(
        sa.type_coerce(t.c.status, sa.String()).label("status"),
        sa.type_coerce(t.c.action, sa.String()).label("action"),
        sa.type_coerce(t.c.order_type, sa.String()).label("order_type"),
        t.c.token.collate("C").label("token"),  # sorts by code point, not the locale's rules
        t.c.failed_reason,
        executed.label("executed"),
        sa.cast(t.c.slippage_bps, _FLOAT).label("tolerance"),
        sa.type_coerce(t.c.slippage_actual, _EXACT).label("slippage_exact"),
        sa.cast(t.c.slippage_actual, _FLOAT).label("slippage"),
        sa.case((executed, latency)).label("latency_exact"),
        sa.case((executed, sa.cast(latency, _FLOAT))).label("latency"),
        _total_value(t, bind).label("total_value"),
        utc_date(t.c.created_at).label("created_day"),
        sa.case((executed_in_window, utc_date(t.c.executed_at))).label("executed_day"),
    ).where(*[condition(t, bind) for condition in _window_query(window).conditions]).subquery("window_orders")


def _total_value(t: sa.Table, bind) -> sa.ColumnElement:
    """SQL twin of frames.schemas._total_value (Order.total_value)."""
    return sa.type_coerce(sa.case(
        (t.c.action == bind("buy", "text"), t.c.amount_in),
        (sa.and_(t.c.status == bind("executed", "text"), t.c.amount_out.is_not(None)), t.c.amount_out),
        else_=money(t.c.amount_in * t.c.price),
    ), _EXACT)


def _slippage_columns(o: sa.Subquery) -> list[sa.ColumnElement]:
    """slippage_stats() of the executed orders: their count, the distribution of slippage_actual
    (count, exact mean, median and p95, max, min) and the over-tolerance counts."""
    executed = o.c.executed
    known = sa.and_(executed, o.c.slippage.is_not(None), o.c.tolerance.is_not(None))
    return [
        sa.func.count().filter(executed).label("executed"),
        *_distribution_columns("slippage", o.c.slippage, o.c.slippage_exact, executed),
        sa.func.count().filter(sa.and_(known, o.c.slippage > o.c.tolerance)).label("over_tolerance"),
        sa.func.count().filter(known).label("known_tolerance"),
    ]


def _distribution_columns(name: str, value: sa.ColumnElement, exact: sa.ColumnElement,
                          where: sa.ColumnElement) -> list[sa.ColumnElement]:
    return [
        sa.func.count(value).filter(where).label(f"{name}_count"),
        sa.type_coerce(sa.func.avg(exact).filter(where), _EXACT).label(f"{name}_mean"),
        sa.type_coerce(sa.func.percentile_cont(sa.literal(_QUANTILES, _FLOATS)).within_group(value).filter(where),
                       _FLOATS).label(f"{name}_quantiles"),
        sa.func.max(value).filter(where).label(f"{name}_max"),
        sa.func.min(value).filter(where).label(f"{name}_min"),
    ]


def _executed_statement(o: sa.Subquery) -> sa.Select:
    """One row over the executed orders: slippage_stats(), the latency distribution (with min and
    max, for the histograms) and the median tolerance."""
    return sa.select(
        *_slippage_columns(o),
        *_distribution_columns("latency", o.c.latency, o.c.latency_exact, o.c.executed),
        sa.type_coerce(sa.func.percentile_cont(0.5).within_group(o.c.tolerance).filter(o.c.executed), _FLOAT)
        .label("tolerance_median"),
    ).where(o.c.executed)


def _breakdown_statement(o: sa.Subquery) -> sa.Select:
    """slippage_stats() per token, per order_type and per action (one grouping set each)."""
    keys = [o.c[by] for by in SLIPPAGE_BREAKDOWNS]
    return (sa.select(*[sa.func.grouping(key).label(f"by_{key.name}") for key in keys], *keys,
                      *_slippage_columns(o))
            .group_by(sa.func.grouping_sets(*[sa.tuple_(key) for key in keys])))


def _activity_statement(o: sa.Subquery) -> sa.Select:
    """Orders and their exact notional per created day, status, executed day (executed in the
    window, else null), action and failed_reason: a few thousand rows at most, from which
    _Activity derives the status, daily and failure tables."""
    keys = [o.c.created_day, o.c.status, o.c.executed_day, o.c.action, o.c.failed_reason]
    return sa.select(*keys, sa.func.count().label("orders"), sa.func.sum(o.c.total_value).label("notional")
                     ).group_by(*keys)


def _histograms(connection: Connection, o: sa.Subquery, edges: dict[str, np.ndarray]) -> dict[str, Histogram]:
    """Histogram of each float column of ``o`` named in ``edges`` over the executed orders, with
    those bin edges (no bins where the edges are empty). One statement counts the orders per
    combination of bins (at most 50 x 50 rows; a plain GROUP BY, hashed), summed here per column."""
    counts = {name: np.zeros(max(len(e) - 1, 0), dtype=np.int64) for name, e in edges.items()}
    binned = [name for name, e in edges.items() if len(e)]
    if binned:
        # width_bucket(value, lower edges) counts the lower edges <= value: the bin number, the
        # last bin closed since no value exceeds the sample's max (a null value has no bin).
        lower_edges = {name: sa.bindparam(f"{name}_edges", edges[name][:-1].tolist(), type_=_FLOATS)
                       for name in binned}
        keys = [sa.func.width_bucket(o.c[name], lower_edges[name]).label(name) for name in binned]
        bins = sa.select(*keys).where(o.c.executed).subquery("bins")
        statement = sa.select(*bins.c, sa.func.count().label("n")).group_by(*bins.c)
        for row in connection.execute(statement).mappings():
            for name in binned:
                if row[name] is not None:
                    counts[name][row[name] - 1] += row["n"]
    return {name: Histogram(edges[name], counts[name]) for name in edges}


# Rows -> frames ------------------------------------------------------------------------------


def _distribution(row: RowMapping, name: str) -> Distribution:
    count = int(row[f"{name}_count"])
    if count == 0:
        return Distribution(0, None, None, None, None)
    median, p95 = row[f"{name}_quantiles"]
    return Distribution(count=count, mean=float_or_none(row[f"{name}_mean"]), median=float_or_none(median),
                        p95=float_or_none(p95), max=float_or_none(row[f"{name}_max"]))


def _slippage_stats(row: RowMapping) -> SlippageStats:
    over = int(row["over_tolerance"])
    return SlippageStats(executed=int(row["executed"]), slippage_bps=_distribution(row, "slippage"),
                         over_tolerance=over, over_tolerance_rate=ratio(over, int(row["known_tolerance"])))


def _slippage_breakdowns(rows: Sequence[RowMapping]) -> dict[str, pd.DataFrame]:
    """slippage_by(orders, by) for each breakdown: keys in sorted order, or every category."""
    tables = {}
    for by in SLIPPAGE_BREAKDOWNS:
        found = {row[by]: _slippage_stats(row) for row in rows if row[f"by_{by}"] == 0 and row[by] is not None}
        categories = ORDERS.column(by).categories
        if categories:
            empty = SlippageStats(0, Distribution(0, None, None, None, None), 0, None)
            keys = list(categories)
            stats = [found.get(key, empty) for key in keys]
            index: pd.Index = pd.CategoricalIndex(keys, categories=pd.CategoricalDtype(list(categories)).categories, name=by)
        else:
            keys = sorted(found)
            stats = [found[key] for key in keys]
            index = pd.Index(keys, name=by, dtype=object)
        tables[by] = slippage_table(stats, index)
    return tables


class _Activity:
    """The rows of _activity_statement, summed per table (money exact, at 60 digits)."""

    def __init__(self, rows: Sequence[RowMapping], days: pd.DatetimeIndex):
        self.days = days
        self.orders = {status: sum(int(r["orders"]) for r in rows if r["status"] == status) for status in STATUSES}
        self.total = sum(self.orders.values())
        self.notional = {status: money_sum([r["notional"] for r in rows if r["status"] == status])
                         for status in STATUSES}
        self.rows = rows

    def status_by_day(self) -> pd.DataFrame:
        """metrics.status_by_day: orders per UTC day of created_at and status (Int64 columns)."""
        table = pd.DataFrame(index=self.days)
        for status in STATUSES:
            per_day = self._per_day("created_day", lambda r: r["status"] == status, lambda r: int(r["orders"]))
            table[status] = pd.Series([sum(v) for v in per_day], index=self.days, dtype="Int64")
        return table

    def daily_notional(self) -> pd.DataFrame:
        """metrics.daily_notional_by_action: executed notional per UTC day of executed_at and
        action, and their total (MONEY_TOTAL columns)."""
        table = pd.DataFrame(index=self.days)
        for action in ACTIONS:
            per_day = self._per_day("executed_day", lambda r: r["action"] == action, lambda r: r["notional"])
            table[action] = money_series([money_sum(v) for v in per_day], self.days, action)
        per_day = self._per_day("executed_day", lambda r: True, lambda r: r["notional"])
        table["total"] = money_series([money_sum(v) for v in per_day], self.days, "total")
        return table

    def failure_reasons(self) -> pd.DataFrame:
        """metrics.failure_reasons: failed orders per reason (a missing one is "(none)"), ranked
        by count descending, then reason."""
        reasons: dict[str, int] = {}
        for row in self.rows:
            if row["status"] == "failed":
                reason = "(none)" if row["failed_reason"] is None else row["failed_reason"]
                reasons[reason] = reasons.get(reason, 0) + int(row["orders"])
        ranked = sorted(reasons.items(), key=lambda item: (-item[1], item[0]))
        table = pd.DataFrame({
            "reason": pd.Series([reason for reason, _ in ranked], dtype="string"),
            "count": pd.Series([n for _, n in ranked], dtype="Int64"),
        })
        table["share"] = nullable_floats([ratio(n, self.orders["failed"]) for _, n in ranked], table.index, "share")
        return table

    def _per_day(self, day: str, keep: Callable[[RowMapping], bool],
                 value: Callable[[RowMapping], Any]) -> list[list[Any]]:
        """value(row) of the kept rows, listed per day of the window (by the row's ``day``)."""
        position = {d.date(): i for i, d in enumerate(self.days)}
        out: list[list[Any]] = [[] for _ in self.days]
        for row in self.rows:
            if row[day] is not None and keep(row):
                out[position[row[day]]].append(value(row))
        return out


def _edges(low: float | None, high: float | None, count: int) -> np.ndarray:
    """numpy.histogram's bin edges for a sample with this min and max (empty without values)."""
    if count == 0:
        return np.empty(0, dtype="float64")
    return np.histogram_bin_edges(np.empty(0, dtype="float64"), bins=HISTOGRAM_BINS, range=(cast(float, low), cast(float, high)))
