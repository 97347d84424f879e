"""audit log hash chain

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:00:00

Tamper evidence for the audit log (shivx_analytics/models/audit_chain.py): each row gets its
position in the chain (chain_seq, unique), the previous row's hash (prev_hash) and its own
(row_hash = sha256(prev_hash + "\\n" + canonical content)); the one-row table
security_audit_chain holds the chain's tip. Rows already in the log are chained here in
(timestamp, log_id) order, with the immutability triggers (and on PostgreSQL forced row-level
security) set aside for the length of this transaction: nothing but the three new columns is
written. SQLite's UPDATE trigger names every column, so it is recreated with the new ones.
A downgrade keeps the chain values (see SAVED): upgrading again puts them back rather than
chaining the rows anew, so a row changed in between still breaks the chain.

Offline (``--sql``) the existing rows cannot be read: the script then only succeeds on a
database whose audit log is empty (SET NOT NULL fails otherwise); run it online instead.
"""
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel

import shivx_analytics.types
from alembic import op
from shivx_analytics import triggers
from shivx_analytics.models.audit_chain import GENESIS_HASH, ChainTip

revision: str = "0003"
down_revision: Union[str, Sequence[str], None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = "security_audit_logs"
# SQLite's UPDATE trigger: the columns kept unchanged (all but user_id) before and after this revision.
AUDIT_IMMUTABLE_COLUMNS_0002 = ("log_id", "timestamp", "event_type", "ip_address", "resource", "action",
                                "success", "details", "request_id")
AUDIT_IMMUTABLE_COLUMNS_0003 = AUDIT_IMMUTABLE_COLUMNS_0002 + ("chain_seq", "prev_hash", "row_hash")
BACKFILL_BATCH = 5_000


def upgrade() -> None:
    context = op.get_context()
    dialect = context.dialect.name
    if dialect == "sqlite":  # batch mode recreates the table below; the triggers come back at the end
        triggers.remove_audit_log_triggers(op.execute, dialect)
    with op.batch_alter_table(TABLE) as batch:
        batch.add_column(sa.Column("chain_seq", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("row_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    chain = op.create_table(
        "security_audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_security_audit_chain_single_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_audit_chain")),
    )
    tip = ChainTip() if context.as_sql else _chain_existing_rows(dialect, _restore_saved_chain(dialect))
    op.bulk_insert(chain, [{"id": 1, "last_seq": tip.last_seq, "last_hash": tip.last_hash}])
    with op.batch_alter_table(TABLE) as batch:
        batch.alter_column("chain_seq", existing_type=sa.BigInteger(), nullable=False)
        batch.alter_column("prev_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.alter_column("row_hash", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False)
        batch.create_index(op.f("ix_security_audit_logs_chain_seq"), ["chain_seq"], unique=True)
    if dialect == "sqlite":
        triggers.install_audit_log_triggers(op.execute, dialect, AUDIT_IMMUTABLE_COLUMNS_0003)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect == "sqlite":
        triggers.remove_audit_log_triggers(op.execute, dialect)
    _save_chain()
    op.drop_table("security_audit_chain")
    with op.batch_alter_table(TABLE) as batch:
        batch.drop_index(op.f("ix_security_audit_logs_chain_seq"))
        batch.drop_column("row_hash")
        batch.drop_column("prev_hash")
        batch.drop_column("chain_seq")
    if dialect == "sqlite":
        triggers.install_audit_log_triggers(op.execute, dialect, AUDIT_IMMUTABLE_COLUMNS_0002)


# Down to 0002 and up again must never make a tampered log verify: chaining the rows anew would
# hash whatever they hold by then. The downgrade keeps each row's chain values and the tip in
# SAVED (plain SQL, offline too); the upgrade puts them back as they were, unchecked, so a row
# edited, removed or reordered meanwhile breaks the chain exactly as it would have, and chains
# only the rows added meanwhile, after the saved tip. (SAVED is not part of revision 0002's
# schema; downgrading to base drops it with everything else.)
SAVED = "security_audit_chain_saved"


def _save_chain() -> None:
    op.create_table(
        SAVED,
        sa.Column("log_id", sa.Uuid(), nullable=True),  # NULL: the chain's tip
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
    )
    op.execute(f"INSERT INTO {SAVED} (log_id, chain_seq, prev_hash, row_hash) "
               f"SELECT log_id, chain_seq, prev_hash, row_hash FROM {TABLE}")
    op.execute(f"INSERT INTO {SAVED} (log_id, chain_seq, prev_hash, row_hash) "
               "SELECT NULL, last_seq, last_hash, last_hash FROM security_audit_chain WHERE id = 1")


def _restore_saved_chain(dialect: str) -> ChainTip:
    """Put back the chain values a downgrade saved; returns the saved tip (the genesis if none)."""
    bind = op.get_bind()
    if not sa.inspect(bind).has_table(SAVED):
        return ChainTip(0, GENESIS_HASH)
    if dialect != "sqlite":  # see _chain_existing_rows: restored right below, in this transaction
        op.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        op.execute(f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY")
    values = ", ".join(f"{column} = (SELECT s.{column} FROM {SAVED} s WHERE s.log_id = {TABLE}.log_id)"
                       for column in ("chain_seq", "prev_hash", "row_hash"))
    op.execute(f"UPDATE {TABLE} SET {values} WHERE log_id IN (SELECT log_id FROM {SAVED} WHERE log_id IS NOT NULL)")
    if dialect != "sqlite":
        op.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    saved_tip = bind.execute(sa.text(f"SELECT chain_seq, row_hash FROM {SAVED} WHERE log_id IS NULL")).first()
    op.drop_table(SAVED)
    return ChainTip(int(saved_tip[0]), saved_tip[1]) if saved_tip else ChainTip(0, GENESIS_HASH)


def _chain_existing_rows(dialect: str, start: ChainTip) -> ChainTip:
    """Chain the rows not yet chained, in (timestamp, log_id) order, after ``start``; returns the tip."""
    bind = op.get_bind()
    logs = sa.table(
        TABLE,
        sa.column("log_id", sa.Uuid()), sa.column("timestamp", shivx_analytics.types.UTCDateTime()),
        sa.column("event_type", sa.String()), sa.column("ip_address", sa.String()),
        sa.column("resource", sa.String()), sa.column("action", sa.String()), sa.column("success", sa.Boolean()),
        sa.column("details", shivx_analytics.types.JSONData()), sa.column("request_id", sa.String()),
        sa.column("chain_seq", sa.BigInteger()), sa.column("prev_hash", sa.String()),
        sa.column("row_hash", sa.String()),
    )
    tip = ChainTip(start.last_seq, start.last_hash)
    unchained = logs.c.chain_seq.is_(None)
    if not bind.execute(sa.select(sa.func.count()).select_from(logs).where(unchained)).scalar_one():
        return tip
    content = [logs.c[name] for name in ("log_id", "timestamp", "event_type", "ip_address", "resource", "action",
                                         "success", "details", "request_id")]
    if dialect == "sqlite":
        # Page through the stored text itself (what ORDER BY compares), update by rowid.
        order = (sa.literal_column('"timestamp"', sa.String()), sa.literal_column("log_id", sa.String()))
        key = [sa.literal_column("rowid").label("row_key")]
        match = sa.literal_column("rowid") == sa.bindparam("k_rowid")
    else:
        order = (logs.c.timestamp, logs.c.log_id)
        key = []
        match = sa.and_(logs.c.log_id == sa.bindparam("k_log_id"), logs.c.timestamp == sa.bindparam("k_timestamp"))
        # The owner may change the rows only with the append-only triggers and forced row-level
        # security set aside; both are restored below, inside this same transaction.
        op.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        op.execute(f"ALTER TABLE {TABLE} NO FORCE ROW LEVEL SECURITY")
    update = sa.update(logs).where(match).values(
        chain_seq=sa.bindparam("v_seq"), prev_hash=sa.bindparam("v_prev"), row_hash=sa.bindparam("v_hash"))
    page = (sa.select(*content, *key, order[0].label("page_a"), order[1].label("page_b"))
            .where(unchained).order_by(*order).limit(BACKFILL_BATCH))
    after = None
    while True:
        statement = page if after is None else page.where(sa.tuple_(*order) > sa.tuple_(
            sa.bindparam("after_a", after[0], type_=order[0].type), sa.bindparam("after_b", after[1], type_=order[1].type)))
        rows = bind.execute(statement).all()
        batch = []
        for row in rows:
            values = row._mapping
            seq, prev, digest = tip.link(values)
            keys = ({"k_rowid": values["row_key"]} if dialect == "sqlite" else
                    {"k_log_id": values["log_id"], "k_timestamp": values["timestamp"]})
            batch.append(keys | {"v_seq": seq, "v_prev": prev, "v_hash": digest})
        if batch:
            bind.execute(update, batch)
        if len(rows) < BACKFILL_BATCH:
            break
        after = (rows[-1].page_a, rows[-1].page_b)
    if dialect != "sqlite":
        op.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        op.execute(f"ALTER TABLE {TABLE} FORCE ROW LEVEL SECURITY")
    return tip
