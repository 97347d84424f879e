"""Timestamps written around the ORM: text with a zone offset in SQLite (raw SQL, another tool).

UTCDateTime stores naive UTC text on SQLite; a row written as '2025-10-01 12:00:00+02:00' names
its instant unambiguously and loads as 10:00 UTC; text that names no instant is refused with an
error naming the table, the column and the row (it was a raw ArrowInvalid).
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

import shivx_analytics as sx
from shivx_analytics.db import create_engine
from shivx_analytics.frames import FrameDataError


@pytest.fixture
def orders_url(db_url):
    sx.generate_demo_data(db_url, scale=50, as_of="2025-10-28")
    return db_url


def _first_order(url: str) -> str:
    engine = create_engine(url)
    with engine.connect() as connection:
        order_id = connection.execute(sa.text("SELECT order_id FROM orders ORDER BY created_at LIMIT 1")).scalar_one()
    engine.dispose()
    return order_id


def _set_created_at(url: str, order_id, text: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE orders SET created_at = :t WHERE order_id = :i"), {"t": text, "i": order_id})
    engine.dispose()


@pytest.mark.parametrize("stored, utc", [
    ("2025-10-01 12:00:00+02:00", "2025-10-01 10:00:00"),
    ("2025-10-01T12:00:00.250-05:30", "2025-10-01 17:30:00.250"),
    ("2025-10-01 12:00:00Z", "2025-10-01 12:00:00"),
])
def test_a_timestamp_stored_with_an_offset_loads_as_its_utc_instant(backend, orders_url, stored, utc):
    order_id = _first_order(orders_url)
    _set_created_at(orders_url, order_id, stored)
    orders = sx.load_orders(orders_url).set_index("order_id")
    loaded = orders.loc[[i for i in orders.index if str(i).replace("-", "") == str(order_id).replace("-", "")][0],
                        "created_at"]
    assert loaded == pd.Timestamp(utc, tz="UTC")
    assert len(orders) == 50 and orders["created_at"].notna().all()


@pytest.mark.parametrize("backend", ["sqlite"])  # PostgreSQL's timestamptz cannot hold such text
@pytest.mark.parametrize("stored", ["2025-13-45 12:00:00", "2025-10-01 12:00:00 Europe/Paris", "yesterday"])
def test_a_timestamp_that_names_no_instant_is_refused_naming_table_column_and_row(backend, orders_url, stored):
    order_id = _first_order(orders_url)
    _set_created_at(orders_url, order_id, stored)
    with pytest.raises(FrameDataError) as refused:
        sx.load_orders(orders_url)
    message = str(refused.value)
    assert message.startswith("orders.created_at at order_id ") and repr(stored) in message
    assert str(order_id).replace("-", "")[:8] in message.replace("-", "")
