"""Deliveries: one (event, route, sink) on its way out, its states, and the attempts it took.

These types are shared by the router (which creates deliveries), the store (which keeps and
leases them), the dispatcher (which sends them) and the admin API and CLI (which show them), so
they live here, below all of them::

    pending ──claim──▶ in_flight ──▶ delivered
       ▲                   │
       └── retry at T ◀────┤
                           ├──▶ dead        (permanent failure, template error, schedule used up,
                           │                 a customer send whose outcome is unknown)
                           ├──▶ skipped     (the sink had nothing to send, e.g. no recipient)
                           └──▶ superseded  (``ordering: latest``: a later status of the order
                                             reached, or goes to, the sink instead)

A grouped route's message (`gateway.delivery.grouping`) is a delivery too: its ``order_id`` is
its group's id (the lane its messages take in turn), its ``event_id`` its first event's, and
its `Claim` carries every event of it (`Group`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from gateway.events import DEFAULT_SHOP, Contact, Event

__all__ = [
    "OUTCOME_UNKNOWN",
    "Attempt",
    "Claim",
    "Claimed",
    "Delivery",
    "DeliveryFilter",
    "DeliveryState",
    "Group",
    "GroupRef",
    "NewDelivery",
    "Ordering",
    "Outcome",
]

DeliveryState = Literal["pending", "in_flight", "delivered", "dead", "skipped", "superseded"]
Ordering = Literal["all", "latest"]
"""Per (sink, order): ``all`` sends every status once, in the order they arrived; ``latest``
only the furthest along (`gateway.store.lanes`)."""
Outcome = Literal["delivered", "retry", "permanent", "skipped", "error", "unknown"]
"""What one attempt came to (`Attempt.outcome`); ``unknown``: a send to a customer started and
its answer was never recorded (a crash, or a shutdown that could not wait for it)."""

OUTCOME_UNKNOWN = (
    "outcome unknown: the send to the customer started but its answer was never recorded"
    " (the process stopped or died during it), so it is not sent again by itself; the customer"
    " may have received it. A replay sends it again"
)
"""The `Delivery.last_error` of a customer send that ended ``dead`` because of that."""


class GroupRef(msgspec.Struct, frozen=True, kw_only=True):
    """The group a grouped route's event joins on one sink (`gateway.delivery.grouping`)."""

    id: str
    """``grp_`` + a hash of the route, the sink and `key`: the group's identity in the store,
    and the lane (`Delivery.order_id`) its messages go out on, one after the other."""
    key: dict[str, str | None]
    """The route's ``group.by`` fields and this event's values of them (as text)."""
    wait: float
    """Seconds a group's first message waits after its first event (``group.wait``)."""
    interval: float
    """Seconds at least between two messages of the group (``group.interval``)."""


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """The events one grouped message carries, as its templates see it (``group``)."""

    key: dict[str, str | None]
    """``group.by`` field → the value these events share."""
    events: list[Event]
    """In the order they joined the group (their arrival)."""

    @property
    def count(self) -> int:
        """How many events the message carries."""
        return len(self.events)


class NewDelivery(msgspec.Struct, frozen=True, kw_only=True):
    """A delivery to create in the same commit as its event (one per event, route and sink),
    or, on a grouped route, the event's place in its group's message (`group`)."""

    id: str
    event_id: str
    route: str
    sink: str
    ordering: Ordering
    template: str | None = None
    """The route's template for this sink (`gateway.templating.encode_parts`); ``None`` means
    the sink's own."""
    group: GroupRef | None = None
    """A grouped route (``group:``): the event joins the message its group is collecting, or
    opens one (then `id` is the message's delivery id, due when `gateway.delivery.grouping`
    says)."""


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
    started_at: datetime | None = None
    """Sinks that write to customers: when a send started whose outcome is not recorded yet
    (committed before the request leaves). A delivery found so once its lease ran out is never
    sent again by itself: it ends ``dead`` (`OUTCOME_UNKNOWN`) until a person replays it."""
    shop: str = DEFAULT_SHOP
    """The shop of its event: a lane is the deliveries of one (shop, order, sink)."""


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
    """A grouped message's first event."""
    contact: Contact | None
    group: Group | None = None
    """A grouped route's message: every event it carries (a message's set is closed once
    it is first claimed: later events go in the group's next message)."""


class Claimed(msgspec.Struct, frozen=True, kw_only=True):
    """What one `DeliveryQueue.claim` did: the deliveries it leased, and the ones it ended on
    the way (for the dispatcher to log and count)."""

    claims: list[Claim]
    superseded: list[Delivery] = msgspec.field(default_factory=list)
    """Ended ``superseded`` (``ordering: latest``: a later status goes, or went, instead)."""
    unknown: list[Delivery] = msgspec.field(default_factory=list)
    """Ended ``dead`` with `OUTCOME_UNKNOWN`: a customer send started, its lease ran out, and
    no outcome was recorded."""


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
    shops: tuple[str, ...] | None = None
    """Only these shops' deliveries (``None``: every shop's)."""
