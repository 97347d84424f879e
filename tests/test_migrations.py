"""Migrations: one head, every step up and down, models equal migrations, triggers after every step."""

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from alembic import command
from shivx_analytics.db import (
    alembic_config,
    comparison_options,
    create_engine,
    current_revision,
    head_revision,
    migrate,
)
from shivx_analytics.models import metadata
from shivx_analytics.partitions import is_partition_name
from shivx_analytics.triggers import expected_trigger_names


def _triggers(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            sql = "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"
        else:
            sql = "SELECT name FROM sqlite_master WHERE type = 'trigger'"
        return set(connection.exec_driver_sql(sql).scalars())


def _tables(engine: sa.Engine) -> set[str]:
    """Tables, the audit log's partitions (PostgreSQL) counted as part of it."""
    return {name for name in sa.inspect(engine).get_table_names()
            if name != "alembic_version" and not is_partition_name(name)}


def test_there_is_exactly_one_head():
    script = ScriptDirectory.from_config(alembic_config())
    assert len(script.get_heads()) == 1


def test_models_equal_migrations(backend, db_url):
    engine = create_engine(db_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts=comparison_options(backend))
            diff = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert diff == []


@pytest.mark.slow
def test_every_revision_upgrades_and_downgrades_with_triggers_in_place(backend, fresh_url):
    """Stairway: for each revision, up, down one step, up again; triggers present after every up."""
    script = ScriptDirectory.from_config(alembic_config())
    revisions = list(reversed(list(script.walk_revisions())))
    config = alembic_config(fresh_url)
    engine = create_engine(fresh_url)
    try:
        for revision in revisions:
            command.upgrade(config, revision.revision)
            command.downgrade(config, revision.down_revision or "base")
            command.upgrade(config, revision.revision)
            assert current_revision(fresh_url) == revision.revision
            assert expected_trigger_names(engine.dialect.name) <= _triggers(engine)
        command.downgrade(config, "base")
        assert _tables(engine) == set()
        assert _triggers(engine) == set()
    finally:
        engine.dispose()


@pytest.mark.slow
def test_migrate_reaches_head_and_is_idempotent(backend, fresh_url):
    migrate(fresh_url)
    migrate(fresh_url)
    assert current_revision(fresh_url) == head_revision()
    engine = create_engine(fresh_url)
    try:
        assert _tables(engine) == {"users", "api_keys", "positions", "orders", "security_audit_logs",
                                   "security_audit_chain", "security_audit_chain_checkpoints"}
    finally:
        engine.dispose()


def test_every_constraint_and_index_is_named(backend, db_url):
    engine = create_engine(db_url)
    try:
        inspector = sa.inspect(engine)
        for table in inspector.get_table_names():
            for index in inspector.get_indexes(table):
                assert index["name"], f"unnamed index on {table}"
            for fk in inspector.get_foreign_keys(table):
                assert fk["name"] and fk["name"].startswith("fk_"), (table, fk)
            for check in inspector.get_check_constraints(table):
                assert check["name"] and check["name"].startswith("ck_"), (table, check)
    finally:
        engine.dispose()


def test_seed_composite_audit_indexes_exist(backend, db_url):
    engine = create_engine(db_url)
    try:
        indexes = {tuple(ix["column_names"]) for ix in sa.inspect(engine).get_indexes("security_audit_logs")}
    finally:
        engine.dispose()
    for columns in [("timestamp", "event_type"), ("user_id", "timestamp"), ("success", "timestamp"),
                    ("ip_address", "timestamp"), ("request_id",)]:
        assert columns in indexes, columns


def test_offline_sql_renders_for_postgresql(capsys):
    """`alembic upgrade head --sql` works: the migration does not need a live connection."""
    config = alembic_config("postgresql://nobody@localhost/none")
    command.upgrade(config, "head", sql=True)
    out = capsys.readouterr().out
    assert "CREATE TABLE security_audit_logs" in out
    assert "trg_security_audit_logs_no_truncate" in out


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite"])
def test_alembic_command_line_uses_shivx_database_url(backend, fresh_url, monkeypatch, tmp_path):
    """From the repo root, `alembic upgrade head` reads SHIVX_DATABASE_URL."""
    import subprocess
    import sys

    from shivx_analytics.db import PROJECT_ROOT

    env = {"SHIVX_DATABASE_URL": fresh_url, "PATH": __import__("os").environ["PATH"]}
    for step in (["upgrade", "head"], ["downgrade", "base"], ["upgrade", "head"]):
        result = subprocess.run([sys.executable, "-m", "alembic", *step], cwd=PROJECT_ROOT, env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
    assert current_revision(fresh_url) == head_revision()
