"""What becomes of a worker's jobs when it stops.

Jobs still only waiting (their order lane, a sink slot, a rate-limit slot) are stopped at once;
sends under way get ``dispatcher.shutdown_timeout``, and a customer send (at most once: its start
is committed) also its sink's ``timeout`` when that is later (`settle`). Then everything
unfinished is put back as pending without using an attempt, except a customer send that still
has no answer: it may have reached the customer, so it ends ``dead`` (`OUTCOME_UNKNOWN`) for a
person to replay (`put_back`). After a crash the claim does the same once their leases run out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from gateway import metrics
from gateway.delivery.model import OUTCOME_UNKNOWN, Attempt, Delivery
from gateway.delivery.recording import Job
from gateway.errors import StoreError
from gateway.store.roles import DeliveryQueue, Finished
from sinks.base import Sink

__all__ = ["SEND_SLACK", "put_back", "send_bound", "settle", "unfinished"]

log = logging.getLogger("kabarin.dispatcher")

SEND_SLACK = 1.0
"""On shutdown, a customer send under way is waited for until its sink's ``timeout`` (each
quick retry's too) plus this, so an answer that came in time is recorded."""


def send_bound(sink: Sink) -> float:
    """How long shutdown waits for one try of a customer send on `sink`, from its start."""
    timeout = getattr(sink.config, "timeout", None)
    return float(timeout) + SEND_SLACK if timeout is not None else 0.0


async def settle(jobs: list[Job], wait: float, timer: Callable[[], float]) -> None:
    """Stop the jobs that only wait, give the others `wait` seconds (a customer send under way
    its `Job.send_ends` when that is later), then cancel what is left."""
    for job in jobs:  # nothing sent yet: no reason to wait for these
        if job.waiting and job.task is not None:
            job.task.cancel()
    tasks = [job.task for job in jobs if job.task is not None]
    if tasks:
        _, late = await asyncio.wait(tasks, timeout=max(wait, 0.0))
        for job in jobs:  # a customer send is not cut short before its own timeout
            if job.task in late and job.started is not None:
                left = job.send_ends - timer()
                if left > 0:
                    await asyncio.wait([job.task], timeout=left)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def put_back(
    store: DeliveryQueue, jobs: list[Job], *, worker: str, now: datetime
) -> tuple[int, int]:
    """Record what the jobs not finished come to (`unfinished`), in one commit; the numbers put
    back and ended dead. A store that fails leaves them to be claimed once their leases run
    out."""
    outcomes = [unfinished(job, now) for job in jobs if not job.finished]
    released = unknown = 0
    try:
        if outcomes:
            kept = await store.finish_many(outcomes, worker=worker)
            for outcome, ok in zip(outcomes, kept, strict=True):
                if ok and outcome.state == "dead":
                    unknown += 1
                    job = next(j for j in jobs if j.claim.delivery.id == outcome.delivery_id)
                    _ended_unknown(outcome.delivery_id, job.claim.delivery)
                elif ok:
                    released += 1
    except StoreError as exc:  # their leases run out: claimed again after a restart
        log.warning(
            "dispatcher %s: could not put %d unfinished deliveries back (%s); they are "
            "claimed again when their leases run out",
            worker,
            len(outcomes),
            exc,
        )
    return released, unknown


def unfinished(job: Job, now: datetime) -> Finished:
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


def _ended_unknown(delivery_id: str, delivery: Delivery) -> None:
    log.warning("delivery %s to %s is dead: %s", delivery_id, delivery.sink, OUTCOME_UNKNOWN)
    metrics.DELIVERIES.labels(delivery.sink, "dead", delivery.shop).inc()
