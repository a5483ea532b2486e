"""A prepared message through its sink's controls, sent, and what the answer means for the delivery.

    circuit breaker → sink slot (concurrency) → rate limit → send (quick retries for network
    blips) → finish

A delivery the controls hold back is put back without using an attempt (circuit open, rate
limit, sink switched off by a 410), with `Delivery.waiting` saying why. A send ends in
``delivered``; ``pending`` at the time the `RetryPolicy` chose; ``dead``; or ``skipped`` (the
sink had nothing to send: its reason is kept). Every send is one attempt row, its error text
passed through the `Redactor`.

Sinks that write to customers (`Sink.writes_to_customer`: SMS, WhatsApp, email to the customer)
are sent at most once: the start of each send is committed (`Recorder.start`) before the request
leaves (what shutdown then does with it: `gateway.delivery.shutdown`). The machine sinks
(webhook, Slack, staff email) pay nothing for this and stay at least once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Protocol

from gateway import metrics
from gateway.config import DispatcherConfig
from gateway.delivery.attempts import send_with_quick_retries
from gateway.delivery.controls import SinkControls
from gateway.delivery.model import Attempt
from gateway.delivery.recording import Ending, Job, Recorder
from gateway.delivery.retry import GiveUp
from gateway.delivery.shutdown import send_bound
from gateway.redaction import Redactor
from gateway.store.roles import DeliveryQueue
from sinks.base import Delivered, Message, Permanent, Skipped

__all__ = ["MAX_RATE_WAIT", "PROBE_WAIT", "SINK_OFF", "Owner", "Sender"]

log = logging.getLogger("kabarin.dispatcher")

MAX_RATE_WAIT = 5.0
"""Longest in-process wait for a rate-limit slot; a later slot hands the delivery back."""
PROBE_WAIT = 1.0
"""While a half-open circuit's probe is out, other deliveries come back after this long."""
SINK_OFF = "sink switched off ({reason}): enable it with POST /admin/v1/sinks/{sink}/enable"
"""Worded as the store words it for deliveries not claimed since (`Delivery.waiting`)."""


class Owner(Protocol):
    """What the sender reads from the dispatcher it works for, at each use (a reload replaces
    the redactor; a test may replace the clock)."""

    store: DeliveryQueue
    worker_id: str
    config: DispatcherConfig
    clock: Callable[[], datetime]
    redactor: Redactor


class Sender:
    """Sends prepared messages for the dispatcher that owns it (see the module doc)."""

    def __init__(
        self,
        owner: Owner,
        recorder: Recorder,
        *,
        timer: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        self._owner = owner
        self._recorder = recorder
        self._timer = timer
        self._sleep = sleep
        self.gone: set[str] = set()
        """Sinks this worker disabled (410): deliveries already claimed for them go back."""

    async def send(self, job: Job, controls: SinkControls, message: Message) -> None:
        """Take `message` through the breaker, a sink slot and the rate limit, send it, and
        record how the job ends."""
        delivery = job.claim.delivery
        lease = float(self._owner.config.lease)
        opens_in = await controls.opens_in()
        if opens_in > 0:
            await self._recorder.hand_back(job, opens_in, self._circuit_open(opens_in))
            return
        try:
            # asyncio.timeout, not wait_for: a batch queues many jobs here, and wait_for
            # would give each its own task.
            async with asyncio.timeout(lease / 2):
                await controls.slots.acquire()
        except TimeoutError:  # the sink is saturated: the lease must not run out meanwhile
            await self._recorder.hand_back(job, 0.0)
            return
        try:
            if delivery.sink in self.gone:  # disabled while this one waited
                await self._recorder.hand_back(
                    job, 0.0, SINK_OFF.format(reason="410 Gone", sink=delivery.sink)
                )
                return
            gate = await controls.admit(probe_lease=lease)
            if not gate.allowed:
                if gate.opens_in > 0:  # it opened again while this one waited
                    await self._recorder.hand_back(
                        job, gate.opens_in, self._circuit_open(gate.opens_in)
                    )
                else:
                    await self._recorder.hand_back(
                        job, PROBE_WAIT, "circuit half-open: a probe is out"
                    )
                return
            probe = gate.probe
            wait = await controls.reserve(min(MAX_RATE_WAIT, lease / 4))
            if wait is None:
                if probe:
                    await controls.release_probe()
                delay = await controls.defer()
                await self._recorder.hand_back(
                    job, delay, f"rate limit: next slot {self._at(delay)}"
                )
                return
            if wait > 0:
                await self._sleep(wait)
            job.waiting = False
            await self._send(job, controls, message, probe=probe)
        finally:
            controls.slots.release()

    async def _send(
        self, job: Job, controls: SinkControls, message: Message, *, probe: bool
    ) -> None:
        owner = self._owner
        delivery = job.claim.delivery
        bound = send_bound(controls.sink)
        if controls.sink.writes_to_customer:
            # At most once: committed before the request leaves, so a send cut short by a
            # crash or a shutdown is never taken for one that did not happen.
            if not await self._recorder.start(delivery.id):
                job.finished = True  # another worker has it: nothing of ours to put back
                log.warning(
                    "delivery %s to %s: lease lost before the send started; not sent",
                    delivery.id,
                    delivery.sink,
                )
                return
            job.started = owner.clock()
            job.send_ends = self._timer() + bound

        async def record_quick_try(attempt: Attempt) -> None:
            # An intermediate try: recorded, the lease kept, the schedule not used up.
            await owner.store.finish(
                delivery.id,
                worker=owner.worker_id,
                attempt=attempt,
                state="in_flight",
                now=owner.clock(),
                count_attempt=False,
            )
            job.send_ends = self._timer() + bound  # the next try has its own timeout

        result, attempt = await send_with_quick_retries(
            controls.sink,
            message,
            clock=owner.clock,
            redactor=owner.redactor,
            record=record_quick_try,
        )
        now = owner.clock()
        sink_name = delivery.sink
        finish = self._recorder.finish
        if isinstance(result, Delivered):
            await controls.record(ok=True)
            if await finish(job, Ending(attempt, "delivered")):
                latency = (now - job.claim.event.received_at).total_seconds()
                latency_of = metrics.DELIVERY_LATENCY.labels(sink_name, delivery.shop)
                latency_of.observe(max(latency, 0.0))
            return
        if isinstance(result, Skipped):
            # Nothing was sent, so it says nothing about the sink's health either way.
            if probe:
                await controls.release_probe()
            reason = attempt.error or "skipped"
            log.info("delivery %s to %s skipped: %s", delivery.id, sink_name, reason)
            await finish(job, Ending(attempt, "skipped", error=reason))
            return
        error = attempt.error or "failed"
        if isinstance(result, Permanent):
            # An answer, even a refusal, says the sink is up; no answer says it is not.
            await controls.record(ok=not result.unanswered)
            if result.disable_sink:
                # Switched off before this one is put back, so no claim hands it out again
                # until an operator enables the sink; the refusal costs it no attempt.
                await self._disable(sink_name, error)
                ending = Ending(
                    attempt,
                    "pending",
                    next_attempt_at=now,
                    error=error,
                    count_attempt=False,
                    waiting=SINK_OFF.format(reason=error, sink=sink_name),
                )
                await finish(job, ending)
                return
            log.warning("delivery %s to %s is dead: %s", delivery.id, sink_name, error)
            await finish(job, Ending(attempt, "dead", error=error))
            return
        await controls.record(ok=False)
        decision = controls.policy.decide(delivery.attempts + 1, result, now)
        if isinstance(decision, GiveUp):
            reason = owner.redactor.redact(decision.reason)
            log.warning("delivery %s to %s is dead: %s", delivery.id, sink_name, reason)
            await finish(job, Ending(attempt, "dead", error=reason))
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
        await finish(job, Ending(attempt, "pending", next_attempt_at=decision.when, error=error))

    async def _disable(self, sink: str, reason: str) -> None:
        self.gone.add(sink)
        await self._owner.store.disable_sink(sink, reason=reason, now=self._owner.clock())
        log.error(
            "sink %s DISABLED: the destination answered that it is gone (%s). Nothing more is "
            "sent to it; its deliveries wait. Fix its configuration, then re-enable it with "
            "POST /admin/v1/sinks/%s/enable",
            sink,
            reason,
            sink,
        )

    def _at(self, delay: float) -> str:
        """``at 05:12:30 UTC``: the moment `delay` seconds from now, for `Delivery.waiting`."""
        return f"at {(self._owner.clock() + timedelta(seconds=max(delay, 0.0))):%H:%M:%S} UTC"

    def _circuit_open(self, opens_in: float) -> str:
        until = self._owner.clock() + timedelta(seconds=opens_in)
        return f"circuit open until {until:%H:%M:%S} UTC"
