"""`shivx-analytics`: headless, cron-friendly entry point.

Exit codes: 0 success; 2 bad arguments; 3 database unreachable; 4 the work itself failed.
Errors go to stderr, database URLs always with the password masked; no prompts.
"""

from __future__ import annotations

import json
import os
import sys
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Optional

import typer

from shivx_analytics import db

EXIT_OK = 0


class Exit(IntEnum):
    BAD_ARGUMENTS = 2
    DATABASE_UNREACHABLE = 3
    FAILED = 4


app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ShivX analytics: migrations, demo data, reports and notebooks, headless.")
db_app = typer.Typer(no_args_is_help=True, help="Database migrations and checks.")
app.add_typer(db_app, name="db")

UrlOption = Annotated[Optional[str], typer.Option("--url", help="Database URL (default: SHIVX_DATABASE_URL, else ./shivx_demo.db)",
                                                  envvar="SHIVX_DATABASE_URL", show_envvar=True)]
# Commands that only read (report, notebook run) read the analytics database when one is set.
ReadUrlOption = Annotated[Optional[str], typer.Option(
    "--url", help="Database URL to read (default: SHIVX_ANALYTICS_DATABASE_URL, else SHIVX_DATABASE_URL, "
                  "else ./shivx_demo.db)", envvar="SHIVX_DATABASE_URL", show_envvar=True)]


def fail(message: str, code: Exit) -> typer.Exit:
    """Print ``message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(int(code))


def run_guarded(work):
    """Run ``work()``, mapping an unreachable database and other failures to exit codes."""
    try:
        return work()
    except typer.Exit:
        raise
    except db.DatabaseUnavailable as exc:
        raise fail(str(exc), Exit.DATABASE_UNREACHABLE) from None
    except ValueError as exc:
        raise fail(str(exc), Exit.BAD_ARGUMENTS) from None
    except Exception as exc:  # the work failed: say what, never with a secret in it
        if db.is_connection_lost(exc):
            raise fail(f"database unreachable or connection lost: {_first_line(exc)}",
                       Exit.DATABASE_UNREACHABLE) from None
        if isinstance(exc, OSError):  # writing the output failed: unwritable, disk full, file too large
            raise fail(f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", Exit.FAILED) from None
        raise fail(f"{type(exc).__name__}: {_first_line(exc)}", Exit.FAILED) from None


TimeoutOption = Annotated[Optional[float], typer.Option(
    "--timeout", help="Seconds the run may take; past it it stops, writes nothing and exits 3 "
                      "(default: SHIVX_TIMEOUT_S, else no limit)")]


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
    analytics database (SHIVX_ANALYTICS_DATABASE_URL), else SHIVX_DATABASE_URL (db.analytics_url)."""
    source = context.get_parameter_source("url")  # an enum of the click that typer bundles
    if getattr(source, "name", None) == "COMMANDLINE":
        return db.analytics_url(url)
    return db.analytics_url(primary=url)


@db_app.command("upgrade")
def db_upgrade(url: UrlOption = None, revision: str = typer.Argument("head", help="Target revision")):
    """Migrate the database up to REVISION (default head)."""
    target = db.resolve_url(url)
    run_guarded(lambda: (db.health_check(target), db.migrate(target, revision)))
    typer.echo(f"{db.mask_url(target)}: at {db.current_revision(target)}")


@db_app.command("downgrade")
def db_downgrade(url: UrlOption = None, revision: str = typer.Argument("-1", help="Target revision (base = empty)")):
    """Migrate the database down to REVISION (default one step)."""
    target = db.resolve_url(url)
    run_guarded(lambda: (db.health_check(target), db.downgrade(target, revision)))
    typer.echo(f"{db.mask_url(target)}: at {db.current_revision(target) or 'base'}")


@db_app.command("current")
def db_current(url: UrlOption = None):
    """Print the database's revision (or 'base' when empty)."""
    target = db.resolve_url(url)
    revision = run_guarded(lambda: db.current_revision(target))
    typer.echo(revision or "base")


@db_app.command("check")
def db_check(url: UrlOption = None):
    """Exit 0 if the database is at head and matches the models; 4 otherwise."""
    target = db.resolve_url(url)
    problems = run_guarded(lambda: db.schema_problems(target))
    if problems:
        for problem in problems:
            typer.echo(f"drift: {problem}", err=True)
        raise typer.Exit(int(Exit.FAILED))
    typer.echo(f"{db.mask_url(target)}: at head {db.head_revision()}, schema matches the models")


@db_app.command("grant")
def db_grant(
    url: UrlOption = None,
    app_role: str = typer.Option("shivx_app", help="Application role: writes trading tables, appends to the audit log"),
    analytics_role: str = typer.Option("shivx_analytics", help="Read-only role without access to secret columns"),
    app_password_env: Optional[str] = typer.Option(None, help="Name of an environment variable holding the app role's password"),
    analytics_password_env: Optional[str] = typer.Option(None, help="Name of an environment variable holding the analytics role's password"),
):
    """PostgreSQL: create/refresh the application and read-only analytics roles and their grants."""
    from shivx_analytics.roles import RoleNames, grant_roles

    def password(variable):
        if variable is None:
            return None
        if variable not in os.environ:
            raise fail(f"environment variable {variable} is not set", Exit.BAD_ARGUMENTS)
        return os.environ[variable]

    target = db.resolve_url(url)
    names = RoleNames(app=app_role, analytics=analytics_role)
    statements = run_guarded(lambda: grant_roles(target, names, app_password=password(app_password_env),
                                                 analytics_password=password(analytics_password_env)))
    for statement in statements:
        typer.echo(statement)


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

    target = db.resolve_url(url)

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

    target = db.resolve_url(url)
    seconds = run_guarded(lambda: (db.health_check(target), refresh_views(target, concurrently=concurrently))[1])
    for name, took in seconds.items():
        typer.echo(f"{name}\trefreshed in {took:.2f} s")


@app.command("health")
def health(url: UrlOption = None, as_json: bool = typer.Option(False, "--json", help="Print JSON")):
    """Connect and report backend, server version and latency."""
    status = run_guarded(lambda: db.health_check(db.resolve_url(url)))
    if as_json:
        typer.echo(json.dumps(status.as_dict(), sort_keys=True))
    else:
        typer.echo(f"ok  {status.backend} {status.server_version}  {status.latency_ms:.2f} ms  {status.url}")


REPORT_NAMES = ("pnl", "execution", "api-usage", "security")
FORMATS = ("html", "json", "csv")


def _progress_enabled(flag: bool) -> bool:
    return flag or sys.stderr.isatty()


def _parse_when(value: Optional[str], name: str):
    """ISO date/datetime text -> aware UTC datetime (naive means UTC); None stays None."""
    if value is None:
        return None
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
        if pd.isna(stamp):  # "NaT", "nan": no instant at all
            raise ValueError(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        return stamp.to_pydatetime()  # years outside 1..9999 (e.g. "-1") fail here
    except (ValueError, TypeError, OverflowError):
        raise fail(f"--{name.replace('_', '-')} {value!r} is not an ISO date or datetime in the years 1-9999 "
                   "UTC (e.g. 2025-10-28 or 2025-10-28T12:00:00Z)", Exit.BAD_ARGUMENTS) from None


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

    target = db.resolve_url(url)
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
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Point in time the report describes (default now)"),
    starting_capital: Optional[str] = typer.Option(None, "--starting-capital", help="USD, for equity and drawdown %"),
    out: Path = typer.Option(Path("reports"), "--out", help="Directory the files are written to"),
    formats: str = typer.Option("html,json,csv", "--format", help="Comma-separated: html, json, csv"),
    pushdown: Optional[bool] = typer.Option(
        None, "--pushdown/--no-pushdown",
        help="PostgreSQL: compute the aggregates in the database, or load the rows (default: SHIVX_PUSHDOWN, auto)"),
    views: Optional[bool] = typer.Option(
        None, "--views/--no-views",
        help="PostgreSQL: read the materialized views (pnl, api-usage; default: SHIVX_USE_VIEWS)"),
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
    target = _read_url(context, url)
    paths = {"pushdown": pushdown, "use_views": views}
    written = run_limited(timeout, "report", lambda: _write_reports(target, selected, chosen, out, window, capital,
                                                                    paths=paths))
    for path in written:
        typer.echo(str(path))


@app.command("demo")
def demo(
    path: Path = typer.Option(Path("shivx_demo.db"), "--db", help="SQLite file to create or reuse"),
    out: Path = typer.Option(Path("reports"), "--out", help="Reports go to OUT/<as-of date>/"),
    as_of: Optional[str] = typer.Option(None, "--as-of", help="Default: today 00:00 UTC"),
    progress: bool = typer.Option(False, "--progress", help="Show progress bars even when not on a terminal"),
):
    """The main job: SQLite file, migrate, seed once, write every report (HTML, JSON, CSV)."""
    import datetime as dt

    from shivx_analytics.demo import generate_demo_data, is_seeded

    when = _parse_when(as_of, "as_of") or dt.datetime.now(dt.timezone.utc).replace(
        hour=0, minute=0, second=0, microsecond=0)
    target = f"sqlite:///{path}"

    def work():
        db.migrate(target)
        if not is_seeded(target):
            generate_demo_data(target, seed=0, scale="small", as_of=when, progress=_progress_enabled(progress))
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
        raise fail(f"--{name.replace('_', '-')}: {exc}", Exit.BAD_ARGUMENTS) from None


VIEW_REPORTS = ("pnl", "api-usage")  # the reports that can read the materialized views


def _write_reports(url: str, names, formats, directory: Path, window: dict, capital, summaries: dict | None = None,
                   paths: dict | None = None):
    """Build every report in memory, render into a staging folder, then move files into place."""
    import contextlib
    import shutil
    import tempfile

    import shivx_analytics as sx

    builders = {"pnl": sx.pnl_report, "execution": sx.execution_report,
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
            built[name] = builders[name](engine, **kwargs)
    finally:
        engine.dispose()
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=directory))
    except OSError as exc:
        raise fail(f"cannot write reports to {str(directory)!r}: {exc.strerror or exc}; "
                   "pass --out a directory you can write to", Exit.FAILED) from None
    try:
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
        written = []
        for item in sorted(staging.iterdir()):
            destination = directory / item.name
            if destination.is_dir():
                shutil.rmtree(destination)
            os.replace(item, destination)
            written.append(destination)
        return written
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:  # a failed first run leaves no empty folder behind either
            with contextlib.suppress(OSError):
                directory.rmdir()
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _print_summaries(summaries: dict) -> None:
    from shivx_analytics.reports.base import _display

    for name, summary in summaries.items():
        typer.echo(f"\n{name}")
        width = max((len(k) for k in summary), default=0)
        for key, value in summary.items():
            typer.echo(f"  {key:<{width}}  {_display(value)}")


notebook_app = typer.Typer(no_args_is_help=True, help="Execute notebooks headless.")
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
        raise fail(str(exc), Exit.BAD_ARGUMENTS) from None
    if not notebook.is_file():
        raise fail(f"notebook {str(notebook)!r} does not exist", Exit.BAD_ARGUMENTS)
    read = _read_url(context, url)
    if url:
        os.environ["SHIVX_DATABASE_URL"] = url
    if url or read != db.resolve_url(url):  # else the notebook's own default database
        parameters.setdefault("database_url", read)
    target = run_limited(timeout, "notebook run", lambda: run_notebook(notebook, parameters, out))
    typer.echo(str(target))


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
