"""Audit events and the hash chain: the admin and authorization events, the security_audit_logs
table (all events in time order, details formatted per batch) and its hash chain, linked in
Python as the batches are formatted (models/audit_chain.py's ChainTip.link).

The other events come from their entities' modules (logins: demo/users.py; API key events and
requests: demo/api_keys.py; trading: demo/positions.py) through _BuilderState._add.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from shivx_analytics.demo.columns import _Codes, _Computed, _Ids, _Plain, _Table, _Times
from shivx_analytics.demo.state import _BuilderState
from shivx_analytics.demo.vocabulary import (
    ACTIONS,
    ADMIN,
    API_REASONS,
    AUTHZ,
    D_API,
    D_ORDER_CREATE,
    D_ORDER_EXECUTE,
    D_STATIC,
    EVENT_TYPES,
    EXECUTED,
    FAILED_REASONS,
    POSITION_STATUSES,
    RESOURCES,
    ROLE_ADMIN,
    ROLE_ANALYST,
    ROLE_ROLES,
    TOKENS,
    A,
    R,
    _money_text,
    _uuid_hex,
    _uuid_strings,
)
from shivx_analytics.models.audit_chain import ChainTip


class _AuditEvents(_BuilderState):
    """Admin and authorization events, and the audit log table with its chain."""

    def _admin_and_authorization_events(self) -> None:
        """Admins deactivating users; requests refused for lack of a role or permission."""
        rng = self.rng
        inactive = np.flatnonzero(~self.user_active)
        admin = int(np.flatnonzero(self.role == ROLE_ADMIN)[0])
        self._add(self.user_end[inactive], ADMIN, A["user_deactivate"], R["/api/v1/admin/users"], admin,
                  self.user_ips[admin][0], True, D_STATIC,
                  self._static([{"target_user_id": _uuid_strings(self.user_ids[[u]])[0],
                                 "target_username": self.usernames[u]} for u in inactive.tolist()]))
        candidates = np.flatnonzero(self.role != ROLE_ADMIN)
        n = max(5, round(0.002 * self.n_audit))
        user = rng.choice(candidates, size=n)
        ts = self.user_start[user] + (rng.random(n) * (self.user_end[user] - self.user_start[user])).astype(np.int64)
        analyst = self.role[user] == ROLE_ANALYST
        admin_path = rng.random(n) < 0.5
        resource = np.where(analyst & ~admin_path, R["/api/v1/orders"],
                            np.where(rng.random(n) < 0.7, R["/api/v1/admin/users"], R["/api/v1/admin/audit-logs"]))
        details = [{"method": "POST", "required": "trade", "role": "analyst"} if r == R["/api/v1/orders"] else
                   {"method": "GET", "required": "admin", "role": ROLE_ROLES[int(self.role[u])][0]}
                   for u, r in zip(user.tolist(), resource.tolist())]
        ip = [self.user_ips[u][0] for u in user.tolist()]
        self._add(ts, AUTHZ, A["access_denied"], resource, user, ip, False, D_STATIC, self._static(details))

    def _audit_table(self) -> _Table:
        columns = {name: np.concatenate([e[name] for e in self.ev]) for name in self.ev[0]}
        n = columns["ts"].size
        order = np.argsort(columns["ts"], kind="stable")
        columns = {name: values[order] for name, values in columns.items()}
        log_ids = _uuid_hex(self.rng, n)
        request_ids = self.rng.integers(0, 2**63, size=n, dtype=np.int64)
        dkind, darg = columns["dkind"], columns["darg"]

        @_last_slice
        def request_id_values(start: int, stop: int) -> list:
            return [f"req_{value:016x}" for value in request_ids[start:stop].tolist()]

        @_last_slice
        def details_values(start: int, stop: int) -> list:
            return self._details(dkind[start:stop], darg[start:stop])

        stored = {
            "log_id": _Ids(log_ids),
            "timestamp": _Times(columns["ts"]),
            "event_type": _Codes(columns["event"], EVENT_TYPES),
            "user_id": _Ids(self.user_ids, columns["user"]),
            "ip_address": _Codes(columns["ip"], self.ips),
            "resource": _Codes(columns["resource"], RESOURCES),
            "action": _Codes(columns["action"], ACTIONS),
            "success": _Plain(columns["success"]),
            "details": _Computed(details_values),
            "request_id": _Computed(request_id_values),
        }
        times = columns["ts"]

        def chain_content(start: int, stop: int) -> list[dict[str, Any]]:
            """The hashed fields of rows start..stop (user_id is not hashed), as the chain's text."""
            iso = np.datetime_as_string(times[start:stop].astype("datetime64[us]"), unit="us").tolist()
            fields = zip(_uuid_strings(log_ids[start:stop]), iso, *(
                stored[name].values(start, stop, "")
                for name in ("event_type", "ip_address", "resource", "action", "success", "details", "request_id")))
            return [{"log_id": log_id, "timestamp": f"{time}+00:00", "event_type": event_type,
                     "ip_address": ip_address, "resource": resource, "action": action, "success": success,
                     "details": details, "request_id": request_id}
                    for log_id, time, event_type, ip_address, resource, action, success, details, request_id in fields]

        chain = _AuditChain(chain_content)
        return _Table("security_audit_logs", n, stored | {
            "chain_seq": _Computed(lambda start, stop: chain.values(start, stop)[0]),
            "prev_hash": _Computed(lambda start, stop: chain.values(start, stop)[1]),
            "row_hash": _Computed(lambda start, stop: chain.values(start, stop)[2]),
        }, chain=chain)

    def _details(self, dkind: np.ndarray, darg: np.ndarray) -> list[str]:
        """The details JSON of a slice of audit rows, as json.dumps(..., sort_keys=True) writes it."""
        out: list[Any] = [None] * dkind.size
        for kind in np.unique(dkind).tolist():
            where = np.flatnonzero(dkind == kind)
            arg = darg[where]
            if kind == D_STATIC:
                texts = [self.static_details[i] for i in arg.tolist()]
            elif kind == D_API:
                api = self.api
                texts = [
                    (f'{{"key_id": "{self.key_id_text[k]}", "latency_ms": {lat}, '
                     f'"reason": "{API_REASONS[r]}", "status_code": {s}}}') if r >= 0 else
                    f'{{"key_id": "{self.key_id_text[k]}", "latency_ms": {lat}, "status_code": {s}}}'
                    for k, lat, r, s in zip(api["key"][arg].tolist(), api["latency"][arg].tolist(),
                                            api["reason"][arg].tolist(), api["status"][arg].tolist())]
            elif kind == D_ORDER_CREATE:
                ids = _uuid_strings(self.order_ids[arg])
                texts = [f'{{"action": "{("buy", "sell")[a]}", "order_id": "{i}", "token": "{TOKENS[t][0]}"}}'
                         for i, a, t in zip(ids, self.o_action[arg].tolist(), self.o_token[arg].tolist())]
            elif kind == D_ORDER_EXECUTE:
                ids = _uuid_strings(self.order_ids[arg])
                texts = [f'{{"order_id": "{i}", "status": "executed"}}' if s == EXECUTED else
                         f'{{"order_id": "{i}", "reason": "{FAILED_REASONS[r]}", "status": "failed"}}'
                         for i, s, r in zip(ids, self.o_status[arg].tolist(), self.o_reason[arg].tolist())]
            else:  # D_POSITION_CLOSE
                ids = _uuid_strings(self.pos_ids[arg])
                pnl = (self.pos_proceeds[arg] - self.pos_cost[arg]).tolist()
                texts = [f'{{"pnl": "{_money_text(p)}", "position_id": "{i}", "status": "{POSITION_STATUSES[s]}"}}'
                         for i, p, s in zip(ids, pnl, self.pos_status[arg].tolist())]
            for position, text in zip(where.tolist(), texts):
                out[position] = text
        return out


class _AuditChain:
    """chain_seq, prev_hash and row_hash of the audit rows (models/audit_chain.py), computed in
    Python while the batches are formatted, in order: each row links to the one before it."""

    def __init__(self, content: Callable[[int, int], list[dict[str, Any]]]):
        self.content = content  # (start, stop) -> the hashed fields of those rows
        self.restart(ChainTip())

    def restart(self, tip: ChainTip) -> None:
        self.tip = ChainTip(tip.last_seq, tip.last_hash)
        self._next = 0
        self._last: tuple[int, int, tuple[list, list, list]] | None = None

    def values(self, start: int, stop: int) -> tuple[list, list, list]:
        if self._last is not None and self._last[:2] == (start, stop):
            return self._last[2]
        if start != self._next:
            raise RuntimeError(f"audit rows {start}..{stop} formatted out of order (next is {self._next}): "
                               "the hash chain links each row to the one before")
        link = self.tip.link
        seqs, prevs, hashes = [], [], []
        for entry in self.content(start, stop):
            seq, prev, digest = link(entry)
            seqs.append(seq)
            prevs.append(prev)
            hashes.append(digest)
        self._next = stop
        self._last = (start, stop, (seqs, prevs, hashes))
        return self._last[2]


def _last_slice(compute: Callable[[int, int], list]) -> Callable[[int, int], list]:
    """compute(start, stop), remembering the last slice (a column the chain reads as well)."""
    last: list = [None, None]

    def cached(start: int, stop: int) -> list:
        if last[0] != (start, stop):
            last[:] = [(start, stop), compute(start, stop)]
        return last[1]

    return cached
