"""Orders: swaps of USD for a token (buy) or a token for USD (sell), and their execution."""


import uuid
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from shivx_analytics.domain.enums import InvalidTransition, OrderAction, OrderStatus, OrderType
from shivx_analytics.models.base import MoneyField, TimestampMixin, UTCField, UTCModel, new_uuid, utcnow
from shivx_analytics.models.position import exact, quantize_money
from shivx_analytics.types import Money, mutable_json_dict, string_enum, to_money

if TYPE_CHECKING:
    from shivx_analytics.models.position import Position
    from shivx_analytics.models.user import User

SLIPPAGE_PRECISION, SLIPPAGE_SCALE = 10, 4
SLIPPAGE_QUANTUM = Decimal(1).scaleb(-SLIPPAGE_SCALE)


def calculate_slippage(expected: Decimal, actual: Decimal) -> Decimal:
    """Realized slippage in bps, signed, positive = worse for the trader.

    (expected - actual) / expected x 10,000, where ``expected`` and ``actual`` are the amounts
    received (expected_out, amount_out); rounded half-even to 4 decimals (NUMERIC(10,4)).
    """
    if expected <= 0:
        raise ValueError(f"expected amount must be > 0, got {expected}")
    return exact(lambda: ((expected - actual) / expected * 10_000).quantize(SLIPPAGE_QUANTUM, rounding=ROUND_HALF_EVEN))


def expected_out(action: OrderAction, amount_in: Decimal, price: Decimal) -> Decimal:
    """What the quote promised: tokens = amount_in / price (buy), USD = amount_in x price (sell)."""
    if action == OrderAction.BUY:
        return exact(lambda: amount_in / price)
    return exact(lambda: amount_in * price)


# Shared properties
class OrderBase(UTCModel):
    token: str = Field(min_length=1, max_length=32, index=True)
    action: OrderAction = Field(sa_type=string_enum(OrderAction))
    order_type: OrderType = Field(default=OrderType.MARKET, sa_type=string_enum(OrderType))
    amount_in: Decimal = MoneyField(gt=0)
    price: Decimal = MoneyField(gt=0, description="expected (quoted or limit) USD per token")
    slippage_bps: int = Field(default=50, ge=0, le=10_000, description="tolerance in basis points")
    extra_data: dict[str, Any] = Field(default_factory=dict, sa_type=mutable_json_dict(), nullable=False)


# The table
class Order(OrderBase, TimestampMixin, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        sa.CheckConstraint("CAST(amount_in AS NUMERIC) > 0", name="amount_in_positive"),
        sa.CheckConstraint("amount_out IS NULL OR CAST(amount_out AS NUMERIC) > 0", name="amount_out_positive"),
        sa.CheckConstraint("CAST(price AS NUMERIC) > 0", name="price_positive"),
        sa.CheckConstraint("slippage_bps >= 0", name="slippage_bps_non_negative"),
        sa.CheckConstraint(
            "(status = 'executed') = (executed_at IS NOT NULL AND amount_out IS NOT NULL)",
            name="executed_iff_filled",
        ),
        sa.Index("ix_orders_status_created_at", "status", "created_at"),
        sa.Index("ix_orders_user_id_token_executed_at", "user_id", "token", "executed_at"),
        sa.Index("ix_orders_extra_data", "extra_data", postgresql_using="gin",
                 postgresql_ops={"extra_data": "jsonb_path_ops"}).ddl_if(dialect="postgresql"),
    )

    order_id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    user_id: uuid.UUID = Field(foreign_key="users.user_id", ondelete="CASCADE", index=True)
    position_id: uuid.UUID | None = Field(default=None, foreign_key="positions.position_id",
                                          ondelete="SET NULL", nullable=True, index=True)
    amount_out: Decimal | None = MoneyField(default=None, gt=0, nullable=True)
    slippage_actual: Decimal | None = Field(
        default=None, max_digits=SLIPPAGE_PRECISION, decimal_places=SLIPPAGE_SCALE,
        sa_type=Money(SLIPPAGE_PRECISION, SLIPPAGE_SCALE, domain=True), nullable=True,
    )
    status: OrderStatus = Field(default=OrderStatus.PENDING, sa_type=string_enum(OrderStatus), index=True)
    transaction_signature: str | None = Field(default=None, max_length=128, unique=True, nullable=True)
    executed_at: datetime | None = UTCField(default=None, nullable=True, index=True)
    failed_reason: str | None = Field(default=None, max_length=500)

    user: "User" = Relationship(back_populates="orders", sa_relationship_kwargs={"lazy": "raise"})
    position: "Position" = Relationship(back_populates="orders", sa_relationship_kwargs={"lazy": "raise"})

    @property
    def is_executed(self) -> bool:
        return self.status == OrderStatus.EXECUTED

    @property
    def is_pending(self) -> bool:
        return self.status == OrderStatus.PENDING

    @property
    def is_failed(self) -> bool:
        return self.status == OrderStatus.FAILED

    @property
    def is_cancelled(self) -> bool:
        return self.status == OrderStatus.CANCELLED

    @property
    def expected_out(self) -> Decimal:
        """The amount the quote promised (tokens for a buy, USD for a sell), unrounded."""
        return expected_out(self.action, self.amount_in, self.price)

    @property
    def total_value(self) -> Decimal:
        """USD notional: buy amount_in; sell amount_out once executed, else amount_in x price."""
        if self.action == OrderAction.BUY:
            return self.amount_in
        if self.is_executed and self.amount_out is not None:
            return self.amount_out
        return quantize_money(exact(lambda: self.amount_in * self.price))

    @property
    def executed_price(self) -> Decimal | None:
        """USD per token actually obtained: buy amount_in/amount_out, sell amount_out/amount_in."""
        if not self.is_executed or self.amount_out is None:
            return None
        if self.action == OrderAction.BUY:
            return quantize_money(exact(lambda: self.amount_in / self.amount_out))
        return quantize_money(exact(lambda: self.amount_out / self.amount_in))

    calculate_slippage = staticmethod(calculate_slippage)

    def execute(self, tx_signature: str, amount_out: Decimal, *, at: datetime | None = None) -> None:
        """pending -> executed: record the fill and its realized slippage."""
        self._require_pending(OrderStatus.EXECUTED)
        if not tx_signature:
            raise ValueError("tx_signature is required to execute an order")
        filled = to_money(amount_out)
        if filled <= 0:
            raise ValueError(f"amount_out must be > 0, got {filled}")
        self.transaction_signature = tx_signature
        self.amount_out = filled
        self.slippage_actual = calculate_slippage(self.expected_out, filled)
        self.executed_at = at or utcnow()
        self.status = OrderStatus.EXECUTED

    def fail(self, reason: str) -> None:
        """pending -> failed, with the reason."""
        self._require_pending(OrderStatus.FAILED)
        self.failed_reason = reason
        self.status = OrderStatus.FAILED

    def cancel(self) -> None:
        """pending -> cancelled."""
        self._require_pending(OrderStatus.CANCELLED)
        self.status = OrderStatus.CANCELLED

    def _require_pending(self, target: OrderStatus) -> None:
        if self.status != OrderStatus.PENDING:
            raise InvalidTransition(
                f"order {self.order_id} is {self.status.value}: only a pending order can become {target.value}"
            )

    def __repr__(self) -> str:
        return (f"Order(order_id={self.order_id!s}, token={self.token!r}, action={self.action.value!r}, "
                f"status={self.status.value!r})")


# Properties to receive on creation
class OrderCreate(OrderBase):
    user_id: uuid.UUID
    position_id: uuid.UUID | None = None


class OrderRead(OrderBase):
    order_id: uuid.UUID
    user_id: uuid.UUID
    position_id: uuid.UUID | None
    amount_out: Decimal | None
    slippage_actual: Decimal | None
    status: OrderStatus
    transaction_signature: str | None
    executed_at: datetime | None
    failed_reason: str | None
    created_at: datetime
    updated_at: datetime


def build_order(order_create: OrderCreate) -> Order:
    """A validated, pending Order row."""
    return Order.model_validate(order_create)
