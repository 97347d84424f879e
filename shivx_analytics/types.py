"""Column types of our own: exact money, aware UTC time, tracked JSON, string enums.

Migrations reference these by module path (``shivx_analytics.types.Money()``), so their
constructor arguments are part of the schema and must stay stable.
"""

from __future__ import annotations

import enum
import json
import re
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.types import TypeDecorator

from shivx_analytics.domain.money import MONEY_PRECISION, MONEY_SCALE  # NUMERIC(20,8), defined once

__all__ = [
    "Money",
    "UTCDateTime",
    "JSONData",
    "mutable_json_dict",
    "mutable_json_list",
    "string_enum",
    "money_fits",
    "to_money",
    "stored_money",
    "MONEY_PRECISION",
    "MONEY_SCALE",
]


def to_money(value: Any, *, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> Decimal:
    """Return ``value`` as a Decimal that fits NUMERIC(precision, scale), or raise ValueError.

    Never rounds: a value with more decimals or more integer digits than the column holds
    is refused, so nothing is silently lost.
    """
    if isinstance(value, float):
        raise ValueError(f"money must be a Decimal, int or string, not float ({value!r}): floats are inexact")
    if isinstance(value, bool):
        raise ValueError(f"money must be a Decimal, int or string, not bool ({value!r})")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    if not money_fits(number, precision=precision, scale=scale):
        raise ValueError(
            f"{value} does not fit NUMERIC({precision},{scale}): at most "
            f"{precision - scale} integer digits and {scale} decimal places"
        )
    return number


def money_fits(number: Decimal, *, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> bool:
    """True if ``number`` has at most ``scale`` decimals and ``precision - scale`` integer digits."""
    _, digits, exponent = number.as_tuple()
    if not any(digits):
        return True
    while len(digits) > 1 and digits[-1] == 0 and exponent < 0:  # trailing zeros hold no value
        digits, exponent = digits[:-1], exponent + 1
    decimals = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    return decimals <= scale and integer_digits <= precision - scale


_MONEY_TEXT = re.compile(r"-?(\d+)(?:\.(\d+))?")


def stored_money(value: Any, *, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> Decimal:
    """Money as SQLite stores it (text) read back exactly, or ValueError: text the writers never
    produce ('0.123456789', '1abc', '1e5') is refused, not rounded or guessed at. Revision 0006's
    triggers refuse it on the way in; ``shivx-analytics db check`` lists rows stored before."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else None
    match = _MONEY_TEXT.fullmatch(text) if text is not None else None
    if match is None or len(match.group(1)) > precision - scale or len(match.group(2) or "") > scale:
        raise ValueError(f"stored money value {value!r} is not a decimal that fits NUMERIC({precision},{scale}) "
                         "(written around the models: `shivx-analytics db check` names its table, column and row)")
    return Decimal(text)


class Money(TypeDecorator):
    """Exact fixed-point money: NUMERIC(20,8) on PostgreSQL, canonical text on SQLite.

    SQLite's NUMERIC has REAL affinity and silently loses digits beyond ~15 significant
    figures, so there the value is stored as text with exactly ``scale`` decimals
    (``'123.45000000'``). Values that do not fit are refused, never rounded.
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE):
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(self.precision + 2))
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        number = to_money(value, precision=self.precision, scale=self.scale)
        if dialect.name == "sqlite":
            return f"{number.quantize(Decimal(1).scaleb(-self.scale)):f}"
        return number

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        return stored_money(value, precision=self.precision, scale=self.scale)

    @property
    def python_type(self):
        return Decimal

    def __repr__(self) -> str:
        return f"Money(precision={self.precision}, scale={self.scale})"


class UTCDateTime(TypeDecorator):
    """Timezone-aware timestamps, stored in UTC, returned aware in UTC on every backend.

    Naive datetimes are refused: a time without a zone is ambiguous in a trading ledger.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"expected a datetime, got {type(value).__name__}: {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} refused: give a timezone-aware value (UTC)")
        value = value.astimezone(timezone.utc)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @property
    def python_type(self):
        return datetime

    def __repr__(self) -> str:
        return "UTCDateTime()"


class JSONData(TypeDecorator):
    """JSON documents: JSONB on PostgreSQL, JSON text on SQLite. Keys are stored sorted."""

    impl = sa.JSON
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB())
        return dialect.type_descriptor(sa.JSON())

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        # A round trip through json refuses what cannot be stored (sets, Decimals, ...) here,
        # with the offending value named, rather than deep inside a driver.
        try:
            return json.loads(json.dumps(value, sort_keys=True))
        except TypeError as exc:
            raise ValueError(f"value is not JSON-serialisable: {exc}") from None

    def __repr__(self) -> str:
        return "JSONData()"


def mutable_json_dict() -> sa.types.TypeEngine:
    """A JSON dict column type whose in-place changes are saved (one instance per column)."""
    return MutableDict.as_mutable(JSONData())


def mutable_json_list() -> sa.types.TypeEngine:
    """A JSON list column type whose in-place changes are saved (one instance per column)."""
    return MutableList.as_mutable(JSONData())


def string_enum(enum_cls: type[enum.Enum]) -> sa.Enum:
    """A VARCHAR enum storing member *values* with a named CHECK constraint; no native type."""
    return sa.Enum(
        enum_cls,
        name=enum_cls.__name__.lower(),
        native_enum=False,
        create_constraint=True,
        length=max(len(m.value) for m in enum_cls),
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )
