"""Engines, sessions, URLs, health: everything that opens a connection goes through here.

Why one module of ~700 lines: every engine, sync or async, is created here with the same
settings (TLS, timeouts, keepalives, SQLite pragmas) and every URL is masked, normalized and
stripped of secret query parameters here. Keeping the secrets' one way in and one way out in a
single file is what lets tests/test_secret_hygiene.py vouch that no rendering shows them.
"""

from __future__ import annotations

import contextlib
import random
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import quote, urlencode

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine
from sqlalchemy.orm import Session, sessionmaker

from shivx_analytics.config import Settings, get_settings

__all__ = [
    "DatabaseUnavailable", "normalize_url", "mask_url", "create_engine", "create_async_engine",
    "init_db", "close_db", "get_db", "get_session", "health_check", "HealthStatus", "connect", "resolve_url",
    "analytics_url", "engine_url",
    "StatementTimeout", "run_in_transaction", "is_retryable", "is_connection_lost", "redact",
    "is_secret_parameter", "secret_parameters", "with_secret_parameters",
    "RunTimeout", "engine_settings", "statement_timeout_message", "watch_statement_time",
]

SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite"}
ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


TLS_PARAMETERS = ("sslmode", "sslrootcert", "sslcert", "sslkey")  # libpq's names, in URL query or Settings
# A URL query parameter whose name holds one of these carries a secret (libpq's password and
# sslpassword, a driver's token or api_key ...): shown as *** wherever a URL is shown.
SECRET_PARAMETER_WORDS = ("password", "passwd", "pwd", "secret", "token", "key")
MASK = "***"
REDACT_MIN_CHARS = 4  # shorter secrets are not searched for in free text (they would mangle every message)
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock detected
SQLITE_PROGRESS_STEPS = 1_000  # SQLite VM instructions between two statement-timeout checks

T = TypeVar("T")


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message carries the URL with its password masked."""


class StatementTimeout(RuntimeError):
    """A statement ran longer than Settings.statement_timeout_ms and was cancelled."""


class RunTimeout(DatabaseUnavailable):
    """A whole run took longer than its time limit (``--timeout`` / SHIVX_TIMEOUT_S): the database
    stopped answering, most likely. A DatabaseUnavailable, so the CLI exits 3 for it."""


def statement_timeout_message(limit_ms: int) -> str:
    """What a statement cancelled by the statement timeout says (engines and loaders alike)."""
    return (f"statement cancelled: it ran longer than the statement timeout of {limit_ms} ms "
            "(Settings.statement_timeout_ms / SHIVX_STATEMENT_TIMEOUT_MS); narrow the query "
            "or raise the limit")


def resolve_url(url: str | URL | None = None) -> str:
    """``url``, else SHIVX_DATABASE_URL, else the local SQLite file."""
    if url is None:
        url = get_settings().database_url
    text = url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)
    redact("", text)  # remember its secrets: any message quoting them is masked when shown
    return text


def analytics_url(url: str | URL | None = None, *, primary: str | URL | None = None) -> str:
    """Where analytics reads (loaders, reports, ``report`` and ``notebook run``): ``url``, else
    SHIVX_ANALYTICS_DATABASE_URL (a read replica, say), else ``primary``, else
    SHIVX_DATABASE_URL, else the local SQLite file. The one place that decides it."""
    if url is not None:
        return resolve_url(url)
    replica = get_settings().analytics_database_url
    if replica:
        return resolve_url(replica)
    return resolve_url(primary)


def normalize_url(url: str | URL, *, asynchronous: bool = False) -> URL:
    """The URL with our driver for its backend: psycopg/asyncpg for PostgreSQL, sqlite/aiosqlite.

    PostgreSQL: a password given as ``?password=`` moves into the user-info, where SQLAlchemy
    hides it in every rendering (repr(engine), str(engine.url), logs); it wins over a user-info
    password, as it does for the drivers. SQLite has no use for secrets (its driver ignores such
    query parameters): they are dropped, so no rendering of the engine can show them."""
    parsed = make_url(url) if not isinstance(url, URL) else url
    _remember_secrets(parsed)
    if "password" in parsed.query and parsed.get_backend_name() in ("postgresql", "postgres"):
        password = parsed.query["password"]
        password = password[-1] if isinstance(password, tuple) else password
        parsed = parsed.set(password=password).difference_update_query(["password"])
    if parsed.get_backend_name() == "sqlite":
        parsed = parsed.difference_update_query([name for name in parsed.query if is_secret_parameter(name)])
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    drivers = ASYNC_DRIVERS if asynchronous else SYNC_DRIVERS
    if backend not in drivers:
        raise ValueError(f"unsupported database {parsed.drivername!r}: use a postgresql:// or sqlite:// URL")
    return parsed.set(drivername=drivers[backend])


def is_secret_parameter(name: str) -> bool:
    """True for a URL query parameter that carries a secret (password, sslpassword, api_key, token ...)."""
    lowered = name.lower()
    return any(word in lowered for word in SECRET_PARAMETER_WORDS)


def mask_url(url: str | URL) -> str:
    """The URL as text with every secret replaced by ``***``: the user-info password and the
    value of each query parameter naming a password, secret, token or key (``?password=``,
    ``sslpassword``, ...). The one function that shows a database URL: health, errors, report
    parameters, the CLI and notebooks all go through it."""
    try:
        parsed = make_url(url) if not isinstance(url, URL) else url
    except Exception:
        return "<unparseable database URL>"
    _remember_secrets(parsed)
    # The transport tuning every engine adds (connect timeout, keepalives) says nothing about
    # which database this is: left out, so labels name the database as it was given.
    parsed = parsed.difference_update_query(CONNECTION_TUNING_PARAMETERS)
    secret = {name: MASK for name in parsed.query if is_secret_parameter(name)}
    text = parsed.update_query_dict(secret).render_as_string(hide_password=True)
    return text.replace("=%2A%2A%2A", "=" + MASK) if secret else text


# Every secret of a URL this process has parsed (its password, its secret query values): error
# text from drivers and libraries is passed through redact() before it is shown, so a secret
# that some message quotes verbatim is masked too.
_KNOWN_SECRETS: set[str] = set()


def _remember_secrets(url: URL) -> None:
    values = [url.password] + [value for name, value in url.query.items() if is_secret_parameter(name)]
    for value in values:
        for text in (value if isinstance(value, tuple) else (value,)):
            if text is not None and len(str(text)) >= REDACT_MIN_CHARS:
                _KNOWN_SECRETS.add(str(text))
                _KNOWN_SECRETS.add(quote(str(text), safe=""))


def redact(text: str, *urls: str | URL) -> str:
    """``text`` with every known secret (of ``urls`` and of any URL this process parsed) replaced by ***."""
    for url in urls:
        with contextlib.suppress(Exception):
            _remember_secrets(make_url(url) if not isinstance(url, URL) else url)
    for secret in sorted(_KNOWN_SECRETS, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def create_engine(url: str | URL | None = None, *, settings: Settings | None = None, **kwargs: Any) -> Engine:
    """A sync engine: pooled for PostgreSQL; foreign keys, WAL and a busy timeout for SQLite.

    From the settings: TLS (SHIVX_DB_SSLMODE ..., where the URL names none) and the statement
    timeout (SHIVX_STATEMENT_TIMEOUT_MS), whose expiry raises StatementTimeout.
    """
    settings = settings or get_settings()
    target = engine_url(url, settings=settings)
    options = _engine_options(target, settings)
    # the secret query parameters engine_url() took out of the URL (libpq keywords), the caller's own kept
    connect_args = {**options.pop("connect_args", {}), **secret_parameters(target), **kwargs.pop("connect_args", {})}
    engine = sa.create_engine(target, connect_args=connect_args, **(options | kwargs | NEVER_LOG_PARAMETERS))
    if target.get_backend_name() == "sqlite":
        _configure_sqlite(engine, target, settings)
    _report_statement_timeouts(engine, settings)
    _ENGINE_SETTINGS[engine] = settings
    return engine


_ENGINE_SETTINGS: weakref.WeakKeyDictionary[Engine, Settings] = weakref.WeakKeyDictionary()


def engine_settings(engine: Engine) -> Settings:
    """The settings ``engine`` was created with (create_engine's), else the process-wide ones: the
    loaders' own connections to the engine's database follow them (the statement timeout, say)."""
    return _ENGINE_SETTINGS.get(engine) or get_settings()


def engine_url(url: str | URL | None = None, *, settings: Settings | None = None) -> URL:
    """The URL create_engine connects to: our driver; for PostgreSQL with the settings' TLS,
    connect timeout, TCP keepalives and statement timeout in its query (not only connect_args: the
    loaders' DuckDB/libpq path reads it), and without its secret query parameters (sslpassword ...:
    see secret_parameters)."""
    settings = settings or get_settings()
    target = normalize_url(resolve_url(url) if url is None or isinstance(url, str) else url)
    if target.get_backend_name() == "postgresql":
        target = _without_secret_parameters(_with_postgres_settings(target, settings))
    return target


# PostgreSQL: a secret query parameter (?sslpassword=, ...) never stays in an engine's URL, which
# repr(engine), str(engine.url) and SQLAlchemy's logs render with only the user-info password
# hidden. engine_url() takes them out; the driver gets them through connect_args (create_engine),
# a libpq URI built from the URL through with_secret_parameters (the loaders' DuckDB transport).
# Keyed by the URL without them (the engine's own URL), in this process only.
_SECRET_PARAMETERS: dict[URL, dict[str, str]] = {}


def _without_secret_parameters(url: URL) -> URL:
    names = [name for name in url.query if is_secret_parameter(name)]
    if not names:
        return url
    public = url.difference_update_query(names)
    _SECRET_PARAMETERS[public] = {name: _last(url.query[name]) for name in names}
    return public


def _last(value: str | tuple[str, ...]) -> str:
    return value[-1] if isinstance(value, tuple) else value


def secret_parameters(url: URL) -> dict[str, str]:
    """The secret query parameters engine_url() took out of ``url`` (name -> value; {} if none)."""
    return dict(_SECRET_PARAMETERS.get(url, {}))


def with_secret_parameters(url: URL) -> URL:
    """``url`` with the secret query parameters engine_url() took out of it put back: for a libpq
    connection string handed to another client (DuckDB), never for showing."""
    secrets = secret_parameters(url)
    return url.update_query_dict(secrets) if secrets else url


def create_async_engine(url: str | URL | None = None, *, settings: Settings | None = None,
                        **kwargs: Any) -> AsyncEngine:
    """An async engine (asyncpg or aiosqlite) with the same settings as create_engine."""
    settings = settings or get_settings()
    target = normalize_url(resolve_url(url) if url is None or isinstance(url, str) else url, asynchronous=True)
    options = _engine_options(target, settings)
    if target.get_backend_name() == "postgresql":
        target = _without_secret_parameters(target)
        target, options["connect_args"] = _asyncpg_connect_args(target, settings)
    engine = sa_create_async_engine(target, **(options | kwargs | NEVER_LOG_PARAMETERS))
    if target.get_backend_name() == "sqlite":
        _configure_sqlite(engine.sync_engine, target, settings)
    _report_statement_timeouts(engine.sync_engine, settings)
    return engine


# Statement parameters carry password and key hashes (users, api_keys inserts): they are never
# logged (SHIVX_ECHO, echo=...) nor put in an error's message, whatever the caller passes.
NEVER_LOG_PARAMETERS = {"hide_parameters": True}


def _engine_options(url: URL, settings: Settings) -> dict[str, Any]:
    options: dict[str, Any] = {"echo": settings.echo, "pool_pre_ping": True}
    if url.get_backend_name() == "postgresql":
        options |= {
            "pool_size": settings.pool_size,
            "max_overflow": settings.max_overflow,
            "pool_timeout": settings.pool_timeout,
            "pool_recycle": settings.pool_recycle,
        }
    else:
        options["connect_args"] = {"timeout": settings.sqlite_busy_timeout}
    return options


def _tls_parameters(url: URL, settings: Settings) -> dict[str, str]:
    """sslmode and certificate files: the URL's query, else the settings (SHIVX_DB_SSLMODE, ...)."""
    chosen = {name: getattr(settings, f"db_{name}") for name in TLS_PARAMETERS}
    chosen |= {name: url.query[name] for name in TLS_PARAMETERS if name in url.query}
    return {name: str(value) for name, value in chosen.items() if value is not None}


CONNECTION_TUNING_PARAMETERS = ("connect_timeout", "keepalives", "keepalives_idle", "keepalives_interval",
                                 "keepalives_count")


def _connection_parameters(url: URL, settings: Settings) -> dict[str, str]:
    """libpq's connect timeout and TCP keepalives from the settings, where the URL names none:
    without them a connection to a database that stopped answering waits forever."""
    chosen = dict(zip(CONNECTION_TUNING_PARAMETERS, (
        settings.connect_timeout_s, 1, settings.keepalives_idle_s, settings.keepalives_interval_s,
        settings.keepalives_count)))
    return {name: str(value) for name, value in chosen.items() if name not in url.query}


def _with_postgres_settings(url: URL, settings: Settings, *, statement_timeout: bool = True) -> URL:
    """psycopg (and libpq) read TLS settings, the connect timeout, keepalives and
    ``options=-c statement_timeout=N`` from the URL query."""
    query = _tls_parameters(url, settings) | _connection_parameters(url, settings)
    if statement_timeout and settings.statement_timeout_ms is not None:
        existing = url.query.get("options")
        existing = " ".join(existing) if isinstance(existing, tuple) else existing
        timeout = f"-c statement_timeout={settings.statement_timeout_ms}"
        query["options"] = f"{existing} {timeout}" if existing else timeout
    return url.update_query_dict(query) if query else url


def _asyncpg_connect_args(url: URL, settings: Settings) -> tuple[URL, dict[str, Any]]:
    """asyncpg takes TLS settings only from a DSN, the statement timeout as a server setting and
    the connect timeout as ``timeout`` (it has no keepalive settings: the operating system's apply)."""
    connect_args: dict[str, Any] = {"timeout": settings.connect_timeout_s}
    tls = _tls_parameters(url, settings) | secret_parameters(url)  # asyncpg reads sslpassword from a DSN only
    if tls:
        connect_args["dsn"] = "postgresql://?" + urlencode(tls)
        url = url.difference_update_query(TLS_PARAMETERS)
    if settings.statement_timeout_ms is not None:
        connect_args["server_settings"] = {"statement_timeout": str(settings.statement_timeout_ms)}
    return url, connect_args


def _report_statement_timeouts(engine: Engine, settings: Settings) -> None:
    """A statement cancelled by the statement timeout raises StatementTimeout, naming the limit."""
    limit_ms = settings.statement_timeout_ms
    if limit_ms is None:
        return

    @event.listens_for(engine, "handle_error")
    def _on_error(context):  # noqa: ANN001
        original = context.original_exception
        clock = _statement_clock(context.connection)
        timed_out = (clock is not None and clock.fired) or (
            getattr(original, "sqlstate", None) == "57014" and "statement timeout" in str(original))
        if timed_out:
            return StatementTimeout(statement_timeout_message(limit_ms))
        return None


class _StatementClock:
    """SQLite's statement timeout: a progress handler interrupts a statement past its deadline."""

    def __init__(self, limit_ms: int):
        self.limit = limit_ms / 1000
        self.deadline: float | None = None
        self.fired = False

    def start(self) -> None:
        self.deadline, self.fired = time.monotonic() + self.limit, False

    def stop(self) -> None:
        self.deadline = None

    def expired(self) -> int:
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.fired = True
            return 1  # non-zero: SQLite abandons the statement ("interrupted")
        return 0


def watch_statement_time(dbapi_connection: Any, limit_ms: int) -> _StatementClock:
    """A statement clock on a sqlite3 connection: past ``limit_ms`` after ``clock.start()`` the
    running statement is interrupted (sqlite3 raises "interrupted"; ``clock.fired`` says why)."""
    clock = _StatementClock(limit_ms)
    dbapi_connection.set_progress_handler(clock.expired, SQLITE_PROGRESS_STEPS)
    return clock


def _statement_clock(connection: Connection | None) -> _StatementClock | None:
    if connection is None or connection.closed or connection.invalidated:
        return None
    return connection.connection.info.get("shivx_statement_clock")


def _is_file_database(url: URL) -> bool:
    database = url.database or ""
    return bool(database) and database != ":memory:" and not database.startswith("file::memory:")


def _use_wal(cursor) -> None:  # noqa: ANN001
    """Switch a SQLite file to WAL, unless it already is or cannot be written.

    The switch writes the file's header: on a read-only file (permissions, an immutable file, a
    ``mode=ro`` URI) it fails with "attempt to write a readonly database", and every connection
    -- reports and loaders only read -- failed with it. Such a file is read in the journal mode it has.
    """
    cursor.execute("PRAGMA journal_mode")  # not chained: aiosqlite's adapted execute returns no cursor
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
    except Exception as exc:  # sqlite3's or aiosqlite's OperationalError
        if "readonly" not in str(exc).lower().replace("read-only", "readonly"):
            raise


def _configure_sqlite(engine: Engine, url: URL, settings: Settings) -> None:
    """Foreign keys on every application connection; WAL for files; a busy timeout; the statement timeout."""
    wal = _is_file_database(url)
    busy_ms = int(settings.sqlite_busy_timeout * 1000)
    limit_ms = settings.statement_timeout_ms

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if wal:
                _use_wal(cursor)
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()
        if limit_ms is not None and hasattr(dbapi_connection, "set_progress_handler"):  # sqlite3, not aiosqlite
            record.info["shivx_statement_clock"] = watch_statement_time(dbapi_connection, limit_ms)

    if limit_ms is None:
        return

    # The clock runs from a statement's start; it stops once a statement that returns no rows has
    # run, and a query's rows are fetched within its own limit (sqlite3 steps the query as rows are read).
    @event.listens_for(engine, "before_cursor_execute")
    def _start_clock(connection, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        clock = _statement_clock(connection)
        if clock is not None:
            clock.start()

    @event.listens_for(engine, "after_cursor_execute")
    def _stop_clock(connection, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        clock = _statement_clock(connection)
        if clock is not None and cursor.description is None:
            clock.stop()


# The application's engine and session factory, for init_db / get_db (the seed's FastAPI wiring).
_async_engine: AsyncEngine | None = None
_async_sessionmaker: async_sessionmaker[AsyncSession] | None = None


async def init_db(settings: Settings | None = None) -> AsyncEngine:
    """Create the application's async engine and check that the database answers."""
    global _async_engine, _async_sessionmaker
    settings = settings or get_settings()
    if _async_engine is not None:
        await close_db()
    engine = create_async_engine(settings.database_url, settings=settings)
    try:
        async with engine.connect() as connection:
            await connection.execute(sa.text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        raise DatabaseUnavailable(f"cannot reach {mask_url(settings.database_url)}: {_reason(exc)}") from None
    _async_engine = engine
    _async_sessionmaker = async_sessionmaker(engine, expire_on_commit=False)
    return engine


async def close_db() -> None:
    """Dispose of the application's engine (idempotent)."""
    global _async_engine, _async_sessionmaker
    if _async_engine is not None:
        await _async_engine.dispose()
    _async_engine = _async_sessionmaker = None


async def get_db() -> AsyncIterator[AsyncSession]:
    """An AsyncSession per request (FastAPI dependency): rolled back on error, always closed."""
    if _async_sessionmaker is None:
        raise RuntimeError("the database is not initialised: call `await init_db(settings)` at startup")
    async with _async_sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise


@contextmanager
def get_session(source: Any = None) -> Iterator[Session]:
    """A sync Session on ``source`` (Engine, Connection or URL); committed on success."""
    engine, owned = _engine_for(source)
    try:
        with sessionmaker(engine, expire_on_commit=False).begin() as session:
            yield session
    finally:
        if owned:
            cast(Engine, engine).dispose()  # one of ours: an Engine


def _engine_for(source: Any) -> tuple[Engine | Connection, bool]:
    if isinstance(source, (Engine, Connection)):
        return source, False
    return create_engine(source), True


def run_in_transaction(engine: Engine, work: Callable[[Connection], T], *, attempts: int = 5,
                       on_retry: Callable[[int, BaseException], None] | None = None) -> T:
    """``work(connection)`` in a transaction, committed; retried on a serialization failure or deadlock.

    PostgreSQL SQLSTATE 40001 / 40P01 roll the transaction back and run ``work`` again in a fresh
    one, up to ``attempts`` times in all, with jittered exponential backoff (``work`` must be
    safe to repeat: all its effects are in the transaction). SQLite starts the transaction with
    BEGIN IMMEDIATE, so a second writer waits for the busy timeout instead of failing when a
    read turns into a write. ``on_retry(attempt, error)`` is called before each retry.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(1, attempts + 1):
        try:
            with engine.connect() as connection, connection.begin():
                if connection.dialect.name == "sqlite":
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                return work(connection)
        except sa.exc.DBAPIError as exc:
            if attempt == attempts or not is_retryable(exc):
                raise
            if on_retry is not None:
                on_retry(attempt, exc)
            time.sleep(min(1.0, 0.02 * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5))
    raise AssertionError("unreachable")


def is_retryable(exc: BaseException) -> bool:
    """True for PostgreSQL serialization failures (40001) and deadlocks (40P01)."""
    return _sqlstate(exc) in RETRYABLE_SQLSTATES


def is_connection_lost(exc: BaseException) -> bool:
    """True if ``exc`` says the database went away or could not be reached (SQLAlchemy's or the driver's)."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    state = _sqlstate(exc) or ""
    if state.startswith("08") or state in ("57P01", "57P02", "57P03"):  # connection exception; shutdowns
        return True
    original = getattr(exc, "orig", None) or exc
    if isinstance(original, ConnectionError):  # the socket itself (asyncpg raises these too)
        return True
    # DB-API drivers name their classes alike (psycopg, sqlite3): connection trouble is Operational
    operational = type(original).__name__ in ("OperationalError", "InterfaceError")
    text = str(original).lower()
    return operational and ("connect" in text or "unable to open" in text)


def _sqlstate(exc: BaseException) -> str | None:
    original = getattr(exc, "orig", None) or exc
    return getattr(original, "sqlstate", None) or getattr(original, "pgcode", None)


@dataclass(frozen=True)
class HealthStatus:
    backend: str
    server_version: str
    latency_ms: float
    url: str  # password masked

    def as_dict(self) -> dict[str, Any]:
        return {"backend": self.backend, "server_version": self.server_version,
                "latency_ms": round(self.latency_ms, 3), "url": self.url}


def health_check(source: Engine | str | URL | None = None) -> HealthStatus:
    """Connect, run a trivial query and report backend, server version and round-trip latency."""
    engine = source if isinstance(source, Engine) else create_engine(source)
    try:
        started = time.perf_counter()
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1")).scalar_one()
            latency_ms = (time.perf_counter() - started) * 1000
            backend = engine.dialect.name
            if backend == "postgresql":
                version = connection.execute(sa.text("SHOW server_version")).scalar_one()
            else:
                version = connection.execute(sa.text("SELECT sqlite_version()")).scalar_one()
    except (SQLAlchemyError, OSError) as exc:
        raise DatabaseUnavailable(f"cannot reach {mask_url(engine.url)}: {_reason(exc)}") from None
    finally:
        if engine is not source:
            engine.dispose()
    return HealthStatus(backend=backend, server_version=str(version), latency_ms=latency_ms, url=mask_url(engine.url))


def _reason(exc: BaseException) -> str:
    """The driver's first line, without anything that could echo a password."""
    original = getattr(exc, "orig", None) or exc
    text = str(original).strip().splitlines()[0] if str(original).strip() else type(original).__name__
    return text


def connect(url: str | URL | None = None, *, analytics: bool = False) -> Engine:
    """An Engine for ``url`` (default: SHIVX_DATABASE_URL, else the local SQLite file).

    ``analytics=True``: without ``url``, the analytics database instead (analytics_url():
    SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL), for reading only.
    """
    return create_engine(analytics_url(url) if analytics else url)


def database_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL (also of a ``sqlite:///file:PATH?mode=ro&uri=true`` URI), or None."""
    parsed = make_url(url) if not isinstance(url, URL) else url
    if parsed.get_backend_name() == "sqlite" and _is_file_database(parsed):
        database = parsed.database or ""  # a file database has a name (_is_file_database)
        if str(parsed.query.get("uri", "")).lower() in ("true", "1") and database.startswith("file:"):
            from urllib.parse import unquote, urlsplit

            return Path(unquote(urlsplit(database).path))
        return Path(database)
    return None


# Migrations (Alembic), programmatic: the CLI and sx.migrate use these.

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def alembic_config(url: str | URL | None = None):
    """An Alembic Config for this project's migrations, pointed at ``url``."""
    from alembic.config import Config

    ini = PROJECT_ROOT / "alembic.ini"
    if not ini.exists():
        raise FileNotFoundError(f"{ini} not found: install shivx-analytics from its source tree (pip install -e .)")
    config = Config(str(ini))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.attributes["url"] = resolve_url(url)
    config.attributes["configure_logging"] = False
    return config


def migrate(url: str | URL | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (alembic upgrade)."""
    from alembic import command

    _run_alembic(command.upgrade, url, revision)


def downgrade(url: str | URL | None = None, revision: str = "-1") -> None:
    """Downgrade the database at ``url`` to ``revision`` (alembic downgrade)."""
    from alembic import command

    _run_alembic(command.downgrade, url, revision)


def _run_alembic(operation, url: str | URL | None, revision: str) -> None:
    """Run an Alembic command on a plain sync connection handed to env.py.

    Sync, so it also works where an event loop is already running (Jupyter); a plain engine,
    so SQLite's foreign keys stay off while batch migrations recreate tables.
    """
    target = normalize_url(resolve_url(url))
    if target.get_backend_name() == "postgresql":  # a long migration may outlast the statement timeout
        target = _without_secret_parameters(_with_postgres_settings(target, get_settings(), statement_timeout=False))
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool, connect_args=secret_parameters(target),
                              **NEVER_LOG_PARAMETERS)
    config = alembic_config(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            operation(config, revision)
    except SQLAlchemyError as exc:
        if _is_unreachable(exc):
            raise DatabaseUnavailable(f"cannot reach {mask_url(target)}: {_reason(exc)}") from None
        raise
    finally:
        engine.dispose()


def _is_unreachable(exc: SQLAlchemyError) -> bool:
    text = str(exc).lower()
    return isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)) and (
        "connect" in text or "unable to open" in text)


def current_revision(url: str | URL | None = None) -> str | None:
    """The revision the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"cannot reach {mask_url(engine.url)}: {_reason(exc)}") from None
    finally:
        engine.dispose()


def head_revision() -> str:
    """The newest revision in alembic/versions."""
    from alembic.script import ScriptDirectory

    return cast(str, ScriptDirectory.from_config(alembic_config(None)).get_current_head())  # one head (tested)


def comparison_options(dialect: str) -> dict[str, Any]:
    """Alembic options comparing the models with a database of ``dialect``: types and server
    defaults compared; the audit log's partitions (PostgreSQL) are part of its table, not tables
    of their own; an index the models create on one dialect only (``Index.ddl_if``, e.g. GIN)
    is expected on that dialect only."""
    from shivx_analytics.partitions import is_partition_name

    def include_name(name, type_, parent_names):
        return not (type_ == "table" and name and is_partition_name(name))

    def include_object(obj, name, type_, reflected, compare_to):
        condition = getattr(obj, "_ddl_if", None)
        return not (type_ == "index" and not reflected and condition is not None
                    and condition.dialect not in (None, dialect))

    return {"compare_type": True, "compare_server_default": True,
            "include_name": include_name, "include_object": include_object}


def schema_problems(url: str | URL | None = None) -> list[str]:
    """What separates the database from head and the models (empty when none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from shivx_analytics.models import metadata

    problems = []
    current, head = current_revision(url), head_revision()
    if current != head:
        problems.append(f"database is at {current or 'base'}, head is {head}")
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=comparison_options(connection.dialect.name))
            problems += [str(diff) for diff in compare_metadata(context, metadata)]
    finally:
        engine.dispose()
    return problems
