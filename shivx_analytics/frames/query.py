"""Query building: a frame's SELECT with its conditions, bound for SQLite or PostgreSQL.

Separate because the conditions are composed once and compiled for three readers (sqlite3,
DuckDB's scanner, a SQLAlchemy connection), each wanting values in its own form: bound parameters
holding values as each backend stores them, escaped PostgreSQL literals for a statement DuckDB
hands to PostgreSQL whole, and SQLite's JSON matching for ``details=``. No value is ever
formatted into SQL except through _pg_literal, which escapes it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Protocol, cast

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql.base import PGDialect

from .arguments import DetailValue, _parser, _values, _Window
from .schemas import _Frame


class Bind(Protocol):
    """A bound value of a kind (uuid, time, bool, number, jsonb, text) for one backend."""

    backend: str  # 'sqlite' or 'postgresql'

    def __call__(self, value: Any, kind: str) -> sa.ColumnElement: ...


@dataclass
class _Query:
    """A frame, the conditions on its table (built once the backend is known) and nothing else."""

    frame: _Frame
    conditions: list[Callable[[sa.Table, Bind], sa.ColumnElement]] = field(default_factory=list)
    filtered: bool = False
    native: bool = False  # a condition DuckDB's scanner cannot push down: PostgreSQL runs the query

    def where(self, condition: Callable[[sa.Table, Bind], sa.ColumnElement]) -> None:
        self.conditions.append(condition)
        self.filtered = True

    def window(self, column: str, window: _Window) -> None:
        if window.since is not None:
            self.where(lambda t, bind: t.c[column] >= bind(window.since, "time"))
        if window.until is not None:
            self.where(lambda t, bind: t.c[column] < bind(window.until, "time"))

    def equals(self, column: str, value: Any, kind: str | type[Enum], *, argument: str | None = None) -> None:
        values = _values(argument or column, value, _parser(argument or column, kind))
        if values is None:
            return
        bind_kind = kind if isinstance(kind, str) else "text"

        def condition(t, bind):
            if not values:
                return sa.false()
            if len(values) == 1:
                return t.c[column] == bind(values[0], bind_kind)
            return t.c[column].in_([bind(v, bind_kind) for v in values])
        self.where(condition)

    def contains(self, column: str, pairs: list[tuple[str, DetailValue]] | None) -> None:
        """The JSON object in ``column`` holds each key with exactly that JSON scalar value."""
        if not pairs:
            return

        def condition(t, bind):
            if bind.backend == "sqlite":
                return sa.and_(*[_sqlite_json_has(t.c[column], key, value, bind) for key, value in pairs])
            document = json.dumps(dict(pairs), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
            return t.c[column].op("@>", is_comparison=True)(bind(document, "jsonb"))
        self.where(condition)
        self.native = True

    def select(self, fetch: Sequence[str], backend: str, *, ordered: bool = True, inline: bool = False) -> sa.Select:
        t = self.frame.table
        bind = _binder(backend, inline=inline)
        statement = sa.select(*[t.c[name] for name in fetch]).where(*[condition(t, bind) for condition in self.conditions])
        return statement.order_by(t.c[self.frame.time], t.c[self.frame.id]) if ordered else statement


def _binder(backend: str, *, inline: bool = False) -> Bind:
    """Bound parameters holding values as each backend stores them (never formatted into SQL).

    ``inline`` (PostgreSQL): escaped, typed literals instead (_pg_literal), for a statement
    that DuckDB hands to PostgreSQL as text (postgres_query takes no parameters).
    """
    def bind(value: Any, kind: str) -> sa.ColumnElement:
        if backend == "sqlite":
            if kind == "uuid":
                return sa.bindparam(None, value.hex, type_=sa.String())
            if kind == "time":
                return sa.bindparam(None, _sqlite_time(value), type_=sa.String())
            if kind == "bool":
                return sa.bindparam(None, int(value), type_=sa.Integer())
            if kind == "number":
                return sa.bindparam(None, value, type_=sa.Float() if isinstance(value, float) else sa.BigInteger())
            return sa.bindparam(None, value, type_=sa.String())
        if inline:
            return sa.literal_column(_pg_literal(value, kind))
        if kind == "uuid":
            return sa.bindparam(None, value, type_=sa.Uuid())
        if kind == "time":
            return sa.bindparam(None, value, type_=sa.DateTime(timezone=True))
        if kind == "bool":
            return sa.bindparam(None, value, type_=sa.Boolean())
        if kind == "jsonb":
            return sa.cast(sa.bindparam(None, value, type_=sa.String()), JSONB)
        return sa.bindparam(None, value, type_=sa.String())
    typed = cast(Bind, bind)
    typed.backend = backend
    return typed


def _pg_literal(value: Any, kind: str) -> str:
    """A PostgreSQL literal of ``value``: printable ASCII only, every quote and backslash escaped."""
    if kind == "uuid":
        return f"'{uuid.UUID(str(value))}'::uuid"
    if kind == "time":
        return f"'{value.astimezone(timezone.utc).isoformat()}'::timestamptz"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "jsonb":
        return f"{_pg_string(value)}::jsonb"
    if kind == "text":
        return _pg_string(value)
    raise ValueError(f"no PostgreSQL literal for a {kind} value")


def _pg_string(text: str) -> str:
    """An escape string constant, E'...': read the same whatever standard_conforming_strings and
    client_encoding say. Printable ASCII stays, quote and backslash are escaped, anything else
    becomes a \\uXXXX or \\UXXXXXXXX escape (NUL and lone surrogates are refused before this)."""
    parts = []
    for character in text:
        code = ord(character)
        if character in "\\'":
            parts.append("\\" + character)
        elif 0x20 <= code < 0x7F:
            parts.append(character)
        elif code < 0x10000:
            parts.append(f"\\u{code:04x}")
        else:
            parts.append(f"\\U{code:08x}")
    return "E'" + "".join(parts) + "'"


def _sqlite_json_has(column: sa.ColumnElement, key: str, value: DetailValue, bind: Bind) -> sa.ColumnElement:
    """SQLite: the JSON object in ``column`` has ``key`` holding ``value``, as PostgreSQL's @> decides.

    json_each gives each top-level entry's decoded key, JSON type and SQL value (true/false
    read 1/0, hence the type test). Not json_extract: a path cannot name every key (SQLite
    3.40 compares a quoted path label with the key as written, escapes and all).
    """
    entry = sa.func.json_each(column).table_valued("key", "type", "atom").alias()
    conditions = [entry.c.key == bind(key, "text")]
    if value is None or isinstance(value, bool):
        conditions.append(entry.c.type == bind({None: "null", True: "true", False: "false"}[value], "text"))
    elif isinstance(value, str):
        conditions += [entry.c.type == bind("text", "text"), entry.c.atom == bind(value, "text")]
    else:
        conditions += [entry.c.type.in_([bind("integer", "text"), bind("real", "text")]),
                       entry.c.atom == bind(value, "number")]
    return sa.exists(sa.select(sa.literal_column("1")).select_from(entry).where(*conditions))


def _sqlite_time(value: datetime) -> str:
    """UTC text comparable with what UTCDateTime stores on SQLite.

    Stored values read 'YYYY-MM-DD HH:MM:SS.ffffff' (or, from a server default, without the
    fraction). Leaving the fraction out when it is zero keeps text order equal to time order for
    both forms: '... 00:00:00' <= '... 00:00:00.000000' and '... 00:00:00' < '... 00:00:00.5'.
    """
    value = value.astimezone(timezone.utc)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d} "
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    return f"{text}.{value.microsecond:06d}" if value.microsecond else text


def _positional(statement: sa.ClauseElement, dialect) -> tuple[str, list[Any]]:
    compiled: Any = statement.compile(dialect=dialect)  # a SQLCompiler: positiontup
    values = compiled.params  # computed afresh on every access: once, not once per parameter
    return str(compiled), [values[name] for name in (compiled.positiontup or [])]


def _compiled_inline(statement: sa.Select) -> str:
    """PostgreSQL SQL text of a statement built with inline literals (no parameters left)."""
    compiled = statement.compile(dialect=PGDialect(paramstyle="numeric_dollar"))
    if compiled.params:
        raise AssertionError(f"a parameter was left in an inline statement: {sorted(compiled.params)}")
    return str(compiled)
