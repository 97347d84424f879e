"""Trading positions (long-only spot) and their P&L."""


import uuid
from datetime import datetime
from decimal import Decimal, localcontext
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import model_validator
from sqlmodel import Field, Relationship

from shivx_analytics.domain.enums import InvalidTransition, PositionStatus
from shivx_analytics.domain.money import EXACT_PRECISION
from shivx_analytics.domain.money import round_money as quantize_money  # round once, half to even, to 8 places
from shivx_analytics.models.base import MoneyField, TimestampMixin, UTCField, UTCModel, new_uuid, utcnow
from shivx_analytics.types import mutable_json_dict, string_enum

if TYPE_CHECKING:
    from shivx_analytics.models.order import Order
    from shivx_analytics.models.user import User


def exact(expression):
    """Evaluate ``expression()`` in a decimal context that cannot round NUMERIC(20,8) arithmetic."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        return expression()


# Shared properties
class PositionBase(UTCModel):
    token: str = Field(min_length=1, max_length=32, index=True)
    size: Decimal = MoneyField(gt=0)
    entry_price: Decimal = MoneyField(gt=0)
    current_price: Decimal = MoneyField(gt=0)
    stop_loss: Decimal | None = MoneyField(default=None, gt=0, nullable=True)
    take_profit: Decimal | None = MoneyField(default=None, gt=0, nullable=True)
    strategy: str | None = Field(default=None, max_length=100, index=True)
    extra_data: dict[str, Any] = Field(default_factory=dict, sa_type=mutable_json_dict(), nullable=False)


# The table
class Position(PositionBase, TimestampMixin, table=True):
    __tablename__ = "positions"
    __table_args__ = (
        sa.CheckConstraint("CAST(size AS NUMERIC) > 0", name="size_positive"),
        sa.CheckConstraint("CAST(entry_price AS NUMERIC) > 0", name="entry_price_positive"),
        sa.CheckConstraint("CAST(current_price AS NUMERIC) > 0", name="current_price_positive"),
        sa.CheckConstraint("stop_loss IS NULL OR CAST(stop_loss AS NUMERIC) > 0", name="stop_loss_positive"),
        sa.CheckConstraint("take_profit IS NULL OR CAST(take_profit AS NUMERIC) > 0", name="take_profit_positive"),
        sa.CheckConstraint("closed_at IS NULL OR closed_at >= opened_at", name="closed_after_opened"),
        sa.CheckConstraint("(status = 'open') = (closed_at IS NULL)", name="closed_at_iff_not_open"),
        sa.Index("ix_positions_status_closed_at", "status", "closed_at"),
        sa.Index("ix_positions_user_id_opened_at", "user_id", "opened_at"),
    )

    position_id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.user_id", ondelete="CASCADE", index=True)
    status: PositionStatus = Field(default=PositionStatus.OPEN, sa_type=string_enum(PositionStatus), index=True)
    opened_at: datetime = UTCField(default_factory=utcnow, index=True)
    closed_at: datetime | None = UTCField(default=None, nullable=True, index=True)

    user: "User" = Relationship(back_populates="positions", sa_relationship_kwargs={"lazy": "raise"})
    orders: list["Order"] = Relationship(back_populates="position", passive_deletes=True,
                                         sa_relationship_kwargs={"lazy": "raise"})

    @property
    def entry_value(self) -> Decimal:
        """size x entry_price, exact, rounded once to 8 places."""
        return quantize_money(exact(lambda: self.size * self.entry_price))

    @property
    def position_value(self) -> Decimal:
        """size x current_price, exact, rounded once to 8 places."""
        return quantize_money(exact(lambda: self.size * self.current_price))

    @property
    def pnl(self) -> Decimal:
        """size x (current_price - entry_price): unrealized while open, realized once closed."""
        return quantize_money(exact(lambda: self.size * (self.current_price - self.entry_price)))

    @property
    def pnl_pct(self) -> float:
        """pnl / entry_value x 100, a float, from the exact (unrounded) amounts."""
        return float(exact(lambda: (self.current_price - self.entry_price) / self.entry_price * 100))

    @property
    def is_open(self) -> bool:
        return self.status == PositionStatus.OPEN

    def should_stop_loss(self) -> bool:
        """Open, with a stop loss, and the price at or below it."""
        return self.is_open and self.stop_loss is not None and self.current_price <= self.stop_loss

    def should_take_profit(self) -> bool:
        """Open, with a take profit, and the price at or above it."""
        return self.is_open and self.take_profit is not None and self.current_price >= self.take_profit

    def update_price(self, new_price: Decimal) -> None:
        """Mark an open position to a new price."""
        self._require_open("update_price")
        self.current_price = _positive_price(new_price, "new_price")

    def close(self, close_price: Decimal, *, at: datetime | None = None) -> None:
        """Close at ``close_price``: pnl becomes realized."""
        self._finish(PositionStatus.CLOSED, close_price, at)

    def liquidate(self, price: Decimal | None = None, *, at: datetime | None = None) -> None:
        """Liquidate, at ``price`` or else at the last mark."""
        self._finish(PositionStatus.LIQUIDATED, self.current_price if price is None else price, at)

    def _finish(self, status: PositionStatus, price: Decimal, at: datetime | None) -> None:
        self._require_open(status.value)
        self.current_price = _positive_price(price, "price")
        self.status = status
        self.closed_at = at or utcnow()

    def _require_open(self, action: str) -> None:
        if not self.is_open:
            raise InvalidTransition(f"cannot {action} position {self.position_id}: it is {self.status}, not open")

    def __repr__(self) -> str:
        return (f"Position(position_id={self.position_id!s}, token={self.token!r}, size={self.size}, "
                f"status={self.status.value!r})")


def _positive_price(price: Any, name: str) -> Decimal:
    from shivx_analytics.types import to_money

    value = to_money(price)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


# Properties to receive on creation
class PositionCreate(PositionBase):
    user_id: uuid.UUID
    status: PositionStatus = PositionStatus.OPEN
    opened_at: datetime | None = None
    closed_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "PositionCreate":
        if (self.status == PositionStatus.OPEN) != (self.closed_at is None):
            raise ValueError("closed_at must be set exactly when status is closed or liquidated")
        # opened_at defaults to now in build_position, so a closed_at in the past needs an opened_at
        if self.closed_at is not None and self.closed_at < (self.opened_at or utcnow()):
            raise ValueError("closed_at must not be before opened_at (which defaults to now)")
        return self


class PositionUpdate(UTCModel):
    current_price: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)
    stop_loss: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)
    take_profit: Decimal | None = Field(default=None, gt=0, max_digits=20, decimal_places=8)
    strategy: str | None = Field(default=None, max_length=100)
    extra_data: dict[str, Any] | None = None


class PositionRead(PositionBase):
    position_id: uuid.UUID
    user_id: uuid.UUID
    status: PositionStatus
    opened_at: datetime
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


def build_position(position_create: PositionCreate) -> Position:
    """A validated Position row (opened_at defaults to now)."""
    data = position_create.model_dump(exclude_none=True)
    return Position.model_validate(data)
