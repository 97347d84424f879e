"""The demo's tables as columns: compact numpy arrays, each formatting a slice of rows as its column
type stores it (the text SQLite's executemany and PostgreSQL's COPY take), so a million rows never
exist as Python objects all at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shivx_analytics.demo.vocabulary import NULL_TIME

if TYPE_CHECKING:
    from shivx_analytics.demo.audit import _AuditChain


@dataclass
class _Table:
    """A table as columns (each formats a slice of rows for a dialect)."""

    name: str
    n_rows: int
    columns: dict[str, "_Column"]
    chain: "_AuditChain | None" = None  # the audit log's hash chain, linked as its rows are formatted

    def rows(self, start: int, stop: int, dialect: str) -> list[tuple]:
        return list(zip(*(column.values(start, stop, dialect) for column in self.columns.values())))


class _Column:
    def values(self, start: int, stop: int, dialect: str) -> list:
        raise NotImplementedError


@dataclass
class _Ids(_Column):
    """Uuid: 32 lowercase hex digits (sa.Uuid on SQLite; PostgreSQL's uuid input accepts them)."""

    hex_ids: np.ndarray  # S32
    index: np.ndarray | None = None  # rows -> hex_ids; -1 = NULL

    def values(self, start, stop, dialect):
        if self.index is None:
            return self.hex_ids[start:stop].astype("U32").tolist()
        index = self.index[start:stop]
        out = self.hex_ids[np.maximum(index, 0)].astype("U32").astype(object)
        out[index < 0] = None
        return out.tolist()


@dataclass
class _Money(_Column):
    """Money: positive fixed-point integers in units of 10**-scale, as text with exactly scale decimals."""

    units: np.ndarray  # int64; 0 = NULL (money columns hold positive values only)
    scale: int = 8

    def values(self, start, stop, dialect):
        units = self.units[start:stop]
        whole, fraction = np.divmod(units, 10**self.scale)
        pattern = f"{{}}.{{:0{self.scale}d}}"
        return [pattern.format(w, f) if u else None
                for u, w, f in zip(units.tolist(), whole.tolist(), fraction.tolist())]


@dataclass
class _Times(_Column):
    """UTCDateTime: 'YYYY-MM-DD HH:MM:SS.ffffff' naive UTC on SQLite, with '+00' for PostgreSQL."""

    micros: np.ndarray  # int64 microseconds since the epoch; NULL_TIME = NULL

    def values(self, start, stop, dialect):
        micros = self.micros[start:stop]
        null = micros == NULL_TIME
        text = np.datetime_as_string(np.where(null, 0, micros).astype("datetime64[us]"), unit="us")
        chars = np.ascontiguousarray(text.astype("S26")).view(np.uint8).reshape(-1, 26).copy()
        chars[:, 10] = ord(" ")
        if dialect == "postgresql":
            chars = np.hstack([chars, np.frombuffer(b"+00", np.uint8)[None, :].repeat(len(chars), 0)])
        out = chars.view(f"S{chars.shape[1]}").ravel().astype(f"U{chars.shape[1]}").astype(object)
        out[null] = None
        return out.tolist()


@dataclass
class _Codes(_Column):
    """Low-cardinality values (enums, tokens, JSON documents ...) as codes into a list; -1 = NULL."""

    codes: np.ndarray
    categories: Sequence[Any]

    def values(self, start, stop, dialect):
        lookup = np.array(list(self.categories) + [None], dtype=object)
        return lookup[self.codes[start:stop]].tolist()


@dataclass
class _Plain(_Column):
    """Integers, booleans, or a list of ready Python values."""

    data: np.ndarray | list

    def values(self, start, stop, dialect):
        chunk = self.data[start:stop]
        return chunk.tolist() if isinstance(chunk, np.ndarray) else list(chunk)


@dataclass
class _Computed(_Column):
    """Values computed per slice by a function of (start, stop)."""

    compute: Callable[[int, int], list]

    def values(self, start, stop, dialect):
        return self.compute(start, stop)
