"""The audit log's hash chain: what is hashed, how, and how the chain grows without forks.

Every security_audit_logs row carries

- ``chain_seq``: its position in the chain, 1, 2, 3, ... without gaps (a unique index);
- ``prev_hash``: the ``row_hash`` of the row before it (``GENESIS_HASH``, 64 zeros, for the first);
- ``row_hash``: ``sha256_hex(prev_hash + "\\n" + canonical)``, where ``canonical`` is the row's
  content as compact JSON with sorted keys (``canonical_content``): log_id (dashed text),
  timestamp (UTC, ISO 8601 with microseconds, ``2025-10-28T12:00:00.000000+00:00``),
  event_type, ip_address, resource, action, success, details, request_id and chain_seq.

user_id is deliberately NOT hashed. It is the one column that legitimately changes after the
insert: the foreign key's ``ON DELETE SET NULL`` clears it when the user is deleted (the
immutability triggers let exactly that through). Hashing it would make every deleted user look
like tampering. The price: the chain does not prove which user a row named, only that the rest
of the row is as written.

Numbers inside details are hashed by value: a float with an integral value is hashed as the
integer its shortest text names (PostgreSQL's JSONB keeps ``1e16`` as the numeric
``10000000000000000``, which reads back as an int; ``1e300`` as ``10**300``), so the same document
hashes the same on both backends.

The one-row table ``security_audit_chain`` (id = 1) holds the chain's tip (last_seq, last_hash):
the log must end exactly there, which exposes rows removed from the end. A writer locks the
chain (``lock_chain``: PostgreSQL locks the tip row FOR UPDATE; SQLite takes the database's write lock by updating the tip row before reading it, the
equivalent of BEGIN IMMEDIATE), links its rows to the tip and moves the tip, all in its own
transaction: concurrent writers queue, and the chain never forks. The ORM does this for every
SecurityAuditLog it flushes (a ``before_flush`` hook on every Session, sync or async); bulk
writers call ``append_audit_entries(connection, entries)``; the demo generator links its rows
with ``ChainTip.link``. ``shivx_analytics.audit_chain.verify_audit_chain`` checks a chain.

What this proves: rows edited, removed or reordered behind the triggers' back (e.g. with the
triggers disabled) are found, at the first broken row. What it cannot prove: someone able to
rewrite every later row and the tip can rebuild a consistent chain; record ``last_hash``
outside the database from time to time (a copy nobody can rewrite) to detect that too.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _json_string
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from shivx_analytics.models.audit_log import SecurityAuditLog
from shivx_analytics.models.base import metadata, new_uuid, utcnow
from shivx_analytics.types import UTCDateTime

__all__ = [
    "GENESIS_HASH", "CHAIN_TABLE", "HASHED_FIELDS", "security_audit_chain",
    "canonical_content", "canonical_values", "row_hash", "ChainTip", "lock_chain", "store_tip", "append_audit_entries",
    "timestamp_text", "uuid_text",
]

GENESIS_HASH = "0" * 64
CHAIN_TABLE = "security_audit_chain"
# The content hashed besides chain_seq. Not user_id: see the module docstring.
HASHED_FIELDS = ("log_id", "timestamp", "event_type", "ip_address", "resource", "action", "success",
                 "details", "request_id")

security_audit_chain = sa.Table(
    CHAIN_TABLE, metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("last_seq", sa.BigInteger, nullable=False),
    sa.Column("last_hash", sa.String(64), nullable=False),
    sa.CheckConstraint("id = 1", name="single_row"),
)
# Databases built with metadata.create_all (tests, in-memory tools) get the tip row too;
# migrations insert it themselves.
sa.event.listen(security_audit_chain, "after_create", sa.DDL(
    f"INSERT INTO {CHAIN_TABLE} (id, last_seq, last_hash) VALUES (1, 0, '{GENESIS_HASH}')"))


# Verified positions of the chain (revision 0008; append-only, owner-written): verification
# starts after the latest one (shivx_analytics/chain_checkpoints.py, docs/security.md).
CHECKPOINT_TABLE = "security_audit_chain_checkpoints"
chain_checkpoints = sa.Table(
    CHECKPOINT_TABLE, metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("chain_seq", sa.BigInteger, nullable=False),
    sa.Column("row_hash", sa.String(64), nullable=False),
    sa.Column("verified_from", sa.BigInteger, nullable=False),
    sa.Column("recorded_at", UTCDateTime(), nullable=False),
    sa.Column("recorded_by", sa.String(128), nullable=True),
    sa.CheckConstraint("chain_seq >= 1", name="chain_seq_positive"),
    sa.CheckConstraint("verified_from >= 1 AND verified_from <= chain_seq + 1", name="verified_from_range"),
)


# What is hashed ------------------------------------------------------------------------------

_CANONICAL = ('{"action":%s,"chain_seq":%d,"details":%s,"event_type":%s,"ip_address":%s,"log_id":"%s",'
              '"request_id":%s,"resource":%s,"success":%s,"timestamp":"%s"}')
_compact_json = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
_UUID_TEXT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_UUID_HEX = re.compile(r"[0-9a-f]{32}")
_TIME_TEXT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00")


def canonical_content(entry: Mapping[str, Any], chain_seq: int) -> str:
    """The row's hashed content: ``json.dumps({...}, sort_keys=True, separators=(",", ":"))`` of
    HASHED_FIELDS and chain_seq (written out field by field: the same text, three times faster).

    ``entry`` maps the field names to the values as stored: log_id a UUID (or its dashed text),
    timestamp an aware datetime (or its canonical text, see ``timestamp_text``), details a JSON
    document (or JSON text), success a bool.
    """
    return canonical_values(entry["log_id"], entry["timestamp"], entry["event_type"], entry["ip_address"],
                            entry["resource"], entry["action"], entry["success"], entry["details"],
                            entry["request_id"], chain_seq)


def canonical_values(log_id: Any, timestamp: Any, event_type: str, ip_address: str | None, resource: str | None,
                     action: str, success: bool, details: Any, request_id: str | None, chain_seq: int) -> str:
    """canonical_content with the fields given in HASHED_FIELDS order (for readers of whole rows)."""
    return _CANONICAL % (
        _required(action, "action"), _seq(chain_seq), details_text(details), _required(event_type, "event_type"),
        _optional(ip_address), uuid_text(log_id), _optional(request_id), _optional(resource),
        _BOOLEANS.get(success) if type(success) in (bool, int) and success in (0, 1) else _not_bool(success),
        timestamp_text(timestamp),
    )


_BOOLEANS = {True: "true", False: "false"}  # 1 and 0 too: SQLite stores booleans as integers


def _not_bool(value: Any) -> str:
    raise ValueError(f"success must be a bool, not {value!r}")


def row_hash(prev_hash: str, canonical: str) -> str:
    """sha256_hex(prev_hash + "\\n" + canonical)."""
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode("utf-8")).hexdigest()


def uuid_text(value: Any) -> str:
    """A UUID (or its text, dashed or 32 hex digits as SQLite stores it) as dashed lowercase text."""
    if type(value) is str:
        if _UUID_TEXT.fullmatch(value):
            return value
        if _UUID_HEX.fullmatch(value):
            return f"{value[:8]}-{value[8:12]}-{value[12:16]}-{value[16:20]}-{value[20:]}"
    if isinstance(value, uuid.UUID):
        return str(value)
    if value is None:
        raise ValueError("log_id is required")
    return str(uuid.UUID(str(value)))


def timestamp_text(value: Any) -> str:
    """An aware datetime as UTC ISO 8601 with microseconds: ``2025-10-28T12:00:00.000000+00:00``.

    Text is accepted only in exactly that form (the demo generator formats whole columns at once).
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"timestamp {value.isoformat()} is naive: audit timestamps are aware UTC")
        return value.astimezone(timezone.utc).isoformat(timespec="microseconds")
    if type(value) is str and _TIME_TEXT.fullmatch(value):
        return value
    raise ValueError(f"timestamp must be an aware datetime, not {value!r}")


def details_text(details: Any) -> str:
    """A JSON document (or JSON text) as compact JSON, keys sorted, integral floats as integers."""
    if isinstance(details, str):  # integral floats become ints as they are parsed: no walk needed
        return _compact_json(_parse_json(details))
    return _compact_json(_numbers(details))


def _parse_float(text: str) -> float | int:
    value = float(text)
    return _integral(value) if value.is_integer() else value


_parse_json = json.JSONDecoder(parse_float=_parse_float).decode


def _numbers(value: Any) -> Any:
    kind = type(value)
    if kind is dict:
        return {key: _numbers(item) for key, item in value.items()}
    if kind is list:
        return [_numbers(item) for item in value]
    if kind is float and value.is_integer():
        return _integral(value)
    return value


def _integral(value: float) -> int:
    """An integral float as the integer its shortest text names (1e300 -> 10**300, as JSONB keeps it)."""
    return int(value) if -2**53 < value < 2**53 else int(Decimal(repr(value)))


def _required(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text, not {value!r}")
    return _json_string(value)


def _optional(value: Any) -> str:
    if value is None:
        return "null"
    if not isinstance(value, str):
        raise ValueError(f"expected text or None, not {value!r}")
    return _json_string(value)


def _seq(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"chain_seq must be a positive integer, not {value!r}")
    return value


# The chain's tip, its lock, and linking rows -------------------------------------------------


@dataclass
class ChainTip:
    """The end of the chain: the last row's chain_seq and row_hash (0 and GENESIS_HASH when empty)."""

    last_seq: int = 0
    last_hash: str = GENESIS_HASH

    def link(self, entry: Mapping[str, Any]) -> tuple[int, str, str]:
        """Append ``entry``: returns its (chain_seq, prev_hash, row_hash) and moves the tip to it."""
        seq, prev = self.last_seq + 1, self.last_hash
        digest = row_hash(prev, canonical_content(entry, seq))
        self.last_seq, self.last_hash = seq, digest
        return seq, prev, digest


def lock_chain(connection: Connection) -> ChainTip:
    """Lock the chain for the rest of the connection's transaction and read its tip.

    PostgreSQL: the tip row ``FOR UPDATE``, which needs the UPDATE privilege on it: a read-only
    role cannot take it and stall the writers (an advisory lock, which any role may take, could).
    SQLite: an UPDATE of the tip row first, which takes the database's write lock (other writers
    wait for it, up to the busy timeout) before the tip is read: nobody can move it meanwhile.
    """
    table = security_audit_chain
    where = table.c.id == 1
    if connection.dialect.name == "postgresql":
        row = connection.execute(sa.select(table.c.last_seq, table.c.last_hash).where(where).with_for_update()).first()
    else:
        connection.execute(sa.update(table).where(where).values(last_seq=table.c.last_seq))
        row = connection.execute(sa.select(table.c.last_seq, table.c.last_hash).where(where)).first()
    if row is None:
        raise RuntimeError(f"{CHAIN_TABLE} has no row: the database predates the audit hash chain "
                           "(run the migrations: `shivx-analytics db upgrade`)")
    return ChainTip(int(row.last_seq), row.last_hash)


def store_tip(connection: Connection, tip: ChainTip) -> None:
    """Record the chain's new tip (in the transaction that holds the lock and wrote the rows)."""
    table = security_audit_chain
    connection.execute(sa.update(table).where(table.c.id == 1).values(last_seq=tip.last_seq,
                                                                      last_hash=tip.last_hash))


def _stored_details(details: Any) -> Any:
    """details as the JSONData column stores it (a JSON round trip, keys sorted)."""
    try:
        return json.loads(json.dumps(details, sort_keys=True))
    except TypeError as exc:
        raise ValueError(f"details is not JSON-serialisable: {exc}") from None


_CHAIN_FIELDS = ("chain_seq", "prev_hash", "row_hash")


def append_audit_entries(connection: Connection,
                         entries: Iterable[Mapping[str, Any] | SecurityAuditLog]) -> list[dict[str, Any]]:
    """Insert audit entries with SQLAlchemy Core, linked into the chain; returns the rows written.

    For bulk writers that do not go through the ORM (which chains its rows itself). Each entry is
    a SecurityAuditLog or a mapping of its fields (event_type, action, success, and optionally
    user_id, ip_address, resource, details, request_id, log_id, timestamp), validated by the
    model. The chain is locked until the connection's transaction ends: commit soon.
    """
    rows = []
    for entry in entries:
        if isinstance(entry, SecurityAuditLog):
            record = entry
        else:
            given = dict(entry)
            forged = set(given) & set(_CHAIN_FIELDS)
            if forged:
                raise ValueError(f"{sorted(forged)} are assigned by the chain, not by the caller")
            record = SecurityAuditLog.model_validate(given)
        row = {name: getattr(record, name) for name in SecurityAuditLog.__table__.columns.keys()}
        row["log_id"] = row["log_id"] or new_uuid()
        row["timestamp"] = row["timestamp"] or utcnow()
        row["details"] = _stored_details(row["details"] if row["details"] is not None else {})
        rows.append(row)
    if not rows:
        return rows
    tip = lock_chain(connection)
    for row in rows:
        row["chain_seq"], row["prev_hash"], row["row_hash"] = tip.link(row)
    connection.execute(SecurityAuditLog.__table__.insert(), rows)
    store_tip(connection, tip)
    return rows


@sa.event.listens_for(Session, "before_flush")
def _chain_new_audit_rows(session: Session, _flush_context: Any, _instances: Any) -> None:
    """Link the SecurityAuditLog rows about to be inserted, in the order they were added."""
    session.info.pop(_PENDING_TIP, None)  # a flush that failed leaves no tip to record
    new = [obj for obj in session.new if isinstance(obj, SecurityAuditLog)]
    if not new:
        return
    new.sort(key=lambda obj: sa.inspect(obj).insert_order)
    connection = session.connection(bind_arguments={"mapper": sa.inspect(SecurityAuditLog)})
    tip = lock_chain(connection)
    for entry in new:
        if entry.log_id is None:
            entry.log_id = new_uuid()
        if entry.timestamp is None:
            entry.timestamp = utcnow()
        if entry.details is None:
            entry.details = {}
        content = {name: getattr(entry, name) for name in HASHED_FIELDS}
        content["details"] = _stored_details(content["details"])
        entry.chain_seq, entry.prev_hash, entry.row_hash = tip.link(content)
    session.info[_PENDING_TIP] = tip


_PENDING_TIP = "shivx_audit_chain_tip"


@sa.event.listens_for(Session, "after_flush")
def _store_new_tip(session: Session, _flush_context: Any) -> None:
    """Record the tip once the rows are in: from revision 0006 on the database moves the tip as it
    accepts rows and lets it move only to a row that is there (this then writes the same values)."""
    tip = session.info.pop(_PENDING_TIP, None)
    if tip is not None:
        store_tip(session.connection(bind_arguments={"mapper": sa.inspect(SecurityAuditLog)}), tip)
