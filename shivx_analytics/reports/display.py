"""How a person reads a report: labels in words and values formatted by kind.

One function turns a key into a label (``label``) and one decides how a value reads
(``format_value`` for a single figure, ``format_column`` for a table column, which decides the
kind once per column). Display only: the exact values stay in ``Report.summary``, in
``Report.exact_tables`` and in the JSON and CSV exports. Money shows 2 decimals here, with the
exact figure in the cell's tooltip (``title``).
"""

from __future__ import annotations

import datetime as dt
import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import numpy as np
import pandas as pd

MISSING = "\u2014"  # em dash: what a reader sees for None, NaN, NA and NaT
CENT = Decimal("0.01")

# -- labels -------------------------------------------------------------------------------------

# Whole keys whose word-by-word label reads badly.
LABEL_OVERRIDES = {
    "pnl": "P&L",
    "pnl_pct": "P&L (%)",
    "sharpe": "Sharpe ratio",
    "sortino": "Sortino ratio",
    "calmar": "Calmar ratio",
    "break_even": "Break-even",
    "is_active": "Active",
    "audit_chain_ok": "Audit chain intact",
    "audit_chain_rows": "Audit chain rows checked",
    "fifo_problems": "FIFO problems",
    "as_of": "As of",
    "since": "Since",
    "until": "Until",
    "path": "Computed by",
}

# Single words with a fixed spelling (acronyms, symbols).
WORDS = {
    "pnl": "P&L", "usd": "USD", "id": "ID", "ids": "IDs", "fifo": "FIFO", "api": "API",
    "ip": "IP", "ips": "IPs", "url": "URL", "utc": "UTC", "cagr": "CAGR", "p50": "p50",
    "p90": "p90", "p95": "p95", "p99": "p99", "sql": "SQL", "mon": "Mon", "tue": "Tue",
    "wed": "Wed", "thu": "Thu", "fri": "Fri", "sat": "Sat", "sun": "Sun", "avg": "average",
}

# Unit words moved to a parenthesised suffix: max_drawdown_pct -> "Max drawdown (%)".
UNITS = {"pct": "%", "bps": "bps", "usd": "USD"}
# Duration words dropped from the label: the value itself reads "9 h 49 min".
DURATION_WORDS = {"seconds", "secs"}
# A trailing statistic moves to the front: slippage_bps_mean -> "Mean slippage (bps)".
LEADING_STATISTICS = {"mean": "mean", "median": "median", "max": "max", "min": "min",
                      "p50": "p50", "p90": "p90", "p95": "p95", "p99": "p99", "std": "std",
                      "total": "total", "count": "count"}


def label(key: object) -> str:
    """A key (snake_case, as in the summary and the tables) in words for a reader:
    realized_pnl -> "Realized P&L", max_drawdown_pct -> "Max drawdown (%)",
    slippage_bps_p95 -> "P95 slippage (bps)", user_id -> "User ID". Keys never seen before get
    the same rules; LABEL_OVERRIDES holds the few whole keys the rules spell badly."""
    text = str(key)
    if text in LABEL_OVERRIDES:
        return LABEL_OVERRIDES[text]
    parts = [p for p in text.strip("_").split("_") if p]
    if not parts or text != text.lower():  # already words ("Mon", "Total P&L"): keep as given
        return text
    unit = None
    words: list[str] = []
    for part in parts:
        if part in UNITS and unit is None and len(parts) > 1:
            unit = UNITS[part]
        elif part in DURATION_WORDS and len(parts) > 1:
            continue  # the value carries the unit ("2 min 5 s")
        else:
            words.append(part)
    if len(words) > 1 and words[-1] in LEADING_STATISTICS:
        words.insert(0, LEADING_STATISTICS[words.pop()])
    spelled = [WORDS.get(w, w) for w in words] or [unit or text]
    result = " ".join(spelled)
    result = result[0].upper() + result[1:]
    if unit is not None and words:
        result += f" ({unit})"
    return result


# -- kinds --------------------------------------------------------------------------------------

RATIO_NAMES = {"win_rate", "utilization", "fill_rate", "share", "rate", "peak_utilization"}
RATIO_SUFFIXES = ("_rate", "_share", "_utilization")
PRICE_NAMES = {"stop_loss", "take_profit"}
AMOUNT_WORDS = {"size", "tokens", "quantity", "qty", "amount"}
CALENDAR_WORDS = {"year", "month", "hour", "minute", "weekday", "week", "seq"}  # 2025, not "2,025"


def kind_of_key(key: object) -> str | None:
    """What a key's name says about its value: "pct" (already in percent), "ratio" (a share
    shown as percent), "duration" (seconds), "price", "amount" (token quantity), "id",
    "ordinal" (a year, hour or sequence number: no thousands separator), or None."""
    name = str(key).lower()
    words = set(name.split("_"))
    if name.endswith("_pct") or name == "pct":
        return "pct"
    if name in RATIO_NAMES or name.endswith(RATIO_SUFFIXES):
        return "ratio"
    if "seconds" in words:
        return "duration"
    if "price" in words or name in PRICE_NAMES:
        return "price"
    if words & AMOUNT_WORDS and "usd" not in words and "notional" not in words:
        return "amount"
    if name == "id" or name.endswith("_id"):
        return "id"
    if words & CALENDAR_WORDS or name.endswith("_seq"):
        return "ordinal"
    return None


# -- values -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Cell:
    """A formatted value: the text a reader sees, the exact value for the tooltip (or None),
    and whether it is a number (aligned right) and negative (coloured)."""

    text: str
    exact: str | None = None
    numeric: bool = False
    negative: bool = False

    def html(self, tag: str = "td") -> str:
        classes = ["num" if self.numeric else "text"]
        if self.negative:
            classes.append("neg")
        title = f' title="{html.escape(self.exact)}"' if self.exact and self.exact != self.text else ""
        return f'<{tag} class="{" ".join(classes)}"{title}>{html.escape(self.text)}</{tag}>'


def is_missing(value: Any) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, (float, np.floating)):
        return math.isnan(value)
    if isinstance(value, Decimal):
        return value.is_nan()
    if isinstance(value, (np.datetime64, np.timedelta64)):
        return bool(np.isnat(value))
    return False


def money(value: Decimal | float) -> Cell:
    """"$1,234.57", "-$4,320.10", "$0.00" (2 decimals, half up); the exact figure as tooltip."""
    exact = format(value, "f") if isinstance(value, Decimal) else repr(float(value))
    amount = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    if not amount.is_finite():
        return Cell(MISSING)
    rounded = amount.quantize(CENT, rounding=ROUND_HALF_UP)
    negative = rounded < 0  # -0.004 reads "$0.00", not "-$0.00"
    text = f"{'-' if negative else ''}${abs(rounded):,.2f}"
    return Cell(text, f"{exact} USD", numeric=True, negative=negative)


def number(value: float, *, decimals: int = 2) -> str:
    """2 decimals with thousands separators; below 1 in size, 3 significant digits (0.00566)."""
    if value == 0:
        return f"{0:.{decimals}f}"
    if abs(value) < 1:
        return f"{value:.3g}" if abs(value) >= 1e-4 else f"{value:.2e}"
    return f"{value:,.{decimals}f}"


def plain_decimal(value: Decimal, significant: int = 4) -> str:
    """A price or token quantity: at least the integer part, else ``significant`` digits
    (161,287; 385.09; 3.237; 0.005657); trailing zeros dropped."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    digits = max(significant - (value.adjusted() + 1), 0)
    text = f"{value:,.{digits}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def duration(seconds: float) -> str:
    """Seconds as a reader says it: "9 h 49 min", "2 min 5 s", "2.7 s", "3 d 4 h"."""
    if seconds < 0:
        return "-" + duration(-seconds)
    if seconds < 10:
        return f"{seconds:.1f} s" if seconds >= 0.1 or seconds == 0 else f"{seconds * 1000:.0f} ms"
    whole = int(round(seconds))
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    if minutes:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    return f"{secs} s"


def timestamp_text(value: pd.Timestamp, *, as_date: bool) -> str:
    value = pd.Timestamp(value)
    if value.tzinfo is not None:
        value = value.tz_convert("UTC")
    return value.strftime("%Y-%m-%d") if as_date else value.strftime("%Y-%m-%d %H:%M UTC")


def is_midnight(value: pd.Timestamp) -> bool:
    value = pd.Timestamp(value)
    if value.tzinfo is not None:
        value = value.tz_convert("UTC")
    return value == value.normalize()


UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def text_cell(value: str) -> Cell:
    """Text as is; a UUID shortened to its first 8 characters, the full id as tooltip."""
    if UUID.match(value):
        return Cell(value[:8], value)
    return Cell(value)


def user_cell(value: Any, usernames: Mapping[str, str]) -> Cell:
    """A user id as "alice (1a2b3c4d)", the full id as tooltip; an unknown id as its short form."""
    if is_missing(value):
        return Cell(MISSING)
    text = str(value)
    name = usernames.get(text)
    return Cell(f"{name} ({text[:8]})", text) if name else text_cell(text)


def format_value(value: Any, key: object = None, *, kind: str | None = None) -> Cell:
    """One figure for a reader, by its type and its key's name (see kind_of_key)."""
    if is_missing(value):
        return Cell(MISSING)
    kind = kind if kind is not None else kind_of_key(key)
    if isinstance(value, (bool, np.bool_)):
        return Cell("Yes" if value else "No")
    if isinstance(value, Decimal):
        if kind in ("price", "amount"):
            return Cell(plain_decimal(value), format(value, "f"), numeric=True, negative=value < 0)
        if kind == "pct":
            return Cell(f"{value:,.2f} %", format(value, "f"), numeric=True, negative=value < 0)
        return money(value)
    if isinstance(value, (int, np.integer)):
        if kind == "duration":
            return Cell(duration(float(value)), f"{int(value)} s", numeric=True)
        if kind == "ordinal":
            return Cell(str(int(value)), numeric=True)
        return Cell(f"{int(value):,}", numeric=True, negative=bool(value < 0))
    if isinstance(value, (float, np.floating)):
        value = float(value)
        if math.isinf(value):
            return Cell("\u221e" if value > 0 else "-\u221e", numeric=True)
        if kind == "pct":
            return Cell(f"{value:,.2f} %", repr(value), numeric=True, negative=value < 0)
        if kind == "ratio":
            return Cell(f"{value * 100:,.2f} %", repr(value), numeric=True, negative=value < 0)
        if kind == "duration":
            return Cell(duration(value), f"{value:g} s", numeric=True, negative=value < 0)
        if kind == "money":
            return money(value)
        return Cell(number(value), repr(value), numeric=True, negative=value < 0)
    if isinstance(value, (pd.Timestamp, dt.datetime, np.datetime64)):
        stamp = pd.Timestamp(value)
        return Cell(timestamp_text(stamp, as_date=is_midnight(stamp)), stamp.isoformat())
    if isinstance(value, dt.date):
        return Cell(value.isoformat())
    if isinstance(value, (pd.Timedelta, dt.timedelta, np.timedelta64)):
        return Cell(duration(pd.Timedelta(value).total_seconds()), str(pd.Timedelta(value)), numeric=True)
    if isinstance(value, (list, tuple, set, frozenset)):
        shown = [format_value(v, key).text for v in value]
        return Cell(", ".join(shown) if shown else MISSING)
    return text_cell(str(value))


# Units a stats table (statistic / value / unit) names, as the kind of its value.
STATS_UNITS = {"seconds": "duration", "usd": "money", "count": None, "ratio": None, "%": "pct",
               "percent": "pct", "bps": None}


def format_column(values: pd.Series, name: object, usernames: Mapping[str, str] | None = None) -> list[Cell]:
    """Every value of one table column, the kind decided once for the column: Decimals are
    money unless the name says price or token amount, timestamps are dates when every one is
    midnight UTC, names ending _pct, _rate, _share ... are percentages; a user_id column shows
    the username beside the short id when ``usernames`` knows it."""
    if name == "user_id" and usernames:
        return [user_cell(v, usernames) for v in values]
    kind = kind_of_key(name)
    dtype = values.dtype
    if isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        present = values.dropna()
        as_date = bool(len(present)) and all(is_midnight(v) for v in present)
        return [Cell(MISSING) if is_missing(v) else Cell(timestamp_text(v, as_date=as_date), pd.Timestamp(v).isoformat())
                for v in values]
    return [format_value(v, name, kind=kind) for v in values]


def format_stats_values(statistics: Sequence[object], values: Sequence[Any],
                        units: Sequence[object] | None) -> list[Cell]:
    """The value column of a statistic / value [/ unit] table: each value by its statistic's
    name and unit (seconds as a duration, USD as money, ratios by name)."""
    cells = []
    for i, (statistic, value) in enumerate(zip(statistics, values)):
        unit = None if units is None or is_missing(units[i]) else str(units[i]).lower()
        kind = STATS_UNITS.get(unit) if unit is not None else None
        cells.append(format_value(value, statistic, kind=kind or kind_of_key(statistic)))
    return cells
