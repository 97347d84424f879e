"""SHIVX_ANALYTICS_DATABASE_URL: the read path of loaders, reports and the reading CLI commands.

Two databases per backend hold different rows: the primary (SHIVX_DATABASE_URL) one user, the
"replica" (SHIVX_ANALYTICS_DATABASE_URL) another user with a key, a position, an order and audit
events. Whatever reads without a source must see the replica; unset, the primary; writing
commands always the primary.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import nbformat
import pandas as pd
import pytest
from _databases import copy_migrated_database, drop_postgres_database
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics import db
from shivx_analytics.cli import app
from shivx_analytics.config import get_settings
from shivx_analytics.models import (
    APIKeyCreate,
    OrderCreate,
    PositionCreate,
    UserCreate,
    append_audit_entries,
    build_api_key,
    build_order,
    build_position,
    build_user,
)

AS_OF = "2025-10-28"
NOW = datetime(2025, 10, 28, tzinfo=timezone.utc)
VARIABLES = ("SHIVX_DATABASE_URL", "SHIVX_ANALYTICS_DATABASE_URL")
UNREACHABLE = "postgresql://nobody:hunter2@127.0.0.1:1/nothing"


@pytest.fixture
def environment():
    """set(primary=..., analytics=...): the two variables exactly so (None = unset), settings
    re-read; both restored, and the cache cleared, afterwards."""
    saved = {name: os.environ.get(name) for name in VARIABLES}

    def set_urls(*, primary: str | None, analytics: str | None) -> None:
        for name, value in zip(VARIABLES, (primary, analytics)):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()

    try:
        yield set_urls
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()


def add_user(url: str, name: str):
    engine = db.create_engine(url)
    try:
        with Session(engine, expire_on_commit=False) as session:
            user = build_user(UserCreate(username=name, email=f"{name}@example.com", password="correct horse 1"))
            session.add(user)
            session.commit()
            return engine, user
    except BaseException:
        engine.dispose()
        raise


@pytest.fixture
def databases(backend, db_url, migrated_templates, tmp_path):
    """(primary URL, replica URL): the replica's URL carries a password (PostgreSQL trusts it)."""
    replica = copy_migrated_database(backend, migrated_templates, tmp_path / "replica", "replica.db")
    if backend == "postgresql":
        replica = make_url(replica).set(password="replica-s3cret").render_as_string(hide_password=False)
    try:
        engine, _ = add_user(db_url, "primary_user")
        engine.dispose()
        engine, user = add_user(replica, "replica_user")
        try:
            with Session(engine, expire_on_commit=False) as session:
                _, key = build_api_key(APIKeyCreate(user_id=user.user_id, name="replica bot", rate_limit=60))
                position = build_position(PositionCreate(
                    user_id=user.user_id, token="SOL", size=Decimal("2"), entry_price=Decimal("100"),
                    current_price=Decimal("110"), opened_at=NOW - timedelta(days=3)))
                session.add_all([key, position])
                session.flush()
                order = build_order(OrderCreate(user_id=user.user_id, position_id=position.position_id, token="SOL",
                                                action="buy", amount_in=Decimal("200"), price=Decimal("100")))
                order.created_at = order.updated_at = NOW - timedelta(days=2)
                order.execute("sig-replica", Decimal("2"), at=NOW - timedelta(days=2) + timedelta(minutes=1))
                session.add(order)
                session.commit()
                key_id = str(key.key_id)
            with engine.begin() as connection:
                append_audit_entries(connection, [
                    {"event_type": "api_request", "action": "GET", "success": True, "resource": "/v1/positions",
                     "details": {"key_id": key_id, "status_code": 200}, "timestamp": NOW - timedelta(days=1)},
                    {"event_type": "authentication", "action": "login", "success": False, "user_id": user.user_id,
                     "ip_address": "203.0.113.9", "details": {"reason": "bad_password"},
                     "timestamp": NOW - timedelta(hours=5)},
                ])
        finally:
            engine.dispose()
        yield db_url, replica
    finally:
        if backend == "postgresql":
            drop_postgres_database(replica)


def label(url: str) -> str:
    return db.mask_url(db.normalize_url(url))


# db.analytics_url and sx.connect --------------------------------------------------------------


def test_analytics_url_resolution_order(environment):
    environment(primary="sqlite:///primary.db", analytics="sqlite:///replica.db")
    assert db.analytics_url() == "sqlite:///replica.db"
    assert db.analytics_url("sqlite:///given.db") == "sqlite:///given.db"
    assert db.analytics_url(primary="sqlite:///other.db") == "sqlite:///replica.db"
    assert db.resolve_url() == "sqlite:///primary.db"  # writers keep the primary
    environment(primary="sqlite:///primary.db", analytics=None)
    assert db.analytics_url() == "sqlite:///primary.db"
    assert db.analytics_url(primary="sqlite:///other.db") == "sqlite:///other.db"
    environment(primary=None, analytics=None)
    assert db.analytics_url() == get_settings().database_url  # the local SQLite file


def test_connect_analytics(environment, tmp_path):
    primary, replica = f"sqlite:///{tmp_path / 'p.db'}", f"sqlite:///{tmp_path / 'r.db'}"
    environment(primary=primary, analytics=replica)
    engines = {"primary": sx.connect(), "replica": sx.connect(analytics=True),
               "given": sx.connect(f"sqlite:///{tmp_path / 'g.db'}", analytics=True)}
    try:
        assert {name: make_url(e.url).database for name, e in engines.items()} == {
            "primary": str(tmp_path / "p.db"), "replica": str(tmp_path / "r.db"), "given": str(tmp_path / "g.db")}
    finally:
        for engine in engines.values():
            engine.dispose()
    environment(primary=primary, analytics=None)
    engine = sx.connect(analytics=True)
    assert make_url(engine.url).database == str(tmp_path / "p.db")
    engine.dispose()


# Loaders --------------------------------------------------------------------------------------

LOADERS = {"positions": sx.load_positions, "orders": sx.load_orders, "audit_logs": sx.load_audit_logs,
           "api_keys": sx.load_api_keys, "users": sx.load_users}


@pytest.mark.slow
def test_loaders_without_a_source_read_the_analytics_database(backend, databases, environment):
    primary, replica = databases
    environment(primary=primary, analytics=replica)
    for name, load in LOADERS.items():
        pd.testing.assert_frame_equal(load(), load(replica), obj=name)
    assert sx.load_users()["username"].tolist() == ["replica_user"]
    assert [len(load()) for load in LOADERS.values()] == [1, 1, 2, 1, 1]
    assert len(sx.load_audit_logs(details={"status_code": 200})) == 1
    assert sx.load_users(primary)["username"].tolist() == ["primary_user"]  # a given source wins
    chunks = list(sx.load_orders(chunksize=10))
    assert [len(c) for c in chunks] == [1]


@pytest.mark.slow
def test_loaders_without_a_source_fall_back_to_the_primary(backend, databases, environment):
    primary, _ = databases
    environment(primary=primary, analytics=None)
    assert sx.load_users()["username"].tolist() == ["primary_user"]
    assert [len(load()) for load in LOADERS.values()] == [0, 0, 0, 0, 1]


# Reports --------------------------------------------------------------------------------------

REPORTS = {"pnl": (sx.pnl_report, "open_positions"), "execution": (sx.execution_report, "orders"),
           "api_usage": (sx.api_usage_report, "requests"), "security": (sx.security_report, "failed_logins")}


@pytest.mark.slow
def test_reports_without_a_source_read_the_analytics_database(backend, databases, environment):
    primary, replica = databases
    environment(primary=primary, analytics=replica)
    for name, (build, count) in REPORTS.items():
        report = build(as_of=AS_OF)
        assert report.parameters["database"] == label(replica), name
        assert report.summary[count] == 1, (name, report.summary)
        if backend == "postgresql":
            assert "replica-s3cret" not in report.to_json() and "***" in report.parameters["database"]
    positional = sx.api_usage_report(None, as_of=AS_OF)
    assert positional.summary["keys"] == 1

    environment(primary=primary, analytics=None)
    for name, (build, count) in REPORTS.items():
        report = build(as_of=AS_OF)
        assert report.parameters["database"] == label(primary), name
        assert report.summary[count] == 0, (name, report.summary)


# The command line -----------------------------------------------------------------------------


def report_json(result, directory) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads((directory / "execution.json").read_text())


@pytest.mark.slow
def test_cli_report_reads_the_analytics_database(backend, databases, environment, tmp_path):
    primary, replica = databases
    runner = CliRunner()
    arguments = ["report", "execution", "--format", "json", "--as-of", AS_OF, "--out"]

    environment(primary=primary, analytics=replica)
    read = report_json(runner.invoke(app, [*arguments, str(tmp_path / "a")]), tmp_path / "a")
    assert read["parameters"]["database"] == label(replica)
    assert read["summary"]["orders"] == 1

    given = report_json(runner.invoke(app, [*arguments, str(tmp_path / "b"), "--url", primary]), tmp_path / "b")
    assert given["parameters"]["database"] == label(primary) and given["summary"]["orders"] == 0

    environment(primary=primary, analytics=None)
    fallback = report_json(runner.invoke(app, [*arguments, str(tmp_path / "c")]), tmp_path / "c")
    assert fallback["parameters"]["database"] == label(primary) and fallback["summary"]["orders"] == 0


@pytest.mark.slow
def test_cli_reads_from_the_analytics_database_and_writes_to_the_primary(backend, databases, environment, tmp_path):
    primary, _ = databases
    environment(primary=primary, analytics=UNREACHABLE)
    runner = CliRunner()
    report = runner.invoke(app, ["report", "pnl", "--as-of", AS_OF, "--out", str(tmp_path / "r")])
    assert report.exit_code == 3, report.output
    assert "nobody:***@127.0.0.1:1/nothing" in report.output and "hunter2" not in report.output

    upgrade = runner.invoke(app, ["db", "upgrade"])
    assert upgrade.exit_code == 0, upgrade.output
    assert label(primary).split("://")[1] in upgrade.output
    current = runner.invoke(app, ["db", "current"])
    assert current.exit_code == 0 and current.output.strip() == db.head_revision()


@pytest.mark.slow
def test_cli_notebook_run_reads_the_analytics_database(backend, databases, environment, tmp_path):
    primary, replica = databases
    notebook = nbformat.v4.new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    parameters = nbformat.v4.new_code_cell('database_url = "unset"')
    parameters.metadata["tags"] = ["parameters"]
    notebook.cells = [parameters, nbformat.v4.new_code_cell(
        "import shivx_analytics as sx\n"
        "print('DATABASE', sx.db.mask_url(database_url))\n"
        "print('USERS', sx.load_users(database_url)['username'].tolist())")]
    source = tmp_path / "which.ipynb"
    nbformat.write(notebook, source)

    environment(primary=primary, analytics=replica)
    result = CliRunner().invoke(app, ["notebook", "run", str(source), "--out", str(tmp_path / "which.html")])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "which.html").read_text()
    assert f"DATABASE {db.mask_url(replica)}" in page
    assert "USERS [&#x27;replica_user&#x27;]" in page or "USERS ['replica_user']" in page
