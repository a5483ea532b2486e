"""The dispatcher: claims due deliveries, renders them, sends them, and records what happened.

One loop task claims batches of due deliveries from the store (with a lease) as long as there is
room, and starts one job per delivery. It sleeps until `Dispatcher.wake` (the receiver calls it
after each commit), until a job finishes, until the store's next due time, or for at most
``dispatcher.poll_interval``. Each job goes through the notify pipeline:

    keep (sink, order) in claim order → staleness (``max_age``) → quiet hours → the contact
    (`gateway.contacts`) → render the message parts → circuit breaker → sink slot
    (concurrency) → rate limit → send (quick retries for network blips) → finish

and ends in one outcome: ``delivered``; ``pending`` at the time the `RetryPolicy`
chose; ``dead``; ``skipped`` (the sink had nothing to send: its reason is kept); or put back
without using an attempt (circuit open, rate limit, sink not configured or switched off by a
410, shutdown), with `Delivery.waiting` saying why. Every send is one attempt row, its error
text passed through the `Redactor`. Ordering between deliveries of one (sink, order) is the
store's job (`DeliveryQueue.claim`).

A delivery due inside its sink's quiet hours is put back until the window ends, without using
an attempt (`Delivery.waiting` says until when); one whose event is older than the sink's
``max_age`` is skipped. A failed contact lookup is a failed attempt on the retry schedule. A
delivery that ends ``dead`` or ``skipped`` on a sink its route gives a fallback issues the
fallback delivery in the same commit (not for a stale one: it would be as stale there).

Outcomes are committed in batches: a job hands its outcome to `_Batches` and waits for it,
and every outcome that arrives while a batch is being written goes into the next one, so a
busy dispatcher makes one `DeliveryQueue.finish_many` (one writer job) per many deliveries,
and an idle one still commits a lone outcome at once.

Sinks that write to customers (`Sink.writes_to_customer`: SMS, WhatsApp, email to the
customer) are sent at most once: the start of each send is committed (`DeliveryQueue.start`,
batched the same way) before the request leaves. A send whose outcome is never recorded is not
sent again by itself: on shutdown the dispatcher waits for customer sends under way (each
bounded by its sink's ``timeout``) and ends the ones that still have no answer ``dead``
(`OUTCOME_UNKNOWN`); after a crash the claim does the same once their leases run out. The
machine sinks (webhook, Slack, staff email) pay nothing for this and stay at least once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from zoneinfo import ZoneInfo

from gateway import metrics
from gateway.config import DispatcherConfig, RetryPolicyConfig
from gateway.contacts import ContactResolver, LookupFailed
from gateway.delivery.attempts import send_with_quick_retries
from gateway.delivery.controls import SinkControls
from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Attempt,
    Claim,
    Claimed,
    Delivery,
    DeliveryState,
    NewDelivery,
)
from gateway.delivery.ordering import OrderLanes
from gateway.delivery.quiet import QuietHours
from gateway.delivery.retry import GiveUp
from gateway.delivery.staleness import stale_reason
from gateway.errors import StoreError, StoreRefused, TemplateError
from gateway.redaction import Redactor
from gateway.store.roles import DeliveryQueue, Finished
from gateway.store.shared import SinkControlStore
from gateway.templating import Templates
from sinks.base import Delivered, Message, Permanent, Retry, Sink, Skipped

__all__ = ["Dispatcher", "utcnow"]

log = logging.getLogger("kabarin.dispatcher")

MISSING_SINK_DELAY = 300.0
"""A delivery for a sink no longer in the configuration is put back for this long."""
MAX_RATE_WAIT = 5.0
"""Longest in-process wait for a rate-limit slot; a later slot hands the delivery back."""
PROBE_WAIT = 1.0
"""While a half-open circuit's probe is out, other deliveries come back after this long."""
MOST_PER_COMMIT = 500
"""Outcomes written by one `finish_many`, so one commit never holds the writer long."""
SINK_OFF = "sink switched off ({reason}): enable it with POST /admin/v1/sinks/{sink}/enable"
"""Worded as the store words it for deliveries not claimed since (`Delivery.waiting`)."""
OUTCOME_RETRIES = (0.2, 0.5, 1.0, 2.0, 4.0)
"""Pauses between tries of recording outcomes while the store fails: about 8 s in all, well
inside a lease."""
SEND_SLACK = 1.0
"""On shutdown, a customer send under way is waited for until its sink's ``timeout`` (each
quick retry's too) plus this, so an answer that came in time is recorded."""

_Item = TypeVar("_Item")


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


@dataclass
class _Job:
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


class _Batches(Generic[_Item]):
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


class Dispatcher:
    """Sends due deliveries to their sinks, durably retrying failures (see the module doc)."""

    def __init__(
        self,
        *,
        store: DeliveryQueue,
        sinks: Mapping[str, Sink],
        templates: Templates,
        retry: RetryPolicyConfig,
        config: DispatcherConfig,
        redactor: Redactor,
        worker_id: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        contacts: ContactResolver | None = None,
        fallbacks: Callable[[Delivery], NewDelivery | None] | None = None,
        timezone: ZoneInfo | None = None,
    ) -> None:
        self.store = store
        self.contacts = contacts or ContactResolver()
        """Fills the gaps of a claim's contact from ``contacts.lookup``, if configured."""
        self.fallbacks = fallbacks
        """The fallback delivery of one that ended dead or skipped (`Router.fallback`)."""
        self.timezone = timezone or ZoneInfo("Asia/Jakarta")
        """Quiet hours' zone when a sink names none (``receiver.timezone``)."""
        self.sinks = dict(sinks)
        self.templates = templates
        self.config = config
        self.redactor = redactor
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self._sleep = sleep
        self.capacity = max(1, config.batch)
        """Most deliveries this worker holds at once (claimed and not yet finished)."""
        self._retry = retry
        self._timer = timer
        # A store every replica shares keeps each sink's breaker and rate limit for them all.
        self._shared = store if isinstance(store, SinkControlStore) else None
        self._controls = {name: self._build_controls(name, sink) for name, sink in sinks.items()}
        self._jobs: dict[str, _Job] = {}
        self._lanes = OrderLanes()
        self._outcomes = _Batches(self._finish_many, "kabarin-outcomes")
        self._starts = _Batches(self._start_many, "kabarin-starts")
        self._wake = asyncio.Event()
        self._job_ended = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._missing_warned: dict[str, float] = {}
        self._gone: set[str] = set()
        """Sinks this worker disabled (410): deliveries already claimed for them go back."""
        self._trouble = metrics.StoreTrouble(log, "dispatcher")
        """A store that keeps failing (claims, renewals, outcomes) is logged once per cause."""

    def reconfigure(
        self,
        *,
        sinks: Mapping[str, Sink],
        retry: RetryPolicyConfig,
        templates: Templates,
        redactor: Redactor,
    ) -> None:
        """A reloaded configuration's sinks, for deliveries claimed from now on: a send in
        flight finishes on the sink it started with. A sink object kept by the reload (its
        block unchanged) keeps its breaker, slots and rate limiter when the retry policy is
        the same."""
        controls: dict[str, SinkControls] = {}
        for name, sink in sinks.items():
            old = self._controls.get(name)
            if old is not None and old.sink is sink and retry == self._retry:
                controls[name] = old
            else:
                controls[name] = self._build_controls(name, sink, retry)
        self.sinks, self._controls, self._retry = dict(sinks), controls, retry
        self.templates, self.redactor = templates, redactor
        self._missing_warned.clear()
        self.wake()

    def _build_controls(
        self, name: str, sink: Sink, retry: RetryPolicyConfig | None = None
    ) -> SinkControls:
        return SinkControls.build(
            name,
            sink,
            retry or self._retry,
            timer=self._timer,
            shared=self._shared,
            clock=self.clock,
        )

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the loop task (idempotent)."""
        if self._loop_task is None or self._loop_task.done():
            self._stopping = False
            self._loop_task = asyncio.create_task(self._run(), name="kabarin-dispatcher")
        if self._lease_task is None or self._lease_task.done():
            self._lease_task = asyncio.create_task(self._keep_leases(), name="kabarin-leases")
            log.info("dispatcher %s started (batch %d)", self.worker_id, self.config.batch)

    def wake(self) -> None:
        """New deliveries were committed (or replayed): look at the store now."""
        self._wake.set()

    async def stop(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Stop claiming, let sends under way finish within `timeout` seconds (default
        ``dispatcher.shutdown_timeout``) and customer sends under way within their sink's
        ``timeout`` when that is later, then put everything unfinished back as pending, without
        using up an attempt. A customer send that still has no answer may have reached the
        customer: it ends ``dead`` (`OUTCOME_UNKNOWN`) instead, for a person to replay."""
        wait = float(self.config.shutdown_timeout) if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        if self._loop_task is not None:
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        jobs = list(self._jobs.values())
        for job in jobs:  # nothing sent yet: no reason to wait for these
            if job.waiting and job.task is not None:
                job.task.cancel()
        tasks = [job.task for job in jobs if job.task is not None]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=max(wait, 0.0))
            for job in jobs:  # a customer send is not cut short before its own timeout
                if job.task in late and job.started is not None:
                    left = job.send_ends - self._timer()
                    if left > 0:
                        await asyncio.wait([job.task], timeout=left)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._outcomes.drain()
        now = self.clock()
        unfinished = [self._unfinished(job, now) for job in jobs if not job.finished]
        released = unknown = 0
        try:
            if unfinished:
                kept = await self.store.finish_many(unfinished, worker=self.worker_id)
                for outcome, ok in zip(unfinished, kept, strict=True):
                    if ok and outcome.state == "dead":
                        unknown += 1
                        sink = next(j for j in jobs if j.claim.delivery.id == outcome.delivery_id)
                        self._ended_unknown(outcome.delivery_id, sink.claim.delivery.sink)
                    elif ok:
                        released += 1
        except StoreError as exc:  # their leases run out: claimed again after a restart
            log.warning(
                "dispatcher %s: could not put %d unfinished deliveries back (%s); they are "
                "claimed again when their leases run out",
                self.worker_id,
                len(unfinished),
                exc,
            )
        self._jobs.clear()
        self._job_ended.set()
        if self._lease_task is not None:
            self._lease_task.cancel()
            await asyncio.gather(self._lease_task, return_exceptions=True)
            self._lease_task = None
        log.info(
            "dispatcher %s stopped; %d unfinished deliveries put back, %d customer sends "
            "without an answer ended dead",
            self.worker_id,
            released,
            unknown,
        )

    def _unfinished(self, job: _Job, now: datetime) -> Finished:
        """What a delivery still held at shutdown comes to: put back as it was, or, for a
        customer send under way, dead with its outcome unknown."""
        delivery_id = job.claim.delivery.id
        if job.started is None:
            return Finished(
                delivery_id=delivery_id,
                attempt=None,
                state="pending",
                now=now,
                next_attempt_at=now,
                count_attempt=False,
            )
        attempt = Attempt(
            delivery_id=delivery_id,
            started_at=job.started,
            duration_ms=max(0.0, (now - job.started).total_seconds() * 1000),
            outcome="unknown",
            error=OUTCOME_UNKNOWN,
        )
        return Finished(
            delivery_id=delivery_id, attempt=attempt, state="dead", now=now, error=OUTCOME_UNKNOWN
        )

    def _ended_unknown(self, delivery_id: str, sink: str) -> None:
        log.warning("delivery %s to %s is dead: %s", delivery_id, sink, OUTCOME_UNKNOWN)
        metrics.DELIVERIES.labels(sink, "dead").inc()

    async def released(self, sink: Sink) -> None:
        """Return once no delivery this worker holds is being sent with this sink object (a
        reload's replaced sink is closed after that)."""
        while any(job.sink is sink for job in self._jobs.values()):
            self._job_ended.clear()
            await self._job_ended.wait()

    def circuit_state(self, sink: str) -> str:
        """``closed``, ``half-open`` or ``open``; ``n/a`` for a sink that is not configured."""
        controls = self._controls.get(sink)
        return controls.circuit_state if controls is not None else "n/a"

    async def run_once(self) -> int:
        """Claim one batch and process it to completion; the number of deliveries claimed."""
        jobs = await self._claim()
        tasks = [job.task for job in jobs if job.task is not None]
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(jobs)

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        poll = float(self.config.poll_interval)
        while not self._stopping:
            self._wake.clear()
            limit = min(self.config.batch, self.capacity - len(self._jobs))
            try:
                claimed = len(await self._claim()) if limit > 0 else 0
                if self._stopping:
                    break
                if limit > 0 and claimed >= limit:
                    await asyncio.sleep(0)  # more may be due: claim again right away
                    continue
                delay = poll if limit <= 0 else await self._until_due(poll)
            except Exception as exc:
                self._trouble.failed(
                    "could not claim deliveries", exc, f"trying again every {poll:g}s"
                )
                delay = poll
            if delay > 0:
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)

    async def _keep_leases(self) -> None:
        """Renew the lease of every delivery this worker holds, every third of the lease.

        A send may outlive the lease (a slow sink, quick retries, a wait for a sink slot or a
        rate-limit slot): renewed, its delivery is not taken and sent a second time by another
        worker meanwhile. A worker that dies renews nothing, and its deliveries are claimed
        again once their leases run out."""
        every = float(self.config.lease) / 3
        while True:
            await asyncio.sleep(every)
            # a finished job whose outcome is still being recorded keeps its lease too
            held = list(self._jobs)
            if not held:
                continue
            try:
                kept = await self.store.renew(
                    held,
                    worker=self.worker_id,
                    now=self.clock(),
                    lease_seconds=float(self.config.lease),
                )
            except Exception as exc:
                self._trouble.failed("could not renew leases", exc, f"trying again in {every:g}s")
                continue
            self._trouble.recovered()
            for lost in set(held) - kept:
                job = self._jobs.get(lost)
                if job is not None and not job.finished:
                    log.warning(
                        "delivery %s to %s: its lease ran out before it could be renewed; "
                        "another worker may send it too",
                        lost,
                        job.claim.delivery.sink,
                    )

    async def _until_due(self, poll: float) -> float:
        """Seconds to sleep after a partial claim: until the next due time, at most `poll`.

        A due time already past means it is held back (ordering, a lease): a finishing job
        or `wake` will look again sooner than `poll`.
        """
        due = await self.store.next_due()
        if due is None:
            return poll
        ahead = (due - self.clock()).total_seconds()
        return min(poll, ahead) if ahead > 0 else poll

    async def _claim(self) -> list[_Job]:
        limit = min(self.config.batch, self.capacity - len(self._jobs))
        if limit <= 0 or self._stopping:
            return []
        claimed = await self.store.claim(
            worker=self.worker_id,
            now=self.clock(),
            limit=limit,
            lease_seconds=float(self.config.lease),
        )
        self._trouble.recovered()
        self._report(claimed)
        jobs: list[_Job] = []
        # Tasks start in claim order, so (sink, order) lanes queue in it.
        for claim in claimed.claims:
            self._gone.discard(claim.delivery.sink)  # the store hands it out: enabled again
            if claim.delivery.id in self._jobs:
                # Our own lease ran out while a slow send was still under way, and the store
                # handed the delivery back to us: the job in progress keeps it (the lease is
                # renewed by this claim); a second job would send it twice.
                continue
            job = _Job(claim)
            self._jobs[claim.delivery.id] = job
            job.task = asyncio.create_task(self._process(job), name=f"deliver-{claim.delivery.id}")
            jobs.append(job)
        return jobs

    def _report(self, claimed: Claimed) -> None:
        """Log and count what the claim ended on the way: one line per delivery."""
        for d in claimed.superseded:
            log.info(
                "delivery %s to %s superseded: a status of order %s further along went, or "
                "goes, to this sink instead (ordering: latest)",
                d.id,
                d.sink,
                d.order_id,
            )
            metrics.DELIVERIES_SUPERSEDED.labels(d.sink).inc()
        for d in claimed.unknown:
            log.warning("delivery %s to %s is dead: %s", d.id, d.sink, OUTCOME_UNKNOWN)
            metrics.DELIVERIES.labels(d.sink, "dead").inc()

    # -- one delivery ----------------------------------------------------------------------
    async def _process(self, job: _Job) -> None:
        delivery = job.claim.delivery
        try:
            async with self._lanes.hold(delivery.sink, delivery.order_id):
                await self._deliver(job)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            self._trouble.failed(
                f"delivery {delivery.id} to {delivery.sink} stopped",
                exc,
                "it is claimed again when its lease runs out",
            )
        except Exception:
            log.exception("delivery %s to %s failed unexpectedly", delivery.id, delivery.sink)
        finally:
            # Unfinished after an error: the lease runs out and the delivery is claimed again.
            self._jobs.pop(delivery.id, None)
            self._job_ended.set()
            self._wake.set()  # room for more, and its successor in the order may be due

    async def _deliver(self, job: _Job) -> None:
        claim = job.claim
        delivery = claim.delivery
        controls = self._controls.get(delivery.sink)
        if controls is None:
            self._warn_missing(delivery.sink)
            await self._hand_back(job, MISSING_SINK_DELAY, "sink not in the configuration")
            return
        sink = job.sink = controls.sink
        started = self.clock()
        stale = stale_reason(claim.event, started, sink.config.max_age)
        if stale is not None:
            log.info("delivery %s to %s skipped: %s", delivery.id, delivery.sink, stale)
            attempt = Attempt(
                delivery_id=delivery.id,
                started_at=started,
                duration_ms=0.0,
                outcome="skipped",
                error=stale,
            )
            await self._finish(job, attempt, "skipped", error=stale, fallback=False)
            return
        if sink.config.quiet_hours is not None:
            quiet = QuietHours.from_config(sink.config.quiet_hours, self.timezone)
            until = quiet.until(started)
            if until is not None:
                delay = (until - started).total_seconds()
                await self._hand_back(job, delay, quiet.describe(until))
                return
        try:
            contact = await self.contacts.resolve(
                delivery.order_id, claim.contact, shop=delivery.shop
            )
        except LookupFailed as exc:
            await self._lookup_failed(job, controls, started, str(exc))
            return
        try:
            message = self.templates.message(
                sink,
                delivery,
                event=claim.event,
                contact=contact,
                attempt=delivery.attempts + 1,
            )
        except TemplateError as exc:
            error = self.redactor.redact(f"template error: {exc}")
            log.error("delivery %s to %s is dead: %s", delivery.id, delivery.sink, error)
            attempt = Attempt(
                delivery_id=delivery.id,
                started_at=started,
                duration_ms=0.0,
                outcome="error",
                error=error,
            )
            await self._finish(job, attempt, "dead", error=error)
            return

        opens_in = await controls.opens_in()
        if opens_in > 0:
            await self._hand_back(job, opens_in, self._circuit_open(opens_in))
            return
        try:
            # asyncio.timeout, not wait_for: a batch queues many jobs here, and wait_for
            # would give each its own task.
            async with asyncio.timeout(float(self.config.lease) / 2):
                await controls.slots.acquire()
        except TimeoutError:  # the sink is saturated: the lease must not run out meanwhile
            await self._hand_back(job, 0.0)
            return
        try:
            if delivery.sink in self._gone:  # disabled while this one waited
                await self._hand_back(
                    job, 0.0, SINK_OFF.format(reason="410 Gone", sink=delivery.sink)
                )
                return
            gate = await controls.admit(probe_lease=float(self.config.lease))
            if not gate.allowed:
                if gate.opens_in > 0:  # it opened again while this one waited
                    await self._hand_back(job, gate.opens_in, self._circuit_open(gate.opens_in))
                else:
                    await self._hand_back(job, PROBE_WAIT, "circuit half-open: a probe is out")
                return
            probe = gate.probe
            wait = await controls.reserve(min(MAX_RATE_WAIT, float(self.config.lease) / 4))
            if wait is None:
                if probe:
                    await controls.release_probe()
                delay = await controls.defer()
                await self._hand_back(job, delay, f"rate limit: next slot {self._at(delay)}")
                return
            if wait > 0:
                await self._sleep(wait)
            job.waiting = False
            await self._send(job, controls, message, probe=probe)
        finally:
            controls.slots.release()

    async def _send(
        self, job: _Job, controls: SinkControls, message: Message, *, probe: bool
    ) -> None:
        delivery = job.claim.delivery
        timeout = getattr(controls.sink.config, "timeout", None)
        bound = float(timeout) + SEND_SLACK if timeout is not None else 0.0
        if controls.sink.writes_to_customer:
            # At most once: committed before the request leaves, so a send cut short by a
            # crash or a shutdown is never taken for one that did not happen.
            if not await self._starts.commit(delivery.id):
                job.finished = True  # another worker has it: nothing of ours to put back
                log.warning(
                    "delivery %s to %s: lease lost before the send started; not sent",
                    delivery.id,
                    delivery.sink,
                )
                return
            job.started = self.clock()
            job.send_ends = self._timer() + bound

        async def record_quick_try(attempt: Attempt) -> None:
            # An intermediate try: recorded, the lease kept, the schedule not used up.
            await self.store.finish(
                delivery.id,
                worker=self.worker_id,
                attempt=attempt,
                state="in_flight",
                now=self.clock(),
                count_attempt=False,
            )
            job.send_ends = self._timer() + bound  # the next try has its own timeout

        result, attempt = await send_with_quick_retries(
            controls.sink,
            message,
            clock=self.clock,
            redactor=self.redactor,
            record=record_quick_try,
        )
        now = self.clock()
        sink_name = delivery.sink
        if isinstance(result, Delivered):
            await controls.record(ok=True)
            if await self._finish(job, attempt, "delivered"):
                latency = (now - job.claim.event.received_at).total_seconds()
                metrics.DELIVERY_LATENCY.labels(sink_name).observe(max(latency, 0.0))
            return
        if isinstance(result, Skipped):
            # Nothing was sent, so it says nothing about the sink's health either way.
            if probe:
                await controls.release_probe()
            reason = attempt.error or "skipped"
            log.info("delivery %s to %s skipped: %s", delivery.id, sink_name, reason)
            await self._finish(job, attempt, "skipped", error=reason)
            return
        error = attempt.error or "failed"
        if isinstance(result, Permanent):
            # An answer, even a refusal, says the sink is up; no answer says it is not.
            await controls.record(ok=not result.unanswered)
            if result.disable_sink:
                # Switched off before this one is put back, so no claim hands it out again
                # until an operator enables the sink; the refusal costs it no attempt.
                await self._disable(sink_name, error)
                await self._finish(
                    job,
                    attempt,
                    "pending",
                    next_attempt_at=now,
                    error=error,
                    count_attempt=False,
                    waiting=SINK_OFF.format(reason=error, sink=sink_name),
                )
                return
            log.warning("delivery %s to %s is dead: %s", delivery.id, sink_name, error)
            await self._finish(job, attempt, "dead", error=error)
            return
        await controls.record(ok=False)
        decision = controls.policy.decide(delivery.attempts + 1, result, now)
        if isinstance(decision, GiveUp):
            reason = self.redactor.redact(decision.reason)
            log.warning("delivery %s to %s is dead: %s", delivery.id, sink_name, reason)
            await self._finish(job, attempt, "dead", error=reason)
            return
        log.info(
            "delivery %s to %s failed (attempt %d of %d), retrying in %.1fs: %s",
            delivery.id,
            sink_name,
            delivery.attempts + 1,
            controls.policy.max_attempts,
            decision.delay,
            error,
        )
        await self._finish(job, attempt, "pending", next_attempt_at=decision.when, error=error)

    async def _lookup_failed(
        self, job: _Job, controls: SinkControls, started: datetime, reason: str
    ) -> None:
        """The shop's system did not say who the customer is: an attempt on the schedule (the
        sink is not to blame, so its breaker does not count it)."""
        delivery = job.claim.delivery
        error = self.redactor.redact(reason)
        now = self.clock()
        attempt = Attempt(
            delivery_id=delivery.id,
            started_at=started,
            duration_ms=(now - started).total_seconds() * 1000,
            outcome="retry",
            error=error,
        )
        decision = controls.policy.decide(delivery.attempts + 1, Retry(reason=error), now)
        if isinstance(decision, GiveUp):
            reason = self.redactor.redact(decision.reason)
            log.warning("delivery %s to %s is dead: %s", delivery.id, delivery.sink, reason)
            await self._finish(job, attempt, "dead", error=reason)
            return
        log.info(
            "delivery %s to %s: %s; retrying in %.1fs",
            delivery.id,
            delivery.sink,
            error,
            decision.delay,
        )
        await self._finish(job, attempt, "pending", next_attempt_at=decision.when, error=error)

    async def _disable(self, sink: str, reason: str) -> None:
        self._gone.add(sink)
        await self.store.disable_sink(sink, reason=reason, now=self.clock())
        log.error(
            "sink %s DISABLED: the destination answered that it is gone (%s). Nothing more is "
            "sent to it; its deliveries wait. Fix its configuration, then re-enable it with "
            "POST /admin/v1/sinks/%s/enable",
            sink,
            reason,
            sink,
        )

    # -- talking to the store --------------------------------------------------------------
    async def _finish_many(self, outcomes: list[Finished]) -> list[bool]:
        """`finish_many`, tried again over a few seconds while the store fails (a dropped
        connection): an outcome that is not recorded leaves its delivery to be sent again once
        the lease runs out. One recorded whose answer was lost reads as a lost lease on the
        next try, which changes nothing."""
        for pause in OUTCOME_RETRIES:
            try:
                return await self.store.finish_many(outcomes, worker=self.worker_id)
            except StoreRefused:
                raise
            except StoreError as exc:
                log.warning("dispatcher: could not record %d outcomes (%s)", len(outcomes), exc)
                await asyncio.sleep(pause)
        return await self.store.finish_many(outcomes, worker=self.worker_id)

    async def _start_many(self, delivery_ids: list[str]) -> list[bool]:
        """`DeliveryQueue.start` for the customer sends about to leave: one commit for all."""
        kept = await self.store.start(delivery_ids, worker=self.worker_id, now=self.clock())
        return [i in kept for i in delivery_ids]

    async def _finish(
        self,
        job: _Job,
        attempt: Attempt,
        state: DeliveryState,
        *,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        count_attempt: bool = True,
        waiting: str | None = None,
        fallback: bool = True,
    ) -> bool:
        delivery = job.claim.delivery
        job.waiting = False
        job.finished = True  # handed over: put back on shutdown no more
        spare = None
        if fallback and state in ("dead", "skipped") and self.fallbacks is not None:
            spare = self.fallbacks(delivery)
        kept = await self._outcomes.commit(
            Finished(
                delivery_id=delivery.id,
                attempt=attempt,
                state=state,
                now=self.clock(),
                next_attempt_at=next_attempt_at,
                error=error,
                count_attempt=count_attempt,
                waiting=waiting,
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
        metrics.DELIVERIES.labels(delivery.sink, "retry" if state == "pending" else state).inc()
        return True

    async def _hand_back(self, job: _Job, delay: float, waiting: str | None = None) -> None:
        """Put a claimed delivery back as pending after `delay` s, its attempts unchanged."""
        job.waiting = False
        job.finished = True
        now = self.clock()
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

    def _at(self, delay: float) -> str:
        """``at 05:12:30 UTC``: the moment `delay` seconds from now, for `Delivery.waiting`."""
        return f"at {(self.clock() + timedelta(seconds=max(delay, 0.0))):%H:%M:%S} UTC"

    def _circuit_open(self, opens_in: float) -> str:
        until = self.clock() + timedelta(seconds=opens_in)
        return f"circuit open until {until:%H:%M:%S} UTC"

    def _warn_missing(self, sink: str) -> None:
        now = time.monotonic()
        last = self._missing_warned.get(sink)
        if last is None or now - last >= MISSING_SINK_DELAY:
            self._missing_warned[sink] = now
            log.warning(
                "deliveries for sink %s wait: it is not in the configuration (restore it, or "
                "they stay pending); next look in %.0fs",
                sink,
                MISSING_SINK_DELAY,
            )
