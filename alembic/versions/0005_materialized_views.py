"""materialized views for reports at scale (PostgreSQL)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 22:05:00

Three materialized views, refreshed by ``shivx-analytics db refresh-views`` (concurrently: each
has a unique index on its key, NULLS NOT DISTINCT so a missing strategy or key id is one key):

- mv_daily_trading_performance: per UTC day of closed_at, user, token and strategy, the closed
  and liquidated positions: closed_positions, wins (pnl > 0), losses (pnl < 0), break_even,
  realized_pnl, gross_profit, gross_loss, entry_value (money exact; pnl and entry_value per
  position rounded half to even to 8 places, as the loaders compute them).
- mv_daily_api_key_usage: per UTC day and api_key_id (details.key_id) of api_request events:
  requests, errors (status_code >= 400), rate_limited (reason rate_limited or status 429);
  status_code and key id read from details as the loaders read them.
- mv_user_statistics: per user: positions (open, closed), realized P&L, wins, losses, orders
  (executed, failed), executed notional, API keys (active), failed logins recorded in the
  audit log, first and last order.

The SQL here is this revision's and stays as written; the reports read the views through
shivx_analytics/aggregates/views.py. SQLite has no materialized views: nothing happens there.
"""
from typing import Sequence, Union

from alembic import op

revision: str = "0005"
down_revision: Union[str, Sequence[str], None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Text of details.<key> as frames.schemas._detail reads it: a JSON string as is, any other value as JSON text.
KEY_ID = ("CASE jsonb_typeof(details -> 'key_id') WHEN 'string' THEN details ->> 'key_id' "
          "WHEN 'null' THEN NULL ELSE (details -> 'key_id')::text END")
REASON = ("CASE jsonb_typeof(details -> 'reason') WHEN 'string' THEN details ->> 'reason' "
          "WHEN 'null' THEN NULL ELSE (details -> 'reason')::text END")
# details.status_code as an integer: a JSON integer, or a string of digits (frames.schemas._detail).
STATUS = ("CASE WHEN jsonb_typeof(details -> 'status_code') = 'number' "
          "AND (details ->> 'status_code') ~ '^-?[0-9]+$' THEN (details ->> 'status_code')::numeric "
          "WHEN jsonb_typeof(details -> 'status_code') = 'string' "
          "AND (details ->> 'status_code') ~ '^\\s*-?[0-9]+\\s*$' THEN btrim(details ->> 'status_code')::numeric END")
PNL = "shivx_round_half_even(p.size * (p.current_price - p.entry_price), 8)"

VIEWS = {
    "mv_daily_trading_performance": (f"""
SELECT (p.closed_at AT TIME ZONE 'UTC')::date AS day, p.user_id, p.token, p.strategy,
       count(*) AS closed_positions,
       count(*) FILTER (WHERE x.pnl > 0) AS wins,
       count(*) FILTER (WHERE x.pnl < 0) AS losses,
       count(*) FILTER (WHERE x.pnl = 0) AS break_even,
       sum(x.pnl) AS realized_pnl,
       coalesce(sum(x.pnl) FILTER (WHERE x.pnl > 0), 0) AS gross_profit,
       coalesce(sum(x.pnl) FILTER (WHERE x.pnl < 0), 0) AS gross_loss,
       sum(shivx_round_half_even(p.size * p.entry_price, 8)) AS entry_value
FROM positions p CROSS JOIN LATERAL (SELECT {PNL} AS pnl) x
WHERE p.status IN ('closed', 'liquidated') AND p.closed_at IS NOT NULL
GROUP BY 1, 2, 3, 4""", ["day", "user_id", "token", "strategy"]),
    "mv_daily_api_key_usage": (f"""
SELECT ("timestamp" AT TIME ZONE 'UTC')::date AS day, r.api_key_id,
       count(*) AS requests,
       count(*) FILTER (WHERE r.status_code >= 400) AS errors,
       count(*) FILTER (WHERE r.reason = 'rate_limited' OR r.status_code = 429) AS rate_limited
FROM security_audit_logs CROSS JOIN LATERAL (SELECT {KEY_ID} AS api_key_id, {STATUS} AS status_code,
                                                    {REASON} AS reason) r
WHERE event_type = 'api_request'
GROUP BY 1, 2""", ["day", "api_key_id"]),
    "mv_user_statistics": (f"""
SELECT u.user_id, u.username, u.is_active,
       coalesce(p.positions, 0) AS positions, coalesce(p.open_positions, 0) AS open_positions,
       coalesce(p.closed_positions, 0) AS closed_positions,
       coalesce(p.realized_pnl, 0) AS realized_pnl,
       coalesce(p.wins, 0) AS wins, coalesce(p.losses, 0) AS losses,
       coalesce(o.orders, 0) AS orders, coalesce(o.executed_orders, 0) AS executed_orders,
       coalesce(o.failed_orders, 0) AS failed_orders,
       coalesce(o.executed_notional, 0) AS executed_notional,
       o.first_order_at, o.last_order_at,
       coalesce(k.api_keys, 0) AS api_keys, coalesce(k.active_api_keys, 0) AS active_api_keys,
       coalesce(a.failed_logins, 0) AS failed_logins
FROM users u
LEFT JOIN (
    SELECT p.user_id, count(*) AS positions,
           count(*) FILTER (WHERE p.status = 'open') AS open_positions,
           count(*) FILTER (WHERE p.status IN ('closed', 'liquidated')) AS closed_positions,
           sum(x.pnl) FILTER (WHERE p.status IN ('closed', 'liquidated')) AS realized_pnl,
           count(*) FILTER (WHERE p.status IN ('closed', 'liquidated') AND x.pnl > 0) AS wins,
           count(*) FILTER (WHERE p.status IN ('closed', 'liquidated') AND x.pnl < 0) AS losses
    FROM positions p CROSS JOIN LATERAL (SELECT {PNL} AS pnl) x GROUP BY p.user_id
) p ON p.user_id = u.user_id
LEFT JOIN (
    SELECT user_id, count(*) AS orders,
           count(*) FILTER (WHERE status = 'executed') AS executed_orders,
           count(*) FILTER (WHERE status = 'failed') AS failed_orders,
           sum(CASE WHEN action = 'buy' THEN amount_in ELSE amount_out END)
               FILTER (WHERE status = 'executed' AND amount_out IS NOT NULL) AS executed_notional,
           min(created_at) AS first_order_at, max(created_at) AS last_order_at
    FROM orders GROUP BY user_id
) o ON o.user_id = u.user_id
LEFT JOIN (
    SELECT user_id, count(*) AS api_keys, count(*) FILTER (WHERE is_active) AS active_api_keys
    FROM api_keys GROUP BY user_id
) k ON k.user_id = u.user_id
LEFT JOIN (
    SELECT user_id, count(*) AS failed_logins FROM security_audit_logs
    WHERE event_type = 'authentication' AND action = 'login' AND NOT success AND user_id IS NOT NULL
    GROUP BY user_id
) a ON a.user_id = u.user_id""", ["user_id"]),
}


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name, (query, key) in VIEWS.items():
        op.execute(f"CREATE MATERIALIZED VIEW {name} AS {query}")
        op.execute(f"CREATE UNIQUE INDEX uq_{name} ON {name} ({', '.join(key)}) NULLS NOT DISTINCT")


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    for name in reversed(VIEWS):
        op.execute(f"DROP MATERIALIZED VIEW IF EXISTS {name}")
