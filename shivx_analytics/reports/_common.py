"""What the four reports share: the source they read, their time window, their parameters.

Reports never write SQL: they open the source once, call the frames loaders with the window
pushed down, and hand the frames to the metrics functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import db
from shivx_analytics.metrics._common import optional_timestamp, timestamp

DEFAULT_LOOKBACK = pd.Timedelta(days=30)


@contextmanager
def opened(source: Any) -> Iterator[Engine | Connection | Session]:
    """The source as the loaders take it; a URL becomes one engine for the whole report, and so
    does None: the analytics database (db.analytics_url(): SHIVX_ANALYTICS_DATABASE_URL, else
    SHIVX_DATABASE_URL, else the local SQLite file)."""
    if isinstance(source, (Engine, Connection, Session)):
        yield source
        return
    if source is not None and not isinstance(source, (str, URL)):
        raise TypeError(
            f"source must be a SQLAlchemy Engine, Connection, Session or a database URL, "
            f"got {type(source).__name__}"
        )
    engine = db.create_engine(db.analytics_url(source))
    try:
        yield engine
    finally:
        engine.dispose()


def database_label(source: Any) -> str:
    """The database URL of a source with our driver named (as the engine shows it), password
    masked (never the password itself)."""
    if isinstance(source, Engine):
        url = source.url
    elif isinstance(source, Connection):
        url = source.engine.url
    elif isinstance(source, Session):
        bind = source.get_bind()
        url = bind.engine.url if isinstance(bind, Connection) else bind.url
    else:
        url = db.normalize_url(db.analytics_url(source))
    return db.mask_url(url)


def resolve_as_of(as_of: object) -> pd.Timestamp:
    """as_of as an aware UTC Timestamp; now (UTC, to the microsecond) when None."""
    if as_of is None:
        return pd.Timestamp(dt.datetime.now(dt.timezone.utc))
    return timestamp(as_of, "as_of")


def trailing_window(since: object, until: object, as_of: pd.Timestamp,
                    lookback: pd.Timedelta = DEFAULT_LOOKBACK) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[since, until) of the execution, API usage and security reports: until defaults to as_of,
    since to until - 30 days. Raises ValueError when since is not before until."""
    until_ts = optional_timestamp(until, "until")
    until_ts = as_of if until_ts is None else until_ts
    since_ts = optional_timestamp(since, "since")
    since_ts = until_ts - lookback if since_ts is None else since_ts
    check_window(since_ts, until_ts)
    return since_ts, until_ts


def check_window(since: pd.Timestamp, until: pd.Timestamp) -> None:
    """A window must not end before it starts (an empty window, since == until, is allowed)."""
    if until < since:
        raise ValueError(
            f"until ({until.isoformat()}) is before since ({since.isoformat()}): "
            "pass a window [since, until) with since <= until"
        )


def base_parameters(source: Any, since: pd.Timestamp, until: pd.Timestamp,
                    as_of: pd.Timestamp) -> dict[str, Any]:
    """The parameters every report records (database URL with the password masked)."""
    return {"since": since, "until": until, "as_of": as_of, "database": database_label(source)}


def stats_table(rows: list[tuple[str, object]], unit_column: list[str] | None = None) -> pd.DataFrame:
    """A two-column statistic / value table (values keep their type: Decimal, float, int, None)."""
    table = pd.DataFrame({
        "statistic": pd.Series([r[0] for r in rows], dtype="string"),
        "value": pd.Series([r[1] for r in rows], dtype=object),
    })
    if unit_column is not None:
        table["unit"] = pd.Series(unit_column, dtype="string")
    return table


def label_missing(index: pd.Index, missing: str = "(none)") -> list[str]:
    """Index values as plot labels, a missing key shown as `missing`."""
    return [missing if pd.isna(v) else str(v) for v in index]
