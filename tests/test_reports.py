"""The four report objects on a small dataset written by hand through the models.

Every headline figure of the P&L report is worked out by hand below (the arithmetic is in the
comments); the same data give identical JSON on SQLite and PostgreSQL, byte-identical exports
on a second run, and the edge cases render without a crash and without NaN.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import statistics
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from decimal import Decimal, localcontext
from pathlib import Path

import pandas as pd
import pytest
from _databases import BACKENDS, create_postgres_database, drop_postgres_database, require_backend
from sqlalchemy.orm import Session

import shivx_analytics as sx
from shivx_analytics.db import create_engine
from shivx_analytics.models import (
    APIKeyCreate,
    Order,
    OrderCreate,
    Position,
    PositionCreate,
    SecurityAuditLog,
    User,
    UserCreate,
    build_api_key,
)
from shivx_analytics.reports import Report, api_usage_report, execution_report, pnl_report, security_report

AS_OF = "2025-01-05T12:00:00Z"
CAPITAL = Decimal("10000")
PASSWORD_HASH = "pbkdf2_sha256$1$c2FsdA$aGFzaA"  # a fake stored hash: it must never reach a report
REPORTS = {"pnl": pnl_report, "execution": execution_report, "api_usage": api_usage_report,
           "security": security_report}


def t(text: str) -> datetime:
    """An aware UTC datetime from '2025-01-03T02:00:00'."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def uid(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


U1, U2, U3 = uid(1), uid(2), uid(3)


# The hand-written dataset --------------------------------------------------------------------
#
# Positions (pnl = size x (exit or mark - entry)):
#   P1 u1 SOL momentum  2   x (110 - 100)                     closed 01-01 15:00  = +20
#   P2 u1 ETH momentum  0.5 x (1900 - 2000)                   closed 01-02 10:00  = -50
#   P3 u2 SOL mean_rev  3   x (105 - 105)                     closed 01-03 08:00  =   0 (break-even)
#   P4 u2 BTC (none)    0.1 x (38000 - 40000)             liquidated 01-04 12:00  = -200
#   P5 u1 SOL mean_rev  1.5 x (140.00000002 - 100.12345678)   closed 01-04 18:00
#                     = 1.5 x 39.87654324 = 59.81481486 (exact, 8 dp)
#   P6 u1 ETH momentum  1   x (1850 - 1800)  open since 01-03 09:00: +50, take_profit 1840 crossed
#   P7 u2 SOL (none)    10  x (110.5 - 120)  open since 01-03 06:00: -95, stop_loss 111 crossed
POSITIONS = [
    # id, user, token, strategy, size, entry, exit/mark, status, opened, closed, stop, take
    (101, U1, "SOL", "momentum", "2", "100", "110", "closed", "2025-01-01T09:00:00", "2025-01-01T15:00:00", None, None),
    (102, U1, "ETH", "momentum", "0.5", "2000", "1900", "closed", "2025-01-01T10:00:00", "2025-01-02T10:00:00", None, None),
    (103, U2, "SOL", "mean_reversion", "3", "105", "105", "closed", "2025-01-02T08:00:00", "2025-01-03T08:00:00", None, None),
    (104, U2, "BTC", None, "0.1", "40000", "38000", "liquidated", "2025-01-02T12:00:00", "2025-01-04T12:00:00", None, None),
    (105, U1, "SOL", "mean_reversion", "1.5", "100.12345678", "140.00000002", "closed", "2025-01-03T12:00:00", "2025-01-04T18:00:00", None, None),
    (106, U1, "ETH", "momentum", "1", "1800", "1850", "open", "2025-01-03T09:00:00", None, "1700", "1840"),
    (107, U2, "SOL", None, "10", "120", "110.5", "open", "2025-01-03T06:00:00", None, "111", None),
]

# Orders: every position's buy, every closed position's sell, and a few that did not fill.
# The sell of P4 filled at 3799.5 USD instead of 0.1 x 38000 = 3800: FIFO realizes
# 3799.5 - 4000 = -200.5 where the position says -200, a -0.5 USD difference to reconcile.
ORDERS = [
    # id, user, position, token, action, type, amount_in, price, amount_out, status, created, executed/reason
    (201, U1, 101, "SOL", "buy", "market", "200", "100", "2", "executed", "2025-01-01T08:59:55", "2025-01-01T09:00:00"),
    (202, U1, 101, "SOL", "sell", "market", "2", "110", "220", "executed", "2025-01-01T14:59:58", "2025-01-01T15:00:00"),
    (203, U1, 102, "ETH", "buy", "market", "1000", "2000", "0.5", "executed", "2025-01-01T09:59:59", "2025-01-01T10:00:00"),
    (204, U1, 102, "ETH", "sell", "market", "0.5", "1900", "950", "executed", "2025-01-02T09:59:59", "2025-01-02T10:00:00"),
    (205, U2, 103, "SOL", "buy", "limit", "315", "105", "3", "executed", "2025-01-02T07:00:00", "2025-01-02T08:00:00"),
    (206, U2, 103, "SOL", "sell", "market", "3", "105", "315", "executed", "2025-01-03T07:59:58", "2025-01-03T08:00:00"),
    (207, U2, 104, "BTC", "buy", "market", "4000", "40000", "0.1", "executed", "2025-01-02T11:59:59", "2025-01-02T12:00:00"),
    (208, U2, 104, "BTC", "sell", "stop_loss", "0.1", "38000", "3799.5", "executed", "2025-01-04T11:59:59", "2025-01-04T12:00:00"),
    (209, U1, 105, "SOL", "buy", "market", "150.18518517", "100.12345678", "1.5", "executed", "2025-01-03T11:59:58", "2025-01-03T12:00:00"),
    (210, U1, 105, "SOL", "sell", "take_profit", "1.5", "140.00000002", "210.00000003", "executed", "2025-01-04T17:59:59", "2025-01-04T18:00:00"),
    (211, U1, 106, "ETH", "buy", "market", "1800", "1800", "1", "executed", "2025-01-03T08:59:59", "2025-01-03T09:00:00"),
    (212, U2, 107, "SOL", "buy", "market", "1200", "119.5", "10", "executed", "2025-01-03T05:59:58", "2025-01-03T06:00:00"),
    (213, U1, None, "SOL", "buy", "market", "100", "100", None, "failed", "2025-01-04T10:00:00", "insufficient liquidity"),
    (214, U2, None, "ETH", "sell", "limit", "0.2", "1850", None, "cancelled", "2025-01-04T11:00:00", None),
    (215, U1, None, "BTC", "buy", "limit", "500", "37000", None, "pending", "2025-01-05T09:00:00", None),
    (216, U2, None, "SOL", "sell", "market", "1", "110", None, "failed", "2025-01-03T20:00:00", "slippage exceeded tolerance"),
    # 100 USD at 100 should buy 1 SOL; 0.99 came: (1 - 0.99) / 1 x 10,000 = 100 bps > 50 tolerance
    (217, U1, None, "SOL", "buy", "market", "100", "100", "0.99", "executed", "2025-01-05T07:59:59", "2025-01-05T08:00:00"),
]


def seed_users(session: Session) -> None:
    for user_id, name, locked_until, attempts in [
        (U1, "alice", None, 0), (U2, "bob", None, 0), (U3, "carol", t("2025-01-05T12:10:00"), 5),
    ]:
        user = User.model_validate(
            UserCreate(username=name, email=f"{name}@example.com", password="x" * 12),
            update={"password_hash": PASSWORD_HASH, "user_id": user_id, "locked_until": locked_until,
                    "failed_login_attempts": attempts, "created_at": t("2024-12-01T00:00:00")})
        session.add(user)
    session.flush()


def seed_positions(session: Session, rows=POSITIONS) -> None:
    for (n, user, token, strategy, size, entry, price, status, opened, closed_at, stop, take) in rows:
        create = PositionCreate(
            user_id=user, token=token, strategy=strategy, size=Decimal(size),
            entry_price=Decimal(entry), current_price=Decimal(price), status=status,
            opened_at=t(opened), closed_at=None if closed_at is None else t(closed_at),
            stop_loss=None if stop is None else Decimal(stop),
            take_profit=None if take is None else Decimal(take))
        session.add(Position.model_validate(create.model_dump(exclude_none=True) | {"position_id": uid(n)}))
    session.flush()


def seed_orders(session: Session, rows=ORDERS) -> None:
    for (n, user, position, token, action, kind, amount_in, price, amount_out, status, created, last) in rows:
        create = OrderCreate(user_id=user, position_id=None if position is None else uid(position),
                             token=token, action=action, order_type=kind, amount_in=Decimal(amount_in),
                             price=Decimal(price))
        order = Order.model_validate(create, update={"order_id": uid(n), "created_at": t(created)})
        settle_order(order, status, last, amount_out, signature=f"sig{n}")
        session.add(order)
    session.flush()


def settle_order(order: Order, status: str, last: str | None, amount_out: str | None, *, signature: str) -> None:
    """Take a new order to ``status``: executed at t(last) for amount_out (tx signature
    ``signature``), failed with reason ``last``, cancelled; pending stays as it is."""
    if status == "executed":
        order.execute(signature, Decimal(amount_out), at=t(last))
    elif status == "failed":
        order.fail(last)
    elif status == "cancelled":
        order.cancel()


def seed_api_keys(session: Session) -> list[str]:
    """Three keys; returns the secrets (plaintexts and hashes) that must never appear."""
    secrets = []
    for n, user, name, limit, expires, last_used in [
        (301, U1, "trading-bot", 5, t("2025-06-01T00:00:00"), t("2025-01-05T10:00:00")),
        (302, U1, "old-key", 60, t("2024-12-31T00:00:00"), t("2024-11-01T00:00:00")),  # expired, idle
        (303, U2, "unused", 100, None, None),                                             # never used
    ]:
        plaintext, key = build_api_key(APIKeyCreate(user_id=user, name=name, rate_limit=limit,
                                                    expires_at=expires))
        key.key_id, key.last_used_at, key.created_at = uid(n), last_used, t("2024-10-01T00:00:00")
        session.add(key)
        secrets += [plaintext, key.key_hash]
    session.flush()
    return secrets


def audit(n: int, when: str, event_type: str, action: str, success: bool, **fields) -> SecurityAuditLog:
    entry = SecurityAuditLog.create_entry(event_type=event_type, action=action, success=success,
                                          timestamp=t(when), **fields)
    entry.log_id = uid(n)
    return entry


def seed_audit(session: Session) -> None:
    entries = []
    # A burst: 10 failed logins on carol from one IP, 30 s apart (02:00:00 .. 02:04:30), her
    # lockout, then a successful login (alice) from the same IP at 02:06.
    for i in range(10):
        entries.append(audit(400 + i, f"2025-01-03T02:{i // 2:02d}:{30 * (i % 2):02d}", "authentication",
                             "login", False, user_id=U3, ip_address="203.0.113.9", resource="/auth/login"))
    entries.append(audit(411, "2025-01-03T02:04:31", "authentication", "lockout", True, user_id=U3,
                         ip_address="203.0.113.9"))
    entries.append(audit(412, "2025-01-03T02:06:00", "authentication", "login", True, user_id=U1,
                         ip_address="203.0.113.9", resource="/auth/login"))
    # alice mistypes once, then logs in.
    entries.append(audit(413, "2025-01-04T09:00:00", "authentication", "login", False, user_id=U1,
                         ip_address="10.0.0.1", resource="/auth/login"))
    entries.append(audit(414, "2025-01-04T09:01:00", "authentication", "login", True, user_id=U1,
                         ip_address="10.0.0.1", resource="/auth/login"))
    # API requests: 5 on trading-bot in one minute (rate_limit 5: utilisation 5 / 5 = 1.0), the
    # last one refused with 429; 2 more the next day; one 404 on the old key.
    for i in range(5):
        status, reason = (429, "rate_limited") if i == 4 else (200, None)
        details = {"key_id": str(uid(301)), "status_code": status} | ({"reason": reason} if reason else {})
        entries.append(audit(420 + i, f"2025-01-04T10:00:{10 * i:02d}", "api_request", "POST", status < 400,
                             user_id=U1, ip_address="10.0.0.5", resource="/api/v1/orders", details=details))
    for i in range(2):
        entries.append(audit(430 + i, f"2025-01-05T10:0{i}:00", "api_request", "GET", True, user_id=U1,
                             ip_address="10.0.0.5", resource="/api/v1/positions",
                             details={"key_id": str(uid(301)), "status_code": 200}))
    entries.append(audit(432, "2025-01-03T15:00:00", "api_request", "GET", False, user_id=U1,
                         ip_address="10.0.0.6", resource="/api/v1/nothing",
                         details={"key_id": str(uid(302)), "status_code": 404}))
    # Other vocabulary, and a type no report knows.
    entries.append(audit(440, "2025-01-04T12:00:00", "authorization", "access_denied", False, user_id=U2,
                         ip_address="10.0.0.7", resource="/admin"))
    entries.append(audit(441, "2025-01-04T12:30:00", "trading", "order_create", True, user_id=U2))
    entries.append(audit(442, "2025-01-04T13:00:00", "custom_audit", "noop", True))
    session.add_all(entries)
    session.flush()


def seed_everything(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with Session(engine) as session:
            seed_users(session)
            seed_positions(session)
            seed_orders(session)
            secrets = seed_api_keys(session)
            seed_audit(session)
            session.commit()
    finally:
        engine.dispose()
    return secrets


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(request, migrated_templates, tmp_path_factory) -> Iterator[tuple[str, list[str]]]:
    """The hand-written dataset in one database per backend, shared by the tests of this module
    (reports only read)."""
    require_backend(request.param)
    if request.param == "sqlite":
        target = tmp_path_factory.mktemp("hand") / "hand.db"
        shutil.copyfile(migrated_templates["sqlite"], target)
        url = f"sqlite:///{target}"
    else:
        url = create_postgres_database(template=migrated_templates["postgresql"])
    try:
        yield url, seed_everything(url)
    finally:
        if request.param == "postgresql":
            drop_postgres_database(url)


# P&L figures, by hand ------------------------------------------------------------------------

def test_pnl_report_headline_figures_match_the_hand_computation(seeded):
    url, _ = seeded
    report = pnl_report(url, as_of=AS_OF, starting_capital=CAPITAL)
    s = report.summary

    # Window: since = UTC day of the first opened_at (P1, 2025-01-01); until = the day after as_of.
    assert report.parameters["since"] == pd.Timestamp("2025-01-01", tz="UTC")
    assert report.parameters["until"] == pd.Timestamp("2025-01-06", tz="UTC")
    # Daily realized P&L, 01-01 .. 01-05 (zero days kept):
    #   01-01 P1 +20; 01-02 P2 -50; 01-03 P3 0; 01-04 P4 -200 + P5 59.81481486 = -140.18518514; 01-05 0
    daily = [Decimal("20"), Decimal("-50"), Decimal("0"), Decimal("-140.18518514"), Decimal("0")]
    assert list(report.exact_tables["daily"]["realized_pnl"]) == daily

    # realized = 20 - 50 + 0 - 200 + 59.81481486 = -170.18518514
    assert s["realized_pnl"] == Decimal("-170.18518514")
    # unrealized = P6 +50 + P7 -95 = -45; total = -170.18518514 - 45 = -215.18518514
    assert s["unrealized_pnl"] == Decimal("-45")
    assert s["total_pnl"] == Decimal("-215.18518514")
    assert (s["closed_positions"], s["open_positions"]) == (5, 2)
    # wins P1, P5; losses P2, P4; break-even P3 (stays in the denominator): 2 / 5
    assert (s["wins"], s["losses"], s["break_even"]) == (2, 2, 1)
    assert s["win_rate"] == 0.4
    # gross profit 20 + 59.81481486 = 79.81481486; gross loss -50 - 200 = -250
    assert (s["gross_profit"], s["gross_loss"]) == (Decimal("79.81481486"), Decimal("-250"))
    # profit factor 79.81481486 / 250 = 0.31925925944
    assert s["profit_factor"] == pytest.approx(0.31925925944, rel=1e-12)
    # payoff: average win 39.90740743 / |average loss| 125 = 0.31925925944
    assert s["payoff_ratio"] == pytest.approx(0.31925925944, rel=1e-12)
    # expectancy -170.18518514 / 5 = -34.037037028
    assert s["expectancy"] == Decimal("-34.03703703")  # 8 dp, half-even: ...028 -> ...03
    assert (s["largest_win"], s["largest_loss"]) == (Decimal("59.81481486"), Decimal("-200"))
    # equity from 10,000: 10020, 9970, 9970, 9829.81481486, 9829.81481486; peak 10020
    assert list(report.exact_tables["daily"]["equity"]) == [
        Decimal("10020"), Decimal("9970"), Decimal("9970"), Decimal("9829.81481486"), Decimal("9829.81481486")]
    assert s["ending_equity"] == Decimal("9829.81481486")
    # max drawdown 9829.81481486 - 10020 = -190.18518514 USD, (9829.81481486 / 10020 - 1) x 100 %
    assert s["max_drawdown"] == Decimal("-190.18518514")
    with localcontext() as ctx:
        ctx.prec = 50
        expected_pct = float((Decimal("9829.81481486") / Decimal("10020") - 1) * 100)
    assert s["max_drawdown_pct"] == pytest.approx(expected_pct, rel=1e-12)
    assert s["max_drawdown_pct"] == pytest.approx(-1.89805573992, rel=1e-10)  # -190.18518514 / 10020 x 100
    # Five days are fewer than MIN_DAYS_FOR_RATIOS (30): no Sharpe, Sortino, volatility, CAGR or
    # Calmar, and the notes say why. The formulas, on the report's daily series with min_days=5:
    # Sharpe: mean -34.037037028 / stdev (ddof 1) x sqrt(365); Sortino: mean / sqrt(mean(min(x,0)^2))
    # with mean(min(x,0)^2) = (50^2 + 140.18518514^2) / 5 = (2500 + 19651.88615...) / 5
    for key in ("sharpe", "sortino", "volatility", "volatility_pct", "cagr_pct", "calmar"):
        assert s[key] is None, key
    assert any("at least 30 daily observations; this window has 5" in note for note in report.notes)
    series = report.exact_tables["daily"]["realized_pnl"]
    x = [float(v) for v in daily]
    assert sx.metrics.sharpe(series, min_days=5) == pytest.approx(
        statistics.mean(x) / statistics.stdev(x) * math.sqrt(365), rel=1e-12)
    downside = math.sqrt((50.0 ** 2 + 140.18518514 ** 2) / 5)
    assert sx.metrics.sortino(series, min_days=5) == pytest.approx(-34.037037028 / downside * math.sqrt(365),
                                                                    rel=1e-12)
    # return on capital -170.18518514 / 10000 x 100; one month holds the whole window
    assert s["return_pct"] == pytest.approx(-1.7018518514, rel=1e-12)
    assert s["best_month"] == s["worst_month"] == Decimal("-170.18518514")
    # one drawdown: peak 10020 on 01-01, trough 9829.81481486 from 01-04, not recovered by 01-05
    periods = report.exact_tables["drawdown_periods"]
    assert periods[["start", "trough"]].iloc[0].to_list() == [pd.Timestamp("2025-01-01", tz="UTC"),
                                                              pd.Timestamp("2025-01-04", tz="UTC")]
    assert len(periods) == 1 and pd.isna(periods["recovery"].iloc[0]) and periods["length_days"].iloc[0] == 4
    assert periods["depth"].iloc[0] == s["max_drawdown"]
    assert periods["depth_pct"].iloc[0] == pytest.approx(s["max_drawdown_pct"], rel=1e-12)
    assert report.exact_tables["monthly_heatmap"].loc[2025, "Jan"] == Decimal("-170.18518514")
    assert report.exact_tables["rolling"]["rolling_sharpe"].isna().all()  # no 30-day window yet
    assert (s["best_day"], s["worst_day"]) == (Decimal("20"), Decimal("-140.18518514"))
    # P6 crosses its take-profit (1850 >= 1840), P7 its stop-loss (110.5 <= 111)
    assert s["triggered_exits"] == 2
    assert list(report.exact_tables["triggered_exits"]["trigger"]) == ["take_profit", "stop_loss"]
    # FIFO: only (bob, BTC) differs: -200.5 from the orders against -200 from the position
    assert (s["fifo_mismatches"], s["fifo_problems"]) == (1, 0)
    recon = report.exact_tables["fifo_reconciliation"]
    mismatch = recon[~recon["matches"]]
    assert list(mismatch["token"]) == ["BTC"]
    assert list(mismatch["difference"]) == [Decimal("-0.5")]


@pytest.mark.slow
def test_pnl_sharpe_and_sortino_agree_with_quantstats_over_constant_capital(seeded):
    qs = pytest.importorskip("quantstats.stats")
    url, _ = seeded
    report = pnl_report(url, as_of=AS_OF, starting_capital=CAPITAL)
    returns = pd.Series([float(v) / 10_000 for v in report.exact_tables["daily"]["realized_pnl"]],
                        index=pd.date_range("2025-01-01", periods=5, freq="D"))
    series = report.tables["daily"]["realized_pnl"]  # five days: the report's ratios need 30
    assert sx.metrics.sharpe(series, min_days=5) == pytest.approx(float(qs.sharpe(returns, periods=365)), rel=1e-9)
    assert sx.metrics.sortino(series, min_days=5) == pytest.approx(float(qs.sortino(returns, periods=365)),
                                                                    rel=1e-9)


def test_pnl_breakdowns_and_periods_add_up(seeded):
    url, _ = seeded
    report = pnl_report(url, as_of=AS_OF, starting_capital=CAPITAL)
    by_token = report.exact_tables["by_token"]
    # SOL: realized 20 + 0 + 59.81481486, unrealized -95; ETH: -50 and +50; BTC: -200
    assert by_token.loc["SOL", "realized"] == Decimal("79.81481486")
    assert by_token.loc["SOL", "unrealized"] == Decimal("-95")
    assert by_token.loc["ETH", "total"] == Decimal("0")
    assert by_token.loc["BTC", "total"] == Decimal("-200")
    by_strategy = report.exact_tables["by_strategy"]
    assert by_strategy["total"].sum() == report.summary["total_pnl"]
    assert report.exact_tables["by_user"]["total"].sum() == report.summary["total_pnl"]
    # 2025-01-01 is a Wednesday: one ISO week (Mon 2024-12-30) holds the whole window; one month.
    assert list(report.exact_tables["weekly"]["realized_pnl"]) == [Decimal("-170.18518514")]
    assert list(report.exact_tables["monthly"]["realized_pnl"]) == [Decimal("-170.18518514")]


@pytest.mark.slow
def test_pnl_window_cutting_through_positions(seeded):
    url, _ = seeded
    # [01-02, 01-04): closed inside: P2 (-50), P3 (0). Open and opened before 01-04: P6, P7 (-45).
    # P4 and P5 were open at 01-04 but are closed now: they count in neither (DESIGN.md).
    report = pnl_report(url, since="2025-01-02", until="2025-01-04", as_of=AS_OF)
    s = report.summary
    assert (s["realized_pnl"], s["unrealized_pnl"], s["total_pnl"]) == (
        Decimal("-50"), Decimal("-45"), Decimal("-95"))
    assert (s["closed_positions"], s["open_positions"]) == (2, 2)
    assert list(report.exact_tables["daily"]["realized_pnl"]) == [Decimal("-50"), Decimal("0")]
    # Without starting capital the curve is cumulative P&L from 0: peak 0, trough -50.
    assert s["max_drawdown"] == Decimal("-50") and s["max_drawdown_pct"] is None
    assert s["win_rate"] == 0.0 and s["profit_factor"] == 0.0
    _assert_renders_clean(report)


# The other three reports on the same data ----------------------------------------------------

def test_execution_report_counts_notional_and_slippage(seeded):
    url, _ = seeded
    report = execution_report(url, as_of=AS_OF)
    s = report.summary
    assert (s["orders"], s["executed"], s["failed"], s["cancelled"], s["pending"]) == (17, 13, 2, 1, 1)
    assert s["fill_rate"] == 13 / 16  # pending orders are not settled
    # buys 200 + 1000 + 315 + 4000 + 150.18518517 + 1800 + 1200 + 100 = 8765.18518517,
    # sells 220 + 950 + 315 + 3799.5 + 210.00000003 = 5494.50000003; together 14259.68518520
    assert s["executed_notional"] == Decimal("14259.68518520")
    assert s["over_tolerance_rate"] == 1 / 13  # only the 100 bps fill of order 217
    reasons = report.exact_tables["failure_reasons"]
    assert list(reasons["reason"]) == ["insufficient liquidity", "slippage exceeded tolerance"]


def test_api_usage_report_hygiene_and_utilisation(seeded):
    url, _ = seeded
    s = api_usage_report(url, as_of=AS_OF).summary
    assert (s["keys"], s["active_keys"], s["expired_active_keys"], s["never_used_keys"]) == (3, 3, 1, 1)
    assert (s["requests"], s["rate_limited_requests"]) == (8, 1)
    assert s["peak_utilization"] == 1.0  # 5 requests in the minute 01-04 10:00 / rate_limit 5


def test_security_report_failures_lockouts_suspects(seeded):
    url, _ = seeded
    report = security_report(url, as_of=AS_OF)
    s = report.summary
    assert (s["failed_logins"], s["lockouts"], s["locked_users"], s["suspicious_ips"]) == (11, 1, 1, 1)
    assert list(report.exact_tables["brute_force_suspects"]["ip_address"]) == ["203.0.113.9"]
    assert list(report.exact_tables["locked_users"]["username"]) == ["carol"]
    assert "custom_audit" in list(report.exact_tables["event_types"]["event_type"])


# Exports ------------------------------------------------------------------------------------

def _all_reports(url: str) -> dict[str, Report]:
    return {name: build(url, as_of=AS_OF, **({"starting_capital": CAPITAL} if name == "pnl" else {}))
            for name, build in REPORTS.items()}


@pytest.mark.slow
def test_exports_are_byte_identical_across_runs_and_leak_no_secret(seeded, tmp_path):
    url, secrets = seeded
    outputs = []
    for run in ("first", "second"):
        texts = {}
        for name, report in _all_reports(url).items():
            texts[f"{name}.json"] = report.to_json(tmp_path / run / f"{name}.json")
            for path in report.to_csv(tmp_path / run / name):
                texts[f"{name}/{path.name}"] = path.read_text()
        outputs.append(texts)
    assert outputs[0] == outputs[1]
    for path in (tmp_path / "first").rglob("*"):
        if path.is_file():
            assert (tmp_path / "second" / path.relative_to(tmp_path / "first")).read_bytes() == path.read_bytes()
    everything = "\n".join(outputs[0].values())
    for secret in [PASSWORD_HASH, *secrets]:
        assert secret not in everything
    assert "NaN" not in everything


@pytest.mark.slow
def test_html_is_one_self_contained_file(seeded, tmp_path):
    url, secrets = seeded
    report = pnl_report(url, as_of=AS_OF, starting_capital=CAPITAL)
    out = tmp_path / "html"
    page = report.to_html(out / "pnl.html")
    assert (out / "pnl.html").read_text(encoding="utf-8") == page
    assert page.count("data:image/png;base64,") == len(report.figures) == 9
    assert not re.search(r"https?://", page)
    assert not re.search(r"<(script|link)\b", page)
    for secret in [PASSWORD_HASH, *secrets]:
        assert secret not in page
    assert [p.name for p in out.iterdir()] == ["pnl.html"]  # no temporary file left behind


@pytest.mark.slow
def test_database_url_is_shown_with_the_password_masked(seeded):
    url, _ = seeded
    backend = url.split(":", 1)[0]
    if backend == "postgresql":  # the test server trusts local connections: any password works
        url = url.replace("postgres@", "postgres:hunter2secret@", 1)
        assert "hunter2secret" in url
    report = security_report(url, as_of=AS_OF)
    shown = report.parameters["database"]
    assert shown.startswith(backend)
    assert "hunter2secret" not in report.to_json() + report.to_html() + report._repr_html_()
    if backend == "postgresql":
        assert "***" in shown


@pytest.mark.slow
def test_engine_connection_session_and_url_give_the_same_report(seeded):
    url, _ = seeded
    engine = create_engine(url)
    try:
        expected = pnl_report(engine, as_of=AS_OF).to_json()
        assert pnl_report(url, as_of=AS_OF).to_json() == expected
        with engine.connect() as connection:
            assert pnl_report(connection, as_of=AS_OF).to_json() == expected
        with Session(engine) as session:
            assert pnl_report(session, as_of=AS_OF).to_json() == expected
    finally:
        engine.dispose()


@pytest.mark.slow
def test_as_of_defaults_to_now(seeded):
    url, _ = seeded
    before = pd.Timestamp.now(tz="UTC")
    report = execution_report(url)
    assert before <= report.parameters["as_of"] <= pd.Timestamp.now(tz="UTC")
    # docs/windows.md: until is the end of as_of's UTC day, as for the P&L report
    assert report.parameters["until"] == report.parameters["as_of"].floor("D") + pd.Timedelta(days=1)
    assert report.parameters["since"] == report.parameters["until"] - pd.Timedelta(days=30)


@pytest.mark.slow
def test_a_failed_export_leaves_no_file(seeded, tmp_path, monkeypatch):
    url, _ = seeded
    report = pnl_report(url, as_of=AS_OF)
    figure = report.figures["daily_pnl"]

    def broken(*args, **kwargs):
        raise RuntimeError("rendering failed")

    monkeypatch.setattr(figure, "savefig", broken)
    target = tmp_path / "out" / "pnl.html"
    with pytest.raises(RuntimeError, match="rendering failed"):
        report.to_html(target)
    assert not target.exists()
    assert not target.parent.exists() or not any(target.parent.iterdir())

    monkeypatch.setattr(json, "dumps", broken)
    with pytest.raises(RuntimeError):
        report.to_json(target.with_suffix(".json"))
    assert not target.with_suffix(".json").exists()
    monkeypatch.undo()

    # A failure while the bytes are being moved into place leaves neither the file nor a temporary.
    monkeypatch.setattr("shivx_analytics.reports.base.os.replace", broken)
    with pytest.raises(RuntimeError):
        report.to_json(target.with_suffix(".json"))
    assert not any(target.parent.iterdir())


@pytest.mark.slow
def test_repr_and_notebook_view_are_stable(seeded):
    url, _ = seeded
    first, second = pnl_report(url, as_of=AS_OF), pnl_report(url, as_of=AS_OF)
    assert first._repr_html_() == second._repr_html_()
    assert " at 0x" not in repr(first) and repr(first) == repr(second)
    assert 'id="shivx-pnl"' in first._repr_html_()


# SQLite and PostgreSQL -----------------------------------------------------------------------

@pytest.fixture
def both_backends(tmp_path, migrated_templates) -> Iterator[tuple[str, str]]:
    """A fresh migrated database on each backend: (sqlite_url, postgresql_url)."""
    require_backend("postgresql")
    sqlite_file = tmp_path / "same.db"
    shutil.copyfile(migrated_templates["sqlite"], sqlite_file)
    pg_url = create_postgres_database(template=migrated_templates["postgresql"])
    try:
        yield f"sqlite:///{sqlite_file}", pg_url
    finally:
        drop_postgres_database(pg_url)


@pytest.mark.slow
def test_sqlite_and_postgresql_give_identical_json(both_backends):
    texts = []
    for url in both_backends:
        seed_everything(url)
        reports = _all_reports(url)
        for report in reports.values():
            report.parameters.pop("database")
        texts.append({name: report.to_json() for name, report in reports.items()})
    for name in REPORTS:
        assert texts[0][name] == texts[1][name], name


# Edge cases ---------------------------------------------------------------------------------

def _closed(n, pnl, day, user=U1, token="SOL"):
    """A closed position of size 1 entered at 100 on `day` 01:00, closed at 100 + pnl at 02:00."""
    return (n, user, token, "edge", "1", "100", str(Decimal(100) + Decimal(pnl)), "closed",
            f"{day}T01:00:00", f"{day}T02:00:00", None, None)


def _open(n, mark, day, user=U1, token="ETH"):
    return (n, user, token, None, "2", "50", mark, "open", f"{day}T03:00:00", None, None, None)


EDGE_CASES = {
    "no_positions": [],
    "all_winners": [_closed(1, "5", "2025-01-02"), _closed(2, "7.5", "2025-01-04")],
    "all_losers": [_closed(1, "-5", "2025-01-02"), _closed(2, "-7.5", "2025-01-04")],
    "one_day": [_closed(1, "3", "2025-01-05"), _closed(2, "-1", "2025-01-05")],
    "only_open": [_open(1, "55", "2025-01-02"), _open(2, "45", "2025-01-03", token="SOL")],
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(EDGE_CASES))
def test_edge_cases_render_without_crash_or_nan(case, backend, db_url):
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            seed_users(session)
            seed_positions(session, EDGE_CASES[case])
            session.commit()
        without_capital = pnl_report(engine, as_of=AS_OF)
        _assert_renders_clean(without_capital, html=False)
        report = pnl_report(engine, as_of=AS_OF, starting_capital=CAPITAL)
        _assert_renders_clean(report)
        s = report.summary
        if case == "no_positions":
            assert (s["realized_pnl"], s["total_pnl"], s["closed_positions"]) == (Decimal(0), Decimal(0), 0)
            assert s["win_rate"] is None and s["sharpe"] is None and s["sortino"] is None
            for other in (execution_report, api_usage_report, security_report):
                _assert_renders_clean(other(engine, as_of=AS_OF))
        elif case == "all_winners":
            # 5 + 7.5 = 12.5, no losses: no profit factor, no Sortino, no drawdown
            assert s["realized_pnl"] == Decimal("12.5") and s["win_rate"] == 1.0
            assert s["profit_factor"] is None and s["sortino"] is None
            assert s["max_drawdown"] == Decimal(0) and s["max_drawdown_pct"] == 0.0
        elif case == "all_losers":
            # equity 10000 -> 9995 (01-02) -> 9987.5 (01-04): drawdown -12.5 USD, -0.125 %
            assert s["win_rate"] == 0.0 and s["profit_factor"] == 0.0
            assert s["max_drawdown"] == Decimal("-12.5") and s["max_drawdown_pct"] == pytest.approx(-0.125)
        elif case == "one_day":
            # since = the day of the first opened_at = as_of's day: one daily value, 3 - 1 = 2; no Sharpe
            assert len(report.exact_tables["daily"]) == 1 and s["best_day"] == s["worst_day"] == Decimal(2)
            assert s["sharpe"] is None
        elif case == "only_open":
            # 2 x (55 - 50) + 2 x (45 - 50) = 0 unrealized, nothing closed
            assert (s["open_positions"], s["closed_positions"], s["unrealized_pnl"]) == (2, 0, Decimal(0))
            assert s["expectancy"] is None and s["best_day"] == Decimal(0)
    finally:
        engine.dispose()


# 2 DOGE bought for 0.00000001 USD; two sells of 1 DOGE for 0.00000001 realize +0.000000005
# apiece (cost 0.000000005 a token), one before since (01-03) and one in the window.
STRADDLING_ORDERS = [
    (401, U1, None, "DOGE", "buy", "market", "0.00000001", "0.00000001", "2", "executed",
     "2025-01-01T09:59:59", "2025-01-01T10:00:00"),
    (402, U1, None, "DOGE", "sell", "market", "1", "0.00000001", "0.00000001", "executed",
     "2025-01-02T09:59:59", "2025-01-02T10:00:00"),
    (403, U1, None, "DOGE", "sell", "market", "1", "0.00000001", "0.00000001", "executed",
     "2025-01-04T09:59:59", "2025-01-04T10:00:00"),
]


@pytest.mark.slow
def test_fifo_reconciliation_rounds_the_windows_pnl_once(backend, db_url):
    engine = create_engine(db_url)
    try:
        with Session(engine) as session:
            seed_users(session)
            seed_orders(session, STRADDLING_ORDERS)
            session.commit()
        report = pnl_report(engine, since="2025-01-03", as_of=AS_OF)
        row = report.exact_tables["fifo_reconciliation"].set_index("token").loc["DOGE"]
        # +0.000000005 in the window: 0 to 8 places, half to even. The ledger through until
        # (0.00000001) minus the ledger through since (0.000000005 -> 0) would say 0.00000001.
        assert (row["fifo_pnl"], row["position_pnl"], row["matches"]) == (Decimal("0"), Decimal("0"), True)
        assert report.summary["fifo_mismatches"] == 0
        ledger = report.exact_tables["fifo_ledger"].set_index("token").loc["DOGE"]
        assert ledger["realized_pnl"] == Decimal("0.00000001")  # the whole ledger: 2 x 0.000000005
    finally:
        engine.dispose()


@pytest.mark.slow
def test_an_empty_window_renders(seeded):
    url, _ = seeded
    for name, build in REPORTS.items():
        report = build(url, since="2025-01-03T00:00:00", until="2025-01-03T00:00:00", as_of=AS_OF)
        _assert_renders_clean(report)
    assert report.summary["failed_logins"] == 0
    pnl = pnl_report(url, since="2025-01-03", until="2025-01-03", as_of=AS_OF)
    assert pnl.summary["best_day"] is None and len(pnl.exact_tables["daily"]) == 0


def test_bad_arguments_are_refused_with_their_name(seeded):
    url, _ = seeded
    with pytest.raises(ValueError, match="since"):
        pnl_report(url, since="not a date", as_of=AS_OF)
    with pytest.raises(ValueError, match=r"since \(2025-01-04.*\) is after until \(2025-01-02.*\): .* reversed"):
        execution_report(url, since="2025-01-04", until="2025-01-02", as_of=AS_OF)
    with pytest.raises(ValueError, match="starting_capital"):
        pnl_report(url, as_of=AS_OF, starting_capital=0)


@pytest.mark.slow
def test_figures_are_plain_figures_not_registered_with_pyplot(seeded):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    url, _ = seeded
    before = plt.get_fignums()
    reports = _all_reports(url)
    assert all(isinstance(f, Figure) for r in reports.values() for f in r.figures.values())
    assert plt.get_fignums() == before  # nothing kept alive by pyplot: no leak across reports


def test_reports_write_no_sql():
    """Layer rule (DESIGN.md): reports read through the frames loaders only."""
    folder = Path(sx.__file__).parent / "reports"
    for module in folder.glob("*.py"):
        source = module.read_text()
        assert not re.search(r"\b(select|text|execute|exec_driver_sql)\(|\bSELECT\b|\bFROM\b", source), module


def test_the_public_api_exposes_the_reports():
    assert sx.pnl_report is pnl_report and sx.security_report is security_report
    assert sx.execution_report is execution_report and sx.api_usage_report is api_usage_report


def _assert_renders_clean(report: Report, *, html: bool = True) -> None:
    """JSON, the notebook view, the repr and (unless html=False) the HTML page have no NaN."""
    text = report.to_json()
    assert "NaN" not in text and "Infinity" not in text
    json.loads(text)
    for value in report.summary.values():
        assert not (isinstance(value, float) and not math.isfinite(value))
    views = [report._repr_html_(), repr(report)]
    if html:
        page = report.to_html()
        assert page.count("data:image/png;base64,") == len(report.figures)
        views.append(re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", page))
    for view in views:
        assert not re.search(r"\b(NaN|nan|NaT|<NA>|inf)\b", view)


def test_exported_files_are_readable_by_others_as_the_umask_allows(tmp_path):
    """mkstemp creates 0600 files; an exported report gets the usual 0666 & ~umask."""
    import os
    import stat

    from shivx_analytics.reports.base import write_atomic

    previous = os.umask(0o022)
    try:
        write_atomic(tmp_path / "r.json", b"{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "r.json").stat().st_mode) == 0o644
