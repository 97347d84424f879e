"""plots.py: the house style applies to its figures only, never to matplotlib's global rcParams."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import matplotlib
import numpy as np
import pandas as pd
import pytest

from shivx_analytics import plots

# Every rcParam as its repr, but "backend": unresolved, it is a sentinel object whose repr differs
# per process (and reading it through rcParams[...] would resolve it).
RCPARAMS = ("import json, matplotlib; print(json.dumps({k: repr(v) for k, v in "
            "sorted(dict.items(matplotlib.rcParams)) if k != 'backend'}))")


def _run(code: str) -> dict[str, str]:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_package_and_building_figures_leaves_global_rcparams_alone():
    fresh = _run(RCPARAMS)
    used = _run(f"""
        import io
        import pandas as pd
        import shivx_analytics
        from shivx_analytics import plots
        daily = pd.Series([1.0, -2.0, 3.0], index=pd.date_range("2024-01-01", periods=3, tz="UTC"))
        figure = plots.daily_pnl_bars(daily)
        figure.savefig(io.BytesIO(), format="png")
        {RCPARAMS}
    """)
    changed = {k: (fresh.get(k), used.get(k)) for k in fresh.keys() | used.keys() if fresh.get(k) != used.get(k)}
    assert changed == {}
    assert fresh["font.size"] == "10.0" and fresh["axes.grid"] == "False"  # matplotlib's defaults


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _figures():
    daily = pd.Series(np.arange(10.0) - 5, index=pd.date_range("2024-01-01", periods=10, tz="UTC"))
    return [plots.daily_pnl_bars(daily), plots.histogram(daily, title="t", xlabel="x (USD)"),
            plots.horizontal_bars(daily.reset_index(drop=True), title="t", xlabel="x (USD)")]


def test_the_analysts_rcparams_do_not_change_the_house_style():
    house = [_png(f) for f in _figures()]
    with matplotlib.rc_context({"font.size": 20, "grid.alpha": 1.0, "axes.grid": False,
                                "figure.facecolor": "red", "axes.facecolor": "yellow"}):
        built_there = _figures()
        assert [_png(f) for f in built_there] == house  # drawn there, too
    assert [_png(f) for f in built_there] == house
    figure = built_there[0]
    assert figure.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
    assert figure.axes[0].title.get_fontsize() == pytest.approx(9 * 1.2)  # "large" of font.size 9
