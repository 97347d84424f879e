"""Where a load reads from: a URL for the fast transports, or a connection whose writes it must see.

Separate because it decides, per source, which transport runs (docs/development.md, "Sources"):
a URL (and None, an Engine, or a Connection or Session without uncommitted writes) is read by the
fast paths on their own read-only connections; an in-memory SQLite database or a transaction with
uncommitted writes is read row by row through that connection. The kinds of source, and the one
TypeError for anything else, are shivx_analytics/sources.py's.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import cast

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import db as _db
from shivx_analytics import sources
from shivx_analytics.config import get_settings
from shivx_analytics.sources import Source

from .errors import _unavailable
from .query import _Query
from .transport_duckdb import _duckdb_available, _duckdb_batches
from .transport_rows import _rows_batches
from .transport_sqlite import _sqlite_batches


@dataclass
class _Target:
    backend: str  # "sqlite" or "postgresql"
    url: URL | None  # the fast path reads from here
    connection: Connection | None = None  # ... or, when set, rows are read through this connection
    cleanup: list[Callable[[], None]] = field(default_factory=list)
    statement_timeout_ms: int | None = None  # the SQLite reader's own limit (PostgreSQL's is in the URL)

    def close(self) -> None:
        while self.cleanup:
            try:
                self.cleanup.pop()()
            except sa.exc.DBAPIError as exc:  # a lost connection has nothing left to roll back
                if not _db.is_connection_lost(exc):
                    raise


def _resolve(source: Source) -> _Target:
    """Where to read from: a URL for the fast path, or a connection whose writes must be seen.

    None: the analytics database (SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL, else the
    local SQLite file), as ``sx.connect(analytics=True)``. A URL (and None) gets the settings' TLS,
    connect timeout, keepalives and statement timeout, as create_engine gives them; an Engine's own
    connections follow the settings it was created with (its URL carries PostgreSQL's)."""
    sources.check(source)
    if source is None or isinstance(source, (str, URL)):
        url = sources.url(source)
        if sources.in_memory(url):
            engine = sa.create_engine(url)
            connection = engine.connect()
            return _Target("sqlite", None, connection, [engine.dispose, connection.close])
        return _Target(url.get_backend_name(), url, statement_timeout_ms=get_settings().statement_timeout_ms)
    if isinstance(source, Engine):
        url = source.url
        if sources.in_memory(url):
            connection = source.connect()
            return _Target("sqlite", None, connection, [connection.close])
        return _Target(url.get_backend_name(), url,
                       statement_timeout_ms=_db.engine_settings(source).statement_timeout_ms)
    if isinstance(source, Session):
        sources.flush_pending(source)
        bind = source.get_bind()
        if source.in_transaction():
            return _from_connection(source.connection())
        return _resolve(bind)
    return _from_connection(source)


def _from_connection(connection: Connection) -> _Target:
    url = connection.engine.url
    backend = url.get_backend_name()
    if sources.in_memory(url) or sources.has_uncommitted_writes(connection):
        return _Target(backend, None, connection)
    return _Target(backend, url, statement_timeout_ms=_db.engine_settings(connection.engine).statement_timeout_ms)


def _batches(target: _Target, query: _Query, fetch: list[str], size: int | None, *,
             ordered: bool) -> Generator[pa.Table, None, None]:
    if target.connection is not None:
        return _rows_batches(target.connection, query.select(fetch, target.backend), query.frame, size)
    url = cast(URL, target.url)  # set whenever connection is not
    if target.backend == "postgresql":
        if _duckdb_available():
            return _duckdb_batches(url, query, fetch, size, ordered)
        engine = sa.create_engine(url, connect_args=_db.secret_parameters(url))
        try:
            connection = engine.connect()
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise _unavailable(exc, url, query.frame) from None
        target.cleanup += [engine.dispose, connection.close]
        return _rows_batches(connection, query.select(fetch, "postgresql"), query.frame, size)
    return _sqlite_batches(url, query, fetch, size, ordered, target.statement_timeout_ms)
