"""One go at sending a delivery: a `Sink.send`, timed and turned into an `Attempt` row.

A connection blip (a `Retry` marked `Retry.unsent`: refused, DNS failure, connect timeout, so
the peer cannot have got the request) is tried again at once, in-process, a couple of times
within about a second (tenacity), before the durable schedule takes over. A failure after the
request went out (no answer, a broken one) is never tried again at once: the peer may have
acted on it. Every try is its own attempt row; the tries before the last are handed to
`record` as they happen, the last one is returned for the caller to store with the outcome.
An exception from a sink is a `Retry` too, with its (redacted) text, but is not tried again
in-process: it is a bug or a misconfiguration, not a blip.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from tenacity import AsyncRetrying, retry_if_result, stop_after_attempt, wait_exponential
from tenacity.wait import wait_random

from gateway.delivery.model import Attempt, Outcome
from gateway.redaction import Redactor
from sinks.base import Delivered, Message, Permanent, Retry, SendResult, Sink, Skipped

__all__ = ["QUICK_RETRIES", "is_connection_blip", "send_once", "send_with_quick_retries"]

log = logging.getLogger("kabarin.dispatcher")

QUICK_RETRIES = 2
"""In-process tries after the first one, for connection blips only."""
_QUICK_WAIT = wait_exponential(multiplier=0.1, max=0.4) + wait_random(0, 0.05)
"""About 0.1 s, then 0.2 s (plus a little jitter): the tries stay within a second."""

_OUTCOMES: dict[type[SendResult], Outcome] = {
    Delivered: "delivered",
    Retry: "retry",
    Permanent: "permanent",
    Skipped: "skipped",
}


def is_connection_blip(result: SendResult, attempt: Attempt) -> bool:
    """A failure worth trying again at once: the request cannot have reached the peer."""
    return isinstance(result, Retry) and result.unsent and attempt.outcome == "retry"


async def send_once(
    sink: Sink,
    message: Message,
    *,
    clock: Callable[[], datetime],
    redactor: Redactor,
) -> tuple[SendResult, Attempt]:
    """Send the message once; the sink's answer and the attempt row describing it."""
    started_at = clock()
    started = time.perf_counter()
    outcome: Outcome
    try:
        result = await sink.send(message)
        outcome = _OUTCOMES[type(result)]
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        reason = redactor.redact(f"{type(exc).__name__}: {exc}")
        log.warning(
            "sink %s raised while sending delivery %s: %s", sink.name, message.delivery_id, reason
        )
        result, outcome = Retry(reason=reason), "error"
    duration_ms = (time.perf_counter() - started) * 1000
    said = result.note if isinstance(result, Delivered) else result.reason
    error = None if said is None else redactor.redact(said)
    return result, Attempt(
        delivery_id=message.delivery_id,
        started_at=started_at,
        duration_ms=duration_ms,
        outcome=outcome,
        status_code=result.status_code,
        error=error,
    )


async def send_with_quick_retries(
    sink: Sink,
    message: Message,
    *,
    clock: Callable[[], datetime],
    redactor: Redactor,
    record: Callable[[Attempt], Awaitable[object]],
    quick_retries: int = QUICK_RETRIES,
) -> tuple[SendResult, Attempt]:
    """`send_once`, tried again in-process while it fails with a connection blip.

    Returns the last try's result and attempt row; the earlier rows went to `record`.
    """
    first = await send_once(sink, message, clock=clock, redactor=redactor)
    if quick_retries <= 0 or not is_connection_blip(*first):
        return first  # nearly every send: no retry machinery is built for it
    retrying = AsyncRetrying(
        stop=stop_after_attempt(1 + quick_retries),
        wait=_QUICK_WAIT,
        retry=retry_if_result(lambda tried: is_connection_blip(*tried)),
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    last: tuple[SendResult, Attempt] | None = None
    earlier: tuple[SendResult, Attempt] | None = first
    async for try_ in retrying:
        if last is not None:  # the previous try was a blip: keep its row, then go again
            await record(last[1])
        with try_:
            # The first try already happened: it enters the schedule as its first attempt.
            last = earlier or await send_once(sink, message, clock=clock, redactor=redactor)
            earlier = None
        if not try_.retry_state.outcome or not try_.retry_state.outcome.failed:
            try_.retry_state.set_result(last)
    assert last is not None
    return last
