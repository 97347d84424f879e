"""Re-execute the notebooks and store their outputs, exactly as the tests (nbval) will see them.

    python notebooks/refresh_outputs.py                 # every notebook
    python notebooks/refresh_outputs.py 02_pnl.ipynb    # some of them

The outputs are what nbval compares, so they are made the way the tests run the notebooks:
notebooks/conftest.py's prepare_demo_database (a fresh demo SQLite file, seed 0, as_of
NOTEBOOK_AS_OF, SHIVX_DATABASE_URL and SHIVX_AS_OF pointing the kernels at it), the notebooks'
folder as the working directory. sanitize.cfg's replacements are applied to the stored outputs.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from conftest import prepare_demo_database, remove_demo_database  # noqa: E402  (one definition of the set-up)


def main(names: list[str]) -> int:
    notebooks = [HERE / name for name in names] if names else sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    database = prepare_demo_database()
    try:
        for path in notebooks:
            notebook = nbformat.read(path, as_version=4)
            NotebookClient(notebook, timeout=600, kernel_name="python3", record_timing=False,
                           resources={"metadata": {"path": str(HERE)}}).execute()
            nbformat.write(_sanitized(notebook), path)
            print(f"refreshed {path.name}")
    finally:
        remove_demo_database(database)
    return 0


def _sanitized(notebook):
    """Apply sanitize.cfg's replacements to the stored outputs (nbval applies them when it
    compares), so committed outputs show no temporary paths."""
    lines = [line.rstrip("\n") for line in (HERE / "sanitize.cfg").read_text().splitlines()]
    rules = [(re.compile(a[len("regex: "):]), b[len("replace: "):])
             for a, b in zip(lines, lines[1:]) if a.startswith("regex: ") and b.startswith("replace: ")]

    def clean(value):
        if isinstance(value, str):
            for pattern, replacement in rules:
                value = pattern.sub(replacement, value)
            return value
        if isinstance(value, list):
            return [clean(item) for item in value]
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        return value

    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = nbformat.from_dict(clean([dict(output) for output in cell.outputs]))
    return notebook


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
