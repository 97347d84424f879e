"""The CLI's manners for cron and shell users: exit codes from one mapping, messages that say what
to do, ISO dates only, --version, and reading commands that never create the database they read.

Exit codes: 0 ok, 2 bad arguments, 3 database unavailable / not found / timed out, 4 bad stored
data or failed work.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_faults import terminated_when_blocked
from typer.testing import CliRunner

import shivx_analytics as sx
from shivx_analytics.cli import EXIT_CODES, Exit, _parse_when, app, exit_for
from shivx_analytics.db import head_revision

CLI = [sys.executable, "-m", "shivx_analytics.cli"]
ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
AS_OF = "2025-10-28"
NOT_FOUND = "run `shivx-analytics demo`, pass --url or set SHIVX_DATABASE_URL"


def run(*args: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The CLI in a fresh process, without the caller's database variables unless ``env`` sets them."""
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("SHIVX_DATABASE_URL", "SHIVX_ANALYTICS_DATABASE_URL")} | (env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


def assert_shell_message(result: subprocess.CompletedProcess, code: int, *fragments: str) -> None:
    """Exit ``code`` with one `error: ...` message naming ``fragments``, no traceback, nothing on stdout."""
    assert result.returncode == code, (result.returncode, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == "", (result.stdout, result.stderr)
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)


# -- reading never creates the database ------------------------------------------------------------

READING_COMMANDS = {
    "report": ["report", "pnl", "--as-of", AS_OF, "--format", "json"],
    "health": ["health"],
    "notebook run": ["notebook", "run", str(NOTEBOOKS / "02_pnl.ipynb"), "-p", f"as_of={AS_OF}"],
    "db current": ["db", "current"],
    "db check": ["db", "check"],
}


@pytest.mark.slow
@pytest.mark.parametrize("command, given", [
    *[(command, "--url") for command in READING_COMMANDS],
    ("report", "SHIVX_DATABASE_URL"), ("health", "default path"), ("notebook run", "default path"),
], ids=lambda value: value.replace(" ", "-"))
def test_a_reading_command_on_a_missing_sqlite_file_exits_3_and_creates_nothing(tmp_path, command, given):
    work = tmp_path / "work"
    work.mkdir()
    missing = work / ("shivx_demo.db" if given == "default path" else "missing.db")
    args = [*READING_COMMANDS[command]]
    if command in ("report", "notebook run"):
        args += ["--out", str(tmp_path / "out" / ("x.html" if command == "notebook run" else ""))]
    env = {}
    if given == "--url":
        args += ["--url", f"sqlite:///{missing}"]
    elif given == "SHIVX_DATABASE_URL":
        env["SHIVX_DATABASE_URL"] = f"sqlite:///{missing}"
    result = run(*args, env=env, cwd=work)  # the default path is ./shivx_demo.db in the working directory
    shown = missing.relative_to(work) if given == "default path" else missing
    assert_shell_message(result, Exit.DATABASE_UNREACHABLE, f"no database at {shown}: {NOT_FOUND}")
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["work"], "a file was created (database, -wal, -shm, output)"


@pytest.mark.slow
def test_a_reading_command_still_reads_an_existing_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'there.db'}"
    assert run("db", "upgrade", "--url", url).returncode == 0
    result = run("db", "current", "--url", url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == head_revision()


# -- database URLs ------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("command, url", [
    *[(command, "notaurl") for command in (["health"], ["db", "current"], ["db", "upgrade"], ["seed"],
                                           ["report", "pnl", "--out", "never"])],
    (["health"], "postgresql//analyst:s3cr3t@host/db"), (["health"], "mysql://host/db"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_a_database_url_that_cannot_be_used_exits_2_naming_the_option(tmp_path, command, url):
    result = run(*command, "--url", url, cwd=tmp_path)
    assert_shell_message(result, Exit.BAD_ARGUMENTS, "pass --url (or set SHIVX_DATABASE_URL) as postgresql://")
    assert "s3cr3t" not in result.stderr
    assert list(tmp_path.iterdir()) == []


# -- dates: ISO 8601 only, in a supported range ---------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("option, value", [
    ("--since", "03/11/2026"), ("--as-of", "2026-13-01"), ("--until", "Oct 28 2025"),
])
def test_a_date_that_is_not_iso_8601_exits_2_naming_the_option_and_the_form(tmp_path, option, value):
    result = run("report", "pnl", option, value, "--url", f"sqlite:///{tmp_path / 'none.db'}",
                 "--out", str(tmp_path / "out"))
    assert_shell_message(result, Exit.BAD_ARGUMENTS, f"{option}: expected an ISO 8601 date or datetime",
                         "2025-10-28T12:00:00Z", repr(value))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("command, as_of", [
    (["seed"], "9999-12-31"), (["seed"], "1899-12-31T23:59:59Z"), (["report", "pnl", "--out", "out"], "0001-01-01"),
    (["report", "pnl", "--out", "out"], "2200-01-01T00:00:00Z"), (["demo"], "9999-12-31"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else value)
def test_an_instant_outside_the_supported_range_exits_2_without_a_traceback(tmp_path, command, as_of):
    result = run(*command, "--as-of", as_of, "--url" if command[0] != "demo" else "--db",
                 f"sqlite:///{tmp_path / 'x.db'}" if command[0] != "demo" else str(tmp_path / "x.db"), cwd=tmp_path)
    assert_shell_message(result, Exit.BAD_ARGUMENTS, f"--as-of {as_of!r} is outside the supported range",
                         "from 1900-01-01 to before 2200-01-01 UTC")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text, expected", [
    ("2025-10-28", dt.datetime(2025, 10, 28, tzinfo=dt.timezone.utc)),
    ("2025-10-28T12:30:00Z", dt.datetime(2025, 10, 28, 12, 30, tzinfo=dt.timezone.utc)),
    ("2025-10-28T02:00:00+02:00", dt.datetime(2025, 10, 28, tzinfo=dt.timezone.utc)),
    ("2025-10-28 12:30", dt.datetime(2025, 10, 28, 12, 30, tzinfo=dt.timezone.utc)),  # naive means UTC
    ("20251028", dt.datetime(2025, 10, 28, tzinfo=dt.timezone.utc)),  # ISO 8601 basic format
    ("1900-01-01", dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)),
    ("2199-12-31T23:59:59.999999Z", dt.datetime(2199, 12, 31, 23, 59, 59, 999999, tzinfo=dt.timezone.utc)),
])
def test_iso_8601_dates_and_datetimes_are_read_as_utc(text, expected):
    assert _parse_when(text, "as_of") == expected


# -- notebook run parameters ----------------------------------------------------------------------

@pytest.mark.slow
def test_notebook_run_with_a_parameter_the_notebook_does_not_define_exits_2_listing_the_valid_ones(tmp_path):
    result = run("notebook", "run", str(NOTEBOOKS / "02_pnl.ipynb"), "-p", f"asof={AS_OF}",
                 "--out", str(tmp_path / "pnl.html"))
    assert_shell_message(result, Exit.BAD_ARGUMENTS, "02_pnl.ipynb has no parameter asof",
                         "its parameters are database_url, as_of, since, until, starting_capital")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
@pytest.mark.parametrize("parameter, complaint", [
    ("as_of=notadate", "-p as_of: expected an ISO 8601 date or datetime such as 2025-10-28 or 2025-10-28T12:00:00Z, got 'notadate'"),
    ("until=9999-12-31", "-p until '9999-12-31' is outside the supported range"),
    ("starting_capital=-5", "-p starting_capital must be > 0 USD"),
])
def test_notebook_run_with_a_malformed_parameter_exits_2_before_any_kernel_starts(tmp_path, parameter, complaint):
    result = run("notebook", "run", str(NOTEBOOKS / "02_pnl.ipynb"), "-p", parameter,
                 "--out", str(tmp_path / "pnl.html"))
    assert_shell_message(result, Exit.BAD_ARGUMENTS, complaint)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_notebook_run_passes_a_relative_sqlite_url_as_an_absolute_one(tmp_path):
    """The notebook runs in its own folder: a relative path is resolved from the caller's."""
    from shivx_analytics.cli import _absolute

    (tmp_path / "rel.db").touch()
    previous = Path.cwd()
    os.chdir(tmp_path)
    try:
        assert _absolute("sqlite:///rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    finally:
        os.chdir(previous)
    assert _absolute("postgresql://u:pw@h/db") == "postgresql://u:pw@h/db"


# -- --version and --help ---------------------------------------------------------------------------

@pytest.mark.slow
def test_version_prints_the_package_version():
    result = run("--version")
    version = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"shivx-analytics {version}\n" == f"shivx-analytics {sx.__version__}\n"


@pytest.mark.parametrize("path", [[], ["db"], ["notebook"]], ids=lambda p: " ".join(p) or "shivx-analytics")
def test_help_lists_the_exit_codes(path):
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=200)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    for code in ("0 ok", "2 bad arguments", "3 database unavailable, not found or timed out",
                 "4 bad stored data or failed work"):
        assert code in text and code in EXIT_CODES


# -- one mapping from exceptions to exit codes ------------------------------------------------------

def exceptions() -> list[tuple[str, BaseException, int, str]]:
    from shivx_analytics._arrow import FrameDataError
    from shivx_analytics.aggregates import PushdownUnavailable
    from shivx_analytics.db import DatabaseUnavailable, StatementTimeout
    from shivx_analytics.frames import LoadError
    from shivx_analytics.models.enums import InvalidTransition
    from shivx_analytics.notebook_runner import NotebookFailed

    class AdminShutdown(Exception):  # what psycopg raises when pg_terminate_backend ends a session
        sqlstate = "57P01"

    lost = sa.exc.OperationalError("COPY orders FROM STDIN", {}, AdminShutdown("terminating connection"))
    return [
        ("unreachable", DatabaseUnavailable("cannot reach postgresql://u:***@h/db: refused"), 3, "check the server and retry"),
        ("timed out", StatementTimeout("statement cancelled: ... raise the limit"), 3, "raise the limit"),
        ("backend killed", lost, 3, "database connection lost: terminating connection: check the server and retry"),
        ("copy cut off", OSError("IO Error: Failed to fetch header for COPY: FATAL:  terminating connection due to "
                                 "administrator command"), 3, "database connection lost: IO Error"),
        ("socket reset", ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), 3,
         "database connection lost"),
        ("unrepresentable data", FrameDataError("a stored money value does not fit NUMERIC(20,8)"), 4,
         "correct the stored rows"),
        ("bad transition", InvalidTransition("FILLED -> PENDING"), 4, "correct the stored rows"),
        ("load refused", LoadError("loading orders from sqlite:///x.db: no such column"), 4, "db check"),
        ("cell failed", NotebookFailed("02_pnl.ipynb: cell 3 raised KeyError: 'x'"), 4, "fix the cell"),
        ("file too large", OSError(errno.EFBIG, "File too large"), 4, "cannot write the output: File too large"),
        ("disk full", OSError(errno.ENOSPC, "No space left on device", "/out/pnl.html"), 4,
         "cannot write /out/pnl.html: No space left on device; pass --out"),
        ("refused value", ValueError("--pushdown needs PostgreSQL"), 2, "--pushdown needs PostgreSQL"),
        ("pushdown", PushdownUnavailable("push-down needs PostgreSQL: pass --no-pushdown"), 2, "--no-pushdown"),
        ("anything else", KeyError("boom"), 4, "please report it"),
        ("a password echoed", RuntimeError("connect to postgresql://u:hunter2@h/db password=hunter2 failed"), 4,
         "postgresql://u:***@h/db password=*** failed"),
    ]


@pytest.mark.parametrize("case", exceptions(), ids=lambda case: case[0])
def test_every_exception_maps_to_its_exit_code_and_a_message_saying_what_to_do(case):
    _, exception, code, message = case
    assert exit_for(exception) == (code, exit_for(exception)[1])
    assert message in exit_for(exception)[1]


# -- a backend killed mid-COPY ------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_backend_killed_mid_copy_exits_3_saying_the_connection_was_lost(backend, db_url, tmp_path):
    """The loaders COPY rows out through DuckDB's scanner; a lock holds that COPY, then its backend
    is terminated (Arrow then raised a bare OSError, which exited 4 as "cannot write"). A seed cut
    off mid-way: tests/test_faults.py."""
    sx.generate_demo_data(db_url, scale=50, as_of=AS_OF)
    args = ["report", "execution", "--url", db_url, "--as-of", AS_OF, "--format", "json",
            "--out", str(tmp_path / "out"), "--no-pushdown"]
    with terminated_when_blocked(db_url, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE") as terminated:
        result = run(*args)
    assert terminated and any("COPY" in query for query in terminated), terminated
    assert result.returncode == Exit.DATABASE_UNREACHABLE, (result.returncode, result.stderr)
    assert result.stderr.count("error: ") == 1 and "check the server and retry" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "OSError" not in result.stderr and "psycopg." not in result.stderr
    assert not (tmp_path / "out").exists()
