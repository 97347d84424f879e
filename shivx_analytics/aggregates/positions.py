"""The P&L daily series computed in PostgreSQL, from the positions table or from the
materialized view mv_daily_trading_performance.

Both return what metrics.daily_realized_pnl returns from loaded positions: a MONEY_TOTAL Series
named realized_pnl, indexed by every UTC day of [since, until) (name ``day``), zero days kept;
each position's pnl is rounded half to even to 8 places before the exact NUMERIC sum, as the
loaders round it.
"""

from __future__ import annotations

from datetime import date
from typing import cast

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics.metrics._common import ZERO, day_index, money_series
from shivx_analytics.models import Position, PositionStatus

from ._common import instant, money, split_days, utc_date

REALIZED = (PositionStatus.CLOSED.value, PositionStatus.LIQUIDATED.value)
_POSITIONS = Position.__table__


def closed_positions_rows(since: object, until: object) -> sa.Select:
    """The closed and liquidated positions with closed_at in [since, until) (``window_rows``)."""
    p = _POSITIONS
    return sa.select(sa.literal(1)).select_from(p).where(
        p.c.status.in_(REALIZED), p.c.closed_at >= instant(since, "since"), p.c.closed_at < instant(until, "until"))


def daily_realized_pnl(connection: Connection, since: object, until: object) -> pd.Series:
    """metrics.daily_realized_pnl, summed per UTC day of closed_at in PostgreSQL."""
    p = _POSITIONS
    day = utc_date(p.c.closed_at).label("day")
    pnl = money(p.c.size * (p.c.current_price - p.c.entry_price))
    statement = (sa.select(day, sa.func.sum(pnl)).select_from(p)
                 .where(p.c.status.in_(REALIZED), p.c.closed_at >= instant(since, "since"),
                        p.c.closed_at < instant(until, "until"))
                 .group_by(day))
    return _daily_series(dict(connection.execute(statement).all()), since, until)


def daily_realized_pnl_from_view(connection: Connection, since: object, until: object) -> pd.Series:
    """metrics.daily_realized_pnl from mv_daily_trading_performance for the whole UTC days of
    [since, until); a day the window covers only in part (a bound not at midnight) is summed
    from the positions table, so the result equals the direct path's whatever the window."""
    split = split_days(since, until)
    sums: dict[date, object] = {}
    if split.whole_days:
        view = sa.table("mv_daily_trading_performance", sa.column("day", sa.Date()),
                        sa.column("realized_pnl", sa.Numeric()))
        statement = (sa.select(view.c.day, sa.func.sum(view.c.realized_pnl)).group_by(view.c.day)
                     .where(view.c.day >= split.first_day, view.c.day < split.end_day))
        sums.update(connection.execute(statement).all())
    for start, stop in split.partial:
        partial = daily_realized_pnl(connection, start, stop)
        sums.update({cast(pd.Timestamp, k).date(): v for k, v in partial.items() if v != ZERO})
    return _daily_series(sums, since, until)


def _daily_series(sums: dict, since: object, until: object) -> pd.Series:
    days = day_index(since, until)
    by_day = {pd.Timestamp(day, tz="UTC"): value for day, value in sums.items()}
    return money_series([by_day.get(day, ZERO) or ZERO for day in days], days, "realized_pnl")
