"""Users: authentication, authorisation and lockout."""


import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from pydantic import EmailStr, field_validator
from sqlmodel import Field, Relationship

from shivx_analytics.models.base import SoftDeleteMixin, TimestampMixin, UTCField, UTCModel, new_uuid, utcnow
from shivx_analytics.security import MAX_PASSWORD_LENGTH, hash_password
from shivx_analytics.types import mutable_json_dict, mutable_json_list

if TYPE_CHECKING:
    from shivx_analytics.models.api_key import APIKey
    from shivx_analytics.models.order import Order
    from shivx_analytics.models.position import Position

USERNAME_PATTERN = r"^[A-Za-z0-9_.-]{3,32}$"
# Settings' defaults (SHIVX_LOCKOUT_THRESHOLD, SHIVX_LOCKOUT_MINUTES): the lockout functions below
# read the settings when not given a threshold or lockout period; these stay for callers' reference.
DEFAULT_LOCKOUT_THRESHOLD = 5
DEFAULT_LOCKOUT_PERIOD = timedelta(minutes=15)


def lockout_policy(threshold: int | None = None, lockout: timedelta | None = None) -> tuple[int, timedelta]:
    """(threshold, lockout period): the ones given, else the settings' (SHIVX_LOCKOUT_THRESHOLD,
    SHIVX_LOCKOUT_MINUTES; 5 failures, 15 minutes by default)."""
    from shivx_analytics.config import get_settings  # read at each call: the environment may change

    if threshold is None or lockout is None:
        settings = get_settings()
        threshold = settings.lockout_threshold if threshold is None else threshold
        lockout = settings.lockout_period if lockout is None else lockout
    return threshold, lockout


# Shared properties, validated on the way in
class UserBase(UTCModel):
    # sqlmodel passes `regex=` to pydantic v2, which ignores it: the pattern goes through schema_extra
    username: str = Field(min_length=3, max_length=32, unique=True, index=True,
                          schema_extra={"pattern": USERNAME_PATTERN})
    email: EmailStr = Field(max_length=320, unique=True, index=True)
    permissions: dict[str, Any] = Field(default_factory=dict, sa_type=mutable_json_dict(), nullable=False)
    roles: list[str] = Field(default_factory=list, sa_type=mutable_json_list(), nullable=False)

    @field_validator("email", mode="after")
    @classmethod
    def _lower_case_email(cls, value: str) -> str:
        return value.lower()


# The table
class User(UserBase, TimestampMixin, SoftDeleteMixin, table=True):
    __tablename__ = "users"
    __table_args__ = (
        sa.CheckConstraint("failed_login_attempts >= 0", name="failed_login_attempts_non_negative"),
        sa.CheckConstraint("length(username) BETWEEN 3 AND 32", name="username_length"),
    )

    user_id: uuid.UUID = Field(default_factory=new_uuid, primary_key=True)
    password_hash: str = Field(max_length=255, repr=False)
    failed_login_attempts: int = Field(default=0, ge=0, sa_column_kwargs={"server_default": "0"})
    locked_until: datetime | None = UTCField(default=None, nullable=True)
    last_login: datetime | None = UTCField(default=None, nullable=True)

    api_keys: list["APIKey"] = Relationship(
        back_populates="user", passive_deletes=True,
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise"},
    )
    positions: list["Position"] = Relationship(
        back_populates="user", passive_deletes=True,
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise"},
    )
    orders: list["Order"] = Relationship(
        back_populates="user", passive_deletes=True,
        sa_relationship_kwargs={"cascade": "all, delete-orphan", "lazy": "raise"},
    )

    @property
    def is_locked(self) -> bool:
        """True while locked_until lies in the future."""
        return self.locked_until is not None and self.locked_until > utcnow()

    @property
    def has_admin_role(self) -> bool:
        return "admin" in (self.roles or [])

    def has_permission(self, permission: str) -> bool:
        """Admins have every permission; others only those set true in ``permissions``."""
        return self.has_admin_role or bool((self.permissions or {}).get(permission) is True)

    def reset_failed_login_attempts(self) -> None:
        """Forget failures and lift a lockout (in memory; see record_login_success for SQL)."""
        self.failed_login_attempts = 0
        self.locked_until = None

    def increment_failed_login_attempts(self, *, threshold: int | None = None,
                                        lockout: timedelta | None = None) -> None:
        """Count one failure in memory and lock at ``threshold`` (see record_login_failure for SQL);
        ``threshold`` and ``lockout`` default to the settings' (lockout_policy)."""
        threshold, lockout = lockout_policy(threshold, lockout)
        self.failed_login_attempts = (self.failed_login_attempts or 0) + 1
        if self.failed_login_attempts >= threshold:
            self.locked_until = utcnow() + lockout

    def __repr__(self) -> str:
        return f"User(user_id={self.user_id!s}, username={self.username!r}, is_active={self.is_active})"


# Properties to receive on creation
class UserCreate(UserBase):
    password: str = Field(min_length=8, max_length=MAX_PASSWORD_LENGTH, repr=False)
    is_active: bool = True


# Properties to receive on update (all optional)
class UserUpdate(UTCModel):
    email: EmailStr | None = Field(default=None, max_length=320)
    password: str | None = Field(default=None, min_length=8, max_length=MAX_PASSWORD_LENGTH, repr=False)
    permissions: dict[str, Any] | None = None
    roles: list[str] | None = None
    is_active: bool | None = None

    @field_validator("email", mode="after")
    @classmethod
    def _lower_case_email(cls, value: str | None) -> str | None:
        return value.lower() if value else value


# Properties to return: never the password hash
class UserRead(UserBase):
    user_id: uuid.UUID
    is_active: bool
    failed_login_attempts: int
    locked_until: datetime | None
    last_login: datetime | None
    created_at: datetime
    updated_at: datetime


def build_user(user_create: UserCreate) -> User:
    """A validated User row from a UserCreate (the password is hashed, never stored)."""
    return User.model_validate(user_create, update={"password_hash": hash_password(user_create.password)})


def apply_user_update(user: User, user_update: UserUpdate) -> User:
    """Apply the fields set in ``user_update`` to ``user`` (a new password is hashed)."""
    data = user_update.model_dump(exclude_unset=True)
    password = data.pop("password", None)
    if password is not None:
        user.password_hash = hash_password(password)
    user.sqlmodel_update(data)
    return user


# Login bookkeeping in one SQL statement each: concurrent failures are never lost.

def login_failure_statement(user_id: uuid.UUID, *, threshold: int | None = None,
                            lockout: timedelta | None = None, now: datetime | None = None) -> sa.Update:
    """UPDATE that adds one failure atomically and locks the account when it reaches ``threshold``
    (for ``lockout``); both default to the settings' (lockout_policy)."""
    threshold, lockout = lockout_policy(threshold, lockout)
    now = now or utcnow()
    attempts = User.__table__.c.failed_login_attempts
    return (
        sa.update(User.__table__)
        .where(User.__table__.c.user_id == user_id)
        .values(
            failed_login_attempts=attempts + 1,
            locked_until=sa.case(
                (attempts + 1 >= threshold, sa.literal(now + lockout, User.__table__.c.locked_until.type)),
                else_=User.__table__.c.locked_until,
            ),
            updated_at=sa.literal(now, User.__table__.c.updated_at.type),
        )
        .returning(User.__table__.c.failed_login_attempts, User.__table__.c.locked_until)
    )


def login_success_statement(user_id: uuid.UUID, *, now: datetime | None = None) -> sa.Update:
    """UPDATE that resets failures, lifts a lockout and stamps last_login."""
    now = now or utcnow()
    stamp = sa.literal(now, User.__table__.c.last_login.type)
    return (
        sa.update(User.__table__)
        .where(User.__table__.c.user_id == user_id)
        .values(failed_login_attempts=0, locked_until=None, last_login=stamp, updated_at=stamp)
        .returning(User.__table__.c.failed_login_attempts, User.__table__.c.locked_until)
    )


def record_login_failure(session: Any, user_id: uuid.UUID, *, threshold: int | None = None,
                         lockout: timedelta | None = None) -> tuple[int, datetime | None]:
    """Count a failed login for ``user_id`` (Session or Connection); returns (attempts, locked_until).
    ``threshold`` and ``lockout`` default to the settings' (SHIVX_LOCKOUT_THRESHOLD, SHIVX_LOCKOUT_MINUTES)."""
    row = session.execute(login_failure_statement(user_id, threshold=threshold, lockout=lockout)).one_or_none()
    return _login_result(row, user_id)


def record_login_success(session: Any, user_id: uuid.UUID) -> tuple[int, datetime | None]:
    """Record a successful login for ``user_id`` (Session or Connection)."""
    return _login_result(session.execute(login_success_statement(user_id)).one_or_none(), user_id)


async def arecord_login_failure(session: Any, user_id: uuid.UUID, *, threshold: int | None = None,
                                lockout: timedelta | None = None) -> tuple[int, datetime | None]:
    """Async record_login_failure (AsyncSession or AsyncConnection); the settings' lockout by default."""
    result = await session.execute(login_failure_statement(user_id, threshold=threshold, lockout=lockout))
    return _login_result(result.one_or_none(), user_id)


async def arecord_login_success(session: Any, user_id: uuid.UUID) -> tuple[int, datetime | None]:
    """Async record_login_success (AsyncSession or AsyncConnection)."""
    return _login_result((await session.execute(login_success_statement(user_id))).one_or_none(), user_id)


def _login_result(row: Any, user_id: uuid.UUID) -> tuple[int, datetime | None]:
    if row is None:
        raise LookupError(f"no user with user_id {user_id}")
    return int(row[0]), row[1]
