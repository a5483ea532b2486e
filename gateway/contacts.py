"""Who the customer of an order is: the contact a people-facing sink writes to.

Resolution order, field by field (a field the first source lacks comes from the next):

1. **Registered by the shop** (``PUT /admin/v1/contacts/{order_id}``, ``kabarin contacts
   import``). Registering is a deliberate act about that one customer, often a correction (a
   new number in the customer's account), while a push repeats what was typed on the label at
   booking: a later push must not undo it. The store keeps this rule (`gateway.store.roles.
   ContactBook`), so every read of a contact, the dispatcher's claim included, sees it applied.
2. **Pushed or pulled**: KiriminAja's complete push format (``packages[].destination``) and the
   tracking API's answer; the latest one wins over an earlier one.
3. **Looked up** from the shop's system (``contacts.lookup``), only when the stored contact
   lacks a phone or an email: it costs a call, and its answer is cached for ``ttl``, so it may
   be older than what the store says; deliveries of one order that need it at once share one
   request. An order is a (shop, order id): two shops' orders with the same id are asked about,
   cached and shared apart (the URL may name the shop with ``{shop}``). A lookup that fails
   (network error, timeout, a 5xx, an answer that is not JSON) raises `LookupFailed`: the
   delivery is retried on its schedule rather than skipped for want of a recipient. A 404
   means the shop does not know the order either, and is cached like an answer.

Whoever gives a phone number, a contact keeps it in E.164 when it is a valid one
(`gateway.phone.contact_phone`), the form the sinks send to. A delivery whose sink finds no
recipient after all this is ``skipped`` with the reason.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import msgspec

from gateway.config import ContactLookupConfig
from gateway.events import DEFAULT_SHOP, Contact
from gateway.phone import InvalidPhone, contact_phone, normalize_phone
from gateway.units import how_many

__all__ = [
    "CACHE_SIZE",
    "LANGUAGES",
    "ContactLookup",
    "ContactResolver",
    "InvalidContact",
    "LookupFailed",
    "merge",
    "read_contacts_csv",
    "registered_contact",
]

CSV_COLUMNS = ("order_id", "name", "phone", "email", "language")

LANGUAGES = ("id", "en")

CACHE_SIZE = 10_000
"""Orders whose looked-up answer is kept; the oldest are forgotten first."""


class LookupFailed(Exception):
    """The shop's system could not answer now: try the delivery again later."""


class InvalidContact(ValueError):
    """A contact the shop tried to register is not valid; the text says why (never the number):
    every field that is wrong, ``phone: ...; email: ...``."""

    def __init__(self, *problems: str) -> None:
        super().__init__("; ".join(problems))
        self.problems = list(problems)


_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters (Unicode's Cc): no name, number or address has one."""


def registered_contact(
    order_id: str,
    *,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    language: str | None = None,
) -> Contact:
    """A contact as the shop registers it (admin API, CSV import): blank fields are unknown,
    the phone in E.164; `InvalidContact` names what is wrong."""
    # Every wrong field is named at once: a shop fixing a row should not find the next mistake
    # only on the next try.
    problems: list[str] = []
    order_id = order_id.strip()
    if not order_id:
        problems.append("order_id is empty")
    name, phone, email, language = (
        (v.strip() or None) if v is not None else None for v in (name, phone, email, language)
    )
    fields = ("order_id", "name", "phone", "email", "language")
    flagged: set[str] = set()
    for field, value in zip(fields, (order_id, name, phone, email, language), strict=True):
        control = _CONTROL.search(value or "")
        if control is not None:  # PostgreSQL refuses a NUL, SQLite cuts the text at it
            flagged.add(field)
            problems.append(f"{field}: contains a control character (U+{ord(control.group()):04X})")
    if name is None and phone is None and email is None and language is None:
        problems.append("give at least one of name, phone, email, language")
    if phone is not None and "phone" not in flagged:
        try:
            phone = normalize_phone(phone)
        except InvalidPhone as exc:
            problems.append(f"phone: {exc}")
    if email is not None and "email" not in flagged and not _EMAIL.fullmatch(email):
        problems.append("email: not an email address (name@domain)")
    if language is not None and "language" not in flagged and language not in LANGUAGES:
        problems.append(f"language: {language!r} is not one of {', '.join(LANGUAGES)}")
    if problems:
        raise InvalidContact(*problems)
    return Contact(order_id=order_id, name=name, phone=phone, email=email, language=language)


def read_contacts_csv(text: str) -> tuple[list[Contact], list[str]]:
    """The contacts of a CSV file whose header row names its columns (``order_id`` and any of
    ``name, phone, email, language``), and one problem per row that is not valid, naming every
    wrong field (``line 7: phone: ...; email: ...``). A header that is wrong is the only problem
    reported."""
    rows = csv.reader(io.StringIO(text.removeprefix("\ufeff")))
    header = [h.strip().lower() for h in next(rows, [])]
    unknown = [h for h in header if h not in CSV_COLUMNS]
    if "order_id" not in header or unknown or len(set(header)) != len(header):
        got = ",".join(header) or "nothing"
        return [], [
            f"line 1: the header must name order_id and any of name, phone, email, "
            f"language once each (got {got})"
        ]
    contacts: list[Contact] = []
    problems: list[str] = []
    for number, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) > len(header):
            cells = how_many(len(row), "cell")
            problems.append(f"line {number}: {cells}, the header names {len(header)}")
            continue
        fields = dict(zip(header, row, strict=False))
        try:
            contacts.append(registered_contact(fields.pop("order_id", ""), **fields))
        except InvalidContact as exc:
            problems.append(f"line {number}: {exc}")
    return contacts, problems


def merge(order_id: str, *sources: Contact | None, shop: str = DEFAULT_SHOP) -> Contact | None:
    """One contact of `shop`'s order from `sources` in priority order, field by field;
    ``None`` when none exists."""
    present = [s for s in sources if s is not None]
    if not present:
        return None
    fields: dict[str, Any] = {}
    for name in ("name", "phone", "email", "language"):
        fields[name] = next((v for s in present if (v := getattr(s, name)) is not None), None)
    return Contact(order_id=order_id, shop=shop, **fields)


class ContactLookup:
    """``contacts.lookup``: GET the URL template with the order id (and the shop id, for a URL
    with ``{shop}``), read the JSON fields. Answers and requests under way are kept per
    (shop, order id)."""

    def __init__(
        self,
        config: ContactLookupConfig,
        http: httpx.AsyncClient,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._http = http
        self._clock = clock
        self._cache: OrderedDict[tuple[str, str], tuple[float, Contact | None]] = OrderedDict()
        self._asking: dict[tuple[str, str], asyncio.Task[Contact | None]] = {}
        """Lookups under way, by (shop, order): every delivery of the order waits for the same
        one."""

    async def get(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> Contact | None:
        """The shop's answer for `shop`'s order `order_id` (cached for ``ttl``, a 404's too);
        raises `LookupFailed`. Callers asking about the same order at once share one request."""
        key = (shop, order_id)
        cached = self._cache.get(key)
        if cached is not None and cached[0] > self._clock():
            return cached[1]
        asking = self._asking.get(key)
        if asking is None:
            asking = asyncio.create_task(self._fetch(key), name=f"contact-lookup-{shop}-{order_id}")
            self._asking[key] = asking
            asking.add_done_callback(lambda task: self._done(key, task))
        # Shielded: one waiter cancelled (its delivery stopped) leaves the request to the others.
        return await asyncio.shield(asking)

    def _done(self, key: tuple[str, str], task: asyncio.Task[Contact | None]) -> None:
        if self._asking.get(key) is task:
            del self._asking[key]
        if not task.cancelled():
            task.exception()  # retrieved here too, for when every waiter was cancelled

    async def _fetch(self, key: tuple[str, str]) -> Contact | None:
        contact = await self._ask(*key)
        self._cache[key] = (self._clock() + float(self.config.ttl), contact)
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return contact

    async def _ask(self, shop: str, order_id: str) -> Contact | None:
        url = self.config.url.replace("{order_id}", quote(order_id, safe=""))
        url = url.replace("{shop}", quote(shop, safe=""))
        try:
            answer = await self._http.get(
                url, headers=self.config.headers, timeout=float(self.config.timeout)
            )
        except httpx.HTTPError as exc:
            raise LookupFailed(f"contact lookup failed: {type(exc).__name__}: {exc}") from exc
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise LookupFailed(f"contact lookup failed: HTTP {answer.status_code}")
        try:
            body = msgspec.json.decode(answer.content)
        except msgspec.DecodeError as exc:
            raise LookupFailed("contact lookup failed: the answer is not JSON") from exc
        fields = self.config.fields
        found = {
            name: _text(_at(body, path))
            for name, path in (
                ("name", fields.name),
                ("phone", fields.phone),
                ("email", fields.email),
            )
            if path
        }
        if (phone := found.get("phone")) is not None:
            found["phone"] = contact_phone(phone)
        return Contact(
            order_id=order_id,
            shop=shop,
            name=found.get("name"),
            phone=found.get("phone"),
            email=found.get("email"),
        )


class ContactResolver:
    """The stored contact (registered, else pushed or pulled), with the gaps a lookup fills."""

    def __init__(self, lookup: ContactLookup | None = None) -> None:
        self.lookup = lookup

    async def resolve(
        self, order_id: str, stored: Contact | None, *, shop: str = DEFAULT_SHOP
    ) -> Contact | None:
        """The contact of `shop`'s order. Raises `LookupFailed` when a lookup was needed and
        failed."""
        if self.lookup is None or (
            stored is not None and stored.phone is not None and stored.email is not None
        ):
            return stored
        return merge(order_id, stored, await self.lookup.get(order_id, shop=shop), shop=shop)


def _at(body: Any, path: str) -> Any:
    value = body
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list | bool):
        return None
    text = str(value).strip()
    return text or None
