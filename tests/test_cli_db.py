"""`shivx-analytics db ...` and `health`: exit codes, messages, masked passwords."""

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy.engine import make_url

from shivx_analytics.db import current_revision, head_revision

CLI = [sys.executable, "-m", "shivx_analytics.cli"]


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k != "SHIVX_DATABASE_URL"} | (env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.slow
def test_db_upgrade_current_check_and_downgrade(backend, fresh_url):
    if backend == "sqlite":  # db current/check never create a file: an empty one is an empty database
        path = make_url(fresh_url).database
        assert run("db", "current", "--url", fresh_url).returncode == 3
        assert not os.path.exists(path)
        open(path, "wb").close()
    assert run("db", "current", "--url", fresh_url).stdout.strip() == "base"
    result = run("db", "check", "--url", fresh_url)
    assert result.returncode == 4 and "head is" in result.stderr
    assert run("db", "upgrade", "--url", fresh_url).returncode == 0
    assert current_revision(fresh_url) == head_revision()
    check = run("db", "check", "--url", fresh_url)
    assert check.returncode == 0, check.stderr
    assert run("db", "downgrade", "base", "--url", fresh_url).returncode == 0
    assert current_revision(fresh_url) is None


def test_health_reports_backend_version_and_latency(backend, db_url):
    result = run("health", "--json", "--url", db_url)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["backend"] == backend
    assert status["server_version"] and status["latency_ms"] >= 0


@pytest.mark.slow
def test_unreachable_database_exits_3_with_the_password_masked():
    result = run("health", "--url", "postgresql://analyst:s3cr3t-pw@127.0.0.1:1/nowhere")
    assert result.returncode == 3
    assert "s3cr3t-pw" not in result.stderr + result.stdout
    assert "***" in result.stderr


@pytest.mark.slow
def test_database_url_comes_from_the_environment(tmp_path):
    url = f"sqlite:///{tmp_path / 'env.db'}"
    assert run("db", "upgrade", env={"SHIVX_DATABASE_URL": url}).returncode == 0
    assert current_revision(url) == head_revision()


@pytest.mark.parametrize("args", [["health", "--bogus"], ["db", "nonsense"], ["db", "upgrade", "--url", "mysql://x/y"]])
def test_bad_arguments_exit_2(args):
    result = run(*args)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert result.stderr.strip()
