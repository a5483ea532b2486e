"""Deliveries: one (event, route, sink) on its way out, its states, and the attempts it took.

These types are shared by the router (which creates deliveries), the store (which keeps and
leases them), the dispatcher (which sends them) and the admin API and CLI (which show them), so
they live here, below all of them::

    pending ──claim──▶ in_flight ──▶ delivered
       ▲                   │
       └── retry at T ◀────┤
                           ├──▶ dead        (permanent failure, template error, schedule used up)
                           ├──▶ skipped     (the sink had nothing to send, e.g. no recipient)
                           └──▶ superseded  (a newer status of the order already reached the sink)
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from gateway.events import Contact, Event

__all__ = [
    "Attempt",
    "Claim",
    "Delivery",
    "DeliveryFilter",
    "DeliveryState",
    "NewDelivery",
    "Ordering",
    "Outcome",
]

DeliveryState = Literal["pending", "in_flight", "delivered", "dead", "skipped", "superseded"]
Ordering = Literal["all", "latest"]
"""Per (sink, order): ``all`` sends every status oldest first, ``latest`` only the newest."""
Outcome = Literal["delivered", "retry", "permanent", "skipped", "error"]
"""What one attempt came to (`Attempt.outcome`)."""


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery to create in the same commit as its event (one per event, route and sink)."""

    id: str
    event_id: str
    route: str
    sink: str
    ordering: Ordering
    template: str | None = None
    """The route's template for this sink (`gateway.templates.encode_parts`); ``None`` means
    the sink's own."""


class Delivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    event_id: str
    route: str
    sink: str
    order_id: str
    occurred_at: datetime
    """The event's own time, copied here for ordering."""
    ordering: Ordering
    template: str | None
    state: DeliveryState
    attempts: int
    """Attempts that counted against the retry schedule."""
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    lease_owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None
    """The last failure, or why it was skipped; cleared once the delivery is delivered."""
    delivered_at: datetime | None = None
    waiting: str | None = None
    """Why a pending delivery is held back without using an attempt (``circuit open until
    05:12:30 UTC``, a switched-off sink, ...); ``None`` when it just waits for its turn."""
    fallback_of: str | None = None
    """The delivery this one stands in for: it ended dead or skipped on the route's first
    sink, and this is the same event on that sink's fallback."""


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    delivery_id: str
    started_at: datetime
    duration_ms: float
    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    """Already redacted by the caller; for ``skipped``, the sink's reason."""


class Claim(msgspec.Struct, frozen=True, kw_only=True):
    """A leased delivery with what the dispatcher needs to render and send it."""

    delivery: Delivery
    event: Event
    contact: Contact | None


class DeliveryFilter(msgspec.Struct, frozen=True, kw_only=True):
    state: DeliveryState | None = None
    sink: str | None = None
    order_id: str | None = None
    event_id: str | None = None
    since: datetime | None = None
    """Deliveries created at or after this time."""
    limit: int = 100
    before: str | None = None
    """Cursor: the previous page's last delivery id."""
