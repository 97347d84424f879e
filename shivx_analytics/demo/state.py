"""The demo builder's state and the helpers every entity's generator shares.

The builder (demo/builder.py) is one object whose methods come from one class per entity (users,
API keys, positions and orders, audit events); they draw from one random generator in a fixed
order and read each other's arrays. Those arrays are declared here, once, with the module that
fills them. Times are int64 microseconds since the epoch (NULL_TIME for NULL); references between
tables are row numbers (-1 for NULL) until the tables are formatted.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from shivx_analytics.config import get_settings
from shivx_analytics.demo.vocabulary import AUDIT_ROWS_PER_ORDER, DAY, HISTORY_DAYS, MAX_USERS, SCALES, _json


class _BuilderState:
    """What the entity generators share: the random generator, the sizes, every drawn array."""

    rng: np.random.Generator
    n_orders: int
    as_of: int  # microseconds since the epoch, like every time below
    t0: int  # the start of the history
    n_users: int
    n_audit: int
    lockout_threshold: int  # failed logins that lock an account (Settings.lockout_threshold)
    lockout_period: int  # how long, in microseconds (Settings.lockout_minutes)
    ips: list[str]  # every IP address drawn; events and keys hold codes into it
    # prices (demo/positions.py)
    log_price: np.ndarray
    price_decimals: np.ndarray
    size_decimals: np.ndarray
    token_popularity: np.ndarray
    token_meme: np.ndarray
    # users (demo/users.py)
    role: np.ndarray
    user_ids: np.ndarray
    usernames: list[str]
    emails: list[str]
    user_created: np.ndarray
    user_start: np.ndarray
    user_end: np.ndarray
    user_active: np.ndarray
    user_activity: np.ndarray
    api_share: np.ndarray
    size_usd: np.ndarray
    user_ips: list[list[int]]
    user_strategies: np.ndarray
    n_user_strategies: np.ndarray
    password_hashes: list[str]
    auth_rows: list[tuple]
    user_attempts: np.ndarray
    user_locked_until: np.ndarray
    user_last_login: np.ndarray
    user_updated: np.ndarray
    # API keys (demo/api_keys.py)
    n_keys: int
    rotated_from: np.ndarray
    key_owner: np.ndarray
    key_created: np.ndarray
    key_rate_limit: np.ndarray
    key_expires: np.ndarray
    key_never_used: np.ndarray
    key_revoked: np.ndarray
    key_revoke_time: np.ndarray
    key_trade: np.ndarray
    key_names: list[str]
    key_ids: np.ndarray
    key_id_text: list[str]
    key_hashes: list[str]
    key_prefixes: list[str]
    key_ips: list[int]
    key_usage_end: np.ndarray
    key_requests: np.ndarray
    key_last_used: np.ndarray
    key_updated: np.ndarray
    rate_limited_keys: list[int]
    api: dict[str, Any]  # the api_request events' columns: lists of arrays, then arrays
    # positions and orders (demo/positions.py)
    pair_user: np.ndarray
    pair_token: np.ndarray
    pair_weight: np.ndarray
    n_positions: int
    pos_user: np.ndarray
    pos_token: np.ndarray
    pos_status: np.ndarray
    pos_opened: np.ndarray
    pos_closed: np.ndarray
    pos_strategy: np.ndarray
    pos_size: np.ndarray
    pos_entry: np.ndarray
    pos_current: np.ndarray
    pos_stop: np.ndarray
    pos_take: np.ndarray
    pos_exit_reason: np.ndarray
    pos_ids: np.ndarray
    pos_cost: np.ndarray
    pos_proceeds: np.ndarray
    stop_crossed: np.ndarray
    take_crossed: np.ndarray
    n_orders_total: int
    order_ids: np.ndarray
    signatures: np.ndarray
    o_user: np.ndarray
    o_token: np.ndarray
    o_action: np.ndarray
    o_type: np.ndarray
    o_amount_in: np.ndarray
    o_amount_out: np.ndarray
    o_price: np.ndarray
    o_tolerance: np.ndarray
    o_status: np.ndarray
    o_position: np.ndarray
    o_created: np.ndarray
    o_updated: np.ndarray
    o_executed: np.ndarray
    o_reason: np.ndarray
    o_strategy: np.ndarray
    o_exit_reason: np.ndarray
    o_attempt: np.ndarray
    o_key: np.ndarray
    o_signature: np.ndarray
    # audit events (demo/audit.py)
    ev: list[dict[str, np.ndarray]]
    static_details: list[str]

    def __init__(self, seed: int, n_orders: int, as_of: datetime):
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.n_orders = n_orders
        self.as_of = (as_of - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(microseconds=1)
        self.t0 = self.as_of - HISTORY_DAYS * DAY
        self.n_users = int(np.clip(round(25 * math.sqrt(n_orders / SCALES["small"])), 5, MAX_USERS))
        self.n_audit = int(round(AUDIT_ROWS_PER_ORDER * n_orders))
        self.ips = []
        settings = get_settings()  # SHIVX_LOCKOUT_THRESHOLD, SHIVX_LOCKOUT_MINUTES: the model's defaults, 5 and 15
        self.lockout_threshold = settings.lockout_threshold
        self.lockout_period = settings.lockout_period // timedelta(microseconds=1)

    def _new_ips(self, n: int, attacker: bool = False) -> list[int]:
        """n new IP addresses (documentation and shared ranges), returned as codes into self.ips."""
        rng = self.rng
        codes = []
        for _ in range(n):
            if attacker:
                text = f"192.0.2.{int(rng.integers(2, 255))}"
            else:
                kind = rng.random()
                if kind < 0.3:
                    text = f"198.51.100.{int(rng.integers(2, 255))}"
                elif kind < 0.55:
                    text = f"203.0.113.{int(rng.integers(2, 255))}"
                elif kind < 0.9:
                    text = f"100.{int(rng.integers(64, 128))}.{int(rng.integers(0, 256))}.{int(rng.integers(1, 255))}"
                else:
                    groups = rng.integers(1, 65536, size=3).tolist()
                    text = f"2001:db8:{groups[0]:x}:{groups[1]:x}::{groups[2]:x}"
            self.ips.append(text)
            codes.append(len(self.ips) - 1)
        return codes

    def _add(self, ts, event, action, resource, user, ip, success, dkind, darg) -> None:
        n = len(ts)
        def column(value, dtype=np.int64) -> np.ndarray:
            return np.full(n, value, dtype) if np.isscalar(value) else np.asarray(value, dtype)

        self.ev.append({"ts": column(ts), "event": column(event), "action": column(action),
                        "resource": column(resource), "user": column(user), "ip": column(ip),
                        "success": column(success, bool), "dkind": column(dkind), "darg": column(darg)})

    def _static(self, details: list[dict]) -> np.ndarray:
        first = len(self.static_details)
        self.static_details.extend(_json(d) for d in details)
        return np.arange(first, first + len(details))
