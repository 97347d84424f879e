"""The Report object: headline figures, tables and figures, shown in notebooks and exported.

Exports are deterministic for a given database and as_of (byte-identical JSON and CSV) and
atomic: a file appears whole or not at all.
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import io
import json
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PNG_DPI = 100
HTML_MAX_ROWS = 500  # rows of a table shown in to_html; JSON and CSV carry every row


@dataclass
class Report:
    """A finished report. ``summary`` holds exact Decimals for money, floats for ratios, None
    for figures that cannot exist; ``tables`` are DataFrames; ``figures`` matplotlib Figures."""

    name: str
    title: str
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    # -- display ---------------------------------------------------------------------------
    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={_display(v)}" for k, v in list(self.summary.items())[:6])
        return (f"<Report {self.name}: {shown}{', ...' if len(self.summary) > 6 else ''}; "
                f"{len(self.tables)} tables, {len(self.figures)} figures>")

    def _repr_html_(self) -> str:
        """Compact notebook view: headline figures and the first rows of each table (stable ids)."""
        parts = [f'<div class="shivx-report" id="shivx-{html.escape(self.name)}">',
                 f"<h3>{html.escape(self.title)}</h3>", _parameters_html(self.parameters),
                 _summary_html(self.summary)]
        for name, table in self.tables.items():
            parts.append(f"<details><summary>{html.escape(name)} ({len(table)} rows)</summary>"
                         f"{_table_html(table.head(10))}</details>")
        parts.append("</div>")
        return "\n".join(parts)

    # -- exports ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: money as strings, NaN/NA as None, keys in a stable order."""
        return {
            "report": self.name,
            "title": self.title,
            "parameters": {k: _jsonable(v) for k, v in self.parameters.items()},
            "summary": {k: _jsonable(v) for k, v in self.summary.items()},
            "tables": {name: _records(table) for name, table in self.tables.items()},
            "notes": list(self.notes),
        }

    def to_json(self, path: str | os.PathLike | None = None) -> str:
        """The report as JSON (written atomically to ``path`` when given); returns the text."""
        text = json.dumps(self.to_dict(), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
        if path is not None:
            write_atomic(Path(path), text.encode("utf-8"))
        return text

    def to_csv(self, directory: str | os.PathLike) -> list[Path]:
        """One CSV per table plus ``summary.csv`` in ``directory``; returns the paths."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        summary = pd.DataFrame({"figure": list(self.summary),
                                "value": [_csv_cell(v) for v in self.summary.values()]})
        for name, table in {"summary": summary, **self.tables}.items():
            path = directory / f"{self.name}_{name}.csv"
            write_atomic(path, _csv_bytes(table))
            written.append(path)
        return written

    def to_html(self, path: str | os.PathLike | None = None, *, generated_at: dt.datetime | None = None) -> str:
        """One self-contained HTML page (figures embedded as PNG; no network needed)."""
        generated = (generated_at or dt.datetime.now(dt.timezone.utc)).strftime("%Y-%m-%d %H:%M:%S UTC")
        figures = "\n".join(
            f'<figure><img alt="{html.escape(name)}" src="data:image/png;base64,{figure_png_base64(fig)}">'
            f"<figcaption>{html.escape(name)}</figcaption></figure>"
            for name, fig in self.figures.items()
        )
        tables = "\n".join(f"<h2>{html.escape(name)}</h2>{_table_html(table, HTML_MAX_ROWS)}"
                           for name, table in self.tables.items())
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in self.notes)
        page = HTML_TEMPLATE.format(
            title=html.escape(self.title), generated=generated, parameters=_parameters_html(self.parameters),
            summary=_summary_html(self.summary), figures=figures, tables=tables,
            notes=f"<ul class='notes'>{notes}</ul>" if notes else "",
        )
        if path is not None:
            write_atomic(Path(path), page.encode("utf-8"))
        return page


HTML_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #1a1a1a; background: #fff; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 3px 8px; text-align: right; }}
th {{ background: #f2f2f2; }} td.text, th.text {{ text-align: left; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; border: 1px solid #eee; }}
.meta {{ color: #555; font-size: 0.9em; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="meta">Generated {generated}</p>
{parameters}
<h2>Headline figures</h2>
{summary}
{notes}
{figures}
{tables}
</body></html>
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
    return "" if converted is None else converted


def _csv_bytes(table: pd.DataFrame) -> bytes:
    frame = table.reset_index() if _has_named_index(table) else table
    clean = pd.DataFrame({str(c): [_csv_cell(v) for v in frame[c]] for c in frame.columns}, columns=[str(c) for c in frame.columns])
    return clean.to_csv(index=False, lineterminator="\n").encode("utf-8")


def _display(value: Any) -> str:
    converted = _jsonable(value)
    if isinstance(converted, float):
        return f"{converted:.4g}"
    return "None" if converted is None else str(converted)


def _summary_html(summary: Mapping[str, Any]) -> str:
    rows = "".join(f"<tr><th class='text'>{html.escape(str(k))}</th><td>{html.escape(_display(v))}</td></tr>"
                   for k, v in summary.items())
    return f"<table class='summary'>{rows}</table>"


def _parameters_html(parameters: Mapping[str, Any]) -> str:
    if not parameters:
        return ""
    shown = ", ".join(f"{html.escape(str(k))}: {html.escape(_display(v))}" for k, v in parameters.items())
    return f"<p class='meta'>{shown}</p>"


def _table_html(table: pd.DataFrame, max_rows: int | None = None) -> str:
    frame = table.reset_index() if _has_named_index(table) else table
    note = ""
    if max_rows is not None and len(frame) > max_rows:
        note = (f"<p class='meta'>First {max_rows} of {len(frame)} rows; the JSON and CSV exports "
                "carry every row.</p>")
        frame = frame.head(max_rows)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_display(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False, name=None)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
