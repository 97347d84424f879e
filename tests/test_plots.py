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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_analysts_rcparams_do_not_change_the_house_style():
    house = [_png(f) for f in _figures()]
    with matplotlib.rc_context({"font.size": 20, "grid.alpha": 1.0, "axes.grid": False, "axes.titlesize": 13.2,
                                "figure.facecolor": "red", "axes.facecolor": "yellow"}):  # 13.2: quantstats' import
        built_there = _figures()
        assert [_png(f) for f in built_there] == house  # drawn there, too
    assert [_png(f) for f in built_there] == house
    figure = built_there[0]
    assert figure.get_facecolor() == (1.0, 1.0, 1.0, 1.0)
    assert figure.axes[0].title.get_fontsize() == pytest.approx(9 * 1.2)  # "large" of font.size 9


def _days(values) -> pd.DatetimeIndex:
    return pd.date_range("2024-01-01", periods=len(values), tz="UTC")


def test_underwater_labels_its_unit_and_shows_an_empty_window():
    falls = pd.Series([0.0, -1.5, -0.5], index=_days([0, 0, 0]))
    assert plots.underwater(falls).axes[0].get_ylabel() == "Drawdown (%)"
    usd = plots.underwater(falls, unit="USD", title="in USD")
    assert usd.axes[0].get_ylabel() == "Drawdown (USD)" and usd.axes[0].get_title() == "in USD"
    empty = plots.underwater(falls.iloc[:0])
    assert [t.get_text() for t in empty.axes[0].texts] == ["no data in this window"]


def test_rolling_figure_has_sharpe_over_volatility_or_says_the_window_is_short():
    index = _days(range(4))
    rolling = pd.DataFrame({"rolling_sharpe": pd.Series([None, None, 1.5, -0.5], index=index, dtype="Float64"),
                            "rolling_volatility": pd.Series([None, None, 10.0, 12.0], index=index, dtype="Float64")})
    figure = plots.rolling_sharpe_volatility(rolling, window_days=3)
    top, bottom = figure.axes
    assert top.get_ylabel().startswith("Sharpe") and bottom.get_ylabel() == "Volatility (USD, annualised)"
    assert figure.get_suptitle() == "Rolling 3-day Sharpe and volatility of daily realized P&L"
    short = plots.rolling_sharpe_volatility(rolling.iloc[:2], window_days=3)
    assert [t.get_text() for t in short.axes[0].texts] == ["fewer than 3 days in this window"]


def test_signed_heatmap_writes_each_month_and_centres_the_colours_on_zero():
    grid = pd.DataFrame({"Jan": [None, 5.0], "Feb": [-20.0, None]}, index=pd.Index([2023, 2024], name="year"))
    figure = plots.heatmap(grid, title="t", xlabel="Month", ylabel="Year", colorbar_label="USD",
                           signed=True, usd=True)
    ax = figure.axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["$5.00", "-$20.00"]  # no text in empty months
    assert ax.images[0].get_clim() == (-20.0, 20.0)
    counts = plots.heatmap(grid.fillna(0).abs(), title="t", xlabel="x", ylabel="y", colorbar_label="n")
    assert len(counts.axes[0].texts) == 0 and counts.axes[0].images[0].get_clim()[0] == 0
