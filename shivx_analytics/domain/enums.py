"""The enumerations of the domain, stored as their string values (plain StrEnums: metrics, the demo
and reports use them without importing the models or SQLModel)."""

from enum import StrEnum


class PositionStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    LIQUIDATED = "liquidated"


class OrderAction(StrEnum):
    BUY = "buy"
    SELL = "sell"


class OrderType(StrEnum):
    MARKET = "market"
    LIMIT = "limit"
    STOP_LOSS = "stop_loss"
    TAKE_PROFIT = "take_profit"


class OrderStatus(StrEnum):
    PENDING = "pending"
    EXECUTED = "executed"
    FAILED = "failed"
    CANCELLED = "cancelled"


class InvalidTransition(ValueError):
    """A state change that the entity's lifecycle does not allow."""
