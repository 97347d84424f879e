"""Report aggregates computed in PostgreSQL (push-down) or read from its materialized views.

The frames layer, like frames/: SQL in, typed DataFrames out, each the same frame the
metrics functions compute from loaded rows. Reports choose a path with ``choose_path`` and
never write SQL themselves.
"""

from ._common import PATHS, PushdownUnavailable, choose_path, read_connection
from .as_of import data_as_of, newest_row_time
from .audit import (
    api_request_rows,
    api_usage_summary,
    brute_force_suspects,
    event_type_breakdown,
    failed_logins_by_day,
    failed_logins_by_ip,
    failed_logins_by_user,
    failures_heatmap,
    key_utilization,
    keys_near_limit,
    lockouts,
    request_outcomes,
    requests_per_key_per_day,
    security_rows,
    security_summary,
    success_after_failures,
    top_endpoints,
)
from .orders import ExecutionAggregates, Histogram, by_status_table, execution_aggregates, orders_window
from .positions import closed_positions_rows, daily_realized_pnl, daily_realized_pnl_from_view
from .views import (
    VIEW_NAMES,
    has_views,
    load_user_statistics,
    refresh_views,
    requests_per_key_per_day_from_view,
)

__all__ = ["PATHS", "PushdownUnavailable", "choose_path", "read_connection", "data_as_of", "newest_row_time"]
__all__ += [  # audit.py: the security and API usage reports
    "api_request_rows", "api_usage_summary", "brute_force_suspects", "event_type_breakdown", "failed_logins_by_day",
    "failed_logins_by_ip", "failed_logins_by_user", "failures_heatmap", "key_utilization", "keys_near_limit",
    "lockouts", "request_outcomes", "requests_per_key_per_day", "security_rows", "security_summary",
    "success_after_failures", "top_endpoints",
]
__all__ += ["closed_positions_rows", "daily_realized_pnl", "daily_realized_pnl_from_view"]
__all__ += ["VIEW_NAMES", "has_views", "load_user_statistics", "refresh_views", "requests_per_key_per_day_from_view"]
__all__ += ["ExecutionAggregates", "Histogram", "by_status_table", "execution_aggregates", "orders_window"]
