"""Verifying the audit log's hash chain: ``verify_audit_chain(source)`` names the first broken row.

    import shivx_analytics as sx
    result = sx.verify_audit_chain("postgresql://...")
    result.ok, result.rows, result.first_broken   # {'log_id': ..., 'chain_seq': ..., 'reason': ...}

How the chain is built, and what it does and does not prove: shivx_analytics/models/audit_chain.py.
The rows are read in chain_seq order, in batches (the tip row and the checks through SQLAlchemy
Core, the rows as the driver returns them: see _reader), and each row is checked in turn:

- ``seq gap``: its chain_seq is not the previous one + 1 (rows were removed);
- ``prev_hash mismatch``: its prev_hash is not the previous row's row_hash (a row before it was
  removed, replaced or reordered);
- ``row_hash mismatch``: sha256(prev_hash + "\\n" + its canonical content) is not its row_hash
  (its content was changed);
- ``duplicate chain_seq`` / ``row outside the chain``: a second row at one position, or a row
  below position 1 (rows added beside the chain: every row in the table must be in it);
- ``chain tip mismatch``: the log does not end at the tip recorded in security_audit_chain
  (rows removed from the end, or rows added beyond it without the chain's lock).

Writers may append while this runs: the tip is read first and only rows up to it are checked.

Incremental by default: when a checkpoint is stored (shivx_analytics/chain_checkpoints.py,
revision 0008) the rows are read from the latest one on, after checking that the row at its
position still has the row_hash it records (``checkpoint mismatch`` otherwise, at that position).
Rows before it are not read again: the result says so (``scope``, ``checkpoint``, ``first_seq``).
``full_chain=True`` reads from position 1 and checks every stored checkpoint against the chain
(``checkpoint mismatch`` for one that names a row_hash the chain does not have there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from shivx_analytics import chain_checkpoints as checkpoints
from shivx_analytics.chain_checkpoints import Checkpoint
from shivx_analytics.db import mask_url
from shivx_analytics.models import SecurityAuditLog
from shivx_analytics.models.audit_chain import (
    CHAIN_TABLE,
    GENESIS_HASH,
    HASHED_FIELDS,
    append_audit_entries,
    canonical_values,
    row_hash,
    security_audit_chain,
    uuid_text,
)
from shivx_analytics.sources import read_connection as _connection  # one snapshot of the source

__all__ = ["ChainVerification", "verify_audit_chain", "append_audit_entries"]

BATCH_ROWS = 10_000
_LOGS: sa.Table = SecurityAuditLog.__table__


@dataclass(frozen=True)
class ChainVerification:
    """The outcome of verify_audit_chain.

    ok: every row read links and hashes correctly, the log ends at the recorded tip, and (from a
    checkpoint) the checkpoint's row still has its hash, (full) every checkpoint matches the chain.
    rows: the rows read and found intact, in chain order, before the first broken one (all read when ok).
    first_broken: None when ok, else {"log_id": dashed text or None, "chain_seq": int, "reason": text}.

    How it was reached (not compared by ==, which compares the verdict: ok, rows, first_broken):
    full: True when read from position 1; checkpoint: the Checkpoint it started from (None: full);
    first_seq..last_seq: the positions it covered (last_seq: the tip it verified up to, 0 when the
    chain is empty), last_hash: the tip's row_hash; scope: the same in words, for reports.
    """

    ok: bool
    rows: int
    first_broken: dict[str, Any] | None = None
    full: bool = field(default=True, compare=False)
    checkpoint: Checkpoint | None = field(default=None, compare=False)
    first_seq: int = field(default=1, compare=False)
    last_seq: int = field(default=0, compare=False)
    last_hash: str = field(default=GENESIS_HASH, compare=False)
    scope: str = field(default="full chain", compare=False)


def verify_audit_chain(source: Any, *, full_chain: bool = False, batch_rows: int = BATCH_ROWS) -> ChainVerification:
    """Check the audit log's hash chain; ``source`` is an Engine, Connection, Session or URL.

    From the latest stored checkpoint (the rows after it), or, with ``full_chain=True`` or when no
    checkpoint can be read, from position 1; the result's ``scope`` says which (see the module
    docstring). It only reads: checkpoints are recorded by chain_checkpoints.record_checkpoint."""
    if isinstance(batch_rows, bool) or not isinstance(batch_rows, int) or batch_rows < 1:
        raise ValueError(f"batch_rows must be a positive integer, not {batch_rows!r}")
    if not isinstance(full_chain, bool):
        raise ValueError(f"full_chain must be True or False, not {full_chain!r}")
    with _connection(source) as connection:
        if not sa.inspect(connection).has_table(CHAIN_TABLE):
            raise RuntimeError(f"{mask_url(connection.engine.url)} has no audit hash chain ({CHAIN_TABLE}): "
                               "run the migrations (`shivx-analytics db upgrade`)")
        return _verify(connection, batch_rows, *_starting_point(connection, full_chain))


def _starting_point(connection: Connection, full_chain: bool) -> tuple[Checkpoint | None, list[Checkpoint], str]:
    """(the checkpoint to start from or None, the checkpoints a full run checks, the scope in words)."""
    if not checkpoints.has_checkpoints_table(connection):
        return None, [], ("full chain (asked)" if full_chain else
                          "full chain (no checkpoint table: revision 0008 is not applied)")
    if not checkpoints.may_read(connection):
        return None, [], ("full chain (asked)" if full_chain else
                          f"full chain (this role may not read {checkpoints.CHECKPOINT_TABLE})")
    if full_chain:
        return None, checkpoints.all_checkpoints(connection), "full chain (asked)"
    latest = checkpoints.latest_checkpoint(connection)
    if latest is None:
        return None, [], "full chain (no checkpoint stored yet)"
    return latest, [], f"from {latest.describe()}"


def _verify(connection: Connection, batch_rows: int, start: Checkpoint | None, known: list[Checkpoint],
            scope: str) -> ChainVerification:
    logs, chain = _LOGS, security_audit_chain
    tip = connection.execute(sa.select(chain.c.last_seq, chain.c.last_hash).where(chain.c.id == 1)).first()
    first_seq = 1 if start is None else start.chain_seq + 1

    def result(ok: bool, rows: int, broken: dict[str, Any] | None = None) -> ChainVerification:
        last_seq, last_hash = (int(tip.last_seq), tip.last_hash) if tip is not None else (0, GENESIS_HASH)
        return ChainVerification(ok, rows, broken, full=start is None, checkpoint=start, first_seq=first_seq,
                                 last_seq=last_seq, last_hash=last_hash, scope=scope)

    if tip is None:
        return result(False, 0, {"log_id": None, "chain_seq": 0,
                                 "reason": f"chain tip mismatch: {CHAIN_TABLE} has no row"})
    tip_seq, tip_hash = int(tip.last_seq), tip.last_hash
    expected_seq, expected_prev, last_log_id = 1, GENESIS_HASH, None
    if start is not None:  # the checkpoint's row must still be what was verified
        anchor = _checkpoint_problem(connection, start, tip_seq)
        if anchor is not None:
            return result(False, 0, anchor)
        expected_seq, expected_prev = start.chain_seq + 1, start.row_hash
    at: dict[int, list[Checkpoint]] = {}  # full: each checkpoint checked as its row passes
    for checkpoint in known:
        at.setdefault(checkpoint.chain_seq, []).append(checkpoint)
    read = _reader(connection)
    checked, low = 0, expected_seq
    while low <= tip_seq:  # ranges of chain_seq: each holds at most batch_rows rows
        rows = read(low, min(tip_seq, low + batch_rows - 1))
        low += batch_rows
        if not rows:  # a hole (rows removed, or a tip set far ahead): skip to the next row there is
            low = connection.execute(sa.select(sa.func.min(logs.c.chain_seq)).where(
                logs.c.chain_seq >= low, logs.c.chain_seq <= tip_seq)).scalar() or tip_seq + 1
        for row in rows:  # HASHED_FIELDS, then chain_seq, prev_hash, row_hash
            seq, prev, stored = row[9], row[10], row[11]
            problem = None
            if seq < expected_seq:
                problem = (f"duplicate chain_seq: a second row at chain_seq {seq} "
                           "(a row added outside the chain)")
            elif seq != expected_seq:
                missing = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq}..{seq - 1}"
                problem = f"seq gap: chain_seq {seq} follows {expected_seq - 1}; row(s) {missing} are missing"
            elif prev != expected_prev:
                problem = ("prev_hash mismatch: it does not name the previous row's row_hash "
                           "(a row before it was removed, replaced or reordered)")
            else:
                try:
                    content = canonical_values(*row[:9], seq)  # type: ignore[call-arg]
                except (ValueError, TypeError) as exc:  # e.g. details no longer JSON (SQLite stores text)
                    problem = f"row_hash mismatch: the row's content cannot be read as written ({exc})"
                else:
                    if row_hash(prev, content) != stored:
                        problem = "row_hash mismatch: the row's content is not what was hashed (edited)"
            forged = [c.id for c in at.get(seq, ()) if c.row_hash != stored] if problem is None and at else []
            if forged:
                problem = (f"checkpoint mismatch: checkpoint {forged[0]} records another row_hash at chain_seq "
                           f"{seq} than the intact chain has there (a checkpoint forged or moved)")
            if problem:
                return result(False, checked, {"log_id": _id_text(row[0]), "chain_seq": seq, "reason": problem})
            checked += 1
            expected_seq, expected_prev, last_log_id = seq + 1, stored, row[0]
    if expected_seq - 1 != tip_seq:
        return result(False, checked, {
            "log_id": None, "chain_seq": expected_seq,
            "reason": f"chain tip mismatch: {CHAIN_TABLE} records {tip_seq} rows, the log ends at chain_seq "
                      f"{expected_seq - 1} (rows removed from the end)"})
    if expected_prev != tip_hash:
        return result(False, max(checked - 1, 0), {
            "log_id": None if last_log_id is None else _id_text(last_log_id), "chain_seq": tip_seq,
            "reason": f"chain tip mismatch: the last row's row_hash is not the last_hash {CHAIN_TABLE} records "
                      "(the last row was replaced)"})
    beyond = [c for c in known if c.chain_seq > tip_seq]
    if beyond:
        return result(False, checked, {
            "log_id": None, "chain_seq": beyond[0].chain_seq,
            "reason": f"checkpoint mismatch: checkpoint {beyond[0].id} lies beyond the tip {tip_seq} "
                      "(rows removed from the end, or a checkpoint forged)"})
    # Rows past the tip: a writer commits its rows and the new tip together, and the tip only moves
    # forward, so a row seen before the tip is re-read can never lie beyond it legitimately.
    highest = connection.execute(sa.select(sa.func.max(logs.c.chain_seq))).scalar()
    now = connection.execute(sa.select(chain.c.last_seq).where(chain.c.id == 1)).scalar()
    if highest is not None and now is not None and highest > now:
        return result(False, checked, {
            "log_id": None, "chain_seq": int(highest),
            "reason": f"chain tip mismatch: rows up to chain_seq {highest} lie beyond the tip {now} "
                      f"{CHAIN_TABLE} records (added without the chain's lock)"})
    # Rows below the chain's first position are never read above: the chain starts at 1.
    lowest = connection.execute(sa.select(logs.c.chain_seq, logs.c.log_id).order_by(logs.c.chain_seq)
                                .limit(1)).first()
    if lowest is not None and lowest.chain_seq < 1:
        return result(False, checked, {
            "log_id": _id_text(lowest.log_id), "chain_seq": int(lowest.chain_seq),
            "reason": f"row outside the chain: chain_seq {lowest.chain_seq} is below 1 (added without the chain)"})
    return result(True, checked)


def _checkpoint_problem(connection: Connection, start: Checkpoint, tip_seq: int) -> dict[str, Any] | None:
    """Why the verification cannot start from ``start`` (None when its row still has its hash)."""
    logs = _LOGS
    found = connection.execute(sa.select(logs.c.log_id, logs.c.row_hash).where(logs.c.chain_seq == start.chain_seq)
                               .limit(2)).all()
    rerun = "; rows before it may have been changed: verify the full chain (--full-chain, full_chain=True)"
    where = f"{start.describe()} records row_hash {start.row_hash[:12]}... at chain_seq {start.chain_seq}"
    if start.chain_seq > tip_seq:
        reason = f"{where}, beyond the tip {tip_seq} {CHAIN_TABLE} records (rows removed from the end)"
    elif not found:
        reason = f"{where}, and no row is there (removed)"
    elif len(found) > 1:
        reason = f"{where}, and two rows are there (a row added outside the chain)"
    elif found[0].row_hash != start.row_hash:
        reason = f"{where}, the row there has another (replaced or rehashed)"
    else:
        return None
    log_id = _id_text(found[0].log_id) if len(found) == 1 else None
    return {"log_id": log_id, "chain_seq": start.chain_seq, "reason": f"checkpoint mismatch: {reason}{rerun}"}


# Reading the rows. The driver's own values, converted to the hashed text here, are 3-5 times
# faster than SQLAlchemy's typed rows; they are the same values the column types give (checked by
# tests/test_audit_chain.py on both backends): ids as dashed text (SQLite stores 32 hex digits),
# timestamps as UTC ISO text (SQLite stores naive UTC text, PostgreSQL formats it), details as JSON.

_COLUMNS = (*HASHED_FIELDS, "chain_seq", "prev_hash", "row_hash")
_PG_SELECT = (
    'SELECT log_id::text, to_char("timestamp" AT TIME ZONE \'UTC\', \'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"\'), '
    "event_type, ip_address, resource, action, success, details::text, request_id, chain_seq, prev_hash, row_hash "
    "FROM security_audit_logs WHERE chain_seq BETWEEN %s AND %s ORDER BY chain_seq")
_SQLITE_SELECT = (
    'SELECT log_id, "timestamp", event_type, ip_address, resource, action, success, details, request_id, '
    "chain_seq, prev_hash, row_hash FROM security_audit_logs WHERE chain_seq BETWEEN ? AND ? ORDER BY chain_seq")
assert _COLUMNS[:2] == ("log_id", "timestamp") and _COLUMNS[6:8] == ("success", "details")


def _reader(connection: Connection):
    """(low, high) -> the rows with low <= chain_seq <= high, in order, as tuples in _COLUMNS order.

    Through the driver's own cursor, in the connection's transaction. A bounded range rather than
    LIMIT: right after a bulk load (no statistics yet) PostgreSQL planned
    ``chain_seq >= low ORDER BY chain_seq LIMIT n`` as a sort of every later row.
    """
    driver: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        def read(low: int, high: int) -> list[tuple]:
            with driver.cursor() as cursor:
                return cursor.execute(_PG_SELECT, (low, high)).fetchall()
        return read

    def read_sqlite(low: int, high: int) -> list[tuple]:
        cursor = driver.execute(_SQLITE_SELECT, (low, high))
        try:
            return [(row[0], _sqlite_time(row[1]), *row[2:]) for row in cursor.fetchall()]
        finally:
            cursor.close()
    return read_sqlite


def _id_text(value: Any) -> str:
    """A stored log_id as dashed text, or as it is stored when it is no UUID (tampered)."""
    try:
        return uuid_text(value)
    except ValueError:
        return str(value)


def _sqlite_time(text: Any) -> Any:
    """SQLite's stored time (naive UTC text, 'YYYY-MM-DD HH:MM:SS.ffffff') as the hashed text."""
    if type(text) is str and len(text) == 26 and text[10] == " ":
        return f"{text[:10]}T{text[11:]}+00:00"
    if type(text) is str:  # another text form: read it as SQLAlchemy would, naive meaning UTC
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return text  # not a time: the row is reported, as it cannot hash as written
        return parsed.replace(tzinfo=timezone.utc) if parsed.tzinfo is None else parsed
    return text
