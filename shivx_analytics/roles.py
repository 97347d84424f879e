"""PostgreSQL roles: an owner that migrates, an application role, a read-only analytics role.

- the owner (whoever runs `db upgrade`) owns the tables;
- the application role reads and writes the trading tables, may INSERT and SELECT the audit log
  but not UPDATE, DELETE or TRUNCATE it (it may SELECT and UPDATE the one-row hash-chain tip,
  security_audit_chain, which every audit insert moves); both may SELECT the chain checkpoints
  (security_audit_chain_checkpoints), which only the owner records;
- the analytics role reads everything except ``users.password_hash`` and ``api_keys.key_hash``
  (column privileges), which is all the loaders and reports need.
Idempotent: running it again re-applies the same grants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from shivx_analytics.aggregates.views import VIEW_NAMES, has_views
from shivx_analytics.db import create_engine, mask_url

TRADING_TABLES = ("users", "api_keys", "positions", "orders")
AUDIT_TABLE = "security_audit_logs"
AUDIT_CHAIN_TABLE = "security_audit_chain"  # the hash chain's tip: writers lock and move it, readers verify
CHECKPOINT_TABLE = "security_audit_chain_checkpoints"  # verified chain positions: only the owner records them
SECRET_COLUMNS = {"users": "password_hash", "api_keys": "key_hash"}


@dataclass(frozen=True)
class RoleNames:
    app: str = "shivx_app"
    analytics: str = "shivx_analytics"


# Role attributes that would let the role around its grants (read the secret columns, or grant
# itself anything): removed from a reused role, each removal reported.
UNSAFE_ATTRIBUTES = {"rolsuper": "SUPERUSER", "rolbypassrls": "BYPASSRLS", "rolcreaterole": "CREATEROLE",
                     "rolcreatedb": "CREATEDB", "rolreplication": "REPLICATION"}
SAFE_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEROLE NOCREATEDB NOREPLICATION"


@dataclass
class GrantResult:
    """What grant_roles did: the statements run (passwords shown as ***) and, in words, every
    change to state that outlives this database (roles are cluster-wide) or that took a
    privilege away."""
    statements: list[str] = field(default_factory=list)
    changes: list[str] = field(default_factory=list)


def grant_roles(url: str, roles: RoleNames = RoleNames(), *, app_password: str | None = None,
                analytics_password: str | None = None, reset_passwords: bool = False) -> GrantResult:
    """Create (if missing) and grant the application and analytics roles.

    Roles are cluster-wide: a role that already exists (made for another database, say) is
    reused, and the result says so and names the other databases it may connect to. A reused
    role loses what would reopen the secret columns: SUPERUSER, BYPASSRLS, CREATEROLE, CREATEDB,
    REPLICATION, and its membership in every other role (pg_read_all_data, pg_write_all_data,
    ...). Its password is changed only with ``reset_passwords=True`` (it is the password the
    other databases' clients use); without it a given password is refused (ValueError). The
    role running the grants, and a role owning tables here, are refused as app or analytics role.
    A password is sent as a SCRAM-SHA-256 verifier computed here, on the driver's own cursor:
    neither the password nor its verifier goes through SQLAlchemy's statement logging.
    """
    if roles.app == roles.analytics:
        raise ValueError(f"the application and analytics roles must differ, both are {roles.app!r}")
    engine = create_engine(url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise ValueError(f"roles need PostgreSQL; {mask_url(url)} is {engine.dialect.name}")
    result = GrantResult()
    try:
        with engine.begin() as connection:
            preparer = connection.dialect.identifier_preparer
            app, analytics = preparer.quote(roles.app), preparer.quote(roles.analytics)
            database_name = connection.exec_driver_sql("SELECT current_database()").scalar_one()
            database = preparer.quote(database_name)

            def run(statement: str) -> None:
                connection.exec_driver_sql(statement)
                result.statements.append(statement)

            for name, password in ((roles.app, app_password), (roles.analytics, analytics_password)):
                _prepare_role(connection, name, password, reset_passwords, database_name, run, result)
            _revoke_public_secrets(connection, run, result)
            for quoted in (app, analytics):
                for statement in (f"GRANT CONNECT ON DATABASE {database} TO {quoted}",
                                  f"GRANT USAGE ON SCHEMA public TO {quoted}",
                                  f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"):
                    run(statement)
            tables = ", ".join(TRADING_TABLES)
            for statement in (f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {app}",
                              f"GRANT SELECT, INSERT ON {AUDIT_TABLE} TO {app}",
                              f"GRANT SELECT, UPDATE ON {AUDIT_CHAIN_TABLE} TO {app}",
                              f"GRANT SELECT ON {AUDIT_CHAIN_TABLE} TO {analytics}",
                              f"GRANT SELECT ON alembic_version TO {app}, {analytics}",
                              f"GRANT SELECT ON positions, orders, {AUDIT_TABLE} TO {analytics}"):
                run(statement)
            for table, secret in SECRET_COLUMNS.items():
                # ctid too: the loaders' parallel scans read ctid ranges, and a column grant
                # does not cover system columns.
                columns = ["ctid"] + [c["name"] for c in sa.inspect(connection).get_columns(table) if c["name"] != secret]
                run(f"GRANT SELECT ({', '.join(preparer.quote(c) for c in columns)}) ON {table} TO {analytics}")
            if sa.inspect(connection).has_table(CHECKPOINT_TABLE):  # revision 0008 on: read, never written
                run(f"GRANT SELECT ON {CHECKPOINT_TABLE} TO {app}, {analytics}")
            if has_views(connection):  # revision 0005 on: the reports' materialized views
                run(f"GRANT SELECT ON {', '.join(VIEW_NAMES)} TO {analytics}")
    finally:
        engine.dispose()
    return result


def _prepare_role(connection, name: str, password: str | None, reset_passwords: bool, database: str,
                  run, result: GrantResult) -> None:
    """Create ``name``, or make a reused role safe, reporting every change."""
    quoted = connection.dialect.identifier_preparer.quote(name)
    me = connection.exec_driver_sql("SELECT current_user, session_user, "
                                    "(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)").one()
    if name in (me[0], me[1]):
        raise ValueError(f"role {name!r} is the role running the grants: choose another application/analytics role")
    attributes = ", ".join(UNSAFE_ATTRIBUTES)
    existing = connection.execute(sa.text(f"SELECT oid, {attributes} FROM pg_roles WHERE rolname = :n"),
                                  {"n": name}).mappings().first()
    if existing is None:
        run(f"CREATE ROLE {quoted} {SAFE_ROLE_OPTIONS}")
        result.changes.append(f"created role {name} (cluster-wide)")
    else:
        owned = connection.execute(sa.text(
            "SELECT string_agg(relname, ', ' ORDER BY relname) FROM pg_class "
            "WHERE relowner = :oid AND relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p', 'v', 'm')"),
            {"oid": existing["oid"]}).scalar_one()
        if owned:
            raise ValueError(f"role {name!r} owns tables in {database} ({owned}): an owner reads every "
                             "column, so it cannot be the application or analytics role; choose another name")
        if existing["rolsuper"] and not me[2]:
            raise ValueError(f"role {name!r} is a SUPERUSER and only a superuser can remove that: "
                             "run `db grant` as a superuser or choose another role name")
        elsewhere = connection.execute(sa.text(
            "SELECT string_agg(DISTINCT d.datname, ', ' ORDER BY d.datname) FROM pg_database d, aclexplode(d.datacl) a "
            "WHERE a.grantee = :oid AND d.datname <> current_database()"), {"oid": existing["oid"]}).scalar_one()
        result.changes.append(f"reusing existing role {name} (roles are cluster-wide)"
                              + (f"; it is also granted on {elsewhere}: the changes below apply there too"
                                 if elsewhere else ""))
        removed = [option for column, option in UNSAFE_ATTRIBUTES.items() if existing[column]]
        run(f"ALTER ROLE {quoted} {SAFE_ROLE_OPTIONS}")
        if removed:
            result.changes.append(f"removed {', '.join(removed)} from role {name}")
        memberships = connection.execute(sa.text(
            "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
            "WHERE m.member = :oid ORDER BY g.rolname"), {"oid": existing["oid"]}).scalars().all()
        for group in memberships:
            run(f"REVOKE {connection.dialect.identifier_preparer.quote(group)} FROM {quoted}")
            result.changes.append(f"revoked membership of role {name} in {group}")
    if password is None:
        return
    if existing is not None and not reset_passwords:
        raise ValueError(f"role {name!r} already exists (roles are cluster-wide: other databases' clients may "
                         "use its password); pass --reset-passwords (reset_passwords=True) to change it")
    _set_password(connection, name, password)
    result.statements.append(f"ALTER ROLE {quoted} PASSWORD ***")
    result.changes.append(f"{'set' if existing is None else 'changed'} the password of role {name}")


def _set_password(connection, name: str, password: str) -> None:
    """ALTER ROLE ... PASSWORD with a SCRAM-SHA-256 verifier computed by libpq on this side (the
    server never sees the plaintext, so its statement log cannot either), executed on the
    driver's cursor in the same transaction: SQLAlchemy's echo and logging never see it."""
    from psycopg import sql

    driver = connection.connection.driver_connection
    verifier = driver.pgconn.encrypt_password(password.encode("utf-8"), name.encode("utf-8"), b"scram-sha-256")
    with driver.cursor() as cursor:
        cursor.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(name),
                                                                  sql.Literal(verifier.decode("ascii"))))


def _revoke_public_secrets(connection, run, result: GrantResult) -> None:
    """PUBLIC's privileges on the tables with secret columns would open them to every role."""
    granted = connection.exec_driver_sql(
        "SELECT EXISTS (SELECT 1 FROM pg_class c, aclexplode(c.relacl) a WHERE a.grantee = 0 AND c.oid = ANY(%(t)s::regclass[])) "
        "OR EXISTS (SELECT 1 FROM pg_attribute t, aclexplode(t.attacl) a WHERE a.grantee = 0 "
        "AND t.attrelid = ANY(%(t)s::regclass[]))", {"t": list(SECRET_COLUMNS)}).scalar_one()
    run(f"REVOKE ALL ON {', '.join(SECRET_COLUMNS)} FROM PUBLIC")
    if granted:
        result.changes.append(f"revoked PUBLIC's privileges on {', '.join(SECRET_COLUMNS)}")
