"""`Store` on PostgreSQL, shared by every replica of Kabarin (psycopg 3, async, with a pool).

What several replicas need from it, and where it is done:

- the push log's append is group-committed (writer.py): appends that overlap share one
  transaction, as on SQLite;
- the intake claims pending pushes with ``FOR UPDATE SKIP LOCKED`` and a lease
  (`pending_pushes`), and `record_intake` locks the entries it records, so an entry another
  intake finished meanwhile is not stored twice; events are inserted ``ON CONFLICT DO NOTHING``,
  so a push arriving at two replicas at once stores its events once;
- the dispatcher claims with ``FOR UPDATE SKIP LOCKED`` on the due rows and a transaction-scoped
  advisory lock per lane (sink, order), so one claimer at a time decides a lane and at most one
  of its deliveries is in flight across replicas; the ordering rules are `gateway.store.lanes`;
- sinks switched off live in ``sink_state``, read by every replica's claim;
- a commit that adds pushes or deliveries notifies a channel; `on_notify` calls back on every
  replica (`LISTEN` on a connection of its own), so callers can wake at once and poll only as a
  fallback.

Migrations (schema.py) run at `open` under an advisory lock. Connections use UTC, so every time
read back is a UTC datetime.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import msgspec
import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Attempt,
    Claim,
    Claimed,
    Delivery,
    DeliveryFilter,
    DeliveryState,
    NewDelivery,
)
from gateway.errors import StoreError, StoreRefused
from gateway.events import TERMINAL_STATUSES, Contact, Event, EventKind, Status
from gateway.redaction import mask_url
from gateway.store.lanes import plan_claims, rank
from gateway.store.moving import Table
from gateway.store.postgres import sql
from gateway.store.postgres.schema import migrate
from gateway.store.postgres.writer import PushWriter
from gateway.store.records import Records, contact_from_row
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
    PullClaim,
    PushOutcome,
    PushQuery,
    PushState,
    RejectedRequest,
    SignedInSession,
    SinkCounts,
    StoredEvent,
    StoredRejected,
    TrackedOrder,
    TrackingCounts,
)
from gateway.store.shared import CircuitGate

__all__ = ["Channel", "PostgresStore"]

log = logging.getLogger("kabarin.store")

Channel = Literal["pushes", "deliveries"]
"""What `PostgresStore.on_notify` reports: new pending pushes, or deliveries to claim."""

_CHANNELS: dict[str, Channel] = {
    sql.PUSHES_CHANNEL: "pushes",
    sql.DELIVERIES_CHANNEL: "deliveries",
}

Conn = psycopg.AsyncConnection[TupleRow]

_decode_event = msgspec.json.Decoder(Event).decode
_encode = msgspec.json.Encoder().encode


class PostgresStore:
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
        self._callbacks: dict[Channel, list[Callable[[], None]]] = {
            "pushes": [],
            "deliveries": [],
        }
        self._listener: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

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
        if any(self._callbacks.values()):
            self._start_listener()

    async def close(self) -> None:
        await self._writer.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
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

    async def _all(self, query: str, params: Sequence[Any] | None = None) -> list[TupleRow]:
        async with self._conn() as conn:
            return await (await conn.execute(query, params)).fetchall()

    async def _one(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> TupleRow | None:
        async with self._conn() as conn:
            return await (await conn.execute(query, params)).fetchone()

    async def _count(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> int:
        async with self._conn() as conn:
            return (await conn.execute(query, params)).rowcount

    # -- notifications -------------------------------------------------------------------
    async def on_notify(self, channel: Channel, callback: Callable[[], None]) -> None:
        """Call `callback` whenever any replica commits new work of `channel`: ``pushes``
        (appended or put back to pending) or ``deliveries`` (created or replayed).

        Returns once this store listens (when it is open), so nothing committed afterwards
        is missed. After the listening connection is lost and made again, every callback is
        called once, for what may have been committed meanwhile. A notification only says
        "look now": callers keep polling as a fallback.
        """
        self._callbacks[channel].append(callback)
        if self._schema is None:
            return  # `open` starts listening
        self._start_listener()
        await self._listening.wait()

    def _start_listener(self) -> None:
        if self._listener is None:
            self._listener = asyncio.create_task(self._listen(), name="kabarin-pg-listen")

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(sql.LISTEN_PUSHES)
                    await conn.execute(sql.LISTEN_DELIVERIES)
                    if self._listening.is_set() or backoff > 0.5:
                        self._fire(*self._callbacks)  # news may have been missed meanwhile
                    self._listening.set()
                    backoff = 0.5
                    async for note in conn.notifies():
                        channel = _CHANNELS.get(note.channel)
                        if channel is not None and note.payload == self._schema:
                            self._fire(channel)
            except psycopg.Error as exc:
                log.warning("PostgreSQL notifications lost, listening again: %s", exc)
            self._listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _fire(self, *channels: Channel) -> None:
        for channel in channels:
            for callback in self._callbacks[channel]:
                try:
                    callback()
                except Exception:
                    log.exception("a %s notification callback failed", channel)

    # -- the push log and the intake -----------------------------------------------------
    async def append_push(self, push: NewPush) -> None:
        await self._writer.append(push)

    async def reject(self, request: RejectedRequest) -> None:
        async with self._conn() as conn:
            if request.replaces is not None:
                # A replay keeps the body's first arrival time: only the verdict changes.
                await conn.execute(sql.UPDATE_REJECTED, (request.reason, request.replaces))
                return
            await conn.execute(
                sql.INSERT_REJECTED,
                (request.received_at, request.reason, request.body, request.content_type),
            )

    async def pending_pushes(self, *, limit: int, now: datetime | None = None) -> list[LoggedPush]:
        """Lease the oldest pending entries to this store for `intake_lease_seconds`.

        Entries another replica holds are skipped until its lease ends; this store's own
        leases are handed out again (its intake retries a batch that failed to commit). The
        lease is measured from `now`, or the database's clock when the caller gives none.
        """
        rows = await self._all(
            sql.CLAIM_PUSHES,
            {
                "owner": self.owner,
                "now": now,
                "lease": self.intake_lease_seconds,
                "limit": limit,
            },  # type: ignore[arg-type]
        )
        return sorted((_push(r) for r in rows), key=lambda p: p.seq)

    async def count_pending_pushes(self) -> int:
        row = await self._one(sql.COUNT_PENDING_PUSHES)
        return 0 if row is None else int(row[0])

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        async with self._conn() as conn, conn.transaction():
            return await _record_intake(conn, outcomes, now)

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        statement, params = sql.requeue_pushes(state, since, ids)
        async with self._conn() as conn, conn.transaction():
            count = (await conn.execute(statement, params)).rowcount
            if count:
                await conn.execute(sql.NOTIFY, (sql.PUSHES_CHANNEL,))
        return count

    # -- reading -------------------------------------------------------------------------
    async def list_pushes(self, query: PushQuery) -> list[LoggedPush]:
        statement, params = sql.list_pushes(query)
        return [_push(r) for r in await self._all(statement, params)]

    async def get_push(self, push_id: str) -> LoggedPush | None:
        row = await self._one(sql.GET_PUSH, (push_id,))
        return None if row is None else _push(row)

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, tuple[Event, str | None]]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        rows = await self._all(sql.EVENTS_BY_ID, (wanted,))
        return {r[0]: (_decode_event(r[1]), r[2]) for r in rows}

    async def list_events(self, query: EventQuery) -> EventPage:
        statement, params = sql.list_events(query)
        rows = await self._all(statement, params)
        items = [StoredEvent(seq=r[0], event=_decode_event(r[1])) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return EventPage(items=items, next_cursor=items[-1].seq if more and items else None)

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._one(sql.GET_EVENT, (event_id,))
        return None if row is None else _decode_event(row[0])

    async def get_contact(self, order_id: str) -> Contact | None:
        row = await self._one(sql.GET_CONTACT, (order_id,))
        return None if row is None else _contact(row)

    async def count_rejected(self) -> int:
        row = await self._one(sql.COUNT_REJECTED)
        return 0 if row is None else int(row[0])

    async def list_rejected(self, *, limit: int = 100) -> list[StoredRejected]:
        return [_rejected(r) for r in await self._all(sql.LIST_REJECTED, (limit,))]

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None:
        row = await self._one(sql.GET_REJECTED, (rejected_id,))
        return None if row is None else _rejected(row)

    async def delete_rejected(self, rejected_id: int) -> bool:
        return await self._count(sql.DELETE_REJECTED, (rejected_id,)) == 1

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        async with self._conn() as conn:
            row = await (await conn.execute(sql.GET_DELIVERY, (delivery_id,))).fetchone()
            if row is None:
                return None
            attempts = await (await conn.execute(sql.ATTEMPTS_OF, (delivery_id,))).fetchall()
        return _delivery(row), [_attempt(a) for a in attempts]

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        statement, params = sql.list_deliveries(query)
        return [_delivery(r) for r in await self._all(statement, params)]

    # -- the dispatcher ------------------------------------------------------------------
    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> Claimed:
        async with self._conn() as conn, conn.transaction():
            return await _claim(
                conn, worker=worker, now=now, limit=limit, lease_seconds=lease_seconds
            )

    async def start(self, delivery_ids: Sequence[str], *, worker: str, now: datetime) -> set[str]:
        if not delivery_ids:
            return set()
        params = {"now": now, "ids": list(delivery_ids), "worker": worker}
        async with self._conn() as conn:
            rows = await (await conn.execute(sql.START, params)).fetchall()
        return {r[0] for r in rows}

    async def renew(
        self, delivery_ids: Sequence[str], *, worker: str, now: datetime, lease_seconds: float
    ) -> set[str]:
        if not delivery_ids:
            return set()
        until = now + timedelta(seconds=lease_seconds)
        params = {"until": until, "ids": list(delivery_ids), "worker": worker}
        async with self._conn() as conn:
            rows = await (await conn.execute(sql.RENEW, params)).fetchall()
        return {r[0] for r in rows}

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
        outcome = Finished(
            delivery_id=delivery_id,
            attempt=attempt,
            state=state,
            now=now,
            next_attempt_at=next_attempt_at,
            error=error,
            count_attempt=count_attempt,
            waiting=waiting,
        )
        row = await self._one(sql.FINISH, _finish_params(outcome, worker, fallback))
        return row is not None and int(row[0]) == 1

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        ids = [o.delivery_id for o in outcomes]
        if len(set(ids)) != len(ids):
            raise ValueError("finish_many: a delivery appears more than once")
        if not outcomes:
            return []
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            await cur.executemany(
                sql.FINISH,
                [_finish_params(o, worker, getattr(o, "fallback", None)) for o in outcomes],
                returning=True,
            )
            done: list[bool] = []
            while True:
                row = await cur.fetchone()
                done.append(row is not None and int(row[0]) == 1)
                if not cur.nextset():
                    break
        return done

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        statement, params = sql.replay(query, now)
        return await self._requeue_deliveries(statement, params)

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        return await self._requeue_deliveries(sql.REPLAY_ONE, [now, now, delivery_id]) == 1

    async def _requeue_deliveries(self, statement: str, params: Sequence[Any]) -> int:
        async with self._conn() as conn, conn.transaction():
            count = (await conn.execute(statement, params)).rowcount
            if count:
                await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
        return count

    async def next_due(self) -> datetime | None:
        row = await self._one(sql.NEXT_DUE)
        return None if row is None else row[0]

    async def sink_counts(self) -> list[SinkCounts]:
        return [
            SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2]))
            for r in await self._all(sql.SINK_COUNTS)
        ]

    # -- sinks switched off, for every replica -------------------------------------------
    async def disable_sink(self, sink: str, *, reason: str, now: datetime) -> None:
        async with self._conn() as conn:
            await conn.execute(sql.DISABLE_SINK, (sink, _text(reason), now))

    async def enable_sink(self, sink: str) -> bool:
        async with self._conn() as conn, conn.transaction():
            enabled = (await conn.execute(sql.ENABLE_SINK, (sink,))).rowcount == 1
            if enabled:  # its deliveries can be claimed again
                await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
        return enabled

    async def disabled_sinks(self) -> dict[str, str]:
        return {r[0]: r[1] for r in await self._all(sql.DISABLED_SINKS)}

    async def release_sink(self, sink: str, *, now: datetime) -> int:
        return await self._requeue_deliveries(sql.RELEASE_SINK, {"sink": sink, "now": now})  # type: ignore[arg-type]

    # -- the dashboard's sessions, for every replica ------------------------------------------
    async def create_session(self, session: SignedInSession, *, expired_before: datetime) -> None:
        async with self._conn() as conn, conn.transaction():
            await conn.execute(sql.EXPIRE_SESSIONS, (expired_before,))
            await conn.execute(
                sql.CREATE_SESSION,
                (session.key, session.csrf, session.created_at, session.used_at, session.flash),
            )

    async def get_session(self, key: str) -> SignedInSession | None:
        row = await self._one(sql.GET_SESSION, (key,))
        if row is None:
            return None
        return SignedInSession(
            key=row[0], csrf=row[1], created_at=row[2], used_at=row[3], flash=row[4]
        )

    async def update_session(self, key: str, *, used_at: datetime, flash: str | None) -> bool:
        return await self._count(sql.UPDATE_SESSION, (used_at, _text(flash), key)) == 1

    async def delete_session(self, key: str) -> bool:
        return await self._count(sql.DELETE_SESSION, (key,)) == 1

    # -- moving a store (`Portable`) -----------------------------------------------------
    async def export_rows(
        self, table: Table, *, after: int | str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int | str | None]:
        key_type = "bigint" if table.key in ("seq", "id") else "text"
        statement = sql.copy_out(table.name, table.key, key_type, table.columns)
        found = await self._all(statement, {"after": after, "limit": limit})  # type: ignore[arg-type]
        rows = [tuple(_bytes(v) for v in r[1:]) for r in found]
        return rows, (found[-1][0] if len(found) == limit else None)

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        async with self._conn() as conn, conn.transaction(), conn.cursor() as cur:
            if table.name == "attempts":
                params = [dict(zip(table.columns, row, strict=True)) for row in rows]
                await cur.executemany(sql.COPY_IN_ATTEMPT, params)
            else:
                await cur.executemany(sql.copy_in(table.name, table.columns), rows)
            copied = max(cur.rowcount, 0)  # summed over the rows by executemany
            # The pull tracker follows the orders of copied events and contacts, as it does
            # those the intake stores.
            if table.name == "events":
                await conn.execute(sql.TRACK_COPIED_EVENTS, ([r[0] for r in rows],))
            elif table.name == "contacts":
                now = datetime.now(UTC)
                await conn.execute(sql.TRACK_CONTACTS, (now, [r[0] for r in rows]))
            return copied

    # -- per-sink controls shared by every replica (`SinkControlStore`) ------------------
    async def take_rate_slot(
        self, sink: str, *, interval: float, burst: int, max_wait: float, now: datetime
    ) -> float | None:
        params = {
            "sink": sink,
            "now": now,
            "interval": interval,
            "ahead": (burst - 1) * interval,
            "max_wait": max_wait,
        }
        row = await self._one(sql.TAKE_RATE_SLOT, params)
        return None if row is None else max(0.0, float(row[0]))

    async def defer_rate_slot(self, sink: str, *, interval: float, now: datetime) -> float:
        params = {"sink": sink, "now": now, "interval": interval}
        row = await self._one(sql.DEFER_RATE_SLOT, params)
        return 0.0 if row is None else max(0.0, float(row[0]))

    async def circuit_opens_in(self, sink: str, *, now: datetime) -> float:
        row = await self._one(sql.CIRCUIT_OPENS_IN, {"sink": sink, "now": now})
        return 0.0 if row is None else max(0.0, float(row[0]))

    async def circuit_admit(self, sink: str, *, now: datetime, probe_lease: float) -> CircuitGate:
        row = await self._one(sql.CIRCUIT_OF, (sink,))
        if row is None or row[0] is None:
            return CircuitGate(allowed=True)  # closed: a read, no lock
        async with self._conn() as conn, conn.transaction():
            await conn.execute(sql.ENSURE_SINK_CONTROLS, (sink,))
            row = await (await conn.execute(sql.LOCK_CIRCUIT, (sink,))).fetchone()
            open_until, probe_until = row if row is not None else (None, None)
            if open_until is None:
                return CircuitGate(allowed=True)
            if open_until > now:
                return CircuitGate(allowed=False, opens_in=(open_until - now).total_seconds())
            if probe_until is not None and probe_until > now:
                return CircuitGate(allowed=False)  # another replica's probe is out
            await conn.execute(sql.TAKE_PROBE, (now + timedelta(seconds=probe_lease), sink))
            return CircuitGate(allowed=True, probe=True)

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
        if ok:
            await self._count(sql.CIRCUIT_SUCCESS, (sink,))
            return "closed"
        params = {
            "sink": sink,
            "now": now,
            "threshold": threshold,
            "cooldown": cooldown,
            "max_cooldown": max_cooldown,
        }
        row = await self._one(sql.CIRCUIT_FAILURE, params)
        open_until = None if row is None else row[0]
        if open_until is None:
            return "closed"
        return "open" if open_until > now else "half-open"

    async def circuit_release_probe(self, sink: str) -> None:
        await self._count(sql.RELEASE_PROBE, (sink,))

    # -- retention -----------------------------------------------------------------------
    async def prune(self, step: PruneStep, cutoffs: Cutoffs, *, limit: int) -> Pruned:
        params = {**_cutoff_params(cutoffs), "limit": limit}
        if step == "deliveries":
            row = await self._one(sql.PRUNE_DELIVERIES, params)
            return Pruned() if row is None else Pruned(deliveries=row[1], attempts=row[2])
        if step == "events":
            row = await self._one(sql.PRUNE_EVENTS, params)
            if row is None:
                return Pruned()
            return Pruned(events=row[0], deliveries=row[1], attempts=row[2])
        statement = sql.PRUNE_PUSHES if step == "pushes" else sql.PRUNE_REJECTED
        row = await self._one(statement, params)
        removed = 0 if row is None else int(row[0])
        return Pruned(pushes=removed) if step == "pushes" else Pruned(rejected=removed)

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        row = await self._one(sql.COUNT_PRUNABLE, _cutoff_params(cutoffs))
        if row is None:
            return Pruned()
        events, deliveries, attempts, pushes, rejected = (int(v) for v in row)
        return Pruned(
            pushes=pushes,
            events=events,
            deliveries=deliveries,
            attempts=attempts,
            rejected=rejected,
        )

    async def size_bytes(self) -> int:
        row = await self._one(sql.SIZE_BYTES)
        return 0 if row is None else int(row[0])

    # -- the pull tracker's orders -------------------------------------------------------
    async def track_orders(self, orders: Sequence[tuple[str, EventKind]], *, now: datetime) -> int:
        if not orders:
            return 0
        return await self._count(
            sql.TRACK_ORDERS, (now, [o for o, _ in orders], [k for _, k in orders])
        )

    async def claim_pulls(self, claim: PullClaim) -> list[TrackedOrder]:
        params = {
            "now": claim.now,
            "lease": claim.now + timedelta(seconds=claim.lease_seconds),
            "stale_before": claim.stale_before,
            "pulled_before": claim.pulled_before,
            "asked_before": claim.asked_before,
            "limit": claim.limit,
        }
        rows = await self._all(sql.CLAIM_PULLS, params)  # type: ignore[arg-type]
        return _least_recently_asked_first(rows)

    async def finish_pull(
        self,
        order_id: str,
        *,
        now: datetime,
        next_pull_at: datetime,
        answered: bool = True,
        asked: bool = True,
        gone: str | None = None,
    ) -> None:
        params = {
            "next": next_pull_at,
            "answered": answered,
            "asked": asked,
            "now": now,
            "gone": gone,
            "order_id": order_id,
        }
        async with self._conn() as conn:
            await conn.execute(sql.FINISH_PULL, params)

    async def claim_stuck(
        self, after: Mapping[Status, float], *, now: datetime, limit: int
    ) -> list[TrackedOrder]:
        if not after:
            return []
        statuses = [str(s) for s in after]
        seconds = [float(after[s]) for s in after]
        rows = await self._all(sql.CLAIM_STUCK, (statuses, seconds, now, limit))
        return _oldest_first(rows)

    async def known_statuses(self, order_id: str) -> set[tuple[Status, str | None]]:
        return {(Status(r[0]), r[1]) for r in await self._all(sql.KNOWN_STATUSES, (order_id,))}

    async def last_push_at(self) -> datetime | None:
        row = await self._one(sql.LAST_PUSH_AT)
        return None if row is None else row[0]

    async def get_tracking(self, order_id: str) -> TrackedOrder | None:
        row = await self._one(sql.GET_TRACKING, (order_id,))
        return None if row is None else _tracked(row)

    async def tracking_counts(self) -> TrackingCounts:
        row = await self._one(sql.TRACKING_COUNTS)
        return (
            TrackingCounts(open=int(row[0]), stuck=int(row[1]))
            if row
            else TrackingCounts(open=0, stuck=0)
        )

    async def oldest_due_pull(self, *, now: datetime, stale_after: float) -> datetime | None:
        row = await self._one(sql.OLDEST_DUE_PULL, {"now": now, "stale": stale_after})
        return None if row is None else row[0]

    # -- contacts the shop registers -----------------------------------------------------
    async def register_contacts(self, contacts: Sequence[Contact], *, now: datetime) -> int:
        if not contacts:
            return 0
        # One row per order (a statement may not update a row twice): a later field that is
        # not None wins, as registering them one after the other would leave it.
        merged: dict[str, Contact] = {}
        for c in contacts:
            known = merged.get(c.order_id)
            merged[c.order_id] = c if known is None else _merged(known, c)
        rows = [merged[k] for k in sorted(merged)]
        async with self._conn() as conn, conn.transaction():
            await conn.execute(sql.TRACK_CONTACTS, (now, [c.order_id for c in rows]))
            await conn.execute(
                sql.REGISTER_CONTACTS,
                (
                    [c.order_id for c in rows],
                    [c.name for c in rows],
                    [c.phone for c in rows],
                    [c.email for c in rows],
                    [c.language for c in rows],
                    now,
                ),
            )
        return len(contacts)

    async def delete_contact(self, order_id: str) -> bool:
        return await self._count(sql.DELETE_CONTACT, (order_id,)) == 1


async def _configure(conn: Conn) -> None:
    await conn.execute(sql.SET_UTC)


async def _record_intake(
    conn: Conn, outcomes: Sequence[PushOutcome], now: datetime
) -> list[IngestResult]:
    """Store a batch's events, the new events' deliveries and the contacts, and mark every
    entry processed or failed (one transaction, the caller's); one result per outcome."""
    # Entries another intake (a replica whose lease ran out, `kabarin reprocess`) finished
    # while this batch was being normalised are theirs: locking them waits for that intake's
    # commit, then shows its verdict.
    ids = [o.push_id for o in outcomes]
    locked = await (await conn.execute(sql.LOCK_PUSHES, (ids,))).fetchall()
    taken = {r[0] for r in locked if r[1] != "pending"}
    mine_outcomes = [o for o in outcomes if o.push_id not in taken]
    owner: dict[str, str] = {}  # event id -> the first entry of the batch that carries it
    events: dict[str, Event] = {}
    for outcome in mine_outcomes:
        for e in outcome.events:
            if e.id not in owner:
                owner[e.id] = outcome.push_id
                events[e.id] = e
    new: set[str] = set()
    if events:
        # Sorted, so two intakes inserting overlapping events lock them in the same order.
        rows = [events[i] for i in sorted(events)]
        cur = await conn.execute(
            sql.INSERT_EVENTS,
            (
                [e.id for e in rows],
                [e.order_id for e in rows],
                [str(e.status) for e in rows],
                [e.method for e in rows],
                [e.occurred_at for e in rows],
                [e.received_at for e in rows],
                [_encode(e).decode() for e in rows],
                [owner[e.id] for e in rows],
            ),
        )
        new = {r[0] for r in await cur.fetchall()}

    # In arrival order: their seq is the order `ordering: all` sends them in.
    chosen = [
        d
        for outcome in mine_outcomes
        for d in outcome.deliveries
        if d.event_id in new and owner[d.event_id] == outcome.push_id
    ]
    created: dict[str, int] = {}
    if chosen:
        ranks = {i: rank(events[i]) for i in {d.event_id for d in chosen}}
        await conn.execute(
            sql.INSERT_DELIVERIES,
            (
                [d.id for d in chosen],
                [d.event_id for d in chosen],
                [d.route for d in chosen],
                [d.sink for d in chosen],
                [events[d.event_id].order_id for d in chosen],
                [events[d.event_id].occurred_at for d in chosen],
                [d.ordering for d in chosen],
                [d.template for d in chosen],
                [ranks[d.event_id][0] for d in chosen],
                [int(ranks[d.event_id][1]) for d in chosen],
                now,
            ),
        )
        for d in chosen:
            created[owner[d.event_id]] = created.get(owner[d.event_id], 0) + 1
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))

    contacts = [
        (c.order_id, c.name, c.phone, c.email, now) for o in mine_outcomes for c in o.contacts
    ]
    if contacts:  # in order: each upsert sees the one before (registered fields win)
        async with conn.cursor() as cur:
            await cur.executemany(sql.UPSERT_CONTACT, contacts)
        await conn.execute(sql.TRACK_CONTACTS, (now, sorted({c[0] for c in contacts})))
    tracked = _tracking_rows(e for i, e in events.items() if i in new)
    if tracked:
        await conn.execute(
            sql.TRACK_EVENTS, (now, *(list(column) for column in zip(*tracked, strict=True)))
        )

    results: list[IngestResult] = []
    marks: list[tuple[str, str, str | None, int | None, int | None]] = []
    for outcome in outcomes:
        if outcome.push_id in taken:
            results.append(IngestResult(accepted=0, duplicates=0))
            continue
        if outcome.error is not None:
            results.append(IngestResult(accepted=0, duplicates=0))
            marks.append((outcome.push_id, "failed", _text(outcome.error), None, None))
            continue
        mine = list(
            dict.fromkeys(
                e.id for e in outcome.events if e.id in new and owner[e.id] == outcome.push_id
            )
        )
        result = IngestResult(
            accepted=len(mine),
            duplicates=len(outcome.events) - len(mine),
            deliveries=created.get(outcome.push_id, 0),
            new_event_ids=tuple(mine),
        )
        results.append(result)
        marks.append((outcome.push_id, "processed", None, result.accepted, result.duplicates))
    if marks:
        await conn.execute(
            sql.MARK_PUSHES, (now, *(list(column) for column in zip(*marks, strict=True)))
        )
    return results


def _tracking_rows(
    stored: Iterable[Event],
) -> list[tuple[str, str, str, datetime, bool]]:
    """Per order, from events just stored (in batch order, ``stuck`` aside): the last kind,
    the newest status by ``occurred_at`` (a later one wins a tie) and whether one is final."""
    orders: dict[str, tuple[str, str, str, datetime, bool]] = {}
    for e in stored:
        if e.status == Status.STUCK:
            continue
        known = orders.get(e.order_id)
        closed = e.status in TERMINAL_STATUSES or (known is not None and known[4])
        if known is None or e.occurred_at >= known[3]:
            orders[e.order_id] = (e.order_id, e.kind, str(e.status), e.occurred_at, closed)
        else:
            orders[e.order_id] = (e.order_id, e.kind, known[2], known[3], closed)
    return [orders[k] for k in sorted(orders)]


def _tracked(row: Sequence[Any]) -> TrackedOrder:
    """A row of `sql.TRACKING_COLUMNS`."""
    return TrackedOrder(
        order_id=row[0],
        kind=row[1],
        last_status=None if row[2] is None else Status(row[2]),
        last_update=row[3],
        closed=bool(row[4]),
        last_pulled_at=row[5],
        next_pull_at=row[6],
        gone=row[7],
        stuck_status=None if row[8] is None else Status(row[8]),
        stuck_since=row[9],
        last_asked_at=row[10],
    )


def _oldest_first(rows: Sequence[Sequence[Any]]) -> list[TrackedOrder]:
    # RETURNING gives rows in no promised order.
    orders = [_tracked(r) for r in rows]
    return sorted(
        orders, key=lambda o: (o.last_update is not None, o.last_update or _EPOCH, o.order_id)
    )


def _least_recently_asked_first(rows: Sequence[Sequence[Any]]) -> list[TrackedOrder]:
    # The claim's own order (`sql.CLAIM_PULLS`): RETURNING does not keep it.
    orders = [_tracked(r) for r in rows]
    return sorted(
        orders,
        key=lambda o: (
            o.last_asked_at is not None,
            o.last_asked_at or _EPOCH,
            o.last_update is not None,
            o.last_update or _EPOCH,
            o.order_id,
        ),
    )


def _merged(known: Contact, later: Contact) -> Contact:
    return Contact(
        order_id=known.order_id,
        name=later.name if later.name is not None else known.name,
        phone=later.phone if later.phone is not None else known.phone,
        email=later.email if later.email is not None else known.email,
        language=later.language if later.language is not None else known.language,
    )


def _cutoff_params(cutoffs: Cutoffs) -> dict[str, Any]:
    return {
        "pushes": cutoffs.pushes,
        "events": cutoffs.events,
        "delivered": cutoffs.delivered,
        "dead": cutoffs.dead,
        "rejected": cutoffs.rejected,
    }


def _text(value: str | None) -> str | None:
    """An error text as PostgreSQL's text can hold it: an error quotes what a peer answered,
    which may contain NUL, and a refused outcome would be sent again."""
    return value if value is None or "\x00" not in value else value.replace("\x00", "\ufffd")


def _finish_params(outcome: Finished, worker: str, fallback: NewDelivery | None) -> dict[str, Any]:
    attempt = outcome.attempt
    return {
        "id": outcome.delivery_id,
        "worker": worker,
        "state": outcome.state,
        "count": 1 if outcome.count_attempt else 0,
        "next": outcome.next_attempt_at,
        "error": _text(outcome.error),
        "waiting": outcome.waiting,
        "now": outcome.now,
        "a_delivery": None if attempt is None else attempt.delivery_id,
        "a_started": None if attempt is None else attempt.started_at,
        "a_ms": None if attempt is None else attempt.duration_ms,
        "a_outcome": None if attempt is None else attempt.outcome,
        "a_code": None if attempt is None else attempt.status_code,
        "a_error": None if attempt is None else _text(attempt.error),
        "f_id": None if fallback is None else fallback.id,
        "f_route": None if fallback is None else fallback.route,
        "f_sink": None if fallback is None else fallback.sink,
        "f_ordering": None if fallback is None else fallback.ordering,
        "f_template": None if fallback is None else fallback.template,
        "channel": sql.DELIVERIES_CHANNEL,
    }


async def _claim(
    conn: Conn, *, worker: str, now: datetime, limit: int, lease_seconds: float
) -> Claimed:
    ended = await (
        await conn.execute(sql.UNKNOWN_OUTCOMES, {"now": now, "reason": OUTCOME_UNKNOWN})
    ).fetchall()
    unknown = [_delivery(r[1:]) for r in ended]
    due = await (
        await conn.execute(sql.CLAIM_CANDIDATES, {"now": now, "rows": limit * 4})
    ).fetchall()
    lanes = list(dict.fromkeys((r[0], r[1]) for r in due))
    if not lanes:
        return Claimed(claims=[], unknown=unknown)
    held_rows = await (
        await conn.execute(sql.LOCK_LANES, ([s for s, _ in lanes], [o for _, o in lanes]))
    ).fetchall()
    held = {(r[0], r[1]) for r in held_rows}
    lanes = [lane for lane in lanes if lane in held]
    if not lanes:
        return Claimed(claims=[], unknown=unknown)
    rows = await (
        await conn.execute(sql.LANES, ([s for s, _ in lanes], [o for _, o in lanes]))
    ).fetchall()
    by_lane: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        # plan_claims compares times as integers, as the SQLite rows hold them.
        by_lane.setdefault((r[0], r[1]), []).append(
            (
                *(r[2], r[3], _us(r[4]), r[5], _us(r[6])),
                *(None if r[7] is None else _us(r[7]), r[8], r[9], r[10]),
            )
        )
    now_us = _us(now)
    claimed: list[str] = []
    superseded: list[str] = []
    for lane in lanes:
        if len(claimed) >= limit:
            break
        take, drop = plan_claims(by_lane.get(lane, []), now_us)
        superseded.extend(drop)
        if take is not None:
            claimed.append(take)
    stale: list[Delivery] = []
    if superseded:
        rows = await (await conn.execute(sql.SUPERSEDE, {"now": now, "ids": superseded})).fetchall()
        stale = [_delivery(r) for r in rows]
    if not claimed:
        return Claimed(claims=[], superseded=stale, unknown=unknown)
    until = now + timedelta(seconds=lease_seconds)
    leased = await (
        await conn.execute(
            sql.LEASE, {"worker": worker, "until": until, "now": now, "ids": claimed}
        )
    ).fetchall()
    position = {delivery_id: i for i, delivery_id in enumerate(claimed)}
    leased.sort(key=lambda r: position[r[0]])
    claims = [
        Claim(
            delivery=_delivery(r[:20]),
            event=_decode_event(r[20]),
            contact=None if r[21] is None else _contact(r[21:26]),
        )
        for r in leased
    ]
    return Claimed(claims=claims, superseded=stale, unknown=unknown)


# -- rows -> structs (the column orders of sql.py) --------------------------------------------
def _us(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _as_read(moment: datetime) -> datetime:
    return moment  # timestamptz columns come back as UTC datetimes (the connections use UTC)


_rows = Records(time=_as_read)
_push = _rows.push
_delivery = _rows.delivery
_rejected = _rows.rejected
_attempt = _rows.attempt
_contact = contact_from_row


def _bytes(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
