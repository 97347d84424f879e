"""Execute a notebook with parameters (papermill) and export it as self-contained HTML.

An entry-point helper for `shivx-analytics notebook run`: the code cells are hidden, images are
embedded and nothing is loaded from a network, so the page opens offline.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from shivx_analytics.db import redact
from shivx_analytics.reports.base import write_atomic

TEMPLATES = Path(__file__).resolve().parent / "templates"


class NotebookFailed(RuntimeError):
    """A cell raised while the notebook ran; the message names the cell."""


def parse_parameters(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict; values stay strings (the notebook parses them)."""
    parameters: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key.strip().isidentifier():
            raise ValueError(f"parameter {pair!r} is not key=value with a Python identifier as key")
        parameters[key.strip()] = value
    return parameters


def run_notebook(notebook: str | os.PathLike, parameters: dict[str, Any], output_html: str | os.PathLike,
                 *, kernel_name: str = "python3", timeout: int = 600) -> Path:
    """Execute ``notebook`` with ``parameters`` and write the HTML (atomically) to ``output_html``."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(notebook)
    if not source.is_file():
        raise ValueError(f"notebook {str(source)!r} does not exist")
    environment_backend = os.environ.pop("MPLBACKEND", None)  # Agg would hide the figures
    try:
        with tempfile.TemporaryDirectory(prefix="shivx-notebook-") as scratch:
            executed = Path(scratch) / source.name
            try:
                papermill.execute_notebook(
                    str(source), str(executed), parameters=parameters, kernel_name=kernel_name,
                    cwd=str(source.parent), progress_bar=False, request_save_on_cell_execute=False,
                    execution_timeout=timeout,
                )
            except PapermillExecutionError as exc:
                # the cell's message may quote a parameter's secret (a database URL's password)
                message = redact(f"{source.name}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}",
                                 *(value for value in parameters.values() if isinstance(value, str)))
                raise NotebookFailed(message) from None
            html = export_html(nbformat.read(executed, as_version=4))
    finally:
        if environment_backend is not None:
            os.environ["MPLBACKEND"] = environment_backend
    target = Path(output_html)
    write_atomic(target, html.encode("utf-8"))
    return target


def export_html(notebook) -> str:
    """Self-contained HTML without code cells or network references."""
    from nbconvert import HTMLExporter

    # The lab template (its conf.json brings the inlined CSS) with our offline/index.html.j2 on top.
    exporter = HTMLExporter(template_name="lab", template_file="offline/index.html.j2",
                            extra_template_paths=[str(TEMPLATES)], exclude_input=True,
                            exclude_input_prompt=True, exclude_output_prompt=True, embed_images=True)
    body, _resources = exporter.from_notebook_node(notebook)
    return body
