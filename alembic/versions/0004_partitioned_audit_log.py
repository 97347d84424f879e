"""partitioned audit log, JSON indexes, SQL money rounding (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:40:00

PostgreSQL: security_audit_logs becomes a table partitioned by range of "timestamp", one
partition per UTC month (shivx_analytics/partitions.py): the months of the rows already there,
the current month and the next, and a default partition. The table is rebuilt: the old one is
renamed, the new one created with the same columns, the rows copied (unchanged: the hash chain
still verifies), the old one dropped; then keys, indexes, triggers, row-level security and the
table grants the old one had. Its unique index on chain_seq alone becomes unique on
(chain_seq, "timestamp"): a partitioned table's unique indexes must hold the partition key (the
chain's writers, serialised on security_audit_chain, still number rows 1, 2, 3, ... and
verify_audit_chain checks that). GIN indexes (jsonb_path_ops, for @> containment) on the audit
log's details and on orders.extra_data. shivx_round_half_even(numeric, int): the SQL twin of the
frames' money rounding, used by the push-down aggregates and the materialized views.

SQLite keeps one table; only the chain_seq index changes there, the same way.
"""
from datetime import datetime, timezone
from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel

import shivx_analytics.types
from alembic import op
from shivx_analytics import partitions, triggers

revision: str = "0004"
down_revision: Union[str, Sequence[str], None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TABLE = "security_audit_logs"
OLD = f"{TABLE}_unpartitioned"
CHAIN_INDEX_0003 = "ix_security_audit_logs_chain_seq"
CHAIN_INDEX = "uq_security_audit_logs_chain_seq_timestamp"
# The indexes of 0001, as they were: (name, columns).
INDEXES = [
    ("ix_security_audit_logs_event_type", ["event_type"]),
    ("ix_security_audit_logs_event_type_action_timestamp", ["event_type", "action", "timestamp"]),
    ("ix_security_audit_logs_ip_address", ["ip_address"]),
    ("ix_security_audit_logs_ip_address_timestamp", ["ip_address", "timestamp"]),
    ("ix_security_audit_logs_request_id", ["request_id"]),
    ("ix_security_audit_logs_success", ["success"]),
    ("ix_security_audit_logs_success_timestamp", ["success", "timestamp"]),
    ("ix_security_audit_logs_timestamp", ["timestamp"]),
    ("ix_security_audit_logs_timestamp_event_type", ["timestamp", "event_type"]),
    ("ix_security_audit_logs_user_id", ["user_id"]),
    ("ix_security_audit_logs_user_id_timestamp", ["user_id", "timestamp"]),
]
COLUMNS = ["event_type", "user_id", "ip_address", "resource", "action", "success", "details", "request_id",
           "log_id", "timestamp", "chain_seq", "prev_hash", "row_hash"]

ROUND_HALF_EVEN = """
CREATE OR REPLACE FUNCTION shivx_round_half_even(x numeric, places integer) RETURNS numeric
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT round(CASE WHEN abs(x * 10::numeric ^ places - trunc(x * 10::numeric ^ places)) = 0.5
                      THEN 2 * round(x * 10::numeric ^ places / 2) / 10::numeric ^ places
                      ELSE round(x, places) END, places)
$$"""


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect != "postgresql":
        op.drop_index(CHAIN_INDEX_0003, table_name=TABLE)
        op.create_index(CHAIN_INDEX, TABLE, ["chain_seq", "timestamp"], unique=True)
        return
    op.execute(ROUND_HALF_EVEN)
    op.create_index("ix_orders_extra_data", "orders", ["extra_data"], postgresql_using="gin",
                    postgresql_ops={"extra_data": "jsonb_path_ops"})
    _rebuild(partitioned=True)


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect != "postgresql":
        op.drop_index(CHAIN_INDEX, table_name=TABLE)
        op.create_index(CHAIN_INDEX_0003, TABLE, ["chain_seq"], unique=True)
        return
    _rebuild(partitioned=False)
    op.drop_index("ix_orders_extra_data", table_name="orders")
    op.execute("DROP FUNCTION IF EXISTS shivx_round_half_even(numeric, integer)")


def _rebuild(*, partitioned: bool) -> None:
    """Recreate the audit log partitioned (upgrade) or as one table (downgrade), rows kept."""
    bind = op.get_bind()
    grants = bind.execute(sa.text(
        "SELECT g.grantee::regrole::text, g.privilege_type FROM pg_class c, aclexplode(c.relacl) g "
        "WHERE c.oid = to_regclass(:table) AND g.grantee <> c.relowner AND g.grantee <> 0"),
        {"table": TABLE}).all() if not op.get_context().as_sql else []
    op.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
    op.create_table(
        TABLE,
        sa.Column("event_type", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("ip_address", sqlmodel.sql.sqltypes.AutoString(length=45), nullable=True),
        sa.Column("resource", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("details", shivx_analytics.types.JSONData(), nullable=False),
        sa.Column("request_id", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
        sa.Column("log_id", sa.Uuid(), nullable=False),
        sa.Column("timestamp", shivx_analytics.types.UTCDateTime(), nullable=False),
        sa.Column("chain_seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("row_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        **({"postgresql_partition_by": 'RANGE ("timestamp")'} if partitioned else {}),
    )
    if partitioned:
        months = [partitions.month_start(datetime.now(timezone.utc))]
        months.append(partitions.add_months(months[0], 1))
        if not op.get_context().as_sql:
            first, last = bind.execute(sa.text(f'SELECT min("timestamp"), max("timestamp") FROM {OLD}')).one()
            if first is not None:
                months += partitions.months_between(first, last)
        for month in sorted(set(months)):
            for statement in partitions.create_partition_sql(month):
                op.execute(statement)
        for statement in partitions.create_default_partition_sql():
            op.execute(statement)
    columns = ", ".join(f'"{c}"' for c in COLUMNS)
    op.execute(f"INSERT INTO {TABLE} ({columns}) SELECT {columns} FROM {OLD}")
    op.execute(f"DROP TABLE {OLD}")  # its indexes, triggers and policies go with it
    op.create_primary_key(op.f("pk_security_audit_logs"), TABLE, ["log_id", "timestamp"])
    op.create_foreign_key(op.f("fk_security_audit_logs_user_id_users"), TABLE, "users", ["user_id"], ["user_id"],
                          ondelete="SET NULL")
    for name, index_columns in INDEXES:
        op.create_index(name, TABLE, index_columns, unique=False)
    if partitioned:
        op.create_index(CHAIN_INDEX, TABLE, ["chain_seq", "timestamp"], unique=True)
        op.create_index("ix_security_audit_logs_details", TABLE, ["details"], postgresql_using="gin",
                        postgresql_ops={"details": "jsonb_path_ops"})
    else:
        op.create_index(CHAIN_INDEX_0003, TABLE, ["chain_seq"], unique=True)
    triggers.install_audit_log_triggers(op.execute, "postgresql")
    for statement in triggers.audit_log_row_security_sql():
        op.execute(statement)
    for grantee, privilege in grants:
        op.execute(f"GRANT {privilege} ON {TABLE} TO {grantee}")
