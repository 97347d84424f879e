"""Notebooks run as tests (nbval) against a fresh, deterministic demo database.

Before the first notebook's kernel starts, a demo SQLite file is migrated and seeded (seed 0,
as_of 2025-10-28) in a temporary folder, and SHIVX_DATABASE_URL points the kernels at it.
"""

import os
import shutil
import tempfile
from pathlib import Path

NOTEBOOK_AS_OF = "2025-10-28"
_prepared: dict[str, str] = {}


def pytest_collection_modifyitems(session, config, items):
    if _prepared or not any(str(getattr(item, "path", "")).endswith(".ipynb") for item in items):
        return
    import shivx_analytics as sx

    folder = Path(tempfile.mkdtemp(prefix="shivx-notebooks-"))
    url = f"sqlite:///{folder / 'notebooks.db'}"
    sx.migrate(url)
    sx.generate_demo_data(url, seed=0, scale="small", as_of=NOTEBOOK_AS_OF)
    _prepared["folder"] = str(folder)
    os.environ["SHIVX_DATABASE_URL"] = url
    os.environ["SHIVX_AS_OF"] = NOTEBOOK_AS_OF
    os.environ.pop("MPLBACKEND", None)  # Agg in the environment would make figures vanish


def pytest_unconfigure(config):
    if _prepared:
        shutil.rmtree(_prepared["folder"], ignore_errors=True)
