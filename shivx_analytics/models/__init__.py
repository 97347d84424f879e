"""The ShivX schema: SQLModel tables that double as validation models."""

from shivx_analytics.models.api_key import APIKey, APIKeyCreate, APIKeyRead, APIKeyUpdate, build_api_key
from shivx_analytics.models.audit_chain import append_audit_entries, security_audit_chain  # + the ORM's chain hook
from shivx_analytics.models.audit_log import EVENT_TYPES, SecurityAuditLog, SecurityAuditLogCreate, SecurityAuditLogRead
from shivx_analytics.models.base import NAMING_CONVENTION, metadata, utcnow
from shivx_analytics.models.enums import InvalidTransition, OrderAction, OrderStatus, OrderType, PositionStatus
from shivx_analytics.models.order import (
    Order,
    OrderCreate,
    OrderRead,
    build_order,
    calculate_slippage,
    expected_out,
)
from shivx_analytics.models.position import (
    Position,
    PositionCreate,
    PositionRead,
    PositionUpdate,
    build_position,
    quantize_money,
)
from shivx_analytics.models.user import (
    User,
    UserCreate,
    UserRead,
    UserUpdate,
    apply_user_update,
    arecord_login_failure,
    arecord_login_success,
    build_user,
    record_login_failure,
    record_login_success,
)

__all__ = [
    "NAMING_CONVENTION", "metadata", "utcnow",
    "InvalidTransition", "OrderAction", "OrderStatus", "OrderType", "PositionStatus",
    "User", "UserCreate", "UserRead", "UserUpdate", "apply_user_update", "build_user",
    "record_login_failure", "record_login_success", "arecord_login_failure", "arecord_login_success",
    "APIKey", "APIKeyCreate", "APIKeyRead", "APIKeyUpdate", "build_api_key",
    "Position", "PositionCreate", "PositionRead", "PositionUpdate", "build_position", "quantize_money",
    "Order", "OrderCreate", "OrderRead", "build_order", "calculate_slippage", "expected_out",
    "EVENT_TYPES", "SecurityAuditLog", "SecurityAuditLogCreate", "SecurityAuditLogRead",
    "append_audit_entries", "security_audit_chain",
]
