"""Before a send: is the message still worth sending now, to whom, and what does it say.

`prepare` takes a claimed delivery through the decisions that come before its sink's controls:

    staleness (``max_age``) → quiet hours → the contact (`gateway.contacts`) → render the parts

and answers the `Message` to send, or what the job comes to instead: an `Ending` (a stale event
is ``skipped``, with no fallback: it would be as stale there; a template error is ``dead``; a
failed contact lookup is a failed attempt on the retry schedule) or a `HandBack` (due inside
the sink's quiet hours: put back until the window ends, without using an attempt).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from gateway.contacts import ContactResolver, LookupFailed
from gateway.delivery.controls import SinkControls
from gateway.delivery.model import Attempt, Claim
from gateway.delivery.quiet import QuietHours
from gateway.delivery.recording import Ending, HandBack
from gateway.delivery.retry import GiveUp, RetryPolicy
from gateway.delivery.staleness import stale_reason
from gateway.digests.message import digest_of
from gateway.errors import TemplateError
from gateway.redaction import Redactor
from gateway.templating import Templates
from sinks.base import Message, Retry

__all__ = ["Owner", "prepare"]

log = logging.getLogger("kabarin.dispatcher")


class Owner(Protocol):
    """What `prepare` reads from the dispatcher it works for, at each use: a reload replaces
    the templates and the redactor (one during a contact lookup is seen by the rendering)."""

    clock: Callable[[], datetime]
    contacts: ContactResolver
    """Fills the gaps of a claim's contact."""
    templates: Templates
    redactor: Redactor
    timezone: ZoneInfo
    """Quiet hours' zone when a sink names none."""


async def prepare(
    claim: Claim, controls: SinkControls, owner: Owner
) -> Message | Ending | HandBack:
    """The message `claim` sends through `controls`, or how its job ends instead (see the
    module doc)."""
    delivery = claim.delivery
    sink = controls.sink
    started = owner.clock()
    # A group is as fresh as its newest event; it has no customer (`kabarin check` refuses
    # grouping for sinks that write to one), so no contact is looked up for it.
    group = claim.group
    newest = claim.event if group is None else group.events[-1]
    stale = stale_reason(newest, started, sink.config.max_age)
    if stale is not None:
        log.info("delivery %s to %s skipped: %s", delivery.id, delivery.sink, stale)
        attempt = Attempt(
            delivery_id=delivery.id,
            started_at=started,
            duration_ms=0.0,
            outcome="skipped",
            error=stale,
        )
        return Ending(attempt, "skipped", error=stale, fallback=False)
    if sink.config.quiet_hours is not None:
        quiet = QuietHours.from_config(sink.config.quiet_hours, owner.timezone)
        until = quiet.until(started)
        if until is not None:
            delay = (until - started).total_seconds()
            return HandBack(delay, quiet.describe(until))
    try:
        # A digest (`gateway.digests`) or a group's message is about no one order: no customer.
        contact = (
            None
            if group is not None or digest_of(claim.event) is not None
            else await owner.contacts.resolve(delivery.order_id, claim.contact, shop=delivery.shop)
        )
    except LookupFailed as exc:
        return _lookup_failed(claim, controls.policy, started, str(exc), owner)
    try:
        return owner.templates.message(
            sink,
            delivery,
            event=claim.event,
            contact=contact,
            attempt=delivery.attempts + 1,
            group=group,
        )
    except TemplateError as exc:
        error = owner.redactor.redact(f"template error: {exc}")
        log.error("delivery %s to %s is dead: %s", delivery.id, delivery.sink, error)
        attempt = Attempt(
            delivery_id=delivery.id,
            started_at=started,
            duration_ms=0.0,
            outcome="error",
            error=error,
        )
        return Ending(attempt, "dead", error=error)


def _lookup_failed(
    claim: Claim,
    policy: RetryPolicy,
    started: datetime,
    reason: str,
    owner: Owner,
) -> Ending:
    """The shop's system did not say who the customer is: an attempt on the schedule (the
    sink is not to blame, so its breaker does not count it)."""
    delivery = claim.delivery
    error = owner.redactor.redact(reason)
    now = owner.clock()
    attempt = Attempt(
        delivery_id=delivery.id,
        started_at=started,
        duration_ms=(now - started).total_seconds() * 1000,
        outcome="retry",
        error=error,
    )
    decision = policy.decide(delivery.attempts + 1, Retry(reason=error), now)
    if isinstance(decision, GiveUp):
        reason = owner.redactor.redact(decision.reason)
        log.warning("delivery %s to %s is dead: %s", delivery.id, delivery.sink, reason)
        return Ending(attempt, "dead", error=reason)
    log.info(
        "delivery %s to %s: %s; retrying in %.1fs",
        delivery.id,
        delivery.sink,
        error,
        decision.delay,
    )
    return Ending(attempt, "pending", next_attempt_at=decision.when, error=error)
