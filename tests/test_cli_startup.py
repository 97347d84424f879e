"""Fast start: `import shivx_analytics` and `shivx-analytics --help` load none of the heavy modules
(benchmarks/startup_benchmark.py measures the seconds; these check the behaviour behind them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import shivx_analytics as sx

pytestmark = pytest.mark.slow  # the whole file: docs/development.md, Testing

HEAVY = ("pandas", "matplotlib", "pyarrow", "numpy", "sqlalchemy.orm", "sqlmodel", "duckdb", "papermill")


def modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    runner = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)), file=sys.__stderr__)"
    result = subprocess.run([sys.executable, "-c", runner], capture_output=True, text=True, timeout=120)
    return set(json.loads(result.stderr.strip().splitlines()[-1]))


def test_importing_the_package_loads_neither_pandas_nor_matplotlib():
    loaded = modules_after("import shivx_analytics")
    assert not {name for name in HEAVY if name in loaded}, sorted(name for name in HEAVY if name in loaded)


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["report", "--help"], ["notebook", "run", "--help"]],
                         ids=" ".join)
def test_help_and_version_load_no_heavy_module(args):
    code = (f"import sys\nsys.argv = ['shivx-analytics', *{args!r}]\nfrom shivx_analytics.cli import main\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    assert exit.code in (0, None), exit.code\n")
    loaded = modules_after(code)
    assert "shivx_analytics.cli" in loaded
    assert not {name for name in (*HEAVY, "sqlalchemy", "shivx_analytics.db") if name in loaded}


def test_the_public_names_still_import_and_are_listed():
    from shivx_analytics import aggregates, load_orders, pnl_report

    assert load_orders is sx.load_orders and pnl_report is sx.pnl_report and aggregates is sx.aggregates
    assert set(sx.__all__) <= set(dir(sx))
    for name in sx.__all__:
        assert getattr(sx, name) is not None, name
    assert sx.db.mask_url("postgresql://u:pw@h/x") == "postgresql://u:***@h/x"  # submodules as attributes
    with pytest.raises(AttributeError, match="no attribute 'load_everything'"):
        sx.load_everything  # noqa: B018
