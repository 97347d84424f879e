"""Checkpoints of the audit hash chain: where a verification may start instead of position 1.

    import shivx_analytics as sx
    from shivx_analytics.chain_checkpoints import record_checkpoint
    recorded = record_checkpoint("postgresql://owner@db/shivx")   # verify, then record the tip
    sx.verify_audit_chain("postgresql://analytics@replica/shivx")  # reads only the rows after it

A checkpoint is a row of ``security_audit_chain_checkpoints`` (revision 0008): a chain position
(``chain_seq``) and that row's ``row_hash``, recorded after a verification found every row up to
there intact. ``verify_audit_chain`` starts from the latest checkpoint: it first checks that the
row at that position still has that hash (else it fails, naming the checkpoint), then verifies the
rows after it, linking the first of them to the checkpoint's hash. ``full_chain=True`` reads every
row from position 1 and also checks every checkpoint against the chain.

What the database guarantees (triggers installed by the migration, both backends):

- the table is append-only: UPDATE and DELETE are refused (TRUNCATE too on PostgreSQL), and on
  SQLite an INSERT that would replace a stored checkpoint (REPLACE) is refused;
- a new checkpoint must name a row of the log (its chain_seq and row_hash), at or before the
  chain's tip, and at or after the latest checkpoint: checkpoints only move forward;
- PostgreSQL: ``recorded_at`` and ``recorded_by`` are set by the database (now(), current_user),
  and only the table's owner may INSERT (``db grant`` gives the application and analytics roles
  SELECT only; ``db check`` reports any other role holding more). A role with INSERT could place a
  checkpoint past rows tampered behind the database's back, so the right stays with the owner.

Who writes checkpoints: ``record_checkpoint`` (``shivx-analytics db checkpoint``), run by the
owner, e.g. nightly before the reports. It verifies (incrementally from the latest checkpoint, or
the whole chain with ``full_chain=True``) and records the verified tip only when the chain is
intact. Verifying never writes: the analytics role and read-only standbys verify from the latest
checkpoint stored and say so. docs/security.md ("Chain checkpoints") has the whole story.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics.models.audit_chain import CHECKPOINT_TABLE, chain_checkpoints
from shivx_analytics.models.base import utcnow

__all__ = ["CHECKPOINT_TABLE", "Checkpoint", "CheckpointRecord", "CheckpointRefused", "chain_checkpoints",
           "latest_checkpoint", "all_checkpoints", "record_checkpoint", "checkpoint_trigger_sql",
           "drop_checkpoint_trigger_sql", "checkpoint_trigger_names"]

AUDIT_TABLE = "security_audit_logs"
CHAIN_TABLE = "security_audit_chain"
CHECKPOINT_REFUSED = "security_audit_chain_checkpoints is append-only"
CHECKPOINT_OFF_CHAIN = "a chain checkpoint must name a row of the log, at or after the latest checkpoint"

@dataclass(frozen=True)
class Checkpoint:
    """One stored checkpoint: the chain was intact through ``chain_seq``, whose row hashed to
    ``row_hash``; the verification that recorded it read positions ``verified_from``..chain_seq
    (1 when it read the whole chain)."""

    id: int
    chain_seq: int
    row_hash: str
    verified_from: int
    recorded_at: datetime
    recorded_by: str | None

    def describe(self) -> str:
        by = f" by {self.recorded_by}" if self.recorded_by else ""
        return (f"checkpoint {self.id} (chain_seq {self.chain_seq:,}, recorded "
                f"{self.recorded_at:%Y-%m-%d %H:%M} UTC{by})")


class CheckpointRefused(RuntimeError):
    """record_checkpoint cannot record here: no table, a role without the right, a standby."""


def has_checkpoints_table(connection: Connection) -> bool:
    return sa.inspect(connection).has_table(CHECKPOINT_TABLE)


def may_read(connection: Connection) -> bool:
    """PostgreSQL: whether the connection's role may SELECT the checkpoints (SQLite: always)."""
    if connection.dialect.name != "postgresql":
        return True
    return bool(connection.exec_driver_sql(
        "SELECT has_table_privilege(to_regclass(%(t)s), 'SELECT')", {"t": CHECKPOINT_TABLE}).scalar())


def _checkpoint(row: Any) -> Checkpoint:
    return Checkpoint(int(row.id), int(row.chain_seq), row.row_hash, int(row.verified_from), row.recorded_at,
                      row.recorded_by)


def latest_checkpoint(connection: Connection) -> Checkpoint | None:
    """The checkpoint at the highest position (the latest recorded on ties), or None."""
    table = chain_checkpoints
    row = connection.execute(sa.select(table).order_by(table.c.chain_seq.desc(), table.c.id.desc()).limit(1)).first()
    return None if row is None else _checkpoint(row)


def all_checkpoints(connection: Connection) -> list[Checkpoint]:
    """Every stored checkpoint, in position order (a full verification checks each)."""
    table = chain_checkpoints
    return [_checkpoint(row) for row in connection.execute(sa.select(table).order_by(table.c.chain_seq, table.c.id))]


# Recording -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointRecord:
    """What record_checkpoint did: the verification it ran (see ChainVerification), and the
    checkpoint it recorded (None when the chain is broken or empty: nothing was written)."""

    verification: Any  # shivx_analytics.audit_chain.ChainVerification
    checkpoint: Checkpoint | None


def record_checkpoint(source: Any, *, full_chain: bool = False, batch_rows: int | None = None) -> CheckpointRecord:
    """Verify the chain and, if it is intact, record its verified tip as a new checkpoint.

    Incremental from the latest checkpoint, or from position 1 with ``full_chain=True``. The
    verification reads; the checkpoint is then inserted in a short transaction of its own (an
    Engine or URL source: committed here; a Connection or Session: in the caller's transaction,
    which the caller commits). The database checks the new checkpoint (see the module docstring).
    Raises CheckpointRefused when the database has no checkpoint table (run the migrations), the
    role may not insert (PostgreSQL: only the owner may) or the server is a read-only standby.
    """
    from shivx_analytics.audit_chain import BATCH_ROWS, verify_audit_chain
    from shivx_analytics.db import create_engine

    rows = BATCH_ROWS if batch_rows is None else batch_rows
    if isinstance(source, (Connection, Session)):
        connection = source if isinstance(source, Connection) else source.connection()
        _check_may_record(connection)
        verification = verify_audit_chain(connection, full_chain=full_chain, batch_rows=rows)
        return CheckpointRecord(verification, _insert(connection, verification))
    if isinstance(source, Engine):
        engine, owned = source, False
    elif isinstance(source, (str, URL)):
        engine, owned = create_engine(source), True
    else:
        raise TypeError(f"source must be an Engine, a Connection, a Session or a database URL, "
                        f"not {type(source).__name__}")
    try:
        with engine.connect() as connection:
            _check_may_record(connection)
            verification = verify_audit_chain(connection, full_chain=full_chain, batch_rows=rows)
            connection.rollback()  # end the reading transaction before the short writing one
            with connection.begin():
                checkpoint = _insert(connection, verification)
        return CheckpointRecord(verification, checkpoint)
    finally:
        if owned:
            engine.dispose()


def _check_may_record(connection: Connection) -> None:
    from shivx_analytics.db import mask_url

    where = mask_url(connection.engine.url)
    if not has_checkpoints_table(connection):
        raise CheckpointRefused(f"{where} has no {CHECKPOINT_TABLE} (revision 0008): run the migrations "
                                "(`shivx-analytics db upgrade`)")
    if connection.dialect.name != "postgresql":
        return
    standby, role, allowed = connection.exec_driver_sql(
        "SELECT pg_is_in_recovery(), current_user, has_table_privilege(to_regclass(%(t)s), 'INSERT')",
        {"t": CHECKPOINT_TABLE}).one()
    if standby:
        raise CheckpointRefused(f"{where} is a read-only hot standby: record checkpoints on the primary, as the "
                                f"owner of {CHECKPOINT_TABLE}")
    if not allowed:
        raise CheckpointRefused(f"role {role} may not record chain checkpoints (only the owner of {CHECKPOINT_TABLE} "
                                "may): run `shivx-analytics db checkpoint` with the owner's --url")


def _insert(connection: Connection, verification: Any) -> Checkpoint | None:
    """The verified tip as a new checkpoint (None when the chain is broken or empty)."""
    if not verification.ok or verification.last_seq < 1:
        return None
    table = chain_checkpoints
    values = {"chain_seq": verification.last_seq, "row_hash": verification.last_hash,
              "verified_from": verification.first_seq, "recorded_at": utcnow(), "recorded_by": None}
    new_id = connection.execute(table.insert().values(**values).returning(table.c.id)).scalar_one()
    row = connection.execute(sa.select(table).where(table.c.id == new_id)).one()
    return _checkpoint(row)


# The database's guards (installed by revision 0008) --------------------------------------------


def checkpoint_trigger_names(dialect: str) -> set[str]:
    if dialect == "postgresql":
        return {f"trg_{CHECKPOINT_TABLE}_check", f"trg_{CHECKPOINT_TABLE}_no_change",
                f"trg_{CHECKPOINT_TABLE}_no_truncate"}
    return {f"trg_{CHECKPOINT_TABLE}_check", f"trg_{CHECKPOINT_TABLE}_no_replace",
            f"trg_{CHECKPOINT_TABLE}_no_update", f"trg_{CHECKPOINT_TABLE}_no_delete"}


def checkpoint_trigger_sql(dialect: str, schema: str = "public") -> list[str]:
    """Statements creating the checkpoints' guards; ``schema``: where the tables live (PostgreSQL
    trigger functions run with a fixed search_path, as the chain's guards of revision 0006)."""
    if dialect == "postgresql":
        path = f"SET search_path = {schema}, pg_catalog, pg_temp"
        return [
            f"""
CREATE OR REPLACE FUNCTION shivx_chain_checkpoint_check() RETURNS trigger LANGUAGE plpgsql {path} AS $$
DECLARE
    v_latest bigint;
BEGIN
    SELECT max(c.chain_seq) INTO v_latest FROM {CHECKPOINT_TABLE} c;
    IF NEW.chain_seq < coalesce(v_latest, 0) THEN
        RAISE EXCEPTION '{CHECKPOINT_OFF_CHAIN}: chain_seq % is before the latest checkpoint %',
            NEW.chain_seq, v_latest USING ERRCODE = 'check_violation';
    END IF;
    IF NEW.chain_seq > (SELECT t.last_seq FROM {CHAIN_TABLE} t WHERE t.id = 1) OR NOT EXISTS (
        SELECT 1 FROM {AUDIT_TABLE} l WHERE l.chain_seq = NEW.chain_seq AND l.row_hash = NEW.row_hash) THEN
        RAISE EXCEPTION '{CHECKPOINT_OFF_CHAIN}: no row of the log up to the tip has chain_seq % and that row_hash',
            NEW.chain_seq USING ERRCODE = 'check_violation';
    END IF;
    NEW.recorded_at := now();
    NEW.recorded_by := current_user;
    RETURN NEW;
END
$$""",
            f"""
CREATE OR REPLACE FUNCTION shivx_chain_checkpoint_immutable() RETURNS trigger LANGUAGE plpgsql {path} AS $$
BEGIN
    RAISE EXCEPTION '{CHECKPOINT_REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
            f"CREATE TRIGGER trg_{CHECKPOINT_TABLE}_check BEFORE INSERT ON {CHECKPOINT_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_chain_checkpoint_check()",
            f"CREATE TRIGGER trg_{CHECKPOINT_TABLE}_no_change BEFORE UPDATE OR DELETE ON {CHECKPOINT_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_chain_checkpoint_immutable()",
            f"CREATE TRIGGER trg_{CHECKPOINT_TABLE}_no_truncate BEFORE TRUNCATE ON {CHECKPOINT_TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION shivx_chain_checkpoint_immutable()",
        ]
    return [
        f"""CREATE TRIGGER trg_{CHECKPOINT_TABLE}_no_replace BEFORE INSERT ON {CHECKPOINT_TABLE}
FOR EACH ROW WHEN EXISTS (SELECT 1 FROM {CHECKPOINT_TABLE} WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, '{CHECKPOINT_REFUSED}: an insert replacing a stored checkpoint (REPLACE) refused'); END""",
        f"""CREATE TRIGGER trg_{CHECKPOINT_TABLE}_check BEFORE INSERT ON {CHECKPOINT_TABLE}
FOR EACH ROW WHEN NEW.chain_seq < (SELECT coalesce(max(chain_seq), 0) FROM {CHECKPOINT_TABLE})
    OR NEW.chain_seq > (SELECT last_seq FROM {CHAIN_TABLE} WHERE id = 1)
    OR NOT EXISTS (SELECT 1 FROM {AUDIT_TABLE} WHERE chain_seq = NEW.chain_seq AND row_hash = NEW.row_hash)
BEGIN SELECT RAISE(ABORT, '{CHECKPOINT_OFF_CHAIN}'); END""",
        f"""CREATE TRIGGER trg_{CHECKPOINT_TABLE}_no_update BEFORE UPDATE ON {CHECKPOINT_TABLE}
FOR EACH ROW BEGIN SELECT RAISE(ABORT, '{CHECKPOINT_REFUSED}: UPDATE refused'); END""",
        f"""CREATE TRIGGER trg_{CHECKPOINT_TABLE}_no_delete BEFORE DELETE ON {CHECKPOINT_TABLE}
FOR EACH ROW BEGIN SELECT RAISE(ABORT, '{CHECKPOINT_REFUSED}: DELETE refused'); END""",
    ]


def drop_checkpoint_trigger_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS {name} ON {CHECKPOINT_TABLE}" for name in sorted(checkpoint_trigger_names(dialect))] + [
            "DROP FUNCTION IF EXISTS shivx_chain_checkpoint_check()",
            "DROP FUNCTION IF EXISTS shivx_chain_checkpoint_immutable()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in sorted(checkpoint_trigger_names(dialect))]
