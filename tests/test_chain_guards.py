"""Attacks on the audit log and on money, the way an outsider with a database role would try them.

Each test sends raw SQL as the table owner (the migrating role), and on PostgreSQL as the
application and read-only analytics roles of `db grant`, and checks that the database refuses it
and that nothing changed (issue 13, parts 2, 3, 4, 5, 7 and 11). Tampering "behind the database's
back" (rows stored before these guards existed) uses tests/test_audit_chain.py's triggers_disabled.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlmodel import Session
from test_audit_chain import BASE, LOGS, add_entries, chain_rows, tip, triggers_disabled
from test_roles import _as, roles  # noqa: F401  (the `roles` fixture: app and analytics roles of `db grant`)

import shivx_analytics as sx
from alembic import command
from shivx_analytics import triggers
from shivx_analytics.audit_chain import verify_audit_chain
from shivx_analytics.controls import control_problems
from shivx_analytics.db import alembic_config, create_engine
from shivx_analytics.models import Order, SecurityAuditLog
from shivx_analytics.models.audit_chain import GENESIS_HASH
from shivx_analytics.types import stored_money

POSTGRESQL_ONLY = pytest.mark.parametrize("backend", ["postgresql"])
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])
REFUSED = (sa.exc.DatabaseError,)  # IntegrityError (SQLite RAISE), ProgrammingError / InternalError (PostgreSQL)


def audit_values(dialect: str, seq: int, prev: str, *, log_id: uuid.UUID | None = None,
                 stamp: str = "2025-10-28 12:00:00.000000") -> str:
    """One raw audit row's VALUES tuple with the given chain values (row_hash: whatever the attacker likes)."""
    log_id = log_id or uuid.uuid4()
    if dialect == "sqlite":
        return f"('{log_id.hex}', '{stamp}', 'x', 'forged', 1, '{{}}', {seq}, '{prev}', '{'f' * 64}')"
    return f"('{log_id}', '{stamp}+00', 'x', 'forged', true, '{{}}', {seq}, '{prev}', '{'f' * 64}')"


def audit_insert(dialect: str, seq: int, prev: str, *, log_id: uuid.UUID | None = None, verb: str = "INSERT",
                 stamp: str = "2025-10-28 12:00:00.000000", tail: str = "", more: str = "") -> str:
    """A raw audit-row INSERT (``more``: further VALUES tuples)."""
    values = audit_values(dialect, seq, prev, log_id=log_id, stamp=stamp) + (f", {more}" if more else "")
    return (f"{verb} INTO {LOGS} (log_id, \"timestamp\", event_type, action, success, details, chain_seq, "
            f"prev_hash, row_hash) VALUES {values} {tail}")


def refused(engine, statement: str, match: str | None = None) -> None:
    with pytest.raises(REFUSED, match=match):
        with engine.begin() as connection:
            connection.exec_driver_sql(statement.replace("%", "%%") if engine.dialect.name == "postgresql"
                                       else statement)


def snapshot(engine) -> tuple[list, tuple]:
    return chain_rows(engine), tip(engine)


# Part 2: every row in the table is in the chain, or the database refuses it


def forged_rows(dialect: str, last_seq: int, last_hash: str) -> dict[str, str]:
    """Rows a role with INSERT could add beside the chain."""
    return {
        "below the chain": audit_insert(dialect, 0, GENESIS_HASH),
        "negative position": audit_insert(dialect, -5, GENESIS_HASH),
        "beyond the tip": audit_insert(dialect, last_seq + 5, last_hash),
        "duplicate position": audit_insert(dialect, last_seq, last_hash, stamp="2025-10-29 12:00:00.000000"),
        "next position, wrong prev_hash": audit_insert(dialect, last_seq + 1, "e" * 64),
        "two rows, the second not linked": audit_insert(dialect, last_seq + 1, last_hash, more=audit_values(
            dialect, last_seq + 2, "d" * 64, stamp="2025-10-28 12:00:01.000000")),
    }


@pytest.mark.slow
def test_rows_outside_the_chain_are_refused_for_the_owner(backend, engine):
    add_entries(engine, 3)
    before = snapshot(engine)
    for name, statement in forged_rows(backend, *before[1]).items():
        refused(engine, statement, match="must extend the hash chain|append-only")
    assert snapshot(engine) == before
    add_entries(engine, 2, start=3)  # the writers are not hindered
    assert verify_audit_chain(engine).ok and verify_audit_chain(engine).rows == 5


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_rows_outside_the_chain_are_refused_for_the_app_role(backend, db_url, roles):  # noqa: F811
    engine = create_engine(db_url)
    app = _as(db_url, roles.app)
    try:
        add_entries(engine, 3)
        before = snapshot(engine)
        for name, statement in forged_rows(backend, *before[1]).items():
            refused(app, statement, match="must extend the hash chain")
        # ... nor with a temporary table standing in for the tip (the trigger's search_path is fixed)
        with pytest.raises(REFUSED, match="must extend the hash chain"):
            with app.begin() as connection:
                connection.exec_driver_sql("CREATE TEMP TABLE security_audit_chain (id int, last_seq bigint, "
                                           "last_hash text)")
                connection.exec_driver_sql(f"INSERT INTO security_audit_chain VALUES (1, 49, '{GENESIS_HASH}')")
                connection.exec_driver_sql(audit_insert(backend, 50, GENESIS_HASH))
        # ... nor by moving the tip first: it only moves forward, to a row of the log, and stays
        for statement in ("UPDATE security_audit_chain SET last_seq = 1",
                          "UPDATE security_audit_chain SET last_seq = last_seq + 5",
                          f"UPDATE security_audit_chain SET last_hash = '{'f' * 64}'",
                          "DELETE FROM security_audit_chain", "TRUNCATE security_audit_chain",
                          f"INSERT INTO security_audit_chain VALUES (1, 0, '{GENESIS_HASH}') ON CONFLICT (id) "
                          "DO UPDATE SET last_seq = 0"):
            refused(app, statement)
        assert snapshot(engine) == before
        with Session(app) as session:  # the application role still appends through the models
            session.add(SecurityAuditLog.create_entry(event_type="admin", action="export", success=True))
            session.commit()
        assert verify_audit_chain(engine).ok and verify_audit_chain(engine).rows == 4
    finally:
        app.dispose()
        engine.dispose()


def test_the_owner_cannot_move_the_tip_off_the_chain(backend, engine):
    add_entries(engine, 3)
    before = snapshot(engine)
    for statement in ("UPDATE security_audit_chain SET last_seq = 2",
                      "UPDATE security_audit_chain SET last_seq = 9",
                      f"UPDATE security_audit_chain SET last_hash = '{'f' * 64}'",
                      "DELETE FROM security_audit_chain"):
        refused(engine, statement, match="only moves forward")
    if backend == "sqlite":
        refused(engine, f"INSERT OR REPLACE INTO security_audit_chain VALUES (1, 0, '{GENESIS_HASH}')",
                match="only moves forward")
    else:
        refused(engine, "TRUNCATE security_audit_chain", match="only moves forward")
    assert snapshot(engine) == before


@pytest.mark.slow
@pytest.mark.parametrize("seq", [0, 2], ids=["below-1", "duplicate"])
def test_rows_stored_outside_the_chain_before_the_guards_are_found(backend, engine, seq):
    """Rows that got in before revision 0006 (or with the guards dropped) are reported, at the row."""
    add_entries(engine, 3)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(audit_insert(backend, seq, GENESIS_HASH, stamp="2025-10-29 12:00:00.000000"))
    result = verify_audit_chain(engine)
    assert not result.ok and result.first_broken["chain_seq"] == seq
    assert result.first_broken["reason"].startswith("row outside the chain" if seq < 1 else "duplicate chain_seq")
    report = sx.security_report(engine, as_of=BASE + timedelta(days=40))
    assert report.summary["audit_chain_ok"] is False
    if seq < 1:
        assert any("below the chain's first position" in p for p in _controls(engine))


def _controls(engine) -> list[str]:
    with engine.connect() as connection:
        return control_problems(connection)


# Part 3: no statement form changes or removes an audit row


@SQLITE_ONLY
def test_sqlite_replace_and_upsert_cannot_change_or_remove_an_audit_row(backend, engine):
    add_entries(engine, 3)
    before = snapshot(engine)
    first = chain_rows(engine)[0]
    with engine.connect() as connection:
        stored_id, stamp = connection.exec_driver_sql(
            f"SELECT log_id, \"timestamp\" FROM {LOGS} WHERE chain_seq = 1").one()
    victim = uuid.UUID(hex=stored_id)
    last_seq, last_hash = before[1]
    for statement in (
        audit_insert(backend, last_seq + 1, last_hash, log_id=victim, verb="INSERT OR REPLACE", stamp=stamp),
        audit_insert(backend, last_seq + 1, last_hash, log_id=victim, verb="REPLACE", stamp=stamp),
        audit_insert(backend, last_seq + 1, last_hash, log_id=victim, stamp=stamp,
                     tail="ON CONFLICT (log_id, \"timestamp\") DO UPDATE SET action = 'forged'"),
        audit_insert(backend, 1, GENESIS_HASH, log_id=victim, verb="INSERT OR REPLACE", stamp=stamp),
        f"UPDATE OR REPLACE {LOGS} SET chain_seq = 1 WHERE chain_seq = 2",
        f"INSERT OR REPLACE INTO {LOGS} SELECT * FROM {LOGS} WHERE chain_seq = 1",
        audit_insert(backend, last_seq + 1, last_hash, log_id=victim, stamp=stamp, tail="ON CONFLICT DO NOTHING"),
        f"DELETE FROM {LOGS}",
    ):
        refused(engine, statement, match="append-only|must extend the hash chain")
    assert snapshot(engine) == before and chain_rows(engine)[0] == first
    assert verify_audit_chain(engine).ok


def pg_change_statements(victim_seq: int) -> list[str]:
    """Every statement form PostgreSQL offers to change or remove audit rows."""
    return [
        f"UPDATE {LOGS} SET action = 'forged'",
        f"DELETE FROM {LOGS}",
        f"TRUNCATE {LOGS}",
        "TRUNCATE users CASCADE",
        f"MERGE INTO {LOGS} l USING (SELECT {victim_seq} AS s) v ON l.chain_seq = v.s "
        "WHEN MATCHED THEN UPDATE SET action = 'forged'",
        f"MERGE INTO {LOGS} l USING (SELECT {victim_seq} AS s) v ON l.chain_seq = v.s WHEN MATCHED THEN DELETE",
        f"INSERT INTO {LOGS} SELECT * FROM {LOGS} WHERE chain_seq = {victim_seq} "
        "ON CONFLICT (log_id, \"timestamp\") DO UPDATE SET action = 'forged'",
        "UPDATE security_audit_logs_default SET action = 'forged'",
        "DELETE FROM security_audit_logs_default",
    ]


def pg_control_statements() -> list[str]:
    """Statements that would switch a control off or route around it: owners only."""
    return [
        f"ALTER TABLE {LOGS} DISABLE TRIGGER USER",
        f"ALTER TABLE {LOGS} DISABLE TRIGGER trg_{LOGS}_no_delete",
        f"ALTER TABLE {LOGS} DISABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {LOGS} NO FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY rogue ON {LOGS} FOR DELETE USING (true)",
        f"ALTER TABLE {LOGS} DETACH PARTITION security_audit_logs_default",
        "DROP TABLE security_audit_logs_default",
        f"CREATE TABLE rogue_partition PARTITION OF {LOGS} FOR VALUES FROM ('1990-01-01') TO ('1990-02-01')",
        "CREATE TEMP TABLE rogue (LIKE security_audit_logs)",  # allowed; attaching it is not:
        f"ALTER TABLE {LOGS} ATTACH PARTITION security_audit_logs_default DEFAULT",
        "ALTER TABLE security_audit_chain DISABLE TRIGGER USER",
        f"DROP TRIGGER trg_{LOGS}_chain_append ON {LOGS}",
        "SET session_replication_role = replica",
    ]


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_postgresql_roles_cannot_change_rows_or_switch_controls_off(backend, db_url, roles):  # noqa: F811
    engine = create_engine(db_url)
    app, analytics = _as(db_url, roles.app), _as(db_url, roles.analytics)
    try:
        add_entries(engine, 3)
        before = snapshot(engine)
        attempts = 0
        for role in (app, analytics):
            for statement in pg_change_statements(2):
                refused(role, statement)
                attempts += 1
            for statement in pg_control_statements():
                if statement.startswith("CREATE TEMP"):
                    continue
                refused(role, statement, match="must be owner|permission denied|owner of|append-only")
                attempts += 1
        assert attempts == 2 * (len(pg_change_statements(2)) + len(pg_control_statements()) - 1)
        for statement in pg_change_statements(2):  # the owner, bound by the triggers and forced RLS
            refused(engine, statement, match="append-only|row-level security|violates")
        assert snapshot(engine) == before and verify_audit_chain(engine).ok
        with engine.connect() as connection:
            assert control_problems(connection) == []
    finally:
        for handle in (app, analytics, engine):
            handle.dispose()


# Part 4: migrations never make a broken chain verify


@pytest.mark.slow
def test_down_to_0002_and_up_again_does_not_launder_a_tampered_row(backend, db_url):
    engine = create_engine(db_url)
    config = alembic_config(db_url)
    try:
        ids = add_entries(engine, 4)
        before = chain_rows(engine)
        command.downgrade(config, "0002")
        with triggers_disabled_0002(engine) as connection:  # the owner edits a row while no chain watches
            key = ids[1].hex if backend == "sqlite" else str(ids[1])
            connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'laundered' WHERE log_id = '{key}'")
        command.upgrade(config, "head")
        result = verify_audit_chain(engine)
        assert not result.ok and result.first_broken["chain_seq"] == 2
        assert result.first_broken["reason"].startswith("row_hash mismatch")
        assert [row[1:] for row in chain_rows(engine)] == [row[1:] for row in before]  # the hashes were carried
    finally:
        engine.dispose()


@pytest.mark.slow
def test_down_and_up_keeps_an_intact_chain_and_chains_rows_added_meanwhile(backend, db_url):
    engine = create_engine(db_url)
    config = alembic_config(db_url)
    try:
        add_entries(engine, 3)
        before = chain_rows(engine)
        command.downgrade(config, "0002")
        with engine.begin() as connection:  # a row added at 0002 (no chain columns then)
            log_id = uuid.uuid4()
            key = log_id.hex if backend == "sqlite" else str(log_id)
            connection.exec_driver_sql(
                f"INSERT INTO {LOGS} (log_id, \"timestamp\", event_type, action, success, details) VALUES "
                f"('{key}', '2025-10-02 00:00:00{'' if backend == 'sqlite' else '+00'}', 'admin', 'later', "
                f"{'1' if backend == 'sqlite' else 'true'}, '{{}}')")
        command.upgrade(config, "head")
        assert chain_rows(engine)[:3] == before
        assert verify_audit_chain(engine).ok and verify_audit_chain(engine).rows == 4
        with engine.connect() as connection:
            assert not sa.inspect(connection).has_table("security_audit_chain_saved")
    finally:
        engine.dispose()


class triggers_disabled_0002:
    """At revision 0002: a transaction with the append-only triggers out of the way."""

    def __init__(self, engine):
        self.engine = engine

    def __enter__(self):
        self.context = self.engine.begin()
        connection = self.context.__enter__()
        if self.engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
        else:
            for statement in triggers.drop_audit_log_trigger_sql("sqlite"):
                connection.exec_driver_sql(statement)
        self.connection = connection
        return connection

    def __exit__(self, *exc):
        if self.engine.dialect.name == "sqlite" and exc[0] is None:
            triggers.install_audit_log_triggers(self.connection.exec_driver_sql, "sqlite",
                                                triggers.AUDIT_IMMUTABLE_COLUMNS[:9])
        return self.context.__exit__(*exc)


# Part 5: the read-only role cannot stall the writers


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_the_analytics_role_cannot_stall_audit_writers(backend, db_url, roles):  # noqa: F811
    engine = create_engine(db_url)
    app, analytics = _as(db_url, roles.app), _as(db_url, roles.analytics)
    try:
        add_entries(engine, 1)
        with analytics.connect() as reader:
            reader.exec_driver_sql("BEGIN ISOLATION LEVEL REPEATABLE READ")
            # everything it may take: the advisory lock writers took before, share locks, a snapshot
            for key in (0x5348495658415544, 1):
                reader.exec_driver_sql(f"SELECT pg_advisory_lock({key})")
            reader.exec_driver_sql("LOCK TABLE security_audit_chain, security_audit_logs IN ACCESS SHARE MODE")
            reader.exec_driver_sql(f"SELECT count(*) FROM {LOGS}").scalar_one()
            for statement in ("SELECT * FROM security_audit_chain FOR UPDATE",
                              "SELECT * FROM security_audit_chain FOR KEY SHARE",
                              "LOCK TABLE security_audit_chain IN EXCLUSIVE MODE",
                              "LOCK TABLE security_audit_logs IN SHARE MODE"):
                reader.exec_driver_sql("SAVEPOINT s")
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    reader.exec_driver_sql(statement)
                reader.exec_driver_sql("ROLLBACK TO SAVEPOINT s")
            started = time.monotonic()
            with Session(app) as session:  # the writer: must not wait behind the reader
                session.connection().exec_driver_sql("SET LOCAL lock_timeout = '2s'")
                session.add(SecurityAuditLog.create_entry(event_type="admin", action="export", success=True))
                session.commit()
            assert time.monotonic() - started < 2
            reader.exec_driver_sql("SELECT pg_advisory_unlock_all()")
            reader.exec_driver_sql("ROLLBACK")
        assert verify_audit_chain(engine).rows == 2
    finally:
        for handle in (app, analytics, engine):
            handle.dispose()


@SQLITE_ONLY
def test_an_open_sqlite_reader_does_not_stall_audit_writers(backend, engine):
    add_entries(engine, 1)
    with engine.connect() as reader:
        reader.exec_driver_sql("BEGIN")
        reader.exec_driver_sql(f"SELECT count(*) FROM {LOGS}").scalar_one()  # holds a read snapshot (WAL)
        started = time.monotonic()
        add_entries(engine, 1, start=1)
        assert time.monotonic() - started < 2
        reader.exec_driver_sql("ROLLBACK")
    assert verify_audit_chain(engine).rows == 2


# Part 7: db check sees the controls; --repair restores them


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "shivx_analytics.cli", *args], capture_output=True, text=True,
                          timeout=180)


def switch_off(backend: str) -> tuple[list[str], list[str]]:
    """Statements an owner could run to switch controls off, and what db check must then say."""
    if backend == "sqlite":
        return ([f"DROP TRIGGER trg_{LOGS}_no_delete", f"DROP TRIGGER trg_{LOGS}_no_replace",
                 "DROP TRIGGER trg_security_audit_chain_forward_only", "DROP TRIGGER trg_orders_price_money_update"],
                [f"trigger trg_{LOGS}_no_delete on {LOGS} is missing",
                 f"trigger trg_{LOGS}_no_replace on {LOGS} is missing",
                 "trigger trg_security_audit_chain_forward_only on security_audit_chain is missing",
                 "trigger trg_orders_price_money_update on orders is missing"])
    return ([f"ALTER TABLE {LOGS} NO FORCE ROW LEVEL SECURITY", f"ALTER TABLE {LOGS} DISABLE ROW LEVEL SECURITY",
             f"ALTER TABLE {LOGS} DISABLE TRIGGER trg_{LOGS}_no_update",
             f"DROP TRIGGER trg_{LOGS}_chain_append ON {LOGS}",
             "DROP TRIGGER trg_security_audit_logs_default_no_truncate ON security_audit_logs_default",
             f"CREATE POLICY rogue ON {LOGS} FOR DELETE USING (true)",
             f"GRANT UPDATE, DELETE ON {LOGS} TO PUBLIC",
             "GRANT TRUNCATE ON security_audit_chain TO PUBLIC"],
            [f"row-level security is disabled on {LOGS}", f"row-level security is not forced on {LOGS}",
             f"trigger trg_{LOGS}_no_update on {LOGS} is disabled",
             f"trigger trg_{LOGS}_no_update on security_audit_logs_default is disabled",
             f"trigger trg_{LOGS}_chain_append on {LOGS} is missing",
             "trigger trg_security_audit_logs_default_no_truncate on security_audit_logs_default is missing",
             f"unexpected row-level security policy rogue on {LOGS}",
             f"PUBLIC holds UPDATE on {LOGS}", f"PUBLIC holds DELETE on {LOGS}",
             "PUBLIC holds TRUNCATE on security_audit_chain"])


@pytest.mark.slow
def test_db_check_reports_controls_switched_off_and_repair_restores_them(backend, db_url):
    add_entries_engine = create_engine(db_url)
    try:
        add_entries(add_entries_engine, 3)
        before = snapshot(add_entries_engine)
        done = cli("db", "check", "--url", db_url)
        assert done.returncode == 0 and "controls in place" in done.stdout, done.stderr
        statements, expected = switch_off(backend)
        with add_entries_engine.begin() as connection:
            for statement in statements:
                connection.exec_driver_sql(statement)
        done = cli("db", "check", "--url", db_url)
        assert done.returncode == 4
        for message in expected:
            assert f"control: {message}" in done.stderr, (message, done.stderr)
        assert "--repair" in done.stderr
        done = cli("db", "check", "--repair", "--url", db_url)
        assert done.returncode == 0, done.stderr
        assert "repaired:" in done.stdout and "controls in place" in done.stdout
        assert snapshot(add_entries_engine) == before  # never re-chains, never deletes
        refused(add_entries_engine, f"DELETE FROM {LOGS}", match="append-only")
        add_entries(add_entries_engine, 1, start=3)
        assert verify_audit_chain(add_entries_engine).ok
    finally:
        add_entries_engine.dispose()


@pytest.mark.slow
def test_db_check_reports_a_tip_off_the_chain(backend, db_url):
    engine = create_engine(db_url)
    try:
        add_entries(engine, 3)
        with triggers_disabled(engine) as connection:
            connection.exec_driver_sql("UPDATE security_audit_chain SET last_seq = 2")
        done = cli("db", "check", "--url", db_url)
        assert done.returncode == 4
        assert "control: chain tip: the row at chain_seq 2 is not the one security_audit_chain records" in done.stderr
        assert "control: chain tip: rows up to chain_seq 3 lie beyond the tip 2" in done.stderr
        assert cli("db", "check", "--repair", "--url", db_url).returncode == 4  # evidence is never repaired
    finally:
        engine.dispose()


# Part 11: money the column would round or cannot hold


BAD_MONEY = ["0.123456789", "1abc", "1e5", "1234567890123", "", " 1", "--1", "1.2.3", ".5"]


@pytest.fixture
def demo_order(db_url):
    """(engine, order_id): the demo dataset (small) on the owner's engine, and one of its orders."""
    sx.generate_demo_data(db_url, seed=0, scale=300, as_of="2025-10-28")
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            yield engine, session.exec(sa.select(Order.order_id).limit(1)).scalar_one()
    finally:
        engine.dispose()


@pytest.mark.slow
@SQLITE_ONLY
def test_sqlite_refuses_money_text_the_column_cannot_hold(backend, demo_order):
    engine, order_id = demo_order
    for value in BAD_MONEY:
        refused(engine, f"UPDATE orders SET price = '{value}' WHERE order_id = '{order_id.hex}'",
                match="orders.price: money must be decimal text that fits NUMERIC.20,8.")
    refused(engine, "UPDATE orders SET slippage_actual = '1.23456'", match="orders.slippage_actual")
    refused(engine, "UPDATE positions SET size = 1e-9", match="positions.size")
    columns = [c["name"] for c in sa.inspect(engine).get_columns("orders")]
    copied = ", ".join("'0.123456789'" if c == "amount_in" else f"'{uuid.uuid4().hex}'" if c == "order_id"
                       else "NULL" if c == "transaction_signature" else c for c in columns)
    refused(engine, f"INSERT INTO orders ({', '.join(columns)}) SELECT {copied} FROM orders LIMIT 1",
            match="orders.amount_in")
    with engine.begin() as connection:  # well-formed text is taken as it is
        connection.exec_driver_sql(f"UPDATE orders SET price = '12.5' WHERE order_id = '{order_id.hex}'")
    with Session(engine) as session:
        assert str(session.get(Order, order_id).price) == "12.5"


@SQLITE_ONLY
def test_sqlite_money_stored_before_the_checks_is_refused_on_reading_and_listed(backend, demo_order):
    engine, order_id = demo_order
    with engine.begin() as connection:
        for statement in triggers.drop_money_trigger_sql("sqlite"):
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(f"UPDATE orders SET price = '1abc' WHERE order_id = '{order_id.hex}'")
        for statement in triggers.money_trigger_sql("sqlite"):
            connection.exec_driver_sql(statement)
    with Session(engine) as session, pytest.raises(ValueError, match="stored money value '1abc'"):
        session.get(Order, order_id)
    problems = _controls(engine)
    assert f"orders.price of row {order_id.hex} holds '1abc': not a decimal that fits NUMERIC(20,8)" in problems


def test_stored_money_reads_exact_text_and_refuses_the_rest():
    assert str(stored_money("0.12345678")) == "0.12345678" and str(stored_money("-5")) == "-5"
    assert str(stored_money("123456789012.5")) == "123456789012.5"
    for value in BAD_MONEY + ["1.23456", 0.5]:
        if value == "1.23456":
            with pytest.raises(ValueError, match="NUMERIC.10,4."):
                stored_money(value, precision=10, scale=4)
            continue
        with pytest.raises(ValueError, match="is not a decimal that fits"):
            stored_money(value)


def test_the_money_checks_cover_every_money_column_of_the_models():
    from shivx_analytics.models import metadata
    from shivx_analytics.types import Money

    found = {(table.name, column.name, column.type.precision, column.type.scale)
             for table in metadata.sorted_tables for column in table.columns if isinstance(column.type, Money)}
    assert found == {(table, *column) for table, columns in triggers.MONEY_COLUMNS.items() for column in columns}


@pytest.mark.slow
@POSTGRESQL_ONLY
def test_postgresql_refuses_extra_decimals_instead_of_rounding(backend, demo_order):
    """Revision 0007: the money columns are domains that refuse what NUMERIC(20,8) would round
    (half away from zero) before any CHECK saw it; every column is attacked in test_money_scale.py."""
    engine, order_id = demo_order
    for text in ("0.123456789", "0.000000005", "0.000000015"):
        refused(engine, f"UPDATE orders SET price = '{text}' WHERE order_id = '{order_id}'",
                match="shivx_money_20_8_at_most_8_decimals")
    refused(engine, f"UPDATE orders SET price = '1abc' WHERE order_id = '{order_id}'", match="invalid input")
    refused(engine, f"UPDATE orders SET price = '1234567890123' WHERE order_id = '{order_id}'",
            match="shivx_money_20_8_below_1e12")
