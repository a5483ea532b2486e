"""What Kabarin keeps, as the roles that use it: one protocol per role, `Store` the union.

Each part of the service is typed against the role it uses, so a backend (SQLite today,
PostgreSQL next) is held to exactly what its callers need and a test double can stand in for
one role: the intake and the receiver write through `IngestStore`, the dispatcher works the
`DeliveryQueue`, the admin API, the dashboard and the CLI read through `AdminReader`.

No backend type crosses this boundary: arguments and results are the msgspec structs below,
`gateway.events` and `gateway.delivery.model` types, and plain Python values; no rows, no integer
times. Times are timezone-aware UTC datetimes, and every time a method writes is given by its
caller (``now``): the store never reads a clock, so a dispatcher with an injected clock, or
several replicas of one, all write the time they decided on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

import msgspec

from gateway.delivery.model import (
    Attempt,
    Claimed,
    Delivery,
    DeliveryFilter,
    DeliveryState,
    Group,
    NewDelivery,
)
from gateway.events import DEFAULT_SHOP, Contact, Event, Source, Status
from gateway.store.digests import DigestRun, WindowCounts
from gateway.store.facts import InsightsStore
from gateway.store.tracking import TrackingStore

__all__ = [
    "DEFAULT_CACHE_MB",
    "PRUNE_STEPS",
    "AdminReader",
    "ContactBook",
    "Cutoffs",
    "DeliveryQueue",
    "DigestStore",
    "EventPage",
    "EventQuery",
    "Finished",
    "GroupStore",
    "IngestResult",
    "IngestStore",
    "LoggedPush",
    "NewPush",
    "PruneStep",
    "Pruned",
    "PushOutcome",
    "PushQuery",
    "PushState",
    "RejectedRequest",
    "RetentionStore",
    "SessionStore",
    "SignedInSession",
    "SinkCounts",
    "Store",
    "StoredEvent",
    "StoredRejected",
    "WaitingGroup",
]

PushState = Literal["pending", "processed", "failed"]

DEFAULT_CACHE_MB = 64
"""`store.cache_mb`: the page cache of each SQLite connection, in MiB."""


class NewPush(msgspec.Struct, frozen=True, kw_only=True):
    """One entry for the push log: a body exactly as it arrived, before any normalising."""

    id: str
    source: Source
    """``push`` (KiriminAja POSTed it) or ``pull`` (the tracking API answered it)."""
    shop: str = DEFAULT_SHOP
    """The shop whose token pushed it (or whose key the pull tracker asked with)."""
    received_at: datetime
    body: bytes
    content_type: str | None = None
    method: str | None = None
    """The push's ``method``, for listings and metrics."""
    items: int = 0
    """Packages in the body."""
    origin: str = "kiriminaja"
    """The push source that decoded it (`gateway.sources`), which the intake asks to normalise
    it; the pull tracker's entries are its source's too."""


class LoggedPush(msgspec.Struct, frozen=True, kw_only=True):
    """A push log entry as stored, with what the intake made of it."""

    seq: int
    """Log order; pagination cursor."""
    id: str
    source: Source
    received_at: datetime
    body: bytes
    content_type: str | None
    method: str | None
    items: int
    state: PushState
    error: str | None = None
    """Why the intake could not turn it into events (``failed``)."""
    processed_at: datetime | None = None
    accepted: int | None = None
    """New events it produced (``processed``)."""
    duplicates: int | None = None
    """Events it repeated (already stored)."""
    origin: str = "kiriminaja"
    """The push source that decoded it (entries logged before sources existed: KiriminAja)."""
    shop: str = DEFAULT_SHOP
    """The shop whose token pushed it (``default`` for entries from before shops)."""


class PushQuery(msgspec.Struct, frozen=True, kw_only=True):
    state: PushState | None = None
    source: Source | None = None
    since: datetime | None = None
    """Pushes received at or after this time."""
    limit: int = 50
    before_seq: int | None = None
    shops: tuple[str, ...] | None = None
    """Only these shops' entries (``None``: every shop's)."""


class PushOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What the intake made of one log entry: stored in one commit with the rest of its batch."""

    push_id: str
    events: Sequence[Event] = ()
    deliveries: Sequence[NewDelivery] = ()
    """Created only for events that are new; a duplicate event gets no new deliveries."""
    contacts: Sequence[Contact] = ()
    """Upserted by (order id, shop); a ``None`` field never overwrites a known value."""
    unrouted: int = 0
    """Events that matched no route (counted, not an error)."""
    error: str | None = None
    """Set when the entry could not be decoded or normalised: it is marked ``failed``."""


class IngestResult(msgspec.Struct, frozen=True, kw_only=True):
    """What one log entry's events did in the store."""

    accepted: int
    """Events stored by this entry."""
    duplicates: int
    """Events already stored (by an earlier entry, or earlier in the same batch)."""
    deliveries: int = 0
    """Deliveries created."""
    new_event_ids: Sequence[str] = ()
    """Ids of the events this batch stored (the ``accepted`` ones)."""


class RejectedRequest(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated body that could not be decoded, kept for replay after a fix."""

    received_at: datetime
    reason: str
    body: bytes
    content_type: str | None = None
    replaces: int | None = None
    """The kept row this is a new verdict on (a replay): it is updated, not added again."""
    origin: str = "kiriminaja"
    """The push source whose path it came to: a replay is judged by that source's decoder."""
    shop: str = DEFAULT_SHOP
    """The shop whose token sent it: a replay is that shop's push."""


class StoredRejected(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    received_at: datetime
    reason: str
    body: bytes
    content_type: str | None = None
    origin: str = "kiriminaja"
    """The push source whose path it came to."""
    shop: str = DEFAULT_SHOP


class StoredEvent(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    """Insertion order; pagination cursor."""
    event: Event


class EventQuery(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str | None = None
    awb: str | None = None
    """Only events carrying this AWB, exactly (an index answers it: the tracking page's
    lookup)."""
    status: Status | None = None
    since: datetime | None = None
    """Events received at or after this time."""
    limit: int = 50
    before_seq: int | None = None
    """Cursor: only events with ``seq`` below this (the previous page's last ``seq``)."""
    shops: tuple[str, ...] | None = None
    """Only these shops' events (``None``: every shop's)."""


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[StoredEvent]
    next_cursor: int | None
    """Pass as ``before_seq`` for the next (older) page; ``None`` on the last page."""


class SinkCounts(msgspec.Struct, frozen=True, kw_only=True):
    sink: str
    pending: int
    dead: int
    shop: str | None = None
    """Whose deliveries they are, when counted per shop (`DeliveryQueue.sink_counts`)."""


class Finished(msgspec.Struct, frozen=True, kw_only=True):
    """One outcome for `DeliveryQueue.finish_many`: the arguments of `DeliveryQueue.finish`."""

    delivery_id: str
    attempt: Attempt | None
    state: DeliveryState
    now: datetime
    next_attempt_at: datetime | None = None
    error: str | None = None
    count_attempt: bool = True
    waiting: str | None = None
    fallback: NewDelivery | None = None
    """Created with a ``dead`` or ``skipped`` state, as `DeliveryQueue.finish` does."""


class IngestStore(Protocol):
    """The push log and the intake: how anything enters the store."""

    async def append_push(self, push: NewPush) -> None:
        """Append a raw push to the log durably (group commit); returns once it is on disk.

        Raises `gateway.errors.StoreError` when it could not commit: nothing is kept.
        """

    async def reject(self, request: RejectedRequest) -> None:
        """Keep an undecodable authenticated body (update the row `request.replaces` names)."""

    async def delete_rejected(self, rejected_id: int) -> bool:
        """Forget a kept body (it was replayed and accepted)."""

    async def pending_pushes(self, *, limit: int) -> list[LoggedPush]:
        """The oldest ``pending`` log entries, in log order."""

    async def count_pending_pushes(self) -> int:
        """Log entries the intake has not taken yet (the backlog)."""

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        """Store a batch's events (deduplicated by id), the deliveries of the new ones and the
        contacts, and mark each entry ``processed`` or ``failed``: all in one commit, or (SQLite,
        whose push log has a file of its own) the entries marked in a second commit right
        after the first. A crash between the two leaves them pending: processed again, their
        events are found stored, so nothing is stored or sent twice and they count as
        duplicates.

        One result per outcome, in order. An event carried by two entries of the batch counts
        as new for the first. Raises `gateway.errors.StoreError` when it could not commit.

        A delivery with a `NewDelivery.group` is not created as it is: its event goes in the
        message its group (route, sink, key) collects, else in a new one, created pending and
        due as `gateway.delivery.grouping.plan_groups` says, with ``order_id`` the group's id
        (its lane), ``ordering: all`` and the delivery's id, route, sink and template. Groups
        are locked while they are read, so concurrent intakes and claims share them.
        """

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        """Put ``failed`` (or ``processed``) entries back to ``pending``; how many."""


class DeliveryQueue(Protocol):
    """The deliveries waiting for a sink: claimed with a lease, finished, replayed."""

    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> Claimed:
        """Lease up to `limit` due deliveries, in one transaction.

        Due: ``pending`` with ``next_attempt_at <= now``, or ``in_flight`` whose lease expired.
        An expired one with `Delivery.started_at` set (a customer send started, no outcome
        recorded) is never leased again: it ends ``dead`` with `OUTCOME_UNKNOWN` and an attempt
        of outcome ``unknown`` (in `Claimed.unknown`).
        Per (sink, shop, order_id) at most one delivery is in flight, and ordering holds (the rules
        of `gateway.store.lanes`):
        - ``ordering == "all"``: only the oldest unfinished delivery of a (sink, order) by
          creation order is a candidate, and only once it is due (head-of-line: later ones
          wait for it); none is ever superseded, a late older status included;
        - ``ordering == "latest"``: only the highest-ranked unfinished delivery (lifecycle
          stage, then a source's time over an arrival time, then time, then creation order)
          is a candidate; the lower-ranked unfinished ones, and those ranked below one already
          ``delivered``, become ``superseded`` (in `Claimed.superseded`).
        A grouped route's message (`IngestStore.record_intake`) is claimed like any other; its
        `Claim.group` holds the events it carries (a fallback: those of the message it stands
        in for) and `Claim.event` the first. The claim that first leases a message closes it
        in the same transaction: an event recorded after that goes in the group's next one.
        """

    async def start(self, delivery_ids: Sequence[str], *, worker: str, now: datetime) -> set[str]:
        """Record durably, before the request leaves, that a send of each of these deliveries
        (leased by `worker`) starts at `now` (`Delivery.started_at`, for sinks that write to
        customers); the ids recorded. The others' lease was lost: they must not be sent.
        Recording any outcome but ``in_flight`` clears the mark; so does a replay."""

    async def finish(
        self,
        delivery_id: str,
        *,
        worker: str,
        attempt: Attempt | None,
        state: DeliveryState,
        now: datetime,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        count_attempt: bool = True,
        waiting: str | None = None,
        fallback: NewDelivery | None = None,
    ) -> bool:
        """Record `attempt` (if any) and move a delivery this worker leases to `state`.

        `now` is the delivery's ``updated_at`` (and ``delivered_at`` when ``delivered``).
        ``state="pending"`` with `next_attempt_at` schedules a retry; ``count_attempt=False``
        puts it back without using up its retry schedule (shutdown, open circuit, rate limit).
        ``state="in_flight"`` records an intermediate try and keeps the lease.
        `waiting` replaces `Delivery.waiting` (``None`` clears it); ``delivered`` clears
        `Delivery.last_error`; any state but ``in_flight`` clears `Delivery.started_at`.
        `fallback` (with ``dead`` or ``skipped``) is created in the same commit, pending and
        due at `now`, with ``fallback_of`` naming this delivery; it takes the event, order and
        time of this one, and is not created when this delivery is itself a fallback or
        already has one.
        Returns False (and changes nothing) when the lease was lost to another worker.
        """

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        """`finish` for many deliveries in one commit: one flag per outcome, in order, False
        where the lease was lost (that outcome changed nothing, the others still apply).

        Each delivery appears at most once (`ValueError` otherwise).
        """

    async def renew(
        self, delivery_ids: Sequence[str], *, worker: str, now: datetime, lease_seconds: float
    ) -> set[str]:
        """Extend to ``now + lease_seconds`` the lease of each of these deliveries that
        `worker` still holds in flight; the ids renewed. The others were finished meanwhile,
        or their lease ran out and another worker took them."""

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        """Put matching ``dead`` deliveries back to ``pending`` now, with a fresh schedule."""

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        """Put one delivery (``dead``, ``skipped`` or ``superseded``) back to ``pending``.
        A replay (this or `replay`) clears `Delivery.started_at`: it is sent again."""

    async def next_due(self) -> datetime | None:
        """When the earliest pending delivery falls due (``None``: nothing pending)."""

    async def sink_counts(self, *, by_shop: bool = False) -> list[SinkCounts]:
        """Pending (or in flight) and dead deliveries of each sink that has any; with
        `by_shop`, one row per sink and shop (the metrics' ``shop`` label)."""

    # -- sinks switched off by an operator or by a 410 Gone ----------------------------------
    async def disable_sink(self, sink: str, *, reason: str, now: datetime) -> None: ...

    async def enable_sink(self, sink: str) -> bool: ...

    async def release_sink(self, sink: str, *, now: datetime) -> int:
        """Make a sink's pending deliveries due now and clear why they waited (the sink is back
        in the configuration, or its block changed); how many."""

    async def disabled_sinks(self) -> dict[str, str]:
        """Sink name -> reason."""


class WaitingGroup(msgspec.Struct, frozen=True, kw_only=True):
    """A group collecting its next message (`GroupStore.waiting_groups`)."""

    id: str
    route: str
    sink: str
    key: dict[str, str | None]
    """The route's ``group.by`` fields and the values this group's events share."""
    message_id: str
    """The delivery that will carry them."""
    events: int
    """Events in it so far."""
    due_at: datetime
    """When it goes (unless a replay or a released sink makes it due earlier)."""


class GroupStore(Protocol):
    """Grouped routes' groups (`gateway.delivery.grouping`): written by the intake's commit
    (`IngestStore.record_intake`), closed by the claim (`DeliveryQueue.claim`), read here."""

    async def waiting_groups(self) -> list[WaitingGroup]:
        """Every group collecting a message now, the soonest due first."""

    async def group_of(self, delivery_id: str) -> Group | None:
        """The events a grouped message carries, in the order they joined (a fallback: those of
        the message it stands in for); ``None`` for a delivery of one event, or none."""


class ContactBook(Protocol):
    """Contacts the shop registers (admin API, CSV import). Reading is `AdminReader.get_contact`,
    which answers the contact as the sinks see it: each field as the shop registered it, else
    as the last push or pulled answer gave it."""

    async def register_contacts(self, contacts: Sequence[Contact], *, now: datetime) -> int:
        """Register (or update) contacts by (order id, shop) in one commit; how many. A
        registered field wins over what a push says from then on; a ``None`` field keeps what
        is known."""

    async def delete_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> bool:
        """Forget the contact of a shop's order, whoever gave it (False: none was kept)."""


class AdminReader(Protocol):
    """What people look at: events, contacts, the push log, rejected bodies, deliveries."""

    async def list_events(self, query: EventQuery) -> EventPage:
        """Newest first."""

    async def get_event(self, event_id: str) -> Event | None: ...

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, tuple[Event, str | None]]:
        """The stored events among `ids`, each with the id of the log entry that produced it."""

    async def get_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> Contact | None:
        """The contact of a shop's order (contacts are kept per shop and order id)."""

    async def list_pushes(self, query: PushQuery) -> list[LoggedPush]:
        """Newest first."""

    async def get_push(self, push_id: str) -> LoggedPush | None: ...

    async def count_rejected(self, *, shops: Sequence[str] | None = None) -> int: ...

    async def list_rejected(
        self, *, limit: int = 100, shops: Sequence[str] | None = None
    ) -> list[StoredRejected]:
        """Newest first."""

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None: ...

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None: ...

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        """Newest first."""


PruneStep = Literal["deliveries", "events", "pushes", "rejected", "orders"]
"""One kind of row retention removes (with the rows that belong to it)."""

PRUNE_STEPS: tuple[PruneStep, ...] = ("deliveries", "events", "pushes", "rejected", "orders")


class Cutoffs(msgspec.Struct, frozen=True, kw_only=True):
    """What retention lets go: rows older than these times. ``None`` keeps that kind for ever.

    Never pruned whatever the times: pending and failed log entries, pending and in-flight
    deliveries, and an event while one of its deliveries is pending, in flight, or dead and
    not yet past `dead`.
    """

    pushes: datetime | None = None
    """``processed`` log entries received before it."""
    events: datetime | None = None
    """Events received before it; their remaining deliveries and attempts go with them."""
    delivered: datetime | None = None
    """``delivered``, ``superseded`` and ``skipped`` deliveries last changed before it, with
    their attempts."""
    dead: datetime | None = None
    """``dead`` deliveries last changed before it, with their attempts."""
    rejected: datetime | None = None
    """Rejected bodies received before it."""
    orders: datetime | None = None
    """Order facts (`gateway.store.facts`) whose latest stage time is before it (one with no
    stage time at all, e.g. only cancelled, whatever the time)."""


class Pruned(msgspec.Struct, frozen=True, kw_only=True):
    """Rows removed (or, from a dry run, that would be), per table."""

    pushes: int = 0
    events: int = 0
    deliveries: int = 0
    attempts: int = 0
    rejected: int = 0
    orders: int = 0

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            pushes=self.pushes + other.pushes,
            events=self.events + other.events,
            deliveries=self.deliveries + other.deliveries,
            attempts=self.attempts + other.attempts,
            rejected=self.rejected + other.rejected,
            orders=self.orders + other.orders,
        )

    def of(self, step: PruneStep) -> int:
        """The rows of the step's own table (those `RetentionStore.prune` limits)."""
        count: int = getattr(self, step)
        return count


class RetentionStore(Protocol):
    """Retention: old rows removed in small commits beside the traffic, and the store's size."""

    async def prune(self, step: PruneStep, cutoffs: Cutoffs, *, limit: int) -> Pruned:
        """Remove at most `limit` rows of the step's table (the rows that belong to them go
        too: a delivery's attempts, an event's deliveries and their attempts), oldest first,
        in ONE short commit. Fewer than `limit` of the step's rows removed: none are left."""

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        """What pruning every step until none is left would remove now; changes nothing."""

    async def size_bytes(self) -> int:
        """Bytes the store takes (SQLite: the file and its write-ahead log)."""


class SignedInSession(msgspec.Struct, frozen=True, kw_only=True):
    """A dashboard session as kept, so that every replica knows it and a restart keeps it."""

    key: str
    """What the session is known by: a keyed hash of the browser's cookie
    (`gateway.ui.session`), never the cookie itself."""
    csrf: str
    """The token every form of this session carries."""
    created_at: datetime
    used_at: datetime
    """Last use (at most a minute stale): the session ends 12 hours after it."""
    flash: str | None = None
    """A one-time notice for the next page (what an action did)."""
    token_mac: str | None = None
    """HMAC of the admin token that signed it in, keyed with the cookie (`gateway.ui.session`)."""


class SessionStore(Protocol):
    """The dashboard's sign-in sessions."""

    async def create_session(self, session: SignedInSession, *, expired_before: datetime) -> None:
        """Keep a new session, and forget every one last used before `expired_before`, in
        one commit (so expired sessions never pile up)."""

    async def get_session(self, key: str) -> SignedInSession | None: ...

    async def update_session(self, key: str, *, used_at: datetime, flash: str | None) -> bool:
        """Record a use and the session's notice; False when no such session is kept."""

    async def delete_session(self, key: str) -> bool:
        """Forget a session (signed out); False when none was kept."""


class DigestStore(Protocol):
    """Digests (`gateway.digests`): a window's counts, and each period sent once."""

    async def window_counts(
        self, *, start: datetime, end: datetime, limit: int = 20
    ) -> WindowCounts:
        """The events received in ``[start, end)`` by status, by courier, the stuck ones and
        the troubles by reason (each list at most `limit` long), and the deliveries that
        ended dead in it by sink."""

    async def last_digest(self, digest: str) -> datetime | None:
        """The latest period recorded for the digest (``None``: none yet)."""

    async def record_digest(
        self,
        digest: str,
        *,
        period: datetime | None,
        run: DigestRun | None,
        deliveries: Sequence[NewDelivery],
        now: datetime,
        forget_before: datetime | None = None,
    ) -> bool:
        """In one commit: claim `period` for the digest (it must be later than the one
        recorded, or none is), then keep `run` and create its `deliveries` (pending, due
        `now`). False, with nothing kept, when the period is claimed already (by another
        replica, or before a restart). ``period=None`` (a digest sent by hand) claims nothing
        and always keeps them; ``run=None`` only records the period (a first baseline).

        Runs of the digest kept from before `forget_before`, whose deliveries are all gone,
        are forgotten in the same commit."""


class Store(
    IngestStore,
    DeliveryQueue,
    AdminReader,
    ContactBook,
    RetentionStore,
    TrackingStore,
    InsightsStore,
    SessionStore,
    GroupStore,
    DigestStore,
    Protocol,
):
    """Every role on one backend, and its lifecycle. Every method is safe to call concurrently
    from one event loop."""

    async def open(self, *, now: datetime) -> None:
        """Connect and apply pending schema migrations (recorded as applied at `now`), then
        prove a write, as `ping` does."""

    async def close(self) -> None:
        """Finish queued writes and release connections."""

    async def ping(self, *, now: datetime) -> None:
        """Raise `gateway.errors.StoreError` unless a read and a write (of `now`) would
        succeed now."""
