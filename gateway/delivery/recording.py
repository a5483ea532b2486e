"""The dispatcher's writes to the store: outcomes, and the starts of customer sends.

A job hands its outcome to `Recorder.finish` (or `Recorder.hand_back`) and waits for it. Writes
go through `Batches`: every outcome that arrives while a batch is being written goes into the
next one, so a busy dispatcher makes one `DeliveryQueue.finish_many` (one writer job) per many
deliveries, and an idle one still commits a lone outcome at once. A store that fails (a dropped
connection) is tried again for a few seconds (`OUTCOME_RETRIES`) before an outcome is given up:
its delivery is then sent again once its lease runs out.

Customer sends (`Sink.writes_to_customer`) commit their start the same way (`Recorder.start`:
`DeliveryQueue.start`, batched) before the request leaves, so a send whose outcome is never
recorded is not sent again by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, Protocol, TypeVar

from gateway import metrics
from gateway.delivery.model import Attempt, Claim, Delivery, DeliveryState, NewDelivery
from gateway.errors import StoreError, StoreRefused
from gateway.store.roles import DeliveryQueue, Finished
from sinks.base import Sink

__all__ = [
    "MOST_PER_COMMIT",
    "OUTCOME_RETRIES",
    "Batches",
    "Ending",
    "HandBack",
    "Job",
    "Owner",
    "Recorder",
]

log = logging.getLogger("kabarin.dispatcher")

MOST_PER_COMMIT = 500
"""Outcomes written by one `finish_many`, so one commit never holds the writer long."""
OUTCOME_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Pauses between tries of recording outcomes while the store fails: about 8 s in all, well
inside a lease."""

_Item = TypeVar("_Item")


@dataclass
class Job:
    """One claimed delivery in this worker, from its claim to its recorded outcome."""

    claim: Claim
    task: asyncio.Task[None] | None = None
    waiting: bool = True
    """Still only waiting (its order lane, a sink slot, a rate-limit slot): on shutdown it is
    stopped at once; past that it may finish within the timeout."""
    finished: bool = False
    """The store has been told the outcome (or the lease was lost)."""
    sink: Sink | None = None
    """The sink object it sends with, once known (a reload may replace the configured one)."""
    started: datetime | None = None
    """A customer send's start, once committed (`DeliveryQueue.start`): from then on the
    delivery is never put back to be sent again, only finished."""
    send_ends: float = 0.0
    """When a customer send under way has had all its sink's ``timeout`` (`timer` seconds)."""


@dataclass(frozen=True)
class Ending:
    """How a job ends: the state its delivery is left in, with the attempt that led there."""

    attempt: Attempt
    state: DeliveryState
    next_attempt_at: datetime | None = None
    error: str | None = None
    count_attempt: bool = True
    waiting: str | None = None
    """Why it waits without using an attempt (`Delivery.waiting`)."""
    fallback: bool = True
    """Issue the route's fallback delivery when it ends ``dead`` or ``skipped``."""


@dataclass(frozen=True)
class HandBack:
    """Put the delivery back as pending after `delay` seconds, its attempts unchanged."""

    delay: float
    waiting: str | None = None


class Batches(Generic[_Item]):
    """Writes on their way to the store: one at a time, each taking all that queued up while
    the previous one was written. `write` answers one flag per item, in order."""

    def __init__(self, write: Callable[[list[_Item]], Awaitable[list[bool]]], name: str) -> None:
        self._write_many = write
        self._name = name
        self._queued: list[tuple[_Item, asyncio.Future[bool]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def commit(self, item: _Item) -> bool:
        """Write `item` with the others queued now; its flag (False: the lease was lost)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queued.append((item, future))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._write(), name=self._name)
        return await future

    async def drain(self) -> None:
        """Wait until every item handed over so far is written (or failed)."""
        while self._writing is not None and not self._writing.done():
            await asyncio.gather(self._writing, return_exceptions=True)

    async def _write(self) -> None:
        await asyncio.sleep(0)  # items of jobs reaching this point in this turn join in
        while self._queued:
            batch = self._queued[:MOST_PER_COMMIT]
            del self._queued[:MOST_PER_COMMIT]
            try:
                kept = await self._write_many([o for o, _ in batch])
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
            else:
                for (_, future), ok in zip(batch, kept, strict=True):
                    if not future.done():
                        future.set_result(ok)


class Owner(Protocol):
    """What the recorder reads from the dispatcher it works for, at each use (a test may
    replace the clock or the fallbacks)."""

    store: DeliveryQueue
    worker_id: str
    clock: Callable[[], datetime]
    fallbacks: Callable[[Delivery], NewDelivery | None] | None


class Recorder:
    """Records what became of this worker's jobs, in batches (see the module doc)."""

    def __init__(self, owner: Owner) -> None:
        self._owner = owner
        self._outcomes = Batches(self._finish_many, "kabarin-outcomes")
        self._starts = Batches(self._start_many, "kabarin-starts")

    async def finish(self, job: Job, ending: Ending) -> bool:
        """Record how `job` ended (and issue its fallback); False when the lease was lost."""
        delivery = job.claim.delivery
        state = ending.state
        job.waiting = False
        job.finished = True  # handed over: put back on shutdown no more
        spare = None
        fallbacks = self._owner.fallbacks
        if ending.fallback and state in ("dead", "skipped") and fallbacks is not None:
            spare = fallbacks(delivery)
        kept = await self._outcomes.commit(
            Finished(
                delivery_id=delivery.id,
                attempt=ending.attempt,
                state=state,
                now=self._owner.clock(),
                next_attempt_at=ending.next_attempt_at,
                error=ending.error,
                count_attempt=ending.count_attempt,
                waiting=ending.waiting,
                fallback=spare,
            )
        )
        if kept and spare is not None:
            log.info(
                "delivery %s to %s ended %s: issued on its fallback %s as %s",
                delivery.id,
                delivery.sink,
                state,
                spare.sink,
                spare.id,
            )
        if not kept:
            log.warning(
                "delivery %s to %s: lease lost to another worker; its outcome (%s) was dropped",
                delivery.id,
                delivery.sink,
                state,
            )
            return False
        outcome = "retry" if state == "pending" else state
        metrics.DELIVERIES.labels(delivery.sink, outcome, delivery.shop).inc()
        return True

    async def hand_back(self, job: Job, delay: float, waiting: str | None = None) -> None:
        """Put a claimed delivery back as pending after `delay` s, its attempts unchanged."""
        job.waiting = False
        job.finished = True
        now = self._owner.clock()
        kept = await self._outcomes.commit(
            Finished(
                delivery_id=job.claim.delivery.id,
                attempt=None,
                state="pending",
                now=now,
                next_attempt_at=now + timedelta(seconds=max(delay, 0.0)),
                count_attempt=False,
                waiting=waiting,
            )
        )
        if not kept:
            log.warning(
                "delivery %s: lease lost before it could be put back", job.claim.delivery.id
            )

    async def start(self, delivery_id: str) -> bool:
        """Commit that a customer send is about to leave; False when the lease was lost."""
        return await self._starts.commit(delivery_id)

    async def drain(self) -> None:
        """Wait until every outcome handed over so far is written (or failed)."""
        await self._outcomes.drain()

    async def _finish_many(self, outcomes: list[Finished]) -> list[bool]:
        """`finish_many`, tried again over a few seconds while the store fails (a dropped
        connection): an outcome that is not recorded leaves its delivery to be sent again once
        the lease runs out. One recorded whose answer was lost reads as a lost lease on the
        next try, which changes nothing."""
        store, worker = self._owner.store, self._owner.worker_id
        for pause in OUTCOME_RETRIES:
            try:
                return await store.finish_many(outcomes, worker=worker)
            except StoreRefused:
                raise
            except StoreError as exc:
                log.warning("dispatcher: could not record %d outcomes (%s)", len(outcomes), exc)
                await asyncio.sleep(pause)
        return await store.finish_many(outcomes, worker=worker)

    async def _start_many(self, delivery_ids: list[str]) -> list[bool]:
        """`DeliveryQueue.start` for the customer sends about to leave: one commit for all."""
        owner = self._owner
        kept = await owner.store.start(delivery_ids, worker=owner.worker_id, now=owner.clock())
        return [i in kept for i in delivery_ids]
