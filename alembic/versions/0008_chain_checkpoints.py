"""audit chain checkpoints: verified chain positions a verification may start from

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 20:00:00

security_audit_chain_checkpoints holds checkpoints of the audit log's hash chain
(shivx_analytics/chain_checkpoints.py): a chain position (chain_seq), that row's row_hash, the first
position the recording verification read (verified_from), when and by whom. verify_audit_chain
starts from the latest one (after checking its row still has that hash) instead of position 1.

The database guards them (both backends): append-only (UPDATE, DELETE refused; TRUNCATE too on
PostgreSQL; SQLite refuses an insert that would REPLACE one), and a new checkpoint must name a
row of the log (chain_seq and row_hash) at or before the tip and at or after the latest
checkpoint. PostgreSQL sets recorded_at and recorded_by itself; only the owner may INSERT
(`db grant` gives the application and analytics roles SELECT). No checkpoint is recorded here:
the first verification after this revision reads the whole chain.
"""
from typing import Sequence, Union

import sqlalchemy as sa

import shivx_analytics.types
from alembic import op
from shivx_analytics import chain_checkpoints

revision: str = "0008"
down_revision: Union[str, Sequence[str], None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = chain_checkpoints.CHECKPOINT_TABLE


def upgrade() -> None:
    context = op.get_context()
    dialect = context.dialect.name
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.Column("verified_from", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", shivx_analytics.types.UTCDateTime(), nullable=False),
        sa.Column("recorded_by", sa.String(length=128), nullable=True),
        sa.CheckConstraint("chain_seq >= 1", name=op.f(f"ck_{TABLE}_chain_seq_positive")),
        sa.CheckConstraint("verified_from >= 1 AND verified_from <= chain_seq + 1",
                           name=op.f(f"ck_{TABLE}_verified_from_range")),
        sa.PrimaryKeyConstraint("id", name=op.f(f"pk_{TABLE}")),
    )
    schema = "public"
    if dialect == "postgresql" and not context.as_sql:
        schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    for statement in chain_checkpoints.checkpoint_trigger_sql(dialect, schema):
        op.execute(statement)
    if dialect == "postgresql":
        op.execute(f"REVOKE ALL ON {TABLE} FROM PUBLIC")


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for statement in chain_checkpoints.drop_checkpoint_trigger_sql(dialect):
        op.execute(statement)
    op.drop_table(TABLE)
