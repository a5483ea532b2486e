"""SQLite rows ↔ Kabarin's structs: `gateway.store.records` read with SQLite's times.

Times are integer microseconds since the Unix epoch, UTC: exact, ordered, and compared by
index in SQL. They never leave this package; every caller above it speaks timezone-aware
datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from gateway.events import Event
from gateway.store.records import Records, contact_from_row

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


_records = Records(time=from_us)
delivery_from_row = _records.delivery
push_from_row = _records.push
rejected_from_row = _records.rejected
attempt_from_row = _records.attempt
