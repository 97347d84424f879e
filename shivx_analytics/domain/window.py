"""The time window of every loader and report, and the as_of rule (docs/windows.md).

Standard library only. Every entry point reads a time bound through ``instant`` (the loaders,
the metrics' ``timestamp``, the reports, the CLI, the demo generator): one parser, one set of
rules, one error message.

- A bound is a ``datetime`` (a pandas Timestamp is one), a ``date`` (its 00:00 UTC) or ISO 8601
  text ("2025-10-28", "2025-10-28T12:00:00Z", "2025-10-28 12:00+02:00"); naive means UTC.
  Anything else, numbers included (an epoch in seconds or nanoseconds is ambiguous), is a
  ValueError naming the argument and the expected form.
- A window is half-open ``[since, until)``; ``since == until`` is an empty window (allowed),
  ``since > until`` a reversed one (refused by ``check_window``).
- The as_of rule (``report_window``): as_of defaults to now; a future as_of is refused; until
  defaults to the end of as_of's UTC day (the day after as_of, 00:00); the execution, API usage
  and security reports' since defaults to until - 30 days, the P&L report's to the UTC day of
  the first opened_at (the caller supplies it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone

__all__ = [
    "EXPECTED", "DEFAULT_LOOKBACK", "Window", "instant", "optional_instant", "check_window",
    "resolve_as_of", "end_of_day", "report_window", "now",
]

EXPECTED = "an ISO 8601 date or datetime such as 2025-10-28 or 2025-10-28T12:00:00Z"
DEFAULT_LOOKBACK = timedelta(days=30)
_DAY = timedelta(days=1)


def now() -> datetime:
    """The current instant, aware UTC (the default as_of; tests may patch it)."""
    return datetime.now(timezone.utc)


def optional_instant(value: object, argument: str) -> datetime | None:
    """``instant``, letting None through (an open end of a window)."""
    return None if value is None else instant(value, argument)


def instant(value: object, argument: str) -> datetime:
    """An aware UTC datetime from a datetime (pandas Timestamp included), a date or ISO 8601
    text; naive means UTC. Nanoseconds (a Timestamp's) round up to the next microsecond, since
    stored times are whole microseconds: ``t >= since`` keeps its meaning.

    Raises ValueError naming ``argument`` for None, NaT, numbers, other types, unparseable text
    and instants outside the years 1-9999 UTC.
    """
    if isinstance(value, datetime):
        parsed = _from_datetime(value, argument)
    elif isinstance(value, date):
        parsed = datetime.combine(value, time.min)
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"{argument}: expected {EXPECTED}, got {value!r}") from None
    else:
        raise ValueError(f"{argument}: expected {EXPECTED}, got {_shown(value)}")
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return parsed.replace(tzinfo=timezone.utc)
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{argument}: {_shown(value)} is outside the years 1-9999 UTC") from None


def _from_datetime(value: datetime, argument: str) -> datetime:
    if value != value:  # pandas' NaT is a datetime that equals nothing, itself included
        raise ValueError(f"{argument}: expected {EXPECTED}, got NaT")
    nanosecond = getattr(value, "nanosecond", 0)  # a pandas Timestamp
    plain = datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                     value.microsecond, value.tzinfo, fold=value.fold)
    if nanosecond:
        try:
            plain += timedelta(microseconds=1)
        except OverflowError:
            raise ValueError(f"{argument}: {value!r} is outside the years 1-9999 UTC") from None
    return plain


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_window(since: datetime | None, until: datetime | None) -> None:
    """Refuse a reversed window (since after until); an empty one (since == until) is allowed."""
    if since is not None and until is not None and since > until:
        raise ValueError(f"since ({since.isoformat()}) is after until ({until.isoformat()}): "
                         "the window [since, until) would be reversed; pass since <= until")


def resolve_as_of(as_of: object, *, current: datetime | None = None) -> datetime:
    """as_of as an aware UTC datetime: now when None; a future as_of (after now) is refused,
    since it would pad every series with days that have not happened yet."""
    current = now() if current is None else current
    if as_of is None:
        return current
    resolved = instant(as_of, "as_of")
    if resolved > current:
        raise ValueError(f"as_of ({resolved.isoformat()}) is in the future (now is {current.isoformat()}): "
                         "reports describe what has happened; pass as_of <= now or leave it out (now)")
    return resolved


def end_of_day(moment: datetime) -> datetime:
    """The start of the UTC day after ``moment``'s (the default until of every report)."""
    moment = moment.astimezone(timezone.utc)
    try:
        return datetime.combine(moment.date(), time.min, timezone.utc) + _DAY
    except OverflowError:
        raise ValueError(f"as_of ({moment.isoformat()}) leaves no day after it before the year 10000") from None


@dataclass(frozen=True)
class Window:
    """A report's window: [since, until) and the as_of it describes (aware UTC; since is None
    when the caller derives it from the data, as the P&L report does)."""

    since: datetime | None
    until: datetime
    as_of: datetime


def report_window(since: object = None, until: object = None, as_of: object = None, *,
                  lookback: timedelta | None = DEFAULT_LOOKBACK, current: datetime | None = None) -> Window:
    """THE as_of rule: as_of defaults to now (a future one is refused); until to the end of
    as_of's UTC day; since to until - ``lookback`` (None: left to the caller, e.g. the P&L
    report's first opened_at). Raises ValueError for a reversed window."""
    as_of_at = resolve_as_of(as_of, current=current)
    since_at, until_at = optional_instant(since, "since"), optional_instant(until, "until")
    until_at = end_of_day(as_of_at) if until_at is None else until_at
    if since_at is None and lookback is not None:
        try:
            since_at = until_at - lookback
        except OverflowError:
            raise ValueError(f"until ({until_at.isoformat()}) leaves no {lookback.days} days before it") from None
    check_window(since_at, until_at)
    return Window(since_at, until_at, as_of_at)
