"""Admin reads on SQLite: events, contacts, pushes, rejected bodies, deliveries and attempts.

Reader jobs only (besides forgetting a replayed rejected body): they run on the reader
connections, beside the writer, and never wait for a group commit.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from gateway.delivery.model import Attempt, Delivery, DeliveryFilter
from gateway.events import Contact, Event
from gateway.store.roles import (
    EventPage,
    EventQuery,
    LoggedPush,
    PushQuery,
    StoredEvent,
    StoredRejected,
)
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import (
    attempt_from_row,
    contact_from_row,
    decode_event,
    delivery_from_row,
    push_from_row,
    rejected_from_row,
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


def events_by_id(
    conn: sqlite3.Connection, ids: Sequence[str]
) -> dict[str, tuple[Event, str | None]]:
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    rows = conn.execute(sql.events_by_id(len(wanted)), wanted).fetchall()
    return {r[0]: (decode_event(r[1]), r[2]) for r in rows}


def list_events(conn: sqlite3.Connection, query: EventQuery) -> EventPage:
    statement, params = sql.list_events(query)
    rows = conn.execute(statement, params).fetchall()
    items = [StoredEvent(seq=r[0], event=decode_event(r[1])) for r in rows[: query.limit]]
    more = len(rows) > query.limit
    return EventPage(items=items, next_cursor=items[-1].seq if more and items else None)


def get_event(conn: sqlite3.Connection, event_id: str) -> Event | None:
    row = conn.execute(sql.GET_EVENT, (event_id,)).fetchone()
    return None if row is None else decode_event(row[0])


def get_contact(conn: sqlite3.Connection, order_id: str, shop: str) -> Contact | None:
    row = conn.execute(sql.GET_CONTACT, (order_id, shop)).fetchone()
    return None if row is None else contact_from_row(row)


def list_pushes(conn: sqlite3.Connection, query: PushQuery) -> list[LoggedPush]:
    statement, params = sql.list_pushes(query)
    return [push_from_row(r) for r in conn.execute(statement, params).fetchall()]


def get_push(conn: sqlite3.Connection, push_id: str) -> LoggedPush | None:
    row = conn.execute(sql.GET_PUSH, (push_id,)).fetchone()
    return None if row is None else push_from_row(row)


def count_rejected(conn: sqlite3.Connection, shops: Sequence[str] | None) -> int:
    statement, params = sql.count_rejected(shops)
    return int(conn.execute(statement, params).fetchone()[0])


def list_rejected(
    conn: sqlite3.Connection, limit: int, shops: Sequence[str] | None
) -> list[StoredRejected]:
    statement, params = sql.list_rejected(limit, shops)
    return [rejected_from_row(r) for r in conn.execute(statement, params).fetchall()]


def get_rejected(conn: sqlite3.Connection, rejected_id: int) -> StoredRejected | None:
    row = conn.execute(sql.GET_REJECTED, (rejected_id,)).fetchone()
    return None if row is None else rejected_from_row(row)


def delete_rejected(conn: sqlite3.Connection, rejected_id: int) -> bool:
    """A writer job: the body was replayed and accepted."""
    return conn.execute(sql.DELETE_REJECTED, (rejected_id,)).rowcount == 1


def get_delivery(
    conn: sqlite3.Connection, delivery_id: str
) -> tuple[Delivery, list[Attempt]] | None:
    row = conn.execute(sql.GET_DELIVERY, (delivery_id,)).fetchone()
    if row is None:
        return None
    attempts = [attempt_from_row(a) for a in conn.execute(sql.ATTEMPTS_OF, (delivery_id,))]
    return delivery_from_row(row), attempts


def list_deliveries(conn: sqlite3.Connection, query: DeliveryFilter) -> list[Delivery]:
    statement, params = sql.list_deliveries(query)
    return [delivery_from_row(r) for r in conn.execute(statement, params).fetchall()]
