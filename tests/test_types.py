"""Column types: exact money, aware UTC time and tracked JSON, on both backends."""

import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy.dialects import postgresql
from sqlmodel import Session, select

from shivx_analytics.models import (
    Position,
    PositionCreate,
    User,
    UserCreate,
    build_position,
)
from shivx_analytics.types import Money, UTCDateTime, money_fits, to_money

EDGES = [Decimal("999999999999.99999999"), Decimal("0.00000001"), Decimal("123456789012.12345678"),
         Decimal("1"), Decimal("0.1")]


def _user(session: Session) -> User:
    user = User.model_validate(
        UserCreate(username=f"u{uuid.uuid4().hex[:8]}", email=f"{uuid.uuid4().hex[:8]}@example.com", password="x" * 8),
        update={"password_hash": "pbkdf2_sha256$1$00$00"},
    )
    session.add(user)
    session.commit()
    return user


@pytest.mark.parametrize("value", EDGES, ids=str)
def test_money_round_trips_exactly_through_the_orm(backend, engine, value):
    with Session(engine) as session:
        user = _user(session)
        position = build_position(PositionCreate(user_id=user.user_id, token="SOL", size=value,
                                                 entry_price=value, current_price=value, stop_loss=value))
        session.add(position)
        session.commit()
        position_id = position.position_id
    with Session(engine) as session:
        loaded = session.get(Position, position_id)
        assert (loaded.size, loaded.entry_price, loaded.current_price, loaded.stop_loss) == (value,) * 4
        assert str(loaded.size) == str(value.quantize(Decimal("0.00000001"))) or loaded.size == value


@pytest.mark.parametrize("backend", ["postgresql"])
def test_money_sum_in_postgresql_is_exact(engine, backend):
    with Session(engine) as session:
        user = _user(session)
        for value in EDGES:
            session.add(build_position(PositionCreate(user_id=user.user_id, token="SOL", size=value,
                                                      entry_price=1, current_price=1)))
        session.commit()
        total = session.exec(select(sa.func.sum(Position.size))).one()
    assert total == sum(EDGES, Decimal(0))


@pytest.mark.parametrize("field,value", [("size", "0.000000001"), ("size", "1000000000000"),
                                         ("entry_price", "1234567890123.5"), ("current_price", "1.123456789")])
def test_money_that_does_not_fit_is_refused_with_the_field_named(field, value):
    data = {"user_id": uuid.uuid4(), "token": "SOL", "size": "1", "entry_price": "1", "current_price": "1"}
    data[field] = value
    with pytest.raises(ValidationError) as error:
        PositionCreate.model_validate(data)
    assert field in str(error.value)


def test_money_type_refuses_what_does_not_fit_instead_of_rounding(backend, engine):
    """Even past the validators (raw Core insert), the column type refuses a 9th decimal."""
    with Session(engine) as session:
        user = _user(session)
        with pytest.raises(sa.exc.StatementError, match="does not fit NUMERIC"):
            session.execute(sa.insert(Position.__table__).values(
                position_id=uuid.uuid4(), user_id=user.user_id, token="SOL", size=Decimal("1.000000001"),
                entry_price=1, current_price=1, status="open", opened_at=datetime.now(timezone.utc),
                extra_data={}, created_at=datetime.now(timezone.utc), updated_at=datetime.now(timezone.utc)))


def test_to_money_refuses_floats_and_non_numbers():
    with pytest.raises(ValueError, match="float"):
        to_money(0.1)
    with pytest.raises(ValueError, match="not a decimal"):
        to_money("abc")
    with pytest.raises(ValueError, match="finite"):
        to_money(Decimal("NaN"))
    assert to_money("1.50") == Decimal("1.5")
    assert money_fits(Decimal("0E-20"))


def test_aware_timestamp_comes_back_as_the_same_instant_in_utc(backend, engine):
    plus_two = datetime(2025, 10, 28, 14, 30, 15, 123456, tzinfo=timezone(timedelta(hours=2)))
    with Session(engine) as session:
        user = _user(session)
        position = build_position(PositionCreate(user_id=user.user_id, token="SOL", size=1, entry_price=1,
                                                 current_price=1, opened_at=plus_two))
        session.add(position)
        session.commit()
        position_id = position.position_id
    with Session(engine) as session:
        opened = session.get(Position, position_id).opened_at
    assert opened == plus_two
    assert opened.tzinfo == timezone.utc
    assert opened.hour == 12 and opened.microsecond == 123456


def test_naive_timestamp_is_refused_by_validation_and_by_the_column():
    with pytest.raises(ValidationError, match="opened_at"):
        PositionCreate(user_id=uuid.uuid4(), token="SOL", size=1, entry_price=1, current_price=1,
                       opened_at=datetime(2025, 1, 1))
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2025, 1, 1), sa.create_engine("sqlite://").dialect)


def test_in_place_json_changes_persist(backend, engine):
    with Session(engine) as session:
        user = _user(session)
        user_id = user.user_id
    with Session(engine) as session:
        user = session.get(User, user_id)
        user.permissions["trade"] = True
        user.roles.append("admin")
        session.commit()
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.permissions == {"trade": True}
        assert user.roles == ["admin"]
        assert user.has_admin_role and user.has_permission("anything")


def test_money_columns_are_numeric_domains_on_postgresql_and_text_on_sqlite(backend, engine):
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("positions")}
    if backend == "postgresql":  # revision 0007: a domain over numeric that refuses what NUMERIC(20,8) rounds
        assert isinstance(columns["size"], postgresql.DOMAIN) and columns["size"].name == "shivx_money_20_8"
        assert isinstance(columns["size"].data_type, sa.Numeric) and columns["size"].data_type.precision is None
    else:
        assert isinstance(columns["size"], sa.String)
    assert repr(Money()) == "Money(precision=20, scale=8)"
    assert repr(Money(domain=True)) == "Money(precision=20, scale=8, domain=True)"
