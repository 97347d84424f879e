"""Engines, sessions, URLs, health: everything that opens a connection goes through here."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
]

SYNC_DRIVERS = {"postgresql": "postgresql+psycopg", "sqlite": "sqlite"}
ASYNC_DRIVERS = {"postgresql": "postgresql+asyncpg", "sqlite": "sqlite+aiosqlite"}


class DatabaseUnavailable(RuntimeError):
    """The database could not be reached; the message carries the URL with its password masked."""


def resolve_url(url: str | URL | None = None) -> str:
    """``url``, else SHIVX_DATABASE_URL, else the local SQLite file."""
    if url is None:
        return get_settings().database_url
    return url.render_as_string(hide_password=False) if isinstance(url, URL) else str(url)


def normalize_url(url: str | URL, *, asynchronous: bool = False) -> URL:
    """The URL with our driver for its backend: psycopg/asyncpg for PostgreSQL, sqlite/aiosqlite."""
    parsed = make_url(url) if not isinstance(url, URL) else url
    backend = parsed.get_backend_name()
    if backend == "postgres":
        backend = "postgresql"
    drivers = ASYNC_DRIVERS if asynchronous else SYNC_DRIVERS
    if backend not in drivers:
        raise ValueError(f"unsupported database {parsed.drivername!r}: use a postgresql:// or sqlite:// URL")
    return parsed.set(drivername=drivers[backend])


def mask_url(url: str | URL) -> str:
    """The URL as text with any password replaced by ``***``."""
    try:
        parsed = make_url(url) if not isinstance(url, URL) else url
    except Exception:
        return "<unparseable database URL>"
    return parsed.render_as_string(hide_password=True)


def create_engine(url: str | URL | None = None, *, settings: Settings | None = None, **kwargs: Any) -> Engine:
    """A sync engine: pooled for PostgreSQL; foreign keys, WAL and a busy timeout for SQLite."""
    settings = settings or get_settings()
    target = normalize_url(resolve_url(url) if url is None or isinstance(url, str) else url)
    options = _engine_options(target, settings) | kwargs
    engine = sa.create_engine(target, **options)
    if target.get_backend_name() == "sqlite":
        _configure_sqlite(engine, target, settings)
    return engine


def create_async_engine(url: str | URL | None = None, *, settings: Settings | None = None,
                        **kwargs: Any) -> AsyncEngine:
    """An async engine (asyncpg or aiosqlite) with the same settings as create_engine."""
    settings = settings or get_settings()
    target = normalize_url(resolve_url(url) if url is None or isinstance(url, str) else url, asynchronous=True)
    options = _engine_options(target, settings) | kwargs
    engine = sa_create_async_engine(target, **options)
    if target.get_backend_name() == "sqlite":
        _configure_sqlite(engine.sync_engine, target, settings)
    return engine


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


def _is_file_database(url: URL) -> bool:
    return bool(url.database) and url.database != ":memory:" and not url.database.startswith("file::memory:")


def _configure_sqlite(engine: Engine, url: URL, settings: Settings) -> None:
    """Foreign keys on every application connection; WAL for files; a busy timeout."""
    wal = _is_file_database(url)
    busy_ms = int(settings.sqlite_busy_timeout * 1000)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):  # noqa: ANN001
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
        finally:
            cursor.close()


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
            engine.dispose()


def _engine_for(source: Any) -> tuple[Engine | Connection, bool]:
    if isinstance(source, (Engine, Connection)):
        return source, False
    return create_engine(source), True


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


def connect(url: str | URL | None = None) -> Engine:
    """An Engine for ``url`` (default: SHIVX_DATABASE_URL, else the local SQLite file)."""
    return create_engine(url)


def database_path(url: str | URL) -> Path | None:
    """The file of a SQLite URL, or None."""
    parsed = make_url(url) if not isinstance(url, URL) else url
    if parsed.get_backend_name() == "sqlite" and _is_file_database(parsed):
        return Path(parsed.database)
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
    engine = sa.create_engine(target, poolclass=sa.pool.NullPool)
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

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


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
            context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                                   "compare_server_default": True})
            problems += [str(diff) for diff in compare_metadata(context, metadata)]
    finally:
        engine.dispose()
    return problems
