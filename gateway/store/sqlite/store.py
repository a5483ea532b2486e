"""The embedded default store: SQLite in WAL mode with ``synchronous=FULL`` and group commit.

Writes go through one `Writer` thread (see writer.py); reads use their own connections on a
small thread pool, so neither blocks the event loop and WAL lets them run beside the writer.
This module owns the file (opening, migrating, noticing it vanish) and that plumbing; what each
role does is a plain function of a connection in ingest.py, queue.py and reads.py, so every
method here is one line handing such a job to the writer or a reader.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from gateway.deliveries import (
    Attempt,
    Claim,
    Delivery,
    DeliveryFilter,
    DeliveryState,
    NewDelivery,
)
from gateway.errors import StoreError
from gateway.events import Contact, Event, EventKind, Status
from gateway.store.base import (
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
    SinkCounts,
    StoredRejected,
    TrackedOrder,
    TrackingCounts,
)
from gateway.store.moving import Table
from gateway.store.sqlite import contacts as contacts_
from gateway.store.sqlite import copying, ingest, prune, queue, reads, sql, tracking
from gateway.store.sqlite.rows import to_us
from gateway.store.sqlite.schema import migrate
from gateway.store.sqlite.writer import Writer

__all__ = ["SQLiteStore"]

T = TypeVar("T")

log = logging.getLogger("kabarin.store")


class SQLiteStore:
    """`Store` on one SQLite file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._writer: Writer | None = None
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="kabarin-sqlite-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        """(st_dev, st_ino) of the file opened: a path that stops naming it has lost the data."""
        self._lost = False

    @property
    def commits(self) -> int:
        return self._writer.commits if self._writer else 0

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self, *, now: datetime) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.execute(sql.JOURNAL_WAL)
            migrate(conn, now=to_us(now))
            found = os.stat(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._identity = (found.st_dev, found.st_ino)
        self._writer = Writer(conn, check=self._check_file)
        self._writer.start()
        try:
            # SQLite opens a file it may not write read-only, without a word: only a real
            # commit shows that every push would fail.
            await self._heartbeat(now)
        except StoreError as exc:
            await self.close()
            raise StoreError(f"cannot write to SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.to_thread(self._writer.stop)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    def _connect(self, *, create: bool = True) -> sqlite3.Connection:
        # Readers never create the file: one that vanished must not come back empty.
        target = self.path if create else f"{self.path.absolute().as_uri()}?mode=rw"
        conn = sqlite3.connect(
            target, isolation_level=None, check_same_thread=False, uri=not create
        )
        for pragma in (sql.SYNCHRONOUS_FULL, sql.BUSY_TIMEOUT, sql.CACHE_SIZE):
            conn.execute(pragma)
        return conn

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if self._writer is None:
            raise StoreError("the store is not open")
        try:
            return await self._writer.submit(job)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect(create=False)
                with self._lock:
                    self._read_conns.append(conn)
            return job(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def ping(self, *, now: datetime) -> None:
        if self._writer is None or not self._writer.alive:
            raise StoreError("the SQLite writer is not running")
        await self._heartbeat(now)
        await self._read(lambda c: c.execute(sql.CAN_READ).fetchone())

    async def _heartbeat(self, now: datetime) -> None:
        """Commit a one-row write through the writer: it fails exactly when a push would."""
        at = to_us(now)
        await self._write(lambda c: c.execute(sql.HEARTBEAT, (at,)))

    def _check_file(self) -> None:
        """Refuse to commit once the path no longer names the file opened (writer thread).

        Commits would still succeed into the unlinked or replaced file, and be lost at the
        next restart: a 503 makes KiriminAja send the push again instead.
        """
        try:
            found = os.stat(self.path)
        except FileNotFoundError:
            problem = "was deleted"
        except OSError as exc:
            problem = f"cannot be checked ({exc})"
        else:
            same = (found.st_dev, found.st_ino) == self._identity
            problem = "" if same else "was replaced by another file"
        if not problem:
            if self._lost:
                log.warning("the SQLite database file %s is back: accepting pushes", self.path)
                self._lost = False
            return
        message = (
            f"the SQLite database file {self.path} {problem} while in use:"
            " refusing pushes until Kabarin is restarted on the right file"
        )
        if not self._lost:
            log.error("%s", message)
            self._lost = True
        raise StoreError(message)

    # -- the push log and the intake ---------------------------------------------------------
    async def append_push(self, push: NewPush) -> None:
        await self._write(lambda c: ingest.append_push(c, push))

    async def reject(self, request: RejectedRequest) -> None:
        await self._write(lambda c: ingest.reject(c, request))

    async def pending_pushes(self, *, limit: int) -> list[LoggedPush]:
        return await self._read(lambda c: ingest.pending_pushes(c, limit))

    async def count_pending_pushes(self) -> int:
        return await self._read(ingest.count_pending)

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        return await self._write(lambda c: ingest.record_intake(c, outcomes, now))

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        return await self._write(
            lambda c: ingest.requeue_pushes(c, state=state, since=since, ids=ids)
        )

    # -- reading -----------------------------------------------------------------------------
    async def list_pushes(self, query: PushQuery) -> list[LoggedPush]:
        return await self._read(lambda c: reads.list_pushes(c, query))

    async def get_push(self, push_id: str) -> LoggedPush | None:
        return await self._read(lambda c: reads.get_push(c, push_id))

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, tuple[Event, str | None]]:
        return await self._read(lambda c: reads.events_by_id(c, ids))

    async def list_events(self, query: EventQuery) -> EventPage:
        return await self._read(lambda c: reads.list_events(c, query))

    async def get_event(self, event_id: str) -> Event | None:
        return await self._read(lambda c: reads.get_event(c, event_id))

    async def get_contact(self, order_id: str) -> Contact | None:
        return await self._read(lambda c: reads.get_contact(c, order_id))

    async def register_contacts(self, contacts: Sequence[Contact], *, now: datetime) -> int:
        return await self._write(lambda c: contacts_.register(c, contacts, now))

    async def delete_contact(self, order_id: str) -> bool:
        return await self._write(lambda c: contacts_.delete(c, order_id))

    async def count_rejected(self) -> int:
        return await self._read(reads.count_rejected)

    async def list_rejected(self, *, limit: int = 100) -> list[StoredRejected]:
        return await self._read(lambda c: reads.list_rejected(c, limit))

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None:
        return await self._read(lambda c: reads.get_rejected(c, rejected_id))

    async def delete_rejected(self, rejected_id: int) -> bool:
        return await self._write(lambda c: reads.delete_rejected(c, rejected_id))

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        return await self._read(lambda c: reads.get_delivery(c, delivery_id))

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        return await self._read(lambda c: reads.list_deliveries(c, query))

    # -- the dispatcher --------------------------------------------------------------------
    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[Claim]:
        return await self._write(
            lambda c: queue.claim(
                c, worker=worker, now=now, limit=limit, lease_seconds=lease_seconds
            )
        )

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
        return await self._write(
            lambda c: queue.finish(
                c,
                delivery_id,
                worker=worker,
                attempt=attempt,
                state=state,
                next_attempt_at=next_attempt_at,
                error=error,
                count_attempt=count_attempt,
                waiting=waiting,
                now=now,
                fallback=fallback,
            )
        )

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        if len({o.delivery_id for o in outcomes}) != len(outcomes):
            raise ValueError("finish_many: a delivery appears more than once")
        return await self._write(lambda c: queue.finish_many(c, outcomes, worker=worker))

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        return await self._write(lambda c: queue.replay(c, query, now))

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        return await self._write(lambda c: queue.replay_one(c, delivery_id, now))

    async def next_due(self) -> datetime | None:
        return await self._read(queue.next_due)

    async def sink_counts(self) -> list[SinkCounts]:
        return await self._read(queue.sink_counts)

    # -- retention ---------------------------------------------------------------------------
    async def prune(self, step: PruneStep, cutoffs: Cutoffs, *, limit: int) -> Pruned:
        return await self._write(lambda c: prune.prune(c, step, cutoffs, limit))

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        return await self._read(lambda c: prune.count_prunable(c, cutoffs))

    async def size_bytes(self) -> int:
        total = 0
        for part in (self.path, self.path.with_name(self.path.name + "-wal")):
            try:
                found = part.stat()
            except FileNotFoundError:  # no WAL between a checkpoint-on-close and the next write
                continue
            total += found.st_size
        return total

    # -- sinks switched off ------------------------------------------------------------------
    async def disable_sink(self, sink: str, *, reason: str, now: datetime) -> None:
        await self._write(lambda c: queue.disable_sink(c, sink, reason, now))

    async def enable_sink(self, sink: str) -> bool:
        return await self._write(lambda c: queue.enable_sink(c, sink))

    async def release_sink(self, sink: str, *, now: datetime) -> int:
        return await self._write(lambda c: queue.release_sink(c, sink, now))

    async def disabled_sinks(self) -> dict[str, str]:
        return await self._read(queue.disabled_sinks)

    # -- moving a store (`Portable`) -----------------------------------------------------
    async def export_rows(
        self, table: Table, *, after: int | str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int | str | None]:
        return await self._read(lambda c: copying.export_rows(c, table, after, limit))

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        return await self._write(lambda c: copying.import_rows(c, table, rows))

    # -- the pull tracker's orders -------------------------------------------------------------
    async def track_orders(self, orders: Sequence[tuple[str, EventKind]], *, now: datetime) -> int:
        return await self._write(lambda c: tracking.track_orders(c, orders, now))

    async def claim_pulls(self, claim: PullClaim) -> list[TrackedOrder]:
        return await self._write(lambda c: tracking.claim_pulls(c, claim))

    async def finish_pull(
        self,
        order_id: str,
        *,
        now: datetime,
        next_pull_at: datetime,
        answered: bool = True,
        gone: str | None = None,
    ) -> None:
        await self._write(
            lambda c: tracking.finish_pull(
                c, order_id, now=now, next_pull_at=next_pull_at, answered=answered, gone=gone
            )
        )

    async def claim_stuck(
        self, after: Mapping[Status, float], *, now: datetime, limit: int
    ) -> list[TrackedOrder]:
        return await self._write(lambda c: tracking.claim_stuck(c, after, now, limit))

    async def known_statuses(self, order_id: str) -> set[tuple[Status, str | None]]:
        return await self._read(lambda c: tracking.known_statuses(c, order_id))

    async def last_push_at(self) -> datetime | None:
        return await self._read(tracking.last_push_at)

    async def get_tracking(self, order_id: str) -> TrackedOrder | None:
        return await self._read(lambda c: tracking.get_tracking(c, order_id))

    async def tracking_counts(self) -> TrackingCounts:
        return await self._read(tracking.tracking_counts)
