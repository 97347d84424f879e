"""The audit log is append-only in the database itself, whoever sends the SQL."""

import uuid
from datetime import datetime, timezone

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from shivx_analytics.models import SecurityAuditLog, User, UserCreate

REFUSED = "append-only"


def _seed(engine) -> tuple[uuid.UUID, uuid.UUID]:
    with Session(engine) as session:
        user = User.model_validate(UserCreate(username="auditee", email="a@example.com", password="x" * 8),
                                   update={"password_hash": "pbkdf2_sha256$1$00$00"})
        session.add(user)
        session.commit()
        entry = SecurityAuditLog.create_entry(event_type="authentication", action="login", success=False,
                                              user_id=user.user_id, ip_address="203.0.113.7",
                                              details={"method": "password"}, request_id="req-1")
        session.add(entry)
        session.commit()
        return user.user_id, entry.log_id


def _rows(engine) -> list[tuple]:
    with engine.connect() as connection:
        return [tuple(r) for r in connection.exec_driver_sql(
            "SELECT log_id, user_id, action, success, ip_address FROM security_audit_logs ORDER BY log_id")]


@pytest.mark.parametrize("statement", [
    "UPDATE security_audit_logs SET action = 'logout'",
    "UPDATE security_audit_logs SET user_id = NULL",
    "UPDATE security_audit_logs SET success = NOT success",
    "DELETE FROM security_audit_logs",
])
def test_raw_update_and_delete_are_refused_and_the_row_is_unchanged(backend, engine, statement):
    _seed(engine)
    before = _rows(engine)
    with pytest.raises(sa.exc.DatabaseError, match=REFUSED):
        with engine.begin() as connection:
            connection.exec_driver_sql(statement)
    assert _rows(engine) == before


@pytest.mark.parametrize("backend", ["postgresql"])
def test_truncate_is_refused_on_postgresql(backend, engine):
    _seed(engine)
    with pytest.raises(sa.exc.DatabaseError, match=REFUSED):
        with engine.begin() as connection:
            connection.exec_driver_sql("TRUNCATE security_audit_logs")
    assert len(_rows(engine)) == 1


def test_orm_update_is_refused(backend, engine):
    _, log_id = _seed(engine)
    with Session(engine) as session:
        entry = session.exec(sa.select(SecurityAuditLog)).scalar_one()
        entry.action = "tampered"
        with pytest.raises(sa.exc.DatabaseError, match=REFUSED):
            session.commit()


def test_deleting_a_user_keeps_its_audit_rows_with_user_id_null(backend, engine):
    user_id, log_id = _seed(engine)
    with engine.begin() as connection:
        connection.execute(sa.delete(User.__table__).where(User.__table__.c.user_id == user_id))
    rows = _rows(engine)
    assert len(rows) == 1
    assert rows[0][1] is None
    assert rows[0][2] == "login"


def test_updated_at_is_stamped_by_the_database_on_raw_updates(backend, engine):
    user_id, _ = _seed(engine)
    old = datetime(2020, 1, 1, tzinfo=timezone.utc)
    table = User.__table__
    with engine.begin() as connection:
        connection.execute(sa.update(table).values(updated_at=old))
        assert connection.execute(sa.select(table.c.updated_at)).scalar_one() == old
    with engine.begin() as connection:
        connection.execute(sa.update(table).values(failed_login_attempts=1))
    with engine.connect() as connection:
        stamped = connection.execute(sa.select(table.c.updated_at)).scalar_one()
    assert stamped > old
    assert (datetime.now(timezone.utc) - stamped).total_seconds() < 60
