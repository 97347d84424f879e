"""Validation: bad input is refused by the Create models, with the field named, and bad rows
that bypass them are refused by the database's named CHECK constraints on both backends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from shivx_analytics.models import (
    APIKey,
    Order,
    OrderCreate,
    Position,
    PositionCreate,
    PositionStatus,
    User,
    UserCreate,
    build_position,
)

USER_ID = uuid.uuid4()
MONEY_FIELDS = ["size", "entry_price", "current_price", "stop_loss", "take_profit"]
OPENED = datetime(2025, 10, 28, 12, 0, tzinfo=timezone.utc)


def position_create(**fields) -> PositionCreate:
    values = {"user_id": USER_ID, "token": "SOL", "size": Decimal("10.5"), "entry_price": Decimal("100"),
              "current_price": Decimal("100")} | fields
    return PositionCreate(**values)


def user_create(**fields) -> UserCreate:
    return UserCreate(**({"username": "alice", "email": "alice@example.com", "password": "correct horse"} | fields))


def refused_fields(excinfo) -> set[str]:
    return {".".join(str(part) for part in error["loc"]) for error in excinfo.value.errors()}


# Users

@pytest.mark.parametrize("username", ["ab", "a" * 33], ids=["2 chars", "33 chars"])
def test_username_outside_3_to_32_characters_is_refused(username):
    with pytest.raises(ValidationError) as excinfo:
        user_create(username=username)
    assert refused_fields(excinfo) == {"username"}


@pytest.mark.parametrize("username", ["abc", "a" * 32, "A.b-c_9"], ids=["3 chars", "32 chars", "all symbols"])
def test_username_of_3_to_32_allowed_characters_is_accepted(username):
    assert user_create(username=username).username == username


@pytest.mark.parametrize("username", ["al ice", "alice$", "émile", "a/b", "alice\n", "<script>"])
def test_username_with_a_character_outside_the_allowed_set_is_refused(username):
    with pytest.raises(ValidationError) as excinfo:
        user_create(username=username)
    assert refused_fields(excinfo) == {"username"}


@pytest.mark.parametrize("email", ["not-an-email", "alice@", "@example.com", "alice@@example.com",
                                   "alice example@x.com"])
def test_invalid_email_is_refused(email):
    with pytest.raises(ValidationError) as excinfo:
        user_create(email=email)
    assert refused_fields(excinfo) == {"email"}


def test_email_is_stored_lower_case():
    assert user_create(email="Alice.Smith@Example.COM").email == "alice.smith@example.com"


def test_short_password_is_refused_and_never_echoed():
    with pytest.raises(ValidationError) as excinfo:
        user_create(password="s3cr3t!")
    assert refused_fields(excinfo) == {"password"}
    assert "s3cr3t!" not in repr(user_create())


# Positions: money

@pytest.mark.parametrize("field", MONEY_FIELDS)
def test_money_with_nine_decimals_is_refused_naming_the_field(field):
    with pytest.raises(ValidationError) as excinfo:
        position_create(**{field: Decimal("1.123456789")})
    assert refused_fields(excinfo) == {field}
    assert field in str(excinfo.value)


@pytest.mark.parametrize("field", MONEY_FIELDS)
def test_money_with_thirteen_integer_digits_is_refused_naming_the_field(field):
    with pytest.raises(ValidationError) as excinfo:
        position_create(**{field: Decimal("1234567890123")})
    assert refused_fields(excinfo) == {field}
    assert field in str(excinfo.value)


@pytest.mark.parametrize("field", MONEY_FIELDS)
def test_money_with_twelve_integer_digits_and_eight_decimals_is_accepted_unchanged(field):
    assert getattr(position_create(**{field: Decimal("999999999999.99999999")}), field) == Decimal(
        "999999999999.99999999")


def test_money_trailing_zeros_beyond_eight_places_are_not_extra_digits():
    assert position_create(size=Decimal("1.1234567800")).size == Decimal("1.12345678")


@pytest.mark.parametrize("field", ["size", "entry_price", "current_price", "stop_loss", "take_profit"])
@pytest.mark.parametrize("value", [Decimal("0"), Decimal("-1")], ids=["zero", "negative"])
def test_non_positive_size_or_price_is_refused(field, value):
    with pytest.raises(ValidationError) as excinfo:
        position_create(**{field: value})
    assert refused_fields(excinfo) == {field}


@pytest.mark.parametrize("field", ["amount_in", "price"])
def test_order_money_with_nine_decimals_is_refused_naming_the_field(field):
    values = {"user_id": USER_ID, "token": "SOL", "action": "buy", "amount_in": Decimal("1"), "price": Decimal("1")}
    with pytest.raises(ValidationError) as excinfo:
        OrderCreate(**(values | {field: Decimal("0.000000001")}))
    assert refused_fields(excinfo) == {field}


# Enums

def test_invalid_position_status_is_refused():
    with pytest.raises(ValidationError) as excinfo:
        position_create(status="pending")
    assert refused_fields(excinfo) == {"status"}


@pytest.mark.parametrize("field, value", [("action", "hold"), ("order_type", "iceberg")])
def test_invalid_order_enum_value_is_refused(field, value):
    values = {"user_id": USER_ID, "token": "SOL", "action": "buy", "amount_in": Decimal("1"), "price": Decimal("1")}
    with pytest.raises(ValidationError) as excinfo:
        OrderCreate(**(values | {field: value}))
    assert refused_fields(excinfo) == {field}


# Datetimes

def test_naive_opened_at_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as excinfo:
        position_create(opened_at=datetime(2025, 10, 28, 12, 0))
    assert refused_fields(excinfo) == {"opened_at"}
    assert "timezone-aware" in str(excinfo.value)


def test_naive_closed_at_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as excinfo:
        position_create(status="closed", opened_at=OPENED, closed_at=datetime(2025, 10, 29, 12, 0))
    assert refused_fields(excinfo) == {"closed_at"}


def test_aware_datetime_in_another_zone_is_converted_to_utc():
    paris = timezone(timedelta(hours=1))
    opened = position_create(opened_at=datetime(2025, 10, 28, 13, 0, tzinfo=paris)).opened_at
    assert opened == OPENED and opened.utcoffset() == timedelta(0)


def test_closed_status_without_closed_at_is_refused():
    with pytest.raises(ValidationError, match="closed_at must be set"):
        position_create(status="closed")


def test_closed_at_before_opened_at_is_refused():
    with pytest.raises(ValidationError, match="before opened_at"):
        position_create(status="closed", opened_at=OPENED, closed_at=OPENED - timedelta(seconds=1))


def test_closed_at_in_the_past_without_opened_at_is_refused():
    # opened_at would default to now, after closed_at: refused here rather than by the database
    with pytest.raises(ValidationError, match="before opened_at"):
        position_create(status="closed", closed_at=datetime.now(timezone.utc) - timedelta(days=1))


def test_build_position_validates_what_the_table_constructor_does_not():
    # Table models skip validation in __init__: rows are built through PositionCreate -> build_position.
    assert Position(user_id=USER_ID, token="SOL", size=Decimal("-1"), entry_price=1, current_price=1).size == -1
    position = build_position(position_create(opened_at=OPENED))
    assert position.status is PositionStatus.OPEN and position.opened_at == OPENED and position.closed_at is None


# The database's CHECK constraints, with rows inserted as raw Core SQL (no model validation)

def user_row(**overrides) -> dict:
    return {"user_id": uuid.uuid4(), "username": "alice", "email": "alice@example.com",
            "password_hash": "not-a-real-hash", "permissions": {}, "roles": []} | overrides


def position_row(user_id, **overrides) -> dict:
    return {"position_id": uuid.uuid4(), "user_id": user_id, "token": "SOL", "size": Decimal("1"),
            "entry_price": Decimal("100"), "current_price": Decimal("100"), "status": "open",
            "opened_at": OPENED, "extra_data": {}} | overrides


def order_row(user_id, **overrides) -> dict:
    return {"order_id": uuid.uuid4(), "user_id": user_id, "token": "SOL", "action": "buy", "order_type": "market",
            "amount_in": Decimal("100"), "price": Decimal("10"), "slippage_bps": 50, "status": "pending",
            "extra_data": {}} | overrides


def api_key_row(user_id, **overrides) -> dict:
    return {"key_id": uuid.uuid4(), "user_id": user_id, "name": "bot", "permissions": {}, "rate_limit": 60,
            "key_hash": "0" * 64, "key_prefix": "shx_00000000"} | overrides


# case -> (constraint named in the error, table model, row builder taking the user id)
BAD_ROWS = {
    "position size zero": (
        "ck_positions_size_positive", Position, lambda uid: position_row(uid, size=Decimal("0"))),
    "position size negative": (
        "ck_positions_size_positive", Position, lambda uid: position_row(uid, size=Decimal("-1"))),
    "position entry_price zero": (
        "ck_positions_entry_price_positive", Position, lambda uid: position_row(uid, entry_price=Decimal("0"))),
    "order slippage_bps negative": (
        "ck_orders_slippage_bps_non_negative", Order, lambda uid: order_row(uid, slippage_bps=-1)),
    "api key rate_limit zero": (
        "ck_api_keys_rate_limit_positive", APIKey, lambda uid: api_key_row(uid, rate_limit=0)),
    "user failed_login_attempts negative": (
        "ck_users_failed_login_attempts_non_negative", User,
        lambda uid: user_row(username="bob", email="bob@example.com", failed_login_attempts=-1)),
    "position closed_at before opened_at": (
        "ck_positions_closed_after_opened", Position,
        lambda uid: position_row(uid, status="closed", closed_at=OPENED - timedelta(microseconds=1))),
    "position closed without closed_at": (
        "ck_positions_closed_at_iff_not_open", Position, lambda uid: position_row(uid, status="closed")),
    "position open with closed_at": (
        "ck_positions_closed_at_iff_not_open", Position, lambda uid: position_row(uid, closed_at=OPENED)),
    "order executed without fill": (
        "ck_orders_executed_iff_filled", Order, lambda uid: order_row(uid, status="executed")),
}


@pytest.fixture
def core_user_id(engine) -> uuid.UUID:
    row = user_row()
    with engine.begin() as connection:
        connection.execute(sa.insert(User.__table__).values(row))
    return row["user_id"]


@pytest.mark.parametrize("model, good_row", [
    (Position, lambda uid: position_row(uid)),
    (Position, lambda uid: position_row(uid, status="closed", closed_at=OPENED)),
    (Order, lambda uid: order_row(uid, slippage_bps=0)),
    (APIKey, lambda uid: api_key_row(uid, rate_limit=1)),
], ids=["open position", "closed position", "order with zero tolerance", "api key rate_limit 1"])
def test_database_accepts_a_valid_row_inserted_as_core_sql(backend, engine, core_user_id, model, good_row):
    with engine.begin() as connection:
        connection.execute(sa.insert(model.__table__).values(good_row(core_user_id)))
    with engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(model.__table__)).scalar_one() == 1


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_database_check_constraint_rejects_a_bad_row_inserted_as_core_sql(backend, engine, core_user_id, case):
    constraint, model, bad_row = BAD_ROWS[case]
    with pytest.raises(sa.exc.IntegrityError, match=constraint), engine.begin() as connection:
        connection.execute(sa.insert(model.__table__).values(bad_row(core_user_id)))
