"""Checkpoints of the audit hash chain: incremental verification, full verification on demand,
and checkpoints nobody but the owner can forge or move (shivx_analytics/chain_checkpoints.py).

Tampering behind the database's back uses tests/test_audit_chain.py's triggers_disabled (the owner
or a superuser with the triggers out of the way). Tests that create roles (the `roles` fixture of
`db grant`) must run under `flock /tmp/shivx-roles.lock`, as test_roles.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from test_audit_chain import BASE, LOGS, add_entries, chain_rows, triggers_disabled, where_log
from test_chain_guards import refused
from test_roles import _as, roles  # noqa: F401  (the `roles` fixture: app and analytics roles of `db grant`)

import shivx_analytics as sx
from alembic import command
from shivx_analytics.audit_chain import ChainVerification, verify_audit_chain
from shivx_analytics.chain_checkpoints import (
    CHECKPOINT_TABLE,
    CheckpointRefused,
    all_checkpoints,
    chain_checkpoints,
    checkpoint_trigger_sql,
    drop_checkpoint_trigger_sql,
    record_checkpoint,
)
from shivx_analytics.controls import control_problems
from shivx_analytics.db import alembic_config, create_engine

POSTGRESQL_ONLY = pytest.mark.parametrize("backend", ["postgresql"])
AS_OF = BASE + timedelta(days=1)


def checkpoint_at(engine, n_rows: int) -> int:
    """n_rows entries, then a checkpoint at their tip (returns its id)."""
    add_entries(engine, n_rows)
    recorded = record_checkpoint(engine)
    assert recorded.verification.ok and recorded.checkpoint is not None
    assert recorded.checkpoint.chain_seq == n_rows
    return recorded.checkpoint.id


def stored(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.select(chain_checkpoints).order_by(chain_checkpoints.c.id))]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("SHIVX_DATABASE_URL", "MPLBACKEND")}
    environment.pop("SHIVX_ANALYTICS_DATABASE_URL", None)
    return subprocess.run([sys.executable, "-m", "shivx_analytics.cli", *args], capture_output=True, text=True,
                          timeout=240, env=environment | (env or {}))


# What a verification reads


def test_a_fresh_database_without_a_checkpoint_is_verified_in_full(backend, engine):
    add_entries(engine, 4)
    result = verify_audit_chain(engine)
    assert result == ChainVerification(True, 4, None)
    assert result.full and result.checkpoint is None and (result.first_seq, result.last_seq) == (1, 4)
    assert result.scope == "full chain (no checkpoint stored yet)"
    report = sx.security_report(engine, as_of=AS_OF)
    assert report.summary["audit_chain_scope"] == "full chain (no checkpoint stored yet)"
    assert report.summary["audit_chain_checkpoint_id"] is None
    assert (report.summary["audit_chain_first_seq"], report.summary["audit_chain_last_seq"]) == (1, 4)
    assert report.parameters["full_chain"] is False
    assert "Audit chain intact: full chain (no checkpoint stored yet), positions 1..4 read." in report.notes


def test_incremental_and_full_give_the_same_verdict_on_an_intact_chain(backend, engine):
    checkpoint = checkpoint_at(engine, 6)
    add_entries(engine, 5, start=6)
    incremental, full = verify_audit_chain(engine), verify_audit_chain(engine, full_chain=True)
    assert (incremental.ok, incremental.first_broken) == (full.ok, full.first_broken) == (True, None)
    assert (incremental.rows, incremental.first_seq, incremental.last_seq) == (5, 7, 11)
    assert incremental.checkpoint is not None and incremental.checkpoint.id == checkpoint and not incremental.full
    assert incremental.scope.startswith(f"from checkpoint {checkpoint} (chain_seq 6, recorded ")
    assert (full.rows, full.first_seq, full.last_seq, full.full, full.scope) == (11, 1, 11, True, "full chain (asked)")
    for batch_rows in (1, 2, 3):  # batch edges fall anywhere relative to the checkpoint
        assert verify_audit_chain(engine, batch_rows=batch_rows) == incremental
    # a verification at the checkpoint's own tip reads nothing and agrees
    second = record_checkpoint(engine)
    assert second.checkpoint is not None and second.checkpoint.verified_from == 7
    at_tip = verify_audit_chain(engine)
    assert at_tip.ok and at_tip.rows == 0 and at_tip.first_seq == 12 and at_tip.last_seq == 11


def test_a_tampered_row_after_the_checkpoint_is_found_incrementally(backend, engine):
    checkpoint_at(engine, 4)
    ids = add_entries(engine, 6, start=4)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'edited' WHERE {where_log(engine, ids[2])}")
    incremental, full = verify_audit_chain(engine), verify_audit_chain(engine, full_chain=True)
    assert not incremental.ok and incremental.first_broken == full.first_broken
    assert incremental.first_broken["chain_seq"] == 7 and incremental.first_broken["log_id"] == str(ids[2])
    assert incremental.first_broken["reason"].startswith("row_hash mismatch")
    assert (incremental.rows, full.rows) == (2, 6)
    report = sx.security_report(engine, as_of=AS_OF)
    assert report.summary["audit_chain_ok"] is False and report.tables["audit_chain"]["chain_seq"].tolist() == [7]
    # nothing is recorded past a broken row
    recorded = record_checkpoint(engine)
    assert not recorded.verification.ok and recorded.checkpoint is None and len(stored(engine)) == 1


@pytest.mark.slow
def test_a_tampered_row_before_the_checkpoint_needs_the_full_chain(backend, engine):
    ids = add_entries(engine, 5)
    checkpoint = record_checkpoint(engine).checkpoint
    assert checkpoint is not None
    add_entries(engine, 3, start=5)
    with triggers_disabled(engine) as connection:
        connection.exec_driver_sql(f"UPDATE {LOGS} SET success = NOT success WHERE {where_log(engine, ids[1])}")
    incremental = verify_audit_chain(engine)
    assert incremental.ok and incremental.rows == 3 and incremental.first_seq == 6  # it does not read row 2 again...
    report = sx.security_report(engine, as_of=AS_OF)
    assert report.summary["audit_chain_ok"] is True
    assert report.summary["audit_chain_scope"].startswith(f"from checkpoint {checkpoint.id} ")
    assert report.summary["audit_chain_checkpoint_id"] == checkpoint.id
    note = next(n for n in report.notes if n.startswith("Audit chain intact"))
    assert f"verified from checkpoint {checkpoint.id} " in note and "positions 6..8 read" in note
    assert "positions 1..5 were verified when the checkpoint was recorded and are not read again" in note
    full = verify_audit_chain(engine, full_chain=True)  # ... the full chain does
    assert not full.ok and full.first_broken["chain_seq"] == 2 and full.first_broken["log_id"] == str(ids[1])
    report = sx.security_report(engine, as_of=AS_OF, full_chain=True)
    assert report.summary["audit_chain_ok"] is False and report.parameters["full_chain"] is True
    assert report.summary["audit_chain_scope"] == "full chain (asked)" and report.summary["audit_chain_first_seq"] == 1
    assert any(n.startswith("Audit chain BROKEN at chain_seq 2: full chain (asked)") for n in report.notes)
    json.loads(report.to_json())
    assert not record_checkpoint(engine, full_chain=True).verification.ok  # and no checkpoint on top of it
    assert len(stored(engine)) == 1


@pytest.mark.parametrize("tamper", ["rehashed", "deleted"])
def test_a_checkpoint_whose_row_no_longer_matches_fails_loudly(backend, engine, tamper):
    ids = add_entries(engine, 4)
    checkpoint = record_checkpoint(engine).checkpoint
    assert checkpoint is not None
    add_entries(engine, 2, start=4)
    with triggers_disabled(engine) as connection:
        statement = (f"UPDATE {LOGS} SET row_hash = '{'a' * 64}'" if tamper == "rehashed" else f"DELETE FROM {LOGS}")
        connection.exec_driver_sql(f"{statement} WHERE {where_log(engine, ids[3])}")
    result = verify_audit_chain(engine)
    assert not result.ok and result.rows == 0 and result.first_broken["chain_seq"] == 4
    reason = result.first_broken["reason"]
    assert reason.startswith(f"checkpoint mismatch: checkpoint {checkpoint.id} (chain_seq 4, recorded ")
    assert ("the row there has another" if tamper == "rehashed" else "no row is there") in reason
    assert "verify the full chain (--full-chain, full_chain=True)" in reason
    report = sx.security_report(engine, as_of=AS_OF)
    assert report.summary["audit_chain_ok"] is False
    assert report.tables["audit_chain"]["reason"].iloc[0].startswith("checkpoint mismatch")
    assert not verify_audit_chain(engine, full_chain=True).ok  # the full chain breaks there too


def test_a_checkpoint_forged_behind_the_databases_back_is_found(backend, engine):
    """With the guards out of the way (owner or superuser), a checkpoint placed at the tip with
    another hash, or an old one moved forward: the incremental run refuses to start from it, the
    full run names it."""
    rows = add_entries(engine, 6)
    first = record_checkpoint(engine).checkpoint
    assert first is not None
    tip_hash = chain_rows(engine)[-1].row_hash
    with guards_off(engine) as connection:
        connection.execute(chain_checkpoints.insert().values(
            chain_seq=6, row_hash="b" * 64, verified_from=1, recorded_at=BASE, recorded_by="forger"))
    result = verify_audit_chain(engine)
    assert not result.ok and result.first_broken["reason"].startswith("checkpoint mismatch")
    full = verify_audit_chain(engine, full_chain=True)
    assert not full.ok and full.first_broken["chain_seq"] == 6 and full.first_broken["log_id"] == str(rows[5])
    assert "records another row_hash at chain_seq 6" in full.first_broken["reason"]
    # moved: the first checkpoint's position changed, its hash kept
    with guards_off(engine) as connection:
        connection.execute(sa.delete(chain_checkpoints).where(chain_checkpoints.c.recorded_by == "forger"))
        connection.execute(sa.update(chain_checkpoints).where(chain_checkpoints.c.id == first.id).values(chain_seq=3))
    assert tip_hash == first.row_hash
    assert verify_audit_chain(engine).first_broken["reason"].startswith("checkpoint mismatch")
    assert verify_audit_chain(engine, full_chain=True).first_broken["chain_seq"] == 3


@contextmanager
def guards_off(engine):
    """triggers_disabled, the checkpoints' own triggers out of the way too (SQLite: dropped and put
    back; PostgreSQL: session_replication_role = replica fires none)."""
    with triggers_disabled(engine) as connection:
        if engine.dialect.name == "sqlite":
            for statement in drop_checkpoint_trigger_sql("sqlite"):
                connection.exec_driver_sql(statement)
        yield connection
        if engine.dialect.name == "sqlite":
            for statement in checkpoint_trigger_sql("sqlite"):
                connection.exec_driver_sql(statement)


# What the database refuses


def test_the_database_refuses_forged_or_moved_checkpoints_for_the_owner(backend, engine):
    add_entries(engine, 5)
    first = record_checkpoint(engine).checkpoint
    assert first is not None
    add_entries(engine, 3, start=5)
    rows = chain_rows(engine)
    record_checkpoint(engine)
    before = stored(engine)
    stamp = "'2025-10-01 00:00:00" + ("+00'" if backend == "postgresql" else "'")
    columns = f"INSERT INTO {CHECKPOINT_TABLE} (chain_seq, row_hash, verified_from, recorded_at)"
    for statement in (
        f"{columns} VALUES (8, '{'c' * 64}', 1, {stamp})",                     # a hash the log does not have
        f"{columns} VALUES (9, '{rows[-1].row_hash}', 1, {stamp})",            # beyond the tip
        f"{columns} VALUES (3, '{rows[2].row_hash}', 1, {stamp})",             # behind the latest checkpoint
    ):
        refused(engine, statement, match="must name a row of the log")
    for statement in (f"UPDATE {CHECKPOINT_TABLE} SET chain_seq = 8, row_hash = '{rows[-1].row_hash}' "
                      f"WHERE id = {first.id}",
                      f"UPDATE {CHECKPOINT_TABLE} SET row_hash = '{'c' * 64}'",
                      f"DELETE FROM {CHECKPOINT_TABLE}"):
        refused(engine, statement, match="append-only")
    if backend == "sqlite":
        refused(engine, f"INSERT OR REPLACE INTO {CHECKPOINT_TABLE} (id, chain_seq, row_hash, verified_from, "
                        f"recorded_at) VALUES ({first.id}, 8, '{rows[-1].row_hash}', 1, {stamp})", match="append-only")
    else:
        refused(engine, f"TRUNCATE {CHECKPOINT_TABLE}", match="append-only")
    assert stored(engine) == before
    assert verify_audit_chain(engine).ok


@pytest.fixture
def as_each_role(db_url, roles):  # noqa: F811
    """Engines of the owner, the application (writer) role and the analytics role of `db grant`."""
    handles = (create_engine(db_url), _as(db_url, roles.app), _as(db_url, roles.analytics))
    yield handles
    for handle in handles:
        handle.dispose()


@POSTGRESQL_ONLY
@pytest.mark.slow
def test_the_writer_and_analytics_roles_cannot_forge_or_move_a_checkpoint(backend, db_url, roles,  # noqa: F811
                                                                         as_each_role):
    engine, app, analytics = as_each_role
    add_entries(engine, 4)
    checkpoint = record_checkpoint(engine).checkpoint
    assert checkpoint is not None and checkpoint.recorded_by  # set by the database: current_user
    add_entries(app, 3, start=4)  # the application role appends audit rows as before
    rows = chain_rows(engine)
    before = stored(engine)
    for role in (app, analytics):
        for statement in (
            f"INSERT INTO {CHECKPOINT_TABLE} (chain_seq, row_hash, verified_from, recorded_at) "
            f"VALUES (7, '{rows[-1].row_hash}', 1, now())",
            f"UPDATE {CHECKPOINT_TABLE} SET chain_seq = 7, row_hash = '{rows[-1].row_hash}'",
            f"DELETE FROM {CHECKPOINT_TABLE}", f"TRUNCATE {CHECKPOINT_TABLE}",
            f"ALTER TABLE {CHECKPOINT_TABLE} DISABLE TRIGGER USER",
        ):
            refused(role, statement, match="permission denied|must be owner")
        with pytest.raises(CheckpointRefused, match="may not record chain checkpoints"):
            record_checkpoint(role)
        result = verify_audit_chain(role)  # both read and verify from the owner's checkpoint
        assert result.ok and result.checkpoint is not None and result.checkpoint.id == checkpoint.id
        assert (result.first_seq, result.last_seq, result.rows) == (5, 7, 3)
    assert stored(engine) == before
    with engine.connect() as connection:
        assert control_problems(connection, roles) == []
    # a grant that would let the writer place checkpoints is what db check reports
    with engine.begin() as connection:
        connection.exec_driver_sql(f'GRANT INSERT ON {CHECKPOINT_TABLE} TO "{roles.app}"')
    with engine.connect() as connection:
        assert f"{roles.app} holds INSERT on {CHECKPOINT_TABLE} (only the owner may)" in control_problems(
            connection, roles)
    done = cli("db", "check", "--repair", "--url", db_url, "--app-role", roles.app,
               "--analytics-role", roles.analytics)
    assert done.returncode == 0, done.stderr
    analytics_url = make_url(db_url).set(username=roles.analytics).render_as_string(hide_password=False)
    denied = cli("db", "checkpoint", "--url", analytics_url)
    assert denied.returncode == 4 and "may not record chain checkpoints" in denied.stderr, denied.stderr
    assert "Traceback" not in denied.stderr


@pytest.mark.slow
def test_db_check_reports_checkpoint_guards_switched_off(backend, db_url):
    engine = create_engine(db_url)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"DROP TRIGGER trg_{CHECKPOINT_TABLE}_check"
                                       + (f" ON {CHECKPOINT_TABLE}" if backend == "postgresql" else ""))
        with engine.connect() as connection:
            assert (f"trigger trg_{CHECKPOINT_TABLE}_check on {CHECKPOINT_TABLE} is missing"
                    in control_problems(connection))
        assert cli("db", "check", "--repair", "--url", db_url).returncode == 0
        add_entries(engine, 2)
        refused(engine, f"INSERT INTO {CHECKPOINT_TABLE} (chain_seq, row_hash, verified_from, recorded_at) "
                        f"VALUES (2, '{'d' * 64}', 1, '2025-10-01 00:00:00')", match="must name a row of the log")
    finally:
        engine.dispose()


# Older databases, the CLI


def test_a_database_before_revision_0008_is_verified_in_full(backend, fresh_url):
    command.upgrade(alembic_config(fresh_url), "0006")
    engine = create_engine(fresh_url)
    try:
        add_entries(engine, 3)
        result = verify_audit_chain(engine)
        assert result.ok and result.rows == 3 and result.full
        assert result.scope == "full chain (no checkpoint table: revision 0008 is not applied)"
        with pytest.raises(CheckpointRefused, match="run the migrations"):
            record_checkpoint(engine)
        command.upgrade(alembic_config(fresh_url), "head")
        assert record_checkpoint(engine).checkpoint is not None
        command.downgrade(alembic_config(fresh_url), "0006")  # the checkpoints go, the chain stays
        assert verify_audit_chain(engine) == ChainVerification(True, 3, None)
    finally:
        engine.dispose()


def test_record_checkpoint_in_the_callers_transaction(backend, engine):
    add_entries(engine, 3)
    with engine.connect() as connection:
        recorded = record_checkpoint(connection)
        assert recorded.checkpoint is not None and recorded.checkpoint.chain_seq == 3
        connection.rollback()  # the caller decides: nothing stays
    assert stored(engine) == []
    with engine.begin() as connection:
        record_checkpoint(connection, full_chain=True)
    with engine.connect() as connection:
        assert [c.chain_seq for c in all_checkpoints(connection)] == [3]
    again = record_checkpoint(engine).checkpoint  # the same tip again: allowed (never backwards)
    assert again is not None and again.chain_seq == 3 and again.verified_from == 4
    assert len(stored(engine)) == 2
    with pytest.raises(TypeError, match="source must be"):
        record_checkpoint(42)
    with pytest.raises(ValueError, match="full_chain must be True or False"):
        verify_audit_chain(engine, full_chain="yes")


@pytest.mark.slow
def test_an_empty_chain_records_no_checkpoint(backend, db_url):
    recorded = record_checkpoint(db_url)
    assert recorded.verification.ok and recorded.checkpoint is None
    done = cli("db", "checkpoint", "--url", db_url)
    assert done.returncode == 0 and "the audit chain is empty: no checkpoint recorded" in done.stdout, done.stderr


@pytest.mark.slow
def test_cli_checkpoint_and_full_chain_flag(backend, db_url, tmp_path):
    engine = create_engine(db_url)
    try:
        ids = add_entries(engine, 5)
        done = cli("db", "checkpoint", "--url", db_url)
        assert done.returncode == 0, done.stderr
        assert "audit chain intact, verified full chain (no checkpoint stored yet), positions 1..5 read; " \
               "recorded checkpoint 1 (chain_seq 5, recorded " in done.stdout
        add_entries(engine, 2, start=5)
        done = cli("db", "checkpoint", "--url", db_url)
        assert done.returncode == 0 and "verified from checkpoint 1 (chain_seq 5" in done.stdout, done.stderr
        assert "positions 6..7 read; recorded checkpoint 2 (chain_seq 7" in done.stdout
        with triggers_disabled(engine) as connection:
            connection.exec_driver_sql(f"UPDATE {LOGS} SET action = 'edited' WHERE {where_log(engine, ids[1])}")
        common = ["--url", db_url, "--as-of", AS_OF.date().isoformat(), "--format", "json"]
        done = cli("report", "security", *common, "--out", str(tmp_path / "incremental"))
        assert done.returncode == 0, done.stderr
        assert "security: audit chain intact; verified from checkpoint 2 (chain_seq 7" in done.stderr
        assert "no position after the checkpoint to read" in done.stderr
        written = json.loads((tmp_path / "incremental" / "security.json").read_text())
        assert written["summary"]["audit_chain_ok"] is True and written["summary"]["audit_chain_checkpoint_id"] == 2
        assert written["parameters"]["full_chain"] is False
        for names in (["security"], ["all"]):
            out = tmp_path / "full" / names[0]
            done = cli("report", *names, *common, "--full-chain", "--out", str(out))
            assert done.returncode == 0, done.stderr  # a report is written whatever the chain says
            assert ("security: audit chain BROKEN (see the report's audit_chain table); verified full chain "
                    "(asked); positions 1..7 read") in done.stderr
            written = json.loads((out / "security.json").read_text())
            assert written["summary"]["audit_chain_ok"] is False and written["parameters"]["full_chain"] is True
            assert written["summary"]["audit_chain_first_seq"] == 1
        done = cli("report", "pnl", *common, "--full-chain", "--out", str(tmp_path / "pnl"))
        assert done.returncode == 0 and "note: --full-chain does not apply to pnl" in done.stderr, done.stderr
        done = cli("db", "checkpoint", "--url", db_url)  # incremental: the edited row is before checkpoint 2
        assert done.returncode == 0, done.stderr
        done = cli("db", "checkpoint", "--full-chain", "--url", db_url)
        assert done.returncode == 4 and done.stderr.startswith("error: the audit chain is broken at chain_seq 2 ")
        assert "no checkpoint recorded" in done.stderr and "Traceback" not in done.stderr
        assert len(stored(engine)) == 3
        assert cli("db", "checkpoint", "--bogus").returncode == 2
    finally:
        engine.dispose()
