"""SQLite rows ↔ Kabarin's structs: the only place that knows a row's column order.

Times are integer microseconds since the Unix epoch, UTC: exact, ordered, and compared by
index in SQL. They never leave this package; every caller above it speaks timezone-aware
datetimes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from gateway.deliveries import Attempt, Delivery
from gateway.events import Contact, Event
from gateway.store.base import LoggedPush, StoredRejected

__all__ = [
    "attempt_from_row",
    "contact_from_row",
    "decode_event",
    "delivery_from_row",
    "encode_rows",
    "from_us",
    "opt_time",
    "push_from_row",
    "rejected_from_row",
    "to_us",
]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

decode_event = msgspec.json.Decoder(Event).decode

encode_rows = msgspec.json.Encoder().encode


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch (exact: a double holds them until the year 2255)."""
    return round(moment.timestamp() * 1_000_000)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def opt_time(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


def delivery_from_row(row: Sequence[Any]) -> Delivery:
    """A row of `sql.DELIVERY_COLUMNS` (or `sql.DELIVERY_COLUMNS_SHOWN`)."""
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
        fallback_of=row[18] if len(row) > 18 else None,
    )


def push_from_row(row: Sequence[Any]) -> LoggedPush:
    """A row of `sql.PUSH_COLUMNS`."""
    return LoggedPush(
        seq=row[0],
        id=row[1],
        source=row[2],
        method=row[3],
        items=row[4],
        received_at=from_us(row[5]),
        content_type=row[6],
        body=bytes(row[7]),
        state=row[8],
        error=row[9],
        processed_at=opt_time(row[10]),
        accepted=row[11],
        duplicates=row[12],
    )


def contact_from_row(row: Sequence[Any]) -> Contact:
    """``order_id, name, phone, email[, language]``."""
    return Contact(
        order_id=row[0],
        name=row[1],
        phone=row[2],
        email=row[3],
        language=row[4] if len(row) > 4 else None,
    )


def rejected_from_row(row: Sequence[Any]) -> StoredRejected:
    """A row of `sql.REJECTED_COLUMNS`."""
    return StoredRejected(
        id=row[0],
        received_at=from_us(row[1]),
        reason=row[2],
        body=bytes(row[3]),
        content_type=row[4],
    )


def attempt_from_row(row: Sequence[Any]) -> Attempt:
    return Attempt(
        delivery_id=row[0],
        started_at=from_us(row[1]),
        duration_ms=row[2],
        outcome=row[3],
        status_code=row[4],
        error=row[5],
    )
