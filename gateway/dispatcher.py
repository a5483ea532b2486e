"""The dispatcher: claims due deliveries, renders them, sends them, and records what happened.

One loop task claims batches of due deliveries from the store (with a lease) as long as there is
room, and starts one job per delivery. It sleeps until `Dispatcher.wake` (the receiver calls it
after each commit), until a job finishes, until the store's next due time, or for at most
``dispatcher.poll_interval``. While a job runs, its lease is renewed. Each job goes through the
notify pipeline, a stage of `gateway.delivery` at a time:

    keep (sink, order) in claim order (`ordering`) → staleness, quiet hours, the contact, the
    message parts (`preparation`) → circuit breaker → sink slot → rate limit → send → finish
    (`sending`), its outcome committed in batches (`recording`)

and ends in one outcome: ``delivered``; ``pending`` at the time the `RetryPolicy` chose;
``dead``; ``skipped``; or put back without using an attempt (circuit open, rate limit, quiet
hours, sink not configured or switched off by a 410, shutdown), with `Delivery.waiting` saying
why. Ordering between deliveries of one (sink, order) is the store's job
(`DeliveryQueue.claim`). A delivery that ends ``dead`` or ``skipped`` on a sink its route gives
a fallback issues the fallback delivery in the same commit.

Sinks that write to customers are sent at most once (`gateway.delivery.sending`); on shutdown
the dispatcher waits for their sends under way and ends the ones that still have no answer
``dead`` (`gateway.delivery.shutdown`); after a crash the claim does the same once their leases
run out.
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
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway import metrics
from gateway.config import DispatcherConfig, RetryPolicyConfig
from gateway.contacts import ContactResolver
from gateway.delivery.controls import SinkControls
from gateway.delivery.model import OUTCOME_UNKNOWN, Claimed, Delivery, NewDelivery
from gateway.delivery.ordering import OrderLanes
from gateway.delivery.preparation import Estimates, prepare
from gateway.delivery.recording import Ending, HandBack, Job, Recorder
from gateway.delivery.sending import Sender
from gateway.delivery.shutdown import put_back, settle
from gateway.errors import StoreError
from gateway.redaction import Redactor
from gateway.store.roles import DeliveryQueue
from gateway.store.shared import SinkControlStore
from gateway.templating import Templates
from sinks.base import Sink

__all__ = ["Dispatcher", "utcnow"]

log = logging.getLogger("kabarin.dispatcher")

MISSING_SINK_DELAY = 300.0
"""A delivery for a sink no longer in the configuration is put back for this long."""


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


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
        estimates: Estimates | None = None,
    ) -> None:
        self.store = store
        self.estimates = estimates
        """Looks up a parcel's delivery estimate for templates that read ``estimate``."""
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
        self.capacity = max(1, config.batch)
        """Most deliveries this worker holds at once (claimed and not yet finished)."""
        self._retry = retry
        self._timer = timer
        # A store every replica shares keeps each sink's breaker and rate limit for them all.
        self._shared = store if isinstance(store, SinkControlStore) else None
        self._controls = {name: self._build_controls(name, sink) for name, sink in sinks.items()}
        self._jobs: dict[str, Job] = {}
        self._lanes = OrderLanes()
        # The stages read the attributes above at each use (each states which, as its
        # `Owner`), so what a reload or a test replaces here is what they use next.
        self._recorder = Recorder(self)
        self._sender = Sender(self, self._recorder, timer=timer, sleep=sleep)
        self._wake = asyncio.Event()
        self._job_ended = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task[None] | None = None
        self._lease_task: asyncio.Task[None] | None = None
        self._missing_warned: dict[str, float] = {}
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
        await settle(jobs, wait, self._timer)
        await self._recorder.drain()
        released, unknown = await put_back(
            self.store, jobs, worker=self.worker_id, now=self.clock()
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

    async def _claim(self) -> list[Job]:
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
        jobs: list[Job] = []
        # Tasks start in claim order, so (sink, order) lanes queue in it.
        for claim in claimed.claims:
            self._sender.gone.discard(claim.delivery.sink)  # the store hands it out: enabled again
            if claim.delivery.id in self._jobs:
                # Our own lease ran out while a slow send was still under way, and the store
                # handed the delivery back to us: the job in progress keeps it (the lease is
                # renewed by this claim); a second job would send it twice.
                continue
            job = Job(claim)
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
            metrics.DELIVERIES_SUPERSEDED.labels(d.sink, d.shop).inc()
        for d in claimed.unknown:
            log.warning("delivery %s to %s is dead: %s", d.id, d.sink, OUTCOME_UNKNOWN)
            metrics.DELIVERIES.labels(d.sink, "dead", d.shop).inc()

    # -- one delivery ----------------------------------------------------------------------
    async def _process(self, job: Job) -> None:
        delivery = job.claim.delivery
        try:
            async with self._lanes.hold(delivery.sink, delivery.shop, delivery.order_id):
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

    async def _deliver(self, job: Job) -> None:
        claim = job.claim
        delivery = claim.delivery
        controls = self._controls.get(delivery.sink)
        if controls is None:
            self._warn_missing(delivery.sink)
            await self._recorder.hand_back(job, MISSING_SINK_DELAY, "sink not in the configuration")
            return
        job.sink = controls.sink
        prepared = await prepare(claim, controls, self)
        if isinstance(prepared, HandBack):
            await self._recorder.hand_back(job, prepared.delay, prepared.waiting)
        elif isinstance(prepared, Ending):
            await self._recorder.finish(job, prepared)
        else:
            await self._sender.send(job, controls, prepared)

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
