"""load_audit_logs(details=...): JSON containment on details, the same rows on SQLite and PostgreSQL.

PostgreSQL evaluates ``details @> '{...}'::jsonb`` itself (through DuckDB's postgres_query), so
the GIN index of migration 0004 answers it: proven here by the index's own scan counter.
SQLite compares each key through json_each with JSON's types (true is not 1, "1" is not 1).
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import shivx_analytics as sx
from shivx_analytics.frames import arguments, schemas
from shivx_analytics.frames import query as frames_sql
from shivx_analytics.models import append_audit_entries

T0 = datetime(2025, 10, 1, tzinfo=timezone.utc)
NAMESPACE = uuid.UUID("0d5e1c1e-2f0a-4b5f-9a51-6a3f3c8d2e11")
INJECTION = "x'); DROP TABLE security_audit_logs; --"
NASTY = "q'uo\"te \\back\\slash $$ $1 \n\t é 😀 \\u0041"

# name -> details; rows are written in this order, a minute apart ("late_*" share one timestamp)
ROWS: dict[str, dict] = {
    "k1_ok": {"key_id": "k-1", "status_code": 200},
    "k2_limited": {"key_id": "k-2", "status_code": 429, "reason": "rate_limited"},
    "k1_limited": {"key_id": "k-1", "status_code": 429, "reason": "rate_limited"},
    "int1": {"n": 1},
    "float1": {"n": 1.0},
    "true": {"n": True},
    "false": {"n": False},
    "zero": {"n": 0},
    "text1": {"n": "1"},
    "null": {"n": None},
    "empty": {},
    "array": {"n": [1]},
    "object": {"n": {"m": 1}},
    "tenth": {"n": 0.1},
    "big": {"n": 2 ** 62 + 1},
    "dotted": {"a.b": 1},
    "nested": {"a": {"b": 1}},
    "quoted": {'we"ird': "x", "it's": "y"},
    "brackets": {"$[0].x": "path-like", "": "empty key"},
    "unicode": {"café": "naïve 😀"},
    "injection": {"q": INJECTION, INJECTION: "key"},
    "nasty": {NASTY: NASTY},
    "late_b": {"key_id": "k-3"},
    "late_a": {"key_id": "k-3"},
}
LATE = T0 + timedelta(days=1)


def log_id(name: str) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, name)


def when(name: str) -> datetime:
    return LATE if name.startswith("late_") else T0 + timedelta(minutes=list(ROWS).index(name))


def expected(*names: str) -> list[str]:
    """log_ids in the frames' order: timestamp, then log_id."""
    return [str(log_id(n)) for n in sorted(names, key=lambda n: (when(n), str(log_id(n))))]


def entry(name: str, details: dict, event_type: str = "api_request", timestamp: datetime | None = None) -> dict:
    return {"event_type": event_type, "action": "GET", "success": True, "resource": "/v1/x",
            "details": details, "log_id": log_id(name), "timestamp": timestamp or when(name)}


@pytest.fixture
def audit_url(db_url, engine) -> str:
    with engine.begin() as connection:
        append_audit_entries(connection, [entry(name, details, "admin" if name == "k1_ok" else "api_request")
                                          for name, details in ROWS.items()])
    return db_url


def ids(frame: pd.DataFrame) -> list[str]:
    return frame["log_id"].tolist()


CASES = {
    "one string": ({"key_id": "k-1"}, ["k1_ok", "k1_limited"]),
    "string and int": ({"key_id": "k-1", "status_code": 429}, ["k1_limited"]),
    "several keys": ({"reason": "rate_limited", "status_code": 429}, ["k2_limited", "k1_limited"]),
    "equal timestamps by log_id": ({"key_id": "k-3"}, ["late_a", "late_b"]),
    "int 1: numbers only": ({"n": 1}, ["int1", "float1"]),
    "float 1.0 equals int 1": ({"n": 1.0}, ["int1", "float1"]),
    "numpy int": ({"n": np.int64(1)}, ["int1", "float1"]),
    "true is not 1": ({"n": True}, ["true"]),
    "false is not 0": ({"n": False}, ["false"]),
    "numpy bool": ({"n": np.bool_(False)}, ["false"]),
    "0 is not false": ({"n": 0}, ["zero"]),
    "'1' is not 1": ({"n": "1"}, ["text1"]),
    "null, not missing": ({"n": None}, ["null"]),
    "a fraction": ({"n": 0.1}, ["tenth"]),
    "a big int": ({"n": 2 ** 62 + 1}, ["big"]),
    "a neighbouring big int": ({"n": 2 ** 62}, []),
    "dot in a key, not a path": ({"a.b": 1}, ["dotted"]),
    "double quote in a key": ({'we"ird': "x"}, ["quoted"]),
    "single quote in a key": ({"it's": "y"}, ["quoted"]),
    "path syntax in a key": ({"$[0].x": "path-like"}, ["brackets"]),
    "the empty key": ({"": "empty key"}, ["brackets"]),
    "unicode": ({"café": "naïve 😀"}, ["unicode"]),
    "injection as a value": ({"q": INJECTION}, ["injection"]),
    "injection as a key": ({INJECTION: "key"}, ["injection"]),
    "quotes, backslashes, dollars": ({NASTY: NASTY}, ["nasty"]),
    "no match": ({"key_id": "k-404"}, []),
    "a key nobody has": ({"nobody": None}, []),
    "a value of another type": ({"key_id": 1}, []),
    "one key matching, one not": ({"key_id": "k-1", "status_code": 500}, []),
    "empty: no filter": ({}, list(ROWS)),
}


@pytest.mark.parametrize("details, names", list(CASES.values()), ids=list(CASES))
def test_details_keeps_the_rows_holding_each_key_with_that_json_value(backend, audit_url, details, names):
    assert ids(sx.load_audit_logs(audit_url, details=details, columns=["log_id"])) == expected(*names)


def test_details_combines_with_the_other_filters_and_chunks(backend, audit_url):
    rate_limited = {"reason": "rate_limited"}
    window = sx.load_audit_logs(audit_url, details=rate_limited, event_type=["api_request", INJECTION],
                                since=T0 + timedelta(minutes=2), until=LATE)
    assert ids(window) == expected("k1_limited")
    assert window["api_key_id"].tolist() == ["k-1"] and window["status_code"].tolist() == [429]

    whole = sx.load_audit_logs(audit_url, details={"key_id": "k-1"})
    chunks = list(sx.load_audit_logs(audit_url, details={"key_id": "k-1"}, chunksize=1))
    assert [len(c) for c in chunks] == [1, 1]
    pd.testing.assert_frame_equal(pd.concat(chunks, ignore_index=True), whole)
    assert ids(sx.load_audit_logs(audit_url, details={"key_id": "k-1"}, event_type="admin")) == expected("k1_ok")


def test_the_filtered_frame_equals_the_unfiltered_one_restricted(backend, audit_url):
    everything = sx.load_audit_logs(audit_url)
    filtered = sx.load_audit_logs(audit_url, details={"status_code": 429})
    mask = (everything["status_code"] == 429).fillna(False).to_numpy(dtype=bool)
    pd.testing.assert_frame_equal(filtered, everything[mask].reset_index(drop=True))


def test_details_through_a_connection_with_uncommitted_writes(backend, audit_url, engine):
    """Rows written in the caller's open transaction are read through its connection (bound
    parameters, not the fast path) with the same semantics."""
    with engine.connect() as connection, connection.begin() as transaction:
        append_audit_entries(connection, [entry("pending", {"key_id": "k-1", "n": True}, timestamp=LATE + timedelta(hours=1))])
        assert ids(sx.load_audit_logs(connection, details={"key_id": "k-1"})) == expected("k1_ok", "k1_limited") + [
            str(log_id("pending"))]
        assert ids(sx.load_audit_logs(connection, details={"n": True})) == [str(log_id("true")), str(log_id("pending"))]
        assert ids(sx.load_audit_logs(connection, details={"n": 1})) == expected("int1", "float1")
        assert ids(sx.load_audit_logs(connection, details={'we"ird': "x"})) == expected("quoted")
        assert ids(sx.load_audit_logs(connection, details={NASTY: NASTY})) == expected("nasty")
        transaction.rollback()


@pytest.mark.parametrize("details, message", [
    ("key_id=k-1", "details='key_id=k-1' is not valid: give a mapping"),
    ([("key_id", "k-1")], "give a mapping"),
    ({1: "x"}, "details key 1 is not valid: details keys must be strings"),
    ({"n": [1]}, r"details\['n'\]=\[1\] is not valid: details values must be JSON scalars"),
    ({"n": {"m": 1}}, r"details\['n'\].*JSON scalars .*not dict"),
    ({"n": Decimal("1")}, r"details\['n'\].*not Decimal"),
    ({"n": datetime(2025, 1, 1)}, r"details\['n'\].*not datetime"),
    ({"n": float("nan")}, r"details\['n'\]=nan is not valid: JSON has no NaN"),
    ({"n": float("inf")}, "JSON has no NaN or infinity"),
    ({"n": 2 ** 63}, r"details\['n'\]=9223372036854775808 is not valid: an integer must fit 64 bits"),
    ({"n": -(2 ** 63) - 1}, "must fit 64 bits"),
    ({"n": "a\x00b"}, r"details\['n'\]='a\\x00b' cannot match anything"),
    ({"a\x00": 1}, r"details key 'a\\x00' cannot match anything"),
    ({"n": "\ud800"}, "unpaired surrogate"),
])
def test_bad_details_raise_value_errors_naming_details(details, message):
    with pytest.raises(ValueError, match=message):  # refused before any connection is made
        sx.load_audit_logs("postgresql://nobody@127.0.0.1:1/nothing", details=details)


def test_the_extreme_64_bit_integers_are_accepted(backend, audit_url):
    for value in (2 ** 63 - 1, -(2 ** 63)):
        assert ids(sx.load_audit_logs(audit_url, details={"n": value})) == []


# PostgreSQL: literals and the GIN index ---------------------------------------------------------


@pytest.mark.parametrize("backend", ["postgresql"])
def test_inline_literals_read_back_exactly_whatever_the_string_settings(backend, engine):
    """The text DuckDB hands PostgreSQL carries values as E'...' literals: printable ASCII only,
    the same value whether standard_conforming_strings is on or off."""
    values = [NASTY, INJECTION, "'", "\\", "\\'", "''", "$$", "$tag$", "\r\n\x01\x7f", "😀é", "-- x", "/* y"]
    with engine.connect() as connection:
        for setting in ("on", "off"):
            connection.exec_driver_sql(f"SET standard_conforming_strings = {setting}")
            for value in values:
                literal = frames_sql._pg_literal(value, "text")
                assert literal.isascii() and literal.isprintable(), literal
                assert connection.exec_driver_sql(f"SELECT {literal}::text").scalar_one() == value
                document = frames_sql._pg_literal(json.dumps({"k": value}), "jsonb")
                assert connection.exec_driver_sql(f"SELECT ({document})->>'k'").scalar_one() == value


GIN_SCANS = """
SELECT count(*), coalesce(sum(s.idx_scan), 0)
FROM pg_partition_tree('security_audit_logs') AS tree
JOIN pg_stat_user_indexes AS s ON s.relid = tree.relid
WHERE pg_get_indexdef(s.indexrelid) LIKE '%USING gin (details jsonb_path_ops)%'
"""


def gin_scans(connection) -> tuple[int, int]:
    connection.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
    indexes, scans = connection.execute(sa.text(GIN_SCANS)).one()
    return int(indexes), int(scans)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_answers_a_details_filter_from_the_gin_index(backend, engine, db_url):
    keys = 500
    months = [T0 - timedelta(days=31 * i) for i in range(4)]  # the default partition and others, if any
    rows = [{"event_type": "api_request", "action": "GET", "success": True, "resource": f"/v1/{i % 7}",
             "details": {"key_id": f"key-{i % keys}", "status_code": 200 if i % 10 else 429, "i": i},
             "timestamp": months[i % len(months)] + timedelta(seconds=i)} for i in range(5000)]
    with engine.begin() as connection:
        append_audit_entries(connection, rows)
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        connection.exec_driver_sql("ANALYZE security_audit_logs")
        indexes, before = gin_scans(connection)
        assert indexes >= 1, "no GIN (jsonb_path_ops) index on security_audit_logs.details: is migration 0004 applied?"

        frame = sx.load_audit_logs(db_url, details={"key_id": "key-7"})
        wanted = sorted(((r["timestamp"], i) for i, r in enumerate(rows) if r["details"]["key_id"] == "key-7"))
        assert frame["details"].map(lambda d: json.loads(d)["i"]).tolist() == [i for _, i in wanted]

        deadline = time.monotonic() + 15  # the loader's backend reports its statistics as it ends
        after = before
        while after <= before and time.monotonic() < deadline:
            time.sleep(0.2)
            _, after = gin_scans(connection)
        print(f"\nGIN idx_scan {before} -> {after}")
        assert after > before, "the details filter did not use the GIN index on details"

        plan = "\n".join(connection.exec_driver_sql(
            "EXPLAIN " + frames_sql._compiled_inline(frames_query({"key_id": "key-7"}))).scalars())
        assert "details" in plan and "Bitmap Index Scan" in plan, plan


def frames_query(details):
    """The statement the DuckDB path sends PostgreSQL for a details filter (for EXPLAIN)."""
    query = frames_sql._Query(schemas.AUDIT_LOGS)
    query.contains("details", arguments._details_filter(details))
    return query.select(["log_id", "timestamp", "details"], "postgresql", ordered=False, inline=True)
