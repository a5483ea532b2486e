"""Before a send: is the message still worth sending now, to whom, and what does it say.

`prepare` takes a claimed delivery through the decisions that come before its sink's controls:

    staleness (``max_age``) → quiet hours → the contact (`gateway.contacts`) → the parcel's
    delivery estimate, when a template reads ``estimate`` → render the parts

and answers the `Message` to send, or what the job comes to instead: an `Ending` (a stale event
is ``skipped``, with no fallback: it would be as stale there; a template error is ``dead``; a
failed contact lookup is a failed attempt on the retry schedule) or a `HandBack` (due inside
the sink's quiet hours: put back until the window ends, without using an attempt).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

from gateway.contacts import ContactResolver, LookupFailed
from gateway.delivery.controls import SinkControls
from gateway.delivery.model import Attempt, Claim, Delivery, Group, NewDelivery
from gateway.delivery.quiet import QuietHours
from gateway.delivery.recording import Ending, HandBack
from gateway.delivery.retry import GiveUp, RetryPolicy
from gateway.delivery.staleness import stale_reason
from gateway.digests.message import digest_of
from gateway.errors import StoreError, TemplateError
from gateway.events import Contact, Event
from gateway.insights.estimates import Estimate
from gateway.redaction import Redactor
from gateway.templating import Templates
from gateway.templating.rendering import decode_parts, mentions_estimate, message_language
from sinks.base import Message, Retry, Sink

__all__ = ["Estimates", "Owner", "estimate_to_render", "prepare"]

log = logging.getLogger("kabarin.dispatcher")


Estimates = Callable[[str, str], Awaitable[Estimate | None]]
"""(order id, shop) → the parcel's delivery estimate (`gateway.insights.estimates`)."""


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
    estimates: Estimates | None
    """Looks up ``estimate`` for templates that read it (``None``: they see none)."""


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
        estimate = await estimate_to_render(
            owner.estimates,
            owner.templates,
            sink,
            delivery,
            event=claim.event,
            contact=contact,
            group=group,
        )
        return owner.templates.message(
            sink,
            delivery,
            event=claim.event,
            contact=contact,
            attempt=delivery.attempts + 1,
            group=group,
            estimate=estimate,
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


async def estimate_to_render(
    estimates: Estimates | None,
    templates: Templates,
    sink: Sink,
    delivery: Delivery | NewDelivery,
    *,
    event: Event,
    contact: Contact | None,
    group: Group | None = None,
) -> Estimate | None:
    """The ``estimate`` `delivery`'s message is rendered with: looked up only when its templates
    read it, and never for a group's or a digest's message (about no one parcel). The
    dispatcher's rule, which the previews (``kabarin simulate``, ``routes test``, the
    dashboard's) follow to show what would be sent. A template part missing is a
    `TemplateError`, as when rendering."""
    if estimates is None or group is not None or digest_of(event) is not None:
        return None
    if isinstance(delivery, NewDelivery) and delivery.group is not None:
        return None  # a grouped route's message, about a group
    parts = templates.sources(
        decode_parts(delivery.template), sink, message_language(sink, contact)
    )
    if not mentions_estimate(parts):
        return None
    return await _estimate(estimates, event.order_id, event.shop)


async def _estimate(estimates: Estimates, order_id: str, shop: str) -> Estimate | None:
    """The estimate, or none when the store cannot say now: a message is not held back for
    it."""
    try:
        return await estimates(order_id, shop)
    except StoreError as exc:
        log.warning("no delivery estimate for order %s: %s", order_id, exc)
        return None


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
