"""PostgreSQL rows ↔ Kabarin's structs: `gateway.store.records` read with PostgreSQL's times.

The connections use UTC, so a ``timestamptz`` column comes back as a UTC datetime and is read
as it is. `Conn` is the connection every role module's functions are handed (see store.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import psycopg
from psycopg.rows import TupleRow

from gateway.events import Event
from gateway.store.records import Records, contact_from_row

__all__ = [
    "EPOCH",
    "Conn",
    "as_bytes",
    "attempt_from_row",
    "contact_from_row",
    "decode_event",
    "delivery_from_row",
    "encode",
    "push_from_row",
    "rejected_from_row",
    "text",
    "to_us",
]

Conn = psycopg.AsyncConnection[TupleRow]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

decode_event = msgspec.json.Decoder(Event).decode
encode = msgspec.json.Encoder().encode


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch, as the SQLite rows hold times (`plan_claims` compares
    them as integers)."""
    return (moment - EPOCH) // timedelta(microseconds=1)


def _as_read(moment: datetime) -> datetime:
    return moment  # timestamptz columns come back as UTC datetimes (the connections use UTC)


_records = Records(time=_as_read)
push_from_row = _records.push
delivery_from_row = _records.delivery
rejected_from_row = _records.rejected
attempt_from_row = _records.attempt


def text(value: str | None) -> str | None:
    """An error text as PostgreSQL's text can hold it: an error quotes what a peer answered,
    which may contain NUL, and a refused outcome would be sent again."""
    return value if value is None or "\x00" not in value else value.replace("\x00", "\ufffd")


def as_bytes(value: Any) -> Any:
    """A ``bytea`` value as bytes (psycopg may hand back a memoryview)."""
    return bytes(value) if isinstance(value, memoryview) else value
