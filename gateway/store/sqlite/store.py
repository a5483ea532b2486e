"""The embedded default store: SQLite in WAL mode with ``synchronous=FULL`` and group commit.

Writes go through one `Writer` thread (see writer.py); reads use their own connections on a
small thread pool, so neither blocks the event loop and WAL lets them run beside the writer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from gateway.deliveries import Attempt, Claim, Delivery, DeliveryFilter, DeliveryState
from gateway.errors import StoreError
from gateway.events import Contact, Event
from gateway.store import pushlog
from gateway.store.base import (
    EventPage,
    EventQuery,
    IngestResult,
    LoggedPush,
    NewPush,
    PushOutcome,
    PushQuery,
    PushState,
    RejectedRequest,
    SinkCounts,
    StoredEvent,
    StoredRejected,
)
from gateway.store.lanes import plan_claims
from gateway.store.rows import (
    DELIVERY_COLUMNS,
    DELIVERY_COLUMNS_SHOWN,
    decode_event,
    delivery_filter,
    delivery_from_row,
    from_us,
    opt_time,
    to_us,
)
from gateway.store.schema import migrate
from gateway.store.writer import Writer

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
    async def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = self._connect()
            conn.execute("PRAGMA journal_mode=WAL")
            migrate(conn)
            found = os.stat(self.path)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database {self.path}: {exc}") from exc
        self._identity = (found.st_dev, found.st_ino)
        self._writer = Writer(conn, check=self._check_file)
        self._writer.start()
        try:
            # SQLite opens a file it may not write read-only, without a word: only a real
            # commit shows that every push would fail.
            await self._heartbeat()
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
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-65536")  # 64 MiB: index inserts stay in memory
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

    async def ping(self) -> None:
        if self._writer is None or not self._writer.alive:
            raise StoreError("the SQLite writer is not running")
        await self._heartbeat()
        await self._read(lambda c: c.execute("SELECT 1 FROM schema_version").fetchone())

    async def _heartbeat(self) -> None:
        """Commit a one-row write through the writer: it fails exactly when a push would."""
        await self._write(
            lambda c: c.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, ?)"
                " ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                (to_us(datetime.now(UTC)),),
            )
        )

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
        await self._write(lambda c: pushlog.append_push(c, push))

    async def pending_pushes(self, *, limit: int) -> list[LoggedPush]:
        return await self._read(lambda c: pushlog.pending_pushes(c, limit))

    async def count_pending_pushes(self) -> int:
        return await self._read(pushlog.count_pending)

    async def record_intake(
        self, outcomes: Sequence[PushOutcome], *, now: datetime
    ) -> list[IngestResult]:
        return await self._write(lambda c: pushlog.record_intake(c, outcomes, now))

    async def requeue_pushes(
        self, *, state: PushState, since: datetime | None = None, ids: Sequence[str] = ()
    ) -> int:
        return await self._write(
            lambda c: pushlog.requeue_pushes(c, state=state, since=since, ids=ids)
        )

    async def list_pushes(self, query: PushQuery) -> list[LoggedPush]:
        return await self._read(lambda c: pushlog.list_pushes(c, query))

    async def get_push(self, push_id: str) -> LoggedPush | None:
        return await self._read(lambda c: pushlog.get_push(c, push_id))

    async def events_by_id(self, ids: Sequence[str]) -> dict[str, tuple[Event, str | None]]:
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        marks = ", ".join("?" for _ in wanted)
        rows = await self._read(
            lambda c: c.execute(
                f"SELECT id, body, push_id FROM events WHERE id IN ({marks})", wanted
            ).fetchall()
        )
        return {r[0]: (decode_event(r[1]), r[2]) for r in rows}

    async def reject(self, request: RejectedRequest) -> None:
        row = (to_us(request.received_at), request.reason, request.body, request.content_type)
        if request.replaces is not None:
            # A replay keeps the body's first arrival time: only the verdict changes.
            replaced = (request.reason, request.replaces)
            await self._write(
                lambda c: c.execute("UPDATE rejected SET reason = ? WHERE id = ?", replaced)
            )
            return
        await self._write(
            lambda c: c.execute(
                "INSERT INTO rejected (received_at, reason, body, content_type) VALUES (?,?,?,?)",
                row,
            )
        )

    # -- reading -----------------------------------------------------------------------------
    async def list_events(self, query: EventQuery) -> EventPage:
        where: list[str] = []
        params: list[Any] = []
        if query.order_id is not None:
            where.append("order_id = ?")
            params.append(query.order_id)
        if query.status is not None:
            where.append("status = ?")
            params.append(query.status.value)
        if query.since is not None:
            where.append("received_at >= ?")
            params.append(to_us(query.since))
        if query.before_seq is not None:
            where.append("seq < ?")
            params.append(query.before_seq)
        sql = "SELECT seq, body FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (*params, query.limit + 1)).fetchall())
        items = [StoredEvent(seq=r[0], event=decode_event(r[1])) for r in rows[: query.limit]]
        more = len(rows) > query.limit
        return EventPage(items=items, next_cursor=items[-1].seq if more and items else None)

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._read(
            lambda c: c.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()
        )
        return None if row is None else decode_event(row[0])

    async def get_contact(self, order_id: str) -> Contact | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT order_id, name, phone, email FROM contacts WHERE order_id = ?", (order_id,)
            ).fetchone()
        )
        return (
            None
            if row is None
            else Contact(order_id=row[0], name=row[1], phone=row[2], email=row[3])
        )

    async def count_rejected(self) -> int:
        row = await self._read(lambda c: c.execute("SELECT count(*) FROM rejected").fetchone())
        return int(row[0])

    async def list_rejected(self, *, limit: int = 100) -> list[StoredRejected]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT id, received_at, reason, body, content_type FROM rejected "
                "ORDER BY id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        )
        return [
            StoredRejected(
                id=r[0], received_at=from_us(r[1]), reason=r[2], body=bytes(r[3]), content_type=r[4]
            )
            for r in rows
        ]

    async def get_rejected(self, rejected_id: int) -> StoredRejected | None:
        r = await self._read(
            lambda c: c.execute(
                "SELECT id, received_at, reason, body, content_type FROM rejected WHERE id = ?",
                (rejected_id,),
            ).fetchone()
        )
        if r is None:
            return None
        return StoredRejected(
            id=r[0], received_at=from_us(r[1]), reason=r[2], body=bytes(r[3]), content_type=r[4]
        )

    async def delete_rejected(self, rejected_id: int) -> bool:
        count = await self._write(
            lambda c: c.execute("DELETE FROM rejected WHERE id = ?", (rejected_id,)).rowcount
        )
        return count == 1

    # -- the dispatcher --------------------------------------------------------------------
    async def claim(
        self, *, worker: str, now: datetime, limit: int, lease_seconds: float
    ) -> list[Claim]:
        now_us = to_us(now)
        until = to_us(now + timedelta(seconds=lease_seconds))

        def job(conn: sqlite3.Connection) -> list[tuple[Delivery, bytes, Contact | None]]:
            candidates = conn.execute(
                "SELECT DISTINCT sink, order_id FROM ("
                " SELECT sink, order_id, next_attempt_at AS due FROM deliveries"
                "  WHERE state = 'pending' AND next_attempt_at <= ?1"
                " UNION ALL"
                " SELECT sink, order_id, lease_until AS due FROM deliveries"
                "  WHERE state = 'in_flight' AND lease_until <= ?1"
                " ORDER BY due LIMIT ?2)"
                " WHERE sink NOT IN (SELECT sink FROM sink_state"
                "                    WHERE disabled_reason IS NOT NULL)",
                (now_us, limit * 4),
            ).fetchall()
            claimed: list[str] = []
            superseded: list[str] = []
            for sink, order_id in candidates:
                if len(claimed) >= limit:
                    break
                lane = conn.execute(
                    "SELECT id, state, occurred_at, seq, next_attempt_at, lease_until, ordering"
                    " FROM deliveries WHERE sink = ? AND order_id = ?"
                    " AND state IN ('pending', 'in_flight', 'delivered')",
                    (sink, order_id),
                ).fetchall()
                take, drop = plan_claims(lane, now_us)
                superseded.extend(drop)
                if take is not None:
                    claimed.append(take)
            conn.executemany(
                "UPDATE deliveries SET state = 'superseded', lease_owner = NULL,"
                " lease_until = NULL, updated_at = ? WHERE id = ?",
                [(now_us, i) for i in superseded],
            )
            conn.executemany(
                "UPDATE deliveries SET state = 'in_flight', lease_owner = ?, lease_until = ?,"
                " updated_at = ? WHERE id = ?",
                [(worker, until, now_us, i) for i in claimed],
            )
            result = []
            for delivery_id in claimed:
                row = conn.execute(
                    f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE id = ?", (delivery_id,)
                ).fetchone()
                delivery = delivery_from_row(row)
                body = conn.execute(
                    "SELECT body FROM events WHERE id = ?", (delivery.event_id,)
                ).fetchone()[0]
                c = conn.execute(
                    "SELECT order_id, name, phone, email FROM contacts WHERE order_id = ?",
                    (delivery.order_id,),
                ).fetchone()
                contact = (
                    None if c is None else Contact(order_id=c[0], name=c[1], phone=c[2], email=c[3])
                )
                result.append((delivery, body, contact))
            return result

        rows = await self._write(job)
        return [Claim(delivery=d, event=decode_event(b), contact=c) for d, b, c in rows]

    async def finish(
        self,
        delivery_id: str,
        *,
        worker: str,
        attempt: Attempt | None,
        state: DeliveryState,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        count_attempt: bool = True,
        waiting: str | None = None,
    ) -> bool:
        def job(conn: sqlite3.Connection) -> bool:
            now = to_us(datetime.now(UTC))
            cur = conn.execute(
                "UPDATE deliveries SET state = ?1, attempts = attempts + ?2,"
                " next_attempt_at = coalesce(?3, next_attempt_at),"
                " last_error = CASE WHEN ?1 = 'delivered' THEN NULL"
                "  ELSE coalesce(?4, last_error) END, waiting = ?8,"
                " delivered_at = CASE WHEN ?1 = 'delivered' THEN ?5 ELSE delivered_at END,"
                " lease_owner = CASE WHEN ?1 = 'in_flight' THEN lease_owner END,"
                " lease_until = CASE WHEN ?1 = 'in_flight' THEN lease_until END,"
                " updated_at = ?5"
                " WHERE id = ?6 AND state = 'in_flight' AND lease_owner = ?7",
                (
                    state,
                    1 if count_attempt else 0,
                    None if next_attempt_at is None else to_us(next_attempt_at),
                    error,
                    now,
                    delivery_id,
                    worker,
                    waiting,
                ),
            )
            if cur.rowcount != 1:
                return False
            if attempt is not None:
                conn.execute(
                    "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome,"
                    " status_code, error) VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        attempt.delivery_id,
                        to_us(attempt.started_at),
                        attempt.duration_ms,
                        attempt.outcome,
                        attempt.status_code,
                        attempt.error,
                    ),
                )
            return True

        return await self._write(job)

    async def get_delivery(self, delivery_id: str) -> tuple[Delivery, list[Attempt]] | None:
        def job(conn: sqlite3.Connection) -> tuple[Delivery, list[Attempt]] | None:
            row = conn.execute(
                f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries WHERE id = ?", (delivery_id,)
            ).fetchone()
            if row is None:
                return None
            attempts = [
                Attempt(
                    delivery_id=a[0],
                    started_at=from_us(a[1]),
                    duration_ms=a[2],
                    outcome=a[3],
                    status_code=a[4],
                    error=a[5],
                )
                for a in conn.execute(
                    "SELECT delivery_id, started_at, duration_ms, outcome, status_code, error"
                    " FROM attempts WHERE delivery_id = ? ORDER BY id",
                    (delivery_id,),
                )
            ]
            return delivery_from_row(row), attempts

        return await self._read(job)

    async def list_deliveries(self, query: DeliveryFilter) -> list[Delivery]:
        where, params = delivery_filter(query)
        if query.before is not None:
            where.append("seq < (SELECT seq FROM deliveries WHERE id = ?)")
            params.append(query.before)
        sql = f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY seq DESC LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (*params, query.limit)).fetchall())
        return [delivery_from_row(r) for r in rows]

    async def replay(self, query: DeliveryFilter, *, now: datetime) -> int:
        where, params = delivery_filter(
            DeliveryFilter(
                state="dead", sink=query.sink, order_id=query.order_id, since=query.since
            )
        )
        sql = (
            "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
            " updated_at = ?, lease_owner = NULL, lease_until = NULL, waiting = NULL WHERE "
            + " AND ".join(where)
        )
        now_us = to_us(now)
        return await self._write(lambda c: c.execute(sql, (now_us, now_us, *params)).rowcount)

    async def replay_one(self, delivery_id: str, *, now: datetime) -> bool:
        now_us = to_us(now)
        count = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
                    " updated_at = ?, lease_owner = NULL, lease_until = NULL, waiting = NULL"
                    " WHERE id = ? AND state IN ('dead', 'skipped', 'superseded')",
                    (now_us, now_us, delivery_id),
                ).rowcount
            )
        )
        return count == 1

    async def next_due(self) -> datetime | None:
        row = await self._read(
            lambda c: c.execute(
                "SELECT min(t) FROM ("
                " SELECT min(next_attempt_at) AS t FROM deliveries WHERE state = 'pending'"
                " UNION ALL"
                " SELECT min(lease_until) FROM deliveries WHERE state = 'in_flight')"
            ).fetchone()
        )
        return opt_time(row[0])

    async def sink_counts(self) -> list[SinkCounts]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT sink, sum(state IN ('pending', 'in_flight')), sum(state = 'dead')"
                " FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY sink"
            ).fetchall()
        )
        return [SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2])) for r in rows]

    # -- sinks switched off ------------------------------------------------------------------
    async def disable_sink(self, sink: str, *, reason: str, now: datetime) -> None:
        await self._write(
            lambda c: c.execute(
                "INSERT INTO sink_state (sink, disabled_reason, disabled_at) VALUES (?, ?, ?)"
                " ON CONFLICT (sink) DO UPDATE SET disabled_reason = excluded.disabled_reason,"
                " disabled_at = excluded.disabled_at",
                (sink, reason, to_us(now)),
            )
        )

    async def enable_sink(self, sink: str) -> bool:
        count = await self._write(
            lambda c: (
                c.execute(
                    "UPDATE sink_state SET disabled_reason = NULL, disabled_at = NULL"
                    " WHERE sink = ? AND disabled_reason IS NOT NULL",
                    (sink,),
                ).rowcount
            )
        )
        return count == 1

    async def disabled_sinks(self) -> dict[str, str]:
        rows = await self._read(
            lambda c: c.execute(
                "SELECT sink, disabled_reason FROM sink_state WHERE disabled_reason IS NOT NULL"
            ).fetchall()
        )
        return {r[0]: r[1] for r in rows}
