"""Money the column would round or cannot hold, written by plain SQL, is refused (issue 13, part 11).

PostgreSQL (revision 0007): every money column is of a domain over numeric whose named constraints
refuse a value with more decimals than the column's scale (NUMERIC(20,8) would round it, half away
from zero, before any CHECK saw it) and one out of its range. SQLite (revision 0006): triggers refuse
money text that is not a decimal that fits; text stored around them is refused when read, by the
models and by the loaders, naming the table, the column and the row. Every money column of every
table is attacked; the upgrade from 0006 keeps every value; the downgrade works.
"""

from __future__ import annotations

import uuid
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa
from _databases import POSTGRESQL_ONLY
from sqlmodel import Session, select

import shivx_analytics as sx
from alembic import command
from shivx_analytics import triggers
from shivx_analytics.db import alembic_config, create_engine, current_revision, head_revision, schema_problems
from shivx_analytics.models import Order, Position, metadata
from shivx_analytics.types import Money, StoredMoneyError, money_domain, money_domain_constraints

AS_OF = "2025-10-28"
KEYS = {"orders": "order_id", "positions": "position_id"}
# Every money column of the models: (table, column, precision, scale).
MONEY_COLUMNS = sorted((table.name, column.name, column.type.precision, column.type.scale)
                       for table in metadata.sorted_tables for column in table.columns
                       if isinstance(column.type, Money))
SQLITE_ONLY = pytest.mark.parametrize("backend", ["sqlite"])


def test_every_money_column_is_attacked():
    assert MONEY_COLUMNS == sorted((table, *column) for table, columns in triggers.MONEY_COLUMNS.items()
                                   for column in columns)
    assert len(MONEY_COLUMNS) == 9 and all(isinstance(c.type, Money) and c.type.domain for t in metadata.sorted_tables
                                           for c in t.columns if isinstance(c.type, Money))


def over_scale(precision: int, scale: int) -> str:
    """One decimal more than the column keeps (NUMERIC would round it)."""
    return "0." + "1" * (scale + 1)


def out_of_range(precision: int, scale: int) -> str:
    """10^(precision - scale): one integer digit too many."""
    return "1" + "0" * (precision - scale)


def exact_fit(precision: int, scale: int) -> str:
    """The largest value the column holds: every digit used."""
    return "9" * (precision - scale) + "." + "9" * scale


@pytest.fixture
def demo(db_url):
    """(engine, {table: key of a row whose money columns are all set}) on the small demo."""
    sx.generate_demo_data(db_url, seed=0, scale=300, as_of=AS_OF)
    engine = create_engine(db_url)
    keys = {}
    with engine.connect() as connection:
        for table, key in KEYS.items():
            set_all = " AND ".join(f"{column} IS NOT NULL" for t, column, _, _ in MONEY_COLUMNS if t == table)
            found = connection.exec_driver_sql(f"SELECT {key} FROM {table} WHERE {set_all} LIMIT 1").scalar_one()
            keys[table] = uuid.UUID(str(found))  # SQLite's raw SQL gives the stored 32 hex digits
    try:
        yield engine, keys
    finally:
        engine.dispose()


def _row(engine, table: str, key) -> str:
    return f"{KEYS[table]} = '{key.hex if engine.dialect.name == 'sqlite' else key}'"


def _refusal(engine, precision: int, scale: int, table: str, column: str, *, scale_error: bool) -> str:
    if engine.dialect.name == "sqlite":
        return f"{table}.{column}: money must be decimal text that fits NUMERIC.{precision},{scale}."
    names = list(money_domain_constraints(precision, scale))
    return f'domain {money_domain(precision, scale)} violates check constraint "{names[0 if scale_error else 1]}"'


@pytest.mark.parametrize("table,column,precision,scale", MONEY_COLUMNS)
def test_plain_sql_cannot_store_money_the_column_would_round_or_cannot_hold(backend, demo, table, column,
                                                                             precision, scale):
    engine, keys = demo
    where = _row(engine, table, keys[table])
    attacks = {over_scale(precision, scale): True, "-" + over_scale(precision, scale): True,
               "0." + "0" * scale + "5": True,  # what NUMERIC rounds half away from zero to the last place
               out_of_range(precision, scale): False, "-" + out_of_range(precision, scale): False}
    for value, scale_error in attacks.items():
        for literal in (value, f"'{value}'"):  # a numeric literal and text
            with pytest.raises(sa.exc.DatabaseError, match=_refusal(engine, precision, scale, table, column,
                                                                     scale_error=scale_error)):
                with engine.begin() as connection:
                    connection.exec_driver_sql(f"UPDATE {table} SET {column} = {literal} WHERE {where}")
    columns = [c["name"] for c in sa.inspect(engine).get_columns(table)]
    copied = ", ".join(f"'{over_scale(precision, scale)}'" if c == column else
                       f"'{uuid.uuid4().hex}'" if c == KEYS[table] else "NULL" if c == "transaction_signature"
                       else c for c in columns)
    with pytest.raises(sa.exc.DatabaseError, match=_refusal(engine, precision, scale, table, column, scale_error=True)):
        with engine.begin() as connection:  # INSERT ... SELECT, as a role with INSERT could
            connection.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) SELECT {copied} FROM {table} "
                                       f"WHERE {where}")
    # Exactly `scale` decimals, every digit used, is taken as it is (negative too where the column allows it)
    accepted = [exact_fit(precision, scale), "0." + "0" * (scale - 1) + "1"]
    if column == "slippage_actual":
        accepted.append("-" + exact_fit(precision, scale))
    for value in accepted:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE {table} SET {column} = '{value}' WHERE {where}")
        with Session(engine) as session:
            model = Order if table == "orders" else Position
            assert getattr(session.get(model, keys[table]), column) == Decimal(value)
    frame = (sx.load_orders if table == "orders" else sx.load_positions)(engine, money="decimal")
    if column in frame:
        stored = frame.loc[frame[KEYS[table]] == str(keys[table]), column].iloc[0]
        if column == "slippage_actual":  # a float column of the frames (basis points), not money
            assert stored == float(Decimal(accepted[-1])) and frame[column].dtype == "float64"
        else:
            assert stored == Decimal(accepted[-1]) and frame[column].dtype == pd.ArrowDtype(pa.decimal128(20, 8))


@POSTGRESQL_ONLY
def test_the_refusal_names_the_domain_and_its_constraint(backend, demo):
    engine, keys = demo
    with pytest.raises(sa.exc.IntegrityError) as raised:
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE positions SET size = 0.123456789 WHERE position_id = '{keys['positions']}'")
    assert raised.value.orig.diag.constraint_name == "shivx_money_20_8_at_most_8_decimals"
    assert raised.value.orig.diag.datatype_name == "shivx_money_20_8"


# SQLite: text stored around the triggers (before 0006, or with them dropped) ----------------------

STORED_BAD_TEXT = ["0.123456789", "1abc", "1e5", "+1", ".5", "1.", "1.500000000", "1234567890123", "1 ", "1１"]  # "1１": a full-width digit


@SQLITE_ONLY
@pytest.mark.parametrize("value", STORED_BAD_TEXT)
def test_sqlite_bad_stored_money_is_refused_on_reading_naming_row_and_column(backend, demo, value):
    engine, keys = demo
    with engine.begin() as connection:
        for statement in triggers.drop_money_trigger_sql("sqlite"):
            connection.exec_driver_sql(statement)
        connection.exec_driver_sql(f"UPDATE orders SET price = '{value}' WHERE {_row(engine, 'orders', keys['orders'])}")
        connection.exec_driver_sql(f"UPDATE positions SET stop_loss = '{value}' "
                                   f"WHERE {_row(engine, 'positions', keys['positions'])}")
    order, position = keys["orders"], keys["positions"]
    readings = {f"orders.price of row {order}": [lambda s: s.get(Order, order), lambda s: s.exec(select(Order)).all(),
                                                 lambda s: s.exec(select(Order.price)).all()],
                f"positions.stop_loss of row {position}": [lambda s: s.get(Position, position),
                                                           lambda s: s.exec(select(Position)).all()]}
    for where, reads in readings.items():
        for read in reads:
            with Session(engine) as session, pytest.raises(StoredMoneyError) as raised:
                read(session)
            assert str(raised.value) == (f"stored money value {value!r} of {where} is not a decimal that fits "
                                         "NUMERIC(20,8)")
    for money in ("float", "decimal"):
        for load, where in ((sx.load_orders, f"orders.price at order_id {order}"),
                            (sx.load_positions, f"positions.stop_loss at position_id {position}")):
            with pytest.raises(sx.frames.FrameDataError) as raised:
                load(engine, money=money)
            assert str(raised.value) == (f"{where}: stored money value {value!r} is not a decimal that fits "
                                         "NUMERIC(20,8)")
            chunks = load(engine, money=money, chunksize=50)
            with pytest.raises(sx.frames.FrameDataError, match=where):
                list(chunks)
    with engine.begin() as connection:  # the rows are fine again: read as before
        connection.exec_driver_sql(f"UPDATE orders SET price = '12.5' WHERE {_row(engine, 'orders', order)}")
        connection.exec_driver_sql(f"UPDATE positions SET stop_loss = NULL WHERE {_row(engine, 'positions', position)}")
    with Session(engine) as session:
        assert session.get(Order, order).price == Decimal("12.5")
    assert len(sx.load_positions(engine)) == len(sx.load_positions(engine, money="decimal"))


# Upgrade from 0006 with data, downgrade --------------------------------------------------------


def _money_text(engine) -> dict[str, list[tuple]]:
    """Every money value of every row, as the database writes it as text, by table."""
    found = {}
    with engine.connect() as connection:
        for table, key in KEYS.items():
            columns = [column for t, column, _, _ in MONEY_COLUMNS if t == table]
            found[table] = connection.exec_driver_sql(
                f"SELECT {key}, {', '.join(f'CAST({c} AS TEXT)' for c in columns)} FROM {table} ORDER BY {key}").all()
    return found


def _column_types(engine) -> dict[tuple[str, str], str]:
    inspector = sa.inspect(engine)
    return {(table, column): inspector.get_columns(table)[[c["name"] for c in inspector.get_columns(table)]
                                                          .index(column)]["type"].compile(dialect=engine.dialect)
            for table, column, _, _ in MONEY_COLUMNS}


def _views(engine) -> dict[str, list[tuple]]:
    if engine.dialect.name != "postgresql":
        return {}
    with engine.connect() as connection:
        return {name: connection.exec_driver_sql(f"SELECT * FROM {name} ORDER BY 1, 2").all()
                for name in ("mv_daily_trading_performance", "mv_user_statistics", "mv_daily_api_key_usage")}


@pytest.mark.slow
def test_upgrade_from_0006_keeps_every_value_and_the_downgrade_works(backend, fresh_url):
    config = alembic_config(fresh_url)
    command.upgrade(config, "0006")
    sx.generate_demo_data(fresh_url, seed=0, scale=300, as_of=AS_OF)
    engine = create_engine(fresh_url)
    try:
        if backend == "postgresql":
            with engine.begin() as connection:
                connection.exec_driver_sql("REFRESH MATERIALIZED VIEW mv_daily_trading_performance")
                connection.exec_driver_sql("GRANT SELECT ON mv_user_statistics TO PUBLIC")
                # what the domains will refuse, NUMERIC(20,8) still rounds here: the value kept is the rounded one
                connection.exec_driver_sql("UPDATE orders SET price = 0.123456785 WHERE order_id = "
                                           "(SELECT min(order_id::text)::uuid FROM orders)")
        values, views = _money_text(engine), _views(engine)
        frames = {name: load(engine, money="decimal") for name, load in (("orders", sx.load_orders),
                                                                          ("positions", sx.load_positions))}
        assert sum(len(rows) for rows in values.values()) > 100
        command.upgrade(config, "head")
        assert current_revision(fresh_url) == head_revision() and schema_problems(fresh_url) == []
        assert _money_text(engine) == values and _views(engine) == views
        for name, load in (("orders", sx.load_orders), ("positions", sx.load_positions)):
            pd.testing.assert_frame_equal(load(engine, money="decimal"), frames[name], check_exact=True)
            floats = load(engine)
            assert all(floats[c].dtype == "float64" for t, c, _, _ in MONEY_COLUMNS if t == name and c in floats)
        if backend == "postgresql":
            types = _column_types(engine)
            assert {types[(t, c)] for t, c, _, _ in MONEY_COLUMNS} == {"shivx_money_20_8", "shivx_money_10_4"}
            with engine.connect() as connection:
                grants = connection.exec_driver_sql(
                    "SELECT g.grantee, g.privilege_type FROM pg_class c, aclexplode(c.relacl) g "
                    "WHERE c.oid = 'mv_user_statistics'::regclass AND g.grantee <> c.relowner").all()
            assert grants == [(0, "SELECT")]  # PUBLIC's grant put back on the recreated view
        command.downgrade(config, "0006")
        assert current_revision(fresh_url) == "0006"
        assert _money_text(engine) == values and _views(engine) == views
        if backend == "postgresql":
            types = _column_types(engine)
            assert {types[(t, c)] for t, c, p, s in MONEY_COLUMNS} == {"NUMERIC(20, 8)", "NUMERIC(10, 4)"}
            with engine.connect() as connection:
                assert connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_type WHERE typname LIKE 'shivx_money%%'").scalar_one() == 0
            refused_before = schema_problems(fresh_url)  # the comparison sees columns without their domain
            assert any("modify_type" in problem and "'size'" in problem for problem in refused_before)
        command.upgrade(config, "head")
        assert schema_problems(fresh_url) == [] and _money_text(engine) == values
    finally:
        engine.dispose()


def test_offline_sql_creates_the_domains():
    config = alembic_config("postgresql://nobody@localhost/none")
    import contextlib
    import io

    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        command.upgrade(config, "0006:0007", sql=True)
    sql = output.getvalue()
    assert "CREATE DOMAIN shivx_money_20_8 AS numeric CONSTRAINT shivx_money_20_8_at_most_8_decimals" in sql
    assert "ALTER TABLE positions ALTER COLUMN size TYPE shivx_money_20_8" in sql
    assert "CREATE MATERIALIZED VIEW mv_user_statistics" in sql


@POSTGRESQL_ONLY
def test_models_built_with_create_all_get_the_domains(backend, fresh_url):
    engine = create_engine(fresh_url)
    try:
        metadata.create_all(engine)
        metadata.create_all(engine)  # the domains exist already: created once
        with pytest.raises(sa.exc.IntegrityError, match="shivx_money_10_4_at_most_4_decimals"):
            with engine.begin() as connection:
                connection.exec_driver_sql("CREATE TEMPORARY TABLE t (x shivx_money_10_4)")
                connection.exec_driver_sql("INSERT INTO t VALUES (0.12345)")
    finally:
        engine.dispose()


@POSTGRESQL_ONLY
@pytest.mark.slow
def test_db_check_reports_a_money_domain_constraint_dropped_and_repair_restores_it(backend, demo):
    from shivx_analytics.controls import control_problems, repair_controls

    engine, keys = demo
    with engine.begin() as connection:
        connection.exec_driver_sql("ALTER DOMAIN shivx_money_20_8 DROP CONSTRAINT shivx_money_20_8_at_most_8_decimals")
        connection.exec_driver_sql("ALTER DOMAIN shivx_money_10_4 DROP CONSTRAINT shivx_money_10_4_below_1e6")
        connection.exec_driver_sql("ALTER DOMAIN shivx_money_10_4 ADD CONSTRAINT shivx_money_10_4_below_1e6 "
                                   "CHECK (abs(VALUE) < 1e6) NOT VALID")
        assert sorted(control_problems(connection)) == [
            "money domain shivx_money_10_4: constraint shivx_money_10_4_below_1e6 is not validated "
            "(stored values unchecked)",
            "money domain shivx_money_20_8 lacks its constraint shivx_money_20_8_at_most_8_decimals "
            "(values it refuses can be stored)"]
        where = _row(engine, "positions", keys["positions"])
        connection.exec_driver_sql(f"UPDATE positions SET size = 0.123456789 WHERE {where}")  # stored, unrounded
    with pytest.raises(sa.exc.IntegrityError, match='column "size" of table "positions" contains values that violate'):
        with engine.begin() as connection:  # never repaired over a value the constraint refuses
            repair_controls(connection)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE positions SET size = 0.12345679 WHERE {where}")
        run = repair_controls(connection)
        assert "ALTER DOMAIN shivx_money_10_4 VALIDATE CONSTRAINT shivx_money_10_4_below_1e6" in run
        assert control_problems(connection) == []
    with pytest.raises(sa.exc.IntegrityError, match="shivx_money_20_8_at_most_8_decimals"):
        with engine.begin() as connection:
            connection.exec_driver_sql(f"UPDATE positions SET size = 0.123456789 WHERE {where}")
