"""The demo builder: the five tables as columns, from one random generator in a fixed order of draws.

Each entity's generators live in their own module (demo/users.py, demo/api_keys.py,
demo/positions.py, demo/audit.py) on the shared state of demo/state.py; this class puts them
together and fixes the order they run in, which fixes every row: change the order of draws and
every seed gives other data.
"""

from __future__ import annotations

from shivx_analytics.demo.api_keys import _ApiKeys
from shivx_analytics.demo.audit import _AuditEvents
from shivx_analytics.demo.columns import _Table
from shivx_analytics.demo.positions import _Positions
from shivx_analytics.demo.users import _Users


class _DemoBuilder(_Users, _ApiKeys, _Positions, _AuditEvents):
    """Builds the five tables as columns from one random generator, in a fixed order of draws."""

    def build(self) -> list[_Table]:
        self._prices()
        self._users()
        self._api_keys()
        self._positions()
        self._extra_orders()
        self._order_sources()
        self._audit()
        self._replay_logins()
        self._key_usage()
        return [self._users_table(), self._api_keys_table(), self._positions_table(), self._orders_table(),
                self._audit_table()]

    def _audit(self) -> None:
        self.ev = []
        self.static_details = []
        self.api = {"ts": [], "key": [], "resource": [], "action": [], "status": [], "latency": [], "reason": []}
        self._authentication_events()
        self._api_key_events()
        self._admin_and_authorization_events()
        self._trading_events()
        self._api_request_events()
        self._api_request_rows()
