"""The SQLite transport: the statement run by the standard library's sqlite3, rows into Arrow.

Separate because it is one of three ways rows arrive (with transport_duckdb.py and
transport_rows.py), each with its own driver, limits and failure modes.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.sqlite.base import SQLiteDialect
from sqlalchemy.engine import URL

from shivx_analytics import db as _db
from shivx_analytics.config import get_settings
from shivx_analytics.db import DatabaseUnavailable, database_path, mask_url

from .errors import LoadError, _first_line
from .query import _binder, _positional, _Query

# SQLite through the standard library's sqlite3, the SQLite that SQLAlchemy's engines use.
# Not through ADBC's driver (which bundles a second copy of SQLite): two copies of SQLite in one
# process corrupt a WAL database (sqlite.org/howtocorrupt.html, 2.3). Each copy sees the other's
# POSIX locks as its own, so a reader opening the file truncated the shared-memory wal-index under
# the engine's connections: writers beside a load died of SIGBUS or left "database disk image is
# malformed" (tests/test_load.py). Rows arrive as tuples and become Arrow columns, text or int64
# as SQLite stores them, so the converters in _arrow.py see what ADBC handed them.

_SQLITE_BATCH_ROWS = 65_536


def _sqlite_batches(url: URL, query: _Query, fetch: list[str], size: int | None, ordered: bool,
                    statement_timeout_ms: int | None = None) -> Generator[pa.Table, None, None]:
    import sqlite3

    frame = query.frame
    t = frame.table
    bind = _binder("sqlite")
    statement = sa.select(*[t.c[n].label(n) for n in fetch]).where(*[condition(t, bind) for condition in query.conditions])
    if ordered:
        statement = statement.order_by(t.c[frame.time], t.c[frame.id])
    sql, params = _positional(statement, SQLiteDialect())
    path = database_path(url)  # a file: URI (mode=ro&uri=true) names its file too
    if path is None or not path.exists():
        raise DatabaseUnavailable(f"cannot read {mask_url(url)}: no such SQLite file")
    types = [pa.int64() if frame.column(n).kind in ("int", "bool") else pa.string() for n in fetch]
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    connection = sqlite3.connect(uri, uri=True, timeout=get_settings().sqlite_busy_timeout, check_same_thread=False)
    # The statement timeout as the engines apply it: the query and the fetching of its rows
    clock = None if statement_timeout_ms is None else _db.watch_statement_time(connection, statement_timeout_ms)

    def failed(exc: sqlite3.Error) -> LoadError:
        fired = clock is not None and clock.fired
        reason = (_db.statement_timeout_message(statement_timeout_ms) if fired and statement_timeout_ms is not None
                  else _first_line(exc))
        return LoadError(f"loading {frame.name} from {mask_url(url)}: {reason}")

    try:
        if clock is not None:
            clock.start()
        try:
            cursor = connection.execute(sql, params)
        except sqlite3.Error as exc:
            raise failed(exc) from None
        rows_per_batch = min(size or _SQLITE_BATCH_ROWS, _SQLITE_BATCH_ROWS)
        while True:
            try:
                rows = cursor.fetchmany(rows_per_batch)
            except sqlite3.Error as exc:
                raise failed(exc) from None
            if not rows:
                return
            yield pa.table([_sqlite_array(column, kind) for column, kind in zip(zip(*rows), types)], names=fetch)
    finally:
        connection.close()


def _sqlite_array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    """A column of one batch; a value stored with another SQLite type than its column's is converted."""
    try:
        return pa.array(values, arrow_type)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        convert = str if arrow_type == pa.string() else int
        return pa.array([None if v is None else convert(v) for v in values], arrow_type)
