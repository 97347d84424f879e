"""Writing the demo's tables: the write transaction, the empty-database check, bulk loading and
the audit log's partitions.

Rows go in with the driver's bulk path (sqlite3 executemany; PostgreSQL COPY, through a temporary
table where row-level security applies), BATCH_ROWS at a time, with each table's secondary indexes
dropped during the load and rebuilt after it, all in one transaction. The audit rows' hash chain is
linked as their batches are formatted (demo/audit.py); generate_demo_data (demo/seed.py) locks the
chain's tip before the load and stores the new tip after it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics import partitions
from shivx_analytics.demo.columns import _Table, _Times
from shivx_analytics.demo.vocabulary import NULL_TIME
from shivx_analytics.models.audit_chain import CHAIN_TABLE
from shivx_analytics.models.base import metadata

BATCH_ROWS = 20_000
SQLITE_BULK_CACHE_KIB = 512 * 1024  # page cache while loading (SQLite allocates it as needed)

TABLE_ORDER = ("users", "api_keys", "positions", "orders", "security_audit_logs")


def _refuse_unless_empty(connection: Connection) -> None:
    inspector = sa.inspect(connection)
    missing = [name for name in (*TABLE_ORDER, CHAIN_TABLE) if not inspector.has_table(name)]
    if missing:
        raise ValueError(f"the database has no {', '.join(missing)} table(s): run the migrations first "
                         "(sx.migrate(url) or `shivx-analytics db upgrade`)")
    held = {}
    for name in ("orders", "positions", "users", "api_keys", "security_audit_logs"):
        count = connection.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar_one()
        if count:
            held[name] = count
    if held:
        listing = ", ".join(f"{count:,} {name}" for name, count in held.items())
        raise ValueError(f"database already holds {listing}; seed an empty database (a new one, or downgrade "
                         "and upgrade the migrations to empty this one)")


def _partitions_for(connection: Connection, tables: Sequence[_Table]) -> None:
    """PostgreSQL: the audit log's monthly partitions for the months the rows fall in."""
    for table in tables:
        times = table.columns.get("timestamp") if table.name == "security_audit_logs" else None
        if isinstance(times, _Times) and table.n_rows:
            known = times.micros[times.micros != NULL_TIME]
            epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
            first, last = (epoch + timedelta(microseconds=int(v)) for v in (known.min(), known.max()))
            partitions.ensure_covering(connection, first, last)


def _write_tables(connection: Connection, tables: Sequence[_Table], *, progress: bool) -> None:
    from tqdm import tqdm

    dialect = connection.dialect.name
    for table in tables:
        _check_columns(table)
    with _bulk_load_settings(connection), \
            tqdm(total=sum(t.n_rows for t in tables), unit="rows", unit_scale=True, file=sys.stderr,
                 disable=not progress, desc="demo data") as bar:
        for table in tables:
            bar.set_description(table.name)
            with _indexes_rebuilt(connection, table.name):
                for start in range(0, table.n_rows, BATCH_ROWS):
                    stop = min(table.n_rows, start + BATCH_ROWS)
                    _insert_rows(connection, table.name, list(table.columns), table.rows(start, stop, dialect))
                    bar.update(stop - start)


@contextmanager
def _bulk_load_settings(connection: Connection) -> Iterator[None]:
    """SQLite: an explicit transaction and a page cache large enough not to spill mid-transaction."""
    if connection.dialect.name != "sqlite":
        yield
        return
    driver_connection = _driver_connection(connection)
    if not driver_connection.in_transaction:  # sqlite3 would otherwise autocommit the index DDL
        driver_connection.execute("BEGIN")
    (cache_size,) = driver_connection.execute("PRAGMA cache_size").fetchone()
    driver_connection.execute(f"PRAGMA cache_size = -{SQLITE_BULK_CACHE_KIB}")
    try:
        yield
    finally:
        driver_connection.execute(f"PRAGMA cache_size = {int(cache_size)}")


@contextmanager
def _indexes_rebuilt(connection: Connection, table: str) -> Iterator[None]:
    """Bulk load without the table's secondary indexes, then recreate them from their own definitions.

    Building an index over loaded rows is several times faster than updating it row by row.
    Primary keys, unique constraints and unique indexes stay: the audit log's unique
    (chain_seq, timestamp) index serves the chain's triggers, which look up the tip's row on
    every insert (SQLite) or statement (PostgreSQL); without it each lookup scans the table and
    the load grows with the square of the rows. Everything happens inside the transaction.
    """
    if connection.dialect.name == "sqlite":
        definitions = connection.exec_driver_sql(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL "
            "AND sql NOT LIKE 'CREATE UNIQUE %'",
            (table,)).all()
    else:  # indexes that back no constraint, on a table we own (DROP INDEX needs ownership)
        definitions = connection.exec_driver_sql(
            "SELECT i.indexname, replace(i.indexdef, ' ON ONLY ', ' ON ') FROM pg_indexes i "
            "JOIN pg_tables t ON t.schemaname = i.schemaname AND t.tablename = i.tablename "
            "WHERE i.schemaname = current_schema() AND i.tablename = %(table)s AND i.indexdef NOT LIKE 'CREATE UNIQUE %%' "
            "AND pg_has_role(current_user, t.tableowner, 'USAGE') AND NOT EXISTS ("
            "SELECT 1 FROM pg_constraint c WHERE c.conindid = "
            "(quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)", {"table": table}).all()
    for name, _ in definitions:
        connection.exec_driver_sql(f'DROP INDEX "{name}"')
    try:
        yield
    except BaseException:
        with suppress(Exception):  # restores them should the caller commit regardless
            for _, definition in definitions:
                connection.exec_driver_sql(definition)
        raise
    for _, definition in definitions:
        connection.exec_driver_sql(definition)


def _driver_connection(connection: Connection) -> Any:
    """The DBAPI connection (sqlite3 or psycopg) under ``connection``."""
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the demo's write connection was closed mid-transaction")
    return driver


def _insert_rows(connection: Connection, table: str, columns: list[str], rows: list[tuple]) -> None:
    """Bulk insert pre-formatted rows: executemany on sqlite3, COPY on PostgreSQL."""
    names = ", ".join(f'"{name}"' for name in columns)
    driver_connection = _driver_connection(connection)
    if connection.dialect.name == "sqlite":
        cursor = driver_connection.cursor()
        try:
            cursor.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})', rows)
        finally:
            cursor.close()
        return
    # COPY FROM is refused where row-level security applies (the audit log's policies, forced
    # on its owner too, when the owner is not a superuser): COPY into a temporary copy of the
    # table, then one INSERT ... SELECT, which the policies check like any insert.
    secured = connection.exec_driver_sql("SELECT row_security_active(%(t)s::regclass)", {"t": f'"{table}"'}).scalar_one()
    target = f'"shivx_seed_{table}"' if secured else f'"{table}"'
    with driver_connection.cursor() as cursor:
        if secured:
            cursor.execute(f'CREATE TEMPORARY TABLE {target} (LIKE "{table}" INCLUDING DEFAULTS) ON COMMIT DROP')
        with cursor.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        if secured:
            cursor.execute(f'INSERT INTO "{table}" ({names}) SELECT {names} FROM {target}')
            cursor.execute(f"DROP TABLE {target}")


def _check_columns(table: _Table) -> None:
    """Every column written exists; every column left out may be left out."""
    model_table = metadata.tables[table.name]  # the models' tables (shivx_analytics.models)
    unknown = set(table.columns) - set(model_table.columns.keys())
    required = {c.name for c in model_table.columns
                if not c.nullable and c.server_default is None and c.name not in table.columns}
    if unknown or required:
        raise RuntimeError(f"demo data for {table.name} is out of date with the model: "
                           f"unknown columns {sorted(unknown)}, missing required columns {sorted(required)}")
