"""money columns refuse what NUMERIC(p, s) would round (PostgreSQL)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 20:00:00

A NUMERIC(20,8) column rounds a value with more decimals on input (``UPDATE positions SET size =
0.123456789`` stores 0.12345679, half away from zero) before any CHECK constraint or trigger sees
it. Every money column becomes a domain over unconstrained numeric whose named constraints refuse
such a value and one out of the NUMERIC(p, s) range (types.money_domain_sql):

- shivx_money_20_8: positions' size, entry_price, current_price, stop_loss, take_profit; orders'
  amount_in, price, amount_out;
- shivx_money_10_4: orders.slippage_actual.

Every stored value is kept as it is (each fits its domain: the column held nothing else). The
materialized views of 0005 that read these columns are dropped and created again with 0005's SQL,
their grants put back. A downgrade makes the columns NUMERIC(p, s) again (exact: no value has
more decimals) and drops the domains. Why domains and not CHECK constraints: docs/money.md.

SQLite stores money as text, checked by revision 0006's triggers: nothing changes there.
"""
import importlib.util
from pathlib import Path
from typing import Sequence, Union

import sqlalchemy as sa

from alembic import op
from shivx_analytics.types import money_domain, money_domain_sql

revision: str = "0007"
down_revision: Union[str, Sequence[str], None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# The money columns at this revision: table -> ((column, precision, scale), ...).
MONEY_COLUMNS = {
    "positions": (("size", 20, 8), ("entry_price", 20, 8), ("current_price", 20, 8), ("stop_loss", 20, 8),
                  ("take_profit", 20, 8)),
    "orders": (("amount_in", 20, 8), ("price", 20, 8), ("amount_out", 20, 8), ("slippage_actual", 10, 4)),
}
DOMAINS = ((20, 8), (10, 4))
# 0005's views that read the money columns (a column a view reads cannot change its type).
DEPENDENT_VIEWS = ("mv_daily_trading_performance", "mv_user_statistics")


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for precision, scale in DOMAINS:
        op.execute(money_domain_sql(precision, scale))
    _retype(lambda precision, scale: money_domain(precision, scale))


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    _retype(lambda precision, scale: f"NUMERIC({precision}, {scale})")
    for precision, scale in DOMAINS:
        op.execute(f"DROP DOMAIN {money_domain(precision, scale)}")


def _retype(type_of) -> None:
    """Every money column to ``type_of(precision, scale)``, the dependent views set aside meanwhile."""
    grants = _view_grants()
    for name in DEPENDENT_VIEWS:
        op.execute(f"DROP MATERIALIZED VIEW {name}")
    for table, columns in MONEY_COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE {type_of(precision, scale)} "
                            f"USING {column}::{type_of(precision, scale)}" for column, precision, scale in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
    views = _views_0005()
    for name in DEPENDENT_VIEWS:
        query, key = views[name]
        op.execute(f"CREATE MATERIALIZED VIEW {name} AS {query}")
        op.execute(f"CREATE UNIQUE INDEX uq_{name} ON {name} ({', '.join(key)}) NULLS NOT DISTINCT")
    for name, grantee, privilege in grants:
        op.execute(f"GRANT {privilege} ON {name} TO {grantee}")


def _view_grants() -> list[tuple[str, str, str]]:
    """(view, grantee, privilege) of the dependent views' grants to roles other than their owner."""
    if op.get_context().as_sql:
        return []
    return [tuple(row) for row in op.get_bind().execute(sa.text(
        "SELECT c.relname, CASE WHEN g.grantee = 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END, "
        "g.privilege_type FROM pg_class c, aclexplode(c.relacl) g "
        "WHERE c.oid = ANY (CAST(:views AS regclass[])) AND g.grantee <> c.relowner"),
        {"views": list(DEPENDENT_VIEWS)}).all()]


def _views_0005() -> dict[str, tuple[str, list[str]]]:
    """0005's view definitions, as that revision wrote them (name -> (query, unique key))."""
    path = Path(__file__).with_name("0005_materialized_views.py")
    spec = importlib.util.spec_from_file_location("shivx_analytics_migration_0005", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VIEWS
