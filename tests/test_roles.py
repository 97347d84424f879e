"""PostgreSQL roles and row-level security on the audit log."""

import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlmodel import Session
from typer.testing import CliRunner

from shivx_analytics.cli import app as cli_app
from shivx_analytics.db import create_engine
from shivx_analytics.models import SecurityAuditLog, User, UserCreate
from shivx_analytics.roles import RoleNames, grant_roles

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
def roles(db_url):
    names = RoleNames(app=f"shivx_app_{uuid.uuid4().hex[:8]}", analytics=f"shivx_ro_{uuid.uuid4().hex[:8]}")
    grant_roles(db_url, names)
    yield names
    admin = create_engine(db_url)
    with admin.begin() as connection:
        for role in (names.app, names.analytics):
            # a test may have handed the audit log to a role: take it back (the views depend on it)
            connection.exec_driver_sql(f'REASSIGN OWNED BY "{role}" TO CURRENT_USER')
            connection.exec_driver_sql(f'DROP OWNED BY "{role}"')
    with admin.connect() as connection:
        connection.commit()
    admin.dispose()
    server = create_engine(make_url(db_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with server.connect() as connection:
        for role in (names.app, names.analytics):
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
    server.dispose()


def _as(db_url: str, role: str) -> sa.Engine:
    return create_engine(make_url(db_url).set(username=role, password=None))


def _seed_user_and_log(db_url: str) -> uuid.UUID:
    engine = create_engine(db_url)
    with Session(engine) as session:
        user = User.model_validate(UserCreate(username="trader", email="t@example.com", password="x" * 8),
                                   update={"password_hash": "pbkdf2_sha256$1$00$00"})
        session.add(user)
        session.commit()
        session.add(SecurityAuditLog.create_entry(event_type="authentication", action="login", success=True,
                                                  user_id=user.user_id))
        session.commit()
        user_id = user.user_id
    engine.dispose()
    return user_id


def test_app_role_may_insert_and_read_the_audit_log_but_not_change_it(backend, db_url, roles):
    _seed_user_and_log(db_url)
    app = _as(db_url, roles.app)
    try:
        with Session(app) as session:
            session.add(SecurityAuditLog.create_entry(event_type="admin", action="export", success=True))
            session.commit()
        with app.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM security_audit_logs").scalar_one() == 2
        for statement in ("UPDATE security_audit_logs SET action = 'x'", "DELETE FROM security_audit_logs",
                          "TRUNCATE security_audit_logs"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                with app.begin() as connection:
                    connection.exec_driver_sql(statement)
    finally:
        app.dispose()


def test_app_role_deleting_a_user_keeps_the_audit_rows(backend, db_url, roles):
    user_id = _seed_user_and_log(db_url)
    app = _as(db_url, roles.app)
    try:
        with app.begin() as connection:
            connection.execute(sa.delete(User.__table__).where(User.__table__.c.user_id == user_id))
        with app.connect() as connection:
            assert connection.exec_driver_sql("SELECT user_id FROM security_audit_logs").scalars().all() == [None]
    finally:
        app.dispose()


def test_analytics_role_cannot_read_secrets_but_reads_everything_else(backend, db_url, roles):
    _seed_user_and_log(db_url)
    analytics = _as(db_url, roles.analytics)
    try:
        for statement in ("SELECT password_hash FROM users", "SELECT key_hash FROM api_keys", "SELECT * FROM users"):
            with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                with analytics.connect() as connection:
                    connection.exec_driver_sql(statement)
        with analytics.connect() as connection:
            assert connection.exec_driver_sql("SELECT username, email FROM users").all() == [("trader", "t@example.com")]
            assert connection.exec_driver_sql("SELECT count(*) FROM security_audit_logs").scalar_one() == 1
        with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
            with analytics.begin() as connection:
                connection.exec_driver_sql("INSERT INTO security_audit_logs (log_id, timestamp, event_type, action, "
                                           "success, details) VALUES (gen_random_uuid(), now(), 'x', 'y', true, '{}')")
    finally:
        analytics.dispose()


def test_row_security_is_forced_and_a_non_superuser_owner_cannot_change_rows(backend, db_url, roles):
    """The owner is subject to the policies too: UPDATE/DELETE fail loudly, INSERT/SELECT work."""
    user_id = _seed_user_and_log(db_url)
    admin = create_engine(db_url)
    with admin.begin() as connection:
        connection.exec_driver_sql(f'ALTER TABLE security_audit_logs OWNER TO "{roles.app}"')
        forced = connection.exec_driver_sql(
            "SELECT relrowsecurity AND relforcerowsecurity FROM pg_class WHERE relname = 'security_audit_logs'"
        ).scalar_one()
    admin.dispose()
    assert forced
    owner = _as(db_url, roles.app)
    try:
        for statement in ("UPDATE security_audit_logs SET action = 'x'", "DELETE FROM security_audit_logs"):
            with pytest.raises(sa.exc.DatabaseError, match="append-only"):
                with owner.begin() as connection:
                    connection.exec_driver_sql(statement)
        with owner.begin() as connection:
            connection.execute(sa.delete(User.__table__).where(User.__table__.c.user_id == user_id))
        with owner.connect() as connection:
            assert connection.exec_driver_sql("SELECT user_id, action FROM security_audit_logs").all() == [(None, "login")]
    finally:
        owner.dispose()


@pytest.mark.slow
def test_every_loader_and_report_works_under_the_analytics_role(backend, db_url, roles):
    import shivx_analytics as sx

    sx.generate_demo_data(db_url, seed=0, scale=300, as_of="2025-10-28")
    analytics_url = make_url(db_url).set(username=roles.analytics, password=None).render_as_string(hide_password=False)
    frames = [sx.load_positions(analytics_url), sx.load_orders(analytics_url), sx.load_audit_logs(analytics_url),
              sx.load_api_keys(analytics_url), sx.load_users(analytics_url)]
    assert all(len(frame) > 0 for frame in frames)
    for build in (sx.pnl_report, sx.execution_report, sx.api_usage_report, sx.security_report):
        report = build(analytics_url, as_of="2025-10-28")
        assert report.summary
    assert report.summary["audit_chain_ok"] is True
    # the materialized views are granted too
    assert sx.pnl_report(analytics_url, as_of="2025-10-28", use_views=True).parameters["path"] == "views"
    assert len(sx.aggregates.load_user_statistics(analytics_url)) > 0


# Roles are cluster-wide: `db grant` on a second database reuses the first one's roles.

@pytest.fixture
def second_db(migrated_templates):
    from _databases import create_postgres_database, drop_postgres_database

    url = create_postgres_database(template=migrated_templates["postgresql"])
    yield url
    drop_postgres_database(url)


def _superuser(db_url: str, *statements: str) -> None:
    admin = create_engine(db_url)
    with admin.begin() as connection:
        for statement in statements:
            connection.exec_driver_sql(statement)
    admin.dispose()


def _password_of(db_url: str, role: str) -> str | None:
    admin = create_engine(db_url)
    with admin.connect() as connection:
        verifier = connection.execute(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :n"),
                                      {"n": role}).scalar_one()
    admin.dispose()
    return verifier


def test_grant_on_a_second_database_makes_reuse_explicit_and_closes_the_secrets_again(
        backend, db_url, roles, second_db):
    """An attacker (or a careless admin) gave the analytics role pg_read_all_data, SUPERUSER,
    BYPASSRLS, CREATEROLE, CREATEDB and PUBLIC a grant on users: `db grant` on a second database
    takes it all away, says so, and names the first database the roles are also used by."""
    _seed_user_and_log(db_url)
    _superuser(second_db, f'GRANT pg_read_all_data, pg_write_all_data TO "{roles.analytics}"',
               f'ALTER ROLE "{roles.analytics}" SUPERUSER BYPASSRLS CREATEROLE CREATEDB',
               f'GRANT {roles.app} TO "{roles.analytics}"', "GRANT SELECT ON users TO PUBLIC")
    reopened = _as(db_url, roles.analytics)
    with reopened.connect() as connection:  # the attack works on the first database...
        assert connection.exec_driver_sql("SELECT password_hash FROM users").all()
    reopened.dispose()

    result = CliRunner().invoke(cli_app, ["db", "grant", "--url", second_db, "--app-role", roles.app,
                                          "--analytics-role", roles.analytics])
    assert result.exit_code == 0, result.output
    first = make_url(db_url).database
    changed = [line for line in result.stdout.splitlines() if line.startswith("changed: ")]
    assert f"changed: reusing existing role {roles.analytics} (roles are cluster-wide); it is also granted on " \
           f"{first}: the changes below apply there too" in changed
    assert f"changed: removed SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB from role {roles.analytics}" in changed
    for group in ("pg_read_all_data", "pg_write_all_data", roles.app):
        assert f"changed: revoked membership of role {roles.analytics} in {group}" in changed
    assert "changed: revoked PUBLIC's privileges on users, api_keys" in changed

    for url in (db_url, second_db):  # ... and is undone on both
        analytics = _as(url, roles.analytics)
        try:
            for statement in ("SELECT password_hash FROM users", "SELECT key_hash FROM api_keys"):
                with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
                    with analytics.connect() as connection:
                        connection.exec_driver_sql(statement)
            with analytics.connect() as connection:
                flags = connection.exec_driver_sql(
                    "SELECT rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb FROM pg_roles "
                    "WHERE rolname = current_user").scalar_one()
                groups = connection.exec_driver_sql("SELECT count(*) FROM pg_auth_members m JOIN pg_roles r "
                                                    "ON r.oid = m.member WHERE r.rolname = current_user").scalar_one()
            assert (flags, groups) == (False, 0)
        finally:
            analytics.dispose()


def test_an_existing_roles_password_changes_only_when_asked(backend, db_url, roles, second_db, monkeypatch):
    """The first database's clients log in with the role's password: a grant on a second database
    refuses to change it (exit 2, nothing changed) unless --reset-passwords says so."""
    _superuser(db_url, f"ALTER ROLE \"{roles.app}\" PASSWORD 'first-database-password'")
    before = _password_of(db_url, roles.app)
    monkeypatch.setenv("SHIVX_TEST_NEW_PASSWORD", "second-database-password")
    args = ["db", "grant", "--url", second_db, "--app-role", roles.app, "--analytics-role", roles.analytics,
            "--app-password-env", "SHIVX_TEST_NEW_PASSWORD"]
    refused = CliRunner().invoke(cli_app, args)
    assert refused.exit_code == 2, refused.output
    assert f"role '{roles.app}' already exists" in refused.stderr and "--reset-passwords" in refused.stderr
    assert _password_of(db_url, roles.app) == before
    with pytest.raises(ValueError, match="--reset-passwords"):
        grant_roles(second_db, roles, app_password="second-database-password")

    reset = CliRunner().invoke(cli_app, args + ["--reset-passwords"])
    assert reset.exit_code == 0, reset.output
    assert f"changed: changed the password of role {roles.app}" in reset.stdout
    assert _password_of(db_url, roles.app) not in (before, None)
    assert "second-database-password" not in reset.stdout + reset.stderr


def test_grant_refuses_roles_that_would_see_the_secrets(backend, db_url, roles):
    """The role running the grants, an owner of the tables, or one role for both: refused, unchanged."""
    admin = create_engine(db_url)
    with admin.connect() as connection:
        me = connection.exec_driver_sql("SELECT current_user").scalar_one()
    admin.dispose()
    with pytest.raises(ValueError, match="is the role running the grants"):
        grant_roles(db_url, RoleNames(app=roles.app, analytics=me))
    _superuser(db_url, f'ALTER TABLE positions OWNER TO "{roles.analytics}"')
    try:
        with pytest.raises(ValueError, match=r"owns tables in .* \(positions\)"):
            grant_roles(db_url, roles)
    finally:
        _superuser(db_url, f'ALTER TABLE positions OWNER TO "{me}"')
    with pytest.raises(ValueError, match="must differ"):
        grant_roles(db_url, RoleNames(app=roles.app, analytics=roles.app))
    result = grant_roles(db_url, roles)  # a plain re-run: reuse said, nothing taken away
    assert result.changes == [f"reusing existing role {roles.app} (roles are cluster-wide)",
                              f"reusing existing role {roles.analytics} (roles are cluster-wide)"]
