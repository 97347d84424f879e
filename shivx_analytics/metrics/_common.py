"""Shared conventions of the metrics layer: exact money, floats-or-None, UTC windows, distributions.

Every metric module uses these; a formula or convention is defined here once.

- Money in: `pd.ArrowDtype(pa.decimal128(20, 8))` columns (what loaders return).
- Money out: `decimal.Decimal` quantized to 8 dp (ROUND_HALF_EVEN) for scalars, `MONEY_TOTAL`
  (decimal128(38, 8): sums may exceed 12 integer digits) for Series and frame columns.
  Sums are exact: pyarrow sums Arrow decimals as decimal256(76, 8); Python Decimal arithmetic
  runs at 60 significant digits (Python's default 28 is not enough).
- Ratios and statistics: Python `float`; a figure that cannot exist is `None`, never NaN.
- Time: aware UTC; a window is half-open `[since, until)`; a day is a UTC calendar day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shivx_analytics.domain.money import EXACT_PRECISION, round_money
from shivx_analytics.domain.window import instant

MONEY = pd.ArrowDtype(pa.decimal128(20, 8))
MONEY_TOTAL = pd.ArrowDtype(pa.decimal128(38, 8))
PRECISION = EXACT_PRECISION  # 60 decimal digits for intermediate Python arithmetic: far beyond any sum we make
DAY = pd.Timedelta(days=1)
_EXACT_SCALE = 8


# Money -------------------------------------------------------------------------------------


def to_decimal(value: object, name: str = "value") -> Decimal:
    """A money value as an exact Decimal (int, str and Decimal as is; float through its repr)."""
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise TypeError(f"{name} must be a number, got a bool ({value!r})")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            raise ValueError(f"{name}: cannot read {value!r} as a decimal number") from None
    raise TypeError(f"{name} must be Decimal, int, str or float, got {type(value).__name__}")


def quantize(value: object) -> Decimal:
    """Decimal rounded ROUND_HALF_EVEN to 8 decimal places (domain.money.round_money); never -0."""
    result = round_money(to_decimal(value))
    return result if result else result.copy_abs()


ZERO = quantize(0)


def money_sum(values: pd.Series | Sequence[object]) -> Decimal:
    """Exact sum of money values (nulls skipped) as an 8 dp Decimal; 0 when there are none.

    Arrow decimal columns are summed by pyarrow on decimal256; Python values at 60 digits.
    """
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.ArrowDtype):
        total = pc.sum(_exact_array(values)).as_py()
        return quantize(0 if total is None else total)
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return quantize(sum((_money_value(v) for v in values if not _is_null(v)), Decimal(0)))


def money_sum_by(frame: pd.DataFrame, by: str | list[str], value: str) -> pd.Series:
    """Exact sum of the money column `value` per group of `by` (nulls in `value` skipped).

    Returns a MONEY_TOTAL Series indexed by the group keys (a null key is a group of its own),
    in sorted key order.
    """
    keys = [by] if isinstance(by, str) else list(by)
    data = {key: _key_array(frame[key]) for key in keys}
    data[value] = _exact_array(frame[value])
    grouped = pa.table(data).group_by(keys).aggregate([(value, "sum")]).to_pandas()
    sums = [ZERO if total is None else quantize(total) for total in grouped[f"{value}_sum"]]
    if len(keys) == 1:
        index = pd.Index(grouped[keys[0]], name=keys[0])
    else:
        index = pd.MultiIndex.from_frame(grouped[keys])
    result = pd.Series(sums, index=index, dtype=MONEY_TOTAL, name=value)
    return result.sort_index(na_position="last")


def money_mean(values: Sequence[Decimal]) -> Decimal | None:
    """Mean of Decimal values, computed at 60 digits and quantized once to 8 dp; None if empty."""
    if not values:
        return None
    with localcontext() as ctx:
        ctx.prec = PRECISION
        return quantize(sum(values, Decimal(0)) / len(values))


def money_series(values: Iterable[object], index: pd.Index, name: str) -> pd.Series:
    """A MONEY_TOTAL Series from Decimal-like values, each quantized to 8 dp."""
    return pd.Series([quantize(v) for v in values], index=index, dtype=MONEY_TOTAL, name=name)


def decimals(values: pd.Series, name: str) -> list[Decimal]:
    """The values of a money column as Python Decimals; a null is an error naming the column."""
    out = values.to_list()
    if any(_is_null(v) for v in out):
        raise ValueError(
            f"{name} has null values; money columns used by metrics must be filled "
            "(load the frame with shivx_analytics loaders, which compute them)"
        )
    return [_money_value(v) for v in out]


def _exact_array(values: pd.Series | Sequence[object]) -> pa.Array:
    """decimal256(76, s) array of money values, s >= 8 and large enough for every value."""
    if not isinstance(values, pd.Series) or values.dtype == object:
        exact = [None if _is_null(v) else _money_value(v) for v in values]
        scale = max([_EXACT_SCALE] + [-int(v.as_tuple().exponent) for v in exact if v is not None])
        return pa.array(exact, type=pa.decimal256(76, scale))
    array = pa.array(values)
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    if pa.types.is_null(array.type):
        return array.cast(pa.decimal256(76, _EXACT_SCALE))
    if not pa.types.is_decimal(array.type):
        raise TypeError(
            f"money values must be decimal (pd.ArrowDtype(pa.decimal128(20, 8)) or Decimal), "
            f"got {array.type}; floats are not exact money: load frames for metrics with money=\"decimal\""
        )
    return array.cast(pa.decimal256(76, max(array.type.scale, _EXACT_SCALE)))


def _is_null(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _money_value(value: object) -> Decimal:
    if isinstance(value, float):
        raise TypeError(f"money values must be decimal (Decimal, int or str), got the float "
                        f"{value!r}; floats are not exact money: load frames for metrics with money=\"decimal\"")
    return to_decimal(value)


def _key_array(values: pd.Series) -> pa.Array:
    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(object).where(values.notna(), None)
    return pa.array(values)


# Floats ------------------------------------------------------------------------------------


def float_or_none(value: object) -> float | None:
    """A float, or None for None / NA / NaN / infinity (a figure that cannot exist)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    result = float(value)  # type: ignore[arg-type]
    return result if math.isfinite(result) else None


def ratio(numerator: object, denominator: object) -> float | None:
    """numerator / denominator as a float; None when the denominator is 0 or missing."""
    if denominator is None or denominator is pd.NA or denominator == 0:
        return None
    if isinstance(numerator, Decimal) or isinstance(denominator, Decimal):
        with localcontext() as ctx:
            ctx.prec = PRECISION
            return float_or_none(to_decimal(numerator) / to_decimal(denominator))
    return float_or_none(float(numerator) / float(denominator))  # type: ignore[arg-type]


@dataclass(frozen=True)
class Distribution:
    """count, mean, median, 95th percentile (linear interpolation) and max of a float sample."""

    count: int
    mean: float | None
    median: float | None
    p95: float | None
    max: float | None


def floats(values: Iterable[object] | pd.Series) -> np.ndarray:
    """float64 array of numbers (Decimal, ArrowDtype decimal, nullable ints...); NA becomes NaN."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    if series.dtype == object:
        series = series.map(lambda v: np.nan if v is None or v is pd.NA else float(v))
    return series.astype("float64").to_numpy(dtype="float64", na_value=np.nan)


def distribution(values: Iterable[object] | pd.Series) -> Distribution:
    """Summary of the finite values of a float sample; NaN / NA are left out, None when empty."""
    array = floats(values)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return Distribution(0, None, None, None, None)
    return Distribution(
        count=int(array.size),
        mean=float_or_none(array.mean()),
        median=float_or_none(np.median(array)),
        p95=float_or_none(np.percentile(array, 95)),
        max=float_or_none(array.max()),
    )


def nullable_floats(values: Iterable[float | None], index: pd.Index, name: str) -> pd.Series:
    """A Float64 Series in which None is <NA> (frames show missing figures as NA, never NaN)."""
    return pd.Series(list(values), index=index, dtype="Float64", name=name)


# Time --------------------------------------------------------------------------------------


def timestamp(value: object, name: str) -> pd.Timestamp:
    """An aware UTC Timestamp of a window bound, read by the domain kernel's one parser
    (domain.window.instant: datetime / Timestamp / date / ISO 8601 text, naive means UTC)."""
    return pd.Timestamp(instant(value, name))


def optional_timestamp(value: object, name: str) -> pd.Timestamp | None:
    """timestamp(), letting None through (an open end of a window)."""
    return None if value is None else timestamp(value, name)


def in_window(times: pd.Series, since: object = None, until: object = None) -> np.ndarray:
    """Boolean mask of since <= t < until (a None bound is open); NaT is never inside."""
    since, until = optional_timestamp(since, "since"), optional_timestamp(until, "until")
    mask = times.notna().to_numpy(dtype=bool, copy=True)
    if since is not None:
        mask = mask & (times >= since).fillna(False).to_numpy(dtype=bool)
    if until is not None:
        mask = mask & (times < until).fillna(False).to_numpy(dtype=bool)
    return mask


def utc_day(times: pd.Series) -> pd.Series:
    """The UTC calendar day (midnight) of each timestamp."""
    return times.dt.tz_convert("UTC").dt.floor("D")


def day_index(since: object, until: object) -> pd.DatetimeIndex:
    """Every UTC calendar day that overlaps [since, until), as midnights; empty if until <= since."""
    since, until = timestamp(since, "since"), timestamp(until, "until")
    if until <= since:
        return pd.DatetimeIndex([], dtype="datetime64[us, UTC]", name="day")
    first = since.floor("D")
    last = (until - pd.Timedelta(microseconds=1)).floor("D")
    return pd.date_range(first, last, freq="D", unit="us", name="day")


def days_covering(times: pd.Series, since: object = None, until: object = None) -> pd.DatetimeIndex:
    """day_index of [since, until); an open bound is taken from the first / last of `times`."""
    since, until = optional_timestamp(since, "since"), optional_timestamp(until, "until")
    present = times.dropna()
    if since is None or until is None:
        if present.empty:
            return pd.DatetimeIndex([], dtype="datetime64[us, UTC]", name="day")
        since = present.min().floor("D") if since is None else since
        until = present.max().floor("D") + DAY if until is None else until
    return day_index(since, until)


def duration(value: object, name: str) -> pd.Timedelta:
    """A positive Timedelta from a Timedelta or a string such as "10min"."""
    try:
        result = pd.Timedelta(value)  # type: ignore[arg-type]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot read {value!r} as a duration such as '10min'") from exc
    if result is pd.NaT or result <= pd.Timedelta(0):
        raise ValueError(f"{name} must be a positive duration such as '10min', got {value!r}")
    return result


# Frames ------------------------------------------------------------------------------------


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Raise ValueError naming the missing columns of a frame (wrong frame passed)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{what} frame is missing column(s) {missing}; pass the frame returned by its loader "
            f"(has {list(frame.columns)})"
        )


def is_true(values: pd.Series) -> np.ndarray:
    """Boolean mask of values that are True (NA counts as not True)."""
    return values.eq(True).fillna(False).to_numpy(dtype=bool)


def is_false(values: pd.Series) -> np.ndarray:
    """Boolean mask of values that are False (NA counts as not False)."""
    return values.eq(False).fillna(False).to_numpy(dtype=bool)


def equals(values: pd.Series, value: str) -> np.ndarray:
    """Boolean mask of values equal to `value` (works on categorical, string and object columns)."""
    return values.astype(object).eq(value).fillna(False).to_numpy(dtype=bool)


def counts(values: Iterable[int], index: pd.Index, name: str) -> pd.Series:
    """An Int64 Series of counts."""
    return pd.Series(list(values), index=index, dtype="Int64", name=name)


def typed_frame(rows: Sequence[Sequence[Any]], dtypes: Mapping[str, Any]) -> pd.DataFrame:
    """A DataFrame from row tuples with one dtype per column (typed even when there are no rows)."""
    return pd.DataFrame({name: pd.Series([row[i] for row in rows], dtype=dtype)
                         for i, (name, dtype) in enumerate(dtypes.items())})
