"""The one internal event: every push method and every pull result becomes an `Event`.

Field names are a public contract (sinks, templates, the ERP webhook payload): see docs/event.md.
"""

from __future__ import annotations

import enum
import hashlib
from datetime import datetime
from typing import Any, Literal

import msgspec

__all__ = [
    "DEFAULT_SHOP",
    "TERMINAL_STATUSES",
    "Contact",
    "Event",
    "EventKind",
    "Source",
    "Status",
    "event_id",
    "event_identity",
]


class Status(enum.StrEnum):
    """Normalised shipment status, the same for every source and method."""

    PROCESSED = "processed"  # AWB issued
    VALIDATED = "validated"  # cost confirmed
    SHIPPED = "shipped"
    PICKED_UP = "picked_up"
    IN_TRANSIT = "in_transit"
    DELIVERED = "delivered"
    CANCELED = "canceled"
    REJECTED = "rejected"
    PROBLEM = "problem"  # not final: it may be resolved
    NO_DRIVER = "no_driver"
    RETURNING = "returning"
    RETURNED = "returned"
    STUCK = "stuck"  # no news for too long (raised by the pull tracker)
    UNKNOWN = "unknown"


TERMINAL_STATUSES = frozenset({Status.DELIVERED, Status.CANCELED, Status.RETURNED})
"""Statuses after which an order has no news to wait for: the pull tracker stops asking.
``rejected`` is not one: a parcel the recipient refused goes back to the shop (``returning``,
then ``returned``), and the shop wants to hear when it is back."""

DEFAULT_SHOP = "default"
"""The shop of a one-shop file (``receiver.token``), and of every record written before shops
existed: its event ids are what they were before (`event_identity`)."""

EventKind = Literal["express", "instant"]
"""KiriminAja's kinds of shipment, the two its tracking API tells apart (the pull tracker's)."""
Source = Literal["push", "pull"]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One status update of one package."""

    id: str
    """Deterministic: the same update pushed twice has the same id and is stored once."""
    shop: str = DEFAULT_SHOP
    """The id of the shop (KiriminAja account) it belongs to (``default`` with one shop)."""
    source: Source
    """``push``: KiriminAja sent it; ``pull``: the pull tracker asked for it."""
    method: str
    """The raw method, in the source's words, e.g. KiriminAja's ``shipped_packages``."""
    kind: str
    """The kind of shipment, in the source's words: KiriminAja's ``express`` or ``instant``."""
    status: Status
    """The normalised status: the same word whatever the source and method said."""
    raw_status: str | None = None
    """The source's own status beside the normalised one (instant status, numeric code)."""
    order_id: str
    """The shop's order id, as KiriminAja knows the shipment."""
    awb: str | None = None
    """The courier's waybill number, once there is one."""
    occurred_at: datetime
    """When it happened, timezone-aware; ``received_at`` when the push carries no time."""
    received_at: datetime
    """When Kabarin received the push (or the pull result) that carried it."""
    reason: str | None = None
    """Why, when the source says: a problem, a cancellation, a rejection."""
    details: dict[str, Any] = msgspec.field(default_factory=dict)
    """What else the item (and its package) said that templates may want: service, shipping
    cost, COD amount, tracking URL, driver, weight, payment."""
    raw: dict[str, Any] = msgspec.field(default_factory=dict)
    """The package item exactly as received."""


class Contact(msgspec.Struct, frozen=True, kw_only=True):
    """The customer behind an order, for the people-facing sinks."""

    order_id: str
    shop: str = DEFAULT_SHOP
    """The shop whose order it is: contacts are kept per (shop, order id)."""
    name: str | None = None
    phone: str | None = None
    email: str | None = None
    language: str | None = None
    """``id`` or ``en`` when the shop registered one (the admin API, a CSV import)."""


def event_identity(
    *,
    namespace: str,
    method: str,
    order_id: str,
    status: Status,
    raw_status: str | None,
    occurred_at: datetime | None,
    awb: str | None,
    reason: str | None,
    shop: str = DEFAULT_SHOP,
) -> str:
    """The id of one update, over its normalised fields: the same update twice, from one push
    or two, has the same id and is stored once.

    `namespace` is the push source's name (`gateway.sources`), so that two sources never share
    an id; KiriminAja's is ``kiriminaja``, as it was before there were other sources.
    `method` is the canonical (plural) name; `occurred_at` is the update's own time, ``None``
    when it carries none (so a timeless repeat is still a repeat, not a new arrival time). The
    reason counts only for ``problem``: a problem may change while the status stays. The shop
    counts unless it is ``default``, whose ids stay what they were before shops existed, so a
    push repeated across the upgrade is still a repeat.
    """
    ident: list[object] = [
        method,
        order_id,
        status.value,
        raw_status,
        occurred_at.isoformat() if occurred_at else "",
        awb,
    ]
    if status is Status.PROBLEM:
        ident.append(reason)
    if shop != DEFAULT_SHOP:
        ident.append(f"shop={shop}")
    return event_id(namespace, *ident)


def event_id(*parts: object) -> str:
    """A stable id from the parts that identify one update (``None`` parts count as empty)."""
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return "evt_" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
