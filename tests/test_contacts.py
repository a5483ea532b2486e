"""Contacts: the resolution order, the lookup client (respx), and the configuration of lookups
and fallbacks."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import msgspec
import pytest
import respx

from gateway.config import ContactLookupConfig, LookupFields, parse_config
from gateway.contacts import (
    ContactLookup,
    ContactResolver,
    InvalidContact,
    LookupFailed,
    merge,
    read_contacts_csv,
    registered_contact,
)
from gateway.delivery.model import Delivery
from gateway.errors import ConfigError
from gateway.events import Contact
from gateway.routing import Router, delivery_id
from gateway.units import Duration

REGISTERED = Contact(order_id="O", phone="+62812000111", language="en")
PUSHED = Contact(order_id="O", name="Budi", phone="+62899000222")
LOOKED_UP = Contact(order_id="O", name="Pak Budi", phone="+62877", email="budi@toko.id")


@pytest.mark.parametrize(
    ("sources", "expected"),
    [
        (
            (REGISTERED, PUSHED, LOOKED_UP),
            Contact(
                order_id="O", name="Budi", phone="+62812000111", email="budi@toko.id", language="en"
            ),
        ),
        (
            (None, PUSHED, LOOKED_UP),
            Contact(order_id="O", name="Budi", phone="+62899000222", email="budi@toko.id"),
        ),
        ((None, None, LOOKED_UP), LOOKED_UP),
        ((REGISTERED, None, None), REGISTERED),
        ((None, None, None), None),
    ],
)
def test_resolution_order_field_by_field(
    sources: tuple[Contact | None, ...], expected: Contact | None
) -> None:
    assert merge("O", *sources) == expected


URL = "https://erp.example/orders/{order_id}/contact"


def lookup(clock: list[float], **changes: object) -> ContactLookup:
    config = ContactLookupConfig(
        url=str(changes.pop("url", URL)),
        headers={"Authorization": "Bearer erp-s3cret"},
        fields=LookupFields(name="customer.name", phone="customer.hp", email=None),
        ttl=60,  # type: ignore[arg-type]
        **changes,  # type: ignore[arg-type]
    )
    return ContactLookup(config, httpx.AsyncClient(), clock=lambda: clock[0])


@respx.mock
async def test_lookup_reads_the_fields_and_caches_for_the_ttl() -> None:
    route = respx.get("https://erp.example/orders/OID%2F7/contact").respond(
        200, json={"customer": {"name": "Siti", "hp": "0812-3456-7890", "email": "s@x.id"}}
    )
    clock = [100.0]
    client = lookup(clock)
    expected = Contact(order_id="OID/7", name="Siti", phone="+6281234567890")  # as sinks use it
    assert await client.get("OID/7") == expected
    assert route.calls.last.request.headers["authorization"] == "Bearer erp-s3cret"
    clock[0] = 159.0
    assert await client.get("OID/7") == expected
    assert route.call_count == 1
    clock[0] = 161.0
    assert await client.get("OID/7") == expected
    assert route.call_count == 2


@respx.mock
async def test_a_404_is_an_answer_and_a_failure_is_not() -> None:
    respx.get("https://erp.example/orders/NONE/contact").respond(404)
    down = respx.get("https://erp.example/orders/DOWN/contact")
    down.side_effect = [
        httpx.Response(503),
        httpx.ConnectError("refused"),
        httpx.Response(200, text="<html>"),
    ]
    clock = [0.0]
    client = lookup(clock)
    assert await client.get("NONE") is None
    for reason in ("HTTP 503", "ConnectError", "not JSON"):
        with pytest.raises(LookupFailed, match=reason):
            await client.get("DOWN")


class ShopSystem:
    """The shop's contact endpoint on 127.0.0.1: answers `status` to every GET once `release`
    is set, and counts the requests."""

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests: list[str] = []
        self.asked = threading.Event()
        self.release = threading.Event()
        shop = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                shop.requests.append(self.path)
                shop.asked.set()
                shop.release.wait(10)
                body = json.dumps({"customer": {"name": "Siti", "hp": "0812-3456-7890"}})
                self.send_response(shop.status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/orders/{{order_id}}"
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()


@pytest.fixture(params=[200, 404])
def shop(request: pytest.FixtureRequest) -> Iterator[ShopSystem]:
    system = ShopSystem(request.param)
    yield system
    system.release.set()
    system.server.shutdown()
    system.server.server_close()


async def test_deliveries_of_one_order_share_one_lookup_and_its_answer(shop: ShopSystem) -> None:
    clock = [0.0]
    config = ContactLookupConfig(
        url=shop.url,
        fields=LookupFields(name="customer.name", phone="customer.hp", email=None),
        ttl=60,  # type: ignore[arg-type]
    )
    async with httpx.AsyncClient() as http:
        client = ContactLookup(config, http, clock=lambda: clock[0])
        # Five sinks' deliveries of one order: all five ask before the first answer comes.
        asking = [asyncio.create_task(client.get("OID-7")) for _ in range(5)]
        assert await asyncio.to_thread(shop.asked.wait, 10)
        shop.release.set()
        answers = await asyncio.gather(*asking)
        clock[0] = 59.0
        answers.append(await client.get("OID-7"))  # within the ttl: the answer kept
    expected = (
        Contact(order_id="OID-7", name="Siti", phone="+6281234567890")
        if shop.status == 200
        else None
    )
    assert answers == [expected] * 6
    assert shop.requests == ["/orders/OID-7"]


@respx.mock
async def test_a_lookup_shared_by_waiters_that_fails_fails_for_each_and_is_not_kept() -> None:
    route = respx.get("https://erp.example/orders/O/contact")
    route.side_effect = [httpx.Response(503), httpx.Response(404)]
    client = lookup([0.0])
    failed = await asyncio.gather(client.get("O"), client.get("O"), return_exceptions=True)
    assert [type(f) for f in failed] == [LookupFailed, LookupFailed]
    assert route.call_count == 1
    assert await client.get("O") is None  # asked again: a failure is not an answer
    assert route.call_count == 2


@pytest.mark.parametrize("field", ["order_id", "name", "phone", "email", "language"])
@pytest.mark.parametrize("control", ["\x00", "\n", "\x85"])
def test_a_control_character_in_a_registered_field_is_refused(field: str, control: str) -> None:
    fields = {"order_id": "C1", "name": "Siti", "phone": "0812-3456-7890", "email": "s@toko.id"}
    fields[field] = f"a{control}b"
    with pytest.raises(InvalidContact) as info:
        registered_contact(**fields)
    assert str(info.value) == f"{field}: contains a control character (U+{ord(control):04X})"


def test_a_csv_row_with_a_control_character_is_refused_naming_the_field() -> None:
    text = "order_id,name,phone\nC1,a\x00b,\nC2,Budi,0812-3456-7890\nC\x003,Andi,\n"
    contacts, problems = read_contacts_csv(text)
    assert [c.order_id for c in contacts] == ["C2"]
    assert problems == [
        "line 2: name: contains a control character (U+0000)",
        "line 4: order_id: contains a control character (U+0000)",
    ]


def test_a_csv_row_reports_every_bad_field_not_only_the_first() -> None:
    text = (
        "order_id,name,phone,email,language\n"
        "C1,Siti,12,siti-at-toko,jv\n"
        "C2,Budi,0812-3456-7890,budi@toko.id,id\n"
        ",,,,\n"
        " ,Andi,,andi@,\n"
    )
    contacts, problems = read_contacts_csv(text)
    assert [c.order_id for c in contacts] == ["C2"]
    assert problems == [
        "line 2: phone: the phone number (2 digits) is not a valid number for country code +62;"
        " email: not an email address"
        " (name@domain); language: 'jv' is not one of id, en",
        "line 5: order_id is empty; email: not an email address (name@domain)",
    ]
    with pytest.raises(InvalidContact) as info:
        registered_contact("C3", phone="12", email="x")
    assert info.value.problems == [
        "phone: the phone number (2 digits) is not a valid number for country code +62",
        "email: not an email address (name@domain)",
    ]


@respx.mock
async def test_the_resolver_asks_only_when_a_phone_or_email_is_missing() -> None:
    route = respx.get("https://erp.example/orders/O/contact").respond(
        200, json={"customer": {"name": "Pak Budi", "hp": "+62877"}}
    )
    resolver = ContactResolver(lookup([0.0]))
    complete = Contact(order_id="O", phone="+62812", email="b@toko.id")
    assert await resolver.resolve("O", complete) == complete
    assert route.call_count == 0
    assert await resolver.resolve("O", PUSHED) == PUSHED  # its gaps stay: the answer has no email
    assert route.call_count == 1
    assert await resolver.resolve("O", None) == Contact(
        order_id="O", name="Pak Budi", phone="+62877"
    )
    assert await ContactResolver().resolve("O", None) is None


BASE = """
receiver: {token: t0ken}
sinks:
  wa: {type: whatsapp, provider: fonnte, token: fonnte-t0ken}
  sms:
    type: sms
    provider: zenziva
    userkey: u
    passkey: p
    quiet_hours: {start: "21:00", end: "07:00"}
    max_age: 12h
  console: {type: console}
"""


def test_lookup_and_fallback_configuration() -> None:
    config = parse_config(
        BASE
        + """
contacts:
  lookup:
    url: https://erp.example/orders/{order_id}/contact
    headers: {X-Api-Key: erp-key-123}
routes:
  - name: tell
    sinks: [wa, console]
    fallback: {wa: sms}
    template: {sms: "Pesanan {{ event.order_id }}"}
""",
        env={},
    )
    assert config.contacts.lookup is not None and float(config.contacts.lookup.ttl) == 600
    assert "erp-key-123" in config.secrets
    assert config.sinks["sms"].max_age == Duration(12 * 3600)
    router = Router.from_config(config)
    now = datetime(2024, 5, 5, tzinfo=UTC)
    first = Delivery(
        id="dlv_1",
        event_id="evt_1",
        route="tell",
        sink="wa",
        order_id="O",
        occurred_at=now,
        ordering="latest",
        template=None,
        state="dead",
        attempts=1,
        next_attempt_at=now,
        created_at=now,
        updated_at=now,
    )
    spare = router.fallback(first)
    assert spare is not None
    assert (spare.id, spare.sink, spare.route, spare.ordering) == (
        delivery_id("evt_1", "tell", "sms"),
        "sms",
        "tell",
        "latest",
    )
    assert spare.template is not None and "Pesanan" in spare.template
    assert router.fallback(msgspec.structs.replace(first, sink="console")) is None
    assert router.fallback(msgspec.structs.replace(first, fallback_of="dlv_0")) is None


@pytest.mark.parametrize(
    ("routes", "problem"),
    [
        ("fallback: {console: sms}", "'console' is not a sink of this route"),
        ("fallback: {wa: nope}", "undefined sink 'nope'"),
        ("fallback: {wa: wa}", "'wa' already gets every event"),
        ("sinks: [wa, sms]\n    fallback: {wa: sms}", "'sms' already gets every event"),
    ],
)
def test_bad_fallbacks(routes: str, problem: str) -> None:
    text = (
        BASE
        + "routes:\n  - name: r\n    "
        + (routes if "sinks" in routes else "sinks: [wa]\n    " + routes)
        + "\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    assert any(problem in p and "routes[0].fallback" in p for p in info.value.problems), (
        info.value.problems
    )


def test_a_lookup_url_needs_the_order_id() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(BASE + "contacts: {lookup: {url: 'https://erp.example/contact'}}\n", env={})
    assert any("contacts.lookup.url" in p and "{order_id}" in p for p in info.value.problems)


@respx.mock
async def test_two_shops_orders_with_one_id_are_looked_up_and_kept_apart() -> None:
    a = respx.get("https://erp.example/toko-a/orders/OID-7").respond(
        200, json={"customer": {"name": "Siti", "hp": "081234567890"}}
    )
    b = respx.get("https://erp.example/toko-b/orders/OID-7").respond(
        200, json={"customer": {"name": "Budi", "hp": "081298765432"}}
    )
    client = lookup([0.0], url="https://erp.example/{shop}/orders/{order_id}")
    # Both shops' deliveries ask at once: one request each, not one shared by both.
    first = await asyncio.gather(
        client.get("OID-7", shop="toko-a"),
        client.get("OID-7", shop="toko-b"),
        client.get("OID-7", shop="toko-a"),
    )
    again = [await client.get("OID-7", shop=s) for s in ("toko-b", "toko-a")]
    siti = Contact(order_id="OID-7", shop="toko-a", name="Siti", phone="+6281234567890")
    budi = Contact(order_id="OID-7", shop="toko-b", name="Budi", phone="+6281298765432")
    assert list(first) == [siti, budi, siti] and again == [budi, siti]
    assert (a.call_count, b.call_count) == (1, 1)
    resolved = await ContactResolver(client).resolve("OID-7", None, shop="toko-b")
    assert resolved == budi
