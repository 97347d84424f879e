"""audit rows must extend the chain; the tip only moves forward; SQLite money text checked

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:00:00

Until this revision the hash chain was kept by the writers (shivx_analytics/models/audit_chain.py)
and checked afterwards (verify_audit_chain): a role allowed to INSERT into the audit log could
add rows outside the sequence, and on SQLite ``INSERT OR REPLACE`` removed the row it collided
with without firing the DELETE trigger. Now the database itself (shivx_analytics/triggers.py):

- refuses an audit row whose chain_seq is not the tip's + 1 or whose prev_hash is not the tip's
  hash, and moves the tip (security_audit_chain) to the rows it accepts, under the tip row's lock;
- lets the tip move only forward, to a row that is in the log, and never be deleted or replaced;
- SQLite: refuses an audit insert that collides with a stored row (REPLACE), and money text that
  is not a decimal within its column's NUMERIC(precision, scale) (PostgreSQL's NUMERIC columns
  hold nothing else).

Rows already in the log are not touched: verify_audit_chain reports any that lie outside the chain.
"""
from typing import Sequence, Union

from alembic import op
from shivx_analytics import triggers

revision: str = "0006"
down_revision: Union[str, Sequence[str], None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    context = op.get_context()
    dialect = context.dialect.name
    schema = "public"
    if dialect == "postgresql" and not context.as_sql:
        schema = op.get_bind().exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()
    for statement in triggers.chain_trigger_sql(dialect, schema) + triggers.money_trigger_sql(dialect):
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for statement in triggers.drop_money_trigger_sql(dialect) + triggers.drop_chain_trigger_sql(dialect):
        op.execute(statement)
