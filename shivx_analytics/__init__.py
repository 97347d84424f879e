"""shivx-analytics: the ShivX trading data layer and the analytics toolkit over it.

    import shivx_analytics as sx
    engine = sx.connect()            # SHIVX_DATABASE_URL, else ./shivx_demo.db
    sx.migrate()                     # alembic upgrade head
"""

from shivx_analytics.db import connect, migrate

__version__ = "0.1.0"

__all__ = ["connect", "migrate", "__version__"]
