"""The one shape of every report: typed inputs, filled by exactly one of two builders, then one
assembly into the Report (docs/development.md, "Adding a report").

    inputs = load(context)      # "pandas": load the window's rows, compute with metrics
    inputs = compute(context)   # "pushdown" / "views": compute in the database with aggregates
    report = assemble(inputs, context)

``run`` is the driver: it opens the source once for the whole report (``opened``: every loader
and aggregate reads through it), chooses the path (aggregates.choose_path; a filtered report
takes the pandas path), checks that the materialized views a "views" path would read are fresh
(a stale one is bypassed: the report is computed by push-down and says so), calls the builder,
then the assembly. Every figure of a report thus comes from one path over one opened source.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Generic, TypeVar

import pandas as pd
from sqlalchemy.engine import Connection

from shivx_analytics import aggregates
from shivx_analytics.aggregates.views import ViewFreshness, view_freshness

from ._common import ReportWindow, base_parameters, opened, usernames
from .base import Report

Shared = TypeVar("Shared")
Inputs = TypeVar("Inputs")

STALE_VIEWS_NOTE = ("Materialized views stale ({views}): every figure was computed by push-down from the "
                    "tables instead; `shivx-analytics db refresh-views` refreshes them (docs/operations.md).")


@dataclass(frozen=True)
class Context:
    """What builders and assemblies read: the opened source (``rows`` for the loaders, ``sql``, the
    same source as one Connection, for the aggregates), the window, the filters given, the path
    chosen, the stale views bypassed and the users' names."""

    source: Any
    rows: Any
    sql: Connection
    window: ReportWindow
    filters: dict[str, object]
    path: str = "pandas"
    stale_views: tuple[ViewFreshness, ...] = ()
    usernames: dict[str, str] | None = None

    @property
    def since(self) -> pd.Timestamp:
        if self.window.since is None:
            raise ValueError("the report's since is not settled yet (ReportShape.shared settles it)")
        return self.window.since

    @property
    def until(self) -> pd.Timestamp:
        return self.window.until

    @property
    def as_of(self) -> pd.Timestamp:
        return self.window.as_of

    def parameters(self, **extra: Any) -> dict[str, Any]:
        """base_parameters, then ``extra``, then the path (and the views bypassed, if any)."""
        recorded = {**base_parameters(self.source, self.since, self.until, self.as_of, self.filters),
                    **extra, "path": self.path}
        if self.stale_views:
            recorded["stale_views"] = [view.view for view in self.stale_views]
        return recorded

    def path_notes(self) -> list[str]:
        """The note saying which views were stale and bypassed (none when none were)."""
        if not self.stale_views:
            return []
        return [STALE_VIEWS_NOTE.format(views="; ".join(view.describe() for view in self.stale_views))]


@dataclass(frozen=True)
class ReportShape(Generic[Shared, Inputs]):
    """A report: its two builders, its assembly, and what the driver needs to choose the path.

    - ``load(context, shared)``: the pandas path's inputs (rows loaded, metrics computed).
    - ``compute(context, shared)``: the same inputs computed in the database (push-down or views).
    - ``assemble(inputs, context)``: the Report (tables, figures, notes, parameters).
    - ``window_rows(since, until)``: a query of the window on the report's main table, whose
      planner estimate decides push-down in auto mode (aggregates.choose_path).
    - ``views``: the materialized views ``compute`` reads on the "views" path (none: no such path).
    - ``shared(context)``: what both builders read, loaded once before the path is chosen, with
      the context it settles (the P&L report's default since comes from its positions); by
      default nothing.
    """

    load: Callable[[Context, Shared], Inputs]
    compute: Callable[[Context, Shared], Inputs]
    assemble: Callable[[Inputs, Context], Report]
    window_rows: Callable[[pd.Timestamp, pd.Timestamp], Any]  # aggregates' query counting the window's rows
    views: tuple[str, ...] = ()
    shared: Callable[[Context], tuple[Shared, Context]] | None = None


def run(shape: ReportShape[Shared, Inputs], source: Any, window: ReportWindow, filters: dict[str, object], *,
        pushdown: bool | None, use_views: bool | None = False) -> Report:
    """The report ``shape`` describes over ``window``: one opened source, one path, one builder,
    one assembly (module docstring)."""
    with opened(source) as rows, aggregates.read_connection(rows) as sql:
        context = Context(source=source, rows=rows, sql=sql, window=window, filters=filters,
                          usernames=usernames(rows))
        shared: Any = None
        if shape.shared is not None:
            shared, context = shape.shared(context)
        context = _with_path(shape, context, pushdown=pushdown, use_views=use_views)
        build = shape.load if context.path == "pandas" else shape.compute
        inputs = build(context, shared)
    return shape.assemble(inputs, context)


def _with_path(shape: ReportShape[Any, Any], context: Context, *, pushdown: bool | None,
               use_views: bool | None) -> Context:
    """The context with its path: pandas when filtered, else aggregates.choose_path; a "views"
    path whose views are stale for the window becomes "pushdown", the stale views recorded."""
    if context.filters:
        return context
    path = aggregates.choose_path(context.sql, pushdown=pushdown, use_views=use_views,
                                  window_rows=shape.window_rows(context.since, context.until),
                                  views=bool(shape.views))
    stale: tuple[ViewFreshness, ...] = ()
    if path == "views":
        checked = [view_freshness(context.sql, name, context.since, context.until) for name in shape.views]
        stale = tuple(view for view in checked if view.stale)
        if stale:
            path = "pushdown"
    return replace(context, path=path, stale_views=stale)
