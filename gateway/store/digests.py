"""What the store answers for digests (`gateway.digests`): one window's counts, and the record
of a digest sent.

The counts are read with indexed SQL in each backend (events by ``received_at``, dead deliveries
by ``updated_at``), never by loading events into Python. A digest sent is a `DigestRun`: a
stand-in event (`gateway.digests.message`) its deliveries name, kept in ``digest_runs`` rather
than among the shipment events, so no listing, count or pull sees it.
"""

from __future__ import annotations

from datetime import datetime

import msgspec

from gateway.events import Event, Status

__all__ = [
    "TROUBLE_STATUSES",
    "DigestRun",
    "ReasonCount",
    "StuckParcel",
    "WindowCounts",
]

TROUBLE_STATUSES: tuple[Status, ...] = (
    Status.PROBLEM,
    Status.REJECTED,
    Status.RETURNING,
    Status.RETURNED,
)
"""The statuses a digest lists with their reasons: problems and returns."""


class StuckParcel(msgspec.Struct, frozen=True, kw_only=True):
    """An order the pull tracker raised a ``stuck`` event for in the window."""

    order_id: str
    awb: str | None
    stuck_in: str | None
    """The status it waits in (the stuck event's ``raw_status``)."""
    at: datetime
    """When the alert was raised (the stuck event's ``received_at``)."""
    reason: str | None = None


class ReasonCount(msgspec.Struct, frozen=True, kw_only=True):
    """Events of one trouble status with one reason (``None``: none given)."""

    status: Status
    reason: str | None
    count: int


class WindowCounts(msgspec.Struct, frozen=True, kw_only=True):
    """The events received in ``[start, end)`` and the deliveries that ended dead in it."""

    start: datetime
    end: datetime
    by_status: dict[Status, int] = msgspec.field(default_factory=dict)
    """Status → events (statuses with none left out)."""
    by_courier: dict[str, int] = msgspec.field(default_factory=dict)
    """Courier → events: the event's ``details.service``, else its raw ``service``; ``""`` when
    neither says."""
    stuck: list[StuckParcel] = msgspec.field(default_factory=list)
    """Newest first, at most the limit asked for."""
    stuck_total: int = 0
    """Stuck events in the window, beyond the limit too."""
    troubles: list[ReasonCount] = msgspec.field(default_factory=list)
    """`TROUBLE_STATUSES` events by status and reason, most frequent first, at most the limit."""
    dead: dict[str, int] = msgspec.field(default_factory=dict)
    """Sink → deliveries that ended ``dead`` in the window."""

    @property
    def events(self) -> int:
        return sum(self.by_status.values())


class DigestRun(msgspec.Struct, frozen=True, kw_only=True):
    """One digest sent (scheduled or by hand): the stand-in event its deliveries name."""

    digest: str
    """The digest's name."""
    period: datetime | None
    """The period it is the digest of; ``None`` for one sent by hand (``kabarin digest send``),
    which takes no period's place."""
    event: Event
    """What the deliveries carry (`gateway.digests.message.digest_event`)."""
