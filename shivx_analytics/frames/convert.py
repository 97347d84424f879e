"""Arrow conversion: raw batches to typed columns, sorted, chunked and handed to pandas.

Separate because it is the same for every transport: each yields raw Arrow tables of the fetched
columns, and these functions convert them (on two threads), add the derived columns, sort a whole
frame by time then id, and apply the money mode last (domain/money.py). docs/performance.md says
why the sort is done here rather than by the database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from shivx_analytics import _arrow
from shivx_analytics._arrow import FrameDataError
from shivx_analytics.domain.money import MoneyMode

from .schemas import _Column, _Frame


def _typed(frame: _Frame, raw: pa.Table, keep: list[str]) -> dict[str, pa.Array]:
    """One batch: every fetched column converted to its frame type, then the derived ones."""
    typed = {}
    for name in raw.column_names:
        try:
            typed[name] = _convert(raw.column(name), frame.column(name))
        except FrameDataError as exc:  # a value that cannot be converted: say where it is stored
            position = getattr(exc, "position", None)
            if position is None:
                raise
            row = (f"{frame.id} {_arrow.to_id(raw.column(frame.id).slice(position, 1))[0]}"
                   if frame.id in raw.column_names else f"row {position + 1} of its batch")
            raise FrameDataError(f"{frame.name}.{name} at {row}: {exc}") from None
    typed = _arrow.detach(typed, raw)
    for name in keep:
        column = frame.column(name)
        if column.derive is not None:
            typed[name] = column.derive(typed)
    kept = {name: typed[name] for name in keep}
    del raw, typed
    pa.default_memory_pool().release_unused()  # give the conversions' scratch memory back
    return kept


def _joined(batches: list[dict[str, pa.Array]]) -> dict[str, pa.Array | pa.ChunkedArray]:
    names = list(batches[0])
    return {name: batches[0][name] if len(batches) == 1 else pa.chunked_array([b.pop(name) for b in batches])
            for name in names}


def _in_order(frame: _Frame, batches: list[dict[str, pa.Array]]) -> dict[str, pa.Array | pa.ChunkedArray]:
    """The batches as one set of columns, sorted by the frame's time column, then its id."""
    columns = _joined(batches)
    keys = pa.table({"time": columns[frame.time], "id": columns[frame.id]})
    order = pc.sort_indices(keys, sort_keys=[("time", "ascending"), ("id", "ascending")])
    if np.array_equal(order.to_numpy(), np.arange(len(order))):
        return columns
    pool = pa.default_memory_pool()
    for name in list(columns):
        column = columns.pop(name)
        columns[name] = column.take(order)
        del column
        pool.release_unused()
    return columns


def _to_pandas(frame: _Frame, columns: dict[str, pa.Array | pa.ChunkedArray], output: list[str],
               money: MoneyMode) -> pd.DataFrame:
    """The typed columns as a DataFrame; the money mode is applied here, last, to money columns."""
    series = {}
    for name in output:
        column = frame.column(name)
        series[name] = _arrow.to_series(columns.pop(name), column.kind, column.categories, money)
    return pd.DataFrame(series)


def _ordered_map(function: Callable[[Any], Any], items: Iterable[Any], workers: int = 2) -> Generator[Any, None, None]:
    """function(item) for each item, in order, on ``workers`` threads (Arrow releases the GIL)."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="shivx-frames") as pool:
        pending: deque[Future[Any]] = deque()
        try:
            for item in items:
                pending.append(pool.submit(function, item))
                if len(pending) > workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()


def _empty(fetch: list[str]) -> pa.Table:
    return pa.table({name: pa.nulls(0) for name in fetch})


# A column kind's converter (_arrow.py); enums take their categories, any other kind is text.
_CONVERTERS: dict[str, Callable[[pa.ChunkedArray], pa.Array]] = {
    "id": _arrow.to_id, "money": _arrow.to_money, "float": _arrow.to_float, "time": _arrow.to_time,
    "int": _arrow.to_int, "bool": _arrow.to_bool, "json": _arrow.to_json,
}


def _convert(array: pa.ChunkedArray, column: _Column) -> pa.Array:
    if column.kind == "enum":
        return _arrow.to_enum(array, column.categories, column.name)
    return _CONVERTERS.get(column.kind, _arrow.to_text)(array)


def _rechunk(batches: Iterable[pa.Table], size: int) -> Generator[pa.Table, None, None]:
    """Tables of exactly ``size`` rows (the last one shorter) from batches of any size."""
    pending: list[pa.Table] = []
    count = 0
    for table in batches:
        if table.num_rows == 0:
            continue
        pending.append(table)
        count += table.num_rows
        while count >= size:
            joined = pa.concat_tables(pending) if len(pending) > 1 else pending[0]
            yield joined.slice(0, size)
            rest = joined.slice(size)
            pending, count = ([rest] if rest.num_rows else []), rest.num_rows
    if count:
        yield pa.concat_tables(pending) if len(pending) > 1 else pending[0]
