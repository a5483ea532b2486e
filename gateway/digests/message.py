"""One digest as its deliveries carry it: a stand-in `Event` holding the rendered digest.

A digest goes through the delivery machinery like any message, and a delivery names an event;
a digest's is this stand-in, kept in ``digest_runs`` (never among the shipment events): its
``method`` is `DIGEST_METHOD`, its ``order_id`` ``digest:<name>`` (so a digest's deliveries
form one lane per sink and go in order), its ``occurred_at`` the period, and its ``details``
the digest already rendered in each form (`DigestParts`). The deliveries' templates read the
mail's parts from there (`PART_TEMPLATES`); the Slack and webhook sinks send the blocks and the
JSON as they are (`digest_of`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from gateway.events import Event, Status, event_id

__all__ = [
    "DIGEST_METHOD",
    "PART_TEMPLATES",
    "DigestParts",
    "digest_event",
    "digest_of",
    "digest_order",
]

DIGEST_METHOD = "kabarin.digest"
"""The stand-in event's ``method``: what makes a message a digest."""

PART_TEMPLATES = {
    "subject": "{{ event.details.subject }}",
    "text": "{{ event.details.text }}",
    "html": "{{ event.details.html | safe }}",
}
"""The templates of a digest delivery's parts: the digest is rendered already (its HTML
escaped as it was built, so ``safe`` here)."""


class DigestParts(msgspec.Struct, frozen=True, kw_only=True):
    """A digest rendered in every form its sinks take (`gateway.digests.render`)."""

    subject: str
    text: str
    """Plain text: the ``text`` part (Slack's fallback, the mail's text, the console)."""
    html: str
    """The mail's HTML part (tables)."""
    blocks: list[dict[str, Any]]
    """Slack Block Kit blocks."""
    payload: dict[str, Any]
    """The webhook's ``data`` (documented in docs/digests.md)."""


def digest_order(name: str) -> str:
    """The stand-in ``order_id`` of a digest's deliveries."""
    return f"digest:{name}"


def digest_event(
    *, name: str, period: datetime | None, now: datetime, parts: DigestParts, nonce: str = ""
) -> Event:
    """The stand-in event of one digest: its id is the same for the same period (a scheduled
    one) and new for each sent by hand (`nonce`)."""
    stamp = period.isoformat() if period is not None else f"{now.isoformat()}:{nonce}"
    return Event(
        id=event_id("digest", name, stamp),
        source="push",
        method=DIGEST_METHOD,
        kind="express",
        status=Status.UNKNOWN,
        order_id=digest_order(name),
        occurred_at=period or now,
        received_at=now,
        details={"digest": name, **msgspec.to_builtins(parts)},
    )


def digest_of(event: Event) -> DigestParts | None:
    """The rendered digest a stand-in event carries; ``None`` for a shipment event."""
    if event.method != DIGEST_METHOD:
        return None
    fields = {k: event.details.get(k) for k in DigestParts.__struct_fields__}
    return msgspec.convert(fields, DigestParts)
