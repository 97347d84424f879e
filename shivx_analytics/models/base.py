"""The shared base of every table: naming convention, mixins, money and time fields."""


import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from pydantic import field_validator
from sqlmodel import Field, SQLModel

from shivx_analytics.types import MONEY_PRECISION, MONEY_SCALE, Money, UTCDateTime, money_domain, money_domain_sql

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

# The money columns' PostgreSQL domains (types.Money, domain=True): the migrations create them
# (revision 0007); databases built with metadata.create_all (tests, tools) get them here.
MONEY_DOMAINS = ((MONEY_PRECISION, MONEY_SCALE), (10, 4))  # (10, 4): orders.slippage_actual


def _create_money_domains_sql() -> str:
    creates = " ".join(
        f"IF to_regtype('{money_domain(p, s)}') IS NULL THEN EXECUTE '{money_domain_sql(p, s)}'; END IF;"
        for p, s in MONEY_DOMAINS)
    return f"DO $$ BEGIN {creates} END $$"


sa.event.listen(metadata, "before_create", sa.DDL(_create_money_domains_sql()).execute_if(dialect="postgresql"))


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(timezone.utc)


def MoneyField(default: Any = ..., *, gt: Decimal | int | None = None, ge: Decimal | int | None = None,
               nullable: bool = False, **kwargs: Any) -> Any:
    """A NUMERIC(20,8) money field: validated digits and places, stored exactly; on PostgreSQL
    of the domain that refuses what NUMERIC(20,8) would round (types.Money, domain=True)."""
    bounds: dict[str, Any] = {"gt": gt, "ge": ge}  # pydantic compares Decimals exactly (annotated float)
    return Field(
        default=default, **bounds, max_digits=MONEY_PRECISION, decimal_places=MONEY_SCALE,
        sa_type=Money(domain=True), nullable=nullable, **kwargs,
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

    if TYPE_CHECKING:  # for the type checker only: SQLModel gives every table model its Table
        __table__: ClassVar[sa.Table]

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
