"""`shivx-analytics`: headless, cron-friendly entry point.

Exit codes (EXIT_CODES, shown in --help): 0 success; 2 bad arguments; 3 database unavailable, not
found or timed out; 4 bad stored data or failed work. exit_for() is the one place that maps an
exception to its code. Errors go to stderr, database URLs always with the password masked, each
saying what to do; no prompts. A command that only reads never creates the database it was asked
to read.

Imports are light at module level (--help answers in a fraction of a second): the database layer
loads on first use and the heavy modules inside the commands.

Why one module of ~800 lines: it is the one Typer app, and each command is a thin adapter (parse,
call the package, map errors to exit codes through exit_for). Split across files, the commands
would each need the shared options, the exit-code mapping and the lazy imports again.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import logging
import os
import re
import sys
from collections.abc import Callable
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from shivx_analytics import __version__

EXIT_OK = 0


class Exit(IntEnum):
    BAD_ARGUMENTS = 2
    DATABASE_UNREACHABLE = 3  # unavailable, not found, connection lost or timed out
    FAILED = 4  # bad stored data, or the work itself failed


EXIT_CODES = ("Exit codes: 0 ok; 2 bad arguments; 3 database unavailable, not found or timed out; "
              "4 bad stored data or failed work. Errors go to stderr and say what to do.")


class _LazyModule:
    """A module imported on first attribute access: ``db.resolve_url(...)`` reads as before, but
    --help and argument errors never pay for SQLAlchemy and the settings."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


db = _LazyModule("shivx_analytics.db")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"shivx-analytics {__version__}")
        raise typer.Exit()


# rich_markup_mode=None: click's plain help, without importing rich's markdown (half of --help's time)
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, epilog=EXIT_CODES,
                  rich_markup_mode=None, help="ShivX analytics: migrations, demo data, reports and notebooks, headless.")


@app.callback()
def _options(version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                                   help="Print the version and exit")] = False) -> None:
    """ShivX analytics: migrations, demo data, reports and notebooks, headless."""


db_app = typer.Typer(no_args_is_help=True, help="Database migrations and checks.", epilog=EXIT_CODES,
                     rich_markup_mode=None)
app.add_typer(db_app, name="db")

UrlOption = Annotated[Optional[str], typer.Option("--url", help="Database URL (default: SHIVX_DATABASE_URL, else ./shivx_demo.db)",
                                                  envvar="SHIVX_DATABASE_URL", show_envvar=True)]
# Commands that only read (report, notebook run) read the analytics database when one is set.
ReadUrlOption = Annotated[Optional[str], typer.Option(
    "--url", help="Database URL to read (default: SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL, "
                  "else ./shivx_demo.db)", envvar="SHIVX_DATABASE_URL", show_envvar=True)]


def fail(message: str, code: Exit) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {db.redact(message)}", err=True)  # a driver's message may quote a secret
    return typer.Exit(int(code))


def run_guarded(work):
    """Run ``work()``; an exception becomes its exit code and message (exit_for)."""
    try:
        return work()
    except typer.Exit:
        raise
    except Exception as exc:  # the work failed: say what, never with a secret in it
        code, message = exit_for(exc)
        raise fail(message, code) from None


RETRY = "check the server and retry"


def exit_for(exc: BaseException) -> tuple[Exit, str]:
    """The exit code and the message for a shell user, of an exception a command's work raised.

    The one mapping (the --help epilog lists the codes): the database unavailable, lost or too slow
    -> 3; stored data that cannot be represented, a failed cell, a failed write or anything
    unexpected -> 4; a value the command was given that the work refuses (ValueError) -> 2.
    """
    code, message = _classify(exc)
    return code, _scrub(message)


def _classify(exc: BaseException) -> tuple[Exit, str]:
    from shivx_analytics import _arrow, frames, notebook_runner
    from shivx_analytics.domain.enums import InvalidTransition

    if isinstance(exc, db.DatabaseUnavailable):
        return Exit.DATABASE_UNREACHABLE, f"{exc}: {RETRY} (or pass another --url)"
    if isinstance(exc, db.StatementTimeout):
        return Exit.DATABASE_UNREACHABLE, str(exc)
    if db.is_connection_lost(exc) or _is_cut_off_stream(exc):
        return Exit.DATABASE_UNREACHABLE, f"database connection lost: {_reason(exc)[:200]}: {RETRY}"
    if isinstance(exc, (_arrow.FrameDataError, InvalidTransition)):
        return Exit.FAILED, (f"stored data cannot be used: {_first_line(exc)}; correct the stored rows "
                             "(the loaders never alter a value)")
    if isinstance(exc, frames.LoadError):
        return Exit.FAILED, f"{_first_line(exc)}; check the schema is current with `shivx-analytics db check`"
    if isinstance(exc, notebook_runner.NotebookFailed):
        return Exit.FAILED, f"{_first_line(exc)}; fix the cell or its parameters and run again"
    if isinstance(exc, OSError):  # writing the output failed: unwritable, disk full, file too large
        return Exit.FAILED, (f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}; "
                             "pass --out a place you can write to, with free space")
    if isinstance(exc, ValueError):
        return Exit.BAD_ARGUMENTS, _first_line(exc)
    return Exit.FAILED, f"{type(exc).__name__}: {_first_line(exc)} (unexpected: please report it with the command line)"


def _is_cut_off_stream(exc: BaseException) -> bool:
    """Arrow reading DuckDB's PostgreSQL COPY when the server ends the session mid-stream raises a
    bare OSError ("IO Error: Failed to fetch header for COPY: FATAL: terminating connection ...").
    Errors of writing a file carry an errno (ENOSPC, EFBIG, EACCES); these carry none."""
    text = str(exc).lower()
    return isinstance(exc, OSError) and exc.errno is None and ("connection" in text or "copy" in text)


def _scrub(message: str) -> str:
    """No password in a message, even in a URL or a libpq keyword a driver echoed."""
    message = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1***@", message)
    return re.sub(r"(password\s*=\s*)\S+", r"\1***", message, flags=re.IGNORECASE)


def _reason(exc: BaseException) -> str:
    """The driver's first line (not SQLAlchemy's wrapper with its class name and SQL)."""
    return _first_line(getattr(exc, "orig", None) or exc)


def _checked_timeout(seconds: Optional[float]) -> Optional[float]:
    """--timeout is checked as it is parsed: a bad value exits 2 before any database is looked at."""
    if seconds is not None and not seconds > 0:
        raise fail(f"--timeout must be > 0 seconds, got {seconds!r}", Exit.BAD_ARGUMENTS)
    return seconds


TimeoutOption = Annotated[Optional[float], typer.Option(
    "--timeout", callback=_checked_timeout, help="Seconds the run may take; past it it stops, writes nothing "
                                                 "and exits 3 (default: SHIVX_TIMEOUT_S, else no limit)")]


def run_limited(seconds: Optional[float], what: str, work):
    """run_guarded(work) within ``seconds`` (else SHIVX_TIMEOUT_S; deadline.time_limit): past it
    the run ends with exit 3, even when a C library holds the main thread in a socket read."""
    from shivx_analytics.config import get_settings
    from shivx_analytics.deadline import time_limit

    limit = seconds if seconds is not None else get_settings().timeout_s
    if limit is not None and not limit > 0:
        raise fail(f"--timeout must be > 0 seconds, got {limit!r}", Exit.BAD_ARGUMENTS)

    def abandon(message: str) -> None:  # from the watchdog thread: nothing was written yet
        typer.echo(f"error: {message}", err=True)
        sys.stderr.flush()
        os._exit(int(Exit.DATABASE_UNREACHABLE))

    def limited():
        with time_limit(limit, what=what, abandon=abandon):
            return work()

    return run_guarded(limited)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_url(context: typer.Context, url: Optional[str]) -> str:
    """The database a reading command reads: --url when given on the command line, else the
    analytics database (SHIVX_ANALYTICS_DATABASE_URL), else SHIVX_DATABASE_URL (db.analytics_url).
    It must exist: reading never creates a database (_existing_database)."""
    source = context.get_parameter_source("url")  # an enum of the click that typer bundles
    if getattr(source, "name", None) == "COMMANDLINE":
        return _existing_database(db.analytics_url(url))
    return _existing_database(db.analytics_url(primary=url))


def _database_url(url: Optional[str]) -> str:
    """--url (else SHIVX_DATABASE_URL, else the local file), refused with exit 2 unless it is a
    postgresql:// or sqlite:// URL."""
    from sqlalchemy.exc import ArgumentError

    target = run_guarded(lambda: db.resolve_url(url))
    try:
        db.normalize_url(target)
    except (ValueError, ArgumentError) as exc:  # ValueError: a URL of another database (mysql://)
        shown = re.sub(r":[^:@/]*@", ":***@", target)  # never echo a password, even of a malformed URL
        reason = (str(exc).partition(":")[0] if isinstance(exc, ValueError)
                  else f"{shown!r} is not a database URL")
        raise fail(f"{reason}: pass --url (or set SHIVX_DATABASE_URL) as postgresql://USER@HOST:5432/NAME or "
                   "sqlite:///PATH/TO/FILE.db", Exit.BAD_ARGUMENTS) from None
    return target


def _existing_database(url: Optional[str]) -> str:
    """The URL of a database that exists: a SQLite file that is not there exits 3 and is not
    created (nor its -wal/-shm). A server's database is checked by connecting."""
    target = _database_url(url)
    path = db.database_path(target)
    if path is not None and not path.exists():
        raise fail(f"no database at {path}: run `shivx-analytics demo`, pass --url or set SHIVX_DATABASE_URL",
                   Exit.DATABASE_UNREACHABLE)
    return target


@db_app.command("upgrade")
def db_upgrade(url: UrlOption = None, revision: str = typer.Argument("head", help="Target revision")):
    """Migrate the database up to REVISION (default head)."""
    target = _database_url(url)
    run_guarded(lambda: (db.health_check(target), db.migrate(target, revision)))
    typer.echo(f"{db.mask_url(target)}: at {db.current_revision(target)}")


@db_app.command("downgrade")
def db_downgrade(url: UrlOption = None, revision: str = typer.Argument("-1", help="Target revision (base = empty)")):
    """Migrate the database down to REVISION (default one step)."""
    target = _existing_database(url)
    run_guarded(lambda: (db.health_check(target), db.downgrade(target, revision)))
    typer.echo(f"{db.mask_url(target)}: at {db.current_revision(target) or 'base'}")


@db_app.command("current")
def db_current(url: UrlOption = None):
    """Print the database's revision (or 'base' when empty)."""
    target = _existing_database(url)
    revision = run_guarded(lambda: db.current_revision(target))
    typer.echo(revision or "base")


@db_app.command("check")
def db_check(url: UrlOption = None,
             repair: bool = typer.Option(False, "--repair", help="Restore missing or disabled triggers, row-level "
                                         "security and policies, revoke owner-only grants (never touches rows)"),
             app_role: str = typer.Option("shivx_app", help="Application role whose grants are checked"),
             analytics_role: str = typer.Option("shivx_analytics", help="Read-only role whose grants are checked")):
    """Exit 0 if the database is at head, matches the models and its controls (append-only and
    chain triggers, row-level security, grants, the chain's tip) are in place; 4 otherwise."""
    from shivx_analytics.controls import control_problems, repair_controls
    from shivx_analytics.roles import RoleNames

    target = _existing_database(url)
    roles = RoleNames(app=app_role, analytics=analytics_role)

    def controls(work):
        engine = db.create_engine(target)
        try:
            with engine.begin() as connection:
                return work(connection, roles)
        finally:
            engine.dispose()

    if repair:
        for statement in run_guarded(lambda: controls(repair_controls)):
            typer.echo(f"repaired: {statement.strip().splitlines()[0]}")
    problems = run_guarded(lambda: db.schema_problems(target))
    failed = run_guarded(lambda: controls(control_problems))
    for problem in problems:
        typer.echo(f"drift: {problem}", err=True)
    for problem in failed:
        typer.echo(f"control: {problem}", err=True)
    if problems or failed:
        if failed and not repair:
            typer.echo("`shivx-analytics db check --repair` restores triggers, row-level security and grants "
                       "(a broken chain is evidence: it is reported, never repaired)", err=True)
        raise typer.Exit(int(Exit.FAILED))
    typer.echo(f"{db.mask_url(target)}: at head {db.head_revision()}, schema matches the models, controls in place")


@db_app.command("checkpoint")
def db_checkpoint(url: UrlOption = None,
                  full_chain: bool = typer.Option(False, "--full-chain", help="Verify from position 1, not from "
                                                  "the latest checkpoint")):
    """Verify the audit hash chain and record its tip as a checkpoint (the owner's URL; e.g. nightly,
    before the reports). Exit 0 when recorded (or the chain is empty); 4 when the chain is broken
    (nothing recorded) or this role or server may not record checkpoints."""
    from shivx_analytics.chain_checkpoints import CheckpointRefused, record_checkpoint

    target = _existing_database(url)

    def work():
        db.health_check(target)
        try:
            return record_checkpoint(target, full_chain=full_chain)
        except CheckpointRefused as exc:
            raise fail(str(exc), Exit.FAILED) from None

    recorded = run_guarded(work)
    chain = recorded.verification
    first, last = chain.first_seq, chain.last_seq
    read = f"positions {first:,}..{last:,} read" if last >= first else "no position after the checkpoint to read"
    if not chain.ok:
        broken = chain.first_broken or {}
        raise fail(f"the audit chain is broken at chain_seq {broken.get('chain_seq')} ({broken.get('reason')}); "
                   f"verified {chain.scope}, {read}; no checkpoint recorded: the chain is evidence, investigate it",
                   Exit.FAILED)
    if recorded.checkpoint is None:
        typer.echo(f"{db.mask_url(target)}: the audit chain is empty: no checkpoint recorded")
        return
    typer.echo(f"{db.mask_url(target)}: audit chain intact, verified {chain.scope}, {read}; recorded "
               f"{recorded.checkpoint.describe()}")


@db_app.command("grant")
def db_grant(
    url: UrlOption = None,
    app_role: str = typer.Option("shivx_app", help="Application role: writes trading tables, appends to the audit log"),
    analytics_role: str = typer.Option("shivx_analytics", help="Read-only role without access to secret columns"),
    app_password_env: Optional[str] = typer.Option(None, help="Name of an environment variable holding the app role's password"),
    analytics_password_env: Optional[str] = typer.Option(None, help="Name of an environment variable holding the analytics role's password"),
    reset_passwords: bool = typer.Option(
        False, "--reset-passwords",
        help="Change the password of a role that already exists (roles are cluster-wide: other databases use it too)"),
):
    """PostgreSQL: create/refresh the application and read-only analytics roles and their grants.

    Prints the statements run (passwords as ***), then every change that outlives this database
    (roles are cluster-wide) or took a privilege away."""
    from shivx_analytics.roles import RoleNames, grant_roles

    def password(variable):
        if variable is None:
            return None
        if variable not in os.environ:
            raise fail(f"environment variable {variable} is not set", Exit.BAD_ARGUMENTS)
        return os.environ[variable]

    target = _existing_database(url)
    names = RoleNames(app=app_role, analytics=analytics_role)
    result = run_guarded(lambda: grant_roles(target, names, app_password=password(app_password_env),
                                             analytics_password=password(analytics_password_env),
                                             reset_passwords=reset_passwords))
    for statement in result.statements:
        typer.echo(statement)
    for change in result.changes:
        typer.echo(f"changed: {change}")


@db_app.command("partitions")
def db_partitions(
    url: UrlOption = None,
    ahead: int = typer.Option(3, "--ahead", min=0, help="Months after the current one to create"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON"),
):
    """PostgreSQL: create the audit log's monthly partitions for this month and AHEAD more
    (idempotent, for cron); rows of those months in the default partition move into them.
    Prints every partition with its range and estimated rows."""
    from shivx_analytics import partitions

    target = _existing_database(url)

    def work():
        db.health_check(target)
        engine = db.create_engine(target)
        try:
            with engine.begin() as connection:
                if connection.dialect.name != "postgresql":
                    raise ValueError(f"the audit log is partitioned on PostgreSQL only; {db.mask_url(target)} is "
                                     f"{connection.dialect.name}")
                if not partitions.is_partitioned(connection):
                    raise ValueError(f"{db.mask_url(target)}: the audit log is not partitioned: "
                                     "run `shivx-analytics db upgrade` first")
                created = partitions.ensure_ahead(connection, ahead)
                return created, partitions.list_partitions(connection)
        finally:
            engine.dispose()

    created, existing = run_guarded(work)
    if as_json:
        typer.echo(json.dumps({"created": created, "partitions": [
            {"name": p.name, "from": p.lower and p.lower.isoformat(), "to": p.upper and p.upper.isoformat(),
             "rows_estimate": p.rows} for p in existing]}, indent=2))
        return
    for partition in existing:
        span = "DEFAULT" if partition.lower is None else f"{partition.lower:%Y-%m-%d} .. {partition.upper:%Y-%m-%d}"
        mark = "created" if partition.name in created else "exists"
        rows = "?" if partition.rows is None else f"~{partition.rows:,} rows"
        typer.echo(f"{partition.name}\t{span}\t{rows}\t{mark}")


@db_app.command("refresh-views")
def db_refresh_views(
    url: UrlOption = None,
    concurrently: bool = typer.Option(True, "--concurrently/--blocking",
                                      help="CONCURRENTLY keeps the views readable while they refresh"),
):
    """PostgreSQL: refresh the materialized views the reports read with --views."""
    from shivx_analytics.aggregates import refresh_views

    target = _existing_database(url)
    seconds = run_guarded(lambda: (db.health_check(target), refresh_views(target, concurrently=concurrently))[1])
    for name, took in seconds.items():
        typer.echo(f"{name}\trefreshed in {took:.2f} s")


@app.command("health")
def health(url: UrlOption = None, as_json: bool = typer.Option(False, "--json", help="Print JSON")):
    """Connect and report backend, server version and latency."""
    target = _existing_database(url)
    status = run_guarded(lambda: db.health_check(target))
    if as_json:
        typer.echo(json.dumps(status.as_dict(), sort_keys=True))
    else:
        typer.echo(f"ok  {status.backend} {status.server_version}  {status.latency_ms:.2f} ms  {status.url}")


REPORT_NAMES = ("pnl", "execution", "api-usage", "security")
FORMATS = ("html", "json", "csv")


def _progress_enabled(flag: bool) -> bool:
    return flag or sys.stderr.isatty()


# The instants the commands accept: seeding and the reports reach months around the instants given
# (history, key expiries, look-back windows), and pandas' nanosecond timestamps end in 2262.
EARLIEST = dt.datetime(1900, 1, 1, tzinfo=dt.timezone.utc)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.timezone.utc)  # exclusive


def _parse_when(value: Optional[str], name: str):
    """ISO 8601 text -> aware UTC datetime through the domain kernel's one parser (naive means
    UTC; "03/11/2026" is refused, never read month-first); None stays None. A bad value, or one
    outside the range the commands support, exits 2 naming the option."""
    if value is None:
        return None
    from shivx_analytics.domain.window import instant

    option = name if name.startswith("-") else f"--{name.replace('_', '-')}"
    try:
        stamp = instant(value, option)
    except ValueError as exc:
        raise fail(str(exc), Exit.BAD_ARGUMENTS) from None
    if not EARLIEST <= stamp < LATEST:
        raise fail(f"{option} {value!r} is outside the supported range: give an instant from "
                   f"{EARLIEST:%Y-%m-%d} to before {LATEST:%Y-%m-%d} UTC", Exit.BAD_ARGUMENTS)
    return stamp


@app.command("seed")
def seed(
    url: UrlOption = None,
    scale: str = typer.Option("small", help="small, medium, large, or a number of orders"),
    seed_value: int = typer.Option(0, "--seed", help="Random seed (same seed + as-of = same rows)"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="End of the generated history (default: today 00:00 UTC)"),
    progress: bool = typer.Option(False, "--progress", help="Show progress bars even when not on a terminal"),
    timeout: TimeoutOption = None,
):
    """Migrate the database if needed and fill it with the deterministic demo dataset."""
    from shivx_analytics.demo import generate_demo_data, parse_scale

    target = _database_url(url)
    try:
        parsed_scale = parse_scale(scale)
    except ValueError as exc:
        raise fail(str(exc), Exit.BAD_ARGUMENTS) from None
    when = _parse_when(as_of, "as_of")

    def work():
        db.health_check(target)
        db.migrate(target)
        return generate_demo_data(target, seed=seed_value, scale=parsed_scale, as_of=when,
                                  progress=_progress_enabled(progress))

    counts = run_limited(timeout, "seed", work)
    typer.echo(f"seeded {db.mask_url(target)}: " + ", ".join(f"{n} {t}" for t, n in counts.items()))


@app.command("report")
def report(
    context: typer.Context,
    names: list[str] = typer.Argument(None, help="pnl, execution, api-usage, security or all (default all)"),
    url: ReadUrlOption = None,
    since: Optional[str] = typer.Option(None, help="Window start, ISO date/datetime, UTC (inclusive)"),
    until: Optional[str] = typer.Option(None, help="Window end, ISO date/datetime, UTC (exclusive)"),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Point in time the report describes (default now; never in the future). "
                              "until defaults to the end of its UTC day, since (execution, api-usage, "
                              "security) to 30 days before until"),
    user: list[str] = typer.Option([], "--user", help="Only this user_id (repeatable; every report)"),
    strategy: list[str] = typer.Option([], "--strategy", help="Only this strategy (repeatable; pnl)"),
    token: list[str] = typer.Option([], "--token", help="Only this token (repeatable; pnl, execution)"),
    starting_capital: Optional[str] = typer.Option(None, "--starting-capital", help="USD, for equity and drawdown %"),
    out: Path = typer.Option(Path("reports"), "--out", help="Directory the files are written to"),
    formats: str = typer.Option("html,json,csv", "--format", help="Comma-separated: html, json, csv"),
    pushdown: Optional[bool] = typer.Option(
        None, "--pushdown/--no-pushdown",
        help="PostgreSQL: compute the aggregates in the database, or load the rows (default: SHIVX_PUSHDOWN, auto)"),
    views: Optional[bool] = typer.Option(
        None, "--views/--no-views",
        help="PostgreSQL: read the materialized views (pnl, api-usage; default: SHIVX_USE_VIEWS)"),
    full_chain: bool = typer.Option(
        False, "--full-chain", help="security: verify the audit hash chain from position 1, not from the latest "
                                    "stored checkpoint"),
    timeout: TimeoutOption = None,
):
    """Generate reports headless; every file appears whole or not at all."""
    selected = _report_names(names)
    chosen = _formats(formats)
    window = {"since": _parse_when(since, "since"), "until": _parse_when(until, "until"),
              "as_of": _parse_when(as_of, "as_of")}
    capital = _decimal_option(starting_capital, "starting_capital")
    if capital is not None and capital <= 0:  # refused before any connection is made
        raise fail(f"--starting-capital must be > 0 USD, got {starting_capital!r}", Exit.BAD_ARGUMENTS)
    filters = _report_filters(selected, {"user_id": user, "strategy": strategy, "token": token})
    target = _read_url(context, url)
    paths = {"pushdown": pushdown, "use_views": views}
    if full_chain and "security" not in selected:
        typer.echo(f"note: --full-chain does not apply to {', '.join(selected)}", err=True)
    written = run_limited(timeout, "report", lambda: _write_reports(target, selected, chosen, out, window, capital,
                                                                    paths=paths, filters=filters,
                                                                    full_chain=full_chain))
    for path in written:
        typer.echo(str(path))


@app.command("demo")
def demo(
    path: Path = typer.Option(Path("shivx_demo.db"), "--db", help="SQLite file to create or reuse"),
    out: Path = typer.Option(Path("reports"), "--out", help="Reports go to OUT/<as-of date>/"),
    as_of: Optional[str] = typer.Option(
        None, "--as-of", help="Seed the history up to this point (default: today 00:00 UTC); a database "
                              "seeded earlier keeps its data and is reported as of its own date"),
    progress: bool = typer.Option(False, "--progress", help="Show progress bars even when not on a terminal"),
):
    """The main job: SQLite file, migrate, seed once, write every report (HTML, JSON, CSV)."""
    from shivx_analytics.aggregates import data_as_of
    from shivx_analytics.demo import seed_once
    from shivx_analytics.domain.window import resolve_as_of

    requested = _parse_when(as_of, "as_of")
    if requested is not None:
        try:
            resolve_as_of(requested)  # a future as_of is refused before anything is written
        except ValueError as exc:
            raise fail(f"--as-of: {exc}", Exit.BAD_ARGUMENTS) from None
    target = f"sqlite:///{path}"

    def work():
        today = dt.datetime.now(dt.timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
        when = requested or today
        # Migrate and seed once (several first runs on one new file take turns under a lock).
        if not seed_once(target, seed=0, scale="small", as_of=when, progress=_progress_enabled(progress)):
            seeded = data_as_of(target)
            when = requested or seeded or dt.datetime.now(dt.timezone.utc)
            if seeded is not None and when != seeded:
                typer.echo(f"{path}: seeded earlier, its data ends at {seeded:%Y-%m-%d %H:%M} UTC; reporting "
                           f"as of {when:%Y-%m-%d %H:%M} UTC as asked", err=True)
            elif seeded is not None:
                typer.echo(f"{path}: seeded earlier; reporting as of its data's date, {seeded:%Y-%m-%d} "
                           "(pass --as-of for another date)", err=True)
        directory = out / when.strftime("%Y-%m-%d")
        written = _write_reports(target, REPORT_NAMES, FORMATS, directory,
                                 {"since": None, "until": None, "as_of": when}, None, summaries := {})
        return written, summaries

    written, summaries = run_guarded(work)
    _print_summaries(summaries)
    typer.echo("")
    for file in written:
        typer.echo(str(file))


def _report_names(names: Optional[list[str]]) -> tuple[str, ...]:
    requested = names or ["all"]
    unknown = [n for n in requested if n not in REPORT_NAMES and n != "all"]  # "all bogus" is refused too
    if unknown:
        raise fail(f"unknown report {', '.join(map(repr, unknown))}: choose from {', '.join(REPORT_NAMES)} or all",
                   Exit.BAD_ARGUMENTS)
    if "all" in requested:
        return REPORT_NAMES
    return tuple(dict.fromkeys(requested))


def _formats(text: str) -> tuple[str, ...]:
    chosen = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise fail(f"unknown format {', '.join(unknown) or '(none)'}: choose from {', '.join(FORMATS)}",
                   Exit.BAD_ARGUMENTS)
    return chosen


def _decimal_option(value: Optional[str], name: str):
    if value is None:
        return None
    from shivx_analytics.types import to_money

    try:
        return to_money(value)
    except ValueError as exc:
        option = name if name.startswith("-") else f"--{name.replace('_', '-')}"
        raise fail(f"{option}: {exc}", Exit.BAD_ARGUMENTS) from None


VIEW_REPORTS = ("pnl", "api-usage")  # the reports that can read the materialized views
# The filters each report takes (--user, --strategy, --token).
REPORT_FILTERS = {"pnl": ("user_id", "strategy", "token"), "execution": ("user_id", "token"),
                  "api-usage": ("user_id",), "security": ("user_id",)}


def _report_filters(names, given: dict[str, list[str]]) -> dict[str, list[str]]:
    """The filters given (repeatable options as lists); a filter a selected report cannot take
    is said on stderr (that report runs unfiltered by it)."""
    filters = {name: values for name, values in given.items() if values}
    for name in filters:
        ignoring = [report for report in names if name not in REPORT_FILTERS[report]]
        if ignoring:
            option = {"user_id": "--user"}.get(name, f"--{name}")
            typer.echo(f"note: {option} does not apply to {', '.join(ignoring)}", err=True)
    return filters


def _write_reports(url: str, names, formats, directory: Path, window: dict, capital, summaries: dict | None = None,
                   paths: dict | None = None, filters: dict | None = None, full_chain: bool = False):
    """Build every report in memory, render them into a staging folder, then swap the set in."""
    import shivx_analytics as sx
    from shivx_analytics.reports._export import UnwritableDirectory, write_report_set

    builders: dict[str, Callable[..., Any]] = {"pnl": sx.pnl_report, "execution": sx.execution_report,
                                               "api-usage": sx.api_usage_report, "security": sx.security_report}
    engine = db.create_engine(url)
    try:
        db.health_check(engine)
        built = {}
        for name in names:
            kwargs = dict(window)
            if name == "pnl":
                kwargs["starting_capital"] = capital
            paths = paths or {}
            kwargs["pushdown"] = paths.get("pushdown")
            if name in VIEW_REPORTS:  # the others have no materialized views: --views leaves them be
                kwargs["use_views"] = paths.get("use_views")
            kwargs.update({k: v for k, v in (filters or {}).items() if k in REPORT_FILTERS[name]})
            if name == "security":
                kwargs["full_chain"] = full_chain
            built[name] = builders[name](engine, **kwargs)
    finally:
        engine.dispose()
    _print_empty_window_notes(built)
    _print_chain_line(built)

    def render(staging: Path) -> None:
        for name, report in built.items():
            stem = name.replace("-", "_")
            if "html" in formats:
                report.to_html(staging / f"{stem}.html")
            if "json" in formats:
                report.to_json(staging / f"{stem}.json")
            if "csv" in formats:
                report.to_csv(staging / f"{stem}_csv")
            if summaries is not None:
                summaries[name] = report.summary

    try:
        return write_report_set(directory, render)  # the whole set at once, or nothing
    except UnwritableDirectory as exc:
        raise fail(f"cannot write reports to {str(directory)!r}: {exc.strerror or exc}; "
                   "pass --out a directory you can write to", Exit.FAILED) from None


def _print_empty_window_notes(built: dict) -> None:
    """A report whose window holds no rows says so on stderr (its note names the window)."""
    from shivx_analytics.reports._common import is_empty_window_note

    for name, report in built.items():
        for note in report.notes:
            if is_empty_window_note(note):
                typer.echo(f"{name}: {note}", err=True)


def _print_chain_line(built: dict) -> None:
    """The security report's audit-chain verdict and the positions it read, on stderr."""
    report = built.get("security")
    summary = report.summary if report is not None else {}
    if summary.get("audit_chain_ok") is None:
        return
    verdict = "intact" if summary["audit_chain_ok"] else "BROKEN (see the report's audit_chain table)"
    first, last = summary["audit_chain_first_seq"], summary["audit_chain_last_seq"]
    read = f"positions {first:,}..{last:,} read" if last >= first else "no position after the checkpoint to read"
    typer.echo(f"security: audit chain {verdict}; verified {summary['audit_chain_scope']}; {read}", err=True)


def _print_summaries(summaries: dict) -> None:
    """Each report's headline figures as a reader sees them on the HTML page (labels in words,
    USD to the cent); the exact values are in the JSON and CSV files."""
    from shivx_analytics.reports.display import format_value, label

    for name, summary in summaries.items():
        typer.echo(f"\n{name}")
        width = max((len(label(k)) for k in summary), default=0)
        for key, value in summary.items():
            typer.echo(f"  {label(key):<{width}}  {format_value(value, key).text}")


notebook_app = typer.Typer(no_args_is_help=True, help="Execute notebooks headless.", epilog=EXIT_CODES,
                           rich_markup_mode=None)
app.add_typer(notebook_app, name="notebook")


@notebook_app.command("run")
def notebook_run(
    context: typer.Context,
    notebook: Path = typer.Argument(..., help="The .ipynb to execute"),
    parameter: list[str] = typer.Option([], "-p", "--parameter", help="key=value for the parameters cell (repeatable)"),
    out: Path = typer.Option(..., "--out", help="HTML file to write (self-contained, code hidden)"),
    url: ReadUrlOption = None,
    timeout: TimeoutOption = None,
):
    """Execute NOTEBOOK with parameters and export it as self-contained HTML.

    The notebook's database_url parameter is --url, else the analytics database when
    SHIVX_ANALYTICS_DATABASE_URL is set (a notebook that writes, like 01_quickstart's seeding,
    needs --url pointing at the primary then); otherwise the notebook reads SHIVX_DATABASE_URL.
    """
    from shivx_analytics.notebook_runner import parse_parameters, run_notebook

    try:
        parameters = parse_parameters(parameter)
    except ValueError as exc:
        raise fail(f"{exc}: pass -p NAME=VALUE", Exit.BAD_ARGUMENTS) from None
    if not notebook.is_file():
        raise fail(f"notebook {str(notebook)!r} does not exist", Exit.BAD_ARGUMENTS)
    defined = _notebook_parameters(notebook)
    _check_notebook_parameters(notebook, parameters, defined)
    if url:
        os.environ["SHIVX_DATABASE_URL"] = url
    if "database_url" in defined or url:  # a notebook without the parameter may read no database
        read = _read_url(context, url)
        if "database_url" in defined:  # the database checked above, not the notebook's own default
            parameters.setdefault("database_url", _absolute(read))
    target = run_limited(timeout, "notebook run", lambda: run_notebook(notebook, parameters, out))
    typer.echo(str(target))


# Notebook parameters that are instants or amounts, checked before the kernel starts.
INSTANT_PARAMETERS = ("as_of", "since", "until")


def _notebook_parameters(notebook: Path) -> list[str]:
    """The names the notebook's cell tagged ``parameters`` defines (papermill reads them)."""
    import papermill

    try:
        return list(papermill.inspect_notebook(str(notebook)))
    except Exception as exc:  # not JSON, not a notebook
        raise fail(f"cannot read notebook {str(notebook)!r}: {_first_line(exc)}; pass a .ipynb file",
                   Exit.BAD_ARGUMENTS) from None


def _check_notebook_parameters(notebook: Path, parameters: dict, defined: list[str]) -> None:
    """Every -p names a parameter of the notebook, and instants and amounts are well-formed (exit 2)."""
    unknown = [name for name in parameters if name not in defined]
    if unknown:
        valid = ", ".join(defined) if defined else "none (it has no cell tagged 'parameters')"
        raise fail(f"{notebook.name} has no parameter {', '.join(unknown)}: its parameters are {valid}",
                   Exit.BAD_ARGUMENTS)
    for name, value in parameters.items():
        if name in INSTANT_PARAMETERS:
            _parse_when(value, f"-p {name}")
        elif name == "starting_capital":
            capital = _decimal_option(value, "-p starting_capital")
            if capital <= 0:
                raise fail(f"-p starting_capital must be > 0 USD, got {value!r}", Exit.BAD_ARGUMENTS)


def _absolute(url: str) -> str:
    """A SQLite URL with an absolute path: the notebook runs in its own folder."""
    path = db.database_path(url)
    if path is None or path.is_absolute():
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=str(path.resolve())).render_as_string(hide_password=False)


def main() -> None:
    """Console-script entry point: an exception no command mapped still exits by exit_for, with a
    message instead of a traceback."""
    # psycopg logs "error ignored terminating <psycopg.Copy ...>" when a COPY's connection dies:
    # the error line below already says so, for a shell user.
    logging.getLogger("psycopg").setLevel(logging.ERROR)
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:
        code, message = exit_for(exc)
        typer.echo(f"error: {message}", err=True)
        sys.exit(int(code))


if __name__ == "__main__":
    main()
