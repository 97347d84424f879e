"""shivx-analytics: the ShivX trading data layer and the analytics toolkit over it.

    import shivx_analytics as sx
    engine = sx.connect()            # SHIVX_DATABASE_URL, else ./shivx_demo.db
    sx.migrate()                     # alembic upgrade head
    sx.generate_demo_data(engine, seed=0, scale="small", as_of="2025-10-28")
    orders = sx.load_orders(engine, since="2025-10-01")
    report = sx.pnl_report(engine, as_of="2025-10-28", starting_capital=100_000)

The public names are imported on first use (PEP 562), so `import shivx_analytics` and the CLI's
--help stay fast: pandas, pyarrow, SQLAlchemy and matplotlib load only when a name needs them.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it (a subpackage for "aggregates")
_LAZY = {
    "connect": "shivx_analytics.db",
    "migrate": "shivx_analytics.db",
    "load_positions": "shivx_analytics.frames",
    "load_orders": "shivx_analytics.frames",
    "load_audit_logs": "shivx_analytics.frames",
    "load_api_keys": "shivx_analytics.frames",
    "load_users": "shivx_analytics.frames",
    "pnl_report": "shivx_analytics.reports",
    "execution_report": "shivx_analytics.reports",
    "api_usage_report": "shivx_analytics.reports",
    "security_report": "shivx_analytics.reports",
    "generate_demo_data": "shivx_analytics.demo",
    "verify_audit_chain": "shivx_analytics.audit_chain",
    "aggregates": "shivx_analytics.aggregates",
}

__all__ = [
    "connect", "migrate", "__version__",
    "load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users",
    "pnl_report", "execution_report", "api_usage_report", "security_report",
    "generate_demo_data", "verify_audit_chain", "aggregates",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ imports on demand
    from shivx_analytics import aggregates
    from shivx_analytics.audit_chain import verify_audit_chain
    from shivx_analytics.db import connect, migrate
    from shivx_analytics.demo import generate_demo_data
    from shivx_analytics.frames import load_api_keys, load_audit_logs, load_orders, load_positions, load_users
    from shivx_analytics.reports import api_usage_report, execution_report, pnl_report, security_report


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None and not name.startswith("__") and importlib.util.find_spec(f"{__name__}.{name}"):
        module_name = f"{__name__}.{name}"  # a submodule, as `sx.db` was when this file imported them all
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value  # looked up once: later accesses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
