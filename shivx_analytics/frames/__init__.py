"""Loaders: positions, orders, audit logs, API keys and users as typed, exact pandas DataFrames.

    import shivx_analytics as sx
    orders = sx.load_orders(engine, since="2025-01-01", status=["executed", "failed"])  # money as float64
    exact = sx.load_orders(engine, since="2025-01-01", money="decimal")  # money as exact decimals
    for chunk in sx.load_audit_logs(url, event_type="api_request", chunksize=100_000): ...

Every frame has the same columns, order and dtypes on SQLite and PostgreSQL:

- ids (position_id, order_id, user_id, ...): ``string`` (pd.StringDtype("pyarrow")), canonical
  dashed lowercase UUID text; other text the same dtype.
- money, in one of two modes chosen with ``money=`` (every loader; domain.money decides):

  - ``money="float"`` (the default): ``float64``, NaN for nulls, so every pandas, numpy,
    matplotlib and quantstats operation works (``orders.amount_in * 2``, ``.cumsum()``,
    ``.describe()``, ``np.log1p``, ``.plot.hist()``, ``to_sql`` ...). Each value is the nearest
    float of the exact decimal value below (derived money too: computed exactly, then converted
    once; never a float product of float operands).
  - ``money="decimal"``: exact ``pd.ArrowDtype``: stored money (size, prices, amounts) as
    ``decimal128(20, 8)`` (NUMERIC(20,8)); derived money (entry_value, position_value, pnl,
    total_value, executed_price) as ``decimal128(38, 8)``, wide enough for every row the
    database accepts (999999999999 x 999999999999 is about 1e24). For reconciliation to the last
    digit; the reports, metrics and aggregates load this way.

  Derived money is computed exactly and rounded once, half to even, to 8 places (the models'
  rule, domain.money.round_money): equal to the model properties for every row.
- times: ``datetime64[us, UTC]``. Enums: categorical with every member as a category.
  Counts: ``Int64``. Flags: ``boolean``. Ratios (pnl_pct, slippage_actual): ``float64``.
- JSON (details, permissions, roles): compact text with sorted keys.
- password_hash and key_hash are never selected.

Rows come in a fixed order: the frame's time column, then its id. Filters are bound parameters
of a statement composed with SQLAlchemy Core; a filter takes one value or a list of values.
``since``/``until`` accept datetime, date or ISO text, naive meaning UTC; the window is
half-open ``[since, until)``.

How a load runs (SQLAlchemy Core composes the SELECT; PostgreSQL is read by DuckDB's postgres
scanner, SQLite by the standard library's sqlite3; Arrow converts, derives and sorts), and the
measurements that chose these paths: docs/performance.md.

Sources: an Engine, a URL string, a Connection or a Session; None (the default) is the analytics
database, ``db.analytics_url()``: SHIVX_ANALYTICS_DATABASE_URL (a read replica, say), else
SHIVX_DATABASE_URL, else the local SQLite file. The fast paths open their own read-only
connection from the source's URL, so they see committed data. A Connection or Session
whose transaction has written something (PostgreSQL: the transaction has an xid; SQLite: the
driver has a transaction open; a Session's pending objects are flushed first, as its own
queries would) is read through that connection instead, as are in-memory SQLite databases:
correct, but row by row and so slower. Without the duckdb packages PostgreSQL is read that way
too, with a RuntimeWarning.
The kinds of source and the one TypeError for anything else: shivx_analytics/sources.py.

The package, by concern (each module says why it is separate):

- loaders.py: the public loaders and the load they share;
- schemas.py: the frames' columns and the derived money computed from them;
- arguments.py: the window, filter values, ``details=``, ``columns=`` and ``chunksize=``;
- query.py: the SELECT and its conditions, bound per backend (literals, SQLite JSON);
- convert.py: raw Arrow batches to typed, sorted columns and pandas (two threads, chunks);
- targets.py: where a source is read (fast path or its own connection), and which transport;
- transport_sqlite.py, transport_duckdb.py, transport_rows.py: the three ways rows arrive;
- errors.py: LoadError and the messages every transport shares.
"""

from __future__ import annotations

from shivx_analytics._arrow import FrameDataError
from shivx_analytics.domain.money import MoneyMode

from .errors import LoadError
from .loaders import load_api_keys, load_audit_logs, load_orders, load_positions, load_users
from .schemas import FRAME_COLUMNS

__all__ = [
    "load_positions", "load_orders", "load_audit_logs", "load_api_keys", "load_users",
    "FRAME_COLUMNS", "FrameDataError", "LoadError", "MoneyMode",
]
