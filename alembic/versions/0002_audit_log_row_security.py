"""audit log row-level security (PostgreSQL)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:45:00

On PostgreSQL the audit log gets row-level security with an INSERT and a SELECT policy only,
forced for the table owner too. With no UPDATE or DELETE policy such statements would match no
rows and succeed silently, so statement-level triggers make them fail loudly instead (the foreign
key's ON DELETE SET NULL runs inside a referential-integrity trigger and is let through).
SQLite has no row-level security: nothing changes there.
"""
from typing import Sequence, Union

from alembic import op
from shivx_analytics import triggers

revision: str = "0002"
down_revision: Union[str, Sequence[str], None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in triggers.audit_log_row_security_sql():
        op.execute(statement)


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for statement in triggers.drop_audit_log_row_security_sql():
        op.execute(statement)
