"""The demo dataset: deterministic, consistent with DESIGN.md, realistic, valid, written whole or not at all."""

from __future__ import annotations

import json
from collections import Counter, defaultdict, deque
from datetime import datetime, timedelta, timezone
from decimal import Decimal, localcontext

import pytest
import sqlalchemy as sa
from _databases import BACKENDS, POSTGRES_URL, copy_migrated_database, drop_postgres_database, require_backend
from sqlalchemy.orm import Session

from shivx_analytics.db import create_engine
from shivx_analytics.demo import DEMO_PASSWORD, generate_demo_data, seed, vocabulary, writing
from shivx_analytics.models import (
    APIKey,
    APIKeyRead,
    Order,
    OrderCreate,
    OrderRead,
    Position,
    PositionCreate,
    PositionRead,
    SecurityAuditLog,
    SecurityAuditLogRead,
    User,
    UserRead,
    calculate_slippage,
)
from shivx_analytics.security import password_needs_rehash, verify_password

AS_OF = datetime(2025, 10, 28, tzinfo=timezone.utc)
START = AS_OF - timedelta(days=90)
TABLES = {"users": User, "api_keys": APIKey, "positions": Position, "orders": Order,
          "security_audit_logs": SecurityAuditLog}


def _copy_database(backend: str, templates: dict[str, str], directory) -> str:
    return copy_migrated_database(backend, templates, directory, "demo.db")


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, migrated_templates, tmp_path_factory):
    """(backend, engine, counts, rows): one small demo database per backend, read-only for the tests."""
    backend = request.param
    require_backend(backend)
    url = _copy_database(backend, migrated_templates, tmp_path_factory.mktemp("demo"))
    engine = create_engine(url)
    try:
        counts = generate_demo_data(engine, seed=0, scale="small", as_of=AS_OF)
        yield backend, engine, counts, _load(engine)
    finally:
        engine.dispose()
        if backend == "postgresql":
            drop_postgres_database(url)


def _load(source) -> dict[str, list[dict]]:
    """Every row of every table, typed by the column types, ordered by primary key."""
    out = {}
    with source.connect() as connection:
        for name, model in TABLES.items():
            table = model.__table__
            result = connection.execute(sa.select(table).order_by(*table.primary_key.columns))
            out[name] = [dict(row) for row in result.mappings()]
    return out


def _wide(expression):
    with localcontext() as ctx:
        ctx.prec = 80
        return expression()


# Determinism


@pytest.mark.slow
def test_same_seed_and_as_of_give_identical_tables_and_another_seed_differs(seeded, migrated_templates, tmp_path):
    backend, _engine, _counts, rows = seeded
    again = _copy_database(backend, migrated_templates, tmp_path / "again")
    other = _copy_database(backend, migrated_templates, tmp_path / "other")
    try:
        generate_demo_data(again, seed=0, scale="small", as_of=AS_OF)
        generate_demo_data(other, seed=1, scale="small", as_of=AS_OF)
        engine = create_engine(again)
        try:
            assert _load(engine) == rows
        finally:
            engine.dispose()
        engine = create_engine(other)
        try:
            other_rows = _load(engine)
        finally:
            engine.dispose()
        assert {r["order_id"] for r in other_rows["orders"]}.isdisjoint({r["order_id"] for r in rows["orders"]})
        assert other_rows["users"] != rows["users"]
    finally:
        if backend == "postgresql":
            drop_postgres_database(again)
            drop_postgres_database(other)


@pytest.mark.slow
@pytest.mark.skipif(not POSTGRES_URL, reason="SHIVX_TEST_POSTGRES_URL not set")
def test_sqlite_and_postgresql_receive_the_same_rows(migrated_templates, tmp_path):
    sqlite_url = _copy_database("sqlite", migrated_templates, tmp_path)
    pg_url = _copy_database("postgresql", migrated_templates, tmp_path)
    try:
        for url in (sqlite_url, pg_url):
            generate_demo_data(url, seed=3, scale=300, as_of=AS_OF)
        engines = [create_engine(sqlite_url), create_engine(pg_url)]
        try:
            assert _load(engines[0]) == _load(engines[1])
        finally:
            for engine in engines:
                engine.dispose()
    finally:
        drop_postgres_database(pg_url)


@pytest.mark.slow
@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)  # PostgreSQL parses COPY text into its own types
def test_fast_path_stores_exactly_what_the_column_types_store(seeded, migrated_templates, tmp_path):
    """SQLite text written by the bulk path equals SQLAlchemy Core inserts through the TypeDecorators."""
    backend, engine, _counts, rows = seeded
    core_url = _copy_database("sqlite", migrated_templates, tmp_path)
    core = create_engine(core_url)
    try:
        with core.begin() as connection:
            for name, model in TABLES.items():
                ordered = rows[name] if name != "security_audit_logs" else sorted(rows[name], key=lambda r: r["chain_seq"])
                connection.execute(model.__table__.insert(), ordered)  # audit rows: in chain order (revision 0006)
        for name, model in TABLES.items():
            key = ", ".join(c.name for c in model.__table__.primary_key.columns)
            columns = ", ".join(f'"{c.name}"' for c in model.__table__.columns)
            query = f'SELECT {columns} FROM "{name}" ORDER BY {key}'
            with engine.connect() as fast, core.connect() as slow:
                assert fast.exec_driver_sql(query).all() == slow.exec_driver_sql(query).all(), name
    finally:
        core.dispose()


# Counts and scales


@pytest.mark.slow
def test_small_scale_has_the_documented_size(seeded):
    _backend, _engine, counts, rows = seeded
    assert counts == {name: len(rows[name]) for name in TABLES}
    assert counts["orders"] == 2_000
    assert counts["users"] == 25
    assert 4_000 <= counts["security_audit_logs"] <= 6_500
    assert 700 <= counts["positions"] <= 1_000
    assert counts["api_keys"] >= 20


@pytest.mark.slow
def test_an_integer_scale_is_the_number_of_orders(backend, db_url):
    counts = generate_demo_data(db_url, seed=5, scale=150, as_of=AS_OF)
    assert counts["orders"] == 150
    assert counts["security_audit_logs"] >= 150


def test_named_scales():
    assert vocabulary.SCALES == {"small": 2_000, "medium": 100_000, "large": 1_000_000}
    assert seed._orders_for("large") >= 1_000_000
    assert vocabulary.AUDIT_ROWS_PER_ORDER * vocabulary.SCALES["large"] >= 1_000_000


@pytest.mark.parametrize("arguments, message", [
    ({"scale": "huge"}, "scale must be one of"),
    ({"scale": 5}, "scale must be one of"),
    ({"scale": True}, "scale must be one of"),
    ({"seed": -1}, "seed must be a non-negative integer"),
    ({"as_of": "yesterday"}, "as_of: expected an ISO 8601 date or datetime"),
])
def test_bad_arguments_are_refused_before_touching_the_database(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_demo_data("sqlite:///:memory:", **arguments)


# Internal consistency (DESIGN.md domain semantics)


def _validated_positions_and_orders(rows):
    positions = {r["position_id"]: Position.model_validate(r) for r in rows["positions"]}
    orders = [Order.model_validate(r) for r in rows["orders"]]
    return positions, orders


@pytest.mark.slow
def test_every_position_has_its_buy_at_the_entry_price_and_closed_ones_their_sell_at_the_exit(seeded):
    positions, orders = _validated_positions_and_orders(seeded[3])
    buys, sells = defaultdict(list), defaultdict(list)
    for order in orders:
        if order.is_executed:
            assert order.position_id is not None, "every executed order belongs to a position"
            (buys if order.action == "buy" else sells)[order.position_id].append(order)
        else:
            assert order.position_id is None and order.amount_out is None and order.executed_at is None
    for position_id, position in positions.items():
        (buy,) = buys[position_id]
        assert buy.executed_price == position.entry_price
        assert buy.amount_out == position.size and buy.amount_in == position.entry_value
        assert buy.executed_at == position.opened_at and buy.user_id == position.user_id
        assert buy.token == position.token
        if position.is_open:
            assert position_id not in sells
            continue
        (sell,) = sells[position_id]
        assert sell.executed_price == position.current_price
        assert sell.amount_in == position.size and sell.amount_out == position.position_value
        assert sell.executed_at == position.closed_at
        assert sell.amount_out - buy.amount_in == position.pnl


@pytest.mark.slow
def test_fifo_realized_pnl_from_the_ledger_equals_the_closed_positions_pnl_exactly(seeded):
    positions, orders = _validated_positions_and_orders(seeded[3])
    ledger = defaultdict(list)
    for order in orders:
        if order.is_executed:
            ledger[(order.user_id, order.token)].append(order)
    realized = defaultdict(Decimal)
    for key, entries in ledger.items():
        lots: deque[list[Decimal]] = deque()  # [tokens, cost]
        for order in sorted(entries, key=lambda o: o.executed_at):
            if order.action == "buy":
                lots.append([order.amount_out, order.amount_in])
                continue
            remaining, cost = order.amount_in, Decimal(0)
            while remaining > 0:
                assert lots, f"sell larger than the holdings for {key}"
                tokens, lot_cost = lots[0]
                used = min(tokens, remaining)
                share = _wide(lambda: lot_cost * used / tokens)
                cost, remaining = cost + share, remaining - used
                lots[0] = [tokens - used, lot_cost - share]
                if lots[0][0] == 0:
                    lots.popleft()
            realized[key] += _wide(lambda: order.amount_out - cost)
    expected = defaultdict(Decimal)
    for position in positions.values():
        if not position.is_open:
            expected[(position.user_id, position.token)] += position.pnl
    assert {k: v for k, v in realized.items() if v or k in expected} == dict(expected)
    assert sum(expected.values()) != 0


@pytest.mark.slow
def test_one_position_at_a_time_per_user_and_token(seeded):
    positions, _ = _validated_positions_and_orders(seeded[3])
    by_pair = defaultdict(list)
    for position in positions.values():
        by_pair[(position.user_id, position.token)].append(position)
    for entries in by_pair.values():
        entries.sort(key=lambda p: p.opened_at)
        for earlier, later in zip(entries, entries[1:]):
            assert not earlier.is_open and earlier.closed_at < later.opened_at


@pytest.mark.slow
def test_slippage_actual_is_the_models_calculate_slippage(seeded):
    _, orders = _validated_positions_and_orders(seeded[3])
    executed = [o for o in orders if o.is_executed]
    for order in executed:
        assert order.slippage_actual == calculate_slippage(order.expected_out, order.amount_out)
    over = sum(o.slippage_actual > o.slippage_bps for o in executed)
    assert 0 < over < 0.05 * len(executed), "mostly within tolerance, a fat tail beyond it"
    assert {o.slippage_bps for o in executed} == {50, 100, 300}
    assert any(o.slippage_actual < 0 for o in executed), "price improvement happens"


@pytest.mark.slow
def test_times_lie_in_the_90_days_before_as_of(seeded):
    rows = seeded[3]
    for r in rows["orders"]:
        assert START <= r["created_at"] <= r["updated_at"] < AS_OF
        assert r["executed_at"] is None or r["created_at"] <= r["executed_at"] < AS_OF
    for r in rows["positions"]:
        assert START <= r["opened_at"] < AS_OF and (r["closed_at"] is None or r["closed_at"] < AS_OF)
        assert r["created_at"] == r["opened_at"] <= r["updated_at"] < AS_OF
    for r in rows["security_audit_logs"]:
        assert START <= r["timestamp"] < AS_OF
    for r in rows["api_keys"]:
        assert START <= r["created_at"] <= r["updated_at"] < AS_OF
    keys = {str(k["key_id"]): k for k in rows["api_keys"]}
    for r in rows["security_audit_logs"]:
        if r["event_type"] == "api_request":
            key = keys[r["details"]["key_id"]]
            assert key["created_at"] <= r["timestamp"] and r["user_id"] == key["user_id"]
            if r["details"]["status_code"] != 401:
                assert key["expires_at"] is None or r["timestamp"] < key["expires_at"]
                assert key["last_used_at"] is not None and key["created_at"] <= key["last_used_at"] <= key["updated_at"]
    for r in rows["users"]:
        assert r["created_at"] <= r["updated_at"] < AS_OF


@pytest.mark.slow
def test_users_and_keys_state_matches_their_events(seeded):
    rows = seeded[3]
    logins = defaultdict(list)
    accepted = Counter()
    for r in rows["security_audit_logs"]:
        if r["event_type"] == "authentication" and r["action"] == "login" and r["success"]:
            logins[r["user_id"]].append(r["timestamp"])
        if r["event_type"] == "api_request" and r["details"]["status_code"] not in (401, 429):
            accepted[r["details"]["key_id"]] += 1
    for user in rows["users"]:
        assert user["last_login"] == max(logins[user["user_id"]], default=None)
    for key in rows["api_keys"]:
        assert key["requests_count"] == accepted[str(key["key_id"])]
        assert (key["last_used_at"] is None) == (key["requests_count"] == 0)


# Realism: the vocabulary the reports look for


@pytest.mark.slow
def test_tokens_strategies_and_order_outcomes(seeded):
    positions, orders = _validated_positions_and_orders(seeded[3])
    tokens = {p.token for p in positions.values()}
    assert len(tokens) >= 18 and {"SOL", "BONK", "WBTC"} <= tokens
    prices = [p.entry_price for p in positions.values()]
    assert min(prices) < Decimal("0.0001") and max(prices) > Decimal("10000")
    assert "RL Trading (PPO)" in {p.strategy for p in positions.values()}
    assert len({p.strategy for p in positions.values()}) >= 5
    assert Counter(p.status for p in positions.values()).keys() == {"open", "closed", "liquidated"}
    statuses = Counter(o.status for o in orders)
    assert statuses["failed"] and statuses["cancelled"] and statuses["pending"]
    reasons = {o.failed_reason for o in orders if o.is_failed}
    assert {"slippage tolerance exceeded", "insufficient SOL for fees", "blockhash expired", "RPC timeout"} <= reasons
    sizes = sorted(p.entry_value for p in positions.values())
    assert sizes[len(sizes) * 99 // 100] > 5 * sizes[len(sizes) // 2], "sizes are skewed (lognormal)"


@pytest.mark.slow
def test_open_positions_include_crossed_stop_losses_and_take_profits(seeded):
    positions, _ = _validated_positions_and_orders(seeded[3])
    open_positions = [p for p in positions.values() if p.is_open]
    assert any(p.should_stop_loss() for p in open_positions)
    assert any(p.should_take_profit() for p in open_positions)
    assert not any(p.should_stop_loss() and p.should_take_profit() for p in open_positions)


@pytest.mark.slow
def test_authentication_events_include_a_brute_force_burst_and_lockouts(seeded):
    rows = seeded[3]
    logs = rows["security_audit_logs"]
    failures = defaultdict(list)
    for r in logs:
        if r["event_type"] == "authentication" and r["action"] == "login" and not r["success"]:
            failures[r["ip_address"]].append(r["timestamp"])
    burst = 0
    for times in failures.values():
        times.sort()
        for i, t in enumerate(times):
            burst = max(burst, sum(1 for u in times[i:] if u - t <= timedelta(minutes=5)))
    assert burst >= 30
    actions = Counter((r["event_type"], r["action"]) for r in logs)
    for expected in [("authentication", "login"), ("authentication", "logout"), ("authentication", "lockout"),
                     ("authentication", "password_change"), ("authorization", "access_denied"),
                     ("api_key", "create"), ("api_key", "revoke"), ("api_key", "rotate"), ("trading", "order_create"),
                     ("trading", "order_execute"), ("trading", "position_close"), ("api_request", "GET"),
                     ("api_request", "POST")]:
        assert actions[expected], expected
    assert set(r["event_type"] for r in logs) <= set(vocabulary.EVENT_TYPES)
    locked = [u for u in rows["users"] if u["locked_until"] and u["locked_until"] > AS_OF]
    assert len(locked) == 2 and all(u["failed_login_attempts"] >= 5 for u in locked)
    assert any("admin" in u["roles"] for u in rows["users"])
    assert not all(u["is_active"] for u in rows["users"])


def _lockout_events(logs: list[dict]) -> list[tuple[dict, list]]:
    """Each lockout event with the failed logins of its user in the two minutes before it."""
    out = []
    for r in logs:
        if r["action"] == "lockout":
            window = [f["timestamp"] for f in logs if f["user_id"] == r["user_id"] and f["action"] == "login"
                      and not f["success"] and r["timestamp"] - timedelta(minutes=5) <= f["timestamp"] < r["timestamp"]]
            out.append((r, window))
    return out


def _check_lockouts(rows: dict, threshold: int, period: timedelta) -> None:
    lockouts = _lockout_events(rows["security_audit_logs"])
    assert len(lockouts) >= 3  # episodes, accounts locked now, and brute force victims
    for event, failures in lockouts:
        assert event["details"]["failed_attempts"] == threshold
        assert len(failures) >= threshold  # the threshold-th failure locks (brute force may add more)
        last = max(failures)
        assert datetime.fromisoformat(event["details"]["locked_until"]) == last + period
    locked = [u for u in rows["users"] if u["locked_until"] and u["locked_until"] > AS_OF]
    assert len(locked) == 2 and all(u["failed_login_attempts"] >= threshold for u in locked)
    for user in locked:  # the replayed bookkeeping: locked for `period` after the last failure
        last = max(f["timestamp"] for f in rows["security_audit_logs"]
                   if f["user_id"] == user["user_id"] and f["action"] == "login" and not f["success"])
        assert user["locked_until"] == last + period


@pytest.mark.slow
def test_lockouts_follow_the_default_settings(seeded):
    _check_lockouts(seeded[3], threshold=5, period=timedelta(minutes=15))


@pytest.mark.slow
def test_lockout_settings_change_the_lockout_events(backend, db_url, settings_env):
    """SHIVX_LOCKOUT_THRESHOLD / SHIVX_LOCKOUT_MINUTES (Settings.lockout_threshold, lockout_minutes)
    decide how many failed logins lock an account in the demo, and for how long."""
    settings_env.set(SHIVX_LOCKOUT_THRESHOLD="3", SHIVX_LOCKOUT_MINUTES="40")
    engine = create_engine(db_url)
    try:
        generate_demo_data(engine, seed=0, scale="small", as_of=AS_OF)
        rows = _load(engine)
    finally:
        engine.dispose()
    _check_lockouts(rows, threshold=3, period=timedelta(minutes=40))


@pytest.mark.slow
def test_api_keys_vary_and_some_hit_their_rate_limit(seeded):
    rows = seeded[3]
    keys = {str(k["key_id"]): k for k in rows["api_keys"]}
    assert len({k["rate_limit"] for k in keys.values()}) >= 4
    assert all(30 <= k["rate_limit"] <= 1200 for k in keys.values())
    assert any(k["is_active"] and k["expires_at"] and k["expires_at"] <= AS_OF for k in keys.values())
    assert any(k["last_used_at"] is None and k["requests_count"] == 0 for k in keys.values())
    assert any(not k["is_active"] for k in keys.values())
    per_minute = Counter()
    limited = set()
    for r in rows["security_audit_logs"]:
        if r["event_type"] != "api_request":
            continue
        details = r["details"]
        assert set(details) >= {"key_id", "status_code"} and details["key_id"] in keys
        assert r["resource"].startswith("/api/v1/") and r["action"] in ("GET", "POST")
        assert r["success"] == (details["status_code"] < 400)
        per_minute[(details["key_id"], r["timestamp"].replace(second=0, microsecond=0))] += 1
        if details["status_code"] == 429:
            assert details["reason"] == "rate_limited"
            limited.add((details["key_id"], r["timestamp"].replace(second=0, microsecond=0)))
    assert len({key for key, _ in limited}) >= 2
    for key, minute in limited:
        assert per_minute[(key, minute)] > keys[key]["rate_limit"]


# Validity


@pytest.mark.slow
def test_every_row_satisfies_the_models_validation(seeded):
    rows = seeded[3]
    checks = {"users": [User, UserRead], "api_keys": [APIKey, APIKeyRead],
              "positions": [Position, PositionRead, PositionCreate], "orders": [Order, OrderRead, OrderCreate],
              "security_audit_logs": [SecurityAuditLog, SecurityAuditLogRead]}
    for name, models in checks.items():
        for row in rows[name]:
            for model in models:
                model.model_validate(row)
    assert len({r["username"] for r in rows["users"]}) == len(rows["users"])
    assert len({r["transaction_signature"] for r in rows["orders"] if r["transaction_signature"]}) == \
        sum(r["status"] == "executed" for r in rows["orders"])


@pytest.mark.slow
def test_passwords_verify_and_legacy_hashes_ask_for_a_rehash(seeded):
    hashes = [u["password_hash"] for u in seeded[3]["users"]]
    current = next(h for h in hashes if h.startswith("pbkdf2_sha256$600000$"))
    legacy = next(h for h in hashes if not h.startswith("pbkdf2_sha256$"))
    assert verify_password(DEMO_PASSWORD, current) and not password_needs_rehash(current)
    assert verify_password(DEMO_PASSWORD, legacy) and password_needs_rehash(legacy)


@pytest.mark.slow
@pytest.mark.parametrize("seeded", ["sqlite"], indirect=True)  # JSONB normalises the text on PostgreSQL
def test_details_json_is_canonical(seeded):
    backend, engine, _counts, _rows = seeded
    with engine.connect() as connection:
        for (text,) in connection.exec_driver_sql("SELECT details FROM security_audit_logs"):
            assert json.dumps(json.loads(text), sort_keys=True) == text


# Safety: empty databases only, all or nothing


@pytest.mark.slow
def test_an_already_seeded_database_is_refused_and_left_unchanged(seeded):
    _backend, engine, counts, _rows = seeded
    with pytest.raises(ValueError, match="database already holds 2,000 orders"):
        generate_demo_data(engine, seed=0, scale="small", as_of=AS_OF)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == counts["orders"]


def test_an_unmigrated_database_is_refused(backend, fresh_url):
    with pytest.raises(ValueError, match="run the migrations first"):
        generate_demo_data(fresh_url, scale=50, as_of=AS_OF)


def _indexes(engine) -> dict[str, list]:
    inspector = sa.inspect(engine)
    return {name: sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                         for i in inspector.get_indexes(name)) for name in TABLES}


@pytest.mark.slow
def test_the_bulk_load_leaves_every_index_as_the_migrations_made_it(backend, engine):
    before = _indexes(engine)
    assert sum(len(v) for v in before.values()) >= 25
    generate_demo_data(engine, scale=80, as_of=AS_OF)
    assert _indexes(engine) == before


@pytest.mark.slow
def test_a_failure_in_the_last_table_leaves_nothing_written(backend, engine, monkeypatch):
    before = _indexes(engine)
    insert_rows = writing._insert_rows

    def failing(connection, table, columns, rows):
        if table == "security_audit_logs":
            raise RuntimeError("disk full (simulated)")
        insert_rows(connection, table, columns, rows)

    monkeypatch.setattr(writing, "_insert_rows", failing)
    with pytest.raises(RuntimeError, match="simulated"):
        generate_demo_data(engine, scale=100, as_of=AS_OF)
    with engine.connect() as connection:
        for name in TABLES:
            assert connection.execute(sa.text(f"SELECT count(*) FROM {name}")).scalar_one() == 0, name
    assert _indexes(engine) == before


@pytest.mark.slow
def test_a_connection_outside_a_transaction_is_committed(backend, engine):
    with engine.connect() as connection:
        generate_demo_data(connection, scale=60, as_of=AS_OF)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 60


@pytest.mark.slow
def test_a_session_writes_in_the_callers_transaction(backend, engine):
    with Session(engine) as session:
        generate_demo_data(session, scale=60, as_of=AS_OF)
        assert session.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 60
        session.rollback()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 0
    with Session(engine) as session:
        generate_demo_data(session, scale=60, as_of=AS_OF)
        session.commit()
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM orders")).scalar_one() == 60


@pytest.mark.slow
def test_as_of_defaults_to_the_start_of_the_current_utc_day(backend, engine, capsys):
    midnight = lambda: datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)  # noqa: E731
    before = midnight()
    generate_demo_data(engine, scale=60, progress=True)
    after = midnight()
    assert "security_audit_logs" in capsys.readouterr().err  # the progress bar, on stderr
    with engine.connect() as connection:
        latest = connection.execute(sa.select(sa.func.max(SecurityAuditLog.__table__.c.timestamp))).scalar_one()
    assert before - timedelta(days=1) < latest < after


@pytest.mark.parametrize("as_of", ["9999-12-31", "9999-12-31T23:00:00-05:00", "0001-01-01", "0001-06-01",
                                   datetime(9999, 12, 31, 23, 59, tzinfo=timezone.utc)])
def test_an_as_of_outside_the_generable_range_is_refused_naming_the_range(as_of):
    """The demo's times reach 271 days before and 365 days after as_of: near the ends of the
    years 1-9999 the option is refused (ValueError, the CLI's exit 2), not a Python overflow."""
    with pytest.raises(ValueError, match=r"as_of \(--as-of\) .* is outside the range the demo can generate: "
                                         r"0001-09-30 to 9998-12-30 UTC"):
        generate_demo_data("sqlite:///:memory:", as_of=as_of)


@pytest.mark.slow
def test_seed_with_as_of_at_the_end_of_time_exits_2(tmp_path):
    from typer.testing import CliRunner

    from shivx_analytics.cli import app

    target = tmp_path / "end.db"
    result = CliRunner().invoke(app, ["seed", "--url", f"sqlite:///{target}", "--as-of", "9999-12-31"])
    assert result.exit_code == 2, result.output
    # The CLI's own range check answers first (ISO dates from 1900 to 2200); the Python API's is below.
    assert "--as-of" in result.stderr and "outside the supported range" in result.stderr
    assert "Traceback" not in result.output and not target.exists()  # refused before anything is written
    assert seed.AS_OF_LATEST == datetime(9998, 12, 30, tzinfo=timezone.utc)
    # the last as_of accepted generates every row within the years 1-9999
    from shivx_analytics.db import migrate

    migrate(f"sqlite:///{target}")
    counts = generate_demo_data(f"sqlite:///{target}", scale=50, as_of=seed.AS_OF_LATEST)
    assert counts["orders"] == 50


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_non_superuser_owner_can_migrate_and_seed_under_forced_row_security(backend):
    """The audit log's row-level security is forced on its owner, and PostgreSQL refuses COPY FROM
    where a policy applies ("COPY FROM not supported with row-level security"): `seed` as a
    plain owner role writes every row, and the hash chain verifies."""
    import uuid

    from _databases import _admin_engine, engine_of
    from sqlalchemy.engine import make_url
    from typer.testing import CliRunner

    from shivx_analytics.audit_chain import verify_audit_chain
    from shivx_analytics.cli import app

    require_backend(backend)
    role, database = f"shivx_owner_{uuid.uuid4().hex[:8]}", f"shivx_test_{uuid.uuid4().hex[:12]}"
    admin = _admin_engine()
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOBYPASSRLS')
        connection.exec_driver_sql(f'CREATE DATABASE "{database}" OWNER "{role}"')
    url = make_url(POSTGRES_URL).set(database=database, username=role, password=None).render_as_string(
        hide_password=False)
    try:
        result = CliRunner().invoke(app, ["seed", "--url", url, "--scale", "60", "--as-of", "2025-10-28"])
        assert result.exit_code == 0, result.output
        with engine_of(url) as engine, engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                                              "WHERE rolname = current_user").scalar_one() is False
            assert connection.exec_driver_sql("SELECT row_security_active('security_audit_logs')").scalar_one()
            audit_rows = connection.exec_driver_sql("SELECT count(*) FROM security_audit_logs").scalar_one()
            assert connection.exec_driver_sql("SELECT count(*) FROM orders").scalar_one() == 60
        assert audit_rows > 60 and f"{audit_rows} security_audit_logs" in result.stdout
        verification = verify_audit_chain(url)
        assert verification.ok and verification.rows == audit_rows
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{role}"')
        admin.dispose()
