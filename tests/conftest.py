"""Test databases on both backends.

SQLite always; PostgreSQL when SHIVX_TEST_POSTGRES_URL points at a server (any database on it:
tests create their own databases and drop them). With CI=true a missing PostgreSQL fails the
run instead of skipping.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from _databases import (  # noqa: E402
    BACKENDS,
    IN_CI,
    POSTGRES_URL,
    create_postgres_database,
    drop_postgres_database,
    engine_of,
    require_backend,
)
from sqlalchemy.engine import make_url

from shivx_analytics.config import get_settings
from shivx_analytics.db import migrate


def pytest_configure(config):
    if IN_CI and not POSTGRES_URL:
        raise pytest.UsageError("CI=true but SHIVX_TEST_POSTGRES_URL is not set: the PostgreSQL tests are required")


def pytest_terminal_summary(terminalreporter):
    """Say how many tests ran on each backend (the issues ask for these counts)."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            nodeid = getattr(report, "nodeid", "")
            backend = "notebooks (nbval)" if ".ipynb" in nodeid else "postgresql" if "[postgresql" in nodeid or "-postgresql" in nodeid else (
                "sqlite" if "[sqlite" in nodeid or "-sqlite" in nodeid else "backend-independent")
            counts.setdefault(backend, {}).setdefault(outcome, 0)
            counts[backend][outcome] += 1
    terminalreporter.write_sep("-", "tests per backend")
    for backend, outcomes in sorted(counts.items()):
        terminalreporter.write_line(f"{backend}: " + ", ".join(f"{n} {o}" for o, n in sorted(outcomes.items())))


@pytest.fixture(scope="session")
def migrated_templates(tmp_path_factory) -> Iterator[dict[str, str]]:
    """One migrated database per backend, copied for each test that needs one."""
    templates: dict[str, str] = {}
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{sqlite_file}")
    templates["sqlite"] = str(sqlite_file)
    pg_url = None
    if POSTGRES_URL:
        pg_url = create_postgres_database()
        migrate(pg_url)
        templates["postgresql"] = make_url(pg_url).database
    yield templates
    if pg_url:
        drop_postgres_database(pg_url)


@pytest.fixture
def fresh_url(request, tmp_path) -> Iterator[str]:
    """URL of an empty, unmigrated database on the backend named by the test's `backend` param."""
    backend = request.getfixturevalue("backend")
    require_backend(backend)
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    url = create_postgres_database()
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def db_url(request, tmp_path, migrated_templates) -> Iterator[str]:
    """URL of a freshly migrated database (a copy of the session's template)."""
    backend = request.getfixturevalue("backend")
    require_backend(backend)
    if backend == "sqlite":
        target = tmp_path / "test.db"
        shutil.copyfile(migrated_templates["sqlite"], target)
        yield f"sqlite:///{target}"
        return
    url = create_postgres_database(template=migrated_templates["postgresql"])
    try:
        yield url
    finally:
        drop_postgres_database(url)


@pytest.fixture
def engine(db_url) -> Iterator[sa.Engine]:
    with engine_of(db_url) as engine:
        yield engine


class SettingsEnv:
    """SHIVX_ variables set for one test; the cached settings are read again after each change."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self._monkeypatch = monkeypatch

    def set(self, **variables: str) -> None:
        for name, value in variables.items():
            self._monkeypatch.setenv(name, value)
        get_settings.cache_clear()


@pytest.fixture
def settings_env(monkeypatch) -> Iterator[SettingsEnv]:
    """Set SHIVX_ variables for one test (settings_env.set(SHIVX_PUSHDOWN="never")), with the
    cached settings read again before, after each change and after the test."""
    get_settings.cache_clear()
    yield SettingsEnv(monkeypatch)
    monkeypatch.undo()
    get_settings.cache_clear()


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param
