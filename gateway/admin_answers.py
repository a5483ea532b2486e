"""What the admin API answers (`gateway.admin`): its JSON bodies, as msgspec structs that the
OpenAPI document is written from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gateway.delivery.model import Attempt, Delivery
from gateway.events import Contact, Event, Status
from gateway.insights.estimates import Estimate
from gateway.operations import PushEvent, PushItem, RejectedItem, SinkStatus
from gateway.store.facts import OrderFacts
from gateway.store.roles import LoggedPush, PushState
from gateway.store.tracking import TrackedOrder

__all__ = [
    "ContactBody",
    "DeliveryDetail",
    "DeliveryList",
    "EventDetail",
    "EventList",
    "EventSummary",
    "OrderTimeline",
    "PushDetail",
    "PushList",
    "PushSummary",
    "RejectedList",
    "ReplayResult",
    "ReprocessResult",
    "SinkList",
    "event_summary",
    "push_summary",
]


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    shop: str
    source: str
    method: str
    kind: str
    status: Status
    raw_status: str | None
    order_id: str
    awb: str | None
    occurred_at: datetime
    received_at: datetime
    reason: str | None
    details: dict[str, Any]


class EventList(msgspec.Struct, frozen=True):
    items: list[EventSummary]
    next_cursor: int | None
    """Pass as `cursor` for the next (older) page."""


class EventDetail(msgspec.Struct, frozen=True, kw_only=True):
    event: Event
    """With `raw`, the package item exactly as KiriminAja sent it."""
    contact: Contact | None
    deliveries: list[Delivery]


class OrderTimeline(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    shop: str
    events: list[EventSummary]
    """Oldest first; `source` says whether a push or the pull tracker brought each."""
    deliveries: list[Delivery]
    """Oldest first."""
    contact: Contact | None
    tracking: TrackedOrder | None
    """What the pull tracker knows of it: last status, schedule, stuck alert."""
    facts: OrderFacts | None = None
    """Its courier, product, destination city, KiriminAja's estimate and stage times."""
    estimate: Estimate | None = None
    """When it is expected, while shipped and not yet delivered (`gateway.insights`)."""
    tracking_url: str | None = None
    """The customer's tracking page of the order, working for ``tracking_page.link_ttl``
    from now; ``None`` when the page is off."""


class DeliveryList(msgspec.Struct, frozen=True):
    items: list[Delivery]
    next_cursor: str | None


class DeliveryDetail(msgspec.Struct, frozen=True):
    delivery: Delivery
    attempts: list[Attempt]


class ReplayResult(msgspec.Struct, frozen=True):
    replayed: int


class RejectedList(msgspec.Struct, frozen=True):
    items: list[RejectedItem]


class PushSummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    shop: str
    source: str
    method: str | None
    items: int
    received_at: datetime
    state: PushState
    """``pending`` (waiting for the intake), ``processed`` or ``failed``."""
    error: str | None
    processed_at: datetime | None
    accepted: int | None
    """New events it produced."""
    duplicates: int | None
    """Events it repeated (already stored by an earlier push)."""


class PushList(msgspec.Struct, frozen=True):
    items: list[PushSummary]
    next_cursor: int | None
    """Pass as `cursor` for the next (older) page."""


class PushDetail(msgspec.Struct, frozen=True, kw_only=True):
    push: PushSummary
    content_type: str | None
    body: str | None
    """The body as received (bytes that are not UTF-8 shown as U+FFFD) when it is at most 64
    KiB; ``null`` for a larger one, whose items are read a page at a time (`GET
    /admin/v1/pushes/{id}/body` answers it whole)."""
    body_bytes: int
    """The body's length in bytes."""
    items: list[PushItem]
    """This page of its package items, in body order (a pull tracker entry has none)."""
    events: list[PushEvent]
    """The events this page's items produced or repeated (none while pending, or when it
    failed)."""
    next_cursor: int | None
    """Pass as `cursor` for the next page of items."""


class ReprocessResult(msgspec.Struct, frozen=True):
    requeued: int


class ContactBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order's customer as the shop registers it; a field left out (or blank) keeps what a
    push said."""

    name: str | None = None
    phone: str | None = None
    """Any written form of the number; stored in E.164 (``+6281234567890``)."""
    email: str | None = None
    language: str | None = None
    """``id`` or ``en``."""


class SinkList(msgspec.Struct, frozen=True):
    items: list[SinkStatus]


def push_summary(p: LoggedPush) -> PushSummary:
    return PushSummary(
        seq=p.seq,
        id=p.id,
        shop=p.shop,
        source=p.source,
        method=p.method,
        items=p.items,
        received_at=p.received_at,
        state=p.state,
        error=p.error,
        processed_at=p.processed_at,
        accepted=p.accepted,
        duplicates=p.duplicates,
    )


def event_summary(seq: int, e: Event) -> EventSummary:
    return EventSummary(
        seq=seq,
        id=e.id,
        shop=e.shop,
        source=e.source,
        method=e.method,
        kind=e.kind,
        status=e.status,
        raw_status=e.raw_status,
        order_id=e.order_id,
        awb=e.awb,
        occurred_at=e.occurred_at,
        received_at=e.received_at,
        reason=e.reason,
        details=e.details,
    )
