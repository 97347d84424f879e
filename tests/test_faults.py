"""Faults, injected for real: the database going away in the middle of a seed, a load and a
report; an unwritable or full output directory; a busy SQLite file; PostgreSQL serialization
failures and deadlocks; runaway statements; TLS settings.

"Going away" is made deterministic: one connection holds a lock the work will need, and a thread
terminates the database's other backends (``pg_terminate_backend``) as soon as one of them waits
for it, so the work is always cut off mid-way, after it has connected and sent its query.
Every injected fault is counted; the module prints the total at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import resource
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session
from typer.testing import CliRunner

import shivx_analytics as sx
import shivx_analytics.models.user as user_module
from shivx_analytics.cli import app
from shivx_analytics.config import Settings, get_settings
from shivx_analytics.db import (
    DatabaseUnavailable,
    StatementTimeout,
    create_async_engine,
    create_engine,
    health_check,
    is_retryable,
    run_in_transaction,
)
from shivx_analytics.frames import LoadError
from shivx_analytics.models import UserCreate, build_user, record_login_failure
from shivx_analytics.security import hash_password

AS_OF = "2025-10-28"
PASSWORD = "s3cr3t-Fault-pw"  # the test server trusts local connections: the password is only carried
DEMO_TABLES = ("users", "api_keys", "positions", "orders", "security_audit_logs")
FAULTS: Counter[str] = Counter()


@pytest.fixture(scope="module", autouse=True)
def _print_fault_count(request):
    yield
    report_count(request, f"test_faults: {sum(FAULTS.values())} faults injected: "
                          + ", ".join(f"{n} {kind}" for kind, n in sorted(FAULTS.items())))


def report_count(request, line: str) -> None:
    """Print ``line`` on the terminal, past pytest's output capture (the issue's note cites it)."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line("\n" + line)


@pytest.fixture
def cheap_passwords(monkeypatch):
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))


@pytest.fixture
def fresh_settings():
    """Settings read again from the environment for this test (and forgotten after it)."""
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def with_password(url: str) -> str:
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def row_counts(url: str) -> dict[str, int]:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return {t: connection.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar_one()
                    for t in DEMO_TABLES}
    finally:
        engine.dispose()


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*")) if path.exists() else []


@contextmanager
def terminated_when_blocked(url: str, lock_statement: str) -> Iterator[list[str]]:
    """Hold ``lock_statement`` in a transaction; when another backend of the database waits for the
    lock, terminate every backend of the database but the locker. Yields the terminated queries."""
    database = make_url(url).database
    engine = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool)
    locker = engine.connect()
    locker.begin()
    locker.exec_driver_sql(lock_statement)
    locker_pid = locker.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    terminated: list[str] = []
    stop = threading.Event()

    def terminate_when_one_waits():
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as admin:
            while not stop.is_set():
                waiting = admin.execute(sa.text(
                    "SELECT query FROM pg_stat_activity WHERE datname = :db AND wait_event_type = 'Lock' "
                    "AND pid <> :locker"), {"db": database, "locker": locker_pid}).scalars().all()
                if waiting:
                    admin.execute(sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :db "
                        "AND pid NOT IN (pg_backend_pid(), :locker)"), {"db": database, "locker": locker_pid})
                    terminated.extend(waiting)
                    FAULTS["database terminated mid-way"] += 1
                    return
                time.sleep(0.02)

    thread = threading.Thread(target=terminate_when_one_waits, daemon=True)
    thread.start()
    try:
        yield terminated
    finally:
        stop.set()
        thread.join(timeout=30)
        locker.rollback()
        locker.close()
        engine.dispose()


# The database going away --------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_seed_cut_off_mid_way_exits_3_and_leaves_no_row(backend, db_url):
    # users, api_keys, positions and orders are written before the audit log, which the lock holds up
    with terminated_when_blocked(db_url, "LOCK TABLE security_audit_logs IN SHARE MODE") as terminated:
        result = invoke("seed", "--url", with_password(db_url), "--as-of", AS_OF)
    assert terminated and all("security_audit_logs" in query for query in terminated), terminated
    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("error: ") and "connection" in result.stderr
    assert PASSWORD not in result.output
    assert row_counts(db_url) == dict.fromkeys(DEMO_TABLES, 0)  # one transaction: nothing half-written
    assert invoke("seed", "--url", db_url, "--as-of", AS_OF).exit_code == 0  # and the database is fine


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_report_cut_off_mid_way_exits_3_and_writes_no_file(backend, db_url, tmp_path):
    out = tmp_path / "reports"
    with terminated_when_blocked(db_url, "LOCK TABLE positions IN ACCESS EXCLUSIVE MODE") as terminated:
        result = invoke("report", "--url", with_password(db_url), "--out", str(out), "--as-of", AS_OF)
    assert terminated
    assert result.exit_code == 3, result.output
    assert "***" in result.stderr and PASSWORD not in result.output
    assert files_under(out) == []


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_load_cut_off_mid_way_raises_database_unavailable_with_the_password_masked(backend, db_url):
    with terminated_when_blocked(db_url, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE") as terminated, \
            pytest.raises(DatabaseUnavailable, match=r"loading orders from .*:\*\*\*@") as raised:
        sx.load_orders(with_password(db_url))
    assert terminated
    assert PASSWORD not in str(raised.value)


# Output that cannot be written ----------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unwritable_output_directory_exits_4_and_writes_nothing(backend, db_url, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the output directory should be\n")
    FAULTS["unwritable output directory"] += 1
    result = invoke("report", "pnl", "--url", db_url, "--out", str(blocker / "reports"), "--as-of", AS_OF)
    assert result.exit_code == 4, result.output
    assert result.stderr.splitlines()[-1].startswith("error: cannot write")  # after any empty-window note
    assert blocker.is_file() and not [p for p in tmp_path.rglob("*") if "report" in p.name or "staging" in p.name]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_disk_that_fills_up_mid_way_exits_4_and_leaves_no_partial_file(backend, db_url, tmp_path):
    """A real EFBIG from the kernel (RLIMIT_FSIZE) while the second report's HTML is being written."""
    sx.generate_demo_data(db_url, as_of=AS_OF)
    out = tmp_path / "reports"
    out.mkdir()
    (out / "keep.txt").write_text("an earlier file stays as it was\n")

    # The limit lies between the two reports' HTML sizes: the smaller is written whole (into the
    # staging folder), the larger is cut off part-way through.
    sizes = {name: len(build(db_url, as_of=AS_OF).to_html().encode())
             for name, build in (("execution", sx.execution_report), ("api-usage", sx.api_usage_report))}
    first, second = sorted(sizes, key=sizes.get)
    limit = (sizes[first] + sizes[second]) // 2 if sizes[second] > sizes[first] else sizes[first] // 2

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    FAULTS["disk full while writing"] += 1
    result = subprocess.run([sys.executable, "-m", "shivx_analytics.cli", "report", first, second,
                             "--url", db_url, "--out", str(out), "--as-of", AS_OF],
                            capture_output=True, text=True, timeout=120, preexec_fn=small_disk)
    assert result.returncode == 4, result.stderr
    assert result.stderr.startswith("error: cannot write") and "File too large" in result.stderr
    assert files_under(out) == [out / "keep.txt"]  # no report, no temporary file, no staging folder


# SQLite: a busy file is waited for ------------------------------------------------------------

HOLD_WRITE_LOCK = textwrap.dedent("""
    import sqlite3, sys, time
    connection = sqlite3.connect(sys.argv[1], isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    connection.execute("COMMIT")
""")


def insert_user(connection: sa.Connection, name: str) -> None:
    users = sa.table("users", sa.column("user_id", sa.Uuid()), sa.column("username"), sa.column("email"),
                     sa.column("password_hash"), sa.column("permissions"), sa.column("roles"))
    connection.execute(users.insert().values(user_id=uuid.uuid4(), username=name, email=f"{name}@example.com",
                                             password_hash="x", permissions="{}", roles="[]"))


@contextmanager
def write_lock_held_by_another_process(path: str, seconds: float) -> Iterator[None]:
    holder = subprocess.Popen([sys.executable, "-c", HOLD_WRITE_LOCK, path, str(seconds)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        FAULTS["sqlite write lock held by another process"] += 1
        yield
    finally:
        holder.wait(timeout=30)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_waits_for_another_process_writing_instead_of_raising(backend, db_url):
    path = db_url.removeprefix("sqlite:///")
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar_one() == 30_000
        with write_lock_held_by_another_process(path, 1.0):
            started = time.monotonic()
            with engine.begin() as connection:
                insert_user(connection, "waited")
            assert time.monotonic() - started > 0.5  # it waited for the other process's commit
    finally:
        engine.dispose()
    assert row_counts(db_url)["users"] == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_without_a_busy_timeout_the_same_write_fails_at_once(backend, db_url):
    """The control for the test above: the timeout is what makes the difference."""
    engine = create_engine(db_url, settings=Settings(sqlite_busy_timeout=0))
    try:
        with write_lock_held_by_another_process(db_url.removeprefix("sqlite:///"), 1.0), \
                pytest.raises(sa.exc.OperationalError, match="database is locked"), engine.begin() as connection:
            insert_user(connection, "refused")
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_writers_that_read_first_wait_for_each_other_in_run_in_transaction(backend, db_url):
    """Read-then-write transactions from 4 threads: BEGIN IMMEDIATE makes each wait, none fails."""
    engine = create_engine(db_url)
    per_thread, threads = 25, 4

    def read_then_write(thread: int, n: int):
        def work(connection):
            before = connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one()
            insert_user(connection, f"t{thread}_{n}")
            return before
        return run_in_transaction(engine, work)

    def writer(thread: int) -> list[int]:
        return [read_then_write(thread, n) for n in range(per_thread)]

    try:
        results = run_threads(writer, threads)
    finally:
        engine.dispose()
    seen = sorted(count for counts in results for count in counts)
    assert seen == list(range(per_thread * threads))  # each transaction saw every earlier one
    FAULTS[f"sqlite writers contending ({threads} threads x {per_thread} read-then-write transactions)"] += 1


def run_threads(target, n: int) -> list:
    results: list = [None] * n
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def run(i):
        start.wait()
        try:
            results[i] = target(i)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


# PostgreSQL: serialization failures and deadlocks are retried ---------------------------------


@pytest.fixture
def users(engine, cheap_passwords) -> list[uuid.UUID]:
    with Session(engine) as session:
        rows = [build_user(UserCreate(username=f"user{n}", email=f"user{n}@example.com", password="correct horse"))
                for n in range(2)]
        session.add_all(rows)
        session.commit()
        return [row.user_id for row in rows]


def failed_logins(engine, user_id) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text("SELECT failed_login_attempts FROM users WHERE user_id = :id"),
                                  {"id": user_id}).scalar_one()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_serialization_failure_is_retried_and_nothing_is_lost(backend, engine, users):
    """Two REPEATABLE READ transactions update the same row; the later one fails with 40001 and is retried."""
    repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
    user_id = users[0]
    snapshot_taken, other_committed = threading.Event(), threading.Event()
    attempts, retries = [], []

    def second(connection):
        attempts.append(len(attempts) + 1)
        connection.execute(sa.text("SELECT failed_login_attempts FROM users WHERE user_id = :id"), {"id": user_id})
        if len(attempts) == 1:  # the snapshot is taken; let the other transaction commit under it
            snapshot_taken.set()
            assert other_committed.wait(10)
        return record_login_failure(connection, user_id)

    def first():
        assert snapshot_taken.wait(10)
        with repeatable.begin() as connection:
            record_login_failure(connection, user_id)
        other_committed.set()

    thread = threading.Thread(target=first)
    thread.start()
    attempts_after, _ = run_in_transaction(repeatable, second, on_retry=lambda n, exc: retries.append(exc))
    thread.join(timeout=30)
    FAULTS["serialization failure (40001)"] += len(retries)
    assert len(retries) == 1 and retries[0].orig.sqlstate == "40001"
    assert attempts == [1, 2] and attempts_after == 2
    assert failed_logins(engine, user_id) == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_deadlock_is_retried_and_both_transactions_commit(backend, engine, users):
    """Two transactions lock the same two rows in opposite orders; PostgreSQL aborts one (40P01)."""
    both_hold_one_row = threading.Barrier(2)
    retries = []

    def lock_in_order(first_id, second_id):
        attempt = []

        def work(connection):
            attempt.append(1)
            record_login_failure(connection, first_id)
            if len(attempt) == 1:
                both_hold_one_row.wait(10)
            record_login_failure(connection, second_id)
        return lambda: run_in_transaction(engine, work, on_retry=lambda n, exc: retries.append(exc))

    a, b = users
    transactions = [lock_in_order(a, b), lock_in_order(b, a)]
    run_threads(lambda i: transactions[i](), 2)
    FAULTS["deadlock (40P01)"] += len(retries)
    assert [exc.orig.sqlstate for exc in retries] == ["40P01"]
    assert failed_logins(engine, a) == failed_logins(engine, b) == 2


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_failed_logins_under_repeatable_read_are_retried_and_none_is_lost(backend, engine, users):
    repeatable = engine.execution_options(isolation_level="REPEATABLE READ")
    threads, per_thread = 8, 5
    retries = []

    def fail_logins(_):
        for _ in range(per_thread):
            run_in_transaction(repeatable, lambda c: record_login_failure(c, users[0]), attempts=50,
                               on_retry=lambda n, exc: retries.append(exc))

    run_threads(fail_logins, threads)
    FAULTS["serialization failure (40001)"] += len(retries)
    assert all(exc.orig.sqlstate == "40001" for exc in retries)
    assert failed_logins(engine, users[0]) == threads * per_thread


RAISE_SQLSTATE = "DO $$ BEGIN RAISE EXCEPTION 'injected' USING ERRCODE = '{}'; END $$"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_retries_stop_after_the_attempts_and_raise_the_last_error(backend, engine):
    calls = []

    def always_conflicts(connection):
        calls.append(1)
        connection.exec_driver_sql(RAISE_SQLSTATE.format("40001"))

    with pytest.raises(sa.exc.DBAPIError, match="injected") as raised:
        run_in_transaction(engine, always_conflicts, attempts=3)
    FAULTS["serialization failure (40001)"] += 3
    assert len(calls) == 3 and is_retryable(raised.value)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_other_errors_are_not_retried(backend, engine):
    calls = []

    def divides_by_zero(connection):
        calls.append(1)
        connection.exec_driver_sql(RAISE_SQLSTATE.format("22012"))

    with pytest.raises(sa.exc.DBAPIError, match="injected") as raised:
        run_in_transaction(engine, divides_by_zero)
    FAULTS["non-retryable error"] += 1
    assert len(calls) == 1 and not is_retryable(raised.value)


def test_run_in_transaction_commits_the_work_and_refuses_zero_attempts(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'plain.db'}")
    try:
        run_in_transaction(engine, lambda c: c.exec_driver_sql("CREATE TABLE t (x INTEGER)"))
        run_in_transaction(engine, lambda c: c.exec_driver_sql("INSERT INTO t VALUES (1)"))
        with pytest.raises(ZeroDivisionError):
            run_in_transaction(engine, lambda c: (c.exec_driver_sql("INSERT INTO t VALUES (2)"), 1 / 0))
        assert run_in_transaction(engine, lambda c: c.exec_driver_sql("SELECT x FROM t").scalars().all()) == [1]
        with pytest.raises(ValueError, match="attempts"):
            run_in_transaction(engine, lambda c: None, attempts=0)
    finally:
        engine.dispose()


# Statement timeout ----------------------------------------------------------------------------


def test_the_statement_timeout_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHIVX_STATEMENT_TIMEOUT_MS", "250")
    assert Settings().statement_timeout_ms == 250
    monkeypatch.delenv("SHIVX_STATEMENT_TIMEOUT_MS")
    assert Settings().statement_timeout_ms is None


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_runaway_postgresql_statement_ends_at_the_timeout_with_a_clear_error(backend, db_url):
    engine = create_engine(db_url, settings=Settings(statement_timeout_ms=200))
    try:
        started = time.monotonic()
        with pytest.raises(StatementTimeout, match="statement timeout of 200 ms"), engine.connect() as connection:
            connection.execute(sa.text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 2.5
        FAULTS["runaway statement"] += 1
        with engine.connect() as connection:  # the connection is fine for the next statement
            assert connection.execute(sa.text("SHOW statement_timeout")).scalar_one() == "200ms"
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_runaway_sqlite_statement_is_interrupted_at_the_timeout(backend, db_url):
    engine = create_engine(db_url, settings=Settings(statement_timeout_ms=200))
    count_to_a_billion = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000000) "
                          "SELECT count(*) FROM n")
    try:
        started = time.monotonic()
        with pytest.raises(StatementTimeout, match="statement timeout of 200 ms"), engine.connect() as connection:
            connection.execute(sa.text(count_to_a_billion))
        assert time.monotonic() - started < 2.5
        FAULTS["runaway statement"] += 1
        with engine.connect() as connection:  # time between statements does not count against the next
            assert connection.execute(sa.text("SELECT 1")).scalar_one() == 1
            time.sleep(0.3)
            assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
async def test_the_async_engine_applies_the_statement_timeout_too(backend, db_url):
    engine = create_async_engine(db_url, settings=Settings(statement_timeout_ms=200))
    try:
        with pytest.raises(StatementTimeout, match="200 ms"):
            async with engine.connect() as connection:
                await connection.execute(sa.text("SELECT pg_sleep(5)"))
        FAULTS["runaway statement"] += 1
    finally:
        await engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_load_blocked_past_the_timeout_fails_naming_it(backend, db_url):
    """The loaders' DuckDB path reads engine.url, which carries the timeout to its own connections."""
    engine = create_engine(db_url, settings=Settings(statement_timeout_ms=300))
    locker = create_engine(db_url)
    try:
        with locker.connect() as holder:
            holder.begin()
            holder.exec_driver_sql("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(LoadError, match="statement timeout"):
                sx.load_orders(engine)
            FAULTS["runaway statement"] += 1
            holder.rollback()
    finally:
        engine.dispose()
        locker.dispose()


# TLS ------------------------------------------------------------------------------------------

CERTIFICATES = {"sslrootcert": "/etc/shivx/ca.pem", "sslcert": "/etc/shivx/client.pem", "sslkey": "/etc/shivx/client.key"}


def test_tls_settings_reach_the_postgresql_url_and_the_url_wins():
    settings = Settings(db_sslmode="verify-full", **{f"db_{k}": v for k, v in CERTIFICATES.items()})
    engine = create_engine("postgresql://analyst:pw@db.example.com/shivx", settings=settings)
    # sslkey names a key, so it travels beside the URL (db.secret_parameters), never shown in it
    tls = {k: v for k, v in engine.url.query.items() if k.startswith("ssl")}  # beside the connect timeout ...
    assert tls | sx.db.secret_parameters(engine.url) == {"sslmode": "verify-full", **CERTIFICATES}
    assert "sslkey" not in str(engine.url)
    _, connect_args = engine.dialect.create_connect_args(engine.url)  # what psycopg receives:
    connect_args |= sx.db.secret_parameters(engine.url)  # the URL's arguments and the engine's connect_args
    assert {k: connect_args[k] for k in ("sslmode", *CERTIFICATES)} == {"sslmode": "verify-full", **CERTIFICATES}
    from_url = create_engine("postgresql://analyst:pw@db.example.com/shivx?sslmode=require", settings=settings)
    assert from_url.url.query["sslmode"] == "require"
    assert create_engine("sqlite://", settings=settings).url.query == {}  # SQLite has no TLS


def test_tls_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("SHIVX_DB_SSLMODE", "verify-ca")
    monkeypatch.setenv("SHIVX_DB_SSLROOTCERT", "/etc/shivx/ca.pem")
    settings = Settings()
    assert (settings.db_sslmode, settings.db_sslrootcert) == ("verify-ca", "/etc/shivx/ca.pem")
    monkeypatch.setenv("SHIVX_DB_SSLMODE", "sometimes")
    with pytest.raises(ValueError, match="db_sslmode"):
        Settings()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_sslmode_require_against_a_server_without_tls_fails_naming_ssl(backend, db_url):
    engine = create_engine(with_password(db_url), settings=Settings(db_sslmode="require"))
    try:
        with pytest.raises(DatabaseUnavailable, match="SSL") as raised:
            health_check(engine)
        FAULTS["TLS required by a server without TLS"] += 1
        assert PASSWORD not in str(raised.value) and "***" in str(raised.value)
        with pytest.raises(DatabaseUnavailable, match="SSL") as raised:
            sx.load_orders(engine)
        FAULTS["TLS required by a server without TLS"] += 1
        assert PASSWORD not in str(raised.value)
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_async_engine_passes_tls_settings_to_asyncpg(backend, db_url):
    async def first_value(settings):
        engine = create_async_engine(db_url, settings=settings)
        try:
            async with engine.connect() as connection:
                return (await connection.execute(sa.text("SELECT 1"))).scalar_one()
        finally:
            await engine.dispose()

    assert asyncio.run(first_value(Settings(db_sslmode="disable"))) == 1
    with pytest.raises(ConnectionError, match="SSL"):
        asyncio.run(first_value(Settings(db_sslmode="require")))
    FAULTS["TLS required by a server without TLS"] += 1


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_cli_reads_sslmode_from_the_environment_and_exits_3(backend, db_url, monkeypatch, fresh_settings):
    monkeypatch.setenv("SHIVX_DB_SSLMODE", "require")
    get_settings.cache_clear()
    result = invoke("health", "--url", with_password(db_url))
    FAULTS["TLS required by a server without TLS"] += 1
    assert result.exit_code == 3
    assert "SSL" in result.stderr and "***" in result.stderr and PASSWORD not in result.output


# A read-only SQLite file. The tests run as root, whom chmod does not stop, and this machine's
# Python is not readable by `nobody` (runuser): the file is made read-only for root too, by the
# immutable attribute (chattr +i; no process may write it) and by a read-only URI (mode=ro).

@contextmanager
def _immutable(path: Path) -> Iterator[None]:
    made = subprocess.run(["chattr", "+i", str(path)], capture_output=True, text=True)
    assert made.returncode == 0, f"chattr +i failed (this test needs an ext4-like file system): {made.stderr}"
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("how", ["immutable file", "mode=ro URI"])
def test_a_read_only_sqlite_file_can_be_reported_on_and_is_not_changed(backend, db_url, tmp_path, journal, how):
    """Every connection used to switch the file to WAL, a write: on a read-only file each one
    failed ("attempt to write a readonly database"), so a report could not even start."""
    import hashlib
    import sqlite3

    sx.generate_demo_data(db_url, scale=60, as_of="2025-10-28")
    path = Path(make_url(db_url).database)
    with sqlite3.connect(path) as connection:
        connection.execute(f"PRAGMA journal_mode={journal}")
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    url = f"sqlite:///file:{path}?mode=ro&uri=true" if how == "mode=ro URI" else db_url
    with _immutable(path) if how == "immutable file" else contextlib.nullcontext():
        if how == "immutable file":
            with pytest.raises(PermissionError):
                path.open("r+b")  # root cannot write it either
        runner = CliRunner()
        result = runner.invoke(app, ["report", "--url", url, "--out", str(tmp_path / "out"), "--as-of", "2025-10-28"])
        assert result.exit_code == 0, result.output
        assert len(sx.load_orders(url)) == 60 and len(sx.load_audit_logs(url)) > 60
        assert runner.invoke(app, ["health", "--url", url]).exit_code == 0
    assert (tmp_path / "out" / "pnl.json").exists()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    with sqlite3.connect(path) as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == journal
