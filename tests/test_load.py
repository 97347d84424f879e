"""Load: concurrent writers and a reader beside them.

8 writer threads on PostgreSQL and 4 on a SQLite file each insert 10,000 orders through Core in
batches of 500, every batch in its own transaction through run_in_transaction (on PostgreSQL at
SERIALIZABLE, with a check of the writer's own progress first, so serialization failures happen
and are retried). Meanwhile another thread loads the orders over and over (whole frames and
chunked ones). Then:

- every row is there, once: count = writers x 10,000, no duplicate id, every id the expected one;
- nothing failed but what was retried (the retries are counted);
- every snapshot a loader returned is consistent: each writer's rows in it are a whole number of
  batches (a batch commits atomically and a writer commits its batches in order), and their
  amounts sum exactly to the sum of exactly those batches.
"""

from __future__ import annotations

import functools
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlmodel import Session

import shivx_analytics as sx
import shivx_analytics.models.user as user_module
from shivx_analytics.db import create_engine, run_in_transaction
from shivx_analytics.models import Order, UserCreate, build_user
from shivx_analytics.security import hash_password

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

WRITERS = {"postgresql": 8, "sqlite": 4}
ORDERS_PER_WRITER = 10_000
BATCH = 500
STARTED = datetime(2025, 1, 1, tzinfo=timezone.utc)
RUN = uuid.uuid4().int >> 64 << 64  # this run's ids: RUN | writer << 32 | n
TOTALS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _print_totals(request):
    yield
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None and TOTALS:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\ntest_load: " + ", ".join(f"{n:,} {kind}" for kind, n in TOTALS.items()))


def order_id(writer: int, n: int) -> uuid.UUID:
    return uuid.UUID(int=RUN | writer << 32 | n)


def amount_in(writer: int, n: int) -> Decimal:
    return Decimal(writer * 1_000_000 + n + 1).scaleb(-4)


def amount_sum(writer: int, rows: int) -> Decimal:
    """amount_in(writer, 0) + ... + amount_in(writer, rows - 1), in closed form."""
    return Decimal(rows * writer * 1_000_000 + rows * (rows + 1) // 2).scaleb(-4)


def batch_rows(writer: int, user_id: uuid.UUID, batch: int) -> list[dict]:
    first = batch * BATCH
    return [{"order_id": order_id(writer, n), "user_id": user_id, "token": f"W{writer}", "action": "buy",
             "order_type": "market", "amount_in": amount_in(writer, n), "price": Decimal("1.5"),
             "slippage_bps": 50, "extra_data": {}, "status": "pending",
             "created_at": STARTED + timedelta(microseconds=n * 16 + writer), "updated_at": STARTED}
            for n in range(first, first + BATCH)]


@pytest.fixture
def writer_users(engine, monkeypatch, backend) -> list[uuid.UUID]:
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))
    with Session(engine) as session:
        users = [build_user(UserCreate(username=f"writer{w}", email=f"writer{w}@example.com", password="correct horse"))
                 for w in range(WRITERS[backend])]
        session.add_all(users)
        session.commit()
        return [user.user_id for user in users]


class SnapshotChecker:
    """Checks each frame a loader returns beside the writers; counts them."""

    def __init__(self, writer_of: dict[str, int]):
        self.writer_of = writer_of
        self.snapshots = 0
        self.rows_seen = 0
        self.sizes: list[int] = []

    def check(self, frame: pd.DataFrame) -> None:
        assert frame["order_id"].is_unique
        writers = frame["user_id"].astype(object).map(self.writer_of)
        assert writers.notna().all()
        counts = writers.value_counts().to_dict()
        for writer, rows in counts.items():
            assert rows % BATCH == 0, f"writer {writer}: {rows} rows, not whole batches of {BATCH}"
        sums = frame.groupby(writers)["amount_in"].agg(lambda s: sum(s.tolist(), Decimal(0))).to_dict()
        for writer, rows in counts.items():
            assert sums[writer] == amount_sum(writer, rows), f"writer {writer}: money of {rows} rows"
        self.snapshots += 1
        self.rows_seen += len(frame)
        self.sizes.append(len(frame))


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_concurrent_writers_lose_nothing_and_loaders_see_whole_batches(backend, db_url, writer_users):
    writers = WRITERS[backend]
    serializable = backend == "postgresql"
    engine = create_engine(db_url, pool_size=writers + 2, max_overflow=0) if serializable else create_engine(db_url)
    writing = engine.execution_options(isolation_level="SERIALIZABLE") if serializable else engine
    orders = Order.__table__
    retries: list[BaseException] = []
    attempts: list[int] = [1]  # the attempt numbers retries led to (the most any batch needed)
    done = threading.Event()
    checker = SnapshotChecker({str(user_id): w for w, user_id in enumerate(writer_users)})
    loader_errors: list[BaseException] = []

    def write(writer: int) -> None:
        user_id = writer_users[writer]
        for batch in range(ORDERS_PER_WRITER // BATCH):
            rows = batch_rows(writer, user_id, batch)

            def insert_batch(connection, batch=batch, rows=rows):
                written = connection.execute(sa.select(sa.func.count()).select_from(orders)
                                             .where(orders.c.user_id == user_id)).scalar_one()
                assert written == batch * BATCH  # this writer's earlier batches, all of them, once
                connection.execute(orders.insert(), rows)
            run_in_transaction(writing, insert_batch, attempts=40,
                               on_retry=lambda n, exc: (retries.append(exc), attempts.append(n + 1)))

    def load_beside_the_writers() -> None:
        chunked = False
        try:
            while not done.is_set():
                if chunked:  # one snapshot read in chunks of 1,500 rows
                    frame = pd.concat(list(sx.load_orders(db_url, columns=["order_id", "user_id", "amount_in"],
                                                          chunksize=3 * BATCH, money="decimal")), ignore_index=True)
                else:
                    frame = sx.load_orders(db_url, columns=["order_id", "user_id", "amount_in"], money="decimal")
                checker.check(frame)
                chunked = not chunked
        except BaseException as exc:  # noqa: BLE001  (reported below)
            loader_errors.append(exc)

    loader = threading.Thread(target=load_beside_the_writers)
    errors: list[BaseException] = []

    def write_guarded(writer: int) -> None:
        try:
            write(writer)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write_guarded, args=(w,), name=f"writer-{w}") for w in range(writers)]
    started = time.monotonic()
    loader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done.set()
    loader.join(timeout=120)
    elapsed = time.monotonic() - started
    engine.dispose()

    assert not errors, errors  # nothing failed: what conflicted was retried
    assert not loader_errors, loader_errors
    assert all(exc.orig.sqlstate in ("40001", "40P01") for exc in retries)
    expected = writers * ORDERS_PER_WRITER
    check = create_engine(db_url)
    try:
        with check.connect() as connection:
            ids = connection.execute(sa.select(orders.c.order_id)).scalars().all()
    finally:
        check.dispose()
    assert len(ids) == expected and len(set(ids)) == expected
    assert set(ids) == {order_id(w, n) for w in range(writers) for n in range(ORDERS_PER_WRITER)}
    final = sx.load_orders(db_url, columns=["order_id", "user_id", "amount_in"], money="decimal")
    checker.check(final)
    assert checker.sizes[-1] == expected and checker.snapshots >= 3  # the loader really ran beside them

    TOTALS[f"rows written on {backend}"] += expected
    TOTALS[f"rows lost on {backend}"] += expected - len(set(ids))
    TOTALS[f"retries on {backend}"] += len(retries)
    TOTALS[f"consistent snapshots read beside the writers on {backend}"] += checker.snapshots - 1
    print(f"\nload [{backend}]: {writers} writers x {ORDERS_PER_WRITER:,} orders in {elapsed:.1f} s, "
          f"{len(retries)} retries (a batch needed at most {max(attempts)} attempts), "
          f"{checker.snapshots - 1} snapshots beside them "
          f"({min(checker.sizes):,}..{max(checker.sizes[:-1] or [0]):,} rows)")
