"""The database's own controls, checked and restored: `shivx-analytics db check [--repair]`.

The schema comparison (db.schema_problems) sees tables, columns and indexes, not the controls
that make the audit log append-only and the chain whole. Those are checked here:

- triggers: every trigger of the migrations present and enabled (the append-only ones, the
  chain's guards of revision 0006, updated_at upkeep, SQLite's money checks), on PostgreSQL on
  every partition of the audit log too (cloned row triggers and each partition's own guards);
- row-level security (PostgreSQL): enabled and forced on the audit log, with exactly the INSERT
  and SELECT policies (a further policy could let UPDATE or DELETE through);
- grants (PostgreSQL): nobody but the owner may UPDATE, DELETE, TRUNCATE, add triggers to or
  reference the audit log or its partitions, nor DELETE, TRUNCATE or INSERT the chain's tip, nor
  INSERT, UPDATE, DELETE or TRUNCATE the chain checkpoints (revision 0008); the
  read-only role of `db grant` (when it exists) holds nothing but SELECT and owns nothing;
- the chain's tip: its row is there, names the last row (chain_seq and row_hash), no row lies
  beyond it or below position 1 (cheap index look-ups: `verify_audit_chain` reads every row);
- SQLite money: no stored text that the models would refuse to read (named by table, column, row);
- PostgreSQL money (revision 0007): each money domain holds its named, validated constraints (the
  schema comparison sees a column's type, not what its domain checks).

``repair_controls`` puts back what is missing or switched off: triggers, row-level security and
its policies, the money domains' constraints (refused while a stored value breaks them), and
revokes the grants above. It never changes, re-chains or deletes a row.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics import chain_checkpoints, partitions, triggers
from shivx_analytics.roles import RoleNames
from shivx_analytics.types import money_domain, money_domain_constraints

__all__ = ["control_problems", "repair_controls"]

AUDIT = triggers.AUDIT_TABLE
CHAIN = triggers.CHAIN_TABLE
POLICIES = {"audit_insert_only": "a", "audit_select": "r"}  # pg_policy.polcmd: INSERT, SELECT
# Privileges only the owner may hold (pg aclexplode names).
OWNER_ONLY = {AUDIT: {"UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"},
              CHAIN: {"INSERT", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"},
              chain_checkpoints.CHECKPOINT_TABLE: {"INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"}}
PARTITION_OWNER_ONLY = {"INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"}
BAD_MONEY_ROWS_SHOWN = 5
_TRIGGER_NAME = re.compile(r"CREATE\s+(?:OR\s+REPLACE\s+)?TRIGGER\s+(\w+)\s+\w+\s+\w+(?:\s+OR\s+\w+)*\s+ON\s+(\w+)",
                           re.IGNORECASE)


def _trigger_statements(connection: Connection, schema: str) -> list[str]:
    """Every statement that creates the head revision's triggers (and their functions)."""
    dialect = connection.dialect.name
    statements = list(triggers.audit_log_trigger_sql(dialect))
    for table, key in triggers.TIMESTAMPED_TABLES.items():
        statements += triggers.updated_at_trigger_sql(dialect, table, key)
    statements += triggers.chain_trigger_sql(dialect, schema) + triggers.money_trigger_sql(dialect)
    if sa.inspect(connection).has_table(chain_checkpoints.CHECKPOINT_TABLE):  # revision 0008 on
        statements += chain_checkpoints.checkpoint_trigger_sql(dialect, schema)
    if dialect == "postgresql":
        statements += [s for s in triggers.audit_log_row_security_sql() if "TRIGGER" in s or "FUNCTION" in s]
        for partition in partitions.list_partitions(connection):
            statements += partitions.guard_trigger_sql(partition.name)
    return statements


def _expected_triggers(connection: Connection, schema: str) -> dict[tuple[str, str], str]:
    """(table, trigger) -> the statement creating it; PostgreSQL's cloned partition row triggers too."""
    expected = {}
    for statement in _trigger_statements(connection, schema):
        match = _TRIGGER_NAME.search(statement)
        if match:
            expected[(match.group(2), match.group(1))] = statement
    if connection.dialect.name == "postgresql":
        cloned = [name for (table, name), s in expected.items() if table == AUDIT and "FOR EACH ROW" in s]
        for partition in partitions.list_partitions(connection):
            for name in cloned:  # PostgreSQL clones these itself: only a missing one is reported
                expected.setdefault((partition.name, name), "")
    return expected


def _present_triggers(connection: Connection) -> dict[tuple[str, str], bool]:
    """(table, trigger) -> enabled."""
    if connection.dialect.name == "postgresql":
        rows = connection.exec_driver_sql(
            "SELECT c.relname, t.tgname, t.tgenabled <> 'D' FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
            "WHERE NOT t.tgisinternal AND c.relnamespace = to_regnamespace(current_schema())").all()
        return {(table, name): bool(enabled) for table, name, enabled in rows}
    rows = connection.exec_driver_sql("SELECT tbl_name, name FROM sqlite_master WHERE type = 'trigger'").all()
    return {(table, name): True for table, name in rows}


def _schema(connection: Connection) -> str:
    if connection.dialect.name != "postgresql":
        return "main"
    return connection.exec_driver_sql("SELECT quote_ident(current_schema())").scalar_one()


def control_problems(connection: Connection, roles: RoleNames = RoleNames()) -> list[str]:
    """What is missing or switched off among the controls (empty when every one is in place)."""
    inspector = sa.inspect(connection)
    if not (inspector.has_table(AUDIT) and inspector.has_table(CHAIN)):
        return []  # not migrated yet: schema_problems says so
    problems = []
    present = _present_triggers(connection)
    for (table, name) in sorted(_expected_triggers(connection, _schema(connection))):
        if (table, name) not in present:
            problems.append(f"trigger {name} on {table} is missing")
        elif not present[(table, name)]:
            problems.append(f"trigger {name} on {table} is disabled")
    if connection.dialect.name == "postgresql":
        problems += _row_security_problems(connection) + _grant_problems(connection, roles)
        problems += [problem for problem, _ in _money_domain_problems(connection)]
    problems += _tip_problems(connection)
    if connection.dialect.name == "sqlite":
        problems += _money_problems(connection)
    return problems


def _row_security_problems(connection: Connection) -> list[str]:
    problems = []
    enabled, forced = connection.exec_driver_sql(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = to_regclass(%(t)s)", {"t": AUDIT}).one()
    if not enabled:
        problems.append(f"row-level security is disabled on {AUDIT}")
    if not forced:
        problems.append(f"row-level security is not forced on {AUDIT} (its owner is not bound by it)")
    policies: dict[str, str] = dict(connection.exec_driver_sql(
        "SELECT polname, polcmd::text FROM pg_policy WHERE polrelid = to_regclass(%(t)s)", {"t": AUDIT}).all())
    for name, command in POLICIES.items():
        if policies.get(name) != command:
            problems.append(f"row-level security policy {name} on {AUDIT} is missing or changed")
    for name in sorted(set(policies) - set(POLICIES)):
        problems.append(f"unexpected row-level security policy {name} on {AUDIT} (could let rows be changed)")
    return problems


def _grants(connection: Connection) -> list[tuple[str, str, str]]:
    """(table, grantee, privilege) for every grant to a role other than the table's owner."""
    return [tuple(row) for row in connection.exec_driver_sql(
        "SELECT c.relname, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END, g.privilege_type "
        "FROM pg_class c, aclexplode(c.relacl) g WHERE c.relnamespace = to_regnamespace(current_schema()) "
        "AND c.relkind IN ('r', 'p', 'v', 'm') AND g.grantee <> c.relowner").all()]


def _bad_grants(connection: Connection, roles: RoleNames) -> list[tuple[str, str, str]]:
    analytics = connection.dialect.identifier_preparer.quote(roles.analytics)
    bad = []
    for table, grantee, privilege in _grants(connection):
        if partitions.is_partition_name(table):
            refused = PARTITION_OWNER_ONLY
        else:
            refused = OWNER_ONLY.get(table, set())
        if privilege in refused or (grantee == analytics and privilege != "SELECT"):
            bad.append((table, grantee, privilege))
    return bad


def _grant_problems(connection: Connection, roles: RoleNames) -> list[str]:
    problems = [f"{grantee} holds {privilege} on {table} (only the owner may)"
                for table, grantee, privilege in _bad_grants(connection, roles)]
    owned = connection.exec_driver_sql(
        "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c "
        "WHERE c.relnamespace = to_regnamespace(current_schema()) AND c.relkind IN ('r', 'p', 'v', 'm') "
        "AND pg_get_userbyid(c.relowner) IN (%(app)s, %(analytics)s)",
        {"app": roles.app, "analytics": roles.analytics}).all()
    problems += [f"{table} is owned by {owner}: an owner may switch the controls off" for table, owner in owned]
    return problems


def _tip_problems(connection: Connection) -> list[str]:
    tip = connection.exec_driver_sql(f"SELECT last_seq, last_hash FROM {CHAIN} WHERE id = 1").first()
    if tip is None:
        return [f"chain tip: {CHAIN} has no row"]
    last_seq, last_hash = int(tip[0]), tip[1]
    problems = []
    if last_seq > 0:
        row = connection.exec_driver_sql(
            f"SELECT row_hash FROM {AUDIT} WHERE chain_seq = {last_seq}").scalars().all()
        if row != [last_hash]:
            problems.append(f"chain tip: the row at chain_seq {last_seq} is not the one {CHAIN} records "
                            f"({'missing' if not row else 'another row_hash'})")
    low, high = connection.exec_driver_sql(f"SELECT min(chain_seq), max(chain_seq) FROM {AUDIT}").one()
    if high is not None and high > last_seq:
        problems.append(f"chain tip: rows up to chain_seq {high} lie beyond the tip {last_seq}")
    if low is not None and low < 1:
        problems.append(f"chain tip: rows at chain_seq {low} lie below the chain's first position 1")
    return problems


def _money_problems(connection: Connection) -> list[str]:
    problems = []
    keys = {"orders": "order_id", "positions": "position_id"}
    for table, columns in triggers.MONEY_COLUMNS.items():
        for column, precision, scale in columns:
            bad = connection.exec_driver_sql(
                f"SELECT {keys[table]}, {column} FROM {table} "
                f"WHERE NOT {triggers.money_text_ok_sql(column, precision, scale)} LIMIT {BAD_MONEY_ROWS_SHOWN}").all()
            problems += [f"{table}.{column} of row {key!s} holds {value!r}: not a decimal that fits "
                         f"NUMERIC({precision},{scale})" for key, value in bad]
    return problems


MONEY_DOMAINS = sorted({(precision, scale) for columns in triggers.MONEY_COLUMNS.values()
                        for _, precision, scale in columns})


def _money_domain_problems(connection: Connection) -> list[tuple[str, str]]:
    """(problem, the statement that repairs it) for each money domain's constraint that is missing
    or not validated. A database without the domains (before revision 0007) has none to check."""
    found = []
    for precision, scale in MONEY_DOMAINS:
        domain = money_domain(precision, scale)
        if connection.exec_driver_sql("SELECT to_regtype(%(d)s)", {"d": domain}).scalar() is None:
            continue
        present: dict[str, bool] = dict(connection.exec_driver_sql(
            "SELECT conname, convalidated FROM pg_constraint WHERE contypid = to_regtype(%(d)s)", {"d": domain}).all())
        for name, condition in money_domain_constraints(precision, scale).items():
            if name not in present:
                found.append((f"money domain {domain} lacks its constraint {name} (values it refuses can be stored)",
                              f"ALTER DOMAIN {domain} ADD CONSTRAINT {name} CHECK ({condition})"))
            elif not present[name]:
                found.append((f"money domain {domain}: constraint {name} is not validated (stored values unchecked)",
                              f"ALTER DOMAIN {domain} VALIDATE CONSTRAINT {name}"))
    return found


def repair_controls(connection: Connection, roles: RoleNames = RoleNames()) -> list[str]:
    """Restore missing or disabled triggers, row-level security and its policies, and revoke the
    grants only the owner may hold; returns the statements run. Rows are never touched."""
    inspector = sa.inspect(connection)
    if not (inspector.has_table(AUDIT) and inspector.has_table(CHAIN)):
        raise RuntimeError("the database is not migrated: run `shivx-analytics db upgrade` first")
    postgres = connection.dialect.name == "postgresql"
    expected = _expected_triggers(connection, _schema(connection))
    present = _present_triggers(connection)
    run = []
    if postgres:
        run += list(dict.fromkeys(s for s in _trigger_statements(connection, _schema(connection))
                                  if s.lstrip().startswith("CREATE OR REPLACE FUNCTION")))
    for (table, name), statement in sorted(expected.items()):
        if (table, name) not in present and statement:
            run.append(statement)
        elif (table, name) in present and not present[(table, name)]:
            run.append(f"ALTER TABLE {table} ENABLE TRIGGER {name}")
    if postgres:
        quote = connection.dialect.identifier_preparer.quote
        run += [f"ALTER TABLE {AUDIT} ENABLE ROW LEVEL SECURITY", f"ALTER TABLE {AUDIT} FORCE ROW LEVEL SECURITY"]
        policies: dict[str, str] = dict(connection.exec_driver_sql(
            "SELECT polname, polcmd::text FROM pg_policy WHERE polrelid = to_regclass(%(t)s)", {"t": AUDIT}).all())
        creating = {s.split()[2]: s for s in triggers.audit_log_row_security_sql() if s.startswith("CREATE POLICY")}
        for name in sorted(set(policies) - set(POLICIES)):
            run.append(f"DROP POLICY {quote(name)} ON {AUDIT}")
        for name, command in POLICIES.items():
            if policies.get(name) != command:
                run += [f"DROP POLICY IF EXISTS {name} ON {AUDIT}", creating[name]]
        for table, grantee, privilege in _bad_grants(connection, roles):
            run.append(f"REVOKE {privilege} ON {quote(table)} FROM {grantee}")
        run += [statement for _, statement in _money_domain_problems(connection)]
    for statement in run:
        connection.exec_driver_sql(statement.replace("%", "%%") if postgres else statement)
    return run
