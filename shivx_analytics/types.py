"""Column types of our own: exact money, aware UTC time, tracked JSON, string enums.

Migrations reference these by module path (``shivx_analytics.types.Money()``), so their
constructor arguments are part of the schema and must stay stable.
"""

from __future__ import annotations

import enum
import json
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.ext.mutable import MutableDict, MutableList
from sqlalchemy.sql.expression import ColumnElement
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
    "StoredMoneyError",
    "money_domain",
    "money_domain_constraints",
    "money_domain_sql",
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
    exponent = cast(int, exponent)  # finite here: 'n', 'N', 'F' are NaN, sNaN and infinity
    if not any(digits):
        return True
    while len(digits) > 1 and digits[-1] == 0 and exponent < 0:  # trailing zeros hold no value
        digits, exponent = digits[:-1], exponent + 1
    decimals = max(0, -exponent)
    integer_digits = max(0, len(digits) + exponent)
    return decimals <= scale and integer_digits <= precision - scale


_MONEY_TEXT = re.compile(r"-?([0-9]+)(?:\.([0-9]+))?")  # ASCII digits: not \d, which takes any script's


class StoredMoneyError(ValueError):
    """A stored money value the column cannot hold (SQLite text written around the models)."""


def stored_money(value: Any, *, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE,
                 where: str | None = None) -> Decimal:
    """Money as SQLite stores it (text) read back exactly, or StoredMoneyError (a ValueError): text
    the writers never produce ('0.123456789', '1abc', '1e5') is refused, not rounded or guessed at.
    Revision 0006's triggers refuse it on the way in; ``shivx-analytics db check`` lists rows stored
    before. ``where`` (e.g. "orders.price of row <id>") says where the value is stored."""
    text = value if isinstance(value, str) else str(value) if isinstance(value, int) else None
    match = _MONEY_TEXT.fullmatch(text) if text is not None else None
    if match is None or len(match.group(1)) > precision - scale or len(match.group(2) or "") > scale:
        place = f" of {where}" if where else ""
        advice = ("" if where else " (written around the models: `shivx-analytics db check` names its table, "
                  "column and row)")
        raise StoredMoneyError(f"stored money value {value!r}{place} is not a decimal that fits "
                               f"NUMERIC({precision},{scale}){advice}")
    return Decimal(match.group(0))  # the whole text


# PostgreSQL: a NUMERIC(p, s) column rounds a value with more than s decimals on input (half away
# from zero), before any CHECK constraint or trigger sees it. The models' money columns are
# therefore of a domain over unconstrained numeric whose named constraints refuse such a value,
# and one out of the NUMERIC(p, s) range, whoever writes it (revision 0007). Domains rather than
# unconstrained NUMERIC columns with CHECK constraints: DuckDB's postgres scanner (the loaders)
# reads an unconstrained NUMERIC as DOUBLE, inexact, and a domain as its text, exact; and a domain
# reflects as itself, so the schema comparison sees a column that lost it (docs/money.md).


def money_domain(precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> str:
    """The PostgreSQL domain of money of NUMERIC(precision, scale): ``shivx_money_20_8``."""
    return f"shivx_money_{precision}_{scale}"


def money_domain_constraints(precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> dict[str, str]:
    """The domain's named CHECK constraints (name -> condition): at most ``scale`` decimals; below
    10^(precision - scale) in magnitude (NaN and infinities fail it too). Their names are what a
    refusal says: ``value for domain shivx_money_20_8 violates check constraint
    "shivx_money_20_8_at_most_8_decimals"``."""
    domain, whole = money_domain(precision, scale), precision - scale
    return {f"{domain}_at_most_{scale}_decimals": f"VALUE = round(VALUE, {scale})",
            f"{domain}_below_1e{whole}": f"abs(VALUE) < 1e{whole}"}


def money_domain_sql(precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> str:
    """CREATE DOMAIN for money of NUMERIC(precision, scale) (PostgreSQL)."""
    checks = " ".join(f"CONSTRAINT {name} CHECK ({condition})"
                      for name, condition in money_domain_constraints(precision, scale).items())
    return f"CREATE DOMAIN {money_domain(precision, scale)} AS numeric {checks}"


class Money(TypeDecorator):
    """Exact fixed-point money: NUMERIC(20,8) on PostgreSQL, canonical text on SQLite.

    SQLite's NUMERIC has REAL affinity and silently loses digits beyond ~15 significant
    figures, so there the value is stored as text with exactly ``scale`` decimals
    (``'123.45000000'``). Values that do not fit are refused, never rounded.

    ``domain=True`` (the models' columns since revision 0007): on PostgreSQL the column is of the
    domain ``money_domain(precision, scale)`` instead of NUMERIC(precision, scale), so the database
    refuses, rather than rounds, a value written by plain SQL that does not fit. ``Money(precision,
    scale)`` keeps meaning NUMERIC(precision, scale): earlier migrations create their columns so.
    On SQLite, text that revision 0006's triggers would refuse but that was stored anyway is
    refused when read, naming the table, the column and the row (``column_expression``).
    """

    impl = sa.Numeric
    cache_ok = True

    def __init__(self, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE, domain: bool = False):
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale
        self.domain = domain

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.String(self.precision + 2))
        if self.domain and dialect.name == "postgresql":
            return postgresql.DOMAIN(money_domain(self.precision, self.scale), sa.Numeric(asdecimal=True),
                                     create_type=False)
        return dialect.type_descriptor(sa.Numeric(self.precision, self.scale, asdecimal=True))

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        if value is None:
            return None
        number = to_money(value, precision=self.precision, scale=self.scale)
        if dialect.name == "sqlite":
            return f"{number.quantize(Decimal(1).scaleb(-self.scale)):f}"
        return number

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            return value
        if isinstance(value, str) and value.startswith(_BAD_MONEY_MARK):
            _, where, key, stored = value.split(_BAD_MONEY_SEPARATOR, 3)
            where = f"{where} of row {_row_key_text(key)}"
            return stored_money(stored, precision=self.precision, scale=self.scale, where=where)
        return stored_money(value, precision=self.precision, scale=self.scale)

    def column_expression(self, colexpr: ColumnElement[Any]) -> ColumnElement[Any]:
        """What a SELECT fetches: on SQLite, a value the column cannot hold comes with the table,
        column and primary key of its row, so that the refusal can name them."""
        base = next(iter(colexpr.base_columns), None)
        table, origin = getattr(colexpr, "table", None), getattr(base, "table", None)
        keys = list(getattr(table, "primary_key", None) or ())
        if base is None or origin is None or len(keys) != 1 or not isinstance(origin, sa.Table):
            return colexpr  # not a table's column (an aggregate, say): fetched as it is
        return _CheckedMoney(colexpr, keys[0], f"{origin.name}.{base.name}", self)

    @property
    def python_type(self) -> type[Decimal]:
        return Decimal

    def __repr__(self) -> str:
        domain = ", domain=True" if self.domain else ""
        return f"Money(precision={self.precision}, scale={self.scale}{domain})"


_BAD_MONEY_MARK = "\x1eshivx-bad-money"
_BAD_MONEY_SEPARATOR = "\x1f"


def _row_key_text(key: str) -> str:
    """A primary key as SQLite stores it, shown as the models show it (a UUID with dashes)."""
    try:
        return str(uuid.UUID(hex=key)) if len(key) == 32 else key
    except ValueError:
        return key


class _CheckedMoney(ColumnElement[Any]):
    """A money column as fetched: itself, except on SQLite where text the column cannot hold
    becomes the mark, where it is stored (table.column, primary key) and the text itself."""

    inherit_cache = True  # made while compiling: never part of a statement's cache key

    def __init__(self, column: ColumnElement[Any], row_key: ColumnElement[Any], where: str, type_: Money):
        self.column, self.row_key, self.where, self.money = column, row_key, where, type_
        self.type = type_


@compiles(_CheckedMoney)
def _compile_checked_money(element: _CheckedMoney, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.column, **kw)


@compiles(_CheckedMoney, "sqlite")
def _compile_checked_money_sqlite(element: _CheckedMoney, compiler: Any, **kw: Any) -> str:
    from shivx_analytics.triggers import money_text_ok_sql  # the rule revision 0006's triggers apply

    column = compiler.process(element.column, **kw)
    key = compiler.process(element.row_key, **kw)
    ok = money_text_ok_sql(column, element.money.precision, element.money.scale)
    mark = f"char(30) || '{_BAD_MONEY_MARK[1:]}' || char(31) || '{element.where}' || char(31)"
    return f"CASE WHEN {ok} THEN {column} ELSE {mark} || CAST({key} AS TEXT) || char(31) || {column} END"


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
