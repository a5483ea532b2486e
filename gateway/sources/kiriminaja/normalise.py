"""A decoded `Push` → one `Event` per package, plus the recipients the complete format names.

Status by method (singular method names, ``shipped_package``, are read like the plural):

    processed_packages         processed          AWB issued
    validated_packages         validated          cost confirmed
    shipped_packages           shipped
    canceled_packages          canceled
    finished_packages          delivered
    rejected_packages          rejected
    problem_packages           problem            not final; may be sent again as it changes
    returned_packages          returning          returned once ``returned_at`` is set
    return_finished_packages   returned           deprecated by KiriminAja
    update_instant_packages    by ``status``: picked_up, sent → in_transit, no_driver,
                               delivered, cancel → canceled, return → returning, returned
    anything else              unknown            the raw item is kept

``details`` keys (present only when the push carries them; numbers sent as strings become
numbers):

    sorting_code, service, service_name, service_type    courier and product
    shipping_price, shipping_cost, insurance_amount, cod  rupiah, integers
    weight                                                grams (instant ``detail.weight``)
    tracking_url                                          live tracking link
    driver                                                {name, phone, image} (instant)
    package_status                                        KiriminAja's numeric status code
    payment                                               the complete format's payment object
    destination_city                                      the complete format's
                                                          ``destination.city``, when it has one
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from gateway.events import DEFAULT_SHOP, Contact, Event, EventKind, Status, event_identity
from gateway.phone import contact_phone
from gateway.sources.base import Normalised
from gateway.sources.kiriminaja.push import Item, Push

__all__ = ["KNOWN_METHODS", "NAME", "method_name", "normalise", "order_key", "parse_time"]

NAME = "kiriminaja"
"""The source's name: its entry point, and the namespace of its events' ids (the same as before
there were other sources, so that no id changed)."""

_INSTANT_STATUS = {
    "picked_up": Status.PICKED_UP,
    "sent": Status.IN_TRANSIT,
    "no_driver": Status.NO_DRIVER,
    "delivered": Status.DELIVERED,
    "finished": Status.DELIVERED,
    "cancel": Status.CANCELED,
    "canceled": Status.CANCELED,
    "cancelled": Status.CANCELED,
    "return": Status.RETURNING,
    "returned": Status.RETURNED,
}

_StatusRule = Callable[[Item, "datetime | None"], tuple[Status, str | None]]


def _fixed(status: Status) -> _StatusRule:
    return lambda item, when: (status, None)


def _returned(item: Item, when: datetime | None) -> tuple[Status, str | None]:
    done = item.get("returned_at") not in (None, "") and when is not None
    return (Status.RETURNED if done else Status.RETURNING), None


def _instant(item: Item, when: datetime | None) -> tuple[Status, str | None]:
    raw = item.get("status")
    if not isinstance(raw, str):
        return Status.UNKNOWN, None if raw is None else str(raw)
    return _INSTANT_STATUS.get(raw.strip().lower(), Status.UNKNOWN), raw


# method → (status rule, time fields tried in order)
_METHODS: dict[str, tuple[_StatusRule, tuple[str, ...]]] = {
    "processed_packages": (_fixed(Status.PROCESSED), ("processed_at", "date")),
    "validated_packages": (_fixed(Status.VALIDATED), ("validated_at", "date")),
    "shipped_packages": (_fixed(Status.SHIPPED), ("shipped_at", "date")),
    "canceled_packages": (_fixed(Status.CANCELED), ("canceled_at", "date")),
    "finished_packages": (_fixed(Status.DELIVERED), ("finished_at", "date")),
    "rejected_packages": (_fixed(Status.REJECTED), ("rejected_at", "date")),
    "problem_packages": (_fixed(Status.PROBLEM), ("problem_at", "date", "updated_at")),
    "returned_packages": (_returned, ("returned_at", "date")),
    "return_finished_packages": (_fixed(Status.RETURNED), ("returned_at", "date")),
    "update_instant_packages": (
        _instant,
        ("event_date", "finished_date", "cancel_date", "rejected_date", "date"),
    ),
}
_ALIASES = {"cancelled_packages": "canceled_packages"}
KNOWN_METHODS = frozenset(_METHODS)
"""Canonical names (`method_name`) of the methods with their own status rule."""
_UNKNOWN = (_fixed(Status.UNKNOWN), ("date", "event_date", "updated_at", "created_at"))

_TEXT_DETAILS = ("sorting_code", "service", "service_name", "service_type")
_MONEY_DETAILS = ("shipping_price", "shipping_cost", "insurance_amount", "cod")
_REASONS = ("reason", "cancel_reason", "rejection_note", "cancel_description", "note")


def method_name(method: str) -> str:
    """KiriminAja writes method names "plural or singular": one canonical name for both."""
    name = method.strip().lower()
    if not name.endswith("s") and name + "s" in _METHODS:
        name += "s"
    return _ALIASES.get(name, name)


def normalise(
    push: Push,
    *,
    received_at: datetime,
    tz: tzinfo,
    source: Literal["push", "pull"] = "push",
    shop: str = DEFAULT_SHOP,
) -> Normalised:
    """One event per package of a push that `decode_push` accepted, for `shop`. Never
    raises."""
    method = method_name(push.method)
    rule, time_fields = _METHODS.get(method, _UNKNOWN)
    packages = _packages_by_order(push.packages)
    payment = push.payment if isinstance(push.payment, dict) else None
    events: list[Event] = []
    contacts: list[Contact] = []
    times: dict[str, datetime | None] = {}  # a batch often repeats one time
    for item in push.items:
        order_id = order_key(item["order_id"])
        package = packages.get(order_id)
        when = None
        for field in time_fields:
            value = item.get(field)
            if not isinstance(value, str):  # parse_time reads only strings
                continue
            if value not in times:
                times[value] = parse_time(value, tz)
            when = times[value]
            if when is not None:
                break
        status, raw_status = rule(item, when)
        details = _details(item, package, payment)
        if raw_status is None and "package_status" in details:
            raw_status = str(details["package_status"])
        awb = _text(item.get("awb")) or (_text(package.get("awb")) if package else None)
        reason = None
        for field in _REASONS:
            if field in item and (reason := _text(item[field])) is not None:
                break
        kind: EventKind = (
            "instant"
            if method == "update_instant_packages" or details.get("service_type") == "instant"
            else "express"
        )
        events.append(
            Event(
                id=event_identity(
                    namespace=NAME,
                    method=method,
                    order_id=order_id,
                    status=status,
                    raw_status=raw_status,
                    occurred_at=when,
                    awb=awb,
                    reason=reason,
                    shop=shop,
                ),
                shop=shop,
                source=source,
                method=push.method,
                kind=kind,
                status=status,
                raw_status=raw_status,
                order_id=order_id,
                awb=awb,
                occurred_at=when or received_at,
                received_at=received_at,
                reason=reason,
                details=details,
                raw=item,
            )
        )
        if package is not None and (contact := _contact(order_id, package, shop)) is not None:
            contacts.append(contact)
    return Normalised(events, contacts)


def parse_time(value: object, tz: tzinfo) -> datetime | None:
    """KiriminAja's times in UTC: naive ``YYYY-MM-DD HH:MM:SS`` (and dates) are in `tz`; ISO
    8601 with ``Z`` or an offset is taken as written; ``""``, ``0000-00-00 …``, years 1 and
    9999, and anything that is not a time are missing (``None``)."""
    if not isinstance(value, str) or not value or value.startswith("0000"):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    try:
        moment = moment.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 shifted past the calendar's ends
        return None
    # A time every zone can show: year 1 or 9999 would overflow in WIB, or in a template's
    # `localtime`, once accepted.
    return moment if 1 < moment.year < 9999 else None


def order_key(value: object) -> str:
    """An ``order_id`` as events carry it (and as a complete push's packages are matched to its
    items): text without surrounding spaces, a whole number without ``.0``."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return None


def _number(value: object) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                return None
            return int(number) if number.is_integer() else number
    return None


def _as_text(details: dict[str, Any], key: str, value: object) -> None:
    if (text := _text(value)) is not None:
        details[key] = text


def _as_number(details: dict[str, Any], key: str, value: object) -> None:
    if (number := _number(value)) is not None:
        details[key] = number


def _as_url(details: dict[str, Any], key: str, value: object) -> None:
    if (url := _text(value)) is not None:
        details["tracking_url"] = url


def _as_driver(details: dict[str, Any], key: str, value: object) -> None:
    if isinstance(value, dict) and any(value.get(k) for k in ("name", "phone", "image")):
        details["driver"] = {k: _text(value.get(k)) for k in ("name", "phone", "image")}


def _as_weight(details: dict[str, Any], key: str, value: object) -> None:
    if isinstance(value, dict) and (weight := _number(value.get("weight"))) is not None:
        details["weight"] = weight


# Item key → how it lands in `details`. Only the keys an item has are looked at.
_DETAIL_READERS: dict[str, Callable[[dict[str, Any], str, object], None]] = {
    **dict.fromkeys(_TEXT_DETAILS, _as_text),
    **dict.fromkeys(_MONEY_DETAILS, _as_number),
    **dict.fromkeys(("live_track_url", "live_tracking_url", "tracking_url"), _as_url),
    "driver": _as_driver,
    "detail": _as_weight,
}


def _details(item: Item, package: Item | None, payment: dict[str, Any] | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for source in (package, item) if package else (item,):  # the item's own values win
        for key, value in source.items():
            reader = _DETAIL_READERS.get(key)
            if reader is not None and value is not None:
                reader(details, key, value)
    if "service_type" not in details and details.get("service_name", "").lower() == "instant":
        details["service_type"] = "instant"  # instant pushes name the product type here
    if package is not None and (status := _number(package.get("status"))) is not None:
        details["package_status"] = status
    destination = package.get("destination") if package is not None else None
    city = _text(destination.get("city")) if isinstance(destination, dict) else None
    if city is not None:
        details["destination_city"] = city
    if payment is not None:
        details["payment"] = payment
    return details


def _packages_by_order(packages: object) -> dict[str, Item]:
    if not isinstance(packages, list):
        return {}
    found: dict[str, Item] = {}
    for package in packages:
        if isinstance(package, dict) and package.get("order_id") is not None:
            found[order_key(package["order_id"])] = package
    return found


def _contact(order_id: str, package: Item, shop: str) -> Contact | None:
    destination = package.get("destination")
    if not isinstance(destination, dict):
        return None
    name, phone = _text(destination.get("name")), _text(destination.get("phone"))
    if name is None and phone is None:
        return None
    phone_e164 = contact_phone(phone) if phone else None
    return Contact(order_id=order_id, shop=shop, name=name, phone=phone_e164)
