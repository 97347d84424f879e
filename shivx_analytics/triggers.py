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


# Revision 0006: every audit row extends the hash chain, or the database refuses it --------------
#
# The chain's tip (security_audit_chain) is moved by the database itself as rows are inserted, and
# may only ever move forward to a row that is there: a row whose chain_seq is not the tip's + 1 or
# whose prev_hash is not the tip's hash is refused (so no row can sit outside the chain: below 1,
# beside another, past the tip), whoever inserts it, by whatever statement. PostgreSQL checks each
# INSERT statement's rows as a whole (a statement trigger with a transition table: bulk COPY stays
# one check, and the tip row is updated once per statement, not once per row); SQLite, which has
# row triggers only, checks and moves the tip row by row. The tip row is locked (FOR UPDATE)
# before it is read, so writers that did not take the chain's lock still queue behind those that did.
# SQLite's INSERT OR REPLACE / REPLACE INTO delete the row they collide with without firing DELETE
# triggers (unless PRAGMA recursive_triggers is on): an insert colliding with a stored row's key is
# refused before SQLite gets that far.

CHAIN_TABLE = "security_audit_chain"
CHAIN_REFUSED = "security_audit_logs rows must extend the hash chain"
CHAIN_TIP_REFUSED = "security_audit_chain only moves forward, to a row of the log"
GENESIS = "0" * 64


def chain_trigger_names(dialect: str) -> set[str]:
    """The triggers of revision 0006 that keep every audit row in the chain."""
    if dialect == "postgresql":
        return {f"trg_{AUDIT_TABLE}_chain_append", f"trg_{CHAIN_TABLE}_forward_only",
                f"trg_{CHAIN_TABLE}_no_delete", f"trg_{CHAIN_TABLE}_no_truncate"}
    return {f"trg_{AUDIT_TABLE}_chain_check", f"trg_{AUDIT_TABLE}_no_replace", f"trg_{AUDIT_TABLE}_chain_advance",
            f"trg_{CHAIN_TABLE}_forward_only", f"trg_{CHAIN_TABLE}_no_delete", f"trg_{CHAIN_TABLE}_no_replace"}


def chain_trigger_sql(dialect: str, schema: str = "public") -> list[str]:
    """Statements creating the chain's guards; ``schema``: where the tables live (PostgreSQL
    trigger functions run with a fixed search_path, so a session's temporary table of the same
    name cannot stand in for the log or the tip)."""
    if dialect == "postgresql":
        path = f"SET search_path = {schema}, pg_catalog, pg_temp"
        return [
            f"""
CREATE OR REPLACE FUNCTION shivx_audit_chain_append() RETURNS trigger LANGUAGE plpgsql {path} AS $$
DECLARE
    v_tip_seq bigint; v_tip_hash text; v_first bigint; v_last bigint; v_rows bigint; v_distinct bigint;
    v_bad bigint; v_last_hash text;
BEGIN
    SELECT c.last_seq, c.last_hash INTO v_tip_seq, v_tip_hash FROM {CHAIN_TABLE} c WHERE c.id = 1 FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION '{CHAIN_REFUSED}: {CHAIN_TABLE} has no tip row' USING ERRCODE = 'check_violation';
    END IF;
    SELECT min(i.chain_seq), max(i.chain_seq), count(*), count(DISTINCT i.chain_seq)
      INTO v_first, v_last, v_rows, v_distinct FROM inserted i;
    IF v_rows = 0 THEN
        RETURN NULL;
    END IF;
    IF v_first <> v_tip_seq + 1 OR v_last <> v_tip_seq + v_rows OR v_distinct <> v_rows THEN
        RAISE EXCEPTION '{CHAIN_REFUSED}: chain_seq % .. % (% rows) do not continue the tip %',
            v_first, v_last, v_rows, v_tip_seq USING ERRCODE = 'check_violation';
    END IF;
    SELECT l.chain_seq INTO v_bad FROM (
        SELECT i.chain_seq, i.prev_hash, lag(i.row_hash) OVER (ORDER BY i.chain_seq) AS before FROM inserted i
    ) l WHERE l.prev_hash IS DISTINCT FROM coalesce(l.before, v_tip_hash) ORDER BY l.chain_seq LIMIT 1;
    IF v_bad IS NOT NULL THEN
        RAISE EXCEPTION '{CHAIN_REFUSED}: the prev_hash of chain_seq % is not the row_hash before it', v_bad
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT i.row_hash INTO v_last_hash FROM inserted i WHERE i.chain_seq = v_last;
    UPDATE {CHAIN_TABLE} SET last_seq = v_last, last_hash = v_last_hash WHERE id = 1;
    RETURN NULL;
END
$$""",
            f"""
CREATE OR REPLACE FUNCTION shivx_audit_chain_forward_only() RETURNS trigger LANGUAGE plpgsql {path} AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.id = OLD.id THEN
        IF NEW.last_seq = OLD.last_seq AND NEW.last_hash = OLD.last_hash THEN
            RETURN NEW;  -- the writers' lock (an UPDATE to the same values)
        END IF;
        IF NEW.last_seq > OLD.last_seq AND EXISTS (
            SELECT 1 FROM {AUDIT_TABLE} l WHERE l.chain_seq = NEW.last_seq AND l.row_hash = NEW.last_hash) THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION '{CHAIN_TIP_REFUSED}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$""",
            f"CREATE TRIGGER trg_{AUDIT_TABLE}_chain_append AFTER INSERT ON {AUDIT_TABLE} "
            "REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_chain_append()",
            f"CREATE TRIGGER trg_{CHAIN_TABLE}_forward_only BEFORE UPDATE ON {CHAIN_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_audit_chain_forward_only()",
            f"CREATE TRIGGER trg_{CHAIN_TABLE}_no_delete BEFORE DELETE ON {CHAIN_TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION shivx_audit_chain_forward_only()",
            f"CREATE TRIGGER trg_{CHAIN_TABLE}_no_truncate BEFORE TRUNCATE ON {CHAIN_TABLE} "
            "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_chain_forward_only()",
        ]
    tip = f"(SELECT last_seq FROM {CHAIN_TABLE} WHERE id = 1)"
    tip_hash = f"(SELECT last_hash FROM {CHAIN_TABLE} WHERE id = 1)"
    return [
        f"""CREATE TRIGGER trg_{AUDIT_TABLE}_chain_check BEFORE INSERT ON {AUDIT_TABLE}
FOR EACH ROW WHEN NEW.chain_seq IS NOT {tip} + 1 OR NEW.prev_hash IS NOT {tip_hash}
BEGIN SELECT RAISE(ABORT, '{CHAIN_REFUSED}: chain_seq must be the tip''s + 1 and prev_hash the tip''s hash'); END""",
        f"""CREATE TRIGGER trg_{AUDIT_TABLE}_no_replace BEFORE INSERT ON {AUDIT_TABLE}
FOR EACH ROW WHEN EXISTS (SELECT 1 FROM {AUDIT_TABLE} WHERE log_id = NEW.log_id OR chain_seq = NEW.chain_seq)
BEGIN SELECT RAISE(ABORT, '{AUDIT_REFUSED}: an insert colliding with a stored row (REPLACE) refused'); END""",
        f"""CREATE TRIGGER trg_{AUDIT_TABLE}_chain_advance AFTER INSERT ON {AUDIT_TABLE}
FOR EACH ROW BEGIN UPDATE {CHAIN_TABLE} SET last_seq = NEW.chain_seq, last_hash = NEW.row_hash WHERE id = 1; END""",
        f"""CREATE TRIGGER trg_{CHAIN_TABLE}_forward_only BEFORE UPDATE ON {CHAIN_TABLE}
FOR EACH ROW WHEN NOT (NEW.id IS OLD.id AND (
    (NEW.last_seq IS OLD.last_seq AND NEW.last_hash IS OLD.last_hash)
    OR (NEW.last_seq > OLD.last_seq AND EXISTS (
        SELECT 1 FROM {AUDIT_TABLE} WHERE chain_seq = NEW.last_seq AND row_hash = NEW.last_hash))))
BEGIN SELECT RAISE(ABORT, '{CHAIN_TIP_REFUSED}: UPDATE refused'); END""",
        f"""CREATE TRIGGER trg_{CHAIN_TABLE}_no_delete BEFORE DELETE ON {CHAIN_TABLE}
FOR EACH ROW BEGIN SELECT RAISE(ABORT, '{CHAIN_TIP_REFUSED}: DELETE refused'); END""",
        f"""CREATE TRIGGER trg_{CHAIN_TABLE}_no_replace BEFORE INSERT ON {CHAIN_TABLE}
FOR EACH ROW WHEN EXISTS (SELECT 1 FROM {CHAIN_TABLE})
BEGIN SELECT RAISE(ABORT, '{CHAIN_TIP_REFUSED}: a second tip (INSERT / REPLACE) refused'); END""",
    ]


def drop_chain_trigger_sql(dialect: str) -> list[str]:
    if dialect == "postgresql":
        return [f"DROP TRIGGER IF EXISTS trg_{AUDIT_TABLE}_chain_append ON {AUDIT_TABLE}",
                *(f"DROP TRIGGER IF EXISTS trg_{CHAIN_TABLE}_{n} ON {CHAIN_TABLE}"
                  for n in ("forward_only", "no_delete", "no_truncate")),
                "DROP FUNCTION IF EXISTS shivx_audit_chain_append()",
                "DROP FUNCTION IF EXISTS shivx_audit_chain_forward_only()"]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in sorted(chain_trigger_names(dialect))]


# Revision 0006, SQLite: money is canonical text (types.Money), refused otherwise -----------------
#
# Money is text on SQLite (REAL would lose digits); the column itself accepts any text, so plain
# SQL could store '0.123456789' or '1abc', which the models would then read as they could. These
# triggers refuse, on INSERT and UPDATE, a money value that is not: an optional '-', 1 to
# (precision - scale) digits, and optionally '.' and 1 to scale digits. One trigger per column
# and statement, so the refusal names the table and column. (PostgreSQL: see MONEY_ROUNDING_NOTE.)

MONEY_COLUMNS = {  # table -> ((column, precision, scale), ...): the Money columns of the models
    "orders": (("amount_in", 20, 8), ("price", 20, 8), ("amount_out", 20, 8), ("slippage_actual", 10, 4)),
    "positions": (("size", 20, 8), ("entry_price", 20, 8), ("current_price", 20, 8), ("stop_loss", 20, 8),
                  ("take_profit", 20, 8)),
}
MONEY_REFUSED = "money must be decimal text that fits"


def money_text_ok_sql(column: str, precision: int, scale: int) -> str:
    """An SQLite expression true when ``column`` (``NEW.x``, or a column of a table) is NULL or
    well-formed money text: only digits, '.' and a leading '-'; one '.' at most, with digits on
    both sides; at most precision - scale digits before it and scale after it."""
    decimals = f"(CASE WHEN instr({column}, '.') > 0 THEN length({column}) - instr({column}, '.') ELSE 0 END)"
    whole = f"(length({column}) - ({column} GLOB '-*') - {decimals} - (instr({column}, '.') > 0))"
    return (f"({column} IS NULL OR (typeof({column}) = 'text' AND {column} NOT GLOB '*[^0-9.-]*' "
            f"AND {column} NOT GLOB '?*-*' AND {column} NOT GLOB '*.*.*' AND {column} NOT GLOB '*.' "
            f"AND {column} NOT GLOB '.*' AND {column} NOT GLOB '-.*' "
            f"AND {whole} BETWEEN 1 AND {precision - scale} AND {decimals} <= {scale}))")


def money_trigger_sql(dialect: str) -> list[str]:
    if dialect != "sqlite":
        return []
    statements = []
    for table, columns in MONEY_COLUMNS.items():
        for column, precision, scale in columns:
            for event in ("insert", "update"):
                statements.append(
                    f"CREATE TRIGGER trg_{table}_{column}_money_{event} BEFORE {event.upper()} ON {table} "
                    f"FOR EACH ROW WHEN NOT {money_text_ok_sql('NEW.' + column, precision, scale)} "
                    f"BEGIN SELECT RAISE(ABORT, '{table}.{column}: {MONEY_REFUSED} "
                    f"NUMERIC({precision},{scale})'); END")
    return statements


def money_trigger_names(dialect: str) -> set[str]:
    if dialect != "sqlite":
        return set()
    return {f"trg_{table}_{column}_money_{event}" for table, columns in MONEY_COLUMNS.items()
            for column, _, _ in columns for event in ("insert", "update")}


def drop_money_trigger_sql(dialect: str) -> list[str]:
    return [f"DROP TRIGGER IF EXISTS {name}" for name in sorted(money_trigger_names(dialect))]
