"""The pure logic of benchmarks/report_benchmark.py: row selection, medians, ratios, the table.
Nothing is timed here (the script measures; tests check behaviour)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "report_benchmark.py"
spec = importlib.util.spec_from_file_location("report_benchmark", PATH)
assert spec is not None and spec.loader is not None
bench = importlib.util.module_from_spec(spec)
sys.modules.setdefault("report_benchmark", bench)  # dataclasses look their module up there
spec.loader.exec_module(bench)


def test_every_loader_in_both_modes_and_every_report_per_backend():
    rows = bench.all_rows(["sqlite", "postgresql"])
    assert len(rows) == 2 * (5 * 2 + 4)
    assert bench.Row("sqlite", "load_audit_logs", "decimal") in rows
    assert bench.Row("postgresql", "security_report", "-") in rows
    assert bench.Row("sqlite", "pnl_report", "-").tables == ("positions", "orders", "users")
    assert bench.Row("sqlite", "load_orders", "float").contenders() == ["ours", "floor", "read_sql"]
    assert bench.Row("sqlite", "pnl_report", "-").contenders(["read_sql"]) == ["ours", "floor"]


def test_only_takes_patterns_and_prefixes():
    rows = bench.all_rows(["sqlite", "postgresql"])
    keys = [r.key for r in bench.select_rows(rows, "postgresql/load_audit_logs/*")]
    assert keys == ["postgresql/load_audit_logs/float", "postgresql/load_audit_logs/decimal"]
    assert [r.key for r in bench.select_rows(rows, "sqlite/security_report")] == ["sqlite/security_report/-"]
    assert len(bench.select_rows(rows, "sqlite/load_*/decimal, postgresql/pnl_report")) == 6
    assert bench.select_rows(rows, None) == rows
    with pytest.raises(SystemExit, match="matches no row"):
        bench.select_rows(rows, "mysql/*")


def test_median_ratio_peak_and_the_table():
    loader = bench.Result(bench.Row("sqlite", "load_orders", "float"), {
        "ours": [{"seconds": 3.0, "peak_mb": 300.0, "frame_mb": 100.0, "rows": 10},
                 {"seconds": 1.0, "peak_mb": 250.0, "frame_mb": 100.0, "rows": 10},
                 {"seconds": 2.0, "peak_mb": 280.0, "frame_mb": 100.0, "rows": 10}],
        "floor": [{"seconds": 0.5, "peak_mb": 90.0}, {"seconds": 1.5, "peak_mb": 95.0}, {"seconds": 1.0, "peak_mb": 80.0}],
        "read_sql": [{"seconds": 40.0, "peak_mb": 900.0}],
    })
    assert loader.median("ours") == 2.0 and loader.median("floor") == 1.0 and loader.peak("ours") == 300.0
    assert bench.ratio(2.0, 1.0) == 2.0 and bench.ratio(None, 1.0) is None and bench.ratio(1.0, 0.0) is None
    failed = bench.Result(bench.Row("sqlite", "pnl_report", "-"), {"ours": [{"error": "ours timed out after 5 s"}]})
    assert failed.median("ours") is None and failed.error() == "ours timed out after 5 s"
    table = bench.markdown_table([loader, failed]).splitlines()
    assert table[2] == ("| sqlite | load_orders | float | 2.000 | 1.000 | 2.00x | 40.0 | 20.0x | 300 | 95 | 100 | "
                        "3.00x | 10 | - |")
    assert table[3].endswith("| - | - ERROR ours timed out after 5 s |")
    reports = [bench.Result(bench.Row("postgresql", name, "-"),
                            {"ours": [{"seconds": 4.0, "peak_mb": 500.0, "path": "pushdown"}],
                             "floor": [{"seconds": 1.0, "peak_mb": 50.0, "rows": 5, "frame_mb": 2.0}]})
               for name in bench.REPORTS]
    total = bench.markdown_table(reports).splitlines()[-1]
    assert total == "| postgresql | four reports | - | 16.0 | 4.000 | 4.00x | - | - | 500 | - | - | - | - | total |"
