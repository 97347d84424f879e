"""The audit log's hash chain: built on every insert path, verified, and tampering found at the row.

Tampering is done the way an attacker with the owner's or a superuser's rights would: with the
append-only triggers out of the way (PostgreSQL: session_replication_role = replica as superuser;
SQLite: the trigger dropped and put back), then plain UPDATE / DELETE.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from _databases import require_backend
from sqlalchemy.engine import make_url
from sqlmodel import Session

import shivx_analytics as sx
from alembic import command
from shivx_analytics import triggers
from shivx_analytics.audit_chain import ChainVerification, verify_audit_chain
from shivx_analytics.chain_checkpoints import checkpoint_trigger_names
from shivx_analytics.db import alembic_config, create_async_engine, create_engine, current_revision, head_revision
from shivx_analytics.demo import generate_demo_data
from shivx_analytics.models import SecurityAuditLog, User, UserCreate, append_audit_entries
from shivx_analytics.models.audit_chain import (
    GENESIS_HASH,
    HASHED_FIELDS,
    ChainTip,
    canonical_content,
    details_text,
    row_hash,
    security_audit_chain,
)
from shivx_analytics.roles import RoleNames, grant_roles

BASE = datetime(2025, 10, 1, 12, 0, tzinfo=timezone.utc)
LOGS = "security_audit_logs"


# Helpers


def add_entries(engine, n: int, *, per_commit: int = 1, start: int = 0, **fields) -> list[uuid.UUID]:
    """n entries through the ORM, ``per_commit`` per transaction; returns their log_ids in order."""
    ids = []
    for first in range(start, start + n, per_commit):
        with Session(engine) as session:
            for i in range(first, min(start + n, first + per_commit)):
                entry = SecurityAuditLog.create_entry(
                    event_type="admin", action=f"action-{i}", success=i % 3 != 0, resource=f"/admin/{i}",
                    ip_address=f"203.0.113.{i % 250}", details={"i": i, "ratio": i / 4, "note": "é \"q\""},
                    request_id=f"req-{i}", timestamp=BASE + timedelta(seconds=i), **fields)
                session.add(entry)
                ids.append(entry.log_id)
            session.commit()
    return ids


def add_user(engine, name: str = "auditee") -> uuid.UUID:
    with Session(engine) as session:
        user = User.model_validate(UserCreate(username=name, email=f"{name}@example.com", password="x" * 8),
                                   update={"password_hash": "pbkdf2_sha256$1$00$00"})
        session.add(user)
        session.commit()
        return user.user_id


def chain_rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return connection.execute(sa.select(
            SecurityAuditLog.log_id, SecurityAuditLog.chain_seq, SecurityAuditLog.prev_hash,
            SecurityAuditLog.row_hash).order_by(SecurityAuditLog.chain_seq)).all()


def tip(engine) -> tuple[int, str]:
    with engine.connect() as connection:
        row = connection.execute(sa.select(security_audit_chain.c.last_seq, security_audit_chain.c.last_hash)).one()
    return int(row[0]), row[1]


def assert_one_chain(engine, n: int) -> None:
    """chain_seq 1..n, each row naming the one before, the tip at the last, and the verifier agrees."""
    rows = chain_rows(engine)
    assert [r.chain_seq for r in rows] == list(range(1, n + 1))
    assert [r.prev_hash for r in rows] == [GENESIS_HASH] + [r.row_hash for r in rows[:-1]]
    assert tip(engine) == ((n, rows[-1].row_hash) if rows else (0, GENESIS_HASH))
    assert verify_audit_chain(engine) == ChainVerification(True, n, None)


@contextmanager
def triggers_disabled(engine):
    """A transaction in which the append-only triggers do not fire."""
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("SET LOCAL session_replication_role = replica")
            yield connection
            return
        for statement in triggers.drop_audit_log_trigger_sql("sqlite") + triggers.drop_chain_trigger_sql("sqlite"):
            connection.exec_driver_sql(statement)
        yield connection
        triggers.install_audit_log_triggers(connection.exec_driver_sql, "sqlite")
        for statement in triggers.chain_trigger_sql("sqlite"):
            connection.exec_driver_sql(statement)


def where_log(engine, log_id: uuid.UUID) -> str:
    return f"log_id = '{log_id.hex if engine.dialect.name == 'sqlite' else log_id}'"


# What is hashed


def test_canonical_content_is_compact_sorted_json_without_user_id():
    entry = {"log_id": uuid.UUID("12345678-1234-4234-8234-123456789abc"),
             "timestamp": datetime(2025, 10, 28, 14, 30, 5, 17, tzinfo=timezone(timedelta(hours=2))),
             "event_type": "authentication", "ip_address": None, "resource": "/api/ä\"\\\n",
             "action": "login", "success": False, "details": {"b": [1.0, 2.5, None, True], "a": {"z": "☃"}},
             "request_id": "req-1", "user_id": uuid.uuid4()}
    text = canonical_content(entry, 7)
    expected = json.dumps({"log_id": "12345678-1234-4234-8234-123456789abc",
                           "timestamp": "2025-10-28T12:30:05.000017+00:00", "event_type": "authentication",
                           "ip_address": None, "resource": "/api/ä\"\\\n", "action": "login", "success": False,
                           "details": {"b": [1, 2.5, None, True], "a": {"z": "☃"}}, "request_id": "req-1",
                           "chain_seq": 7}, sort_keys=True, separators=(",", ":"))
    assert text == expected and text.isascii()
    assert "user_id" not in text and set(HASHED_FIELDS) | {"chain_seq"} == set(json.loads(text))
    # the same content as stored text (the demo, SQLite) hashes the same
    as_text = entry | {"log_id": entry["log_id"].hex, "timestamp": "2025-10-28T12:30:05.000017+00:00",
                       "details": json.dumps(entry["details"])}
    assert canonical_content(as_text, 7) == text
    assert row_hash(GENESIS_HASH, text) == hashlib.sha256((GENESIS_HASH + "\n" + text).encode()).hexdigest()
    # PostgreSQL's JSONB reads 1e16 back as an int: the hash does not see the difference
    assert details_text({"x": 1e16, "y": -0.0}) == details_text('{"x": 10000000000000000, "y": 0}') == \
        '{"x":10000000000000000,"y":0}'
    with pytest.raises(ValueError, match="naive"):
        canonical_content(entry | {"timestamp": datetime(2025, 1, 1)}, 1)
    with pytest.raises(ValueError, match="chain_seq"):
        canonical_content(entry, 0)


ODD_NUMBERS = {"big": 1e300, "big_fraction": 1.5e300, "e16": 1e16, "neg_zero": -0.0, "tiny": 1e-300,
               "sum": 0.1 + 0.2, "huge_int": 2**70, "one": 1.0, "nested": [{"x": 2.5e20, "y": -7.0}], "text": "☃"}


def test_integral_floats_hash_as_the_integer_their_text_names():
    assert details_text({"a": 1e300, "b": 1.0}) == '{"a":1%s,"b":1}' % ("0" * 300)
    assert details_text(json.dumps(ODD_NUMBERS)) == details_text(ODD_NUMBERS)


def test_json_numbers_hash_the_same_after_the_database_round_trip(backend, engine):
    """JSONB stores numbers as numeric (1e16 reads back as an int); SQLite keeps the JSON text."""
    with Session(engine) as session:
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="numbers", success=True,
                                                  details=ODD_NUMBERS))
        session.commit()
    assert_one_chain(engine, 1)


def test_chain_tip_links_each_entry_to_the_one_before():
    entry = {"log_id": uuid.uuid4(), "timestamp": BASE, "event_type": "admin", "ip_address": None,
             "resource": None, "action": "x", "success": True, "details": {}, "request_id": None}
    chain = ChainTip()
    first = chain.link(entry)
    second = chain.link(entry)
    assert first[:2] == (1, GENESIS_HASH) and second[:2] == (2, first[2])
    assert second[2] == row_hash(first[2], canonical_content(entry, 2)) != first[2]
    assert (chain.last_seq, chain.last_hash) == (2, second[2])


# Every insert path builds one chain


def test_orm_inserts_build_a_chain_that_verifies(backend, engine):
    assert verify_audit_chain(engine) == ChainVerification(True, 0, None)
    add_entries(engine, 3)
    add_entries(engine, 7, per_commit=4, start=3)  # several rows per flush
    with Session(engine) as session:  # a rolled-back transaction leaves no trace in the chain
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="rolled-back", success=True))
        session.flush()
        session.rollback()
    with Session(engine) as session:  # rows flushed in two steps of one transaction
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="a", success=True))
        session.flush()
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="b", success=True))
        session.commit()
    assert_one_chain(engine, 12)
    for source in (str(engine.url.render_as_string(hide_password=False)), engine):
        assert verify_audit_chain(source).ok
    with engine.connect() as connection:
        assert verify_audit_chain(connection).ok
    with Session(engine) as session:
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="pending", success=True))
        assert verify_audit_chain(session) == ChainVerification(True, 13, None)  # flushed first, as queries do
        session.rollback()


def test_the_caller_cannot_choose_chain_values(backend, engine):
    with Session(engine) as session:
        entry = SecurityAuditLog.create_entry(event_type="admin", action="forged", success=True)
        entry.chain_seq, entry.prev_hash, entry.row_hash = 99, "f" * 64, "e" * 64
        session.add(entry)
        session.commit()
        assert (entry.chain_seq, entry.prev_hash) == (1, GENESIS_HASH) and entry.row_hash != "e" * 64
    with engine.begin() as connection:
        with pytest.raises(ValueError, match="assigned by the chain"):
            append_audit_entries(connection, [{"event_type": "admin", "action": "x", "success": True,
                                               "chain_seq": 5}])
    assert_one_chain(engine, 1)


async def test_async_sessions_chain_their_rows(backend, db_url):
    from sqlalchemy.ext.asyncio import AsyncSession

    async_engine = create_async_engine(db_url)
    try:
        for i in range(3):
            async with AsyncSession(async_engine, expire_on_commit=False) as session:
                session.add_all([SecurityAuditLog.create_entry(event_type="api_request", action="GET", success=True,
                                                               details={"n": i, "k": k}) for k in range(2)])
                await session.commit()
    finally:
        await async_engine.dispose()
    engine = create_engine(db_url)
    try:
        assert_one_chain(engine, 6)
    finally:
        engine.dispose()


def test_append_audit_entries_for_bulk_writers(backend, engine):
    user_id = add_user(engine)
    add_entries(engine, 2)
    with engine.begin() as connection:
        written = append_audit_entries(connection, [
            {"event_type": "api_request", "action": "POST", "success": True, "user_id": user_id,
             "resource": "/api/v1/orders", "details": {"status_code": 201, "latency": 12.0}},
            SecurityAuditLog.create_entry(event_type="admin", action="export", success=True),
        ] + [{"event_type": "admin", "action": f"bulk-{i}", "success": False} for i in range(50)])
    assert [row["chain_seq"] for row in written] == list(range(3, 55))
    with engine.connect() as connection:
        assert append_audit_entries(connection, []) == []
    with pytest.raises(ValueError):
        with engine.begin() as connection:
            append_audit_entries(connection, [{"event_type": "", "action": "x", "success": True}])
    add_entries(engine, 2, start=10)
    assert_one_chain(engine, 56)


@pytest.mark.slow
def test_the_demo_dataset_is_a_valid_chain(backend, engine):
    counts = generate_demo_data(engine, seed=2, scale=300, as_of="2025-10-28")
    result = verify_audit_chain(engine)
    assert result == ChainVerification(True, counts["security_audit_logs"], None)
    assert tip(engine)[0] == counts["security_audit_logs"]
    add_entries(engine, 3)  # the application carries on from the demo's tip
    assert_one_chain(engine, counts["security_audit_logs"] + 3)


def test_deleting_a_user_keeps_the_chain_valid(backend, engine):
    user_id = add_user(engine)
    add_entries(engine, 4, user_id=user_id)
    add_entries(engine, 2, start=4)
    with engine.begin() as connection:
        connection.execute(sa.delete(User.__table__).where(User.__table__.c.user_id == user_id))
    with engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT count(*) FROM {LOGS} WHERE user_id IS NULL").scalar_one() == 6
    assert_one_chain(engine, 6)


# Tampering is found, at the row


def _edits(dialect: str) -> dict[str, str]:
    return {
        "action": "action = 'logout'",
        "success": "success = NOT success",
        "ip_address": "ip_address = '198.51.100.1'",
        "resource": "resource = NULL",
        "request_id": "request_id = 'req-other'",
        "details": "details = '{\"i\": 5, \"note\": \"é \\\"q\\\"\", \"ratio\": 1.5}'" +
                   ("::jsonb" if dialect == "postgresql" else ""),  # ratio was 1.25
        "timestamp": ("\"timestamp\" = \"timestamp\" + interval '1 microsecond'" if dialect == "postgresql" else
                      "\"timestamp\" = '2025-10-01 12:00:05.000001'"),
        "row_hash": "row_hash = prev_hash",
    }


@pytest.mark.slow
@pytest.mark.parametrize("column", ["action", "success", "ip_address", "resource", "request_id", "details",
                                    "timestamp", "row_hash"])
def test_a_row_edited_with_the_triggers_disabled_is_found_at_that_row(backend, engine, column):
    ids = add_entries(engine, 9)
    assert verify_audit_chain(engine).ok
    with triggers_disabled(engine) as connection:
        changed = connection.exec_driver_sql(
            f"UPDATE {LOGS} SET {_edits(engine.dialect.name)[column]} WHERE {where_log(engine, ids[5])}").rowcount
    assert changed == 1
    result = verify_audit_chain(engine)
    assert not result.ok and result.rows == 5
    assert result.first_broken["log_id"] == str(ids[5]) and result.first_broken["chain_seq"] == 6
    assert result.first_broken["reason"].startswith("row_hash mismatch")


def test_a_details_edit_that_keeps_the_json_value_is_not_tampering(backend, engine):
    """Key order and spacing are not content: only a changed value breaks the chain."""
    ids = add_entries(engine, 3)
    document = "'{\"ratio\": 0.25, \"note\": \"é \\\"q\\\"\",   \"i\": 1}'"
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET details = {document}"
                                   f"{'::jsonb' if engine.dialect.name == 'postgresql' else ''} "
                                   f"WHERE {where_log(engine, ids[1])}")
    assert verify_audit_chain(engine).ok


def test_the_next_rows_hash_is_what_a_rehashed_edit_breaks(backend, engine):
    """An attacker who recomputes the edited row's row_hash breaks the link to the next row."""
    ids = add_entries(engine, 6)
    with engine.connect() as connection:
        row = connection.execute(sa.select(SecurityAuditLog.__table__).where(SecurityAuditLog.log_id == ids[2])
                                 ).mappings().one()
    forged = row_hash(row["prev_hash"], canonical_content(dict(row) | {"action": "nothing"}, row["chain_seq"]))
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'nothing', row_hash = '{forged}' "
                                   f"WHERE {where_log(engine, ids[2])}")
    result = verify_audit_chain(engine)
    assert result.first_broken == {"log_id": str(ids[3]), "chain_seq": 4,
                                   "reason": result.first_broken["reason"]}
    assert result.first_broken["reason"].startswith("prev_hash mismatch") and result.rows == 3


def test_a_deleted_row_is_found(backend, engine):
    ids = add_entries(engine, 8)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"DELETE FROM {LOGS} WHERE {where_log(engine, ids[3])}")
    result = verify_audit_chain(engine)
    assert not result.ok and result.rows == 3
    assert result.first_broken["log_id"] == str(ids[4]) and result.first_broken["chain_seq"] == 5
    assert result.first_broken["reason"].startswith("seq gap") and "row(s) 4 are missing" in result.first_broken["reason"]


def test_a_deleted_and_renumbered_row_is_found_by_the_broken_link(backend, engine):
    ids = add_entries(engine, 8)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"DELETE FROM {LOGS} WHERE {where_log(engine, ids[3])}")
        for seq in range(5, 9):  # close the gap, one row at a time (chain_seq is unique)
            connection.exec_driver_sql(f"UPDATE {LOGS} SET chain_seq = {seq - 1} WHERE chain_seq = {seq}")
        connection.execute(sa.update(security_audit_chain).values(last_seq=7))
    result = verify_audit_chain(engine)
    assert result.first_broken["log_id"] == str(ids[4]) and result.first_broken["chain_seq"] == 4
    assert result.first_broken["reason"].startswith("prev_hash mismatch")


def test_rows_removed_from_the_end_are_found_by_the_tip(backend, engine):
    ids = add_entries(engine, 5)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"DELETE FROM {LOGS} WHERE {where_log(engine, ids[4])}")
    result = verify_audit_chain(engine)
    assert not result.ok and result.rows == 4
    assert result.first_broken["chain_seq"] == 5 and result.first_broken["reason"].startswith("chain tip mismatch")
    with pytest.raises(sa.exc.DatabaseError, match="only moves forward"):  # the database refuses to move it back
        with engine.begin() as connection:
            connection.execute(sa.update(security_audit_chain).values(last_seq=4))
    with triggers_disabled(engine) as connection:  # ... and a tip moved back behind its back is found by the last hash
        connection.execute(sa.update(security_audit_chain).values(last_seq=4))
    result = verify_audit_chain(engine)
    assert result.first_broken["log_id"] == str(ids[3]) and "chain tip mismatch" in result.first_broken["reason"]


def test_rows_added_beyond_the_tip_are_found(backend, engine):
    add_entries(engine, 3)
    with triggers_disabled(engine) as connection:  # the database refuses it otherwise (test_chain_guards.py)
        connection.execute(sa.update(security_audit_chain).values(last_seq=2))
    result = verify_audit_chain(engine)
    assert not result.ok and result.first_broken["reason"].startswith("chain tip mismatch")


def test_the_chain_columns_are_append_only_too(backend, engine):
    add_entries(engine, 2)
    for statement in (f"UPDATE {LOGS} SET chain_seq = chain_seq + 10", f"UPDATE {LOGS} SET row_hash = prev_hash",
                      f"UPDATE {LOGS} SET prev_hash = row_hash"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as connection:
                connection.exec_driver_sql(statement)
    assert_one_chain(engine, 2)


@pytest.mark.slow
def test_the_security_report_shows_the_chain(backend, engine):
    ids = add_entries(engine, 4)
    report = sx.security_report(engine, as_of=BASE + timedelta(days=1))
    assert report.summary["audit_chain_ok"] is True and report.summary["audit_chain_rows"] == 4
    assert list(report.tables["audit_chain"].columns) == ["log_id", "chain_seq", "reason"]
    assert report.tables["audit_chain"].empty
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET success = NOT success WHERE {where_log(engine, ids[2])}")
    report = sx.security_report(engine, as_of=BASE + timedelta(days=1))
    assert report.summary["audit_chain_ok"] is False and report.summary["audit_chain_rows"] == 2
    table = report.tables["audit_chain"]
    assert table["log_id"].tolist() == [str(ids[2])] and table["chain_seq"].tolist() == [3]
    assert table["reason"].iloc[0].startswith("row_hash mismatch")


# Concurrency: writers queue on the chain's lock, the chain never forks


@pytest.mark.slow
def test_concurrent_writers_build_a_single_chain(backend, engine):
    threads, per_thread = (8, 50) if backend == "postgresql" else (4, 25)
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        try:
            barrier.wait()
            written = 0
            while written < per_thread:
                size = min(per_thread - written, 1 + (written + number) % 3)  # 1-3 rows per transaction
                if number % 2:
                    with Session(engine) as session:
                        session.add_all([SecurityAuditLog.create_entry(
                            event_type="api_request", action="GET", success=True, request_id=f"t{number}-{written + k}")
                            for k in range(size)])
                        session.commit()
                else:
                    with engine.begin() as connection:
                        append_audit_entries(connection, [{"event_type": "api_request", "action": "POST",
                                                           "success": True, "request_id": f"t{number}-{written + k}"}
                                                          for k in range(size)])
                written += size
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)
            barrier.abort()

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    total = threads * per_thread
    assert_one_chain(engine, total)
    with engine.connect() as connection:
        request_ids = connection.exec_driver_sql(f"SELECT request_id FROM {LOGS}").scalars().all()
    assert sorted(request_ids) == sorted(f"t{n}-{i}" for n in range(threads) for i in range(per_thread))


# Migration 0003 on a database that already holds audit rows


def _insert_raw_rows(engine, user_id: uuid.UUID) -> list[uuid.UUID]:
    """Audit rows written with plain SQL at revision 0002, timestamps out of insertion order."""
    ids = [uuid.UUID(int=(k + 1) * 7919 + (4 << 76)) for k in range(12)]
    sqlite = engine.dialect.name == "sqlite"
    with engine.begin() as connection:
        for k, log_id in enumerate(ids):
            when = BASE + timedelta(minutes=(k * 5) % 12, microseconds=k)
            if sqlite:
                timestamp = when.strftime("%Y-%m-%d %H:%M:%S" if k == 3 else "%Y-%m-%d %H:%M:%S.%f")
                connection.exec_driver_sql(
                    f"INSERT INTO {LOGS} (log_id, timestamp, event_type, user_id, ip_address, resource, action, "
                    "success, details, request_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (log_id.hex, timestamp, "authentication", user_id.hex if k % 4 == 0 else None,
                     "192.0.2.1" if k % 2 else None, "/login", "login", k % 3 == 0,
                     json.dumps({"k": k, "w": k / 2, "s": "ü"}), f"req-{k}"))
            else:
                connection.exec_driver_sql(
                    f"INSERT INTO {LOGS} (log_id, timestamp, event_type, user_id, ip_address, resource, action, "
                    "success, details, request_id) VALUES (%(id)s, %(ts)s, 'authentication', %(user)s, %(ip)s, "
                    "'/login', 'login', %(ok)s, %(details)s::jsonb, %(req)s)",
                    {"id": log_id, "ts": when, "user": user_id if k % 4 == 0 else None,
                     "ip": "192.0.2.1" if k % 2 else None, "ok": k % 3 == 0,
                     "details": json.dumps({"k": k, "w": k / 2, "s": "ü"}), "req": f"req-{k}"})
        # More than the migration's page of 5,000 rows, ten to a timestamp: pages break inside ties.
        bulk = [uuid.UUID(int=(k + 100) * 104729 + (4 << 76)) for k in range(5_010)]
        times = [BASE + timedelta(hours=1, seconds=k // 10) for k in range(len(bulk))]
        if sqlite:
            connection.exec_driver_sql(
                f"INSERT INTO {LOGS} (log_id, timestamp, event_type, action, success, details) "
                "VALUES (?, ?, 'api_request', 'GET', 1, '{}')",
                [(log_id.hex, when.strftime("%Y-%m-%d %H:%M:%S.%f")) for log_id, when in zip(bulk, times)])
        else:
            connection.exec_driver_sql(
                f"INSERT INTO {LOGS} (log_id, timestamp, event_type, action, success, details) "
                "VALUES (%(id)s, %(ts)s, 'api_request', 'GET', true, '{}')",
                [{"id": log_id, "ts": when} for log_id, when in zip(bulk, times)])
    return ids + bulk


@pytest.mark.slow
@pytest.mark.parametrize("runner", ["alembic", "sx.migrate"])  # async engine (env.py) / a sync connection
def test_migration_0003_chains_the_rows_already_in_the_log(backend, fresh_url, runner):
    config = alembic_config(fresh_url)
    upgrade = (lambda revision: command.upgrade(config, revision)) if runner == "alembic" else (
        lambda revision: sx.migrate(fresh_url, revision))
    upgrade("0002")
    engine = create_engine(fresh_url)
    try:
        user_id = add_user(engine)
        ids = _insert_raw_rows(engine, user_id)
        upgrade("head")
        assert current_revision(fresh_url) == head_revision()
        assert_one_chain(engine, len(ids))
        with engine.connect() as connection:
            order = connection.execute(sa.select(SecurityAuditLog.log_id).order_by(SecurityAuditLog.chain_seq)
                                       ).scalars().all()
            stamps = connection.execute(sa.select(SecurityAuditLog.timestamp, SecurityAuditLog.log_id)).all()
        assert order == [log_id for _, log_id in sorted(stamps)]  # chained in (timestamp, log_id) order
        first_chain = chain_rows(engine)
        add_entries(engine, 3, start=100_000)  # new rows (later timestamps) continue the migrated chain
        assert_one_chain(engine, len(ids) + 3)
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):  # the triggers are back, new columns too
            with engine.begin() as connection:
                connection.exec_driver_sql(f"UPDATE {LOGS} SET chain_seq = chain_seq + 100")
        with engine.begin() as connection:  # deleting a user (SET NULL) still works and keeps the chain
            connection.execute(sa.delete(User.__table__).where(User.__table__.c.user_id == user_id))
        assert_one_chain(engine, len(ids) + 3)
        # down to 0002 and up again: the same chain, computed again from the same rows
        command.downgrade(config, "0002")
        with engine.connect() as connection:
            assert "chain_seq" not in {c["name"] for c in sa.inspect(connection).get_columns(LOGS)}
            assert not sa.inspect(connection).has_table("security_audit_chain")
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with engine.begin() as connection:
                connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'x'")
        upgrade("head")
        assert chain_rows(engine)[:len(ids)] == first_chain
        assert verify_audit_chain(engine).rows == len(ids) + 3
    finally:
        engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_application_and_analytics_roles_write_and_verify_the_chain(backend, db_url):
    require_backend(backend)
    names = RoleNames(app=f"shivx_app_{uuid.uuid4().hex[:8]}", analytics=f"shivx_ro_{uuid.uuid4().hex[:8]}")
    grant_roles(db_url, names)
    app = create_engine(make_url(db_url).set(username=names.app, password=None))
    analytics = create_engine(make_url(db_url).set(username=names.analytics, password=None))
    try:
        add_entries(app, 4, per_commit=2)
        with app.begin() as connection:
            append_audit_entries(connection, [{"event_type": "admin", "action": "bulk", "success": True}])
        assert verify_audit_chain(analytics) == ChainVerification(True, 5, None)
        assert sx.security_report(analytics, as_of=BASE).summary["audit_chain_ok"] is True
    finally:
        app.dispose()
        analytics.dispose()
        admin = create_engine(db_url)
        with admin.begin() as connection:
            for role in (names.app, names.analytics):
                connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
        admin.dispose()
        server = create_engine(make_url(db_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with server.connect() as connection:
            for role in (names.app, names.analytics):
                connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        server.dispose()


def test_metadata_create_all_databases_have_a_chain_tip(tmp_path):
    """Databases built from the models (no migrations) get the tip row too."""
    engine = create_engine(f"sqlite:///{tmp_path / 'models.db'}")
    try:
        sx.models.metadata.create_all(engine)
        add_entries(engine, 3)
        assert_one_chain(engine, 3)
    finally:
        engine.dispose()


def test_a_database_without_the_chain_is_told_to_migrate(backend, fresh_url):
    command.upgrade(alembic_config(fresh_url), "0002")
    with pytest.raises(RuntimeError, match="run the migrations"):
        verify_audit_chain(fresh_url)


def test_a_tip_set_far_ahead_is_reported_without_scanning_the_gap(backend, engine):
    add_entries(engine, 3)
    with triggers_disabled(engine) as connection:  # the database refuses it otherwise (test_chain_guards.py)
        connection.execute(sa.update(security_audit_chain).values(last_seq=10**15))
    result = verify_audit_chain(engine, batch_rows=2)
    assert not result.ok and result.rows == 3
    assert result.first_broken["chain_seq"] == 4 and result.first_broken["reason"].startswith("chain tip mismatch")


def test_small_batches_read_the_same_chain(backend, engine):
    ids = add_entries(engine, 7, per_commit=7)
    assert verify_audit_chain(engine, batch_rows=2) == ChainVerification(True, 7, None)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"DELETE FROM {LOGS} WHERE chain_seq IN (3, 4, 5)")
    result = verify_audit_chain(engine, batch_rows=2)
    assert result.first_broken["log_id"] == str(ids[5]) and "row(s) 3..5 are missing" in result.first_broken["reason"]
    with pytest.raises(ValueError, match="batch_rows"):
        verify_audit_chain(engine, batch_rows=0)


@pytest.mark.slow
def test_the_security_report_can_skip_the_chain(backend, engine):
    ids = add_entries(engine, 3)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'x' WHERE {where_log(engine, ids[0])}")
    report = sx.security_report(engine, as_of=BASE + timedelta(days=1), verify_chain=False)
    assert report.summary["audit_chain_ok"] is None and report.summary["audit_chain_rows"] is None
    assert report.tables["audit_chain"].empty
    report = sx.security_report(engine, as_of=BASE + timedelta(days=1))
    assert report.summary["audit_chain_ok"] is False and report.summary["audit_chain_rows"] == 0
    json.loads(report.to_json())


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL refuses such values itself
@pytest.mark.parametrize("edit", ["details = 'not json'", "\"timestamp\" = 'yesterday'", "success = 'maybe'",
                                  "log_id = 'not-a-uuid'"])
def test_content_that_cannot_be_read_is_reported_at_its_row(backend, engine, edit):
    ids = add_entries(engine, 4)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET {edit} WHERE {where_log(engine, ids[2])}")
    result = verify_audit_chain(engine)
    expected = "not-a-uuid" if edit.startswith("log_id") else str(ids[2])
    assert result.first_broken["log_id"] == expected and result.rows == 2
    assert result.first_broken["reason"].startswith("row_hash mismatch")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_triggers_name_the_columns_of_each_revision(backend, fresh_url):
    """0003 recreates the UPDATE trigger with the chain columns; its downgrade restores 0002's text."""
    config = alembic_config(fresh_url)
    engine = create_engine(fresh_url)

    def trigger_sql() -> dict[str, str]:
        with engine.connect() as connection:
            return dict(connection.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all())

    try:
        command.upgrade(config, "0002")
        at_0002 = trigger_sql()
        command.upgrade(config, "head")
        at_head = trigger_sql()
        assert set(at_head) == (set(at_0002) | triggers.chain_trigger_names("sqlite") | triggers.money_trigger_names("sqlite")
                                | checkpoint_trigger_names("sqlite"))
        update = at_head["trg_security_audit_logs_no_update"]
        assert all(f'NEW."{c}" IS OLD."{c}"' in update for c in triggers.AUDIT_IMMUTABLE_COLUMNS)
        assert 'NEW."chain_seq"' not in at_0002["trg_security_audit_logs_no_update"]
        command.downgrade(config, "0002")
        assert trigger_sql() == at_0002
    finally:
        engine.dispose()
