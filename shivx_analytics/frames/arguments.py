"""The loaders' arguments: the window, filter values, ``details=``, ``columns=`` and ``chunksize=``.

Separate because every check of what a caller passed lives here, before any SQL is composed:
each bad value raises ValueError naming the argument and what it accepts. The window itself is
parsed by the domain kernel (domain/window.py), as every report and the CLI parse it.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import numpy as np
import pandas as pd

from shivx_analytics.domain.window import check_window, optional_instant

from .schemas import _Frame

DetailValue = str | int | float | bool | None


@dataclass(frozen=True)
class _Window:
    since: datetime | None
    until: datetime | None

    @classmethod
    def parse(cls, since: Any, until: Any) -> _Window:
        window = cls(optional_instant(since, "since"), optional_instant(until, "until"))
        check_window(window.since, window.until)
        return window


def _values(argument: str, value: Any, parse: Callable[[Any], Any]) -> list[Any] | None:
    """A filter's values (one value or a list of them), each checked; None means no filter."""
    if value is None:
        return None
    items = list(value) if isinstance(value, (list, tuple, set, frozenset, pd.Series, pd.Index, np.ndarray)) else [value]
    return [parse(item) for item in items]


def _parser(argument: str, kind: str | type[Enum]) -> Callable[[Any], Any]:
    if isinstance(kind, type) and issubclass(kind, Enum):
        valid = [m.value for m in kind]

        def parse_enum(item):
            text = item.value if isinstance(item, kind) else item
            if not isinstance(text, str) or text not in valid:
                raise ValueError(f"{argument}={item!r} is not valid: choose from {valid}")
            return text
        return parse_enum
    if kind == "uuid":
        def parse_uuid(item):
            if isinstance(item, uuid.UUID):
                return item
            try:
                return uuid.UUID(str(item))
            except ValueError:
                raise ValueError(f"{argument}={item!r} is not a UUID") from None
        return parse_uuid
    if kind == "bool":
        def parse_bool(item):
            if isinstance(item, (bool, np.bool_)):
                return bool(item)
            raise ValueError(f"{argument}={item!r} is not valid: choose from [True, False]")
        return parse_bool

    def parse_text(item):
        if not isinstance(item, str):
            raise ValueError(f"{argument}={item!r} must be a string (or a list of strings)")
        if "\x00" in item or not item.isascii() and _has_surrogate(item):  # no stored text holds these
            raise ValueError(f"{argument}={item!r} cannot match anything: text with a NUL character or "
                             "an unpaired surrogate is not valid in the database")
        return item
    return parse_text


def _has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


_INT64_MIN, _INT64_MAX = -(2 ** 63), 2 ** 63 - 1


def _details_filter(details: Any) -> list[tuple[str, DetailValue]] | None:
    """``details=``: (key, value) pairs, each key a string and each value a JSON scalar."""
    if details is None:
        return None
    if not isinstance(details, Mapping):
        raise ValueError(f"details={details!r} is not valid: give a mapping of keys to JSON scalars, "
                         f"e.g. details={{'key_id': '...'}}, not a {type(details).__name__}")
    pairs = []
    for key, value in details.items():
        if not isinstance(key, str):
            raise ValueError(f"details key {key!r} is not valid: details keys must be strings, "
                             f"not {type(key).__name__}")
        _check_text(key, f"details key {key!r}")
        pairs.append((key, _detail_value(key, value)))
    return pairs


def _detail_value(key: str, value: Any) -> DetailValue:
    if isinstance(value, np.generic):  # numpy scalars as the Python values they hold
        value = value.item()
    what = f"details[{key!r}]={value!r}"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        _check_text(value, what)
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{what} is not valid: an integer must fit 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{what} is not valid: JSON has no NaN or infinity")
        return value
    raise ValueError(f"{what} is not valid: details values must be JSON scalars "
                     f"(str, int, float, bool or None), not {type(value).__name__}")


def _check_text(text: str, what: str) -> None:
    if "\x00" in text or not text.isascii() and _has_surrogate(text):
        raise ValueError(f"{what} cannot match anything: text with a NUL character or an unpaired "
                         "surrogate is not valid in the database")


def _output_columns(frame: _Frame, columns: Sequence[str] | None) -> list[str]:
    if columns is None:
        return frame.names
    requested = [columns] if isinstance(columns, str) else list(columns)
    unknown = [c for c in requested if c not in frame.names]
    if unknown or not requested:
        what = f"unknown column(s) {unknown}" if unknown else "columns is empty"
        raise ValueError(f"{what} for {frame.name}: choose from {frame.names}")
    return list(dict.fromkeys(requested))


def _chunksize(chunksize: Any) -> int | None:
    if chunksize is None:
        return None
    if isinstance(chunksize, bool) or not isinstance(chunksize, (int, np.integer)) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive integer or None, not {chunksize!r}")
    return int(chunksize)
