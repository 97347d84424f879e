"""What the four reports share: the source they read, their time window, their parameters.

Reports never write SQL: they open the source once, call the frames loaders with the window
pushed down, and hand the frames to the metrics functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import pandas as pd
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import db, sources
from shivx_analytics.domain import window

DEFAULT_LOOKBACK = pd.Timedelta(window.DEFAULT_LOOKBACK)


def usernames(source: Any) -> dict[str, str]:
    """user_id -> username of every user, for showing names beside ids (usernames are not
    secret; the loader never selects a password hash)."""
    from shivx_analytics.frames import load_users

    users = load_users(source)
    return dict(zip(users["user_id"].astype(str), users["username"].astype(str)))


@contextmanager
def opened(source: Any) -> Iterator[Engine | Connection | Session]:
    """The source as the loaders take it; a URL becomes one engine for the whole report, and so
    does None: the analytics database (db.analytics_url(): SHIVX_ANALYTICS_DATABASE_URL, else
    SHIVX_DATABASE_URL, else the local SQLite file)."""
    with sources.opened(source) as handle:
        yield handle


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


@dataclass(frozen=True)
class ReportWindow:
    """A report's [since, until) and as_of as aware UTC Timestamps (since None: the P&L report
    takes it from the data)."""

    since: pd.Timestamp | None
    until: pd.Timestamp
    as_of: pd.Timestamp


def report_window(since: object, until: object, as_of: object, *,
                  lookback: pd.Timedelta | None = DEFAULT_LOOKBACK) -> ReportWindow:
    """THE as_of rule of every report (domain.window.report_window, docs/windows.md): as_of
    defaults to now and may not be in the future; until defaults to the end of as_of's UTC day;
    since to until - 30 days (``lookback=None``: left to the report)."""
    found = window.report_window(since, until, as_of,
                                 lookback=None if lookback is None else lookback.to_pytimedelta())
    return ReportWindow(None if found.since is None else pd.Timestamp(found.since),
                        pd.Timestamp(found.until), pd.Timestamp(found.as_of))


def filter_values(**filters: object) -> dict[str, object]:
    """The filters given (None means no filter), as the report records them in parameters:
    one value or a list, ids as text."""
    recorded = {}
    for name, value in filters.items():
        if value is None:
            continue
        many = isinstance(value, (list, tuple, set, frozenset, pd.Series, pd.Index))
        values = [str(v) if name == "user_id" else v for v in (list(cast(Iterable[object], value)) if many else [value])]
        recorded[name] = values if many else values[0]
    return recorded


FILTERED_PATH_NOTE = ("Filtered ({filters}): computed from the loaded rows (the push-down and "
                      "view paths take no filters; the figures are the same).")
EMPTY_WINDOW_HINT = "check as_of and the window"


def empty_window_note(what: str, since: pd.Timestamp, until: pd.Timestamp, filters: dict[str, object]) -> str:
    """The note of a report whose window holds no rows (the CLI prints it on stderr)."""
    scope = f" matching {_filters_text(filters)}" if filters else ""
    return f"No {what}{scope} in [{_bound(since)}, {_bound(until)}): {EMPTY_WINDOW_HINT}"


def is_empty_window_note(note: str) -> bool:
    return note.endswith(EMPTY_WINDOW_HINT)


def filtered_path_note(filters: dict[str, object]) -> str:
    return FILTERED_PATH_NOTE.format(filters=_filters_text(filters))


def _filters_text(filters: dict[str, object]) -> str:
    return ", ".join(f"{name}={value}" for name, value in filters.items())


def _bound(moment: pd.Timestamp) -> str:
    """A window bound as a date when it is a UTC midnight, else the full instant."""
    return moment.strftime("%Y-%m-%d") if moment == moment.floor("D") else moment.isoformat()


def base_parameters(source: Any, since: pd.Timestamp, until: pd.Timestamp,
                    as_of: pd.Timestamp, filters: dict[str, object] | None = None) -> dict[str, Any]:
    """The parameters every report records (database URL with the password masked; the
    filters given, from filter_values)."""
    return {"since": since, "until": until, "as_of": as_of, "database": database_label(source), **(filters or {})}


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
