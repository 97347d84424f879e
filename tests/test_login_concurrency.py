"""Concurrent failed logins are never lost: the increment is one atomic UPDATE in SQL.

Each failure runs in its own connection and transaction, all released at once. PostgreSQL runs
them truly in parallel (threads and asyncio); SQLite serialises writers, so its variant uses
fewer threads and relies on the configured busy timeout.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import Session

import shivx_analytics.models.user as user_module
from shivx_analytics.db import create_async_engine, create_engine
from shivx_analytics.models import (
    User,
    UserCreate,
    arecord_login_failure,
    arecord_login_success,
    build_user,
    record_login_failure,
    record_login_success,
)
from shivx_analytics.security import hash_password

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing


@pytest.fixture
def user_id(engine, monkeypatch) -> uuid.UUID:
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))
    with Session(engine) as session:
        user = build_user(UserCreate(username="alice", email="alice@example.com", password="correct horse"))
        session.add(user)
        session.commit()
        return user.user_id


def fail_concurrently(db_url: str, user_id: uuid.UUID, *, failures: int, threads: int) -> list[int]:
    """``failures`` failed logins from ``threads`` threads, each in its own transaction; their counts."""
    engine = create_engine(db_url, pool_size=threads, max_overflow=0)
    start = threading.Event()

    def one_failure(_):
        start.wait()
        with engine.begin() as connection:
            attempts, _locked_until = record_login_failure(connection, user_id)
        return attempts

    try:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            futures = [pool.submit(one_failure, n) for n in range(failures)]
            start.set()
            return sorted(future.result(timeout=60) for future in futures)
    finally:
        engine.dispose()


def stored_user(engine, user_id) -> User:
    with Session(engine) as session:
        return session.get(User, user_id)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_fifty_concurrent_failed_logins_on_postgresql_are_all_counted(backend, db_url, engine, user_id):
    before = datetime.now(timezone.utc)
    counts = fail_concurrently(db_url, user_id, failures=50, threads=16)
    assert counts == list(range(1, 51))  # every UPDATE saw the previous one's result
    user = stored_user(engine, user_id)
    assert user.failed_login_attempts == 50
    assert user.locked_until is not None and user.locked_until >= before + timedelta(minutes=15) and user.is_locked


@pytest.mark.parametrize("backend", ["postgresql"])
def test_successful_login_after_concurrent_failures_resets_the_account(backend, db_url, engine, user_id):
    fail_concurrently(db_url, user_id, failures=50, threads=16)
    before = datetime.now(timezone.utc)
    with Session(engine) as session:
        assert record_login_success(session, user_id) == (0, None)
        session.commit()
    user = stored_user(engine, user_id)
    assert user.failed_login_attempts == 0 and user.locked_until is None and not user.is_locked
    assert user.last_login is not None and user.last_login >= before


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_fifty_concurrent_async_failed_logins_on_postgresql_are_all_counted(backend, db_url, engine, user_id):
    async_engine = create_async_engine(db_url, pool_size=20, max_overflow=0)
    start = asyncio.Event()

    async def one_failure():
        await start.wait()
        async with async_engine.begin() as connection:
            return (await arecord_login_failure(connection, user_id))[0]

    try:
        tasks = [asyncio.create_task(one_failure()) for _ in range(50)]
        start.set()
        counts = sorted(await asyncio.wait_for(asyncio.gather(*tasks), timeout=60))
        async with async_engine.begin() as connection:
            assert await arecord_login_success(connection, user_id) == (0, None)
    finally:
        await async_engine.dispose()
    assert counts == list(range(1, 51))
    user = stored_user(engine, user_id)
    assert user.failed_login_attempts == 0 and user.locked_until is None and user.last_login is not None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_concurrent_failed_logins_on_sqlite_are_serialised_and_all_counted(backend, db_url, engine, user_id):
    counts = fail_concurrently(db_url, user_id, failures=20, threads=4)
    assert counts == list(range(1, 21))
    user = stored_user(engine, user_id)
    assert user.failed_login_attempts == 20 and user.is_locked
    with Session(engine) as session:
        assert record_login_success(session, user_id) == (0, None)
        session.commit()
    user = stored_user(engine, user_id)
    assert user.failed_login_attempts == 0 and user.locked_until is None and user.last_login is not None


def test_failed_login_for_an_unknown_user_raises_lookup_error(backend, engine):
    with engine.begin() as connection, pytest.raises(LookupError, match="no user"):
        record_login_failure(connection, uuid.uuid4())


def test_lockout_follows_the_settings_unless_given(backend, db_url, engine, user_id, settings_env):
    """SHIVX_LOCKOUT_THRESHOLD / SHIVX_LOCKOUT_MINUTES are what record_login_failure,
    arecord_login_failure, login_failure_statement and User.increment_failed_login_attempts use
    when given no threshold or lockout; an explicit one still wins."""
    settings_env.set(SHIVX_LOCKOUT_THRESHOLD="2", SHIVX_LOCKOUT_MINUTES="90")
    before = datetime.now(timezone.utc)
    with Session(engine) as session:
        assert record_login_failure(session, user_id) == (1, None)
        attempts, locked_until = record_login_failure(session, user_id)  # the second of 2: locked
        session.commit()
    assert attempts == 2 and timedelta(minutes=89) < locked_until - before < timedelta(minutes=91)

    async def fail_async() -> tuple[int, datetime | None]:
        async_engine = create_async_engine(db_url)
        try:
            async with async_engine.begin() as connection:
                await arecord_login_success(connection, user_id)
                await arecord_login_failure(connection, user_id)
                return await arecord_login_failure(connection, user_id)
        finally:
            await async_engine.dispose()

    attempts, locked_until = asyncio.run(fail_async())
    assert attempts == 2 and timedelta(minutes=89) < locked_until - before < timedelta(minutes=91)
    with Session(engine) as session:
        record_login_success(session, user_id)
        assert record_login_failure(session, user_id, threshold=1, lockout=timedelta(minutes=5))[1] is not None
        session.rollback()
    user = stored_user(engine, user_id)
    user.reset_failed_login_attempts()
    user.increment_failed_login_attempts()
    assert user.locked_until is None
    user.increment_failed_login_attempts()
    assert timedelta(minutes=89) < user.locked_until - before < timedelta(minutes=91)
    settings_env.set(SHIVX_LOCKOUT_THRESHOLD="3", SHIVX_LOCKOUT_MINUTES="1")  # read at each call
    statement = user_module.login_failure_statement(user_id).compile(engine)
    assert 3 in statement.params.values()
