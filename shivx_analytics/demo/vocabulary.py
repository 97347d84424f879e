"""The demo's fixed vocabulary and the encoders its generators share.

Sizes (orders per scale, audit rows per order, users), time units in microseconds, the tokens and
their price paths' parameters, strategies, roles, names, order and position statuses, the audit
log's event types, actions and resources, and pure functions that turn arrays into the text the
column types store (JSON, UUIDs, signatures, money). No random draws happen here.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from shivx_analytics.domain.enums import OrderStatus, OrderType, PositionStatus

SCALES = {"small": 2_000, "medium": 100_000, "large": 1_000_000}  # orders
HISTORY_DAYS = 90
AUDIT_ROWS_PER_ORDER = 2.5
MAX_USERS = 500
DEMO_PASSWORD = "shivx-demo-password"
PASSWORD_SALT_POOL = 4
LEGACY_PASSWORD_USERS = 2
NULL_TIME = np.iinfo(np.int64).min  # a NULL timestamp in the int64 microsecond columns

SECOND = 1_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
PRICE_STEP = 5 * MINUTE

# symbol, USD price when the history starts, annualised volatility, popularity, meme (jumpy, wide tolerance)
TOKENS = (
    ("SOL", 148.0, 0.75, 10.0, False),
    ("BONK", 0.0000221, 1.6, 5.0, True),
    ("WIF", 2.15, 1.7, 5.0, True),
    ("JUP", 0.86, 1.1, 4.0, False),
    ("RAY", 3.45, 1.1, 3.0, False),
    ("ORCA", 3.05, 1.0, 1.5, False),
    ("PYTH", 0.36, 1.1, 2.0, False),
    ("JTO", 2.85, 1.1, 2.0, False),
    ("mSOL", 176.0, 0.75, 1.5, False),
    ("JitoSOL", 182.0, 0.75, 2.0, False),
    ("WBTC", 97_800.0, 0.5, 3.0, False),
    ("WETH", 3_380.0, 0.6, 2.5, False),
    ("POPCAT", 1.18, 1.8, 3.0, True),
    ("MEW", 0.0081, 1.8, 2.0, True),
    ("BOME", 0.0094, 1.8, 1.5, True),
    ("RENDER", 7.45, 1.0, 1.5, False),
    ("HNT", 6.2, 1.0, 1.0, False),
    ("W", 0.44, 1.2, 1.0, False),
    ("TNSR", 0.61, 1.3, 0.8, False),
    ("KMNO", 0.088, 1.3, 0.8, False),
)
PRICE_BAND = math.log(4.0)  # prices stay within 1/4 .. 4x of their start (a soft, tanh bound)

# name, edge on the exit price (mean log return), share of positions with stop loss / take profit
STRATEGIES = (
    ("RL Trading (PPO)", 0.004, 0.95),
    ("Momentum Breakout", 0.0015, 0.9),
    ("Mean Reversion", 0.001, 0.9),
    ("Grid Trading", 0.0, 0.5),
    ("DCA", -0.0005, 0.2),
    ("Jupiter Arbitrage", 0.002, 0.3),
    ("Manual", -0.002, 0.6),
)
UNLABELLED_STRATEGY_SHARE = 0.04  # positions with strategy NULL (older clients did not send one)

ROLE_ADMIN, ROLE_TRADER, ROLE_BOT, ROLE_ANALYST = range(4)
ROLE_ROLES = {ROLE_ADMIN: ["admin"], ROLE_TRADER: ["trader"], ROLE_BOT: ["trader", "bot"], ROLE_ANALYST: ["analyst"]}
ROLE_PERMISSIONS = {
    ROLE_ADMIN: {"read": True, "trade": True, "manage_users": True},
    ROLE_TRADER: {"read": True, "trade": True},
    ROLE_BOT: {"read": True, "trade": True},
    ROLE_ANALYST: {"read": True, "export": True},
}
FIRST_NAMES = ("alice", "bilal", "chen", "dmitri", "elena", "farah", "gabriel", "hana", "ivan", "jonas",
               "kofi", "lucia", "mateo", "nadia", "oscar", "priya", "quentin", "rosa", "sven", "tariq",
               "uma", "victor", "wen", "ximena", "yusuf", "zara", "arjun", "beatriz", "cyrus", "dalia")
LAST_NAMES = ("nakamura", "okafor", "silva", "kowalski", "haddad", "lindqvist", "moreau", "patel", "rossi",
              "schmidt", "tanaka", "usman", "vargas", "weber", "yilmaz", "zhang", "abara", "brennan",
              "costa", "duarte", "eriksen", "fischer", "garcia", "hoang", "ibrahim", "jensen")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "shivx.io")
BOT_NAMES = ("ppo", "momentum", "meanrev", "grid", "dca", "arb")
KEY_NAMES = {ROLE_ADMIN: ("ops-console", "admin-cli"), ROLE_TRADER: ("trading-bot", "mobile", "tradingview-webhook"),
             ROLE_BOT: ("ppo-agent-prod", "ppo-agent-canary", "executor", "signal-ingest"),
             ROLE_ANALYST: ("jupyter", "grafana-readonly", "backtest")}
RATE_LIMITS = np.array([30, 60, 120, 300, 600, 1200])
RATE_LIMIT_SHARES = np.array([0.15, 0.3, 0.2, 0.15, 0.12, 0.08])

FAILED_REASONS = ("slippage tolerance exceeded", "insufficient SOL for fees", "blockhash expired", "RPC timeout",
                  "insufficient token balance")
FAILED_REASON_SHARES = np.array([0.38, 0.14, 0.2, 0.2, 0.08])
EXTRA_ORDER_SHARE = 0.09  # failed, cancelled and pending orders among all orders
OPEN_POSITION_SHARE = 0.06
LIQUIDATED_SHARE = 0.04
BASE58 = np.frombuffer(b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz", np.uint8)
HEX = np.frombuffer(b"0123456789abcdef", np.uint8)

ORDER_TYPES = tuple(kind.value for kind in OrderType)  # market, limit, stop_loss, take_profit
MARKET, LIMIT, STOP_LOSS, TAKE_PROFIT = range(4)
ORDER_STATUSES = tuple(status.value for status in OrderStatus)  # pending, executed, failed, cancelled
PENDING, EXECUTED, FAILED, CANCELLED = range(4)
POSITION_STATUSES = tuple(status.value for status in PositionStatus)  # open, closed, liquidated
OPEN, CLOSED, LIQUIDATED = range(3)
EXIT_REASONS = ("signal", "stop_loss", "take_profit", "liquidation")

EVENT_TYPES = ("authentication", "api_request", "api_key", "authorization", "trading", "admin")
AUTHN, API_REQUEST, API_KEY, AUTHZ, TRADING, ADMIN = range(6)
ACTIONS = ("login", "logout", "lockout", "password_change", "GET", "POST", "create", "revoke", "rotate",
           "access_denied", "order_create", "order_execute", "position_close", "user_deactivate")
A = {name: code for code, name in enumerate(ACTIONS)}
RESOURCES = ("/api/v1/auth/login", "/api/v1/auth/logout", "/api/v1/auth/password", "/api/v1/orders",
             "/api/v1/positions", "/api/v1/market/prices", "/api/v1/portfolio", "/api/v1/strategies",
             "/api/v1/keys", "/api/v1/admin/users", "/api/v1/admin/audit-logs")
R = {name: code for code, name in enumerate(RESOURCES)}
GET_RESOURCES = np.array([R["/api/v1/positions"], R["/api/v1/orders"], R["/api/v1/market/prices"],
                          R["/api/v1/portfolio"], R["/api/v1/strategies"]])
GET_RESOURCE_SHARES = np.array([0.3, 0.25, 0.3, 0.1, 0.05])
API_STATUSES = np.array([200, 400, 404, 500, 503])
API_STATUS_SHARES = np.array([0.962, 0.01, 0.015, 0.007, 0.006])
API_REASONS = ("rate_limited", "key_expired")
RATE_LIMITED, KEY_EXPIRED = range(2)
BRUTE_FORCE_USERNAMES = ("admin", "root", "administrator", "test", "support", "solana")
# audit details formats: 0 = a ready JSON string, the others are formatted per batch
D_STATIC, D_API, D_ORDER_CREATE, D_ORDER_EXECUTE, D_POSITION_CLOSE = range(5)



def _json(value: Any) -> str:
    """JSON text exactly as the JSONData column type stores it (keys sorted)."""
    return json.dumps(value, sort_keys=True)


def _iso(micros: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=int(micros))).isoformat()


def _uuid_hex(rng: np.random.Generator, n: int) -> np.ndarray:
    """n version-4 UUIDs from the generator, as 32 lowercase hex digits (S32), like uuid.UUID(...).hex."""
    raw = np.frombuffer(rng.bytes(16 * n), np.uint8).reshape(n, 16).copy()
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    chars = np.empty((n, 32), np.uint8)
    chars[:, 0::2] = HEX[raw >> 4]
    chars[:, 1::2] = HEX[raw & 0x0F]
    return chars.view("S32").ravel()


def _uuid_strings(hex_ids: np.ndarray) -> list[str]:
    """Hyphenated UUID text (str(uuid.UUID(...))) of S32 hex ids."""
    if len(hex_ids) == 0:
        return []
    chars = np.ascontiguousarray(hex_ids).view(np.uint8).reshape(-1, 32)
    out = np.full((len(chars), 36), ord("-"), np.uint8)
    for (a, b), c in zip(((0, 8), (8, 12), (12, 16), (16, 20), (20, 32)), (0, 9, 14, 19, 24)):
        out[:, c:c + b - a] = chars[:, a:b]
    return out.view("S36").ravel().astype("U36").tolist()


def _signatures(rng: np.random.Generator, n: int) -> np.ndarray:
    """Solana-like transaction signatures: 88 base58 characters (S88)."""
    digits = rng.integers(0, 58, size=(n, 88), dtype=np.uint8)
    digits[:, 0] = rng.integers(1, 6, size=n, dtype=np.uint8)  # 64 bytes stay below 58**88
    return BASE58[digits].view("S88").ravel()


def _money_text(units: int, scale: int = 8) -> str:
    sign = "-" if units < 0 else ""
    whole, fraction = divmod(abs(units), 10**scale)
    return f"{sign}{whole}.{fraction:0{scale}d}"
