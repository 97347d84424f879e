"""The row-by-row transport: any backend through a SQLAlchemy connection, rows into Arrow.

Separate because it is one of three ways rows arrive (with transport_sqlite.py and
transport_duckdb.py): the slow but always correct path, for a transaction with uncommitted
writes, an in-memory SQLite database, or PostgreSQL without the duckdb packages.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Sequence
from decimal import Decimal
from enum import Enum
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics import db as _db

from .errors import _unavailable
from .schemas import _Frame

# Any backend, through a SQLAlchemy connection: the statement's column types convert each value
# (Money -> Decimal, Uuid -> UUID, ...), then Arrow arrays are built per kind.

def _rows_batches(connection: Connection, statement: sa.Select, frame: _Frame, size: int | None) -> Generator[pa.Table, None, None]:
    try:
        result = connection.execute(statement)
    except sa.exc.DBAPIError as exc:
        if _db.is_connection_lost(exc):
            raise _unavailable(exc, connection.engine.url, frame) from None
        raise
    names = list(result.keys())
    produced = False
    try:
        while True:
            try:
                rows = result.fetchmany(size or 100_000)
            except sa.exc.DBAPIError as exc:
                if _db.is_connection_lost(exc):
                    raise _unavailable(exc, connection.engine.url, frame) from None
                raise
            if not rows and produced:
                return
            produced = True
            values = list(zip(*rows)) if rows else [() for _ in names]
            yield pa.table({name: _python_array(column, frame.column(name).kind)
                            for name, column in zip(names, values)})
            if not rows:
                return
    finally:
        result.close()


def _python_array(values: Sequence[Any], kind: str) -> pa.Array:
    if kind == "id":
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    if kind in ("money", "float"):
        return pa.array([None if v is None else Decimal(v) for v in values], pa.decimal128(38, 12))
    if kind == "time":
        return pa.array(list(values), pa.timestamp("us", tz="UTC"))
    if kind == "json":
        return pa.array([None if v is None else json.dumps(v, sort_keys=True, separators=(",", ":"),
                                                           ensure_ascii=False) for v in values], pa.string())
    if kind == "enum":
        return pa.array([v.value if isinstance(v, Enum) else v for v in values], pa.string())
    if kind == "int":
        return pa.array(list(values), pa.int64())
    if kind == "bool":
        return pa.array(list(values), pa.bool_())
    return pa.array(list(values), pa.string())
