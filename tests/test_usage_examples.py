"""The seed report's USAGE EXAMPLES, run as written (with our package names) on both backends.

- init_db(settings) on startup, close_db() on shutdown;
- get_db as a FastAPI dependency in a real endpoint that selects a user by id;
- creating a Position (through PositionCreate -> build_position: table models do not validate);
- creating a SecurityAuditLog entry with create_entry.
"""

from __future__ import annotations

import functools
import threading
import uuid
from contextlib import asynccontextmanager
from datetime import timezone
from decimal import Decimal

import pytest
from fastapi import Depends, FastAPI, HTTPException
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import Session

import shivx_analytics.models.user as user_module
from shivx_analytics.config import Settings
from shivx_analytics.db import DatabaseUnavailable, close_db, get_db, init_db
from shivx_analytics.models import (
    Position,
    PositionCreate,
    PositionStatus,
    SecurityAuditLog,
    User,
    UserCreate,
    UserRead,
    build_position,
    build_user,
)
from shivx_analytics.security import hash_password

db_session = asynccontextmanager(get_db)  # get_db outside FastAPI: `async with db_session() as db`


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """Users here are built with 1,000 PBKDF2 iterations: these tests are not about hashing."""
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))


@pytest.fixture
def settings(db_url) -> Settings:
    """Settings with a plain sqlite:/// or postgresql:// URL, as an application would have them."""
    return Settings(database_url=db_url)


def add_user(engine, username="alice") -> uuid.UUID:
    with Session(engine) as session:
        user = build_user(UserCreate(username=username, email=f"{username}@example.com", password="correct horse"))
        session.add(user)
        session.commit()
        return user.user_id


def join_aiosqlite_workers() -> None:
    """aiosqlite stops a failed connection's worker thread without awaiting it: let the thread
    finish before pytest-asyncio closes this test's event loop (else "Event loop is closed")."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


def make_app(settings: Settings) -> FastAPI:
    """The seed's FastAPI wiring: init_db on startup, close_db on shutdown, get_db per request."""

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await init_db(settings)
        yield
        await close_db()

    app = FastAPI(lifespan=lifespan)

    @app.get("/users/{user_id}", response_model=UserRead)
    async def get_user(user_id: uuid.UUID, db: AsyncSession = Depends(get_db)):
        result = await db.execute(select(User).where(User.user_id == user_id))
        user = result.scalar_one_or_none()
        if user is None:
            raise HTTPException(status_code=404, detail=f"no user {user_id}")
        return user

    @app.post("/users/{username}/broken")
    async def create_user_then_fail(username: str, db: AsyncSession = Depends(get_db)):
        db.add(build_user(UserCreate(username=username, email=f"{username}@example.com", password="correct horse")))
        await db.flush()
        raise RuntimeError("failure after a write")

    return app


# Initialize database on startup / close on shutdown

async def test_init_db_opens_an_async_engine_for_a_plain_url_and_close_db_disposes_it(backend, settings):
    engine = await init_db(settings)
    try:
        assert engine.dialect.driver == {"sqlite": "aiosqlite", "postgresql": "asyncpg"}[backend]
        async with db_session() as db:
            assert (await db.execute(select(func.count()).select_from(User))).scalar_one() == 0
    finally:
        await close_db()
    with pytest.raises(RuntimeError, match="init_db"):
        async with db_session():
            pass


async def test_close_db_is_idempotent(backend, settings):
    await init_db(settings)
    await close_db()
    await close_db()


async def test_init_db_twice_replaces_the_previous_engine(backend, settings):
    first = await init_db(settings)
    try:
        second = await init_db(settings)
        assert second is not first
        async with db_session() as db:
            assert (await db.execute(select(func.count()).select_from(User))).scalar_one() == 0
    finally:
        await close_db()


@pytest.mark.parametrize("url", ["postgresql://shivx:s3cret-pw@127.0.0.1:1/shivx", "sqlite:////no/such/dir/shivx.db"],
                         ids=["server-down", "missing-directory"])
async def test_init_db_on_an_unreachable_database_fails_with_the_password_masked(url):
    with pytest.raises(DatabaseUnavailable) as excinfo:
        await init_db(Settings(database_url=url, pool_timeout=2))
    join_aiosqlite_workers()
    assert "s3cret-pw" not in str(excinfo.value)
    with pytest.raises(RuntimeError, match="init_db"):
        async with db_session():
            pass


# Using the database in FastAPI endpoints

def test_fastapi_endpoint_selects_a_user_by_id_through_get_db(backend, engine, settings):
    user_id = add_user(engine)
    with TestClient(make_app(settings)) as client:
        response = client.get(f"/users/{user_id}")
    assert response.status_code == 200
    body = response.json()
    assert (body["user_id"], body["username"], body["email"]) == (str(user_id), "alice", "alice@example.com")
    assert "password_hash" not in body and "pbkdf2" not in response.text


def test_fastapi_endpoint_answers_404_for_an_unknown_user(backend, engine, settings):
    with TestClient(make_app(settings)) as client:
        assert client.get(f"/users/{uuid.uuid4()}").status_code == 404


def test_fastapi_request_that_fails_after_a_write_leaves_nothing_in_the_database(backend, engine, settings):
    with TestClient(make_app(settings), raise_server_exceptions=False) as client:
        assert client.post("/users/mallory/broken").status_code == 500
        assert client.get(f"/users/{uuid.uuid4()}").status_code == 404  # the pool still serves requests
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(User)).one()[0] == 0


async def test_get_db_rolls_back_on_error_and_closes_the_session(backend, settings):
    engine = await init_db(settings)
    calls = []
    try:
        sessions = get_db()
        db = await anext(sessions)
        for name in ("rollback", "close"):
            method = getattr(db, name)
            setattr(db, name, functools.partial(_record, calls, name, method))
        db.add(build_user(UserCreate(username="mallory", email="m@example.com", password="correct horse")))
        await db.flush()
        with pytest.raises(ValueError, match="boom"):
            await sessions.athrow(ValueError("boom"))
        assert calls == ["rollback", "close"]
        assert engine.sync_engine.pool.checkedout() == 0
        async with db_session() as check:
            assert (await check.execute(select(func.count()).select_from(User))).scalar_one() == 0
    finally:
        await close_db()


async def test_get_db_closes_the_session_after_a_successful_request(backend, settings):
    engine = await init_db(settings)
    calls = []
    try:
        sessions = get_db()
        db = await anext(sessions)
        setattr(db, "close", functools.partial(_record, calls, "close", db.close))
        await db.execute(select(func.count()).select_from(User))
        assert engine.sync_engine.pool.checkedout() == 1
        with pytest.raises(StopAsyncIteration):
            await anext(sessions)
        assert calls == ["close"]
        assert engine.sync_engine.pool.checkedout() == 0
    finally:
        await close_db()


async def _record(calls: list, name: str, method):
    calls.append(name)
    return await method()


# Creating a position

async def test_creating_the_seed_position_through_position_create(backend, engine, settings):
    user_id = add_user(engine)
    await init_db(settings)
    try:
        async with db_session() as db:
            position = build_position(PositionCreate(
                user_id=user_id,
                token="SOL",
                size=Decimal("10.5"),
                entry_price=Decimal("100.0"),
                current_price=Decimal("100.0"),
                stop_loss=Decimal("95.0"),
                take_profit=Decimal("110.0"),
                status=PositionStatus.OPEN,
                strategy="RL Trading (PPO)",
            ))
            db.add(position)
            await db.commit()
            position_id = position.position_id
        async with db_session() as db:
            stored = await db.get(Position, position_id)
    finally:
        await close_db()
    assert (stored.user_id, stored.token, stored.status, stored.strategy) == (
        user_id, "SOL", PositionStatus.OPEN, "RL Trading (PPO)")
    assert (stored.size, stored.entry_price, stored.current_price) == (Decimal("10.5"), Decimal("100"), Decimal("100"))
    assert (stored.stop_loss, stored.take_profit) == (Decimal("95"), Decimal("110"))
    assert stored.pnl == Decimal("0") and stored.entry_value == Decimal("1050")
    assert stored.opened_at.tzinfo == timezone.utc and stored.closed_at is None


# Creating an audit log entry

async def test_creating_the_seed_audit_log_entry(backend, engine, settings):
    user_id = add_user(engine)
    request_id = str(uuid.uuid4())
    client_host = "203.0.113.7"  # request.client.host
    await init_db(settings)
    try:
        async with db_session() as db:
            log = SecurityAuditLog.create_entry(
                event_type="authentication",
                resource="/api/login",
                action="login",
                success=True,
                user_id=user_id,
                ip_address=client_host,
                details={"method": "password"},
                request_id=request_id,
            )
            db.add(log)
            await db.commit()
        async with db_session() as db:
            stored = (await db.execute(select(SecurityAuditLog).where(SecurityAuditLog.request_id == request_id))
                      ).scalar_one()
    finally:
        await close_db()
    assert (stored.event_type, stored.resource, stored.action, stored.success) == (
        "authentication", "/api/login", "login", True)
    assert (stored.user_id, stored.ip_address, stored.details) == (user_id, client_host, {"method": "password"})
    assert stored.timestamp.tzinfo == timezone.utc
