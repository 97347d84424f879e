"""The seed report's 14 verification items ("TEST RESULTS"), each a real test on both backends.

Every test runs on a freshly migrated database (the `engine` fixture), writes through the ORM,
and reads back in a new Session so that what is checked is what the database stored.
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import selectinload
from sqlmodel import Session, select

import shivx_analytics.models.api_key as api_key_module
import shivx_analytics.models.user as user_module
from shivx_analytics.db import head_revision
from shivx_analytics.models import (
    APIKey,
    APIKeyCreate,
    InvalidTransition,
    Order,
    OrderAction,
    OrderCreate,
    OrderStatus,
    Position,
    PositionCreate,
    PositionStatus,
    SecurityAuditLog,
    User,
    UserCreate,
    build_api_key,
    build_order,
    build_position,
    build_user,
    record_login_failure,
    record_login_success,
)
from shivx_analytics.security import hash_password, verify_password

TABLES = {"users", "api_keys", "positions", "orders", "security_audit_logs"}


@pytest.fixture(autouse=True)
def on_both_backends(backend):
    """Every test here runs once per backend (the conftest `backend` fixture)."""
    return backend


@pytest.fixture(autouse=True)
def fast_password_hashing(monkeypatch):
    """Users here are built with 1,000 PBKDF2 iterations: these tests are not about hashing."""
    monkeypatch.setattr(user_module, "hash_password", functools.partial(hash_password, iterations=1_000))


def add_user(engine, username="alice", **fields) -> uuid.UUID:
    fields.setdefault("email", f"{username}@example.com")
    fields.setdefault("password", "correct horse battery")
    with Session(engine) as session:
        user = build_user(UserCreate(username=username, **fields))
        session.add(user)
        session.commit()
        return user.user_id


def add_position(engine, user_id, **fields) -> uuid.UUID:
    values = {"token": "SOL", "size": Decimal("10.5"), "entry_price": Decimal("100"),
              "current_price": Decimal("100")} | fields
    with Session(engine) as session:
        position = build_position(PositionCreate(user_id=user_id, **values))
        session.add(position)
        session.commit()
        return position.position_id


def add_order(engine, user_id, *, execute_with=None, **fields) -> uuid.UUID:
    values = {"token": "SOL", "action": OrderAction.BUY, "amount_in": Decimal("1000"),
              "price": Decimal("100")} | fields
    with Session(engine) as session:
        order = build_order(OrderCreate(user_id=user_id, **values))
        if execute_with is not None:
            order.execute(f"sig-{uuid.uuid4().hex}", execute_with)
        session.add(order)
        session.commit()
        return order.order_id


def count(engine, table: str, **where) -> int:
    clause = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
    with engine.connect() as connection:
        return connection.execute(sa.text(f"SELECT count(*) FROM {table} WHERE {clause}"), where).scalar_one()


# 1. Database tables creation

def test_migration_creates_all_five_tables_at_head(engine):
    with engine.connect() as connection:
        assert TABLES <= set(sa.inspect(connection).get_table_names())
        version = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    assert version == head_revision()


# 2. User creation and persistence

def test_user_is_persisted_with_hashed_password_and_lower_case_email(engine):
    user_id = add_user(engine, "alice", email="Alice@Example.COM", password="correct horse battery",
                       permissions={"trade": True}, roles=["trader"])
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert (user.username, user.email) == ("alice", "alice@example.com")
        assert (user.permissions, user.roles) == ({"trade": True}, ["trader"])
        assert user.is_active and user.failed_login_attempts == 0 and user.locked_until is None
        assert user.password_hash != "correct horse battery"
        assert verify_password("correct horse battery", user.password_hash)
        assert user.created_at.tzinfo == timezone.utc and user.updated_at.tzinfo == timezone.utc


def test_duplicate_username_is_refused_by_the_database(engine):
    add_user(engine, "alice")
    with pytest.raises(sa.exc.IntegrityError):
        add_user(engine, "alice", email="other@example.com")


# 3. User permission checking

def test_admin_role_has_every_permission(engine):
    user_id = add_user(engine, "root", roles=["admin"], permissions={})
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.has_admin_role
        assert user.has_permission("trade") and user.has_permission("anything.at.all")


def test_has_permission_requires_the_permission_to_be_exactly_true(engine):
    user_id = add_user(engine, "bob", roles=["trader"],
                       permissions={"trade": True, "withdraw": "yes", "read": 1, "admin": False})
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert not user.has_admin_role
        assert user.has_permission("trade")
        assert not any(user.has_permission(p) for p in ("withdraw", "read", "admin", "missing"))


# 4. Failed login tracking and lockout

def test_five_failed_logins_lock_the_account_for_fifteen_minutes(engine):
    user_id = add_user(engine)
    for expected_attempts in range(1, 5):
        with Session(engine) as session:
            assert record_login_failure(session, user_id) == (expected_attempts, None)
            session.commit()
    before = datetime.now(timezone.utc)
    with Session(engine) as session:
        attempts, locked_until = record_login_failure(session, user_id)
        session.commit()
    after = datetime.now(timezone.utc)
    assert attempts == 5
    assert before + timedelta(minutes=15) <= locked_until <= after + timedelta(minutes=15)
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.failed_login_attempts == 5 and user.is_locked
        assert user.locked_until == locked_until


def test_successful_login_resets_failures_and_lifts_the_lockout(engine):
    user_id = add_user(engine)
    for _ in range(5):
        with Session(engine) as session:
            record_login_failure(session, user_id)
            session.commit()
    with Session(engine) as session:
        assert record_login_success(session, user_id) == (0, None)
        session.commit()
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.failed_login_attempts == 0 and user.locked_until is None and not user.is_locked
        assert user.last_login is not None and user.last_login.tzinfo == timezone.utc


def test_in_memory_failure_counting_locks_at_the_threshold_and_persists(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        user = session.get(User, user_id)
        for _ in range(4):
            user.increment_failed_login_attempts()
        assert not user.is_locked
        user.increment_failed_login_attempts()
        session.commit()
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.failed_login_attempts == 5 and user.is_locked
        user.reset_failed_login_attempts()
        session.commit()
    with Session(engine) as session:
        user = session.get(User, user_id)
        assert user.failed_login_attempts == 0 and user.locked_until is None


# 5. API key creation and validation

def test_api_key_plaintext_is_returned_once_and_only_its_sha256_hex_is_stored(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        plaintext, key = build_api_key(APIKeyCreate(user_id=user_id, name="bot"))
        session.add(key)
        session.commit()
        key_id = key.key_id
    with Session(engine) as session:
        stored = session.get(APIKey, key_id)
        assert stored.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
        assert plaintext.startswith(stored.key_prefix) and len(stored.key_prefix) < len(plaintext)
        assert plaintext not in repr(stored) and stored.key_hash not in repr(stored)
        found = session.exec(select(APIKey).where(APIKey.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()))
        assert found.one().key_id == key_id


def test_api_key_without_expiry_is_valid_until_deactivated(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        _, key = build_api_key(APIKeyCreate(user_id=user_id, name="bot"))
        session.add(key)
        session.commit()
        assert key.is_valid and not key.is_expired
        key.soft_delete()
        session.commit()
        key_id = key.key_id
    with Session(engine) as session:
        stored = session.get(APIKey, key_id)
        assert not stored.is_active and not stored.is_valid and not stored.is_expired


def test_api_key_expires_when_expires_at_is_now_or_past(engine, monkeypatch):
    now = datetime(2025, 10, 28, 12, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(api_key_module, "utcnow", lambda: now)
    user_id = add_user(engine)
    expiries = {"past": now - timedelta(seconds=1), "now": now, "future": now + timedelta(microseconds=1)}
    ids = {}
    with Session(engine) as session:
        for label, expires_at in expiries.items():
            _, key = build_api_key(APIKeyCreate(user_id=user_id, name=label, expires_at=expires_at))
            session.add(key)
            ids[label] = key.key_id
        session.commit()
    with Session(engine) as session:
        keys = {label: session.get(APIKey, key_id) for label, key_id in ids.items()}
        assert keys["past"].is_expired and not keys["past"].is_valid
        assert keys["now"].is_expired and not keys["now"].is_valid
        assert not keys["future"].is_expired and keys["future"].is_valid
        assert keys["now"].expires_at == now


# 6. API key rate limiting

def test_api_key_allows_requests_while_current_count_is_below_rate_limit(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        _, key = build_api_key(APIKeyCreate(user_id=user_id, name="bot", rate_limit=3))
        session.add(key)
        session.commit()
        key_id = key.key_id
    with Session(engine) as session:
        key = session.get(APIKey, key_id)
        assert [key.check_rate_limit(n) for n in range(5)] == [True, True, True, False, False]


def test_api_key_usage_is_counted_and_stamped(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        _, key = build_api_key(APIKeyCreate(user_id=user_id, name="bot"))
        session.add(key)
        session.commit()
        key.increment_usage()
        key.increment_usage()
        session.commit()
        key_id = key.key_id
    with Session(engine) as session:
        key = session.get(APIKey, key_id)
        assert key.requests_count == 2
        assert key.last_used_at is not None and key.last_used_at.tzinfo == timezone.utc


# 7. Trading position creation

def test_position_is_persisted_with_exact_decimals_and_utc_times(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, size=Decimal("999999999999.99999999"),
                               entry_price=Decimal("0.00000001"), current_price=Decimal("123.45678901"),
                               stop_loss=Decimal("95"), take_profit=Decimal("110"), strategy="RL Trading (PPO)")
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.size == Decimal("999999999999.99999999")
        assert position.entry_price == Decimal("0.00000001")
        assert position.current_price == Decimal("123.45678901")
        assert (position.stop_loss, position.take_profit) == (Decimal("95"), Decimal("110"))
        assert all(isinstance(v, Decimal) for v in (position.size, position.entry_price, position.current_price))
        assert position.status is PositionStatus.OPEN and position.closed_at is None
        assert position.opened_at.tzinfo == timezone.utc and position.strategy == "RL Trading (PPO)"


# 8. P&L calculations (absolute and percentage)

def test_pnl_of_the_seed_position(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, size=Decimal("10.5"), entry_price=Decimal("100"),
                               current_price=Decimal("110"))
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.entry_value == Decimal("1050.00000000")
        assert position.position_value == Decimal("1155.00000000")
        assert position.pnl == Decimal("105.00000000")
        assert isinstance(position.pnl_pct, float) and position.pnl_pct == pytest.approx(10.0)


def test_pnl_is_computed_exactly_then_rounded_once_half_even(engine):
    # pnl = 0.5 x 0.00000001 = 0.000000005 exactly -> 0.00000000 (half to even), while the
    # rounded values give position_value - entry_value = 0.00000001 - 0.00000000.
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, size=Decimal("0.5"), entry_price=Decimal("0.00000001"),
                               current_price=Decimal("0.00000002"))
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.entry_value == Decimal("0.00000000")
        assert position.position_value == Decimal("0.00000001")
        assert position.pnl == Decimal("0.00000000")
        assert position.pnl != position.position_value - position.entry_value
        assert position.pnl_pct == pytest.approx(100.0)


def test_pnl_rounds_a_half_up_to_the_even_digit(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, size=Decimal("1.5"), entry_price=Decimal("0.00000001"),
                               current_price=Decimal("0.00000002"))
    with Session(engine) as session:
        assert session.get(Position, position_id).pnl == Decimal("0.00000002")  # 0.000000015 -> ...02


def test_pnl_of_the_largest_amounts_is_exact_beyond_28_digits(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, size=Decimal("999999999999.99999999"),
                               entry_price=Decimal("999999999999.99999999"),
                               current_price=Decimal("999999999999.99999998"))
    with Session(engine) as session:
        position = session.get(Position, position_id)
        # exact: 999999999999999999980000.0000000000000001 and -9999.9999999999999999
        assert position.entry_value == Decimal("999999999999999999980000.00000000")
        assert position.pnl == Decimal("-10000.00000000")
        assert position.pnl_pct == pytest.approx(-1e-18)


# 9. Stop loss and take profit triggers

def test_stop_loss_triggers_at_or_below_the_stop_while_open(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, stop_loss=Decimal("95"), take_profit=Decimal("110"))
    with Session(engine) as session:
        position = session.get(Position, position_id)
        position.update_price(Decimal("95.00000001"))
        assert not position.should_stop_loss()
        position.update_price(Decimal("95"))
        session.commit()
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.should_stop_loss() and not position.should_take_profit()


def test_take_profit_triggers_at_or_above_the_target_while_open(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, stop_loss=Decimal("95"), take_profit=Decimal("110"))
    with Session(engine) as session:
        position = session.get(Position, position_id)
        position.update_price(Decimal("109.99999999"))
        assert not position.should_take_profit()
        position.update_price(Decimal("110"))
        session.commit()
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.should_take_profit() and not position.should_stop_loss()


def test_closed_position_triggers_neither_stop_loss_nor_take_profit(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id, stop_loss=Decimal("95"), take_profit=Decimal("110"))
    with Session(engine) as session:
        session.get(Position, position_id).close(Decimal("90"))
        session.commit()
    with Session(engine) as session:
        position = session.get(Position, position_id)
        assert position.status is PositionStatus.CLOSED and position.closed_at is not None
        assert position.current_price == Decimal("90") and position.pnl == Decimal("-105.00000000")
        assert not position.should_stop_loss() and not position.should_take_profit()
        with pytest.raises(InvalidTransition):
            position.update_price(Decimal("120"))


# 10. Order creation and execution

def test_buy_order_execution_records_fill_and_realized_slippage(engine):
    # expected_out = 1000 USD / 100 USD per token = 10 tokens; received 9.98765432
    # slippage = (10 - 9.98765432) / 10 x 10,000 = 12.34568 bps -> 12.3457 (4 places)
    user_id = add_user(engine)
    with Session(engine) as session:
        order = build_order(OrderCreate(user_id=user_id, token="SOL", action="buy",
                                        amount_in=Decimal("1000"), price=Decimal("100")))
        assert order.status is OrderStatus.PENDING and order.expected_out == Decimal("10")
        session.add(order)
        session.commit()
        before = datetime.now(timezone.utc)
        order.execute("5igBuy", Decimal("9.98765432"))
        session.commit()
        order_id = order.order_id
    with Session(engine) as session:
        order = session.get(Order, order_id)
        assert order.status is OrderStatus.EXECUTED and order.transaction_signature == "5igBuy"
        assert order.amount_out == Decimal("9.98765432")
        assert order.slippage_actual == Decimal("12.3457")
        assert order.executed_at.tzinfo == timezone.utc and order.executed_at >= before - timedelta(seconds=1)
        assert order.executed_price == Decimal("100.12360940")  # 1000 / 9.98765432 = 100.1236094042...
        assert order.total_value == Decimal("1000")


def test_sell_order_filled_better_than_quoted_has_negative_slippage(engine):
    # expected_out = 10 tokens x 100 USD = 1000 USD; received 1002 USD
    # slippage = (1000 - 1002) / 1000 x 10,000 = -20 bps (better for the trader)
    user_id = add_user(engine)
    with Session(engine) as session:
        order = build_order(OrderCreate(user_id=user_id, token="SOL", action="sell",
                                        amount_in=Decimal("10"), price=Decimal("100")))
        assert order.total_value == Decimal("1000")  # amount_in x price before execution
        order.execute("5igSell", Decimal("1002"))
        session.add(order)
        session.commit()
        order_id = order.order_id
    with Session(engine) as session:
        order = session.get(Order, order_id)
        assert order.slippage_actual == Decimal("-20.0000")
        assert order.executed_price == Decimal("100.2")
        assert order.total_value == Decimal("1002")


def test_slippage_rounds_half_even_to_four_places(engine):
    # (10 - 9.99999995) / 10 x 10,000 = 0.00005 bps -> 0.0000; (10 - 9.99999985) -> 0.00015 -> 0.0002
    user_id = add_user(engine)
    first = add_order(engine, user_id, execute_with=Decimal("9.99999995"))
    second = add_order(engine, user_id, execute_with=Decimal("9.99999985"))
    with Session(engine) as session:
        assert session.get(Order, first).slippage_actual == Decimal("0.0000")
        assert session.get(Order, second).slippage_actual == Decimal("0.0002")


# 11. Order status transitions

@pytest.mark.parametrize("transition, status", [
    (lambda order: order.execute("5igOk", Decimal("9.9")), OrderStatus.EXECUTED),
    (lambda order: order.fail("insufficient liquidity"), OrderStatus.FAILED),
    (lambda order: order.cancel(), OrderStatus.CANCELLED),
], ids=["execute", "fail", "cancel"])
def test_pending_order_can_become_executed_failed_or_cancelled(engine, transition, status):
    user_id = add_user(engine)
    order_id = add_order(engine, user_id)
    with Session(engine) as session:
        transition(session.get(Order, order_id))
        session.commit()
    with Session(engine) as session:
        assert session.get(Order, order_id).status is status


@pytest.mark.parametrize("finish", ["execute", "fail", "cancel"])
def test_finished_order_refuses_every_further_transition(engine, finish):
    user_id = add_user(engine)
    order_id = add_order(engine, user_id)
    finishers = {"execute": lambda o: o.execute("5igDone", Decimal("9.9")),
                 "fail": lambda o: o.fail("rejected"), "cancel": lambda o: o.cancel()}
    with Session(engine) as session:
        finishers[finish](session.get(Order, order_id))
        session.commit()
    with Session(engine) as session:
        order = session.get(Order, order_id)
        status = order.status
        attempts = (lambda o: o.execute("5igAgain", Decimal("9.9")), lambda o: o.fail("again"), lambda o: o.cancel())
        for attempt in attempts:
            with pytest.raises(InvalidTransition):
                attempt(order)
        assert order.status is status and order.transaction_signature != "5igAgain"


# 12. Audit log creation

def test_audit_log_entry_is_persisted_with_its_details(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        log = SecurityAuditLog.create_entry(
            event_type="authentication", resource="/api/login", action="login", success=False,
            user_id=user_id, ip_address="2001:db8::1", details={"method": "password", "reason": "bad password"},
            request_id="req-1",
        )
        session.add(log)
        session.commit()
        log_id = log.log_id
    with Session(engine) as session:
        stored = session.exec(select(SecurityAuditLog).where(SecurityAuditLog.log_id == log_id)).one()
        assert (stored.event_type, stored.resource, stored.action, stored.success) == (
            "authentication", "/api/login", "login", False)
        assert (stored.user_id, stored.ip_address, stored.request_id) == (user_id, "2001:db8::1", "req-1")
        assert stored.details == {"method": "password", "reason": "bad password"}
        assert stored.timestamp.tzinfo == timezone.utc


# 13. Model relationships (foreign keys)

def test_relationships_load_eagerly_in_both_directions(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id)
    add_order(engine, user_id, position_id=position_id)
    with Session(engine) as session:
        _, key = build_api_key(APIKeyCreate(user_id=user_id, name="bot"))
        session.add(key)
        session.commit()
    with Session(engine) as session:
        user = session.exec(select(User).where(User.user_id == user_id).options(
            selectinload(User.api_keys), selectinload(User.positions).selectinload(Position.orders),
            selectinload(User.orders).selectinload(Order.position),
        )).one()
        assert [k.name for k in user.api_keys] == ["bot"]
        assert [p.position_id for p in user.positions] == [position_id]
        assert len(user.positions[0].orders) == 1 and user.orders[0].position.position_id == position_id


def test_unloaded_relationship_raises_instead_of_querying(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        user = session.get(User, user_id)
        with pytest.raises(sa.exc.InvalidRequestError):
            user.positions  # noqa: B018


def test_row_for_a_missing_user_is_refused_by_the_foreign_key(engine):
    with pytest.raises(sa.exc.IntegrityError):
        add_position(engine, uuid.uuid4())


def test_deleting_a_user_cascades_to_api_keys_positions_and_orders(engine):
    user_id = add_user(engine)
    other_id = add_user(engine, "bob")
    for owner in (user_id, other_id):
        add_order(engine, owner, position_id=add_position(engine, owner))
        with Session(engine) as session:
            session.add(build_api_key(APIKeyCreate(user_id=owner, name="bot"))[1])
            session.commit()
    with Session(engine) as session:
        session.delete(session.get(User, user_id))
        session.commit()
    for table in ("api_keys", "positions", "orders"):
        assert count(engine, table) == 1, table
    assert count(engine, "users") == 1


def test_deleting_a_position_sets_its_orders_position_to_null(engine):
    user_id = add_user(engine)
    position_id = add_position(engine, user_id)
    order_id = add_order(engine, user_id, position_id=position_id)
    with Session(engine) as session:
        session.delete(session.get(Position, position_id))
        session.commit()
    with Session(engine) as session:
        order = session.get(Order, order_id)
        assert order is not None and order.position_id is None


def test_deleting_a_user_keeps_their_audit_log_rows_with_user_id_null(engine):
    user_id = add_user(engine)
    with Session(engine) as session:
        session.add(SecurityAuditLog.create_entry(event_type="authentication", action="login", success=True,
                                                  user_id=user_id))
        session.add(SecurityAuditLog.create_entry(event_type="admin", action="user_delete", success=True))
        session.commit()
    with Session(engine) as session:
        session.delete(session.get(User, user_id))
        session.commit()
    with Session(engine) as session:
        logs = session.exec(select(SecurityAuditLog).order_by(SecurityAuditLog.event_type)).all()
        assert [(log.event_type, log.user_id) for log in logs] == [("admin", None), ("authentication", None)]


# 14. Complex queries with joins

def test_users_joined_to_positions_and_orders_aggregate_per_user(engine):
    alice = add_user(engine, "alice")
    bob = add_user(engine, "bob")
    add_user(engine, "carol")  # no positions: absent from the inner join
    sol = add_position(engine, alice, token="SOL")
    add_position(engine, alice, token="ETH")
    add_order(engine, alice, position_id=sol, execute_with=Decimal("9.9"))
    add_order(engine, alice, position_id=sol)
    add_order(engine, bob, position_id=add_position(engine, bob, token="BTC"), execute_with=Decimal("10"))
    statement = (
        select(User.username,
               sa.func.count(sa.distinct(Position.position_id)).label("positions"),
               sa.func.count(Order.order_id).label("orders"),
               sa.func.count(Order.order_id).filter(Order.status == OrderStatus.EXECUTED).label("executed"))
        .join(Position, Position.user_id == User.user_id)
        .outerjoin(Order, Order.position_id == Position.position_id)
        .group_by(User.username)
        .order_by(User.username)
    )
    with Session(engine) as session:
        rows = [tuple(row) for row in session.exec(statement).all()]
    assert rows == [("alice", 2, 2, 1), ("bob", 1, 1, 1)]


def test_open_positions_with_executed_orders_join_to_their_owner(engine):
    alice = add_user(engine, "alice")
    open_position = add_position(engine, alice, token="SOL")
    add_order(engine, alice, position_id=open_position, execute_with=Decimal("9.9"))
    closed_position = add_position(engine, alice, token="ETH")
    add_order(engine, alice, position_id=closed_position, execute_with=Decimal("9.9"))
    with Session(engine) as session:
        session.get(Position, closed_position).close(Decimal("120"))
        session.commit()
    statement = (
        select(User.username, Position.token, Order.amount_out)
        .join(Position, Position.user_id == User.user_id)
        .join(Order, Order.position_id == Position.position_id)
        .where(Position.status == PositionStatus.OPEN, Order.status == OrderStatus.EXECUTED)
    )
    with Session(engine) as session:
        assert [tuple(row) for row in session.exec(statement).all()] == [("alice", "SOL", Decimal("9.9"))]
