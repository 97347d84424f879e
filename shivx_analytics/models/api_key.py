"""API keys for programmatic access: only the SHA-256 hash of a key is stored."""


import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from shivx_analytics.models.base import SoftDeleteMixin, TimestampMixin, UTCField, UTCModel, new_uuid, utcnow
from shivx_analytics.security import api_key_display_prefix, generate_api_key
from shivx_analytics.types import mutable_json_dict

if TYPE_CHECKING:
    from shivx_analytics.models.user import User

DEFAULT_RATE_LIMIT = 60  # requests per minute


# Shared properties
class APIKeyBase(UTCModel):
    name: str = Field(min_length=1, max_length=100)
    permissions: dict[str, Any] = Field(default_factory=dict, sa_type=mutable_json_dict(), nullable=False)
    rate_limit: int = Field(default=DEFAULT_RATE_LIMIT, gt=0, description="requests per minute")
    expires_at: datetime | None = UTCField(default=None, nullable=True, index=True)


# The table
class APIKey(APIKeyBase, TimestampMixin, SoftDeleteMixin, table=True):
    __tablename__ = "api_keys"
    __table_args__ = (
        sa.CheckConstraint("rate_limit > 0", name="rate_limit_positive"),
        sa.CheckConstraint("requests_count >= 0", name="requests_count_non_negative"),
    )

    key_id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    key_hash: str = Field(min_length=64, max_length=64, unique=True, index=True, repr=False)
    key_prefix: str = Field(max_length=16, index=True)
    requests_count: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    last_used_at: datetime | None = UTCField(default=None, nullable=True)
    user_id: uuid.UUID = Field(foreign_key="users.user_id", ondelete="CASCADE", index=True)

    user: "User" = Relationship(back_populates="api_keys", sa_relationship_kwargs={"lazy": "raise"})

    @property
    def is_expired(self) -> bool:
        """True once expires_at has passed (expires_at <= now)."""
        return self.expires_at is not None and self.expires_at <= utcnow()

    @property
    def is_valid(self) -> bool:
        """Active and not expired."""
        return bool(self.is_active) and not self.is_expired

    def check_rate_limit(self, current_requests: int) -> bool:
        """True if one more request is allowed: current_requests < rate_limit."""
        return current_requests < self.rate_limit

    def increment_usage(self) -> None:
        """Count one request and stamp last_used_at."""
        self.requests_count = (self.requests_count or 0) + 1
        self.last_used_at = utcnow()

    def has_permission(self, permission: str) -> bool:
        return bool((self.permissions or {}).get(permission) is True)

    def __repr__(self) -> str:
        return f"APIKey(key_id={self.key_id!s}, key_prefix={self.key_prefix!r}, name={self.name!r})"


# Properties to receive on creation (the key itself is generated, never supplied)
class APIKeyCreate(APIKeyBase):
    user_id: uuid.UUID


class APIKeyUpdate(UTCModel):
    name: str | None = Field(default=None, min_length=1, max_length=100)
    permissions: dict[str, Any] | None = None
    rate_limit: int | None = Field(default=None, gt=0)
    expires_at: datetime | None = None
    is_active: bool | None = None


# Properties to return: never the hash
class APIKeyRead(APIKeyBase):
    key_id: uuid.UUID
    key_prefix: str
    user_id: uuid.UUID
    requests_count: int
    last_used_at: datetime | None
    is_active: bool
    created_at: datetime


def build_api_key(key_create: APIKeyCreate) -> tuple[str, APIKey]:
    """A new key: ``(plaintext, row)``. The plaintext is returned once and never stored."""
    plaintext, key_hash = generate_api_key()
    row = APIKey.model_validate(
        key_create, update={"key_hash": key_hash, "key_prefix": api_key_display_prefix(plaintext)}
    )
    return plaintext, row
