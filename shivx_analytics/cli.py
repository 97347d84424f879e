"""`shivx-analytics`: headless, cron-friendly entry point.

Exit codes: 0 success; 2 bad arguments; 3 database unreachable; 4 the work itself failed.
Errors go to stderr, database URLs always with the password masked; no prompts.
"""

from __future__ import annotations

import json
import sys
from enum import IntEnum
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
        if _is_connection_error(exc):
            raise fail(f"database unreachable: {_first_line(exc)}", Exit.DATABASE_UNREACHABLE) from None
        raise fail(f"{type(exc).__name__}: {_first_line(exc)}", Exit.FAILED) from None


def _is_connection_error(exc: BaseException) -> bool:
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, ConnectionError)) and (
        "connect" in str(exc).lower() or "unable to open" in str(exc).lower()
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


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


@app.command("health")
def health(url: UrlOption = None, as_json: bool = typer.Option(False, "--json", help="Print JSON")):
    """Connect and report backend, server version and latency."""
    status = run_guarded(lambda: db.health_check(db.resolve_url(url)))
    if as_json:
        typer.echo(json.dumps(status.as_dict(), sort_keys=True))
    else:
        typer.echo(f"ok  {status.backend} {status.server_version}  {status.latency_ms:.2f} ms  {status.url}")


def main() -> None:
    """Console-script entry point."""
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
