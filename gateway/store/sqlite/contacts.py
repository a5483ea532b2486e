"""Contacts the shop registers, on SQLite: one upsert for any number, and deletion.

A registered contact lives in the same row as what pushes said (``registered_at`` set), so
every read of the contacts table, the claim's included, sees the resolved contact. The rows
come merged per order (`gateway.store.contact_merge`), as on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

from gateway.events import Contact
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import encode_rows, to_us

__all__ = ["delete", "register"]


def register(conn: sqlite3.Connection, rows: Sequence[Contact], now: datetime) -> None:
    """Upsert contacts, one per order (`gateway.store.contact_merge`)."""
    values = [(c.order_id, c.name, c.phone, c.email, c.language, c.shop) for c in rows]
    conn.execute(sql.REGISTER_CONTACTS, (encode_rows(values), to_us(now)))


def delete(conn: sqlite3.Connection, order_id: str, shop: str) -> bool:
    return conn.execute(sql.DELETE_CONTACT, (order_id, shop)).rowcount == 1
