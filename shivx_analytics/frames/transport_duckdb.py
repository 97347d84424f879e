"""The PostgreSQL transport: DuckDB's postgres scanner, and how a run's time limit interrupts it.

Separate because it is one of three ways rows arrive (with transport_sqlite.py and
transport_rows.py). docs/performance.md has the measurements that chose it; without the duckdb
packages PostgreSQL is read through transport_rows.py instead, with a RuntimeWarning.
"""

from __future__ import annotations

import tempfile
import threading
import uuid
import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pyarrow as pa
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.engine import URL

from shivx_analytics.db import DatabaseUnavailable, mask_url, redact, with_secret_parameters
from shivx_analytics.deadline import register_interrupter

from .errors import _RETRY_ADVICE, LoadError, _first_line
from .query import _compiled_inline, _positional, _Query
from .schemas import _Frame

# PostgreSQL through DuckDB's postgres scanner (one DuckDB instance per process, the extension
# loaded once; each load attaches the database read-only under its own name and detaches it).

_DUCKDB_BATCH_ROWS = 65_536
_duckdb_lock = threading.Lock()
_duckdb_database = None
_duckdb_running: dict[Any, URL] = {}  # the cursors of the loads under way and their databases


def _interrupt_duckdb() -> None:
    """End every DuckDB load under way (a run's time limit expired: deadline.py).

    DuckDB checks its interrupt flag between tasks only, and the postgres scanner waits for COPY
    data in a blocking socket read: against a database whose network path froze it would wait
    forever. So the process's own sockets to those databases are shut down as well: the read
    returns, libpq reports the connection closed and the load raises."""
    with _duckdb_lock:
        running = dict(_duckdb_running)
    for cursor in running:
        cursor.interrupt()
    _shut_down_sockets_to({(url.host, url.port or 5432) for url in running.values()})


def _shut_down_sockets_to(servers: set[tuple[str | None, int]]) -> None:
    """shutdown() this process's sockets connected to ``servers`` ((host or None for the local
    Unix socket, port)); Linux (/proc/self/fd), elsewhere nothing happens."""
    import os
    import socket

    addresses: set[str | tuple[str | int, int]] = set()
    for host, port in servers:
        if host is None or host.startswith("/"):
            addresses.add(f".s.PGSQL.{port}")
            continue
        try:
            addresses |= {(info[4][0], port) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
        except OSError:
            continue
    try:
        descriptors = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for descriptor in descriptors:
        try:
            copy = os.dup(descriptor)
        except OSError:  # closed meanwhile
            continue
        try:
            duplicate = socket.socket(fileno=copy)
        except OSError:  # not a socket
            os.close(copy)
            continue
        with duplicate:
            try:
                peer = duplicate.getpeername()
            except OSError:
                continue
            matches = (isinstance(peer, str) and any(peer.endswith(a) for a in addresses if isinstance(a, str))
                       or isinstance(peer, tuple) and tuple(peer[:2]) in addresses)
            if matches and duplicate.type == socket.SOCK_STREAM:
                try:
                    duplicate.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


register_interrupter(_interrupt_duckdb)


def _duckdb_available() -> bool:
    try:
        _duckdb()
    except ImportError as exc:
        warnings.warn(f"{exc}: reading PostgreSQL row by row instead (slow)", RuntimeWarning, stacklevel=4)
        return False
    return True


def _duckdb():
    global _duckdb_database
    with _duckdb_lock:
        if _duckdb_database is None:
            import duckdb

            try:
                import duckdb_extension_postgres_scanner as scanner
            except ImportError:
                raise ImportError("the package duckdb-extension-postgres-scanner is not installed") from None
            found = sorted(Path(scanner.__path__[0]).rglob(f"v{duckdb.__version__}/postgres_scanner.duckdb_extension"))
            if not found:
                raise ImportError(f"duckdb-extension-postgres-scanner has no build for duckdb {duckdb.__version__}")
            database = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False,
                                                          "autoload_known_extensions": False})
            database.execute(f"LOAD {_sql_string(str(found[0]))}")
            database.execute("SET TimeZone = 'UTC'")
            # a sort too big for memory (chunked loads) spills here, not into the working directory
            spill = Path(tempfile.gettempdir()) / "shivx-analytics-duckdb"
            database.execute(f"SET temp_directory = {_sql_string(str(spill))}")
            _duckdb_database = database
        return _duckdb_database


def _duckdb_batches(url: URL, query: _Query, fetch: list[str], size: int | None, ordered: bool) -> Generator[pa.Table, None, None]:
    import duckdb

    frame = query.frame
    alias = f"shivx_{uuid.uuid4().hex}"
    if query.native:
        # PostgreSQL runs the whole statement (values inlined as escaped literals: postgres_query
        # takes no parameters), so it can use indexes DuckDB knows nothing of, e.g. GIN on details.
        remote = _compiled_inline(query.select(fetch, "postgresql", ordered=False, inline=True))
        sql = "SELECT * FROM postgres_query($1, $2)"
        if ordered:
            sql += f" ORDER BY {_duckdb_identifier(frame.time)}, {_duckdb_identifier(frame.id)}"
        params = [alias, remote]
    else:
        sql, params = _positional(query.select(fetch, "postgresql", ordered=ordered),
                                  PGDialect(paramstyle="numeric_dollar"))
    libpq = _libpq_uri(url)
    schema = frame.table.schema or "public"
    cursor = _duckdb().cursor()
    with _duckdb_lock:
        _duckdb_running[cursor] = url
    attached = False
    try:
        try:
            # Unfiltered loads read ctid ranges in parallel; filtered ones one COPY that can use indexes.
            cursor.execute(f"SET pg_use_ctid_scan = {'false' if query.filtered else 'true'}")
            cursor.execute(f"ATTACH {_sql_string(libpq)} AS {alias} (TYPE postgres, READ_ONLY)")
            attached = True
            cursor.execute(f"USE {alias}.{schema}")
            result = cursor.execute(sql, params)
            to_reader = getattr(result, "to_arrow_reader", None) or result.fetch_record_batch
            reader = to_reader(min(size or _DUCKDB_BATCH_ROWS, _DUCKDB_BATCH_ROWS))
        except duckdb.Error as exc:
            raise _duckdb_error(exc, url, frame) from None
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except (duckdb.Error, OSError) as exc:  # Arrow's stream reader hands DuckDB's errors on as OSError
                raise _duckdb_error(exc, url, frame) from None
            yield pa.Table.from_batches([batch])
    finally:
        try:
            if attached:
                cursor.execute("USE memory")
                cursor.execute(f"DETACH {alias}")
        finally:
            with _duckdb_lock:
                _duckdb_running.pop(cursor, None)
            cursor.close()


def _duckdb_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _libpq_uri(url: URL) -> str:
    """``url`` as libpq reads it: query values (sslrootcert, options ...) percent-encoded, since
    libpq takes '+' literally where SQLAlchemy's rendering means a space."""
    url = with_secret_parameters(url)  # ?sslpassword= ...: kept out of engines' URLs (db.engine_url)
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return f"{base}?{urlencode(dict(url.query), doseq=True, quote_via=quote)}" if url.query else base


def _duckdb_error(exc: Exception, url: URL, frame: _Frame) -> Exception:
    message = redact(_first_line(exc), with_secret_parameters(url))  # DuckDB may quote the libpq URI
    if url.password:
        for secret in {str(url.password), quote(str(url.password), safe="")}:
            message = message.replace(secret, "***")
    if "connect" in message.lower():
        return DatabaseUnavailable(f"loading {frame.name} from {mask_url(url)}: {message}; {_RETRY_ADVICE}")
    return LoadError(f"loading {frame.name} from {mask_url(url)}: {message}")


def _sql_string(text: str) -> str:
    """A SQL string literal (for DuckDB's ATTACH and LOAD, which take no parameters)."""
    return "'" + text.replace("'", "''") + "'"
