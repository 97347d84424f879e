"""A whole run's time limit (``--timeout`` / SHIVX_TIMEOUT_S on `report`, `notebook run`, `seed`).

The connect timeout and TCP keepalives (db.py) end the waits a dead peer causes; a database whose
network path freezes (a proxy that stops forwarding, its sockets still open and its keepalives
answered) is noticed by nothing but a clock. ``time_limit(seconds)`` is that clock:

1. At the deadline SIGALRM raises in the main thread (RunTimeout where the limit was set), wherever it waits in Python
   (psycopg's wait loop, Jupyter's message loop), and the registered interrupters run, every
   INTERRUPT_EVERY_S until the work returns (the loaders' DuckDB queries are interrupted and their
   sockets shut down: DuckDB reconnects, so once is not enough). Whatever the work raises once
   the deadline has passed comes out as RunTimeout (a DatabaseUnavailable: the CLI exits 3), and
   the work's own cleanup runs as usual: nothing half-written is left.
2. A wait that none of these reach (a C library blocked in a socket read that holds on to the
   main thread) is abandoned ``grace_s`` later: ``abandon(message)`` is called from a watchdog
   thread and must end the process (the CLI prints the error and exits 3; no output file has been
   started, since every output is staged and moved into place only after the database work).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from shivx_analytics.db import RunTimeout

__all__ = ["time_limit", "register_interrupter", "GRACE_S"]

GRACE_S = 3.0  # seconds between the deadline and abandoning a wait nothing could interrupt
INTERRUPT_EVERY_S = 0.1  # the interrupters run this often during the grace period

_interrupters: list[Callable[[], None]] = []


class _Expired(BaseException):
    """Raised by SIGALRM inside the work, turned into RunTimeout where the limit was set. Not an
    Exception, as KeyboardInterrupt is not: no ``except Exception`` in between swallows it, and
    SQLAlchemy invalidates a connection it interrupts (no ROLLBACK sent into a frozen socket)."""


def register_interrupter(interrupt: Callable[[], None]) -> None:
    """``interrupt()`` is called (from another thread) when a time limit expires: it should make
    whatever blocks the main thread return with an error (frames interrupts DuckDB queries)."""
    _interrupters.append(interrupt)


def _message(seconds: float, what: str) -> str:
    return (f"{what} did not finish within the time limit of {seconds:g} s (--timeout / SHIVX_TIMEOUT_S): "
            "the database stopped answering; check that it is up and reachable (`shivx-analytics health`), "
            "or raise the limit")


class _QuietInterruptedResets(logging.Filter):
    """Once the limit expired, a connection interrupted mid-command goes back to its pool, whose
    ROLLBACK fails ("another command is already in progress") and is logged with a traceback,
    although the pool then discards the connection as it should: that record says nothing the
    RunTimeout does not, so it is dropped."""

    def __init__(self, expired: threading.Event):
        super().__init__()
        self.expired = expired

    def filter(self, record: logging.LogRecord) -> bool:
        return not (self.expired.is_set() and record.getMessage().startswith("Exception during reset"))


def _pool_loggers() -> list[logging.Logger]:
    """The loggers of SQLAlchemy's pool classes (a pool logs to its class's logger, named as
    sqlalchemy.log names it; a filter on a parent logger would see none of it)."""
    from sqlalchemy.pool import Pool

    classes, pending = set(), [Pool]
    while pending:
        cls = pending.pop()
        classes.add(cls)
        pending += [sub for sub in cls.__subclasses__() if sub not in classes]
    names = {getattr(cls, "_sqla_logger_namespace", None) or f"{cls.__module__}.{cls.__name__}" for cls in classes}
    return [logging.getLogger(name) for name in sorted(names)]


@contextmanager
def time_limit(seconds: float | None, *, what: str = "the run", grace_s: float = GRACE_S,
               abandon: Callable[[str], None] | None = None) -> Iterator[None]:
    """Run the block within ``seconds`` (None: no limit), else raise RunTimeout (see the module).

    Only in the main thread (SIGALRM is delivered there); ``abandon`` None: no watchdog."""
    if seconds is None:
        yield
        return
    if seconds <= 0:
        raise ValueError(f"--timeout must be > 0 seconds, got {seconds!r}")
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("time_limit works in the main thread only (it uses SIGALRM)")
    message = _message(seconds, what)
    expired = threading.Event()
    finished = threading.Event()

    def on_alarm(signum, frame):  # noqa: ANN001
        expired.set()
        raise _Expired(message)

    def watchdog():
        if finished.wait(seconds):
            return
        expired.set()
        given_up = time.monotonic() + grace_s
        while time.monotonic() < given_up:  # again and again: a client may reconnect and wait anew
            for interrupt in list(_interrupters):
                try:
                    interrupt()
                except Exception:  # noqa: BLE001  (an interrupter that fails must not stop the others)
                    pass
            if finished.wait(INTERRUPT_EVERY_S):
                return
        if abandon is not None:
            abandon(message)

    quiet = _QuietInterruptedResets(expired)
    pool_loggers = _pool_loggers()
    for logger in pool_loggers:
        logger.addFilter(quiet)
    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    guard = threading.Thread(target=watchdog, name="shivx-time-limit", daemon=True)
    started = time.monotonic()
    guard.start()
    try:
        yield
    except _Expired as exc:
        raise RunTimeout(str(exc)) from None
    except RunTimeout:
        raise
    except BaseException as exc:
        if expired.is_set() or time.monotonic() - started >= seconds:
            raise RunTimeout(message) from exc
        raise
    finally:
        finished.set()
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        for logger in pool_loggers:
            logger.removeFilter(quiet)
