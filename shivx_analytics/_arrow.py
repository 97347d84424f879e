"""Arrow helpers of the loaders: raw driver columns -> the frames' exact types, derived money.

frames/ fetches Arrow from one of three places (DuckDB's postgres scanner, ADBC's SQLite
driver, or rows through a SQLAlchemy connection) and each hands over a column in its own
physical form. Every converter here accepts all of those forms and returns one Arrow type:

| kind  | accepts                                                 | returns                        |
|-------|---------------------------------------------------------|--------------------------------|
| id    | 32 hex chars (SQLite), dashed text, uuid / 16-byte binary | canonical dashed lowercase text |
| money | text ('123.45000000'), any decimal                      | decimal128(20, 8), exact        |
| float | text or decimal (slippage NUMERIC(10,4))                | float64, correctly rounded      |
| time  | text 'YYYY-MM-DD HH:MM:SS[.ffffff]' (naive UTC), timestamps | timestamp[us, UTC]          |
| json  | JSON text in any key order / spacing                    | compact text, keys sorted       |
| enum  | text                                                    | the text, checked against members |

Derived money is computed exactly (decimal128 when the operands' digits allow, decimal256
otherwise: a product of two NUMERIC(20,8) values can need 41 digits), rounded once, half to even,
to 8 places, as decimal128(38, 8) (DERIVED_MONEY_TYPE): every product or quotient of values the
database accepts fits (size x price < 1e24), so every valid row loads.

The money mode (domain.money) is applied last, in ``to_series``: "decimal" hands these exact
columns to pandas as they are; "float" converts each value to the nearest float64 (``to_float``:
Arrow's direct decimal -> float cast is one ulp off for some values).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shivx_analytics.domain.money import (
    ARROW_ROUND_MODE,
    DERIVED_MONEY_PRECISION,
    MONEY_PRECISION,
    MONEY_SCALE,
    MoneyMode,
)

MONEY_TYPE = pa.decimal128(MONEY_PRECISION, MONEY_SCALE)  # stored money: NUMERIC(20,8)
DERIVED_MONEY_TYPE = pa.decimal128(DERIVED_MONEY_PRECISION, MONEY_SCALE)  # products and quotients of it
TIME_TYPE = pa.timestamp("us", tz="UTC")
TEXT_TYPE = pa.large_string()  # what pandas' "string" dtype (pd.StringDtype("pyarrow")) holds


class FrameDataError(ValueError):
    """Stored data that cannot be represented exactly in a frame (never silently altered)."""

    position: int | None  # where in its batch, when known (frames names the row)


# Column kinds -------------------------------------------------------------------------------


def to_id(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """UUIDs as canonical dashed lowercase text (SQLite stores 32 hex chars, no dashes)."""
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), TEXT_TYPE)
    if pa.types.is_fixed_size_binary(array.type) or pa.types.is_binary(array.type):
        return pa.array([None if v is None else str(uuid.UUID(bytes=v)) for v in array.to_pylist()], TEXT_TYPE)
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    lengths = pc.utf8_length(array)
    shortest, longest = pc.min_max(lengths).values()
    if shortest.as_py() == longest.as_py() == 32:
        return _dash_hex32(array)
    if shortest.as_py() == longest.as_py() == 36:
        return pc.ascii_lower(array).cast(TEXT_TYPE)
    return pa.array([None if v is None else str(uuid.UUID(v)) for v in array.to_pylist()], TEXT_TYPE)


def to_money(column: pa.Array | pa.ChunkedArray, precision: int = MONEY_PRECISION, scale: int = MONEY_SCALE) -> pa.Array:
    """Exact decimal128(precision, scale) from text or any decimal; refuses to lose digits."""
    array = _plain(column)
    target = pa.decimal128(precision, scale)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), target)
    if pa.types.is_integer(array.type) or pa.types.is_floating(array.type):
        raise FrameDataError(f"money arrived as {array.type}, not as text or decimal: refusing an inexact conversion")
    text = pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    # Text the cast takes but the models refuse ('1e5', '+1', '.5', '1.', '1.500000000', 13 digits
    # with leading zeros): refused as types.stored_money refuses it, the cast refusing the rest.
    lax = text and pc.match_substring_regex(
        array, rf"[eE+]|^\.|-\.|\.$|^-?[0-9]{{{precision - scale + 1}}}|\.[0-9]{{{scale + 1}}}")
    try:
        if lax is not False and pc.any(lax).as_py():
            raise pa.ArrowInvalid("text the models refuse")
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        if not text:
            raise FrameDataError(f"a stored money value does not fit NUMERIC({precision},{scale}): {exc}") from None
        fits = pc.match_substring_regex(array, rf"^-?[0-9]{{1,{precision - scale}}}(\.[0-9]{{1,{scale}}})?$")
        position = pc.index(fits, False).as_py()
        error = FrameDataError(f"stored money value {array[position].as_py()!r} is not a decimal that fits "
                               f"NUMERIC({precision},{scale})")
        error.position = position  # frames names the table, column and row
        raise error from None


def to_float(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """float64 nearest to each decimal value, from decimal text or any decimal.

    Arrow's direct decimal -> float cast is one ulp off for some values, so a decimal goes
    through exact integer arithmetic instead (_decimal128_to_float), or its text where that
    cannot be exact; text is parsed correctly rounded.
    """
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), pa.float64())
    if pa.types.is_decimal128(array.type):
        return _decimal128_to_float(array)
    if pa.types.is_decimal(array.type):
        array = array.cast(pa.string())
    return array.cast(pa.float64())


_EXACT_FLOAT_INTEGER = 2 ** 53  # every integer below this is a float64


def _decimal128_to_float(array: pa.Array) -> pa.Array:
    """n / 10^scale from each value's unscaled integer n: a single IEEE division of two exactly
    represented numbers, so correctly rounded, where |n| < 2^53 (amounts below ~9e7 at 8 places);
    the other values through their text (about 15x slower)."""
    count, start = len(array), array.offset
    words = np.frombuffer(array.buffers()[1], dtype=np.int64, count=2 * (start + count))[2 * start:]
    low, high = words[0::2], words[1::2]
    exact = (high == (low >> 63)) & (low > -_EXACT_FLOAT_INTEGER) & (low < _EXACT_FLOAT_INTEGER)
    values = low.astype(np.float64) / float(10 ** array.type.scale)
    valid = pc.is_valid(array).to_numpy(zero_copy_only=False) if array.null_count else None
    rest = np.flatnonzero(~exact if valid is None else ~exact & valid)
    if len(rest):
        values[rest] = array.take(pa.array(rest)).cast(pa.string()).cast(pa.float64()).to_numpy(zero_copy_only=False)
    return pa.array(values, pa.float64(), mask=None if valid is None else ~valid)


def to_time(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """timestamp[us, UTC]; text and naive timestamps are UTC (how UTCDateTime stores them on SQLite)."""
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), TIME_TYPE)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return _text_time(array)
    if not pa.types.is_timestamp(array.type):
        raise FrameDataError(f"a timestamp arrived as {array.type}")
    if array.type.tz is None:
        return array.cast(pa.timestamp("us")).cast(TIME_TYPE)
    return array.cast(pa.timestamp("us", tz=array.type.tz)).cast(TIME_TYPE)


_ZONE_OFFSET = r"(Z|[+-]\d{2}(:?\d{2})?)$"  # '...+02:00', '...-0530', '...Z'


def _text_time(array: pa.Array) -> pa.Array:
    """SQLite's text timestamps: naive text is UTC (how UTCDateTime writes it); text with a zone
    offset (written by raw SQL, say '2025-10-01 12:00:00+02:00') names its instant unambiguously
    and is converted to UTC. Text that is neither raises FrameDataError with its ``position``."""
    try:
        return array.cast(pa.timestamp("us")).cast(TIME_TYPE)
    except pa.ArrowInvalid:
        pass
    with_offset = pc.fill_null(pc.match_substring_regex(array, _ZONE_OFFSET), False)
    missing = pa.scalar(None, array.type)
    try:
        aware = pc.if_else(with_offset, array, missing).cast(TIME_TYPE)
        naive = pc.if_else(with_offset, missing, array).cast(pa.timestamp("us")).cast(TIME_TYPE)
    except pa.ArrowInvalid:
        for position, (text, offset) in enumerate(zip(array.to_pylist(), with_offset.to_pylist())):
            try:
                pa.array([text], array.type).cast(TIME_TYPE if offset else pa.timestamp("us"))
            except pa.ArrowInvalid:
                error = FrameDataError(f"timestamp text {text!r} is not 'YYYY-MM-DD HH:MM:SS[.ffffff]' in UTC "
                                       "or with a zone offset (+HH:MM)")
                error.position = position
                raise error from None
        raise
    return pc.if_else(with_offset, aware, naive)


def to_text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """large_string: what pandas' "string" dtype holds (no second conversion later)."""
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), TEXT_TYPE)
    return array.cast(TEXT_TYPE)


def to_int(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), pa.int64())
    return array.cast(pa.int64())


def to_bool(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Booleans (SQLite stores 0/1)."""
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), pa.bool_())
    if pa.types.is_boolean(array.type):
        return array
    return pc.not_equal(array.cast(pa.int64()), 0)


def to_json(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """JSON documents as compact text with sorted keys: identical whatever the backend stored."""
    array = _plain(column)
    if pa.types.is_null(array.type) or array.null_count == len(array):
        return pa.nulls(len(array), TEXT_TYPE)
    return map_unique(array, canonical_json, TEXT_TYPE)


def to_enum(column: pa.Array | pa.ChunkedArray, members: Sequence[str], name: str) -> pa.Array:
    """The text, after checking that every value is a member (a CHECK constraint guarantees it)."""
    array = to_text(column)
    known = pc.is_in(array, value_set=pa.array(list(members), TEXT_TYPE))
    unknown = pc.and_(pc.invert(known), pc.is_valid(array))
    if pc.any(unknown).as_py():
        bad = sorted(set(pc.filter(array, unknown).to_pylist()))
        raise FrameDataError(f"{name} holds {bad}, not one of {list(members)}")
    return array


def canonical_json(text: str) -> str:
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_field(document: str | None, key: str) -> Any:
    """One top-level field of a JSON object text (None when absent or not an object)."""
    if document is None:
        return None
    value = json.loads(document)
    return value.get(key) if isinstance(value, dict) else None


def map_unique(array: pa.Array, function: Callable[[Any], Any], type_: pa.DataType) -> pa.Array:
    """Apply a Python function once per distinct value (JSON columns repeat a lot)."""
    encoded = pc.dictionary_encode(array)
    mapped = pa.array([function(v) for v in encoded.dictionary.to_pylist()], type_)
    return pc.take(mapped, encoded.indices)


# Exact money arithmetic ---------------------------------------------------------------------
# Arrow types a decimal product or quotient by the operands' declared precision: (20,8) x (20,8)
# needs 41 digits, past decimal128's 38. Each operand is first narrowed to the digits its values
# actually use, and the fast decimal128 kernels run whenever the result fits; decimal256 otherwise.


def money_product(a: pa.Array, b: pa.Array, name: str) -> pa.Array:
    """a x b computed exactly, rounded once half-even to 8 places, as decimal128(38, 8)."""
    a, b = _narrow(a), _narrow(b)
    if a.type.precision + b.type.precision + 1 > 38:
        a, b = a.cast(_wide(a)), b.cast(_wide(b))
    return _round_money(pc.multiply(a, b), name)


def money_difference_product(size: pa.Array, high: pa.Array, low: pa.Array, name: str) -> pa.Array:
    """size x (high - low), exact, rounded once half-even to 8 places."""
    return money_product(size, pc.subtract(high, low), name)


def money_quotient(numerator: pa.Array, denominator: pa.Array, name: str) -> pa.Array:
    """numerator / denominator rounded half-even to 8 places, exactly (both operands > 0).

    Arrow's decimal division truncates (at 10 or more decimals here). Rounding that truncated
    quotient half-even is exact except where its digits past the 8th read exactly 5000...0 while
    the true quotient goes on: the true value then lies above the tie and rounds up. Those are
    the rows where half-even rounded down at an apparent tie (half-up disagrees) and
    quotient x denominator != numerator.
    """
    if len(numerator) == 0:
        return pa.nulls(0, DERIVED_MONEY_TYPE)
    num, den = _narrow(numerator), _narrow(denominator)
    if num.type.precision + den.type.precision + 1 > 38:
        num, den = num.cast(_wide(num)), den.cast(_wide(den))
    quotient = pc.divide(num, den)
    rounded = pc.round(quotient, ndigits=MONEY_SCALE, round_mode=ARROW_ROUND_MODE)
    suspect = pc.not_equal(rounded, pc.round(quotient, ndigits=8, round_mode="half_up"))
    if pc.any(suspect).as_py():
        q, d, n = (pc.filter(x, suspect) for x in (quotient, den, num))
        q, d, n = q.cast(_wide(q)), d.cast(_wide(d)), n.cast(_wide(n))
        inexact = pc.not_equal(pc.multiply(q, d), n)
        fix = np.zeros(len(quotient), dtype=bool)
        fix[np.flatnonzero(suspect.to_numpy(zero_copy_only=False))[inexact.to_numpy(zero_copy_only=False)]] = True
        if fix.any():
            rounded = pc.if_else(pa.array(fix), pc.round(quotient, ndigits=8, round_mode="half_up"), rounded)
    return _fit_money(rounded, name)


def _narrow(array: pa.Array) -> pa.Array:
    """The same decimals with the smallest precision that holds them (scale kept)."""
    scale = array.type.scale
    largest = pc.max(pc.abs(array)).as_py()
    integer_digits = len(str(int(largest))) if largest else 1
    precision = max(integer_digits + scale, scale + 1)
    if precision >= array.type.precision:
        return array
    return array.cast(pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(precision, scale))


def _wide(array: pa.Array) -> pa.DataType:
    return pa.decimal256(array.type.precision, array.type.scale)


def _round_money(value: pa.Array, name: str) -> pa.Array:
    return _fit_money(pc.round(value, ndigits=MONEY_SCALE, round_mode=ARROW_ROUND_MODE), name)


def _fit_money(value: pa.Array, name: str) -> pa.Array:
    """``value`` (already rounded to 8 places) as DERIVED_MONEY_TYPE; never rounded silently."""
    try:
        return value.cast(DERIVED_MONEY_TYPE)
    except pa.ArrowInvalid:
        limit = Decimal(10) ** (DERIVED_MONEY_PRECISION - MONEY_SCALE)
        too_large = int(pc.sum(pc.greater_equal(pc.abs(value), pa.scalar(limit, value.type))).as_py() or 0)
        raise FrameDataError(
            f"{name} exceeds decimal128({DERIVED_MONEY_PRECISION}, {MONEY_SCALE}) in {too_large} row(s): frames "
            f"never round money silently; leave {name} out with columns=[...] to load the rest"
        ) from None


def scatter(length: int, mask: np.ndarray, values: pa.Array, type_: pa.DataType) -> pa.Array:
    """An array of ``length`` nulls with ``values`` placed where ``mask`` is true."""
    if not mask.any():
        return pa.nulls(length, type_)
    indices = np.full(length, -1, dtype=np.int64)
    indices[mask] = np.arange(int(mask.sum()))
    index_array = pa.array(indices, mask=indices < 0)
    return pc.take(values, index_array)


# Arrow -> pandas ----------------------------------------------------------------------------


def to_series(array: pa.Array, kind: str, categories: Sequence[str] = (),
              money: MoneyMode = MoneyMode.DECIMAL) -> pd.Series:
    """One typed column as a pandas Series with the frame dtype of its kind (money: of the mode)."""
    if kind == "enum":
        codes = pc.index_in(array, value_set=pa.array(list(categories), TEXT_TYPE))
        codes = pc.fill_null(codes, -1).to_numpy(zero_copy_only=False)
        return pd.Series(pd.Categorical.from_codes(codes, dtype=pd.CategoricalDtype(list(categories))))
    if kind == "money":
        if money is MoneyMode.FLOAT:
            return pd.Series(to_float(array).to_numpy(zero_copy_only=False), dtype="float64", copy=False)
        return pd.Series(pd.arrays.ArrowExtensionArray(_chunked(array)), copy=False)
    if kind in ("id", "text", "json"):
        return pd.Series(pd.arrays.ArrowStringArray(_chunked(array)), copy=False)
    if kind == "int":
        return pd.Series(array.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get))
    if kind == "bool":
        return pd.Series(array.to_pandas(types_mapper={pa.bool_(): pd.BooleanDtype()}.get))
    if kind == "time":
        return pd.Series(array.to_pandas(), dtype="datetime64[us, UTC]", copy=False)
    if kind == "float":
        return pd.Series(array.to_numpy(zero_copy_only=False), dtype="float64", copy=False)
    raise AssertionError(f"unknown column kind {kind!r}")


def _chunked(array: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return pa.chunked_array([array]) if isinstance(array, pa.Array) else array


def detach(arrays: dict[str, pa.Array], raw: pa.Table) -> dict[str, pa.Array]:
    """Copy the arrays that still share memory with ``raw``.

    A batch imported from a driver is released as a whole: one zero-copy column kept from it
    would keep every raw column of the batch alive (text timestamps, text money, ...).
    """
    spans = [(b.address, b.address + b.size) for column in raw.columns for chunk in column.chunks
             for b in chunk.buffers() if b is not None]
    if not spans:
        return arrays

    def shares(array: pa.Array) -> bool:
        return any(start <= b.address < end for b in array.buffers() if b is not None for start, end in spans)

    return {name: pa.concat_arrays([array]) if shares(array) else array for name, array in arrays.items()}


# Internals ----------------------------------------------------------------------------------


def _plain(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array without extension wrappers (opaque numeric, json, uuid)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if isinstance(column.type, pa.BaseExtensionType):
        column = column.storage
    return column


# 32 hex digits -> 8-4-4-4-12: five byte ranges copied at once through structured numpy views.
_HEX32 = np.dtype({"names": list("abcde"), "formats": ["V8", "V4", "V4", "V4", "V12"],
                   "offsets": [0, 8, 12, 16, 20], "itemsize": 32})
_DASHED = np.dtype({"names": list("abcde"), "formats": ["V8", "V4", "V4", "V4", "V12"],
                    "offsets": [0, 9, 14, 19, 24], "itemsize": 36})


def _dash_hex32(array: pa.Array) -> pa.Array:
    validity = None
    if array.null_count:
        validity = pc.is_valid(array).buffers()[1]
        array = pc.fill_null(array, "0" * 32)
    array = pc.ascii_lower(array)
    array = pa.concat_arrays([array]) if array.offset else array
    n = len(array)
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32, count=n + 1)
    start = int(offsets[0])
    if not np.array_equal(np.diff(offsets), np.full(n, 32, dtype=np.int32)):
        raise AssertionError("fixed-width hex ids expected")
    data = np.frombuffer(array.buffers()[2], dtype=np.uint8, count=32 * n, offset=start)
    out = np.full(36 * n, ord("-"), dtype=np.uint8)
    source, target = data.view(_HEX32), out.view(_DASHED)
    for field in "abcde":
        target[field] = source[field]
    new_offsets = np.arange(0, 36 * (n + 1), 36, dtype=np.int64)
    return pa.Array.from_buffers(TEXT_TYPE, n, [validity, pa.py_buffer(new_offsets), pa.py_buffer(out)])
