"""A tracking answer → the events a push would have made: the ``pull`` source of the push log.

The pull tracker appends each answer to the push log as a `Pulled` document (the answer exactly
as KiriminAja sent it, with the order id and kind asked about); the intake decodes it with
`decode_pulled`, registered as ``DECODERS["pull"]``, like any push.

Express answers carry a numeric ``status_code`` and ``histories`` (newest first). Each code maps
to the status of the push that would have carried it (codes not listed are a courier's hops or
KiriminAja's own bookkeeping, and make no event, as no push is sent for them):

    105                          processed   processed_packages (needs ``details.awb``)
    106                          shipped     shipped_packages
    200                          delivered   finished_packages
    300 302                      canceled    canceled_packages
    301 310 311                  rejected    rejected_packages     (refused by the recipient)
    401 402 403                  returning   returned_packages
    400                          returned    returned_packages
    303 333 405 406 500 555      problem     problem_packages      (reason: the history text)
    701-704 901-905

An AWB in ``details`` is a ``processed`` event even without a 105 entry (at the first entry's
time), and ``shipped_at``, ``delivered_at`` and ``refunded_at`` in ``details`` are the times of
``shipped``, ``delivered`` and ``returned`` (the push of that method carries that field). The
top-level ``status_code`` is an event of its own when no history entry has its status.

Instant answers carry no code: ``result.date.allocated_at`` (a driver took the order) is
``picked_up``, ``finished_at`` is ``delivered``, ``canceled_at`` or a ``cancel_description`` is
``canceled`` (``no_driver`` when the description says no driver was found).

Event identity: every status becomes the item of the documented short push of its method
(``shipped_packages`` → ``{"order_id", "shipped_at"}``, ``update_instant_packages`` →
``{"order_id", "awb", "status", "date"}``, ...) with the time as written in the answer, and is
normalised by the same `normalise` as a push with ``source="pull"``: where the pull reports an
update with the time its push carried, both have the same id and the intake stores it once.
Fields a short push does not carry (the AWB of a shipped package, the numeric code as
``details.package_status``, courier, costs, KiriminAja's ``estimation``, the destination's
``city`` as ``details.destination_city``, and the delivered event's
``details.proof_of_delivery``: ``{photo, signature}``, the URLs of ``details.images``) are
added to the event after its id is made.
Statuses of one order become one event each, at their earliest time (``problem`` one per
distinct reason); a status the order already has with another time is a new id, so the tracker
compares statuses with what the order has before appending.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from typing import Any

import msgspec

from gateway.events import DEFAULT_SHOP, Contact, Event, EventKind, Status
from gateway.phone import contact_phone
from gateway.sources.base import Normalised
from gateway.sources.kiriminaja.normalise import normalise, parse_time
from gateway.sources.kiriminaja.push import Push
from gateway.store.roles import LoggedPush

__all__ = ["CODE_STATUS", "Pulled", "decode_pulled", "instant_states", "normalise_pulled"]


class Pulled(msgspec.Struct, frozen=True, kw_only=True):
    """A pull log entry: what KiriminAja's tracking API answered about one order."""

    kind: EventKind
    order_id: str
    """The order id the tracker asked about (the answer names it too, not always alike)."""
    answer: dict[str, Any]
    """The answer's JSON body, untouched."""

    @property
    def method(self) -> str:
        """The log entry's ``method`` (``express_tracking``, ``instant_tracking``)."""
        return f"{self.kind}_tracking"

    def encode(self) -> bytes:
        return msgspec.json.encode(self)


_decode = msgspec.json.Decoder(Pulled).decode

CODE_STATUS: dict[int, Status] = {
    105: Status.PROCESSED,
    106: Status.SHIPPED,
    200: Status.DELIVERED,
    300: Status.CANCELED,
    302: Status.CANCELED,
    301: Status.REJECTED,
    310: Status.REJECTED,
    311: Status.REJECTED,
    401: Status.RETURNING,
    402: Status.RETURNING,
    403: Status.RETURNING,
    400: Status.RETURNED,
    **dict.fromkeys(
        (303, 333, 405, 406, 500, 555, 701, 702, 703, 704, 901, 902, 903, 904, 905),
        Status.PROBLEM,
    ),
}
"""KiriminAja's numeric package status → normalised status (see the module doc)."""

_WITH_REASON = frozenset({Status.CANCELED, Status.REJECTED, Status.PROBLEM})


def _short_item(
    status: Status, order_id: str, when: str | None, awb: str | None, reason: str | None
) -> tuple[str, dict[str, Any]]:
    """The method and item of the documented short push that carries `status`."""
    item: dict[str, Any] = {"order_id": order_id}
    match status:
        case Status.PROCESSED:
            return "processed_packages", {**item, "awb": awb}
        case Status.SHIPPED:
            return "shipped_packages", {**item, "shipped_at": when}
        case Status.DELIVERED:
            return "finished_packages", {**item, "finished_at": when}
        case Status.CANCELED:
            return "canceled_packages", {**item, "canceled_at": when, "reason": reason}
        case Status.REJECTED:
            return "rejected_packages", {**item, "rejected_at": when, "reason": reason}
        case Status.RETURNING:
            return "returned_packages", item
        case Status.RETURNED:
            return "returned_packages", {**item, "returned_at": when}
        case _:
            return "problem_packages", {**item, "awb": awb, "date": when, "reason": reason}


class _Found(msgspec.Struct, frozen=True):
    status: Status
    when: str | None
    reason: str | None = None
    code: int | None = None


def decode_pulled(push: LoggedPush, tz: tzinfo) -> Normalised:
    """The events and contact of one pull log entry (raises on a body that is not a `Pulled`)."""
    try:
        pulled = _decode(push.body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a pulled tracking answer: {exc}") from None
    return normalise_pulled(pulled, received_at=push.received_at, tz=tz, shop=push.shop)


def normalise_pulled(
    pulled: Pulled, *, received_at: datetime, tz: tzinfo, shop: str = DEFAULT_SHOP
) -> Normalised:
    """Every status the answer shows, oldest first, as the push of it would have made it
    (for `shop`: the shop whose key asked)."""
    if pulled.kind == "instant":
        return _instant(pulled, received_at, tz, shop)
    return _express(pulled, received_at, tz, shop)


def _express(pulled: Pulled, received_at: datetime, tz: tzinfo, shop: str) -> Normalised:
    details = _mapping(pulled.answer.get("details"))
    order_id = _text(details.get("order_id")) or pulled.order_id
    awb = _text(details.get("awb"))
    histories = [h for h in _list(pulled.answer.get("histories")) if isinstance(h, dict)]
    # Oldest first by time; entries without one keep their place relative to each other.
    histories.reverse()
    histories.sort(key=lambda h: parse_time(h.get("created_at"), tz) or received_at)

    found: dict[tuple[Status, str | None], _Found] = {}
    for entry in histories:
        code = _code(entry.get("status_code"))
        status = CODE_STATUS.get(code) if code is not None else None
        if status is None:
            continue
        reason = _text(entry.get("status")) if status in _WITH_REASON else None
        key = (status, reason if status is Status.PROBLEM else None)
        found.setdefault(key, _Found(status, _text(entry.get("created_at")), reason, code))

    # The push of these methods carries exactly this field of the order.
    for status, field, flag in (
        (Status.SHIPPED, "shipped_at", "shipped_at"),
        (Status.DELIVERED, "delivered_at", "delivered"),
        (Status.RETURNED, "refunded_at", "refunded"),
    ):
        when = _text(details.get(field))
        if parse_time(when, tz) is None or details.get(flag) is False:
            continue
        before = found.get((status, None))
        found[(status, None)] = _Found(status, when, code=before.code if before else None)
    if awb is not None and (Status.PROCESSED, None) not in found:
        # An AWB was issued, no entry says when: the first entry is the earliest it can be.
        first = next((h for h in histories if parse_time(h.get("created_at"), tz)), None)
        when = _text(first.get("created_at")) if first else None
        found[(Status.PROCESSED, None)] = _Found(Status.PROCESSED, when)
    top = _code(pulled.answer.get("status_code"))
    status = CODE_STATUS.get(top) if top is not None else None
    if status is not None and all(f.status is not status for f in found.values()):
        reason = _text(pulled.answer.get("text")) if status in _WITH_REASON else None
        found[(status, reason)] = _Found(status, None, reason, top)

    extras = _express_details(details)
    proof = {**extras, **_proof(details)}  # the delivered event's alone
    events = [
        _event(
            f,
            order_id,
            awb,
            proof if f.status is Status.DELIVERED else extras,
            received_at,
            tz,
            shop,
        )
        for f in found.values()
    ]
    contact = _contact(order_id, details.get("destination"), shop)
    return Normalised(_oldest_first(events), [contact] if contact else [])


_NO_DRIVER = re.compile(r"no[ _-]?driver|driver (is )?not found|tidak (ada|menemukan) driver", re.I)


def instant_states(result: dict[str, Any]) -> list[tuple[str, str | None]]:
    """The instant statuses (as `update_instant_packages` names them) an instant answer's
    ``result`` shows, each with its time as written."""
    dates = _mapping(result.get("date"))
    states: list[tuple[str, str | None]] = []
    if (allocated := _text(dates.get("allocated_at"))) is not None:
        states.append(("picked_up", allocated))
    if (finished := _text(dates.get("finished_at"))) is not None:
        states.append(("delivered", finished))
    canceled = _text(dates.get("canceled_at"))
    description = _text(result.get("cancel_description"))
    if canceled is not None or description is not None:
        no_driver = description is not None and _NO_DRIVER.search(description)
        states.append(("no_driver" if no_driver else "cancel", canceled))
    return states


def _instant(pulled: Pulled, received_at: datetime, tz: tzinfo, shop: str) -> Normalised:
    result = _mapping(pulled.answer.get("result"))
    order_id = _text(result.get("order_id")) or pulled.order_id
    awb = _text(result.get("tracking_code"))
    reason = _text(result.get("cancel_description"))
    extras = _instant_details(result)
    events: list[Event] = []
    for state, when in instant_states(result):
        item = {"order_id": order_id, "awb": awb, "status": state, "date": when}
        if state in ("cancel", "no_driver"):
            item["reason"] = reason
        push = Push(method="update_instant_packages", data=[item])
        (event,) = normalise(push, received_at=received_at, tz=tz, source="pull", shop=shop).events
        events.append(_with_extras(event, extras, awb, received_at, when, tz))
    contact = _contact(order_id, result.get("destination"), shop)
    return Normalised(_oldest_first(events), [contact] if contact else [])


def _event(
    found: _Found,
    order_id: str,
    awb: str | None,
    extras: dict[str, Any],
    received_at: datetime,
    tz: tzinfo,
    shop: str,
) -> Event:
    method, item = _short_item(found.status, order_id, found.when, awb, found.reason)
    push = Push(method=method, data=[item])
    (event,) = normalise(push, received_at=received_at, tz=tz, source="pull", shop=shop).events
    if found.code is not None:
        extras = {**extras, "package_status": found.code}
    return _with_extras(event, extras, awb, received_at, found.when, tz)


def _with_extras(
    event: Event,
    extras: dict[str, Any],
    awb: str | None,
    received_at: datetime,
    when: str | None,
    tz: tzinfo,
) -> Event:
    """What the answer knows beyond the short push, added once the id is made."""
    occurred = event.occurred_at
    if occurred == received_at and (moment := parse_time(when, tz)) is not None:
        occurred = moment  # a short push without a time (processed, returning)
    return msgspec.structs.replace(
        event,
        awb=event.awb or awb,
        occurred_at=occurred,
        details={**extras, **event.details},
    )


_EXPRESS_TEXT = ("service", "service_name", "sorting_code")
_EXPRESS_MONEY = ("shipping_cost", "cod", "insurance_amount")


def _express_details(details: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for key in _EXPRESS_TEXT:
        if (text := _text(details.get(key))) is not None:
            extras[key] = text
    if (estimation := _text(details.get("estimation"))) not in (None, "-"):
        extras["estimation"] = estimation  # KiriminAja's estimate in days, e.g. "2-3"
    if (city := _text(_mapping(details.get("destination")).get("city"))) is not None:
        extras["destination_city"] = city
    costs = _mapping(details.get("costs"))
    for key in _EXPRESS_MONEY:
        if isinstance(value := costs.get(key), int | float) and not isinstance(value, bool):
            extras[key] = value
    return extras


def _proof(details: dict[str, Any]) -> dict[str, Any]:
    """``proof_of_delivery``: the photo and signature the answer's ``images`` link to."""
    images = _mapping(details.get("images"))
    proof = {
        name: url
        for name, key in (("photo", "camera_img"), ("signature", "signature_img"))
        if (url := _text(images.get(key))) is not None and url.startswith(("https://", "http://"))
    }
    return {"proof_of_delivery": proof} if proof else {}


def _instant_details(result: dict[str, Any]) -> dict[str, Any]:
    extras: dict[str, Any] = {}
    for key in ("service", "service_type"):
        if (text := _text(result.get(key))) is not None:
            extras[key] = text
    if (city := _text(_mapping(result.get("destination")).get("city"))) is not None:
        extras["destination_city"] = city
    cost = _mapping(result.get("cost"))
    if isinstance(price := cost.get("shipping_cost"), int | float) and not isinstance(price, bool):
        extras["shipping_price"] = price
    if (url := _text(result.get("live_tracking_url"))) is not None:
        extras["tracking_url"] = url
    driver = _mapping(result.get("driver"))
    if any(_text(driver.get(k)) for k in ("name", "phone", "photo")):
        extras["driver"] = {
            "name": _text(driver.get("name")),
            "phone": _text(driver.get("phone")),
            "image": _text(driver.get("photo")),
        }
    return extras


def _oldest_first(events: list[Event]) -> list[Event]:
    return sorted(events, key=lambda e: e.occurred_at)


def _contact(order_id: str, destination: object, shop: str) -> Contact | None:
    if not isinstance(destination, dict):
        return None
    name, phone = _text(destination.get("name")), _text(destination.get("phone"))
    if name is None and phone is None:
        return None
    phone_e164 = contact_phone(phone) if phone else None
    return Contact(order_id=order_id, shop=shop, name=name, phone=phone_e164)


def _code(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _text(value: object) -> str | None:
    if isinstance(value, str):
        return value.strip() or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []
