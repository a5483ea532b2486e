"""What the tracking page shows of one order, from its stored events and contact: everything a
customer may see, and nothing else (the first name at most; no phone, address or surname).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from gateway.config.tracking_page import DEFAULT_COLOR, BrandConfig
from gateway.events import Contact, Event, Status
from gateway.insights.estimates import Estimate
from gateway.store.lanes import rank
from gateway.templating.sandbox import STATUS_LABELS, local_time
from gateway.tracking_page.labels import Language, words

__all__ = ["Brand", "Step", "TrackingView", "build_view", "first_name"]

_HIDDEN = frozenset({Status.STUCK, Status.UNKNOWN})
"""Statuses the customer is not shown: a stuck alert is for the shop's staff, and an unknown
method says nothing a customer could read."""
_WITH_NOTE = frozenset({Status.PROBLEM})
"""Statuses shown with a fixed note (`PROBLEM_NOTE`), never the courier's reason: that is free
text, and may hold the receiver's full name, phone number and street address."""
PROBLEM_NOTE = "There is a delivery problem; contact the shop."
"""The note of a problem (a label of `gateway.tracking_page.labels`)."""
_HONORIFICS = frozenset(
    [
        "ibu",
        "bu",
        "bapak",
        "pak",
        "bpk",
        "sdr",
        "sdri",
        "mas",
        "mbak",
        "kak",
        "mr",
        "mrs",
        "ms",
        "miss",
    ]
)
"""Titles before a name (with or without a dot), skipped: the first name is the word after."""
_TIME_FORMAT = "%a, %d %b %Y %H:%M %Z"
_DATE_FORMAT = "%a, %d %b %Y"


@dataclass(frozen=True, slots=True)
class Brand:
    name: str
    color: str
    logo_url: str | None
    whatsapp_url: str | None

    @classmethod
    def of(cls, brand: BrandConfig, fallback_name: str) -> Brand:
        number = brand.wa_number
        return cls(
            name=brand.name or fallback_name,
            color=brand.color or DEFAULT_COLOR,
            logo_url=brand.logo_url,
            whatsapp_url=f"https://wa.me/{number}" if number else None,
        )


@dataclass(frozen=True, slots=True)
class Step:
    status: Status
    label: str
    at: str
    """Local time, written out (``Sen, 07 Des 2026 10:00 WIB``)."""
    note: str | None = None


@dataclass(frozen=True, slots=True)
class TrackingView:
    order_id: str
    awb: str | None
    courier: str | None
    """Courier and product, ``JNE REG``."""
    first_name: str | None
    current: Step | None
    steps: list[Step]
    """Furthest along first (`_order`): the first is the current status."""
    zone: str
    """The zone the times are in, as written after them (``WIB``)."""
    estimate: tuple[str, str] | None = None
    """Earliest and latest arrival (`gateway.insights.estimates`), local dates written out
    (the same twice for one day)."""
    proof: dict[str, str] = field(default_factory=dict)
    """``photo`` / ``signature`` → URL, when the tracking API gave them."""


def first_name(contact: Contact | None) -> str | None:
    """The first word of the contact's name after any title (``Ibu``, ``Pak``, ``Mr.``), never
    more; none when the name looks like a phone number or an email address (a digit or an
    ``@`` in it), as a contact registered without a name may be."""
    if contact is None or not contact.name:
        return None
    name = contact.name
    if "@" in name or any(c.isdigit() for c in name):
        return None
    parts = [w for w in name.split() if w.rstrip(".").casefold() not in _HONORIFICS]
    return parts[0][:40] if parts else None


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _courier(events: list[Event]) -> str | None:
    for event in events:  # furthest along first
        service = _text(event.details.get("service"))
        name = _text(event.details.get("service_name")) or _text(event.details.get("service_type"))
        if service or name:
            return " ".join(part for part in ((service or "").upper(), name or "") if part)
    return None


def _proof(events: list[Event]) -> dict[str, str]:
    for event in events:
        proof = event.details.get("proof_of_delivery")
        if event.status is Status.DELIVERED and isinstance(proof, dict):
            found = {
                key: url
                for key in ("photo", "signature")
                if isinstance(url := proof.get(key), str)
                and url.startswith(("https://", "http://"))
            }
            if found:
                return found
    return {}


def _order(event: Event) -> tuple[Any, ...]:
    """An event's place in the page, highest first: the ranking of ``ordering: latest``
    (`gateway.store.lanes.rank`: the shipment's stage, then a courier's time over one taken
    from the arrival), then its time. A push that carried no time is dated by its arrival, so a
    late ``processed`` push never outranks a ``delivered`` the courier dated earlier."""
    return (*rank(event), event.occurred_at, event.received_at)


def build_view(
    events: list[Event],
    *,
    contact: Contact | None,
    language: Language,
    timezone: tzinfo,
    estimate: Estimate | None = None,
    now: datetime | None = None,
) -> TrackingView:
    """The page of the order whose `events` these are (any order; at least one). An `estimate`
    whose latest arrival is before `now` is left out: a date already past promises nothing."""
    ranked = sorted(events, key=_order, reverse=True)
    labels = STATUS_LABELS[language]
    problem = words(language)[PROBLEM_NOTE]
    steps = [
        Step(
            status=event.status,
            label=labels[event.status],
            at=local_time(event.occurred_at, timezone, _TIME_FORMAT, language),
            note=problem if event.status in _WITH_NOTE else None,
        )
        for event in ranked
        if event.status not in _HIDDEN
    ]
    awb = next((e.awb for e in ranked if e.awb), None)
    zone = local_time(ranked[0].occurred_at, timezone, "%Z", language)
    written = None
    if estimate is not None and (now is None or estimate.latest >= now):
        written = (
            local_time(estimate.earliest, timezone, _DATE_FORMAT, language),
            local_time(estimate.latest, timezone, _DATE_FORMAT, language),
        )
    return TrackingView(
        order_id=ranked[0].order_id,
        awb=awb,
        courier=_courier(ranked),
        first_name=first_name(contact),
        current=steps[0] if steps else None,
        steps=steps,
        zone=zone,
        estimate=written,
        proof=_proof(ranked),
    )
