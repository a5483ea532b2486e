"""Rows → Kabarin's structs, for every backend.

Both backends' sql.py select the same columns in the same order (``PUSH_COLUMNS``,
``DELIVERY_COLUMNS``, ``REJECTED_COLUMNS``, the attempts and contacts they read); they differ
only in what a time column holds, which a backend's `Records` is told how to read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.delivery.model import Attempt, Delivery
from gateway.events import DEFAULT_SHOP, Contact
from gateway.store.roles import LoggedPush, StoredRejected

__all__ = ["Records", "contact_from_row"]


def contact_from_row(row: Sequence[Any]) -> Contact:
    """``order_id, name, phone, email[, language[, shop]]``."""
    return Contact(
        order_id=row[0],
        shop=row[5] if len(row) > 5 else DEFAULT_SHOP,
        name=row[1],
        phone=row[2],
        email=row[3],
        language=row[4] if len(row) > 4 else None,
    )


@dataclass(frozen=True, slots=True)
class Records:
    """Rows of one backend, whose time columns `time` reads (never given ``NULL``)."""

    time: Callable[[Any], datetime]

    def opt_time(self, value: Any) -> datetime | None:
        return None if value is None else self.time(value)

    def delivery(self, row: Sequence[Any]) -> Delivery:
        """A row of ``DELIVERY_COLUMNS`` (or ``DELIVERY_COLUMNS_SHOWN``)."""
        return Delivery(
            id=row[0],
            event_id=row[1],
            route=row[2],
            sink=row[3],
            order_id=row[4],
            occurred_at=self.time(row[5]),
            ordering=row[6],
            template=row[7],
            state=row[8],
            attempts=row[9],
            next_attempt_at=self.time(row[10]),
            created_at=self.time(row[11]),
            updated_at=self.time(row[12]),
            lease_owner=row[13],
            lease_until=self.opt_time(row[14]),
            last_error=row[15],
            delivered_at=self.opt_time(row[16]),
            waiting=row[17],
            fallback_of=row[18] if len(row) > 18 else None,
            started_at=self.opt_time(row[19]) if len(row) > 19 else None,
            shop=row[20] if len(row) > 20 else DEFAULT_SHOP,
        )

    def push(self, row: Sequence[Any]) -> LoggedPush:
        """A row of ``PUSH_COLUMNS``."""
        return LoggedPush(
            seq=row[0],
            id=row[1],
            source=row[2],
            method=row[3],
            items=row[4],
            received_at=self.time(row[5]),
            content_type=row[6],
            body=bytes(row[7]),
            state=row[8],
            error=row[9],
            processed_at=self.opt_time(row[10]),
            accepted=row[11],
            duplicates=row[12],
            origin=row[13],
            shop=row[14],
        )

    def rejected(self, row: Sequence[Any]) -> StoredRejected:
        """A row of ``REJECTED_COLUMNS``."""
        return StoredRejected(
            id=row[0],
            received_at=self.time(row[1]),
            reason=row[2],
            body=bytes(row[3]),
            content_type=row[4],
            origin=row[5],
            shop=row[6],
        )

    def attempt(self, row: Sequence[Any]) -> Attempt:
        """``delivery_id, started_at, duration_ms, outcome, status_code, error``."""
        return Attempt(
            delivery_id=row[0],
            started_at=self.time(row[1]),
            duration_ms=row[2],
            outcome=row[3],
            status_code=row[4],
            error=row[5],
        )
