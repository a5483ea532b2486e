"""Contacts the shop registers, on PostgreSQL: one upsert for any number, and deletion.

A registered contact lives in the same row as what pushes said (``registered_at`` set), so
every read of the contacts table, the claim's included, sees the resolved contact; the pull
tracker follows its order from the same commit. One statement may update a row only once:
the rows come merged per order (`gateway.store.contact_merge`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.events import Contact
from gateway.store.postgres import sql
from gateway.store.postgres.rows import Conn

__all__ = ["delete", "register"]


async def register(conn: Conn, rows: Sequence[Contact], now: datetime) -> None:
    """Upsert contacts, one per order (a transaction, the caller's)."""
    await conn.execute(
        sql.TRACK_CONTACTS, (now, [c.order_id for c in rows], [c.shop for c in rows])
    )
    await conn.execute(
        sql.REGISTER_CONTACTS,
        (
            [c.order_id for c in rows],
            [c.name for c in rows],
            [c.phone for c in rows],
            [c.email for c in rows],
            [c.language for c in rows],
            [c.shop for c in rows],
            now,
        ),
    )


async def delete(conn: Conn, order_id: str, shop: str) -> bool:
    return (await conn.execute(sql.DELETE_CONTACT, (order_id, shop))).rowcount == 1
