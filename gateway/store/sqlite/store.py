"""The embedded default store: SQLite in WAL mode with ``synchronous=FULL`` and group commit.

Two files: the push log in ``<name>.pushes.db`` beside the main file (``kabarin.db`` →
``kabarin.pushes.db``), everything else in the main one. Each has its own `Writer` thread (see
writer.py), so a push's append commits without queueing behind an intake commit, and without
writing the events' index pages. Reads use their own connections on a small thread pool, with
the log file attached, so neither blocks the event loop and WAL lets them run beside the
writers. This module owns the files (opening, migrating, noticing one vanish) and that
plumbing; what each role does is a plain function of a connection in ingest.py, queue.py,
groups.py and reads.py, so nearly every method here is one line handing such a job to a writer
or a reader.
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

from gateway.delivery.model import (
    Attempt,
    Claimed,
    Delivery,
    DeliveryFilter,
    Group,
    NewDelivery,
)
from gateway.errors import StoreError
from gateway.events import DEFAULT_SHOP, Contact, Event, EventKind, Status
from gateway.store.contact_merge import merge_contacts
from gateway.store.digests import DigestRun, WindowCounts
from gateway.store.facts import CourierFigures, OrderFacts, TransitHistory
from gateway.store.finishing import Finishing
from gateway.store.moving import Table
from gateway.store.roles import (
    DEFAULT_CACHE_MB,
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
from gateway.store.sqlite import contacts as contacts_
from gateway.store.sqlite import (
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
from gateway.store.sqlite.rows import to_us
from gateway.store.sqlite.schema import LOG_MIGRATIONS, migrate, move_pushes
from gateway.store.sqlite.writer import Writer
from gateway.store.tracking import PullClaim, TrackedOrder, TrackingCounts

__all__ = ["SQLiteStore"]

T = TypeVar("T")

log = logging.getLogger("kabarin.store")


class SQLiteStore(Finishing):
    """`Store` on two SQLite files: the main one at `path`, the push log at `log_path`."""

    def __init__(self, path: str | Path, *, cache_mb: int = DEFAULT_CACHE_MB) -> None:
        self.path = Path(path)
        self.cache_mb = cache_mb
        """Page cache of each connection, in MiB (`store.cache_mb`)."""
        self.log_path = self.path.with_name(f"{self.path.stem}.pushes{self.path.suffix}")
        self._writer: Writer | None = None
        self._log_writer: Writer | None = None
        self._readers = ThreadPoolExecutor(2, thread_name_prefix="kabarin-sqlite-read")
        self._local = threading.local()
        self._read_conns: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._identity: dict[Path, tuple[int, int]] = {}
        """(st_dev, st_ino) of each file opened: a path that stops naming it has lost the data."""
        self._lost = False
        self._intake = asyncio.Lock()
        """One intake batch between reading what is taken and marking the log at a time."""

    @property
    def commits(self) -> int:
        return sum(w.commits for w in (self._writer, self._log_writer) if w is not None)

    # -- lifecycle -----------------------------------------------------------------------
    async def open(self, *, now: datetime) -> None:
        at = to_us(now)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect(self.path)
            conn.execute(sql.JOURNAL_WAL)
            migrate(conn, now=at)
            log_conn = self._connect(self.log_path)
            log_conn.execute(sql.JOURNAL_WAL)
            migrate(log_conn, now=at, migrations=LOG_MIGRATIONS, after={})
            moved = move_pushes(conn, str(self.log_path))
            for path in (self.path, self.log_path):
                found = os.stat(path)
                self._identity[path] = (found.st_dev, found.st_ino)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        if moved:
            log.warning("moved %d push log entries from %s to %s", moved, self.path, self.log_path)
        self._writer = Writer(conn, check=self._check_files)
        self._log_writer = Writer(
            log_conn, check=self._check_files, name="kabarin-sqlite-log-writer"
        )
        self._writer.start()
        self._log_writer.start()
        try:
            # SQLite opens a file it may not write read-only, without a word: only a real
            # commit shows that every push would fail.
            await self._heartbeat(now)
        except StoreError as exc:
            await self.close()
            raise StoreError(f"cannot write to SQLite database {self.path}: {exc}") from exc

    async def close(self) -> None:
        for writer in (self._log_writer, self._writer):
            if writer is not None:
                await asyncio.to_thread(writer.stop)
        self._readers.shutdown(wait=True)
        with self._lock:
            for conn in self._read_conns:
                conn.close()
            self._read_conns.clear()

    def _connect(self, path: Path | None = None) -> sqlite3.Connection:
        """A writer's connection to `path`, creating the file; without one, a reader's on
        both files, never creating them: one that vanished must not come back empty."""
        if path is not None:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        else:
            conn = sqlite3.connect(
                _existing(self.path), isolation_level=None, check_same_thread=False, uri=True
            )
            conn.execute(sql.ATTACH_LOG, (_existing(self.log_path),))
        for pragma in (sql.SYNCHRONOUS_FULL, sql.BUSY_TIMEOUT, sql.cache_size(self.cache_mb)):
            conn.execute(pragma)
        return conn

    async def _write(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self._submit(self._writer, job)

    async def _write_log(self, job: Callable[[sqlite3.Connection], T]) -> T:
        return await self._submit(self._log_writer, job)

    @staticmethod
    async def _submit(writer: Writer | None, job: Callable[[sqlite3.Connection], T]) -> T:
        if writer is None:
            raise StoreError("the store is not open")
        try:
            return await writer.submit(job)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def _read(self, job: Callable[[sqlite3.Connection], T]) -> T:
        def run() -> T:
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = self._local.conn = self._connect()
                with self._lock:
                    self._read_conns.append(conn)
            return job(conn)

        try:
            return await asyncio.get_running_loop().run_in_executor(self._readers, run)
        except sqlite3.Error as exc:
            raise StoreError(str(exc)) from exc

    async def ping(self, *, now: datetime) -> None:
        for writer in (self._writer, self._log_writer):
            if writer is None or not writer.alive:
                raise StoreError("the SQLite writer is not running")
        await self._heartbeat(now)
        await self._read(lambda c: c.execute(sql.CAN_READ).fetchone())

    async def _heartbeat(self, now: datetime) -> None:
        """Commit a one-row write through each writer: it fails exactly when a push (or the
        intake) would."""
        at = to_us(now)
        await asyncio.gather(
            self._write(lambda c: c.execute(sql.HEARTBEAT, (at,))),
            self._write_log(lambda c: c.execute(sql.HEARTBEAT, (at,))),
        )

    def _check_files(self) -> None:
        """Refuse to commit once a path no longer names the file opened (writer threads).

        Commits would still succeed into the unlinked or replaced file, and be lost at the
        next restart: a 503 makes KiriminAja send the push again instead. Both writers check
        both files: a push acknowledged into the log while the main file is gone would be
        turned into events nobody will see.
        """
        problem = ""
        for path, identity in self._identity.items():
            try:
                found = os.stat(path)
            except FileNotFoundError:
                problem = "was deleted"
            except OSError as exc:
                problem = f"cannot be checked ({exc})"
            else:
                same = (found.st_dev, found.st_ino) == identity
                problem = "" if same else "was replaced by another file"
            if problem:
                break
        with self._lock:
            if not problem:
                if self._lost:
                    log.warning("the SQLite database files are back: accepting pushes")
                    self._lost = False
                return
            message = (
                f"the SQLite database file {path} {problem} while in use:"
                " refusing pushes until Kabarin is restarted on the right file"
            )
            if not self._lost:
                log.error("%s", message)
                self._lost = True
        raise StoreError(message)

    # -- the push log and the intake ---------------------------------------------------------
    async def append_push(self, push: NewPush) -> None:
        await self._write_log(lambda c: ingest.append_push(c, push))

    async def reject(self, request: RejectedRequest) -> None:
        await self._write(lambda c: ingest.reject(c, request))

    async def pending_pushes(self, *, limit: int) -> list[LoggedPush]:
        return await self._read(lambda c: ingest.pending_pushes(c, limit))

    async def count_pending_pushes(self) -> int:
        return await self._read(ingest.count_pending)

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        # Two files, two commits: the events first, then the pushes marked. A crash between
        # them leaves the pushes pending; processed again, their events are found stored
        # (by id), so nothing is stored or sent twice and they count as duplicates.
        async with self._intake:
            ids = [o.push_id for o in outcomes]
            taken = await self._read(lambda c: ingest.pushes_taken(c, ids))
            results, marks = await self._write(
                lambda c: ingest.record_events(c, outcomes, taken, now)
            )
            if marks:
                await self._write_log(lambda c: ingest.mark_pushes(c, marks))
            return results

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        return await self._write_log(
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

    async def get_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> Contact | None:
        return await self._read(lambda c: reads.get_contact(c, order_id, shop))

    async def register_contacts(self, contacts: Sequence[Contact], *, now: datetime) -> int:
        if not contacts:
            return 0
        rows = merge_contacts(contacts)
        await self._write(lambda c: contacts_.register(c, rows, now))
        return len(contacts)

    async def delete_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> bool:
        return await self._write(lambda c: contacts_.delete(c, order_id, shop))

    async def count_rejected(self, *, shops: Sequence[str] | None = None) -> int:
        return await self._read(lambda c: reads.count_rejected(c, shops))

    async def list_rejected(
        self, *, limit: int = 100, shops: Sequence[str] | None = None
    ) -> list[StoredRejected]:
        return await self._read(lambda c: reads.list_rejected(c, limit, shops))

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None:
        return await self._read(lambda c: reads.get_rejected(c, rejected_id))

    async def delete_rejected(self, rejected_id: int) -> bool:
        return await self._write(lambda c: reads.delete_rejected(c, rejected_id))

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        return await self._read(lambda c: reads.get_delivery(c, delivery_id))

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        return await self._read(lambda c: reads.list_deliveries(c, query))

    async def waiting_groups(self) -> list[WaitingGroup]:
        return await self._read(groups.waiting_groups)

    async def group_of(self, delivery_id: str) -> Group | None:
        return await self._read(lambda c: groups.group_of(c, delivery_id))

    # -- the dispatcher --------------------------------------------------------------------
    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> Claimed:
        return await self._write(
            lambda c: queue.claim(
                c, worker=worker, now=now, limit=limit, lease_seconds=lease_seconds
            )
        )

    async def start(self, delivery_ids: Sequence[str], *, worker: str, now: datetime) -> set[str]:
        if not delivery_ids:
            return set()
        return await self._write(lambda c: queue.start(c, delivery_ids, worker=worker, now=now))

    async def _finish_one(self, outcome: Finished, *, worker: str) -> bool:
        return await self._write(lambda c: queue.finish_one(c, outcome, worker=worker))

    async def _finish_batch(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        return await self._write(lambda c: queue.finish_batch(c, outcomes, worker=worker))

    async def renew(
        self, delivery_ids: Sequence[str], *, worker: str, now: datetime, lease_seconds: float
    ) -> set[str]:
        if not delivery_ids:
            return set()
        return await self._write(
            lambda c: queue.renew(
                c, delivery_ids, worker=worker, now=now, lease_seconds=lease_seconds
            )
        )

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        return await self._write(lambda c: queue.replay(c, query, now))

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        return await self._write(lambda c: queue.replay_one(c, delivery_id, now))

    async def next_due(self) -> datetime | None:
        return await self._read(queue.next_due)

    async def sink_counts(self, *, by_shop: bool = False) -> list[SinkCounts]:
        return await self._read(lambda c: queue.sink_counts(c, by_shop))

    # -- retention ---------------------------------------------------------------------------
    async def prune(self, step: PruneStep, cutoffs: Cutoffs, *, limit: int) -> Pruned:
        writer = self._write_log if step == "pushes" else self._write
        return await writer(lambda c: prune.prune(c, step, cutoffs, limit))

    async def count_prunable(self, cutoffs: Cutoffs) -> Pruned:
        return await self._read(lambda c: prune.count_prunable(c, cutoffs))

    async def size_bytes(self) -> int:
        total = 0
        parts = [
            p.with_name(p.name + wal) for p in (self.path, self.log_path) for wal in ("", "-wal")
        ]
        for part in parts:
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

    # -- the dashboard's sessions ------------------------------------------------------------
    async def create_session(self, session: SignedInSession, *, expired_before: datetime) -> None:
        await self._write(lambda c: sessions.create(c, session, expired_before))

    async def get_session(self, key: str) -> SignedInSession | None:
        return await self._read(lambda c: sessions.get(c, key))

    async def update_session(self, key: str, *, used_at: datetime, flash: str | None) -> bool:
        return await self._write(lambda c: sessions.update(c, key, used_at, flash))

    async def delete_session(self, key: str) -> bool:
        return await self._write(lambda c: sessions.delete(c, key))

    # -- moving a store (`Portable`) -----------------------------------------------------
    async def export_rows(
        self, table: Table, *, after: int | str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int | str | None]:
        return await self._read(lambda c: copying.export_rows(c, table, after, limit))

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        writer = self._write_log if table.name == "pushes" else self._write
        return await writer(lambda c: copying.import_rows(c, table, rows))

    # -- the pull tracker's orders -------------------------------------------------------------
    async def track_orders(
        self,
        orders: Sequence[tuple[str, EventKind]],
        *,
        now: datetime,
        shop: str = DEFAULT_SHOP,
    ) -> int:
        return await self._write(lambda c: tracking.track_orders(c, orders, now, shop))

    async def claim_pulls(self, claim: PullClaim) -> list[TrackedOrder]:
        return await self._write(lambda c: tracking.claim_pulls(c, claim))

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
        await self._write(
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
        return await self._write(lambda c: tracking.claim_stuck(c, after, now, limit))

    async def known_statuses(
        self, order_id: str, *, shop: str = DEFAULT_SHOP
    ) -> set[tuple[Status, str | None]]:
        return await self._read(lambda c: tracking.known_statuses(c, order_id, shop))

    async def last_push_at(self, *, shop: str | None = None) -> datetime | None:
        return await self._read(lambda c: tracking.last_push_at(c, shop))

    async def get_tracking(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> TrackedOrder | None:
        return await self._read(lambda c: tracking.get_tracking(c, order_id, shop))

    async def tracking_counts(self) -> TrackingCounts:
        return await self._read(tracking.tracking_counts)

    async def oldest_due_pull(self, *, now: datetime, stale_after: float) -> datetime | None:
        return await self._write(lambda c: tracking.oldest_due_pull(c, now, stale_after))

    # -- insights (insights.py) ----------------------------------------------------------
    async def order_facts(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> OrderFacts | None:
        return await self._read(lambda c: insights.order_facts(c, order_id, shop))

    async def transit_history(
        self, *, shop: str, courier: str, product: str, destination: str = ""
    ) -> TransitHistory:
        return await self._read(
            lambda c: insights.transit_history(c, shop, courier, product, destination)
        )

    async def courier_figures(
        self,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        by_destination: bool = False,
    ) -> list[CourierFigures]:
        return await self._read(lambda c: insights.courier_figures(c, since, shops, by_destination))

    async def courier_orders(
        self,
        courier: str,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        product: str | None = None,
        limit: int = 200,
    ) -> list[OrderFacts]:
        return await self._read(
            lambda c: insights.courier_orders(c, courier, since, shops, product, limit)
        )

    # -- digests (digests.py) ------------------------------------------------------------
    async def window_counts(
        self, *, start: datetime, end: datetime, limit: int = 20
    ) -> WindowCounts:
        return await self._read(lambda c: digests.window_counts(c, start, end, limit))

    async def last_digest(self, digest: str) -> datetime | None:
        return await self._read(lambda c: digests.last_digest(c, digest))

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
        return await self._write(
            lambda c: digests.record_digest(c, digest, period, run, deliveries, now, forget_before)
        )


def _existing(path: Path) -> str:
    """`path` as a URI SQLite opens only if the file exists."""
    return f"{path.absolute().as_uri()}?mode=rw"
