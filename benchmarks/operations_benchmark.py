"""The seed report's own operation figures, measured (issue 3, part 4).

    python benchmarks/operations_benchmark.py [--postgres-url postgresql://postgres@127.0.0.1:5432/postgres]

The seed claimed, on in-memory SQLite: user, position and order creation < 1 ms, a query with
joins < 2 ms, a batch insert of 100 records < 50 ms. Each operation here runs through the ORM as
an application would (validated model -> session.add -> commit), median of --repeat runs, on
in-memory SQLite and, given a server, on a scratch PostgreSQL database that is dropped afterwards.
A baseline in the same process does the same INSERT without the ORM (a user: the DBAPI cursor;
100 positions: one Core executemany), so the ratio ORM / baseline is comparable across machines. Password hashing (PBKDF2, 600,000 iterations) is timed
on its own: it is deliberately slow and would otherwise swamp "create a user".
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session, select

import shivx_analytics as sx
from shivx_analytics.db import create_engine
from shivx_analytics.models import (
    Order,
    OrderCreate,
    Position,
    PositionCreate,
    User,
    UserCreate,
    build_order,
    build_position,
)
from shivx_analytics.security import hash_password

SEED_CLAIMS_MS = {"create_user": 1, "create_position": 1, "create_order": 1, "query_with_joins": 2,
                  "batch_insert_100": 50}
PASSWORD_HASH = hash_password("benchmark-password")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--postgres-url", help="a PostgreSQL server (a scratch database is created and dropped)")
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    started = time.perf_counter()
    hash_password("x")
    print(f"password hash (PBKDF2-SHA256, 600k iterations): {(time.perf_counter() - started) * 1000:.0f} ms\n")
    rows = [("sqlite (memory)", measure("sqlite://", args.repeat))]
    if args.postgres_url:
        name = f"shivx_ops_{uuid.uuid4().hex[:8]}"
        admin = sa.create_engine(make_url(args.postgres_url).set(drivername="postgresql+psycopg"),
                                 isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            url = make_url(args.postgres_url).set(database=name).render_as_string(hide_password=False)
            rows.append(("postgresql", measure(url, args.repeat)))
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE "{name}" WITH (FORCE)')
            admin.dispose()
    print("| backend | operation | ORM median (ms) | baseline without ORM (ms) | ORM / baseline | seed claim (ms) | within claim |")
    print("|---|---|---|---|---|---|---|")
    for backend, results in rows:
        for operation, (orm_ms, raw_ms) in results.items():
            ratio = f"{orm_ms / raw_ms:.1f}" if raw_ms else "-"
            raw = f"{raw_ms:.3f}" if raw_ms else "-"
            claim = SEED_CLAIMS_MS[operation]
            print(f"| {backend} | {operation} | {orm_ms:.3f} | {raw} | {ratio} | < {claim} | "
                  f"{'yes' if orm_ms < claim else 'no'} |")


def measure(url: str, repeat: int) -> dict[str, tuple[float, float | None]]:
    if url == "sqlite://":
        engine = create_engine(url, poolclass=sa.pool.StaticPool)
        with engine.begin() as connection:
            sx.models.metadata.create_all(connection)  # in-memory: no migration files to run
    else:
        sx.migrate(url)
        engine = create_engine(url)
    try:
        user_id = _orm_user(engine)
        position_id = _orm_position(engine, user_id)
        return {
            "create_user": (_median(lambda: _orm_user(engine), repeat), _median(lambda: _raw_user(engine), repeat)),
            "create_position": (_median(lambda: _orm_position(engine, user_id), repeat), None),
            "create_order": (_median(lambda: _orm_order(engine, user_id, position_id), repeat), None),
            "query_with_joins": (_median(lambda: _join(engine), repeat), None),
            "batch_insert_100": (_median(lambda: _batch(engine, user_id), max(5, repeat // 5)),
                                 _median(lambda: _raw_batch(engine, user_id), max(5, repeat // 5))),
        }
    finally:
        engine.dispose()


def _median(operation, repeat: int) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        operation()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def _new_user() -> User:
    tag = uuid.uuid4().hex[:12]
    return User.model_validate(UserCreate(username=f"u{tag}", email=f"{tag}@example.com", password="x" * 12),
                               update={"password_hash": PASSWORD_HASH})


def _orm_user(engine) -> uuid.UUID:
    with Session(engine) as session:
        user = _new_user()
        session.add(user)
        session.commit()
        return user.user_id


def _raw_user(engine) -> None:
    user = _new_user()
    table = User.__table__
    row = {c.name: getattr(user, c.name) for c in table.columns}
    compiled = sa.insert(table).compile(engine)
    processors = compiled._bind_processors
    with engine.begin() as connection:
        params = {k: (processors[k](v) if k in processors else v) for k, v in row.items()}
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute(str(compiled), params) if engine.dialect.paramstyle != "qmark" else cursor.execute(
            str(compiled), [params[k] for k in compiled.positiontup])


def _orm_position(engine, user_id) -> uuid.UUID:
    with Session(engine) as session:
        position = build_position(PositionCreate(user_id=user_id, token="SOL", size=Decimal("10.5"),
                                                 entry_price=Decimal("100"), current_price=Decimal("101"),
                                                 strategy="RL Trading (PPO)"))
        session.add(position)
        session.commit()
        return position.position_id


def _orm_order(engine, user_id, position_id) -> None:
    with Session(engine) as session:
        session.add(build_order(OrderCreate(user_id=user_id, position_id=position_id, token="SOL", action="buy",
                                            amount_in=Decimal("1050"), price=Decimal("100"))))
        session.commit()


def _join(engine) -> None:
    with Session(engine) as session:
        session.exec(
            select(User.username, sa.func.count(Order.order_id), sa.func.count(sa.distinct(Position.position_id)))
            .join(Position, Position.user_id == User.user_id)
            .join(Order, Order.position_id == Position.position_id)
            .group_by(User.username)
        ).all()


def _batch(engine, user_id) -> None:
    with Session(engine) as session:
        session.add_all([build_position(PositionCreate(user_id=user_id, token="SOL", size=Decimal("1"),
                                                       entry_price=Decimal("100"), current_price=Decimal("100")))
                         for _ in range(100)])
        session.commit()


def _raw_batch(engine, user_id) -> None:
    rows = [{c.name: getattr(p, c.name) for c in Position.__table__.columns}
            for p in (build_position(PositionCreate(user_id=user_id, token="SOL", size=Decimal("1"),
                                                    entry_price=Decimal("100"), current_price=Decimal("100")))
                      for _ in range(100))]
    with engine.begin() as connection:
        connection.execute(sa.insert(Position.__table__), rows)


if __name__ == "__main__":
    main()
