"""SQLite rows ↔ Kabarin's structs, and the statements the SQLite store runs more than once.

Times are integer microseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gateway.deliveries import Delivery, DeliveryFilter
from gateway.events import Event

__all__ = [
    "DELIVERY_COLUMNS",
    "DELIVERY_COLUMNS_SHOWN",
    "INSERT_DELIVERIES",
    "INSERT_EVENTS",
    "UPSERT_CONTACT",
    "decode_event",
    "delivery_filter",
    "delivery_from_row",
    "encode_rows",
    "from_us",
    "opt_time",
    "to_us",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

decode_event = msgspec.json.Decoder(Event).decode

encode_rows = msgspec.json.Encoder().encode
INSERT_EVENTS = (
    "INSERT OR IGNORE INTO events"
    " (id, order_id, status, method, occurred_at, received_at, body, push_id)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " value -> 6, value ->> 7 FROM json_each(?)"
)
INSERT_DELIVERIES = (
    "INSERT OR IGNORE INTO deliveries (id, event_id, route, sink, order_id, occurred_at,"
    " ordering, template, state, next_attempt_at, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " value ->> 6, value ->> 7, 'pending', ?2, ?2, ?2 FROM json_each(?1)"
)
UPSERT_CONTACT = (
    "INSERT INTO contacts (order_id, name, phone, email, updated_at) VALUES (?, ?, ?, ?, ?)"
    " ON CONFLICT (order_id) DO UPDATE SET name = coalesce(excluded.name, name),"
    " phone = coalesce(excluded.phone, phone), email = coalesce(excluded.email, email),"
    " updated_at = excluded.updated_at"
)

DELIVERY_COLUMNS = (
    "id, event_id, route, sink, order_id, occurred_at, ordering, template, state, attempts, "
    "next_attempt_at, created_at, updated_at, lease_owner, lease_until, last_error, delivered_at,"
    " waiting"
)
DELIVERY_COLUMNS_SHOWN = DELIVERY_COLUMNS.replace(
    " waiting",
    " coalesce((SELECT 'sink switched off (' || disabled_reason || '): enable it with POST"
    " /admin/v1/sinks/' || sink_state.sink || '/enable' FROM sink_state"
    " WHERE sink_state.sink = deliveries.sink AND disabled_reason IS NOT NULL"
    " AND deliveries.state = 'pending'), waiting)",
)
"""The columns as shown to people: a pending delivery of a switched-off sink says so, even
before the dispatcher has looked at it (a disabled sink's deliveries are never claimed)."""


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact: a double holds them until the year 2255)."""
    return round(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    return Delivery(
        id=row[0],
        event_id=row[1],
        route=row[2],
        sink=row[3],
        order_id=row[4],
        occurred_at=from_us(row[5]),
        ordering=row[6],
        template=row[7],
        state=row[8],
        attempts=row[9],
        next_attempt_at=from_us(row[10]),
        created_at=from_us(row[11]),
        updated_at=from_us(row[12]),
        lease_owner=row[13],
        lease_until=opt_time(row[14]),
        last_error=row[15],
        delivered_at=opt_time(row[16]),
        waiting=row[17],
    )


def delivery_filter(query: DeliveryFilter) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("state", query.state),
        ("sink", query.sink),
        ("order_id", query.order_id),
        ("event_id", query.event_id),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if query.since is not None:
        where.append("created_at >= ?")
        params.append(to_us(query.since))
    return where, params
