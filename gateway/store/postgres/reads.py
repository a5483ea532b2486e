"""Admin reads on PostgreSQL: events, contacts, pushes, rejected bodies, deliveries, attempts.

Each runs on a pooled connection in autocommit, beside the writes (besides forgetting a
replayed rejected body).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.delivery.model import Attempt, Delivery, DeliveryFilter
from gateway.events import Contact, Event
from gateway.store.postgres import sql
from gateway.store.postgres.rows import (
    Conn,
    attempt_from_row,
    contact_from_row,
    decode_event,
    delivery_from_row,
    push_from_row,
    rejected_from_row,
)
from gateway.store.roles import (
    EventPage,
    EventQuery,
    LoggedPush,
    PushQuery,
    StoredEvent,
    StoredRejected,
)

__all__ = [
    "count_rejected",
    "delete_rejected",
    "events_by_id",
    "get_contact",
    "get_delivery",
    "get_event",
    "get_push",
    "get_rejected",
    "list_deliveries",
    "list_events",
    "list_pushes",
    "list_rejected",
]


async def list_pushes(conn: Conn, query: PushQuery) -> list[LoggedPush]:
    statement, params = sql.list_pushes(query)
    return [push_from_row(r) for r in await (await conn.execute(statement, params)).fetchall()]


async def get_push(conn: Conn, push_id: str) -> LoggedPush | None:
    row = await (await conn.execute(sql.GET_PUSH, (push_id,))).fetchone()
    return None if row is None else push_from_row(row)


async def events_by_id(conn: Conn, ids: list[str]) -> dict[str, tuple[Event, str | None]]:
    """`ids` distinct and not empty."""
    rows = await (await conn.execute(sql.EVENTS_BY_ID, (ids,))).fetchall()
    return {r[0]: (decode_event(r[1]), r[2]) for r in rows}


async def list_events(conn: Conn, query: EventQuery) -> EventPage:
    statement, params = sql.list_events(query)
    rows = await (await conn.execute(statement, params)).fetchall()
    items = [StoredEvent(seq=r[0], event=decode_event(r[1])) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return EventPage(items=items, next_cursor=items[-1].seq if more and items else None)


async def get_event(conn: Conn, event_id: str) -> Event | None:
    row = await (await conn.execute(sql.GET_EVENT, (event_id,))).fetchone()
    return None if row is None else decode_event(row[0])


async def get_contact(conn: Conn, order_id: str, shop: str) -> Contact | None:
    row = await (await conn.execute(sql.GET_CONTACT, (order_id, shop))).fetchone()
    return None if row is None else contact_from_row(row)


async def count_rejected(conn: Conn, shops: Sequence[str] | None) -> int:
    statement, params = sql.count_rejected(shops)
    row = await (await conn.execute(statement, params)).fetchone()
    return 0 if row is None else int(row[0])


async def list_rejected(
    conn: Conn, limit: int, shops: Sequence[str] | None
) -> list[StoredRejected]:
    statement, params = sql.list_rejected(limit, shops)
    rows = await (await conn.execute(statement, params)).fetchall()
    return [rejected_from_row(r) for r in rows]


async def get_rejected(conn: Conn, rejected_id: int) -> StoredRejected | None:
    row = await (await conn.execute(sql.GET_REJECTED, (rejected_id,))).fetchone()
    return None if row is None else rejected_from_row(row)


async def delete_rejected(conn: Conn, rejected_id: int) -> bool:
    return (await conn.execute(sql.DELETE_REJECTED, (rejected_id,))).rowcount == 1


async def get_delivery(conn: Conn, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
    row = await (await conn.execute(sql.GET_DELIVERY, (delivery_id,))).fetchone()
    if row is None:
        return None
    attempts = await (await conn.execute(sql.ATTEMPTS_OF, (delivery_id,))).fetchall()
    return delivery_from_row(row), [attempt_from_row(a) for a in attempts]


async def list_deliveries(conn: Conn, query: DeliveryFilter) -> list[Delivery]:
    statement, params = sql.list_deliveries(query)
    rows = await (await conn.execute(statement, params)).fetchall()
    return [delivery_from_row(r) for r in rows]
