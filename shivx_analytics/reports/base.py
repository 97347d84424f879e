"""The Report object: headline figures, tables and figures, shown in notebooks and exported.

Two views of the same tables: ``exact_tables`` (money as Decimals, as the metrics computed it) for
the JSON and CSV exports, and ``tables``, pandas-friendly copies whose money columns are float64
so that ``.cumsum()``, ``.describe()`` and ``.plot()`` work. The HTML page and the notebook view
are for reading (labels in words, money to the cent: reports/display.py); the exact figures are in
their "Exact values" appendix, in the JSON and in the CSV.

Exports are deterministic for a given database and as_of (byte-identical JSON and CSV; the HTML
but for its generated time) and atomic: a file appears whole or not at all. CSV cells that a
spreadsheet would run as a formula are neutralised (see ``csv_safe``).
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
import re
import tempfile
from collections.abc import Iterator, Mapping, MutableMapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .display import Cell, format_column, format_stats_values, format_value, is_missing, label

PNG_DPI = 100
HTML_MAX_ROWS = 20  # rows of a table shown in to_html; JSON and CSV carry every row
NOTEBOOK_MAX_ROWS = 10  # rows of a table shown in the notebook view (_repr_html_)


class Report:
    """A finished report. ``summary`` holds exact Decimals for money, floats for ratios, None
    for figures that cannot exist; ``exact_tables`` the DataFrames as built (money as Decimals);
    ``tables`` the same tables with money as float64 for pandas work; ``figures`` matplotlib
    Figures."""

    def __init__(self, name: str, title: str, summary: dict[str, Any],
                 tables: Mapping[str, pd.DataFrame] | None = None, figures: dict[str, Any] | None = None,
                 parameters: dict[str, Any] | None = None, notes: list[str] | None = None,
                 usernames: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.title = title
        self.summary = summary
        self.exact_tables: dict[str, pd.DataFrame] = dict(tables or {})
        self.figures = dict(figures or {})
        self.parameters = dict(parameters or {})
        self.notes = list(notes or [])
        self.usernames = dict(usernames or {})  # user_id -> username, shown beside ids (display only)
        self._float_tables = PandasTables(self)

    @property
    def tables(self) -> PandasTables:
        """The tables for pandas work: money (Decimal) columns as float64, everything else as
        built. Computed on first access, cached; assigning ``report.tables[name] = frame`` sets
        the exact table. Exact values: ``exact_tables``."""
        return self._float_tables

    @tables.setter
    def tables(self, tables: Mapping[str, pd.DataFrame]) -> None:
        self.exact_tables = dict(tables)

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={format_value(v, k).text}" for k, v in list(self.summary.items())[:6])
        return (f"<Report {self.name}: {shown}{', ...' if len(self.summary) > 6 else ''}; "
                f"{len(self.exact_tables)} tables, {len(self.figures)} figures>")

    def _repr_html_(self) -> str:
        """The notebook view: headline figures, parameters, each table's first rows in a
        collapsed section, the exact figures in a collapsed appendix (stable ids)."""
        parts = [f'<div class="shivx-report" id="shivx-{html.escape(self.name)}">', f"<style>{CSS}</style>",
                 f"<h3>{html.escape(self.title)}</h3>", _parameters_html(self.parameters),
                 _summary_html(self.summary)]
        for name, table in self.exact_tables.items():
            parts.append(f"<details><summary>{html.escape(label(name))} ({_rows(len(table))})</summary>"
                         f"{_table_html(table, NOTEBOOK_MAX_ROWS, self.usernames)}</details>")
        parts.append(_exact_html(self.summary))
        parts.append("</div>")
        return "\n".join(parts)

    def view(self, name: str, rows: int = NOTEBOOK_MAX_ROWS) -> TableView:
        """One table formatted for reading in a notebook (labels in words, money to the cent, at
        most ``rows`` rows); ``tables[name]`` is the same table for pandas work."""
        if name not in self.exact_tables:
            raise KeyError(f"report {self.name!r} has no table {name!r}; its tables: {', '.join(self.exact_tables)}")
        if isinstance(rows, bool) or not isinstance(rows, int) or rows < 1:
            raise ValueError(f"rows must be a positive whole number, got {rows!r}")
        return TableView(label(name), self.exact_tables[name], rows, self.usernames)

    # -- exports ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: money as strings, NaN/NA as None, keys in a stable order."""
        return {
            "report": self.name,
            "title": self.title,
            "parameters": {k: _jsonable(v) for k, v in self.parameters.items()},
            "summary": {k: _jsonable(v) for k, v in self.summary.items()},
            "tables": {name: _records(table) for name, table in self.exact_tables.items()},
            "notes": list(self.notes),
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON (written atomically to ``path`` when given); returns the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        if path is not None:
            write_atomic(Path(path), text.encode("utf-8"))
        return text

    def to_csv(self, directory: str | os.PathLike) -> list[Path]:
        """One CSV per table plus ``summary.csv`` in ``directory`` (exact values); returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        summary = pd.DataFrame({"figure": list(self.summary),
                                "value": [_csv_cell(v) for v in self.summary.values()]})
        for name, table in {"summary": summary, **self.exact_tables}.items():
            path = directory / f"{self.name}_{name}.csv"
            write_atomic(path, _csv_bytes(table))
            written.append(path)
        return written

    def to_html(self, path: str | os.PathLike | None = None, *, generated_at: dt.datetime | None = None) -> str:
        """One self-contained HTML page (figures embedded as PNG; no network needed)."""
        generated = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
        contents = [("headline", "Headline figures")]
        if self.notes:
            contents.append(("notes", "Notes"))
        figures = []
        for name, fig in self.figures.items():
            anchor = f"figure-{_anchor(name)}"
            contents.append((anchor, label(name)))
            figures.append(f'<figure id="{anchor}"><img alt="{html.escape(label(name))}" '
                           f'src="data:image/png;base64,{figure_png_base64(fig)}">'
                           f"<figcaption>{html.escape(label(name))}</figcaption></figure>")
        tables = []
        for name, table in self.exact_tables.items():
            anchor = f"table-{_anchor(name)}"
            contents.append((anchor, f"{label(name)} ({_rows(len(table))})"))
            tables.append(f'<section id="{anchor}"><h2>{html.escape(label(name))}</h2>'
                          f"{_table_html(table, HTML_MAX_ROWS, self.usernames)}</section>")
        contents.append(("exact-values", "Exact values"))
        toc = "".join(f'<li><a href="#{a}">{html.escape(text)}</a></li>' for a, text in contents)
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        page = HTML_TEMPLATE.format(
            css=CSS, title=html.escape(self.title), generated=generated,
            parameters=_parameters_html(self.parameters), toc=f"<nav class='toc'><ol>{toc}</ol></nav>",
            summary=_summary_html(self.summary), figures="\n".join(figures), tables="\n".join(tables),
            notes=f"<section id='notes'><h2>Notes</h2><ul class='notes'>{notes}</ul></section>" if notes else "",
            exact=_exact_html(self.summary, open_id="exact-values"),
        )
        if path is not None:
            write_atomic(Path(path), page.encode("utf-8"))
        return page


class TableView:
    """A report table as a reader sees it (Report.view): HTML in a notebook, text elsewhere."""

    def __init__(self, title: str, table: pd.DataFrame, rows: int, usernames: Mapping[str, str] | None = None) -> None:
        self.title, self.table, self.rows, self.usernames = title, table, rows, usernames

    def _repr_html_(self) -> str:
        return (f'<div class="shivx-report"><style>{CSS}</style><h4>{html.escape(self.title)}</h4>'
                f"{_table_html(self.table, self.rows, self.usernames)}</div>")

    def __repr__(self) -> str:
        frame = self.table.reset_index() if _has_named_index(self.table) else self.table
        shown = frame.head(self.rows)
        cells, columns = _table_cells(shown, self.usernames) if len(shown) and shown.shape[1] else ([], list(frame.columns))
        text = pd.DataFrame([[c.text for c in row] for row in cells], columns=[label(c) for c in columns])
        more = f"\n(showing {len(shown)} of {len(frame):,} rows)" if len(frame) > len(shown) else ""
        return f"{self.title}\n{text.to_string(index=False)}{more}"


class PandasTables(MutableMapping):
    """``Report.tables``: each exact table converted once (money -> float64) and cached for as
    long as the exact table is the same object."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._cache: dict[str, tuple[int, pd.DataFrame]] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
        exact = self._report.exact_tables[name]
        cached = self._cache.get(name)
        if cached is None or cached[0] != id(exact):
            cached = (id(exact), pandas_friendly(exact))
            self._cache[name] = cached
        return cached[1]

    def __setitem__(self, name: str, table: pd.DataFrame) -> None:
        self._report.exact_tables[name] = table

    def __delitem__(self, name: str) -> None:
        del self._report.exact_tables[name]
        self._cache.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._report.exact_tables)

    def __len__(self) -> int:
        return len(self._report.exact_tables)

    def __repr__(self) -> str:
        return f"<report tables (money as float64): {', '.join(self)}>"


def pandas_friendly(table: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``table`` whose Decimal columns (ArrowDtype decimals, or object columns of
    Decimals and other numbers such as a statistic / value table) are float64; timestamps,
    categoricals, integers and text untouched. For analysis and plots, not for exact sums."""
    frame = table.copy()
    for position in range(table.shape[1]):
        if _is_decimal_column(table.iloc[:, position]):
            frame.isetitem(position, _to_float(table.iloc[:, position]))  # type: ignore[arg-type]  # stubs omit Series
    if not isinstance(frame.index, pd.MultiIndex) and _is_decimal_column(frame.index.to_series()):
        frame.index = pd.Index(_to_float(frame.index.to_series()).to_numpy(), name=frame.index.name)
    return frame


def _is_decimal_column(values: pd.Series) -> bool:
    dtype = values.dtype
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        return pa.types.is_decimal(dtype.pyarrow_dtype)
    if not pd.api.types.is_object_dtype(dtype):
        return False
    present = [v for v in values if not is_missing(v)]
    return any(isinstance(v, Decimal) for v in present) and all(
        isinstance(v, (Decimal, int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
        for v in present)


def _to_float(values: pd.Series) -> pd.Series:
    if isinstance(values.dtype, pd.ArrowDtype):
        return values.astype("float64")
    return pd.Series([np.nan if is_missing(v) else float(v) for v in values], index=values.index,
                     dtype="float64", name=values.name)


CSS = """
.shivx-report, body.shivx { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1f2328; }
body.shivx { margin: 2em auto; max-width: 1120px; padding: 0 1.2em; background: #fff; line-height: 1.45; }
.shivx h1 { margin-bottom: 0.1em; } .shivx h2 { margin-top: 1.8em; border-bottom: 1px solid #d8dee4; padding-bottom: 0.2em; }
.shivx-report .meta, .shivx .meta { color: #59636e; font-size: 0.9em; }
.shivx-report .params { display: flex; flex-wrap: wrap; gap: 0.3em 1.4em; margin: 0.4em 0 1em; padding: 0;
  list-style: none; color: #59636e; font-size: 0.9em; }
.shivx-report .params b { color: #1f2328; font-weight: 600; }
.shivx-report .cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(165px, 1fr)); gap: 10px;
  margin: 0.6em 0 1.2em; }
.shivx-report .card { border: 1px solid #d8dee4; border-radius: 8px; padding: 8px 12px; background: #f6f8fa; }
.shivx-report .card .label { font-size: 0.78em; color: #59636e; text-transform: none; }
.shivx-report .card .value { font-size: 1.25em; font-weight: 600; margin-top: 2px; font-variant-numeric: tabular-nums; }
.shivx-report .neg, .shivx-report .card .value.neg { color: #b42318; }
.shivx-report .table-wrap { overflow-x: auto; margin: 0.4em 0 0.6em; }
.shivx-report table.data { border-collapse: collapse; font-size: 0.86em; font-variant-numeric: tabular-nums; }
.shivx-report table.data th, .shivx-report table.data td { padding: 4px 10px; border-bottom: 1px solid #e5e8eb;
  white-space: nowrap; }
.shivx-report table.data thead th { background: #f6f8fa; border-bottom: 2px solid #d8dee4; text-align: left; }
.shivx-report table.data tbody tr:nth-child(even) { background: #fbfcfd; }
.shivx-report .num, .shivx-report table.data .num { text-align: right; }
.shivx-report .text, .shivx-report table.data .text { text-align: left; }
.shivx-report .trimmed { color: #59636e; font-size: 0.85em; margin: 0 0 1em; }
.shivx-report details { margin: 0.4em 0; } .shivx-report details > summary { cursor: pointer; font-weight: 600; }
.shivx-report nav.toc { background: #f6f8fa; border: 1px solid #d8dee4; border-radius: 8px; padding: 0.5em 1em;
  font-size: 0.9em; }
.shivx-report nav.toc ol { columns: 2; margin: 0.3em 0; }
.shivx-report figure { margin: 1.2em 0; } .shivx-report figure img { max-width: 100%; border: 1px solid #eee; }
.shivx-report figcaption { color: #59636e; font-size: 0.9em; }
.shivx-report ul.notes li { margin-bottom: 0.4em; color: #3d444d; }
"""

HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{css}</style></head>
<body class="shivx"><div class="shivx-report">
<h1>{title}</h1>
<p class="meta">Generated {generated}</p>
{parameters}
{toc}
<h2 id="headline">Headline figures</h2>
{summary}
{notes}
{figures}
{tables}
<h2>Appendix</h2>
{exact}
</div></body></html>
"""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~_current_umask())  # mkstemp makes 0600; a report is for readers
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def figure_png_base64(figure) -> str:
    """A matplotlib Figure as base64 PNG (metadata stripped so bytes are stable)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _jsonable(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) or math.isinf(value) else float(value)
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if isinstance(value, (pd.Timedelta, dt.timedelta)):
        return pd.Timedelta(value).total_seconds()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value)


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    frame = table.reset_index() if _has_named_index(table) else table
    columns = [str(c) for c in frame.columns]
    return [{c: _jsonable(v) for c, v in zip(columns, row)} for row in frame.itertuples(index=False, name=None)]


def _has_named_index(table: pd.DataFrame) -> bool:
    return any(name is not None for name in table.index.names)


def _csv_cell(value: Any) -> Any:
    converted = _jsonable(value)
    return "" if converted is None else csv_safe(converted)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_safe(value: Any) -> Any:
    """A CSV cell a spreadsheet will not run as a formula (CSV injection): text starting with
    =, +, -, @, tab or CR gets a leading apostrophe, unless it is a plain number ("-12.5" stays a
    number). The JSON export keeps the text as is."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS) and not PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def _csv_bytes(table: pd.DataFrame) -> bytes:
    frame = table.reset_index() if _has_named_index(table) else table
    columns = [csv_safe(str(c)) for c in frame.columns]
    clean = pd.DataFrame({name: [_csv_cell(v) for v in frame[c]] for name, c in zip(columns, frame.columns)},
                         columns=columns)
    return clean.to_csv(index=False, lineterminator="\n").encode("utf-8")


# -- reading view (labels and formats: display.py) -------------------------------------------

def _anchor(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(name).lower()).strip("-") or "x"


def _rows(count: int) -> str:
    return f"{count:,} row{'' if count == 1 else 's'}"


def _summary_html(summary: Mapping[str, Any]) -> str:
    """The headline figures as a card grid, formatted for reading."""
    cards = []
    for key, value in summary.items():
        cell = format_value(value, key)
        title = f' title="{html.escape(cell.exact)}"' if cell.exact and cell.exact != cell.text else ""
        cards.append(f"<div class='card'><div class='label'>{html.escape(label(key))}</div>"
                     f"<div class='value{' neg' if cell.negative else ''}'{title}>{html.escape(cell.text)}</div></div>")
    return f"<div class='cards'>{''.join(cards)}</div>"


def _exact_html(summary: Mapping[str, Any], open_id: str | None = None) -> str:
    """The collapsed appendix with every headline figure exactly as exported (8 decimals)."""
    rows = "".join(f"<tr><th class='text'>{html.escape(label(k))}</th><td class='text'><code>{html.escape(str(k))}</code>"
                   f"</td><td class='num'>{html.escape(_exact_text(v))}</td></tr>" for k, v in summary.items())
    identity = f' id="{open_id}"' if open_id else ""
    return (f"<details class='exact'{identity}><summary>Exact values (as in the JSON and CSV exports)</summary>"
            f"<table class='data exact'><thead><tr><th>Figure</th><th>Key</th><th class='num'>Exact value</th></tr>"
            f"</thead><tbody>{rows}</tbody></table></details>")


def _exact_text(value: Any) -> str:
    converted = _jsonable(value)
    return converted if isinstance(converted, str) else json.dumps(converted, ensure_ascii=False)


def _parameters_html(parameters: Mapping[str, Any]) -> str:
    if not parameters:
        return ""
    shown = "".join(f"<li>{html.escape(label(k))}: <b>{html.escape(format_value(v, k).text)}</b></li>"
                    for k, v in parameters.items())
    return f"<ul class='params'>{shown}</ul>"


def _table_cells(frame: pd.DataFrame, usernames: Mapping[str, str] | None = None) -> tuple[list[list[Cell]], list[Any]]:
    """Formatted cells column by column (the kind decided per column; a statistic / value
    table formats each value by its statistic's name and unit)."""
    columns = list(frame.columns)
    if _is_stats_table(frame):
        statistics = list(frame["statistic"])
        units = list(frame["unit"]) if "unit" in frame.columns else None
        cells = {"statistic": [Cell(label(s)) for s in statistics],
                 "value": format_stats_values(statistics, list(frame["value"]), units)}
        if units is not None:  # the value carries its unit now
            columns.remove("unit")
        by_column = [cells.get(c) or format_column(frame[c], c, usernames) for c in columns]
    else:
        by_column = [format_column(frame[c], c, usernames) for c in columns]
    return [list(row) for row in zip(*by_column)], columns


def _is_stats_table(frame: pd.DataFrame) -> bool:
    """A statistic / value [/ unit] table (reports._common.stats_table)."""
    return list(frame.columns[:2]) == ["statistic", "value"]


def _table_html(table: pd.DataFrame, max_rows: int, usernames: Mapping[str, str] | None = None) -> str:
    """A table for reading: labels in words, values by kind, at most ``max_rows`` rows (the
    latest ones for a table indexed by time, else the first), with a line saying so."""
    by_time = isinstance(table.index, pd.DatetimeIndex) and table.index.is_monotonic_increasing
    frame = table.reset_index() if _has_named_index(table) else table
    if frame.shape[1] == 0:
        return "<p class='trimmed'>No columns.</p>"
    if len(frame) == 0:
        return "<p class='trimmed'>No rows.</p>"
    note = ""
    if len(frame) > max_rows and not _is_stats_table(frame):  # a statistic table is a summary: whole
        which = "the latest" if by_time else "the first"
        note = (f"<p class='trimmed'>Showing {which} {max_rows} of {len(frame):,} rows; the full table is "
                "in the CSV export (and the JSON).</p>")
        frame = frame.tail(max_rows) if by_time else frame.head(max_rows)
    rows, columns = _table_cells(frame, usernames)
    numeric = {c for c, column in zip(columns, zip(*rows)) if any(cell.numeric for cell in column)} if rows else set()
    head = "".join(f"<th class='{'num' if c in numeric else 'text'}'>{html.escape(label(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(cell.html() for cell in row) + "</tr>" for row in rows)
    return (f"<div class='table-wrap'><table class='data'><thead><tr>{head}</tr></thead><tbody>{body}</tbody>"
            f"</table></div>{note}")
