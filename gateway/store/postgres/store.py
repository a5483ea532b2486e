"""`Store` on PostgreSQL, shared by every replica of Kabarin (psycopg 3, async, with a pool).

What several replicas need from it, and where it is done:

- the push log's append is group-committed (writer.py): appends that overlap share one
  transaction, as on SQLite;
- the intake leases pending pushes and records a batch with the entries locked (ingest.py), so
  an entry another intake finished meanwhile is not stored twice, and a push arriving at two
  replicas at once stores its events once;
- the dispatcher claims with ``FOR UPDATE SKIP LOCKED`` and an advisory lock per lane
  (queue.py), so at most one delivery of a lane is in flight across replicas; sinks switched
  off, sessions, the per-sink rate limit and circuit (controls.py) live in rows every replica
  reads;
- a commit that adds pushes or deliveries notifies a channel; `on_notify` calls back on every
  replica (`LISTEN` on a connection of its own, notify.py), so callers can wake at once and
  poll only as a fallback.

This module owns the pool, the lifecycle and the notifications; what each role does is an async
function of a connection in ingest.py, queue.py, reads.py, contacts.py, tracking.py, prune.py,
sessions.py, copying.py, controls.py and digests.py (as on SQLite), so nearly every method here
is one line handing such a job to a pooled connection (`_run`) or a transaction (`_tx`). Migrations
(schema.py) run at `open` under an advisory lock. Connections use UTC, so every time read back
is a UTC datetime.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

import psycopg
from psycopg_pool import AsyncConnectionPool

from gateway.delivery.model import (
    Attempt,
    Claimed,
    Delivery,
    DeliveryFilter,
    Group,
    NewDelivery,
)
from gateway.errors import StoreError, StoreRefused
from gateway.events import DEFAULT_SHOP, Contact, Event, EventKind, Status
from gateway.redaction import mask_url
from gateway.store.contact_merge import merge_contacts
from gateway.store.digests import DigestRun, WindowCounts
from gateway.store.facts import CourierFigures, OrderFacts, TransitHistory
from gateway.store.finishing import Finishing
from gateway.store.moving import Table
from gateway.store.postgres import contacts as contacts_
from gateway.store.postgres import (
    controls,
    copying,
    digests,
    groups,
    ingest,
    insights,
    prune,
    queue,
    reads,
    sessions,
    sql,
    tracking,
)
from gateway.store.postgres.notify import Channel, Listener
from gateway.store.postgres.rows import Conn
from gateway.store.postgres.schema import migrate
from gateway.store.postgres.writer import PushWriter
from gateway.store.roles import (
    Cutoffs,
    EventPage,
    EventQuery,
    Finished,
    IngestResult,
    LoggedPush,
    NewPush,
    Pruned,
    PruneStep,
    PushOutcome,
    PushQuery,
    PushState,
    RejectedRequest,
    SignedInSession,
    SinkCounts,
    StoredRejected,
    WaitingGroup,
)
from gateway.store.shared import CircuitGate
from gateway.store.tracking import PullClaim, TrackedOrder, TrackingCounts

__all__ = ["PostgresStore"]

T = TypeVar("T")


class PostgresStore(Finishing):
    """`Store` on one PostgreSQL database (and the schema its URL's search_path names)."""

    def __init__(
        self,
        url: str,
        *,
        min_connections: int = 1,
        max_connections: int = 10,
        connect_timeout: float = 10.0,
        intake_lease_seconds: float = 60.0,
        max_group: int = 512,
    ) -> None:
        self.url = url
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        """Holds this store's intake leases on the push log."""
        self.intake_lease_seconds = intake_lease_seconds
        self._connect_timeout = connect_timeout
        self._pool: AsyncConnectionPool[Conn] = AsyncConnectionPool(
            url,
            min_size=min_connections,
            max_size=max_connections,
            open=False,
            kwargs={"autocommit": True},
            configure=_configure,
            name="kabarin",
        )
        self._writer = PushWriter(self._pool, max_group=max_group)
        self._schema: str | None = None
        self._listener = Listener(url)

    @property
    def commits(self) -> int:
        """Push log transactions committed (appends that overlapped share one)."""
        return self._writer.commits

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self, *, now: datetime) -> None:
        where = mask_url(self.url)
        try:
            await self._pool.open(wait=True, timeout=self._connect_timeout)
        except psycopg.Error as exc:
            await self._pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {where}: {exc}") from exc
        try:
            async with self._conn() as conn:
                await migrate(conn, now=now)
                row = await (await conn.execute(sql.CURRENT_SCHEMA)).fetchone()
            if row is None or row[0] is None:
                raise StoreError(f"no schema of {where}'s search_path exists")
            self._schema = str(row[0])
            self._writer.start()
            await self.ping(now=now)
        except StoreError as exc:
            await self.close()
            raise StoreError(f"cannot use PostgreSQL at {where}: {exc}") from exc
        if self._listener.wanted:
            self._listener.start(self._schema)

    async def close(self) -> None:
        await self._writer.stop()
        await self._listener.stop()
        await self._pool.close()

    async def ping(self, *, now: datetime) -> None:
        async with self._conn() as conn:
            await conn.execute(sql.HEARTBEAT, (now,))
            await conn.execute(sql.CAN_READ)

    @contextlib.asynccontextmanager
    async def _conn(self) -> AsyncIterator[Conn]:
        try:
            async with self._pool.connection() as conn:
                yield conn
        except (psycopg.DataError, psycopg.IntegrityError) as exc:  # the rows, not the server
            raise StoreRefused(f"{type(exc).__name__}: {exc}") from exc
        except psycopg.Error as exc:  # PoolTimeout and PoolClosed are psycopg errors too
            raise StoreError(f"{type(exc).__name__}: {exc}") from exc

    async def _run(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        """Run a role module's job on a pooled connection, in autocommit."""
        async with self._conn() as conn:
            return await job(conn)

    async def _tx(self, job: Callable[[Conn], Awaitable[T]]) -> T:
        """Run a role module's job in one transaction."""
        async with self._conn() as conn, conn.transaction():
            return await job(conn)

    # -- notifications (notify.py) -------------------------------------------------------
    async def on_notify(self, channel: Channel, callback: Callable[[], None]) -> None:
        """Call `callback` whenever any replica commits new work of `channel`: ``pushes``
        (appended or put back to pending) or ``deliveries`` (created or replayed).

        Returns once this store listens (when it is open), so nothing committed afterwards
        is missed. After the listening connection is lost and made again, every callback is
        called once, for what may have been committed meanwhile. A notification only says
        "look now": callers keep polling as a fallback.
        """
        self._listener.add(channel, callback)
        if self._schema is None:
            return  # `open` starts listening
        self._listener.start(self._schema)
        await self._listener.listening()

    # -- the push log and the intake -----------------------------------------------------
    async def append_push(self, push: NewPush) -> None:
        await self._writer.append(push)

    async def reject(self, request: RejectedRequest) -> None:
        await self._run(lambda c: ingest.reject(c, request))

    async def pending_pushes(self, *, limit: int, now: datetime | None = None) -> list[LoggedPush]:
        """Lease the oldest pending entries to this store for `intake_lease_seconds`.

        Entries another replica holds are skipped until its lease ends; this store's own
        leases are handed out again (its intake retries a batch that failed to commit). The
        lease is measured from `now`, or the database's clock when the caller gives none.
        """
        lease = self.intake_lease_seconds
        return await self._run(
            lambda c: ingest.pending_pushes(c, owner=self.owner, now=now, lease=lease, limit=limit)
        )

    async def count_pending_pushes(self) -> int:
        return await self._run(ingest.count_pending)

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        return await self._tx(lambda c: ingest.record_intake(c, outcomes, now))

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        return await self._tx(lambda c: ingest.requeue_pushes(c, state=state, since=since, ids=ids))

    # -- reading -------------------------------------------------------------------------
    async def list_pushes(self, query: PushQuery) -> list[LoggedPush]:
        return await self._run(lambda c: reads.list_pushes(c, query))

    async def get_push(self, push_id: str) -> LoggedPush | None:
        return await self._run(lambda c: reads.get_push(c, push_id))

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, tuple[Event, str | None]]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        return await self._run(lambda c: reads.events_by_id(c, wanted))

    async def list_events(self, query: EventQuery) -> EventPage:
        return await self._run(lambda c: reads.list_events(c, query))

    async def get_event(self, event_id: str) -> Event | None:
        return await self._run(lambda c: reads.get_event(c, event_id))

    async def get_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> Contact | None:
        return await self._run(lambda c: reads.get_contact(c, order_id, shop))

    async def count_rejected(self, *, shops: Sequence[str] | None = None) -> int:
        return await self._run(lambda c: reads.count_rejected(c, shops))

    async def list_rejected(
        self, *, limit: int = 100, shops: Sequence[str] | None = None
    ) -> list[StoredRejected]:
        return await self._run(lambda c: reads.list_rejected(c, limit, shops))

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None:
        return await self._run(lambda c: reads.get_rejected(c, rejected_id))

    async def delete_rejected(self, rejected_id: int) -> bool:
        return await self._run(lambda c: reads.delete_rejected(c, rejected_id))

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        return await self._run(lambda c: reads.get_delivery(c, delivery_id))

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        return await self._run(lambda c: reads.list_deliveries(c, query))

    async def waiting_groups(self) -> list[WaitingGroup]:
        return await self._run(groups.waiting_groups)

    async def group_of(self, delivery_id: str) -> Group | None:
        return await self._run(lambda c: groups.group_of(c, delivery_id))

    # -- contacts the shop registers -----------------------------------------------------
    async def register_contacts(self, contacts: Sequence[Contact], *, now: datetime) -> int:
        if not contacts:
            return 0
        rows = merge_contacts(contacts)
        await self._tx(lambda c: contacts_.register(c, rows, now))
        return len(contacts)

    async def delete_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> bool:
        return await self._run(lambda c: contacts_.delete(c, order_id, shop))

    # -- the dispatcher ------------------------------------------------------------------
    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> Claimed:
        return await self._tx(
            lambda c: queue.claim(
                c, worker=worker, now=now, limit=limit, lease_seconds=lease_seconds
            )
        )

    async def start(self, delivery_ids: Sequence[str], *, worker: str, now: datetime) -> set[str]:
        if not delivery_ids:
            return set()
        return await self._run(lambda c: queue.start(c, delivery_ids, worker=worker, now=now))

    async def renew(
        self, delivery_ids: Sequence[str], *, worker: str, now: datetime, lease_seconds: float
    ) -> set[str]:
        if not delivery_ids:
            return set()
        return await self._run(
            lambda c: queue.renew(
                c, delivery_ids, worker=worker, now=now, lease_seconds=lease_seconds
            )
        )

    async def _finish_one(self, outcome: Finished, *, worker: str) -> bool:
        return await self._run(lambda c: queue.finish_one(c, outcome, worker=worker))

    async def _finish_batch(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        return await self._tx(lambda c: queue.finish_batch(c, outcomes, worker=worker))

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        return await self._tx(lambda c: queue.replay(c, query, now))

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        return await self._tx(lambda c: queue.replay_one(c, delivery_id, now))

    async def next_due(self) -> datetime | None:
        return await self._run(queue.next_due)

    async def sink_counts(self, *, by_shop: bool = False) -> list[SinkCounts]:
        return await self._run(lambda c: queue.sink_counts(c, by_shop))

    # -- sinks switched off, for every replica -------------------------------------------
    async def disable_sink(self, sink: str, *, reason: str, now: datetime) -> None:
        await self._run(lambda c: queue.disable_sink(c, sink, reason, now))

    async def enable_sink(self, sink: str) -> bool:
        return await self._tx(lambda c: queue.enable_sink(c, sink))

    async def disabled_sinks(self) -> dict[str, str]:
        return await self._run(queue.disabled_sinks)

    async def release_sink(self, sink: str, *, now: datetime) -> int:
        return await self._tx(lambda c: queue.release_sink(c, sink, now))

    # -- the dashboard's sessions, for every replica --------------------------------------
    async def create_session(self, session: SignedInSession, *, expired_before: datetime) -> None:
        await self._tx(lambda c: sessions.create(c, session, expired_before))

    async def get_session(self, key: str) -> SignedInSession | None:
        return await self._run(lambda c: sessions.get(c, key))

    async def update_session(self, key: str, *, used_at: datetime, flash: str | None) -> bool:
        return await self._run(lambda c: sessions.update(c, key, used_at, flash))

    async def delete_session(self, key: str) -> bool:
        return await self._run(lambda c: sessions.delete(c, key))

    # -- moving a store (`Portable`) -----------------------------------------------------
    async def export_rows(
        self, table: Table, *, after: int | str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int | str | None]:
        return await self._run(lambda c: copying.export_rows(c, table, after, limit))

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        return await self._tx(lambda c: copying.import_rows(c, table, rows))

    # -- per-sink controls shared by every replica (`SinkControlStore`) ------------------
    async def take_rate_slot(
        self, sink: str, *, interval: float, burst: int, max_wait: float, now: datetime
    ) -> float | None:
        return await self._run(
            lambda c: controls.take_rate_slot(
                c, sink, interval=interval, burst=burst, max_wait=max_wait, now=now
            )
        )

    async def defer_rate_slot(self, sink: str, *, interval: float, now: datetime) -> float:
        return await self._run(
            lambda c: controls.defer_rate_slot(c, sink, interval=interval, now=now)
        )

    async def circuit_opens_in(self, sink: str, *, now: datetime) -> float:
        return await self._run(lambda c: controls.circuit_opens_in(c, sink, now=now))

    async def circuit_admit(self, sink: str, *, now: datetime, probe_lease: float) -> CircuitGate:
        return await self._run(
            lambda c: controls.circuit_admit(c, sink, now=now, probe_lease=probe_lease)
        )

    async def circuit_record(
        self,
        sink: str,
        *,
        ok: bool,
        now: datetime,
        threshold: int,
        cooldown: float,
        max_cooldown: float,
    ) -> Literal["closed", "half-open", "open"]:
        return await self._run(
            lambda c: controls.circuit_record(
                c,
                sink,
                ok=ok,
                now=now,
                threshold=threshold,
                cooldown=cooldown,
                max_cooldown=max_cooldown,
            )
        )

    async def circuit_release_probe(self, sink: str) -> None:
        await self._run(lambda c: controls.circuit_release_probe(c, sink))

    # -- retention -----------------------------------------------------------------------
    async def prune(self, step: PruneStep, cutoffs: Cutoffs, *, limit: int) -> Pruned:
        return await self._run(lambda c: prune.prune(c, step, cutoffs, limit))

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        return await self._run(lambda c: prune.count_prunable(c, cutoffs))

    async def size_bytes(self) -> int:
        return await self._run(prune.size_bytes)

    # -- the pull tracker's orders -------------------------------------------------------
    async def track_orders(
        self,
        orders: Sequence[tuple[str, EventKind]],
        *,
        now: datetime,
        shop: str = DEFAULT_SHOP,
    ) -> int:
        if not orders:
            return 0
        return await self._run(lambda c: tracking.track_orders(c, orders, now, shop))

    async def claim_pulls(self, claim: PullClaim) -> list[TrackedOrder]:
        return await self._run(lambda c: tracking.claim_pulls(c, claim))

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
        await self._run(
            lambda c: tracking.finish_pull(
                c,
                order_id,
                shop=shop,
                now=now,
                next_pull_at=next_pull_at,
                answered=answered,
                asked=asked,
                gone=gone,
            )
        )

    async def claim_stuck(
        self, after: Mapping[Status, float], *, now: datetime, limit: int
    ) -> list[TrackedOrder]:
        if not after:
            return []
        return await self._run(lambda c: tracking.claim_stuck(c, after, now, limit))

    async def known_statuses(
        self, order_id: str, *, shop: str = DEFAULT_SHOP
    ) -> set[tuple[Status, str | None]]:
        return await self._run(lambda c: tracking.known_statuses(c, order_id, shop))

    async def last_push_at(self, *, shop: str | None = None) -> datetime | None:
        return await self._run(lambda c: tracking.last_push_at(c, shop))

    async def get_tracking(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> TrackedOrder | None:
        return await self._run(lambda c: tracking.get_tracking(c, order_id, shop))

    async def tracking_counts(self) -> TrackingCounts:
        return await self._run(tracking.tracking_counts)

    async def oldest_due_pull(self, *, now: datetime, stale_after: float) -> datetime | None:
        return await self._run(lambda c: tracking.oldest_due_pull(c, now, stale_after))

    # -- insights (insights.py) ----------------------------------------------------------
    async def order_facts(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> OrderFacts | None:
        return await self._run(lambda c: insights.order_facts(c, order_id, shop))

    async def transit_history(
        self, *, shop: str, courier: str, product: str, destination: str = ""
    ) -> TransitHistory:
        return await self._run(
            lambda c: insights.transit_history(c, shop, courier, product, destination)
        )

    async def courier_figures(
        self,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        by_destination: bool = False,
    ) -> list[CourierFigures]:
        return await self._run(lambda c: insights.courier_figures(c, since, shops, by_destination))

    async def courier_orders(
        self,
        courier: str,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        product: str | None = None,
        limit: int = 200,
    ) -> list[OrderFacts]:
        return await self._run(
            lambda c: insights.courier_orders(c, courier, since, shops, product, limit)
        )

    # -- digests (digests.py) ------------------------------------------------------------
    async def window_counts(
        self, *, start: datetime, end: datetime, limit: int = 20
    ) -> WindowCounts:
        return await self._tx(lambda c: digests.window_counts(c, start, end, limit))

    async def last_digest(self, digest: str) -> datetime | None:
        return await self._run(lambda c: digests.last_digest(c, digest))

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
        return await self._tx(
            lambda c: digests.record_digest(c, digest, period, run, deliveries, now, forget_before)
        )


async def _configure(conn: Conn) -> None:
    await conn.execute(sql.SET_UTC)
