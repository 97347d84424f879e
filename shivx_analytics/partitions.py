"""Monthly range partitions of the audit log on PostgreSQL.

Migration 0004 makes ``security_audit_logs`` a table partitioned by range of ``timestamp``: one
partition per UTC calendar month, named ``security_audit_logs_yYYYYmMM``, plus
``security_audit_logs_default`` for rows of a month without a partition of its own. A partition
holds ``[first instant of the month, first instant of the next month)``.

The append-only guarantees hold on every partition, old and new: the row-level UPDATE / DELETE
triggers of the parent are cloned by PostgreSQL onto each partition (created or attached later
too); statement triggers are not cloned, so every partition gets its own refusals of TRUNCATE,
UPDATE and DELETE here. Row-level security
is on the parent, the only table the application and analytics roles are granted.

``ensure_partitions`` is idempotent and cron-friendly (``shivx-analytics db partitions --ahead N``).
When the default partition already holds rows of a month being created, they are moved into the
new partition in the same transaction (detach the default, create the month, move its rows,
attach the default again); rows are never changed, so the hash chain still verifies.
SQLite keeps one table: every function here is a no-op there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics.triggers import AUDIT_TABLE

CHAIN_APPEND_TRIGGER = f"trg_{AUDIT_TABLE}_chain_append"  # revision 0006 (triggers.chain_trigger_sql)

DEFAULT_PARTITION = f"{AUDIT_TABLE}_default"


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime | None  # None: the default partition
    upper: datetime | None
    rows: int | None = None  # planner estimate (pg_class.reltuples), None when never analyzed


def month_start(value: date | datetime) -> date:
    """The first day of the UTC month of ``value`` (an aware datetime is converted to UTC)."""
    if isinstance(value, datetime):
        value = value.astimezone(timezone.utc) if value.tzinfo else value
    return date(value.year, value.month, 1)


def add_months(month: date, count: int) -> date:
    index = month.year * 12 + month.month - 1 + count
    return date(index // 12, index % 12 + 1, 1)


def months_between(first: date, last: date) -> list[date]:
    """Every month start from ``first``'s month through ``last``'s month."""
    months, month = [], month_start(first)
    while month <= month_start(last):
        months.append(month)
        month = add_months(month, 1)
    return months


def is_partition_name(name: str) -> bool:
    """Whether ``name`` is one of the audit log's partitions (monthly or default)."""
    return name == DEFAULT_PARTITION or re.fullmatch(rf"{AUDIT_TABLE}_y\d{{4}}m\d{{2}}", name) is not None


def partition_name(month: date) -> str:
    return f"{AUDIT_TABLE}_y{month.year:04d}m{month.month:02d}"


def _bound(month: date) -> str:
    return f"{month.isoformat()} 00:00:00+00"


def guard_trigger_sql(partition: str) -> list[str]:
    """Statement-level refusals on one partition (PostgreSQL clones row triggers onto partitions,
    not statement triggers): TRUNCATE, and UPDATE / DELETE aimed at the partition itself, refused
    even when they match no row (the parent's statement triggers do the same for the parent)."""
    return [
        f"CREATE OR REPLACE TRIGGER trg_{partition}_no_truncate BEFORE TRUNCATE ON {partition} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_immutable()",
        f"CREATE OR REPLACE TRIGGER trg_{partition}_refuse_update BEFORE UPDATE ON {partition} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_refuse_statement()",
        f"CREATE OR REPLACE TRIGGER trg_{partition}_refuse_delete BEFORE DELETE ON {partition} "
        "FOR EACH STATEMENT EXECUTE FUNCTION shivx_audit_log_refuse_statement()",
    ]


def create_partition_sql(month: date) -> list[str]:
    name = partition_name(month)
    return [f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {AUDIT_TABLE} "
            f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(add_months(month, 1))}')",
            *guard_trigger_sql(name)]


def create_default_partition_sql() -> list[str]:
    return [f"CREATE TABLE IF NOT EXISTS {DEFAULT_PARTITION} PARTITION OF {AUDIT_TABLE} DEFAULT",
            *guard_trigger_sql(DEFAULT_PARTITION)]


def is_partitioned(connection: Connection) -> bool:
    if connection.dialect.name != "postgresql":
        return False
    return bool(connection.execute(sa.text(
        "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
        "WHERE c.relname = :table AND c.relnamespace = to_regnamespace(current_schema()))"),
        {"table": AUDIT_TABLE}).scalar())


def list_partitions(connection: Connection) -> list[Partition]:
    """The audit log's partitions in time order, the default one last ([] on SQLite)."""
    if not is_partitioned(connection):
        return []
    rows = connection.execute(sa.text(
        "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), c.reltuples "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = to_regclass(:table)"), {"table": AUDIT_TABLE}).all()
    found = []
    for name, bound, tuples in rows:
        rows_estimate = None if tuples is None or tuples < 0 else int(tuples)
        if bound == "DEFAULT":
            found.append(Partition(name, None, None, rows_estimate))
            continue
        lower, upper = (datetime.fromisoformat(part.split("'")[1]) for part in bound.split(" TO "))
        found.append(Partition(name, lower.astimezone(timezone.utc), upper.astimezone(timezone.utc), rows_estimate))
    return sorted(found, key=lambda p: (p.lower is None, p.lower or datetime.min.replace(tzinfo=timezone.utc)))


def ensure_partitions(connection: Connection, months: list[date]) -> list[str]:
    """Create the monthly partitions of ``months`` that do not exist yet (PostgreSQL; a no-op on
    SQLite or an unpartitioned log). Returns the names created, in time order. Rows of those
    months found in the default partition are moved into them. Runs in the caller's transaction."""
    if not months or not is_partitioned(connection):
        return []
    existing = {p.name for p in list_partitions(connection)}
    created = []
    for month in sorted(set(map(month_start, months))):
        name = partition_name(month)
        if name in existing:
            continue
        lower, upper = _bound(month), _bound(add_months(month, 1))
        stranded = connection.execute(sa.text(
            f'SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE "timestamp" >= CAST(:lower AS timestamptz) '
            f'AND "timestamp" < CAST(:upper AS timestamptz))'), {"lower": lower, "upper": upper}).scalar()
        if stranded:
            _move_out_of_default(connection.exec_driver_sql, month)
        else:
            for statement in create_partition_sql(month):
                connection.exec_driver_sql(statement)
        created.append(name)
        existing.add(name)
    return created


def _move_out_of_default(execute: Callable[[str], object], month: date) -> None:
    """Create ``month``'s partition while the default partition holds rows of that month."""
    lower, upper = _bound(month), _bound(add_months(month, 1))
    in_month = f"\"timestamp\" >= '{lower}' AND \"timestamp\" < '{upper}'"
    execute(f"ALTER TABLE {AUDIT_TABLE} DETACH PARTITION {DEFAULT_PARTITION}")
    for statement in create_partition_sql(month):
        execute(statement)
    # Detached, the default partition has lost the parent's cloned row triggers; with its own
    # DELETE guard set aside for this one statement, its rows of the month are moved (copied
    # through the parent into the new partition, then removed), all in the caller's transaction.
    # The rows are in the chain already: the chain's insert check (revision 0006), which would
    # refuse them as not extending the tip, is set aside for this one statement as well.
    chain_check = _has_trigger(execute, AUDIT_TABLE, CHAIN_APPEND_TRIGGER)
    if chain_check:
        execute(f"ALTER TABLE {AUDIT_TABLE} DISABLE TRIGGER {CHAIN_APPEND_TRIGGER}")
    execute(f"INSERT INTO {AUDIT_TABLE} SELECT * FROM {DEFAULT_PARTITION} WHERE {in_month}")
    if chain_check:
        execute(f"ALTER TABLE {AUDIT_TABLE} ENABLE TRIGGER {CHAIN_APPEND_TRIGGER}")
    execute(f"ALTER TABLE {DEFAULT_PARTITION} DISABLE TRIGGER trg_{DEFAULT_PARTITION}_refuse_delete")
    execute(f"DELETE FROM {DEFAULT_PARTITION} WHERE {in_month}")
    execute(f"ALTER TABLE {DEFAULT_PARTITION} ENABLE TRIGGER trg_{DEFAULT_PARTITION}_refuse_delete")
    execute(f"ALTER TABLE {AUDIT_TABLE} ATTACH PARTITION {DEFAULT_PARTITION} DEFAULT")


def _has_trigger(execute: Callable[[str], Any], table: str, trigger: str) -> bool:
    return execute(f"SELECT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = to_regclass('{table}') "
                   f"AND tgname = '{trigger}')").scalar()


def ensure_ahead(connection: Connection, ahead: int, now: datetime | None = None) -> list[str]:
    """Partitions for the current UTC month and the ``ahead`` months after it."""
    if ahead < 0:
        raise ValueError(f"ahead must be 0 or more months, not {ahead}")
    current = month_start(now or datetime.now(timezone.utc))
    return ensure_partitions(connection, [add_months(current, i) for i in range(ahead + 1)])


def ensure_covering(connection: Connection, first: datetime, last: datetime) -> list[str]:
    """Partitions for every month from ``first`` through ``last`` (writers of old data, the demo)."""
    return ensure_partitions(connection, months_between(month_start(first), month_start(last)))
