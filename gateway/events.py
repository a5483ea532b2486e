"""The one internal event: every push method and every pull result becomes an `Event`.

Field names are a public contract (sinks, templates, the ERP webhook payload): see README.md.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = ["TERMINAL_STATUSES", "Contact", "Event", "EventKind", "Status", "event_id"]


class Status(enum.StrEnum):
    """Normalised shipment status, the same for every source and method."""

    PROCESSED = "processed"  # AWB issued
    VALIDATED = "validated"  # cost confirmed
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELED = "canceled"
    REJECTED = "rejected"
    PROBLEM = "problem"  # not final: it may be resolved
    NO_DRIVER = "no_driver"
    RETURNING = "returning"
    RETURNED = "returned"
    STUCK = "stuck"  # no news for too long (raised by the pull tracker)
    UNKNOWN = "unknown"


TERMINAL_STATUSES = frozenset({Status.DELIVERED, Status.CANCELED, Status.REJECTED, Status.RETURNED})

EventKind = Literal["express", "instant"]
Source = Literal["push", "pull"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One status update of one package."""

    id: str
    """Deterministic: the same update pushed twice has the same id and is stored once."""
    source: Source
    method: str
    """The raw KiriminAja method, e.g. ``shipped_packages``."""
    kind: EventKind
    status: Status
    raw_status: str | None = None
    """The source's own status beside the normalised one (instant status, numeric code)."""
    order_id: str
    awb: str | None = None
    occurred_at: datetime
    """When it happened, timezone-aware; ``received_at`` when the push carries no time."""
    received_at: datetime
    reason: str | None = None
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    """The package item exactly as received."""


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """The customer behind an order, for the people-facing sinks."""

    order_id: str
    name: str | None = None
    phone: str | None = None
    email: str | None = None


def event_id(*parts: object) -> str:
    """A stable id from the parts that identify one update (``None`` parts count as empty)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return "evt_" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
