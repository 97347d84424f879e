"""Users and their logins: accounts, roles, passwords, IP addresses, the authentication events
(logins with typos, logouts, password changes, lockouts, brute force), and the users' login
bookkeeping replayed from those events.
"""

from __future__ import annotations

import hashlib
import math
from functools import lru_cache

import numpy as np

from shivx_analytics import security
from shivx_analytics.demo.columns import _Codes, _Ids, _Plain, _Table, _Times
from shivx_analytics.demo.state import _BuilderState
from shivx_analytics.demo.vocabulary import (
    AUTHN,
    BOT_NAMES,
    BRUTE_FORCE_USERNAMES,
    D_STATIC,
    DAY,
    DEMO_PASSWORD,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    HISTORY_DAYS,
    HOUR,
    LAST_NAMES,
    LEGACY_PASSWORD_USERS,
    MINUTE,
    NULL_TIME,
    PASSWORD_SALT_POOL,
    ROLE_ADMIN,
    ROLE_ANALYST,
    ROLE_BOT,
    ROLE_PERMISSIONS,
    ROLE_ROLES,
    ROLE_TRADER,
    SECOND,
    STRATEGIES,
    A,
    R,
    _iso,
    _json,
    _uuid_hex,
)


@lru_cache(maxsize=64)
def _password_hash(salt: bytes, legacy: bool) -> str:
    """DEMO_PASSWORD hashed with ``salt``: the current format, or the seed's legacy ``hash:salt``."""
    iterations = security.LEGACY_ITERATIONS if legacy else security.PASSWORD_ITERATIONS
    digest = hashlib.pbkdf2_hmac("sha256", DEMO_PASSWORD.encode("utf-8"), salt, iterations)
    if legacy:
        return f"{digest.hex()}:{salt.hex()}"
    return f"{security.PASSWORD_ALGORITHM}${iterations}${salt.hex()}${digest.hex()}"


class _Users(_BuilderState):
    """users, the authentication events, and the login state they leave."""

    def _users(self) -> None:
        rng, n = self.rng, self.n_users
        role = np.full(n, ROLE_TRADER)
        n_admin = max(2, round(0.03 * n))
        role[:n_admin] = ROLE_ADMIN
        rest = np.arange(n_admin, n)
        kinds = rng.choice([ROLE_TRADER, ROLE_BOT, ROLE_ANALYST], size=rest.size, p=[0.68, 0.18, 0.14])
        role[rest] = kinds
        if not (role == ROLE_BOT).any():
            role[n - 1] = ROLE_BOT
        self.role = role
        self.user_ids = _uuid_hex(rng, n)

        names, seen = [], set()
        for i in range(n):
            if role[i] == ROLE_BOT:
                base = f"{BOT_NAMES[int(rng.integers(len(BOT_NAMES)))]}-bot"
            elif role[i] == ROLE_ADMIN:
                base = f"ops.{FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]}"
            else:
                first = FIRST_NAMES[int(rng.integers(len(FIRST_NAMES)))]
                last = LAST_NAMES[int(rng.integers(len(LAST_NAMES)))]
                base = (f"{first}.{last}", f"{first}_{last[0]}", f"{first}{last[:3]}")[int(rng.integers(3))]
            name, suffix = base, 1
            while name in seen or role[i] == ROLE_BOT and suffix == 1:
                suffix += 1
                name = f"{base}-{suffix - 1:02d}" if role[i] == ROLE_BOT else f"{base}{suffix}"
            seen.add(name)
            names.append(name)
        self.usernames = names
        self.emails = [f"{name}@{EMAIL_DOMAINS[int(rng.integers(len(EMAIL_DOMAINS)))]}" for name in names]

        # signed up before the history (most) or during its first 60 days; start trading later
        new = rng.random(n) < 0.3
        new[:n_admin] = False
        created = np.where(new, self.t0 + (rng.random(n) * 60 * DAY).astype(np.int64),
                           self.t0 - (DAY + rng.random(n) * 180 * DAY).astype(np.int64))
        self.user_created = created
        self.user_start = np.maximum(created, self.t0) + (HOUR + rng.random(n) * 3 * DAY).astype(np.int64)
        inactive = rng.random(n) < 0.05
        inactive[:n_admin] = False
        if n >= 10 and not inactive.any():
            inactive[n_admin + int(rng.integers(n - n_admin))] = True
        self.user_active = ~inactive
        span = self.as_of - self.user_start
        self.user_end = np.where(inactive, self.user_start + (span * rng.uniform(0.4, 0.9, n)).astype(np.int64),
                                 self.as_of)
        activity = rng.lognormal(0.0, 0.9, n)
        activity = np.where(role == ROLE_BOT, rng.lognormal(1.2, 0.6, n), activity)
        activity = np.where(role == ROLE_ANALYST, 0.05 * activity, activity)
        self.user_activity = np.where(role == ROLE_ADMIN, 0.1 * activity, activity)
        self.api_share = np.select([role == ROLE_BOT, role == ROLE_TRADER], [rng.uniform(0.9, 1.0, n),
                                   rng.uniform(0.2, 0.85, n)], 0.1)
        self.size_usd = rng.lognormal(math.log(400), 1.0, n)  # typical position, USD
        self.user_ips = [self._new_ips(int(rng.integers(1, 4))) for _ in range(n)]

        # strategies each user runs (up to 3), as codes into STRATEGIES
        self.user_strategies = np.zeros((n, 3), np.int64)
        self.n_user_strategies = np.zeros(n, np.int64)
        bot_strategy = {"ppo": 0, "momentum": 1, "meanrev": 2, "grid": 3, "dca": 4, "arb": 5}
        for i in range(n):
            if role[i] == ROLE_BOT:
                chosen = [bot_strategy[names[i].split("-")[0]]]
            else:
                k = int(rng.integers(1, 4))
                chosen = list(rng.choice(len(STRATEGIES), size=k, replace=False,
                                         p=np.array([0.25, 0.15, 0.12, 0.1, 0.1, 0.06, 0.22])))
            self.user_strategies[i, :len(chosen)] = chosen
            self.n_user_strategies[i] = len(chosen)

        # passwords: a small pool of deterministic salts; a few users still on the legacy format
        salts = [rng.bytes(16) for _ in range(min(n, PASSWORD_SALT_POOL))]
        pool = rng.integers(0, len(salts), n)
        legacy = np.zeros(n, bool)
        legacy[rng.choice(np.arange(n_admin, n), size=min(LEGACY_PASSWORD_USERS, n - n_admin), replace=False)] = True
        self.password_hashes = [_password_hash(salts[pool[i]], bool(legacy[i])) for i in range(n)]

    def _authentication_events(self) -> None:
        """Logins (with typos), logouts, password changes, lockouts, two locked accounts, brute force."""
        rng = self.rng
        n = self.n_users
        humans = np.flatnonzero((self.role != ROLE_BOT) & self.user_active & (self.role != ROLE_ADMIN))
        n_locked_now = min(2, humans.size)
        locked_now = set(rng.choice(humans, size=n_locked_now, replace=False).tolist()) if n_locked_now else set()
        n_lockouts = max(1, round(0.1 * n))
        people = np.flatnonzero(self.role != ROLE_BOT)
        lockout_users = set(rng.choice(people, size=min(n_lockouts, people.size), replace=False).tolist())
        n_changes = min(people.size, max(1, round(0.1 * people.size)))
        password_changers = set(rng.choice(people, size=n_changes, replace=False).tolist())
        rows: list[tuple] = []  # (ts, action, success, user, ip, details)

        for u in range(n):
            start, end = int(self.user_start[u]), int(self.user_end[u])
            ips = self.user_ips[u]
            p_login = 0.03 if self.role[u] == ROLE_BOT else float(rng.uniform(0.25, 0.85))
            first_day = start // DAY + 1
            days = np.arange(first_day, max(first_day, end // DAY + 1)) * DAY
            login_days = days[rng.random(days.size) < p_login]
            hours = np.clip(rng.normal(13.5, 4.0, login_days.size), 0.2, 23.8)
            logins = login_days + (hours * HOUR).astype(np.int64)
            logins = logins[(logins > start) & (logins < end)]
            excluded: list[tuple[int, int]] = []
            special: list[tuple] = []
            if u in lockout_users and end - start > 3 * DAY:
                tau = start + int(rng.random() * (end - start - 2 * DAY)) + DAY
                special += self._lockout_episode(u, tau, recover=True)
                excluded.append((tau - MINUTE, tau + self.lockout_period + 3 * HOUR))
            if u in locked_now:
                tau = self.as_of - int(rng.uniform(3, 12) * MINUTE)
                special += self._lockout_episode(u, tau, recover=False)
                excluded.append((tau - MINUTE, self.as_of))
            for lo, hi in excluded:
                logins = logins[(logins < lo) | (logins > hi)]
            typo = rng.random(logins.size) < 0.05
            session = rng.lognormal(math.log(40 * MINUTE), 0.8, logins.size).astype(np.int64)
            logs_out = rng.random(logins.size) < 0.7
            for t, has_typo, length, out in zip(logins.tolist(), typo.tolist(), session.tolist(), logs_out.tolist()):
                ip = ips[int(rng.integers(len(ips)))]
                if has_typo:
                    rows.append((t - int(rng.uniform(5, 60) * SECOND), A["login"], False, u, ip,
                                 {"reason": "invalid_password", "username": self.usernames[u]}))
                rows.append((t, A["login"], True, u, ip, {"method": "password"}))
                if out and t + length < min(end, self.as_of) and not any(lo <= t + length <= hi for lo, hi in excluded):
                    rows.append((t + length, A["logout"], True, u, ip, {}))
            if u in password_changers and logins.size:
                t = int(logins[int(rng.integers(logins.size))]) + 5 * MINUTE
                if t < end:
                    rows.append((t, A["password_change"], True, u, ips[0], {}))
            rows.extend(special)

        rows.extend(self._brute_force())
        rows.sort(key=lambda r: (r[0], r[3] if r[3] is not None else -1))
        self.auth_rows = rows
        ts = [r[0] for r in rows]
        paths = {A["logout"]: R["/api/v1/auth/logout"], A["password_change"]: R["/api/v1/auth/password"]}
        resource = [paths.get(r[1], R["/api/v1/auth/login"]) for r in rows]
        self._add(ts, AUTHN, [r[1] for r in rows], resource, [-1 if r[3] is None else r[3] for r in rows],
                  [r[4] for r in rows], [r[2] for r in rows], D_STATIC, self._static([r[5] for r in rows]))

    def _lockout_episode(self, u: int, tau: int, *, recover: bool) -> list[tuple]:
        """lockout_threshold failed logins within two minutes, the lockout (for lockout_period), and (if
        recover) a later successful login."""
        rng = self.rng
        ip = self.user_ips[u][0]
        times = tau + np.sort((rng.random(self.lockout_threshold) * 2 * MINUTE).astype(np.int64))
        rows: list[tuple] = [(int(t), A["login"], False, u, ip,
                              {"reason": "invalid_password", "username": self.usernames[u]}) for t in times]
        locked_at = int(times[-1]) + 1000
        rows.append((locked_at, A["lockout"], False, u, ip,
                     {"failed_attempts": self.lockout_threshold, "locked_until": _iso(int(times[-1]) + self.lockout_period)}))
        if recover:
            back = locked_at + self.lockout_period + int(rng.uniform(1, 120) * MINUTE)
            rows.append((back, A["login"], True, u, ip, {"method": "password"}))
        return rows

    def _brute_force(self) -> list[tuple]:
        """Bursts of failed logins from one IP: >= 30 within 5 minutes, known and unknown usernames."""
        rng = self.rng
        rows = []
        n_bursts = max(1, self.n_audit // 500_000)
        for _ in range(n_bursts):
            ip = self._new_ips(1, attacker=True)[0]
            at = self.t0 + int(rng.uniform(0.55, 0.95) * HISTORY_DAYS * DAY)
            targets = np.flatnonzero((self.role != ROLE_BOT) & (self.user_start < at) & (self.user_end > at + HOUR))
            attempts = int(rng.integers(40, 70))
            times = at + np.sort((rng.random(attempts) * 4 * MINUTE).astype(np.int64))
            victims = rng.choice(targets, size=min(2, targets.size), replace=False).tolist()
            names = list(BRUTE_FORCE_USERNAMES) + [self.usernames[v] for v in victims]
            failures: dict[int, int] = {}
            for t in times.tolist():
                k = int(rng.integers(len(names)))
                user = victims[k - len(BRUTE_FORCE_USERNAMES)] if k >= len(BRUTE_FORCE_USERNAMES) else None
                reason = "invalid_password" if user is not None else "unknown_user"
                rows.append((t, A["login"], False, user, ip, {"reason": reason, "username": names[k]}))
                if user is not None:
                    failures[user] = failures.get(user, 0) + 1
                    if failures[user] == self.lockout_threshold:
                        rows.append((t + 1000, A["lockout"], False, user, ip,
                                     {"failed_attempts": self.lockout_threshold, "locked_until": _iso(t + self.lockout_period)}))
        return rows

    def _replay_logins(self) -> None:
        """failed_login_attempts, locked_until, last_login as the model's login bookkeeping leaves them."""
        n = self.n_users
        attempts = np.zeros(n, np.int64)
        locked_until = np.full(n, NULL_TIME)
        last_login = np.full(n, NULL_TIME)
        touched = self.user_created.copy()
        for t, action, success, user, _ip, _details in self.auth_rows:
            if user is None or action not in (A["login"], A["password_change"]):
                continue
            touched[user] = max(touched[user], t)
            if action != A["login"]:
                continue
            if success:
                attempts[user], locked_until[user], last_login[user] = 0, NULL_TIME, t
            else:
                attempts[user] += 1
                if attempts[user] >= self.lockout_threshold:
                    locked_until[user] = t + self.lockout_period
        deactivated = ~self.user_active
        touched[deactivated] = np.maximum(touched[deactivated], self.user_end[deactivated])
        self.user_attempts, self.user_locked_until, self.user_last_login = attempts, locked_until, last_login
        self.user_updated = touched

    def _users_table(self) -> _Table:
        roles = [_json(ROLE_ROLES[r]) for r in range(4)]
        permissions = [_json(ROLE_PERMISSIONS[r]) for r in range(4)]
        return _Table("users", self.n_users, {
            "user_id": _Ids(self.user_ids),
            "username": _Plain(self.usernames),
            "email": _Plain(self.emails),
            "permissions": _Codes(self.role, permissions),
            "roles": _Codes(self.role, roles),
            "password_hash": _Plain(self.password_hashes),
            "is_active": _Plain(self.user_active),
            "failed_login_attempts": _Plain(self.user_attempts),
            "locked_until": _Times(self.user_locked_until),
            "last_login": _Times(self.user_last_login),
            "created_at": _Times(self.user_created),
            "updated_at": _Times(self.user_updated),
        })
