"""shivx-analytics: the ShivX trading data layer and the analytics toolkit over it.

    import shivx_analytics as sx
    engine = sx.connect()            # SHIVX_DATABASE_URL, else ./shivx_demo.db
    sx.migrate()                     # alembic upgrade head
    sx.generate_demo_data(engine, seed=0, scale="small", as_of="2025-10-28")
    orders = sx.load_orders(engine, since="2025-10-01")
    as_of = sx.data_as_of(engine)    # the data's as_of (2025-10-28 here); reports default to now
    report = sx.pnl_report(engine, as_of=as_of, starting_capital=100_000, token="SOL")
"""

from shivx_analytics import aggregates
from shivx_analytics.aggregates import data_as_of
from shivx_analytics.audit_chain import verify_audit_chain
from shivx_analytics.db import connect, migrate
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.frames import load_api_keys, load_audit_logs, load_orders, load_positions, load_users
from shivx_analytics.reports import api_usage_report, execution_report, pnl_report, security_report

__version__ = "0.1.0"

__all__ = [
    "connect", "migrate", "__version__",
    "load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users",
    "pnl_report", "execution_report", "api_usage_report", "security_report",
    "generate_demo_data", "verify_audit_chain", "aggregates", "data_as_of",
]
