"""The four reports on the small demo dataset (seed 0): they run, their figures hold
together, and SQLite and PostgreSQL give the same JSON."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_reports import both_backends  # noqa: F401  (fixture)

from shivx_analytics.demo import generate_demo_data
from shivx_analytics.reports import api_usage_report, execution_report, pnl_report, security_report

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

AS_OF = "2025-10-28T00:00:00Z"
BUILDERS = (pnl_report, execution_report, api_usage_report, security_report)


@pytest.fixture
def demo_url(backend, db_url) -> str:
    generate_demo_data(db_url, seed=0, scale="small", as_of=AS_OF)
    return db_url


def test_the_four_reports_run_on_the_small_demo(demo_url, tmp_path):
    # Speed is measured by benchmarks/, not asserted here: tests check behaviour.
    reports = {build.__name__: build(demo_url, as_of=AS_OF) for build in BUILDERS}
    for name, report in reports.items():
        report.to_html(tmp_path / f"{name}.html")
        report.to_json(tmp_path / f"{name}.json")
        report.to_csv(tmp_path / name)
        assert "NaN" not in (tmp_path / f"{name}.json").read_text()

    pnl = reports["pnl_report"].summary
    assert pnl["total_pnl"] == pnl["realized_pnl"] + pnl["unrealized_pnl"]
    assert sum(reports["pnl_report"].exact_tables["daily"]["realized_pnl"], Decimal(0)) == pnl["realized_pnl"]
    assert pnl["closed_positions"] == pnl["wins"] + pnl["losses"] + pnl["break_even"]
    assert pnl["closed_positions"] > 0 and pnl["open_positions"] > 0
    # The demo's orders reconcile with its positions exactly (demo.py promises it).
    assert pnl["fifo_mismatches"] == 0 and pnl["fifo_problems"] == 0
    assert pnl["triggered_exits"] > 0

    execution = reports["execution_report"].summary
    assert execution["orders"] == sum(execution[s] for s in ("executed", "failed", "cancelled", "pending"))
    assert execution["orders"] > 0 and 0 < execution["fill_rate"] <= 1

    api = reports["api_usage_report"].summary
    assert api["keys"] >= api["active_keys"] > 0 and api["expired_active_keys"] > 0
    assert api["requests"] > 0

    security = reports["security_report"].summary
    assert security["failed_logins"] > 0 and security["suspicious_ips"] >= 1


def test_demo_reports_are_identical_on_sqlite_and_postgresql(both_backends):  # noqa: F811
    texts = []
    for url in both_backends:
        generate_demo_data(url, seed=0, scale="small", as_of=AS_OF)
        built = [build(url, as_of=AS_OF) for build in BUILDERS]
        for report in built:
            report.parameters.pop("database")
        texts.append([report.to_json() for report in built])
    for sqlite_json, postgresql_json in zip(*texts):
        assert sqlite_json == postgresql_json
