"""Test databases: create and drop PostgreSQL databases, and the backends under test.

Shared by conftest.py and test modules (a module of its own: notebooks/ has a conftest too).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shivx_analytics.db import create_engine

POSTGRES_URL = os.environ.get("SHIVX_TEST_POSTGRES_URL")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
BACKENDS = ["sqlite", "postgresql"]
POSTGRESQL_ONLY = pytest.mark.parametrize("backend", ["postgresql"])  # tests that need PostgreSQL


def _admin_engine():
    return sa.create_engine(make_url(POSTGRES_URL).set(drivername="postgresql+psycopg"),
                            isolation_level="AUTOCOMMIT")


def create_postgres_database(template: str | None = None) -> str:
    """A new, empty (or template-copied) PostgreSQL database; returns its URL."""
    name = f"shivx_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            suffix = f' TEMPLATE "{template}"' if template else ""
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"{suffix}')
    finally:
        engine.dispose()
    return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)


def drop_postgres_database(url: str) -> None:
    name = make_url(url).database
    assert name.startswith("shivx_test_"), f"refusing to drop {name}: not a test database"
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        engine.dispose()


def require_backend(backend: str) -> None:
    if backend == "postgresql" and not POSTGRES_URL:
        pytest.skip("SHIVX_TEST_POSTGRES_URL not set")


@contextmanager
def engine_of(url: str) -> Iterator[sa.Engine]:
    """The project's engine on url (shivx_analytics.db.create_engine), disposed on exit."""
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def seeded_postgres_database(templates: dict[str, str], seed: Callable[[str], object]) -> Iterator[str]:
    """A PostgreSQL database copied from the session's migrated template and filled by
    seed(url); yields its URL and drops it on exit (skips without SHIVX_TEST_POSTGRES_URL)."""
    require_backend("postgresql")
    url = create_postgres_database(template=templates["postgresql"])
    try:
        seed(url)
        yield url
    finally:
        drop_postgres_database(url)


def copy_migrated_database(backend: str, templates: dict[str, str], directory, name: str = "test.db") -> str:
    """A new database copied from the session's migrated template; returns its URL."""
    require_backend(backend)
    if backend == "sqlite":
        import shutil

        directory.mkdir(parents=True, exist_ok=True)
        target = directory / name
        shutil.copyfile(templates["sqlite"], target)
        return f"sqlite:///{target}"
    return create_postgres_database(template=templates["postgresql"])
