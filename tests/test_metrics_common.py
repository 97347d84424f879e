"""Shared metric conventions: exact money, floats-or-None, UTC windows."""

from __future__ import annotations

import math
from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from metrics_fixtures import ts

from shivx_analytics.metrics import _common as c


def test_quantize_rounds_half_even_to_8_places():
    assert c.quantize(Decimal("0.000000005")) == Decimal("0.00000000")
    assert c.quantize(Decimal("0.000000015")) == Decimal("0.00000002")
    assert c.quantize("-1.000000025") == Decimal("-1.00000002")
    assert c.quantize(3).as_tuple().exponent == -8


def test_quantize_never_returns_negative_zero():
    assert str(c.quantize(Decimal("-0.000000004"))) == "0E-8"


def test_money_sum_is_exact_beyond_the_default_28_digit_context():
    # 10^25 + 0.00000001 has 34 significant digits: Python's default context would round it.
    values = pd.Series([Decimal("10000000000000000000000000"), Decimal("0.00000001")],
                       dtype=c.MONEY_TOTAL)
    assert c.money_sum(values) == Decimal("10000000000000000000000000.00000001")


def test_money_sum_of_decimal_column_skips_nulls_and_is_zero_when_empty():
    values = pd.Series([Decimal("0.1"), None, Decimal("0.2")], dtype=c.MONEY)
    assert c.money_sum(values) == Decimal("0.30000000")  # float would give 0.30000000000000004
    assert c.money_sum(pd.Series([], dtype=c.MONEY)) == Decimal("0")
    assert c.money_sum([]) == Decimal("0")


def test_money_sum_refuses_floats():
    with pytest.raises(TypeError, match="decimal"):
        c.money_sum(pd.Series([0.1, 0.2]))


def test_money_sum_by_groups_exactly_and_keeps_null_keys():
    frame = pd.DataFrame({
        "k": pd.Series(["b", "a", None, "a"], dtype="string"),
        "v": pd.Series([Decimal("1.5"), Decimal("0.1"), Decimal("7"), Decimal("0.2")], dtype=c.MONEY),
    })
    sums = c.money_sum_by(frame, "k", "v")
    assert sums.dtype == c.MONEY_TOTAL
    assert sums.to_list()[:2] == [Decimal("0.3"), Decimal("1.5")]  # a, b; the null key last
    assert sums.to_list()[2] == Decimal("7")


def test_float_or_none_turns_missing_and_non_finite_into_none():
    assert c.float_or_none(float("nan")) is None
    assert c.float_or_none(pd.NA) is None
    assert c.float_or_none(float("inf")) is None
    assert c.float_or_none(Decimal("1.5")) == 1.5


def test_ratio_is_none_without_a_denominator():
    assert c.ratio(1, 0) is None
    assert c.ratio(Decimal("1"), Decimal("3")) == pytest.approx(1 / 3)


def test_distribution_ignores_nan_and_is_none_when_empty():
    stats = c.distribution([1.0, float("nan"), 3.0, None])
    assert (stats.count, stats.mean, stats.median, stats.max) == (2, 2.0, 2.0, 3.0)
    assert stats.p95 == pytest.approx(2.9)  # linear: 1 + 0.95 x (3 - 1)
    assert c.distribution([]) == c.Distribution(0, None, None, None, None)


def test_timestamp_treats_naive_as_utc_and_names_a_bad_argument():
    assert c.timestamp("2024-01-01", "since") == ts("2024-01-01")
    assert c.timestamp(pd.Timestamp("2024-01-01T05:00", tz="Etc/GMT-5"), "since") == ts("2024-01-01")
    with pytest.raises(ValueError, match="until"):
        c.timestamp("not a date", "until")


def test_day_index_covers_every_day_overlapping_the_half_open_window():
    days = c.day_index(ts("2024-01-01T12:00"), ts("2024-01-03T00:00"))
    assert list(days) == [ts("2024-01-01"), ts("2024-01-02")]  # until midnight: day 3 excluded
    assert list(c.day_index(ts("2024-01-01"), ts("2024-01-03T00:00:01")))[-1] == ts("2024-01-03")
    assert len(c.day_index(ts("2024-01-02"), ts("2024-01-01"))) == 0


def test_in_window_is_half_open_and_never_includes_nat():
    times = pd.Series([ts("2024-01-01"), ts("2024-01-02"), pd.NaT], dtype="datetime64[us, UTC]")
    assert c.in_window(times, ts("2024-01-01"), ts("2024-01-02")).tolist() == [True, False, False]
    assert c.in_window(times).tolist() == [True, True, False]


def test_money_columns_are_arrow_decimals():
    assert c.MONEY.pyarrow_dtype == pa.decimal128(20, 8)
    assert c.MONEY_TOTAL.pyarrow_dtype == pa.decimal128(38, 8)
    assert math.isclose(c.ratio(1, 4), 0.25)
