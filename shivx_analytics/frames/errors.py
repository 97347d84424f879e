"""How a load's failures are said: LoadError, and the lost-connection message every path shares.

Separate because the three transports raise the same errors with the same words (the CLI maps
LoadError to exit 4 and DatabaseUnavailable to exit 3), and no message may contain a password.
"""

from __future__ import annotations

from sqlalchemy.engine import URL

from shivx_analytics.db import DatabaseUnavailable, mask_url

from .schemas import _Frame


class LoadError(RuntimeError):
    """The database answered with an error (the message never contains a password)."""
_RETRY_ADVICE = ("the database could not be reached or went away mid-load: check that it is up and "
                 "reachable (`shivx-analytics health`), then load again")


def _unavailable(exc: BaseException, url: URL, frame: _Frame) -> DatabaseUnavailable:
    """A lost or refused connection on the row-by-row path, said as the fast paths say it."""
    return DatabaseUnavailable(f"loading {frame.name} from {mask_url(url)}: {_first_line(getattr(exc, 'orig', None) or exc)}; {_RETRY_ADVICE}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
