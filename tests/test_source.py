"""sources.py: every kind of source becomes a read connection or a write transaction, on both backends."""

from __future__ import annotations

import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

import shivx_analytics as sx
from shivx_analytics import aggregates, sources
from shivx_analytics.aggregates.views import refresh_views
from shivx_analytics.audit_chain import verify_audit_chain
from shivx_analytics.db import create_engine
from shivx_analytics.frames import load_users
from shivx_analytics.models import User
from shivx_analytics.reports._common import opened

KINDS = ["none", "text", "url", "engine", "connection", "session"]


@pytest.fixture
def probe(engine) -> sa.Engine:
    """The migrated database with a one-column table to write to."""
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE source_probe (x INTEGER)")
    return engine


def _count(engine: sa.Engine) -> int:
    with engine.connect() as connection:
        return connection.exec_driver_sql("SELECT count(*) FROM source_probe").scalar_one()


def _source_of(kind: str, db_url: str, engine: sa.Engine, settings_env, stack: list):
    """The database at db_url as a source of the given kind (Connection and Session: opened here,
    closed by the test)."""
    if kind == "none":
        settings_env.set(SHIVX_DATABASE_URL=db_url, SHIVX_ANALYTICS_DATABASE_URL=db_url)
        return None
    if kind == "text":
        return db_url
    if kind == "url":
        return make_url(db_url)
    if kind == "engine":
        return engine
    if kind == "connection":
        connection = engine.connect()
        stack.append(connection)
        return connection
    session = Session(engine)
    stack.append(session)
    return session


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_source_reads_through_one_connection(backend, db_url, probe, settings_env, kind):
    stack: list = []
    try:
        source = _source_of(kind, db_url, probe, settings_env, stack)
        with sources.read_connection(source) as connection:
            assert isinstance(connection, sa.Connection)
            assert connection.dialect.name == backend
            assert connection.exec_driver_sql("SELECT count(*) FROM source_probe").scalar_one() == 0
            if backend == "postgresql" and kind in ("none", "text", "url", "engine"):  # opened here: one snapshot
                assert connection.exec_driver_sql("SHOW transaction_isolation").scalar_one() == "repeatable read"
                assert connection.exec_driver_sql("SHOW transaction_read_only").scalar_one() == "on"
        opened_here = kind in ("none", "text", "url", "engine")
        assert connection.closed is opened_here  # a caller's Connection or Session is left open
        assert sources.url(source).get_backend_name() == backend
        assert sources.label(source).startswith(f"{backend}+psycopg://" if backend == "postgresql" else "sqlite:///")
        assert len(load_users(source)) == 0  # the loaders take the same kinds
        with opened(source) as handle:  # the reports' handle: a URL or None becomes an engine
            if kind in ("engine", "connection", "session"):
                assert handle is source
            else:
                assert isinstance(handle, sa.Engine)
    finally:
        for item in reversed(stack):
            item.close()
    probe.connect().close()  # a given Engine is not disposed: it still connects


def test_a_callers_connection_is_read_in_its_transaction_and_left_untouched(backend, probe):
    with probe.connect() as mine:
        mine.begin()
        mine.exec_driver_sql("INSERT INTO source_probe (x) VALUES (1)")
        assert sources.has_uncommitted_writes(mine)
        with sources.read_connection(mine) as connection:
            assert connection is mine
            assert connection.exec_driver_sql("SELECT count(*) FROM source_probe").scalar_one() == 1
        assert not mine.closed and mine.in_transaction()
        assert mine.exec_driver_sql("SELECT count(*) FROM source_probe").scalar_one() == 1
        mine.rollback()
        assert not sources.has_uncommitted_writes(mine)
    assert _count(probe) == 0


def test_a_sessions_pending_objects_are_flushed_before_a_read(backend, engine):
    user = User(username="pending", email="pending@example.com", password_hash="x")
    with Session(engine) as session:
        session.add(user)
        with sources.read_connection(session) as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM users").scalar_one() == 1
        assert len(load_users(session)) == 1  # the loaders read the same transaction
        session.rollback()
    assert len(load_users(engine)) == 0


@pytest.mark.parametrize("kind", ["text", "url", "engine", "connection"])
def test_write_transaction_commits_and_rolls_back(backend, db_url, probe, settings_env, kind):
    stack: list = []
    try:
        source = _source_of(kind, db_url, probe, settings_env, stack)
        with sources.write_transaction(source) as connection:
            connection.exec_driver_sql("INSERT INTO source_probe (x) VALUES (1)")
        assert _count(probe) == 1  # committed on exit
        with pytest.raises(RuntimeError, match="fails"):
            with sources.write_transaction(source) as connection:
                connection.exec_driver_sql("INSERT INTO source_probe (x) VALUES (2)")
                raise RuntimeError("the work fails")
        assert _count(probe) == 1  # rolled back
    finally:
        for item in reversed(stack):
            item.close()


def test_write_transaction_with_none_writes_to_the_primary_database(backend, db_url, probe, settings_env):
    settings_env.set(SHIVX_DATABASE_URL=db_url, SHIVX_ANALYTICS_DATABASE_URL="sqlite:///does-not-exist/replica.db")
    with sources.write_transaction(None) as connection:
        connection.exec_driver_sql("INSERT INTO source_probe (x) VALUES (1)")
    assert _count(probe) == 1


def test_write_transaction_in_a_callers_transaction_leaves_the_commit_to_the_caller(backend, probe):
    with probe.connect() as mine:
        mine.begin()
        with sources.write_transaction(mine) as connection:
            assert connection is mine
            connection.exec_driver_sql("INSERT INTO source_probe (x) VALUES (1)")
        assert mine.in_transaction()
        mine.rollback()
    assert _count(probe) == 0
    with Session(probe) as session:
        with sources.write_transaction(session) as connection:
            connection.exec_driver_sql("INSERT INTO source_probe (x) VALUES (1)")
        assert session.in_transaction()
        session.commit()
    assert _count(probe) == 1


READERS = {
    "read_connection": lambda s: sources.read_connection(s).__enter__(),
    "write_transaction": lambda s: sources.write_transaction(s).__enter__(),
    "opened": lambda s: sources.opened(s).__enter__(),
    "reports opened": lambda s: opened(s).__enter__(),
    "url": sources.url,
    "label": sources.label,
    "load_orders": lambda s: sx.load_orders(s),
    "aggregates.read_connection": lambda s: aggregates.read_connection(s).__enter__(),
    "verify_audit_chain": verify_audit_chain,
    "refresh_views": refresh_views,
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("wrong", [42, b"sqlite://", object()])
def test_anything_else_is_one_type_error_naming_it(reader, wrong):
    with pytest.raises(TypeError) as error:
        READERS[reader](wrong)
    message = str(error.value)
    assert message.startswith("source must be None (the analytics database), a database URL"), message
    assert message.endswith(f"not {type(wrong).__name__}"), message


def test_in_memory_sqlite_is_read_through_its_own_engine():
    assert sources.in_memory(make_url("sqlite://")) and sources.in_memory(make_url("sqlite:///:memory:"))
    assert sources.in_memory(make_url("sqlite:///file::memory:?uri=true"))
    assert not sources.in_memory(make_url("sqlite:///analytics.db"))
    engine = create_engine("sqlite://")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            connection.exec_driver_sql("INSERT INTO t VALUES (1)")
        with sources.read_connection(engine) as connection:  # the engine's one in-memory database
            assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    finally:
        engine.dispose()


def test_a_read_only_sqlite_file_is_read_in_its_journal_mode(tmp_path):
    path = tmp_path / "readonly.db"
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA journal_mode=DELETE")
        raw.execute("CREATE TABLE t (x INTEGER)")
        raw.execute("INSERT INTO t VALUES (1)")
    raw.close()
    url = f"sqlite:///file:{path}?mode=ro&uri=true"
    with sources.read_connection(url) as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar_one() == "delete"


def test_urls_and_labels():
    assert sources.url("sqlite+aiosqlite:///analytics.db").drivername == "sqlite"  # the sync twin
    label = sources.label("postgresql://analyst:s3cret-pw@db.example.com/shivx")
    assert "s3cret-pw" not in label and label.startswith("postgresql+psycopg://analyst:***@db.example.com")
    assert "s3cret-pw" not in sources.label(make_url("postgresql://analyst:s3cret-pw@db.example.com/shivx"))
