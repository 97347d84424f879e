"""The deterministic demo dataset: users, API keys, positions, orders and security audit events.

    import shivx_analytics as sx
    sx.migrate("sqlite:///demo.db")
    sx.generate_demo_data("sqlite:///demo.db", seed=0, scale="small", as_of="2025-10-28")

The same ``seed``, ``scale`` and ``as_of`` give identical rows, ids and timestamps included, on
SQLite and PostgreSQL. Everything happens in the 90 days before ``as_of``, which defaults to the
start of the current UTC day: pass ``as_of`` for output that is stable from day to day.

What the data promise (DESIGN.md semantics, checked by tests/test_demo.py):

- Every position has its executed buy order (position_id set) whose executed price is exactly
  the entry price; every closed or liquidated position has its executed sell order whose executed
  price is exactly the exit price (current_price). Sizes and prices are chosen so that
  size x price has at most 8 decimals, so amounts are exact products and nothing is rounded.
- A (user, token) holds one position at a time, so the FIFO ledger of executed orders matches
  the positions: realized P&L from the orders equals the sum of the closed positions' pnl exactly.
  Every executed order belongs to a position; failed, cancelled and pending orders have none.
- slippage_actual = calculate_slippage(expected_out(...), amount_out) from the order model.
- Users' failed_login_attempts, locked_until and last_login replay their authentication events;
  API keys' requests_count and last_used_at count their accepted api_request events (status not
  401/429). Orders placed with an API key appear as ``api_request POST /api/v1/orders``; orders
  placed in the web app appear as ``trading`` events (order_create, order_execute, position_close).
- Every user's password is DEMO_PASSWORD. PBKDF2 at 600,000 iterations costs ~0.2 s per hash, so
  users share a small pool of deterministic salts (a few users carry the legacy ``hash:salt``
  form, which verifies and asks for a re-hash): identical hashes across users are expected here.

Rows are written with the driver's bulk path (sqlite3 executemany, PostgreSQL COPY) as the exact
text the column types in types.py produce, all tables in one transaction.
The audit rows form a valid hash chain (models/audit_chain.py): chain_seq, prev_hash and row_hash
are computed in Python as the batches are formatted, from the chain's tip (locked for the
transaction), and the tip in security_audit_chain is moved to the last row at the end.

The modules, by entity:

- seed.py: generate_demo_data, parse_scale, is_seeded, seed_once (the file lock), as_of's range;
- builder.py: the order the generators run in; state.py: the arrays they share;
- users.py: users and their logins; api_keys.py: API keys and their requests;
  positions.py: prices, positions and their orders; audit.py: the audit log and its hash chain;
- columns.py: tables as columns formatted slice by slice; writing.py: the write transaction,
  bulk loading (executemany, COPY) and partitions; vocabulary.py: the fixed vocabulary.
"""

from shivx_analytics.demo.seed import generate_demo_data, is_seeded, parse_scale, seed_once
from shivx_analytics.demo.vocabulary import DEMO_PASSWORD, HISTORY_DAYS, SCALES

__all__ = ["generate_demo_data", "parse_scale", "is_seeded", "seed_once", "SCALES", "DEMO_PASSWORD", "HISTORY_DAYS"]
