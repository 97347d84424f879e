"""The security audit log: append-only; the database refuses UPDATE, DELETE and TRUNCATE.

Rows form a hash chain (models/audit_chain.py): chain_seq, prev_hash and row_hash are assigned
when a row is flushed through the ORM (or written with ``append_audit_entries``), never by callers.
"""


import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from shivx_analytics.models.base import UTCField, UTCModel, new_uuid, utcnow
from shivx_analytics.types import JSONData

EVENT_TYPES = ("authentication", "api_request", "api_key", "authorization", "trading", "admin")


# Shared properties
class SecurityAuditLogBase(UTCModel):
    event_type: str = Field(min_length=1, max_length=50, index=True)
    user_id: uuid.UUID | None = Field(default=None, foreign_key="users.user_id", ondelete="SET NULL",
                                      nullable=True, index=True)
    ip_address: str | None = Field(default=None, max_length=45, index=True)  # 45 holds any IPv6 text form
    resource: str | None = Field(default=None, max_length=500)
    action: str = Field(min_length=1, max_length=100)
    success: bool = Field(index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=JSONData(), nullable=False)
    request_id: str | None = Field(default=None, max_length=100, index=True)


# The table. On PostgreSQL it is partitioned by month on `timestamp` (migration 0004,
# shivx_analytics/partitions.py), so the primary key and unique indexes include `timestamp`.
class SecurityAuditLog(SecurityAuditLogBase, table=True):
    __tablename__ = "security_audit_logs"
    __table_args__ = (
        sa.Index("ix_security_audit_logs_timestamp_event_type", "timestamp", "event_type"),
        sa.Index("ix_security_audit_logs_user_id_timestamp", "user_id", "timestamp"),
        sa.Index("ix_security_audit_logs_success_timestamp", "success", "timestamp"),
        sa.Index("ix_security_audit_logs_ip_address_timestamp", "ip_address", "timestamp"),
        sa.Index("ix_security_audit_logs_event_type_action_timestamp", "event_type", "action", "timestamp"),
        # Unique with the partition key: a partitioned table's unique indexes must include it.
        sa.Index("uq_security_audit_logs_chain_seq_timestamp", "chain_seq", "timestamp", unique=True),
        # PostgreSQL: `details @> '{"key_id": "..."}'` (load_audit_logs(details=...)) uses this.
        sa.Index("ix_security_audit_logs_details", "details", postgresql_using="gin",
                 postgresql_ops={"details": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
    )

    log_id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    timestamp: datetime = UTCField(default_factory=utcnow, primary_key=True, index=True)

    # The hash chain, filled in at flush time (None until then): the row's position (1, 2, ...),
    # the previous row's row_hash ('0' * 64 for the first row) and
    # sha256(prev_hash + "\n" + canonical content). See models/audit_chain.py.
    chain_seq: int | None = Field(default=None, sa_type=sa.BigInteger, nullable=False)
    prev_hash: str | None = Field(default=None, min_length=64, max_length=64, nullable=False)
    row_hash: str | None = Field(default=None, min_length=64, max_length=64, nullable=False)

    @classmethod
    def create_entry(
        cls,
        *,
        event_type: str,
        action: str,
        success: bool,
        resource: str | None = None,
        user_id: uuid.UUID | None = None,
        ip_address: str | None = None,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> "SecurityAuditLog":
        """A validated log entry, stamped now (UTC) unless ``timestamp`` is given."""
        data = SecurityAuditLogCreate(
            event_type=event_type, action=action, success=success, resource=resource, user_id=user_id,
            ip_address=ip_address, details=details or {}, request_id=request_id, timestamp=timestamp,
        )
        return cls.model_validate(data.model_dump(exclude_none=True))

    def __repr__(self) -> str:
        return (f"SecurityAuditLog(log_id={self.log_id!s}, event_type={self.event_type!r}, "
                f"action={self.action!r}, success={self.success})")


class SecurityAuditLogCreate(SecurityAuditLogBase):
    timestamp: datetime | None = None


class SecurityAuditLogRead(SecurityAuditLogBase):
    log_id: uuid.UUID
    timestamp: datetime
    chain_seq: int | None = None
    prev_hash: str | None = None
    row_hash: str | None = None
