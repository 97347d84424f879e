"""A ``source``: what every loader, report, aggregate and the chain check read from, and how it is opened.

A source is one of:

- None: the analytics database, ``db.analytics_url()`` (SHIVX_ANALYTICS_DATABASE_URL, a read
  replica say, else SHIVX_DATABASE_URL, else the local SQLite file); for a write, None is the
  primary database (SHIVX_DATABASE_URL, else the local SQLite file), where writes go;
- a database URL, as text or a ``sqlalchemy.URL`` (an async driver is read through its sync twin);
- an Engine, a Connection or a Session.

Anything else raises one TypeError naming the type received and these kinds (``check``).

- ``read_connection(source)``: one Connection reading one snapshot (PostgreSQL: REPEATABLE READ,
  read only), which a report can hold for its whole run. A URL or None gets an engine of its own,
  created with the settings (statement timeout, TLS, SQLite's busy timeout; a read-only SQLite
  file is read in the journal mode it has) and disposed on exit; an Engine's connection is closed
  on exit, the Engine kept; a Connection or Session given is used as it is, in its transaction
  (a Session's pending objects are flushed first, as its own queries would), and left open.
- ``opened(source)``: the source as the loaders take it, without connecting: a URL or None
  becomes one engine for the caller's whole run (disposed on exit), anything else stays as is.
  The loaders read through their own fast, read-only connections (shivx_analytics/frames/), so
  opening a Connection up front would connect, and create a missing SQLite file, before they do.
- ``write_transaction(source)``: a Connection inside a transaction that is rolled back if anything
  fails. A URL, None or an Engine: a transaction of its own, committed on exit. A Connection
  already in a transaction, or a Session: the caller's, which the caller commits. A Connection
  not in one: a transaction begun and committed here.
- ``url(source)``, ``label(source)``: the database a source reads, and its URL as shown (password
  masked); ``in_memory(url)`` and ``has_uncommitted_writes(connection)`` decide whether the
  loaders' fast paths can read it (docs/performance.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.orm import Session

from shivx_analytics import db

__all__ = [
    "Source", "ACCEPTED", "check", "read_connection", "opened", "write_transaction", "url", "label",
    "session_connection", "flush_pending", "in_memory", "has_uncommitted_writes",
]

Source = Engine | Connection | Session | str | URL | None
ACCEPTED = ("None (the analytics database), a database URL (str or sqlalchemy URL), "
            "a SQLAlchemy Engine, Connection or Session")


def check(source: object) -> None:
    """Raise the one TypeError for anything that is not a source."""
    if source is not None and not isinstance(source, (Engine, Connection, Session, str, URL)):
        raise TypeError(f"source must be {ACCEPTED}, not {type(source).__name__}")


@contextmanager
def read_connection(source: Source) -> Iterator[Connection]:
    """One Connection for ``source``, reading one snapshot (see the module docstring)."""
    check(source)
    if isinstance(source, Connection):
        yield source
    elif isinstance(source, Session):
        yield session_connection(source)
    elif isinstance(source, Engine):
        with _snapshot(source) as connection:
            yield connection
    else:
        with opened(source) as engine:
            assert isinstance(engine, Engine)
            with _snapshot(engine) as connection:
                yield connection


@contextmanager
def opened(source: Source) -> Iterator[Engine | Connection | Session]:
    """The source as the loaders take it: a URL or None becomes one engine, disposed on exit."""
    check(source)
    if isinstance(source, (Engine, Connection, Session)):
        yield source
        return
    engine = db.create_engine(db.analytics_url(source))
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def write_transaction(source: Source) -> Iterator[Connection]:
    """A Connection inside a transaction that is rolled back if anything fails (module docstring)."""
    check(source)
    if isinstance(source, Session):
        yield source.connection()  # the session's transaction; the caller commits
    elif isinstance(source, Connection):
        if source.in_transaction():
            yield source
        else:
            with source.begin():
                yield source
    elif isinstance(source, Engine):
        with source.begin() as connection:
            yield connection
    else:
        engine = db.create_engine(source)  # None: the primary database (SHIVX_DATABASE_URL)
        try:
            with engine.begin() as connection:
                yield connection
        finally:
            engine.dispose()


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose statements all read one snapshot (PostgreSQL: REPEATABLE READ, read
    only), so the several statements of a push-down agree with each other as one load would."""
    options = {"isolation_level": "REPEATABLE READ", "postgresql_readonly": True} \
        if engine.dialect.name == "postgresql" else {}
    with engine.connect().execution_options(**options) as connection:
        yield connection


def session_connection(session: Session) -> Connection:
    """The Session's connection, in its transaction, after flushing its pending objects."""
    flush_pending(session)
    return session.connection()


def flush_pending(session: Session) -> None:
    """Flush the Session's pending objects, as its own queries would when it autoflushes, so a
    read through its connection sees them."""
    if session.autoflush and (session.new or session.dirty or session.deleted):
        session.flush()


def url(source: Source) -> URL:
    """The URL of the database ``source`` reads, with our driver: an Engine's (Connection's,
    Session's bind's) own; for a URL or None, the one create_engine would connect to (with the
    settings' TLS, timeouts and keepalives for PostgreSQL)."""
    check(source)
    if isinstance(source, Engine):
        return source.url
    if isinstance(source, Connection):
        return source.engine.url
    if isinstance(source, Session):
        bind = source.get_bind()
        return bind.engine.url if isinstance(bind, Connection) else bind.url
    return db.engine_url(db.analytics_url(source))


def label(source: Source) -> str:
    """The database URL of a source with our driver named (as the engine shows it), password
    masked (never the password itself)."""
    check(source)
    if isinstance(source, (Engine, Connection, Session)):
        return db.mask_url(url(source))
    return db.mask_url(db.normalize_url(db.analytics_url(source)))


def in_memory(database: URL) -> bool:
    """An in-memory SQLite database: only connections of its own engine see it."""
    name = database.database or ""
    return database.get_backend_name() == "sqlite" and (
        name in ("", ":memory:") or name.startswith("file::memory:") or "mode=memory" in name
        or database.query.get("mode") == "memory")


def has_uncommitted_writes(connection: Connection) -> bool:
    """Whether the connection's transaction has written something that other connections cannot
    see yet (PostgreSQL: the transaction has an xid; SQLite: the driver has a transaction open)."""
    if not connection.in_transaction():
        return False
    if connection.dialect.name == "sqlite":
        return bool(getattr(connection.connection.dbapi_connection, "in_transaction", True))
    return bool(connection.exec_driver_sql("SELECT txid_current_if_assigned() IS NOT NULL").scalar())
