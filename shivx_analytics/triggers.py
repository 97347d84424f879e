"""Database triggers, created by the migrations: an append-only audit log and updated_at upkeep.

Migrations call these functions; SQLite batch operations recreate a table and drop its
triggers, so a migration that batch-alters one of these tables calls them again afterwards.
"""

from __future__ import annotations

AUDIT_TABLE = "security_audit_logs"
TIMESTAMPED_TABLES = {"users": "user_id", "api_keys": "key_id", "positions": "position_id", "orders": "order_id"}

# Every audit-log column except user_id, whose ON DELETE SET NULL is the one update allowed.
# The SQLite UPDATE trigger names each column, so a migration that adds audit-log columns
# recreates it with the new list; earlier migrations pass the list of their own revision
# (a migration must create the schema of its revision, whatever this module says today).
AUDIT_IMMUTABLE_COLUMNS = ("log_id", "timestamp", "event_type", "ip_address", "resource", "action",
                           "success", "details", "request_id", "chain_seq", "prev_hash", "row_hash")

AUDIT_REFUSED = "security_audit_logs is append-only"


def audit_log_trigger_sql(dialect: str, columns: tuple[str, ...] = AUDIT_IMMUTABLE_COLUMNS) -> list[str]:
    """Statements that make the audit log refuse UPDATE, DELETE (and TRUNCATE on PostgreSQL)."""
    if dialect == "postgresql":
        return [
            f"""
CREATE OR REPLACE FUNCTION shivx_audit_log_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND OLD.user_id IS NOT NULL AND NEW.user_id IS NULL
       AND (to_jsonb(NEW) - 'user_id') = (to_jsonb(OLD) - 'user_id')
       AND NOT EXISTS (SELECT 1 FROM users WHERE users.user_id = OLD.user_id) THEN
        RETURN NEW;  -- ON DELETE SET NULL after the user was deleted
    END IF;
    RAISE EXCEPTION '{AUDIT_REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
            f"CREATE TRIGGER trg_{AUDIT_TABLE}_no_update BEFORE UPDATE ON {AUDIT_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_audit_log_immutable()",
            f"CREATE TRIGGER trg_{AUDIT_TABLE}_no_delete BEFORE DELETE ON {AUDIT_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_audit_log_immutable()",
            f"CREATE TRIGGER trg_{AUDIT_TABLE}_no_truncate BEFORE TRUNCATE ON {AUDIT_TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_immutable()",
        ]
    unchanged = " AND ".join(f'NEW."{c}" IS OLD."{c}"' for c in columns)
    return [
        f"""CREATE TRIGGER trg_{AUDIT_TABLE}_no_update BEFORE UPDATE ON {AUDIT_TABLE}
FOR EACH ROW WHEN NOT (
    OLD.user_id IS NOT NULL AND NEW.user_id IS NULL AND {unchanged}
    AND NOT EXISTS (SELECT 1 FROM users WHERE users.user_id = OLD.user_id)
)
BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSED}: UPDATE refused'); END""",
        f"""CREATE TRIGGER trg_{AUDIT_TABLE}_no_delete BEFORE DELETE ON {AUDIT_TABLE}
FOR EACH ROW BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSED}: DELETE refused'); END""",
    ]


def drop_audit_log_trigger_sql(dialect: str) -> list[str]:
    names = ["no_update", "no_delete"] + (["no_truncate"] if dialect == "postgresql" else [])
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS trg_{AUDIT_TABLE}_{n} ON {AUDIT_TABLE}" for n in names] + [
            "DROP FUNCTION IF EXISTS shivx_audit_log_immutable()"
        ]
    return [f"DROP TRIGGER IF EXISTS trg_{AUDIT_TABLE}_{n}" for n in names]


def updated_at_trigger_sql(dialect: str, table: str, primary_key: str) -> list[str]:
    """Statements that stamp updated_at on every UPDATE that does not set it itself."""
    if dialect == "postgresql":
        return [
            """
CREATE OR REPLACE FUNCTION shivx_set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.updated_at IS NOT DISTINCT FROM OLD.updated_at THEN
        NEW.updated_at := clock_timestamp();
    END IF;
    RETURN NEW;
END
$$""",
            f"CREATE TRIGGER trg_{table}_updated_at BEFORE UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_set_updated_at()",
        ]
    # Same text format as SQLAlchemy's SQLite DATETIME: microseconds, six digits.
    return [
        f"""CREATE TRIGGER trg_{table}_updated_at AFTER UPDATE ON {table}
FOR EACH ROW WHEN NEW.updated_at IS OLD.updated_at
BEGIN UPDATE {table} SET updated_at = strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'
WHERE {primary_key} = NEW.{primary_key}; END"""
    ]


def drop_updated_at_trigger_sql(dialect: str, table: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS trg_{table}_updated_at ON {table}"]
    return [f"DROP TRIGGER IF EXISTS trg_{table}_updated_at"]


def expected_trigger_names(dialect: str) -> set[str]:
    """The triggers every migrated database must have, from the first revision on."""
    names = {f"trg_{AUDIT_TABLE}_no_update", f"trg_{AUDIT_TABLE}_no_delete"}
    if dialect == "postgresql":
        names.add(f"trg_{AUDIT_TABLE}_no_truncate")
    return names | {f"trg_{table}_updated_at" for table in TIMESTAMPED_TABLES}


def install_audit_log_triggers(execute, dialect: str,
                               columns: tuple[str, ...] = AUDIT_IMMUTABLE_COLUMNS) -> None:
    """(Re)create the audit log's triggers; SQLite's UPDATE trigger checks ``columns``."""
    for statement in audit_log_trigger_sql(dialect, columns):
        execute(statement)


def remove_audit_log_triggers(execute, dialect: str) -> None:
    for statement in drop_audit_log_trigger_sql(dialect):
        execute(statement)


def install_all(execute, dialect: str, audit_columns: tuple[str, ...] = AUDIT_IMMUTABLE_COLUMNS) -> None:
    """Create every trigger; ``execute`` runs one SQL string (e.g. ``op.execute``).

    ``audit_columns``: the audit-log columns SQLite's UPDATE trigger keeps unchanged (every
    column but user_id, as the calling migration's revision has them).
    """
    install_audit_log_triggers(execute, dialect, audit_columns)
    for table, primary_key in TIMESTAMPED_TABLES.items():
        for statement in updated_at_trigger_sql(dialect, table, primary_key):
            execute(statement)


def remove_all(execute, dialect: str) -> None:
    """Drop every trigger (and PostgreSQL trigger function)."""
    for table in TIMESTAMPED_TABLES:
        for statement in drop_updated_at_trigger_sql(dialect, table):
            execute(statement)
    if dialect == "postgresql":
        execute("DROP FUNCTION IF EXISTS shivx_set_updated_at()")
    for statement in drop_audit_log_trigger_sql(dialect):
        execute(statement)


def audit_log_row_security_sql() -> list[str]:
    """PostgreSQL: RLS with INSERT and SELECT policies only (forced), plus statement-level refusal."""
    return [
        f"ALTER TABLE {AUDIT_TABLE} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {AUDIT_TABLE} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY audit_insert_only ON {AUDIT_TABLE} FOR INSERT WITH CHECK (true)",
        f"CREATE POLICY audit_select ON {AUDIT_TABLE} FOR SELECT USING (true)",
        f"""
CREATE OR REPLACE FUNCTION shivx_audit_log_refuse_statement() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF pg_trigger_depth() > 1 THEN
        RETURN NULL;  -- inside a referential-integrity action (ON DELETE SET NULL)
    END IF;
    RAISE EXCEPTION '{AUDIT_REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
        f"CREATE TRIGGER trg_{AUDIT_TABLE}_refuse_update BEFORE UPDATE ON {AUDIT_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_refuse_statement()",
        f"CREATE TRIGGER trg_{AUDIT_TABLE}_refuse_delete BEFORE DELETE ON {AUDIT_TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_refuse_statement()",
    ]


def drop_audit_log_row_security_sql() -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS trg_{AUDIT_TABLE}_refuse_update ON {AUDIT_TABLE}",
        f"DROP TRIGGER IF EXISTS trg_{AUDIT_TABLE}_refuse_delete ON {AUDIT_TABLE}",
        "DROP FUNCTION IF EXISTS shivx_audit_log_refuse_statement()",
        f"DROP POLICY IF EXISTS audit_select ON {AUDIT_TABLE}",
        f"DROP POLICY IF EXISTS audit_insert_only ON {AUDIT_TABLE}",
        f"ALTER TABLE {AUDIT_TABLE} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {AUDIT_TABLE} DISABLE ROW LEVEL SECURITY",
    ]
