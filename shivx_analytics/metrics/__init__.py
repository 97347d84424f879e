"""Metrics: pure functions on the frames loaders return (no SQL, no I/O, no plotting).

Money comes out exact (Decimal, 8 dp, ROUND_HALF_EVEN; MONEY_TOTAL columns in frames), ratios
as floats, figures that cannot exist as None. Windows are half-open UTC [since, until).

    from shivx_analytics import metrics
    daily = metrics.daily_realized_pnl(positions, since, until)
    metrics.pnl_summary(positions, since=since, until=until, starting_capital=10_000)
"""

from ._common import MONEY, MONEY_TOTAL, Distribution, quantize
from .api_usage import (
    RequestOutcomes,
    api_requests,
    api_usage_summary,
    key_hygiene,
    key_utilization,
    keys_near_limit,
    keys_per_user,
    request_outcomes,
    requests_per_key_per_day,
    top_endpoints,
)
from .execution import (
    SlippageStats,
    daily_notional_by_action,
    execution_summary,
    failure_reasons,
    latency_seconds,
    latency_stats,
    slippage_by,
    slippage_stats,
    status_by_day,
)
from .fifo import (
    FifoResult,
    fifo_realized_pnl,
    reconcile_fifo_with_positions,
)
from .pnl import (
    PnlWindow,
    TradeStats,
    cumulative_pnl_by,
    daily_realized_pnl,
    payoff_ratio,
    pnl_by,
    pnl_summary,
    pnl_window,
    ratio_notes,
    realized_positions,
    trade_stats,
    triggered_exits,
    unrealized_positions,
    win_rate,
)
from .security import (
    brute_force_suspects,
    event_type_breakdown,
    failed_logins,
    failed_logins_by_day,
    failed_logins_by_ip,
    failed_logins_by_user,
    failures_heatmap,
    locked_users,
    lockouts,
    security_summary,
    success_after_failures,
)
from .tearsheet import (
    DAYS_PER_YEAR,
    MIN_DAYS_FOR_RATIOS,
    ROLLING_DAYS,
    Drawdown,
    cagr_pct,
    calmar,
    daily_returns,
    drawdown,
    drawdown_periods,
    equity_curve,
    monthly_heatmap,
    pnl_by_period,
    return_pct,
    rolling_ratios,
    sharpe,
    sortino,
    volatility,
    volatility_pct,
)

__all__ = [
    # shared
    "MONEY", "MONEY_TOTAL", "Distribution", "quantize",
    # pnl
    "DAYS_PER_YEAR", "MIN_DAYS_FOR_RATIOS", "ROLLING_DAYS", "Drawdown", "FifoResult", "PnlWindow",
    "TradeStats", "cagr_pct", "calmar", "cumulative_pnl_by", "daily_realized_pnl", "daily_returns",
    "drawdown", "drawdown_periods", "equity_curve", "fifo_realized_pnl", "monthly_heatmap",
    "payoff_ratio", "pnl_by", "pnl_by_period", "pnl_summary", "pnl_window", "ratio_notes",
    "realized_positions", "reconcile_fifo_with_positions", "return_pct", "rolling_ratios", "sharpe",
    "sortino", "trade_stats", "triggered_exits", "unrealized_positions", "volatility",
    "volatility_pct", "win_rate",
    # execution
    "SlippageStats", "daily_notional_by_action", "execution_summary", "failure_reasons",
    "latency_seconds", "latency_stats", "slippage_by", "slippage_stats", "status_by_day",
    # api usage
    "RequestOutcomes", "api_requests", "api_usage_summary", "key_hygiene", "key_utilization",
    "keys_near_limit", "keys_per_user", "request_outcomes", "requests_per_key_per_day",
    "top_endpoints",
    # security
    "brute_force_suspects", "event_type_breakdown", "failed_logins", "failed_logins_by_day",
    "failed_logins_by_ip", "failed_logins_by_user", "failures_heatmap", "locked_users",
    "lockouts", "security_summary", "success_after_failures",
]
