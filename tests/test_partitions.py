"""The audit log's monthly partitions on PostgreSQL: created by the migrations, the demo
generator and `db partitions`; append-only on every partition; pruned by the loaders' windows."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from datetime import date, datetime, timezone

import pytest
import sqlalchemy as sa
from _databases import POSTGRESQL_ONLY
from sqlalchemy.orm import Session

import shivx_analytics as sx
from shivx_analytics import partitions
from shivx_analytics.db import create_engine, downgrade, migrate
from shivx_analytics.frames.arguments import _Window
from shivx_analytics.frames.query import _Query
from shivx_analytics.frames.schemas import AUDIT_LOGS
from shivx_analytics.models import SecurityAuditLog

AS_OF = "2025-10-28T00:00:00Z"
CLI = [sys.executable, "-m", "shivx_analytics.cli"]


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def _partition_of_rows(engine) -> dict[str, int]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.text(
            "SELECT tableoid::regclass::text, count(*) FROM security_audit_logs GROUP BY 1")).all())


@pytest.fixture
def demo(db_url, engine):
    """An engine on the small demo dataset (seed 0)."""
    sx.generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    return engine


@POSTGRESQL_ONLY
def test_migration_partitions_the_log_by_month_with_a_default(backend, engine):
    with engine.connect() as connection:
        assert partitions.is_partitioned(connection)
        found = partitions.list_partitions(connection)
    this_month = partitions.month_start(datetime.now(timezone.utc))
    names = [p.name for p in found]
    assert names == [partitions.partition_name(this_month),
                     partitions.partition_name(partitions.add_months(this_month, 1)),
                     partitions.DEFAULT_PARTITION]
    first = found[0]
    assert first.lower == datetime(this_month.year, this_month.month, 1, tzinfo=timezone.utc)
    assert first.upper == found[1].lower  # [first instant, first instant of the next month)


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_demo_rows_land_in_their_months_partitions(backend, demo):
    placed = _partition_of_rows(demo)
    assert partitions.DEFAULT_PARTITION not in placed
    assert set(placed) == {"security_audit_logs_y2025m07", "security_audit_logs_y2025m08",
                           "security_audit_logs_y2025m09", "security_audit_logs_y2025m10"}
    with demo.connect() as connection:  # each row in the partition of its own month
        misplaced = connection.execute(sa.text(
            "SELECT count(*) FROM security_audit_logs WHERE tableoid::regclass::text <> "
            "'security_audit_logs_y' || to_char(timezone('UTC', \"timestamp\"), 'YYYY\"m\"MM')")).scalar_one()
    assert misplaced == 0


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_every_partition_old_and_new_refuses_update_delete_truncate(backend, demo):
    with demo.begin() as connection:
        created = partitions.ensure_ahead(connection, 2)
        partitions.ensure_partitions(connection, [date(2031, 1, 1)])
    this_month = partitions.month_start(datetime.now(timezone.utc))
    # the migration made this month and the next: the one after is new
    assert created == [partitions.partition_name(partitions.add_months(this_month, 2))]
    # A row in a new partition and one in the default partition (a month without a partition).
    with Session(demo) as session:
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="probe", success=True,
                                                  timestamp=datetime(2031, 1, 15, tzinfo=timezone.utc)))
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="probe", success=True,
                                                  timestamp=datetime(2032, 6, 1, tzinfo=timezone.utc)))
        session.commit()
    with demo.connect() as connection:
        names = [p.name for p in partitions.list_partitions(connection)]
    assert "security_audit_logs_y2031m01" in names and names[-1] == partitions.DEFAULT_PARTITION
    targets = ["security_audit_logs", *names]
    for table in targets:
        for statement in (f"UPDATE {table} SET action = 'tampered'",
                          f"DELETE FROM {table}",
                          f"TRUNCATE {table}"):
            with demo.connect() as connection, pytest.raises(sa.exc.DBAPIError) as refused:
                connection.exec_driver_sql(statement)
            assert "append-only" in str(refused.value), (table, statement)
    assert _partition_of_rows(demo)[partitions.DEFAULT_PARTITION] == 1
    assert sx.verify_audit_chain(demo).ok


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_creating_a_month_moves_its_rows_out_of_the_default_partition(backend, demo):
    with Session(demo) as session:
        for day in (3, 17):
            session.add(SecurityAuditLog.create_entry(event_type="admin", action="probe", success=True,
                                                      timestamp=datetime(2030, 5, day, tzinfo=timezone.utc)))
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="probe", success=True,
                                                  timestamp=datetime(2030, 7, 1, tzinfo=timezone.utc)))
        session.commit()
    before = sx.load_audit_logs(demo)
    assert _partition_of_rows(demo)[partitions.DEFAULT_PARTITION] == 3
    with demo.begin() as connection:
        assert partitions.ensure_partitions(connection, [date(2030, 5, 1)]) == ["security_audit_logs_y2030m05"]
    placed = _partition_of_rows(demo)
    assert placed["security_audit_logs_y2030m05"] == 2 and placed[partitions.DEFAULT_PARTITION] == 1
    after = sx.load_audit_logs(demo)
    assert before.equals(after)  # the same rows, unchanged
    chain = sx.verify_audit_chain(demo)
    assert chain.ok and chain.rows == len(after)
    # the default partition is attached again, with its truncate guard
    with demo.connect() as connection, pytest.raises(sa.exc.DBAPIError, match="append-only"):
        connection.exec_driver_sql(f"TRUNCATE {partitions.DEFAULT_PARTITION}")


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_db_partitions_command_is_idempotent(backend, db_url):
    first = _run("db", "partitions", "--ahead", "4", "--json", "--url", db_url)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    this_month = partitions.month_start(datetime.now(timezone.utc))
    expected = [partitions.partition_name(partitions.add_months(this_month, i)) for i in range(5)]
    assert report["created"] == expected[2:]  # the migration made this month and the next
    assert [p["name"] for p in report["partitions"]] == expected + [partitions.DEFAULT_PARTITION]
    second = _run("db", "partitions", "--ahead", "4", "--json", "--url", db_url)
    assert second.returncode == 0 and json.loads(second.stdout)["created"] == []
    text = _run("db", "partitions", "--ahead", "1", "--url", db_url)
    assert text.returncode == 0 and "DEFAULT" in text.stdout and "exists" in text.stdout


@pytest.mark.slow
def test_db_partitions_refuses_sqlite_and_bad_arguments(tmp_path):
    url = f"sqlite:///{tmp_path / 'x.db'}"
    sx.migrate(url)
    result = _run("db", "partitions", "--url", url)
    assert result.returncode == 2 and "PostgreSQL only" in result.stderr
    assert _run("db", "partitions", "--ahead", "-1", "--url", url).returncode == 2


def _scanned(connection, statement) -> set[str]:
    """The audit-log partitions PostgreSQL's plan for ``statement`` reads."""
    compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar_one()
    found, nodes = set(), [plan[0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if node.get("Relation Name", "").startswith("security_audit_logs"):
            found.add(node["Relation Name"])
        nodes += node.get("Plans", [])
    return found


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_time_windows_prune_partitions(backend, demo):
    query = _Query(AUDIT_LOGS)
    query.window("timestamp", _Window.parse("2025-09-03", "2025-09-20T12:00:00Z"))
    query.equals("event_type", "authentication", "text")
    with demo.connect() as connection:
        assert _scanned(connection, query.select(["log_id", "timestamp", "event_type"], "postgresql")) == {
            "security_audit_logs_y2025m09"}
        across = _Query(AUDIT_LOGS)
        across.window("timestamp", _Window.parse("2025-08-25", "2025-10-02"))
        assert _scanned(connection, across.select(["log_id"], "postgresql")) == {
            "security_audit_logs_y2025m08", "security_audit_logs_y2025m09", "security_audit_logs_y2025m10"}
        everything = _Query(AUDIT_LOGS)
        assert len(_scanned(connection, everything.select(["log_id"], "postgresql"))) >= 5


def _scans(engine) -> dict[str, int]:
    with engine.connect() as connection:
        connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
        return dict(connection.execute(sa.text(
            "SELECT relname, coalesce(seq_scan, 0) + coalesce(idx_scan, 0) FROM pg_stat_user_tables "
            "WHERE relname LIKE 'security_audit_logs_%'")).all())


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_loader_reads_only_the_partitions_of_its_window(backend, demo):
    """The real load (DuckDB's scanner, its own connections): PostgreSQL's scan counters move on
    September's partition only."""
    before = _scans(demo)
    frame = sx.load_audit_logs(demo, since="2025-09-03", until="2025-09-20", event_type="authentication")
    assert len(frame) > 0
    deadline = time.monotonic() + 10
    while True:  # statistics reach the shared counters when the scanner's backends end
        moved = {name for name, scans in _scans(demo).items() if scans != before.get(name, 0)}
        if moved or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert moved == {"security_audit_logs_y2025m09"}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upgrading_a_log_with_rows_keeps_every_row_and_the_chain(backend, fresh_url):
    """0003 -> head -> 0003 on a database holding the demo's rows: nothing lost or changed, the
    hash chain verifies, the rows land in their months' partitions, table grants carry over."""
    reader = f"shivx_upgrade_{uuid.uuid4().hex[:8]}"
    migrate(fresh_url, "0003")
    sx.generate_demo_data(fresh_url, seed=0, scale=400, as_of=AS_OF)
    engine = create_engine(fresh_url)
    try:
        if backend == "postgresql":
            with engine.begin() as connection:
                connection.exec_driver_sql(f"CREATE ROLE {reader}")
                connection.exec_driver_sql(f"GRANT SELECT ON security_audit_logs TO {reader}")
        before = sx.load_audit_logs(engine)
        migrate(fresh_url)
        after = sx.load_audit_logs(engine)
        assert len(before) > 500 and before.equals(after)
        chain = sx.verify_audit_chain(engine)
        assert chain.ok and chain.rows == len(before)
        if backend == "postgresql":
            placed = _partition_of_rows(engine)
            assert partitions.DEFAULT_PARTITION not in placed and sum(placed.values()) == len(before)
            assert "security_audit_logs_y2025m09" in placed
            with engine.connect() as connection:
                assert connection.exec_driver_sql(
                    f"SELECT has_table_privilege('{reader}', 'security_audit_logs', 'SELECT')").scalar()
        downgrade(fresh_url, "0003")
        assert sx.load_audit_logs(engine).equals(before)
        assert sx.verify_audit_chain(engine).ok
        with engine.connect() as connection:
            assert not partitions.is_partitioned(connection)
    finally:
        if backend == "postgresql":
            with engine.begin() as connection:
                connection.exec_driver_sql(f"DROP OWNED BY {reader}")
                connection.exec_driver_sql(f"DROP ROLE {reader}")
        engine.dispose()
