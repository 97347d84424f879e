"""A database that stops answering: a frozen network path, a statement timeout on the loaders' own
connections, a backend killed mid-load.

The frozen path is a TCP proxy (tests/_proxy.py) that keeps accepting and keeps its sockets open
but stops forwarding, so TCP keepalives are answered and only a clock can end the wait: the
connect timeout for a connection that never gets through, `--timeout` for a run that got through
and then stopped hearing back. Each CLI run is a subprocess (the time limit's last resort ends
the process); "within the limit" is measured from the proxy's first connection, i.e. after the
interpreter started and imported the package, which on a loaded 2-core machine takes many seconds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest
import sqlalchemy as sa
from _databases import POSTGRES_URL, POSTGRESQL_ONLY, seeded_postgres_database
from _proxy import FreezingProxy
from sqlalchemy.engine import make_url

import shivx_analytics as sx
from shivx_analytics import db
from shivx_analytics.config import Settings
from shivx_analytics.db import DatabaseUnavailable, RunTimeout, create_async_engine, create_engine
from shivx_analytics.deadline import GRACE_S, time_limit
from shivx_analytics.frames import LoadError
from shivx_analytics.frames.targets import _resolve
from shivx_analytics.frames.transport_duckdb import _libpq_uri

AS_OF = "2025-10-28"
KEEPALIVES = {"connect_timeout": "10", "keepalives": "1", "keepalives_idle": "30", "keepalives_interval": "10",
              "keepalives_count": "3"}
SLACK_S = 6.0  # past the deadline and its grace: interpreter exit, kernel shutdown, a loaded machine


@pytest.fixture(scope="module")
def demo_pg(migrated_templates):
    """A PostgreSQL database with the small demo data (read only in this module)."""
    with seeded_postgres_database(migrated_templates, lambda url: sx.generate_demo_data(url, as_of=AS_OF)) as url:
        yield url


def server() -> tuple[str, int]:
    parsed = make_url(POSTGRES_URL)
    return parsed.host or "127.0.0.1", parsed.port or 5432


def cli(*args: str, env: dict[str, str] | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    environment.pop("MPLBACKEND", None)
    return subprocess.run([sys.executable, "-m", "shivx_analytics.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


def files_under(path: Path) -> list[Path]:
    return sorted(path.rglob("*")) if path.exists() else []


# Connect timeout and keepalives on every PostgreSQL connection --------------------------------


class _Captured(Exception):
    pass


def driver_arguments(engine: sa.Engine) -> dict:
    """The keyword arguments the engine hands its driver's connect() (caught before connecting)."""
    seen: dict = {}

    def capture(dialect, record, cargs, cparams):  # noqa: ANN001
        seen.update(cparams)
        raise _Captured

    sa.event.listen(engine, "do_connect", capture)
    with pytest.raises(_Captured):
        engine.connect()
    return seen


def test_every_postgresql_connection_path_gets_a_connect_timeout_and_keepalives():
    url = "postgresql://analyst:pw@db.example.com/shivx"
    engine = create_engine(url, settings=Settings())
    psycopg_args = driver_arguments(engine)
    assert {k: str(psycopg_args[k]) for k in KEEPALIVES} == KEEPALIVES
    # the loaders' DuckDB path (libpq) and their row-by-row fallback read the source's URL
    for source in (url, engine):
        libpq = _libpq_uri(_resolve(source).url)
        assert all(f"{k}={v}" in libpq for k, v in KEEPALIVES.items()), libpq
    async_engine = create_async_engine(url, settings=Settings(connect_timeout_s=7))
    assert driver_arguments(async_engine.sync_engine)["timeout"] == 7  # asyncpg's connect timeout
    # the settings are read, and a value in the URL wins
    custom = Settings(connect_timeout_s=4, keepalives_idle_s=5, keepalives_interval_s=6, keepalives_count=2)
    query = create_engine(url + "?connect_timeout=9", settings=custom).url.query
    assert (query["connect_timeout"], query["keepalives_idle"], query["keepalives_interval"],
            query["keepalives_count"]) == ("9", "5", "6", "2")
    assert create_engine("sqlite://", settings=custom).url.query == {}


def test_the_timeouts_come_from_the_environment(monkeypatch):
    for name, value in (("SHIVX_CONNECT_TIMEOUT_S", "3"), ("SHIVX_KEEPALIVES_IDLE_S", "11"),
                        ("SHIVX_KEEPALIVES_INTERVAL_S", "12"), ("SHIVX_KEEPALIVES_COUNT", "4"),
                        ("SHIVX_TIMEOUT_S", "2.5")):
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert (settings.connect_timeout_s, settings.keepalives_idle_s, settings.keepalives_interval_s,
            settings.keepalives_count, settings.timeout_s) == (3, 11, 12, 4, 2.5)
    monkeypatch.setenv("SHIVX_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="timeout_s"):
        Settings()


@POSTGRESQL_ONLY
def test_live_connections_carry_them(backend, db_url):
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            parameters = connection.connection.dbapi_connection.info.get_parameters()
        assert {k: parameters[k] for k in KEEPALIVES} == KEEPALIVES
    finally:
        engine.dispose()


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_a_connection_that_never_gets_through_fails_at_the_connect_timeout(backend, db_url):
    with FreezingProxy(*server()) as proxy:
        proxy.freeze()  # accepted, and the startup packet never forwarded
        settings = Settings(connect_timeout_s=2)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="timeout"):
            db.health_check(create_engine(proxy.url(db_url), settings=settings))
        assert time.monotonic() - started < 2 + SLACK_S
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="timeout"):  # the loaders' DuckDB/libpq path
            sx.load_orders(create_engine(proxy.url(db_url), settings=settings))
        assert time.monotonic() - started < 2 + SLACK_S
        assert proxy.connections >= 2


# --timeout: a run that stops hearing back -----------------------------------------------------


def assert_timed_out(result: subprocess.CompletedProcess, proxy: FreezingProxy, ended: float, limit: float):
    assert result.returncode == 3, (result.returncode, result.stderr)
    last = result.stderr.strip().splitlines()[-1]  # a notebook's kernel may log above it
    assert last.startswith("error: ") and f"time limit of {limit:g} s" in last, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert proxy.frozen_connections >= 1, "the run never reached the frozen statement"
    assert ended - proxy.first_connected_at < limit + GRACE_S + SLACK_S


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_report_all_on_a_frozen_connection_exits_3_at_the_timeout_and_writes_no_file(backend, demo_pg, tmp_path):
    out = tmp_path / "reports"
    with FreezingProxy(*server(), freeze_on=b"COPY") as proxy:  # the loads' data never arrives
        result = cli("report", "all", "--url", proxy.url(demo_pg), "--out", str(out), "--as-of", AS_OF,
                     "--timeout", "5")
        ended = time.monotonic()
    assert_timed_out(result, proxy, ended, 5)
    assert files_under(out) == []


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_timeout_also_comes_from_shivx_timeout_s(backend, demo_pg, tmp_path):
    out = tmp_path / "reports"
    with FreezingProxy(*server(), freeze_on=b"SELECT 1") as proxy:  # the health check never answered
        result = cli("report", "pnl", "--url", proxy.url(demo_pg), "--out", str(out), "--as-of", AS_OF,
                     env={"SHIVX_TIMEOUT_S": "4"})
        ended = time.monotonic()
    assert_timed_out(result, proxy, ended, 4)
    assert files_under(out) == []


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_seed_on_a_frozen_connection_exits_3_at_the_timeout_and_writes_no_row(backend, db_url):
    # mid-seed, inside its transaction: the rows are built (seconds of CPU) before the first COPY
    with FreezingProxy(*server(), freeze_on=b"COPY") as proxy:  # PostgreSQL: rows go in by COPY FROM STDIN
        result = cli("seed", "--url", proxy.url(db_url), "--as-of", AS_OF, "--timeout", "30")
        ended = time.monotonic()
    assert_timed_out(result, proxy, ended, 30)
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:  # the proxy is closed: the server rolled the seed back
            assert connection.execute(sa.text("SELECT count(*) FROM users")).scalar_one() == 0
    finally:
        engine.dispose()


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_notebook_run_on_a_frozen_connection_exits_3_at_the_timeout_and_writes_no_file(backend, demo_pg, tmp_path):
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    parameters = nbformat.v4.new_code_cell('database_url = "unset"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(
        "import shivx_analytics as sx\nprint(len(sx.load_orders(database_url)))")]
    source, out = tmp_path / "frozen.ipynb", tmp_path / "html" / "frozen.html"
    nbformat.write(notebook, source)
    with FreezingProxy(*server(), freeze_on=b"COPY") as proxy:
        # the kernel starts and imports the package first: the limit leaves it time to reach the load
        result = cli("notebook", "run", str(source), "--url", proxy.url(demo_pg), "--out", str(out),
                     "--timeout", "90")
        ended = time.monotonic()
    assert_timed_out(result, proxy, ended, 90)
    assert files_under(out.parent) == []


def test_a_timeout_that_is_not_positive_exits_2(tmp_path):
    result = cli("report", "--url", f"sqlite:///{tmp_path / 'none.db'}", "--out", str(tmp_path), "--timeout", "0")
    assert result.returncode == 2 and "--timeout must be > 0" in result.stderr


def test_time_limit_raises_run_timeout_in_python_code_and_leaves_fast_work_alone():
    with time_limit(5):
        assert sum(range(10)) == 45
    started = time.monotonic()
    with pytest.raises(RunTimeout, match="time limit of 0.3 s"), time_limit(0.3):
        while True:
            time.sleep(0.01)
    assert time.monotonic() - started < 2
    with time_limit(None):
        pass


# The statement timeout on the loaders' own connections ---------------------------------------


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_copy_path_of_a_url_source_honours_the_statement_timeout_and_sends_the_copy_once(
        backend, demo_pg, settings_env):
    settings_env.set(SHIVX_STATEMENT_TIMEOUT_MS="300")
    locker = create_engine(demo_pg)
    try:
        with FreezingProxy(*server()) as proxy, locker.connect() as holder:
            holder.begin()
            holder.exec_driver_sql("LOCK TABLE orders IN ACCESS EXCLUSIVE MODE")
            for filters in ({}, {"since": "2025-01-01"}):  # ctid ranges; one filtered COPY
                before = proxy.sent(b"COPY (SELECT")
                with pytest.raises(LoadError, match="statement timeout"):
                    sx.load_orders(proxy.url(demo_pg), **filters)  # a URL: the settings reach its COPY
                assert proxy.sent(b"COPY (SELECT") - before == 1, "a cancelled COPY was sent again"
            holder.rollback()
    finally:
        locker.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's counterpart: the COPY test above
def test_the_sqlite_reader_honours_the_statement_timeout(backend, db_url, settings_env):
    """The clock covers the query and the fetching of its rows, as on PostgreSQL: a chunked load
    whose consumer takes longer than the limit is interrupted at a later fetch."""
    sx.generate_demo_data(db_url, as_of=AS_OF)

    def slow_consumer(source):
        rows = 0
        for chunk in sx.load_audit_logs(source, chunksize=100):
            rows += len(chunk)
            time.sleep(0.3)
        return rows

    settings_env.set(SHIVX_STATEMENT_TIMEOUT_MS="200")
    engine = create_engine(db_url, settings=Settings(statement_timeout_ms=200))
    try:
        for source in (db_url, engine, None):  # a URL, an Engine (its settings), the analytics default
            if source is None:
                settings_env.set(SHIVX_DATABASE_URL=db_url)
            with pytest.raises(LoadError, match="statement timeout of 200 ms"):
                slow_consumer(source)
    finally:
        engine.dispose()
    settings_env.set(SHIVX_STATEMENT_TIMEOUT_MS="60000")
    assert slow_consumer(db_url) == len(sx.load_audit_logs(db_url)) > 1000  # the control: within the limit


# A backend killed mid-load --------------------------------------------------------------------


def terminate_backends(url: str) -> int:
    engine = sa.create_engine(make_url(url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :db "
                "AND pid <> pg_backend_pid()"), {"db": make_url(url).database}).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_a_chunked_load_whose_backend_is_killed_mid_stream_raises_database_unavailable(backend, db_url):
    """DuckDB's scan keeps its PostgreSQL transaction open until the last row is handed over: its
    backends are terminated (again and again, so none escapes) once the first chunk is out."""
    sx.generate_demo_data(db_url, as_of=AS_OF)
    chunks, killed, stop = [], [], threading.Event()

    def keep_killing():
        while not stop.is_set():
            killed.append(terminate_backends(db_url))
            time.sleep(0.02)

    killer = threading.Thread(target=keep_killing, daemon=True)
    try:
        with pytest.raises(DatabaseUnavailable, match=r"loading audit_logs from .*load again") as raised:
            for chunk in sx.load_audit_logs(db_url, chunksize=10):
                chunks.append(chunk)
                if len(chunks) == 1:
                    killer.start()
                time.sleep(0.005)
    finally:
        stop.set()
        if killer.is_alive():
            killer.join(timeout=10)
    assert sum(killed) >= 1 and len(chunks) >= 1, (killed, len(chunks))
    assert "shivx-analytics health" in str(raised.value)
