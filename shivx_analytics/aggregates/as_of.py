"""The as_of the data describes: where notebooks and ``shivx-analytics demo`` start when no
as_of is given (docs/windows.md).

A demo database seeded at as_of D holds rows up to just before D, so ``data_as_of`` gives D
back; a live database gives now (its newest rows are today's).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa

from shivx_analytics.domain.window import now
from shivx_analytics.models import Order, Position, SecurityAuditLog

from ._common import read_connection

__all__ = ["data_as_of", "newest_row_time"]


def newest_row_time(source: Any = None) -> datetime | None:
    """The latest of orders.created_at, positions.opened_at and closed_at and the audit log's
    timestamp (aware UTC); None for a database without rows. One statement, four max()es (each
    answered by its column's index). ``source``: Engine, Connection, Session, URL, or None for
    the analytics database (db.analytics_url())."""
    if source is None:
        from shivx_analytics import db

        source = db.analytics_url()
    orders, positions, audit = Order.__table__, Position.__table__, SecurityAuditLog.__table__
    newest = [sa.select(sa.func.max(column)).scalar_subquery() for column in (
        orders.c.created_at, positions.c.opened_at, positions.c.closed_at, audit.c.timestamp)]
    with read_connection(source) as connection:
        found = connection.execute(sa.select(*newest)).one()
    times = [t if t.tzinfo else t.replace(tzinfo=timezone.utc) for t in found if t is not None]
    return max(times).astimezone(timezone.utc) if times else None


def data_as_of(source: Any = None, *, current: datetime | None = None) -> datetime | None:
    """The start of the UTC day after the newest row (newest_row_time), or now if that is
    later (a future as_of is refused: docs/windows.md); None for a database without rows.

    The as_of a demo database was seeded at (when that was a UTC midnight, as the demo's default
    is): reports over it then show its data, whenever they run."""
    newest = newest_row_time(source)
    if newest is None:
        return None
    day_after = datetime.combine(newest.date(), datetime.min.time(), timezone.utc) + timedelta(days=1)
    return min(day_after, now() if current is None else current)
