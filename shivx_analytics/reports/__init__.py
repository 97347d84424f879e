"""Report objects: metrics + tables + figures, shown in notebooks and exported to HTML/JSON/CSV.

    import shivx_analytics as sx
    report = sx.pnl_report(engine, as_of="2025-10-28", starting_capital=100_000)
    report.summary["total_pnl"]          # exact Decimal
    report.tables["daily"]               # DataFrame
    report.figures["equity_and_drawdown"]
    report.to_html("pnl.html"); report.to_json("pnl.json"); report.to_csv("pnl_csv/")

Each report function takes a source (Engine, Connection, Session or URL; by default the analytics
database, SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL) and a window; reports
read through the frames loaders and the aggregates and never write SQL.

Every report has one shape (_shape.py): typed inputs (a dataclass), filled by exactly one of two
builders, ``load`` (the window's rows, loaded, computed with metrics) or ``compute`` (the same
computed in the database with aggregates: push-down or the materialized views), then one
assembly into the Report. The driver, ``_shape.run``, opens the source once for the whole
report, chooses the path (aggregates.choose_path; filters force the pandas path), bypasses stale
views, calls the builder, then the assembly. Adding a report means writing one inputs type, its
two builders and its assembly (docs/development.md, "Adding a report").
"""

from .api_usage import api_usage_report
from .base import Report
from .execution import execution_report
from .pnl import pnl_report
from .security import security_report

__all__ = ["Report", "api_usage_report", "execution_report", "pnl_report", "security_report"]
