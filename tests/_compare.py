"""Comparing two reports, or two computations of one report's parts: summaries, tables, figures;
and the path a report takes (pandas or push-down), as its arguments and the settings choose it.

Counts, money and text compare exactly; floats to a relative 1e-12 of the expected value
(PostgreSQL's exact NUMERIC means and percentile_cont can differ from numpy in the last bits).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping

import pandas as pd
import pytest


def assert_same_summary(expected: Mapping[str, object], actual: Mapping[str, object]) -> None:
    """The same keys in the same order, each value of the same type; floats to a relative 1e-12."""
    assert list(actual) == list(expected)
    for key, value in expected.items():
        found = actual[key]
        assert type(found) is type(value), key
        if isinstance(value, float):
            assert found == pytest.approx(value, rel=1e-12, abs=0), key
        else:
            assert found == value, key


def assert_same_tables(expected: Mapping[str, pd.DataFrame], actual: Mapping[str, pd.DataFrame]) -> None:
    """The same tables in the same order, each with the same index, columns and dtypes; floats to
    a relative 1e-12."""
    assert list(actual) == list(expected)
    for name, table in expected.items():
        pd.testing.assert_frame_equal(actual[name], table, check_exact=False, rtol=1e-12, atol=0,
                                      obj=f"table {name}")


def png(figure) -> bytes:
    """The figure drawn as PNG (two figures drawn alike give the same bytes)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def assert_path_follows_settings(build: Callable[..., object], settings_env) -> None:
    """build(**arguments) -> Report, on the small demo data on PostgreSQL: the path it records is
    the pushdown argument's, else SHIVX_PUSHDOWN's (auto: push down from SHIVX_PUSHDOWN_MIN_ROWS
    rows, as the planner estimates the window; default 200,000, far above the small demo's)."""
    def path(**arguments) -> str:
        return build(**arguments).parameters["path"]

    assert (path(pushdown=True), path(pushdown=False)) == ("pushdown", "pandas")
    assert path() == "pandas"  # auto, the default threshold
    settings_env.set(SHIVX_PUSHDOWN="auto", SHIVX_PUSHDOWN_MIN_ROWS="0")
    assert path() == "pushdown"
    settings_env.set(SHIVX_PUSHDOWN_MIN_ROWS=str(10**12))
    assert path() == "pandas"
    settings_env.set(SHIVX_PUSHDOWN="always")
    assert (path(), path(pushdown=False)) == ("pushdown", "pandas")
    settings_env.set(SHIVX_PUSHDOWN="never")
    assert (path(), path(pushdown=True)) == ("pandas", "pushdown")
