"""The reports' own statements prune the audit log's partitions (PostgreSQL): every statement a
report sends that reads the audit log is EXPLAINed as sent, and its plan reads only the
partitions of the report's window."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import shivx_analytics as sx
from shivx_analytics.db import create_engine

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

AS_OF = "2025-10-28T00:00:00Z"
SINCE, UNTIL = "2025-09-03T00:00:00Z", "2025-09-20T12:00:00Z"  # inside September


def _relations(plan: dict) -> set[str]:
    found, nodes = set(), [plan]
    while nodes:
        node = nodes.pop()
        if "Relation Name" in node:
            found.add(node["Relation Name"])
        nodes += node.get("Plans", [])
    return found


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("build", ["security_report", "api_usage_report", "pnl_report"])
def test_report_statements_read_only_their_windows_partitions(backend, db_url, build):
    sx.generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    engine = create_engine(db_url)
    sent: list[tuple[str, object]] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if "security_audit_logs" in statement and not statement.lstrip().upper().startswith("EXPLAIN"):
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        options = {"pushdown": True} | ({"verify_chain": False} if build == "security_report" else {})
        report = getattr(sx, build)(engine, since=SINCE, until=UNTIL, as_of=AS_OF, **options)
        assert report.parameters["path"] == "pushdown"
        sa.event.remove(engine, "before_cursor_execute", record)
        audit_statements = [(s, p) for s, p in sent if "FROM security_audit_logs" in s or "JOIN security_audit_logs" in s]
        if build == "pnl_report":  # reads no audit rows at all
            assert audit_statements == []
            return
        assert audit_statements, "the report sent no statement on the audit log"
        with engine.connect() as connection:
            for statement, parameters in audit_statements:
                plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters).scalar_one()
                partitions = {r for r in _relations(plan[0]["Plan"]) if r.startswith("security_audit_logs")}
                assert partitions == {"security_audit_logs_y2025m09"}, statement
    finally:
        if sa.event.contains(engine, "before_cursor_execute", record):
            sa.event.remove(engine, "before_cursor_execute", record)
        engine.dispose()
