"""Notebooks run as tests (nbval) against a fresh, deterministic demo database.

Before the first notebook's kernel starts, a demo SQLite file is migrated and seeded (seed 0,
as_of 2025-10-28) and SHIVX_DATABASE_URL and SHIVX_AS_OF point the kernels at it, so the
outputs are the same on every run.

The file is notebooks/nbval_demo.db (git ignores *.db), named by a URL relative to the
notebooks folder, where nbval starts the kernels: the reports' outputs show
``database: sqlite:///nbval_demo.db``, never a temporary path. It is removed afterwards.

Every notebook cell is marked ``slow`` (nbval's items take no marker from the notebook itself), so
``pytest -m "not slow"`` deselects them, and then no demo database is prepared.
"""

import os
from pathlib import Path

import pytest

NOTEBOOK_AS_OF = "2025-10-28"
DATABASE_NAME = "nbval_demo.db"
_prepared: dict[str, Path] = {}


def _files(database: Path) -> list[Path]:
    return [database, *(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm", "-journal"))]


def _is_notebook_cell(item) -> bool:
    return str(getattr(item, "path", "")).endswith(".ipynb")


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items):
    for item in items:
        if _is_notebook_cell(item):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(trylast=True)  # after `-m "not slow"` has deselected the notebooks: seed only for those that run
def pytest_collection_finish(session):
    if _prepared or not any(_is_notebook_cell(item) for item in session.items):
        return
    _prepared["database"] = prepare_demo_database()


def pytest_unconfigure(config):
    if _prepared:
        remove_demo_database(_prepared["database"])


def prepare_demo_database() -> Path:
    """Seed notebooks/nbval_demo.db afresh and point the kernels at it (also used by
    refresh_outputs.py, so stored outputs are made exactly as the tests run them)."""
    import shivx_analytics as sx

    database = Path(__file__).resolve().parent / DATABASE_NAME
    remove_demo_database(database)  # left by an interrupted run
    absolute = f"sqlite:///{database}"
    sx.migrate(absolute)
    sx.generate_demo_data(absolute, seed=0, scale="small", as_of=NOTEBOOK_AS_OF)
    os.environ["SHIVX_DATABASE_URL"] = f"sqlite:///{DATABASE_NAME}"  # relative to the kernels' folder
    os.environ["SHIVX_AS_OF"] = NOTEBOOK_AS_OF
    os.environ.pop("MPLBACKEND", None)  # Agg in the environment would make figures vanish
    return database


def remove_demo_database(database: Path) -> None:
    for file in _files(database):
        file.unlink(missing_ok=True)
