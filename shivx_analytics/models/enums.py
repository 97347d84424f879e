"""The models' enumerations: defined once in the domain kernel (shivx_analytics/domain/enums.py)."""

from shivx_analytics.domain.enums import InvalidTransition, OrderAction, OrderStatus, OrderType, PositionStatus

__all__ = ["InvalidTransition", "OrderAction", "OrderStatus", "OrderType", "PositionStatus"]
