"""API keys and their use: keys per user (created, expiring, revoked, rotated), their events in
the audit log (api_key create / revoke / rotate, and every api_request: orders placed with a key,
background reads, refusals of expired keys, rate-limited bursts), and each key's request count.
"""

from __future__ import annotations

import math

import numpy as np

from shivx_analytics import security
from shivx_analytics.demo.columns import _Codes, _Ids, _Plain, _Table, _Times
from shivx_analytics.demo.state import _BuilderState
from shivx_analytics.demo.vocabulary import (
    API_KEY,
    API_REQUEST,
    API_STATUS_SHARES,
    API_STATUSES,
    D_API,
    D_STATIC,
    DAY,
    GET_RESOURCE_SHARES,
    GET_RESOURCES,
    HOUR,
    KEY_EXPIRED,
    KEY_NAMES,
    MINUTE,
    NULL_TIME,
    RATE_LIMIT_SHARES,
    RATE_LIMITED,
    RATE_LIMITS,
    ROLE_ANALYST,
    ROLE_BOT,
    ROLE_TRADER,
    A,
    R,
    _json,
    _uuid_hex,
    _uuid_strings,
)


class _ApiKeys(_BuilderState):
    """api_keys, their audit events, and their usage counts."""

    def _api_keys(self) -> None:
        rng, n_users = self.rng, self.n_users
        per_user = np.select([self.role == ROLE_BOT, self.role == ROLE_TRADER, self.role == ROLE_ANALYST],
                             [1 + rng.poisson(1.2, n_users), rng.poisson(1.0, n_users),
                              rng.poisson(0.8, n_users)], 1)
        per_user = np.minimum(per_user, 5)
        owner = np.repeat(np.arange(n_users), per_user)
        n = owner.size
        start, end = self.user_start[owner], self.user_end[owner]
        early = np.where(self.role[owner] == ROLE_BOT, 0.1, 0.5)
        created = start + (rng.random(n) * early * (end - start)).astype(np.int64)
        rate_limit = rng.choice(RATE_LIMITS, size=n, p=RATE_LIMIT_SHARES)
        lifetime_days = rng.choice([30, 60, 90, 180, 365], size=n)
        expires = np.where(rng.random(n) < 0.35, NULL_TIME, created + lifetime_days * DAY)
        never_used = rng.random(n) < 0.12
        revoked = (rng.random(n) < 0.08) | ~self.user_active[owner]
        if n >= 5 and not revoked.any():
            revoked[int(rng.integers(n))] = True
        revoke_time = np.where(~self.user_active[owner], end,
                               created + (rng.uniform(0.2, 0.9, n) * (end - created)).astype(np.int64))
        trade = np.isin(self.role[owner], [ROLE_TRADER, ROLE_BOT]) & (rng.random(n) < 0.9)
        names = [KEY_NAMES[self.role[o]][int(rng.integers(len(KEY_NAMES[self.role[o]])))] for o in owner]

        # a few guaranteed cases: never used; expired but still active
        if n >= 5 and never_used.sum() < 2:
            never_used[rng.choice(n, size=2, replace=False)] = True
        expired_active = ~revoked & (expires != NULL_TIME) & (expires <= self.as_of)
        eligible = np.flatnonzero(~revoked & ~never_used & (created <= self.as_of - 35 * DAY))
        want = max(0, min(2, eligible.size) - int(expired_active.sum()))
        if want:
            chosen = rng.choice(eligible, size=want, replace=False)
            expires[chosen] = created[chosen] + 30 * DAY

        # rotations: the old key is retired at R, a new key with the same settings replaces it
        usable = ~revoked & ~never_used & ((expires == NULL_TIME) | (expires > self.as_of)) & \
            (created <= self.as_of - 10 * DAY)
        rotated = np.flatnonzero(usable & (rng.random(n) < 0.06))
        if rotated.size == 0 and usable.any():
            rotated = rng.choice(np.flatnonzero(usable), size=1)
        rotate_time = created[rotated] + (rng.uniform(0.3, 0.95, rotated.size)
                                          * (self.as_of - DAY - created[rotated] - 5 * DAY)).astype(np.int64) + 5 * DAY
        revoked[rotated] = True
        revoke_time[rotated] = rotate_time
        self.rotated_from = np.concatenate([np.full(n, -1), rotated])
        new_expires = np.where(expires[rotated] == NULL_TIME, NULL_TIME,
                               rotate_time + (expires[rotated] - created[rotated]))

        self.key_owner = np.concatenate([owner, owner[rotated]])
        self.key_created = np.concatenate([created, rotate_time])
        self.key_rate_limit = np.concatenate([rate_limit, rate_limit[rotated]])
        self.key_expires = np.concatenate([expires, new_expires])
        self.key_never_used = np.concatenate([never_used, np.zeros(rotated.size, bool)])
        self.key_revoked = np.concatenate([revoked, np.zeros(rotated.size, bool)])
        self.key_revoke_time = np.concatenate([np.where(revoked, revoke_time, NULL_TIME),
                                               np.full(rotated.size, NULL_TIME)])
        self.key_trade = np.concatenate([trade, trade[rotated]])
        self.key_names = names + [names[i] for i in rotated]
        self.n_keys = self.key_owner.size
        self.key_ids = _uuid_hex(rng, self.n_keys)
        self.key_id_text = _uuid_strings(self.key_ids)
        plaintexts = [security.API_KEY_PREFIX + _urlsafe(rng.bytes(security.API_KEY_BYTES)) for _ in range(self.n_keys)]
        self.key_hashes = [security.hash_api_key(p) for p in plaintexts]
        self.key_prefixes = [security.api_key_display_prefix(p) for p in plaintexts]
        self.key_ips = [self.user_ips[o][0] if rng.random() < 0.5 else self._new_ips(1)[0] for o in self.key_owner]
        # requests are accepted from creation until expiry, revocation or as_of
        end_times = np.minimum(np.where(self.key_expires == NULL_TIME, self.as_of, self.key_expires), self.as_of)
        end_times = np.where(self.key_revoked, np.minimum(end_times, self.key_revoke_time), end_times)
        self.key_usage_end = np.where(self.key_never_used, self.key_created, np.maximum(end_times, self.key_created))

    def _api_key_events(self) -> None:
        """Key creation, revocation and rotation."""
        n = self.n_keys
        fresh = np.flatnonzero(self.rotated_from < 0)
        rotated_new = np.flatnonzero(self.rotated_from >= 0)
        revoked_plain = np.flatnonzero(self.key_revoked & ~np.isin(np.arange(n), self.rotated_from[rotated_new]))
        owner = self.key_owner
        ip = np.array(self.key_ips)
        user_ip = np.array([self.user_ips[o][0] for o in owner]) if n else np.zeros(0, np.int64)
        self._add(self.key_created[fresh], API_KEY, A["create"], R["/api/v1/keys"], owner[fresh], user_ip[fresh], True,
                  D_STATIC, self._static([{"key_id": self.key_id_text[k], "key_prefix": self.key_prefixes[k],
                                           "name": self.key_names[k], "rate_limit": int(self.key_rate_limit[k])}
                                          for k in fresh.tolist()]))
        reason = ["user_deactivated" if not self.user_active[owner[k]] else "user_request" for k in revoked_plain]
        self._add(self.key_revoke_time[revoked_plain], API_KEY, A["revoke"], R["/api/v1/keys"], owner[revoked_plain],
                  user_ip[revoked_plain], True, D_STATIC,
                  self._static([{"key_id": self.key_id_text[k], "reason": r} for k, r in zip(revoked_plain, reason)]))
        old = self.rotated_from[rotated_new]
        self._add(self.key_created[rotated_new], API_KEY, A["rotate"], R["/api/v1/keys"], owner[rotated_new],
                  ip[rotated_new] if n else [], True, D_STATIC,
                  self._static([{"new_key_id": self.key_id_text[k], "old_key_id": self.key_id_text[o]}
                                for k, o in zip(rotated_new.tolist(), old.tolist())]))

    def _api_request_events(self) -> None:
        """api_request rows: orders placed with keys, background reads, expired keys, rate-limited bursts."""
        rng = self.rng
        api = self.api
        # POST /api/v1/orders for every order placed with a key
        placed = np.flatnonzero(self.o_key >= 0)
        self._api_rows(self.o_created[placed], self.o_key[placed], R["/api/v1/orders"], A["POST"],
                       np.full(placed.size, 201), -1)
        # requests with an expired (still active) key are refused
        expired = np.flatnonzero(~self.key_revoked & ~self.key_never_used & (self.key_expires != NULL_TIME)
                                 & (self.key_expires <= self.as_of))
        for k in expired.tolist():
            m = int(rng.integers(3, 16))
            ts = self.key_expires[k] + (rng.random(m) * (self.as_of - self.key_expires[k])).astype(np.int64)
            self._api_rows(ts, np.full(m, k), rng.choice(GET_RESOURCES, size=m, p=GET_RESOURCE_SHARES), A["GET"],
                           np.full(m, 401), KEY_EXPIRED)

        used_so_far = sum(len(e["ts"]) for e in self.ev) + sum(len(t) for t in api["ts"])
        budget = max(0, self.n_audit - used_so_far)
        usable = np.flatnonzero(~self.key_never_used & (self.key_usage_end - self.key_created > HOUR))
        self.rate_limited_keys = []
        if usable.size == 0:
            return
        # rate-limited bursts: a minute with more requests than the key's limit; the excess gets 429
        burst_budget = max(int(0.04 * budget), 1)
        # keys whose limit a burst can exceed within the budget (at small scales: the low limits)
        limits = self.key_rate_limit[usable]
        burstable = usable[limits <= max(burst_budget, 2 * limits.min())]
        weights = 1.0 / self.key_rate_limit[burstable]
        busy: dict[int, set[int]] = {int(k): set() for k in burstable}
        for ts_chunk, key_chunk in zip(api["ts"], api["key"]):
            for t, k in zip((np.asarray(ts_chunk) // MINUTE).tolist(), np.asarray(key_chunk).tolist()):
                if k in busy:
                    busy[k].add(t)
        bursts: list[tuple[int, int, int, int]] = []
        burst_keys: set[int] = set()
        spent, tries = 0, 0
        while (spent < burst_budget or len(burst_keys) < min(2, burstable.size)) and tries < 20_000:
            tries += 1
            k = int(rng.choice(burstable, p=weights / weights.sum()))
            limit = int(self.key_rate_limit[k])
            first, last = -(-int(self.key_created[k]) // MINUTE), int(self.key_usage_end[k]) // MINUTE - 1
            minute = first + int(rng.random() * (last - first + 1))  # a whole minute inside the key's life
            if minute in busy[k]:
                continue
            busy[k].add(minute)
            extra = max(3, round(limit * rng.uniform(0.1, 0.8)))
            bursts.append((k, minute, limit, extra))
            burst_keys.add(k)
            spent += limit + extra
        # background reads, spread over each key's life, avoiding the burst minutes
        n_reads = max(0, budget - spent)
        life = (self.key_usage_end[usable] - self.key_created[usable]).astype(float)
        share = np.sqrt(self.key_rate_limit[usable]) * rng.lognormal(0, 1.0, usable.size) * np.sqrt(life)
        per_key = rng.multinomial(n_reads, share / share.sum())
        keys = np.repeat(usable, per_key)
        life_of = self.key_usage_end[keys] - self.key_created[keys]
        ts = self.key_created[keys] + (rng.random(keys.size) * life_of).astype(np.int64)
        burst_minutes = {(k, m) for k, m, _, _ in bursts}
        if burst_minutes:  # a burst minute holds the burst's requests only
            keep = np.array([(k, m) not in burst_minutes for k, m in zip(keys.tolist(), (ts // MINUTE).tolist())], bool)
            keys, ts = keys[keep], ts[keep]
        status = rng.choice(API_STATUSES, size=keys.size, p=API_STATUS_SHARES)
        self._api_rows(ts, keys, rng.choice(GET_RESOURCES, size=keys.size, p=GET_RESOURCE_SHARES), A["GET"], status, -1)
        for k, minute, limit, extra in bursts:
            m = limit + extra
            ts = minute * MINUTE + np.sort((rng.random(m) * MINUTE).astype(np.int64))
            status = np.where(np.arange(m) < limit, 200, 429)
            resource = rng.choice(GET_RESOURCES, size=m, p=GET_RESOURCE_SHARES)
            self._api_rows(ts, np.full(m, k), resource, A["GET"], status, np.where(status == 429, RATE_LIMITED, -1))

        self.rate_limited_keys = sorted(burst_keys)

    def _api_request_rows(self) -> None:
        """Concatenate the api_request rows and add them to the audit events."""
        api = self.api
        for name in api:
            api[name] = np.concatenate(api[name]) if api[name] else np.zeros(0, np.int64)
        key = api["key"]
        self._add(api["ts"], API_REQUEST, api["action"], api["resource"], self.key_owner[key],
                  np.asarray(self.key_ips, np.int64)[key], api["status"] < 400, D_API, np.arange(key.size))

    def _api_rows(self, ts, keys, resource, action, status, reason) -> None:
        n = len(ts)
        columns = {"ts": ts, "key": keys, "resource": resource, "action": action, "status": status, "reason": reason,
                   "latency": np.maximum(1, self.rng.lognormal(math.log(85), 0.7, n))}
        for name, values in columns.items():
            self.api[name].append(np.broadcast_to(np.asarray(values).astype(np.int64), (n,)))

    def _key_usage(self) -> None:
        """requests_count and last_used_at: the key's accepted requests (not refused with 401 or 429)."""
        api = self.api
        accepted = (api["status"] != 401) & (api["status"] != 429)
        keys = api["key"][accepted]
        self.key_requests = np.bincount(keys, minlength=self.n_keys).astype(np.int64)
        last = np.full(self.n_keys, NULL_TIME)
        np.maximum.at(last, keys, api["ts"][accepted])
        self.key_last_used = last
        updated = np.maximum(self.key_created, last)
        self.key_updated = np.where(self.key_revoked, np.maximum(updated, self.key_revoke_time), updated)

    def _api_keys_table(self) -> _Table:
        order = np.argsort(self.key_created, kind="stable")
        permissions = [_json({"read": True, "trade": False}), _json({"read": True, "trade": True})]
        return _Table("api_keys", self.n_keys, {
            "key_id": _Ids(self.key_ids[order]),
            "user_id": _Ids(self.user_ids, self.key_owner[order]),
            "name": _Plain([self.key_names[k] for k in order]),
            "permissions": _Codes(self.key_trade[order].astype(np.int64), permissions),
            "rate_limit": _Plain(self.key_rate_limit[order]),
            "expires_at": _Times(self.key_expires[order]),
            "key_hash": _Plain([self.key_hashes[k] for k in order]),
            "key_prefix": _Plain([self.key_prefixes[k] for k in order]),
            "requests_count": _Plain(self.key_requests[order]),
            "last_used_at": _Times(self.key_last_used[order]),
            "is_active": _Plain(~self.key_revoked[order]),
            "created_at": _Times(self.key_created[order]),
            "updated_at": _Times(self.key_updated[order]),
        })


def _urlsafe(raw: bytes) -> str:
    """secrets.token_urlsafe's encoding of ``raw`` (base64url, no padding)."""
    import base64

    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
