"""The pull tracker's role (`TrackingStore`): the orders it follows, the claims of a pass and
of the stuck alerts, and its gauges. Part of every `gateway.store.roles.Store`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

import msgspec

from gateway.events import DEFAULT_SHOP, EventKind, Status

__all__ = ["PullClaim", "TrackedOrder", "TrackingCounts", "TrackingStore"]


class TrackedOrder(msgspec.Struct, frozen=True, kw_only=True):
    """An order the pull tracker knows, as its events (and its own asking) left it."""

    order_id: str
    shop: str = DEFAULT_SHOP
    """Orders are tracked per (shop, order id); the shop's key asks about it."""
    kind: EventKind = "express"
    last_status: Status | None = None
    """The status of its newest event (by ``occurred_at``, ``stuck`` events aside); ``None``
    when no event is known yet (registered by `kabarin track add` or by a contact)."""
    last_update: datetime | None = None
    """``occurred_at`` of that event."""
    closed: bool = False
    """One of its events has a final status (`gateway.events.TERMINAL_STATUSES`)."""
    last_pulled_at: datetime | None = None
    """When the tracking API last answered about it."""
    last_asked_at: datetime | None = None
    """When the tracker last asked about it, answered or not: a pass takes the least recently
    asked orders first (see `PullClaim.asked_before`)."""
    next_pull_at: datetime | None = None
    """Not asked about again on the regular schedule before this."""
    gone: str | None = None
    """KiriminAja said it does not know the order: never asked about again."""
    stuck_status: Status | None = None
    """The status a stuck alert was raised for (at `stuck_since`)."""
    stuck_since: datetime | None = None
    """The `last_update` the alert was for: the order has moved once it differs."""


class PullClaim(msgspec.Struct, frozen=True, kw_only=True):
    """Which orders `TrackingStore.claim_pulls` may lease."""

    now: datetime
    limit: int
    lease_seconds: float
    stale_before: datetime | None = None
    """Regular pass: open orders whose last update is before this and whose `next_pull_at`
    has come (orders without any event count as stale)."""
    pulled_before: datetime | None = None
    """Catch-up pass (after a gap): every open order not pulled since this time, whatever its
    last update and schedule."""
    asked_before: datetime | None = None
    """Only orders not asked since this (the start of the pass): a pass asks about each order
    at most once, however long it takes, and so comes to an end."""
    catch_up_shops: frozenset[str] | None = None
    """With `pulled_before`: only these shops' orders are caught up (the shops whose pushes
    stopped), the others' are claimed as in a regular pass, by `stale_before`; ``None``:
    every shop's orders are caught up."""


class TrackingCounts(msgspec.Struct, frozen=True, kw_only=True):
    open: int
    """Orders neither closed nor gone."""
    stuck: int
    """Open orders with a stuck alert raised for their current status."""


class TrackingStore(Protocol):
    """The pull tracker's orders: which are open, which to ask about now, which are stuck.

    Orders come from stored events (their newest status and time), contacts and
    `track_orders`; the backend takes in events and contacts stored since its last look at the
    start of `claim_pulls` and `claim_stuck` (the reads show the orders as of then). Leases
    make several replicas share the work without asking about one order twice.
    """

    async def track_orders(
        self,
        orders: Sequence[tuple[str, EventKind]],
        *,
        now: datetime,
        shop: str = DEFAULT_SHOP,
    ) -> int:
        """Register a shop's orders to follow (`kabarin track add`); how many were new (not
        named by a stored event, a contact or an earlier call)."""

    async def claim_pulls(self, claim: PullClaim) -> list[TrackedOrder]:
        """Lease up to `claim.limit` open, not gone orders with no live lease, least recently
        asked first (never asked first, then oldest last update, orders without one first), in
        one transaction: the lease lasts `claim.lease_seconds`. Regular pass or catch-up pass:
        see `PullClaim`."""

    async def finish_pull(
        self,
        order_id: str,
        *,
        shop: str = DEFAULT_SHOP,
        now: datetime,
        next_pull_at: datetime,
        answered: bool = True,
        asked: bool = True,
        gone: str | None = None,
    ) -> None:
        """Release the lease and schedule the next regular pull; `answered` records `now` as
        `last_pulled_at`, `asked` (a call was made, answered or not) as `last_asked_at`; `gone`
        marks the order as unknown to KiriminAja."""

    async def claim_stuck(
        self, after: Mapping[Status, float], *, now: datetime, limit: int
    ) -> list[TrackedOrder]:
        """Open orders whose last status is a key of `after` and whose last update is more
        than that many seconds before `now`, without an alert for that update yet: marked as
        alerted (`stuck_status`, `stuck_since`) in the same transaction, so each is returned
        once until the order moves (its last update changes). Oldest last update first."""

    async def known_statuses(
        self, order_id: str, *, shop: str = DEFAULT_SHOP
    ) -> set[tuple[Status, str | None]]:
        """The statuses the shop's order's stored events have (``stuck`` aside), each with its
        reason for ``problem`` (``None`` for the others)."""

    async def last_push_at(self, *, shop: str | None = None) -> datetime | None:
        """``received_at`` of the newest log entry KiriminAja pushed (source ``push``), of
        `shop`'s account (``None``: of any)."""

    async def get_tracking(
        self, order_id: str, *, shop: str = DEFAULT_SHOP
    ) -> TrackedOrder | None: ...

    async def tracking_counts(self) -> TrackingCounts: ...

    async def oldest_due_pull(self, *, now: datetime, stale_after: float) -> datetime | None:
        """When the open order waiting longest for its regular pull became due (the latest of
        its last update plus `stale_after` seconds, its `next_pull_at` and when it was first
        tracked), leased or not: it has not been asked since. ``None`` when none is due. Like
        the claims, it takes in the events and contacts stored since the last look first."""
