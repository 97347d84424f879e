"""PostgreSQL roles: an owner that migrates, an application role, a read-only analytics role.

- the owner (whoever runs `db upgrade`) owns the tables;
- the application role reads and writes the trading tables, may INSERT and SELECT the audit log
  but not UPDATE, DELETE or TRUNCATE it (it may SELECT and UPDATE the one-row hash-chain tip,
  security_audit_chain, which every audit insert moves);
- the analytics role reads everything except ``users.password_hash`` and ``api_keys.key_hash``
  (column privileges), which is all the loaders and reports need.
Idempotent: running it again re-applies the same grants.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from shivx_analytics.aggregates.views import VIEW_NAMES, has_views

from shivx_analytics.db import create_engine, mask_url

TRADING_TABLES = ("users", "api_keys", "positions", "orders")
AUDIT_TABLE = "security_audit_logs"
AUDIT_CHAIN_TABLE = "security_audit_chain"  # the hash chain's tip: writers lock and move it, readers verify
SECRET_COLUMNS = {"users": "password_hash", "api_keys": "key_hash"}


@dataclass(frozen=True)
class RoleNames:
    app: str = "shivx_app"
    analytics: str = "shivx_analytics"


def grant_roles(url: str, roles: RoleNames = RoleNames(), *, app_password: str | None = None,
                analytics_password: str | None = None) -> list[str]:
    """Create (if missing) and grant the application and analytics roles; returns the statements run."""
    engine = create_engine(url)
    if engine.dialect.name != "postgresql":
        engine.dispose()
        raise ValueError(f"roles need PostgreSQL; {mask_url(url)} is {engine.dialect.name}")
    statements: list[str] = []
    try:
        with engine.begin() as connection:
            preparer = connection.dialect.identifier_preparer
            app, analytics = preparer.quote(roles.app), preparer.quote(roles.analytics)
            database = preparer.quote(connection.exec_driver_sql("SELECT current_database()").scalar_one())
            for name, quoted, password in ((roles.app, app, app_password), (roles.analytics, analytics, analytics_password)):
                exists = connection.execute(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}).first()
                statements.append(f"{'ALTER' if exists else 'CREATE'} ROLE {quoted} LOGIN NOSUPERUSER NOBYPASSRLS")
                if password is not None:
                    statements.append(f"ALTER ROLE {quoted} PASSWORD {_literal(connection, password)}")
            for quoted in (app, analytics):
                statements += [f"GRANT CONNECT ON DATABASE {database} TO {quoted}",
                               f"GRANT USAGE ON SCHEMA public TO {quoted}",
                               f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}"]
            tables = ", ".join(TRADING_TABLES)
            statements += [
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO {app}",
                f"GRANT SELECT, INSERT ON {AUDIT_TABLE} TO {app}",
                f"GRANT SELECT, UPDATE ON {AUDIT_CHAIN_TABLE} TO {app}",
                f"GRANT SELECT ON {AUDIT_CHAIN_TABLE} TO {analytics}",
                f"GRANT SELECT ON alembic_version TO {app}, {analytics}",
                f"GRANT SELECT ON positions, orders, {AUDIT_TABLE} TO {analytics}",
            ]
            for table, secret in SECRET_COLUMNS.items():
                # ctid too: the loaders' parallel scans read ctid ranges, and a column grant
                # does not cover system columns.
                columns = ["ctid"] + [c["name"] for c in sa.inspect(connection).get_columns(table) if c["name"] != secret]
                statements.append(f"GRANT SELECT ({', '.join(preparer.quote(c) for c in columns)}) ON {table} TO {analytics}")
            if has_views(connection):  # revision 0005 on: the reports' materialized views
                statements.append(f"GRANT SELECT ON {', '.join(VIEW_NAMES)} TO {analytics}")
            for statement in statements:
                connection.exec_driver_sql(statement)
    finally:
        engine.dispose()
    return [s if "PASSWORD" not in s else s.split(" PASSWORD ")[0] + " PASSWORD ***" for s in statements]


def _literal(connection, text: str) -> str:
    return connection.exec_driver_sql("SELECT quote_literal(%(p)s)", {"p": text}).scalar_one()
