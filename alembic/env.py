"""Alembic environment: async engines, or a connection handed in by the caller (tests, sx.migrate)."""

from __future__ import annotations

import asyncio
from logging.config import fileConfig

from sqlalchemy import pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine as sa_create_async_engine

import shivx_analytics.models  # noqa: F401  (registers every table on the metadata)
from alembic import context
from shivx_analytics.db import comparison_options, mask_url, normalize_url, resolve_url
from shivx_analytics.models import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logging", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = metadata


def _url() -> str:
    return resolve_url(config.attributes.get("url") or config.get_main_option("sqlalchemy.url") or None)


def _configure(connection: Connection | None = None, **kwargs) -> None:
    dialect = connection.dialect.name if connection is not None else normalize_url(_url()).get_backend_name()
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        **comparison_options(dialect),
        render_as_batch=dialect == "sqlite",
        **kwargs,
    )


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade head --sql``)."""
    _configure(url=normalize_url(_url()), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def _run_sync(connection: Connection) -> None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_async() -> None:
    # A plain engine, not the application's: on SQLite foreign-key enforcement stays off
    # while batch mode recreates tables.
    engine = sa_create_async_engine(normalize_url(_url(), asynchronous=True), poolclass=pool.NullPool)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_sync)
            await connection.commit()
    except Exception as exc:
        raise RuntimeError(f"migration on {mask_url(_url())} failed: {exc}") from exc
    finally:
        await engine.dispose()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_sync(connection)
    else:
        asyncio.run(_run_async())


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
