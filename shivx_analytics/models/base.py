"""The shared base of every table: naming convention, mixins, money and time fields."""


import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from shivx_analytics.types import MONEY_PRECISION, MONEY_SCALE, Money, UTCDateTime

# Every index and constraint gets a predictable name: SQLite batch migrations need them,
# and migrations can refer to them on both backends.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata = SQLModel.metadata


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def MoneyField(default: Any = ..., *, gt: Decimal | int | None = None, ge: Decimal | int | None = None,
               nullable: bool = False, **kwargs: Any) -> Any:
    """A NUMERIC(20,8) money field: validated digits and places, stored exactly."""
    return Field(
        default=default, gt=gt, ge=ge, max_digits=MONEY_PRECISION, decimal_places=MONEY_SCALE,
        sa_type=Money(), nullable=nullable, **kwargs,
    )


def UTCField(default: Any = ..., *, nullable: bool = False, **kwargs: Any) -> Any:
    """An aware UTC timestamp field."""
    return Field(default=default, sa_type=UTCDateTime(), nullable=nullable, **kwargs)


def reject_naive(value: datetime | None) -> datetime | None:
    """Refuse naive datetimes; convert aware ones to UTC."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (e.g. 2025-10-28T12:00:00+00:00); naive times are ambiguous")
    return value.astimezone(timezone.utc)


class UTCModel(SQLModel):
    """A data model whose datetime fields must be timezone-aware and are kept in UTC."""

    @field_validator("*", mode="after")
    @classmethod
    def _aware_datetimes(cls, value: Any) -> Any:
        return reject_naive(value) if isinstance(value, datetime) else value


class TimestampMixin(UTCModel):
    # created_at / updated_at, UTC, managed by the ORM and by database triggers
    created_at: datetime = UTCField(default_factory=utcnow, sa_column_kwargs={"server_default": sa.func.current_timestamp()})
    updated_at: datetime = UTCField(
        default_factory=utcnow,
        sa_column_kwargs={"onupdate": utcnow, "server_default": sa.func.current_timestamp()},
    )


class SoftDeleteMixin(SQLModel):
    # rows are deactivated rather than deleted
    is_active: bool = Field(default=True, nullable=False, index=True,
                            sa_column_kwargs={"server_default": sa.text("true")})

    def soft_delete(self) -> None:
        """Mark the row inactive (it stays in the database)."""
        self.is_active = False


def new_uuid() -> uuid.UUID:
    """A random (version 4) UUID."""
    return uuid.uuid4()
