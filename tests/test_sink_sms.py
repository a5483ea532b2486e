"""The sms sink against local servers that imitate Twilio, Zenziva and a generic Indonesian
gateway, the exact request of each provider (respx), and the segment guard."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
import respx
from aiohttp import web

from gateway.events import Contact
from gateway.templating import Templates
from gateway.units import FieldError, dec_hook
from sinks.base import Delivered, Message, Permanent, Retry, Sink, SinkDeps, Skipped
from sinks.http import make_http_client
from sinks.registry import load_sink_types
from tests.test_sink_whatsapp import Fake, serve
from tests.test_sinks_http import raw_peer
from tests.test_sinks_shared import make_event, make_message

SID, AUTH_TOKEN = "AC0123456789abcdef0123456789abcdef", "twilio-auth-token-9911"
USERKEY, PASSKEY = "zz-userkey-123", "zz-passkey-456"
GATEWAY_TOKEN = "gw-token-8080"
SITI = Contact(order_id="OID-1001", name="Siti Aminah", phone="0812-3456-7890")


# Twilio: 201 with the message; errors as {"code", "message", "more_info", "status"} ------------


async def twilio_answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    expected = "Basic " + base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
    if request.headers.get("Authorization") != expected:
        return twilio_error(401, 20003, "Authenticate")
    to = body.get("To", "")
    if to == "+6281111111111":
        return twilio_error(400, 21211, f"The 'To' number {to} is not a valid phone number.")
    if to == "+6282222222222":
        return twilio_error(429, 20429, "Too Many Requests")
    if to == "+6283333333333":
        return twilio_error(503, 20500, "Service Unavailable")
    return web.json_response(
        {"sid": "SM0123", "status": "queued", "to": to, "body": body["Body"]}, status=201
    )


def twilio_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status=status,
    )


@pytest.fixture
async def twilio() -> AsyncIterator[Fake]:
    async for fake in serve(
        Fake(twilio_answer), [("POST", "/2010-04-01/Accounts/{sid}/Messages.json")]
    ):
        yield fake


# Zenziva: always 200, {"messageId", "to", "status": "1" | "0", "text"} ----------------------


async def zenziva_answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    if (body.get("userkey"), body.get("passkey")) != (USERKEY, PASSKEY):
        return web.json_response({"status": "0", "text": "Userkey atau Passkey Salah"})
    if body.get("to") == "6281111111111":
        return web.json_response({"status": "0", "text": "Saldo tidak mencukupi"})
    if body.get("to") == "6282222222222":
        return web.json_response({"status": "0", "text": "Nomor tujuan tidak valid"})
    return web.json_response(
        {"messageId": "5e8b7d", "to": body["to"], "status": "1", "text": "Success"}
    )


@pytest.fixture
async def zenziva() -> AsyncIterator[Fake]:
    async for fake in serve(Fake(zenziva_answer), [("POST", "/reguler/api/sendsms/")]):
        yield fake


# A generic gateway: JSON in, {"result": {"code": "OK" | "..."}} out ------------------------


async def gateway_answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {GATEWAY_TOKEN}":
        return web.json_response({"error": "unauthorized"}, status=401)
    if body.get("msisdn") == "6281111111111":
        return web.json_response({"result": {"code": "REJECTED", "why": "blacklisted"}})
    if body.get("msisdn") == "6282222222222":
        return web.Response(status=503, text="maintenance")
    return web.json_response({"result": {"code": "OK", "id": 77}})


@pytest.fixture
async def generic() -> AsyncIterator[Fake]:
    async for fake in serve(Fake(gateway_answer), [("POST", "/api/v2/sms")]):
        yield fake


# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as c:
        yield c


def build(block: dict[str, Any], client: httpx.AsyncClient | None) -> Sink:
    kind = load_sink_types()["sms"]
    config = msgspec.convert({"type": "sms", **block}, kind.config_type, dec_hook=dec_hook)
    sink: Sink = kind.build("sms", config, SinkDeps(http=client))
    return sink


def twilio_block(base_url: str | None, **more: Any) -> dict[str, Any]:
    block = {"provider": "twilio", "account_sid": SID, "auth_token": AUTH_TOKEN, "from": "KABARIN"}
    return {**block, **({"base_url": base_url} if base_url else {}), **more}


def zenziva_block(base_url: str | None, **more: Any) -> dict[str, Any]:
    block = {"provider": "zenziva", "userkey": USERKEY, "passkey": PASSKEY}
    return {**block, **({"base_url": f"{base_url}/reguler/api"} if base_url else {}), **more}


def generic_block(base_url: str, **more: Any) -> dict[str, Any]:
    return {
        "provider": "http",
        "url": f"{base_url}/api/v2/sms",
        "headers": {"Authorization": f"Bearer {GATEWAY_TOKEN}"},
        "json": {"msisdn": "{{ phone[1:] }}", "content": {"body": "{{ text }}"}, "flash": False},
        "success": {"status": [200], "field": "result.code", "value": "OK"},
        **more,
    }


def rendered(sink: Sink, contact: Contact | None = SITI, **event: Any) -> Message:
    templates = Templates(timezone=ZoneInfo("Asia/Jakarta"))
    evt = make_event(**event)
    parts = templates.render_parts(
        templates.sources({}, sink), event=evt, contact=contact, route="r", language="id"
    )
    return make_message(event=evt, contact=contact, parts=parts)


def to(phone: str) -> Contact:
    return Contact(order_id="OID-1001", phone=phone)


DEFAULT_TEXT = "Pesanan OID-1001: Dikirim, resi JP1234567890"


async def test_twilio_sends_from_the_sender(twilio: Fake, client: httpx.AsyncClient) -> None:
    sink = build(twilio_block(twilio.url), client)
    assert await sink.send(rendered(sink)) == Delivered(status_code=201)
    [(request, body)] = twilio.received
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert body == {"To": "+6281234567890", "From": "KABARIN", "Body": DEFAULT_TEXT}


async def test_twilio_messaging_service(twilio: Fake, client: httpx.AsyncClient) -> None:
    block = {**twilio_block(twilio.url), "from": None, "messaging_service_sid": "MG0011"}
    sink = build(block, client)
    assert isinstance(await sink.send(rendered(sink)), Delivered)
    [(_, body)] = twilio.received
    assert body["MessagingServiceSid"] == "MG0011" and "From" not in body


@pytest.mark.parametrize(
    ("phone", "outcome", "says", "disable"),
    [
        ("+6281111111111", Permanent, "Twilio error 21211: The 'To' number", False),
        ("+6282222222222", Retry, "Twilio error 20429: Too Many Requests", False),
        ("+6283333333333", Retry, "Twilio error 20500", False),
    ],
)
async def test_twilio_errors(
    twilio: Fake,
    client: httpx.AsyncClient,
    phone: str,
    outcome: type[Retry | Permanent],
    says: str,
    disable: bool,
) -> None:
    sink = build(twilio_block(twilio.url), client)
    result = await sink.send(rendered(sink, to(phone)))
    assert isinstance(result, outcome) and says in result.reason
    assert (isinstance(result, Permanent) and result.disable_sink) is disable


async def test_twilio_refused_login_switches_the_sink_off(
    twilio: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(twilio_block(twilio.url, auth_token="wrong-token-5566"), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.disable_sink and result.status_code == 401
    assert "20003" in result.reason and "wrong-token-5566" not in result.reason


async def test_zenziva_status_1_is_delivered(zenziva: Fake, client: httpx.AsyncClient) -> None:
    sink = build(zenziva_block(zenziva.url), client)
    assert await sink.send(rendered(sink)) == Delivered(status_code=200)
    [(_, body)] = zenziva.received
    assert body == {
        "userkey": USERKEY,
        "passkey": PASSKEY,
        "to": "6281234567890",
        "message": DEFAULT_TEXT,
    }


@pytest.mark.parametrize(
    ("block", "phone", "outcome", "says"),
    [
        ({}, "+6281111111111", Retry, "Saldo tidak mencukupi"),
        ({}, "+6282222222222", Permanent, "Nomor tujuan tidak valid"),
        ({"passkey": "wrong-passkey"}, "+6281234567890", Permanent, "Userkey atau Passkey Salah"),
    ],
)
async def test_zenziva_refusals(
    zenziva: Fake,
    client: httpx.AsyncClient,
    block: dict[str, Any],
    phone: str,
    outcome: type[Retry | Permanent],
    says: str,
) -> None:
    sink = build(zenziva_block(zenziva.url, **block), client)
    result = await sink.send(rendered(sink, to(phone)))
    assert isinstance(result, outcome) and result.reason == f"Zenziva refused: {says}"


async def test_generic_gateway_described_in_yaml(generic: Fake, client: httpx.AsyncClient) -> None:
    sink = build(generic_block(generic.url), client)
    assert await sink.send(rendered(sink)) == Delivered(status_code=200)
    [(request, body)] = generic.received
    assert request.headers["Authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert body == {"msisdn": "6281234567890", "content": {"body": DEFAULT_TEXT}, "flash": False}


async def test_generic_gateway_form_body(generic: Fake, client: httpx.AsyncClient) -> None:
    block = generic_block(generic.url, form={"msisdn": "{{ phone[1:] }}", "sms": "{{ text }}"})
    del block["json"]
    sink = build(block, client)
    assert isinstance(await sink.send(rendered(sink)), Delivered)
    [(request, body)] = generic.received
    assert request.content_type == "application/x-www-form-urlencoded"
    assert body == {"msisdn": "6281234567890", "sms": DEFAULT_TEXT}


@pytest.mark.parametrize(
    ("phone", "headers", "outcome", "says"),
    [
        ("+6281111111111", None, Permanent, "result.code is 'REJECTED', not 'OK'"),
        ("+6282222222222", None, Retry, "HTTP 503"),
        ("+6281234567890", {"Authorization": "Bearer nope-9999"}, Permanent, "HTTP 401"),
    ],
)
async def test_generic_gateway_outcomes(
    generic: Fake,
    client: httpx.AsyncClient,
    phone: str,
    headers: dict[str, str] | None,
    outcome: type[Retry | Permanent],
    says: str,
) -> None:
    block = generic_block(generic.url, **({"headers": headers} if headers else {}))
    sink = build(block, client)
    result = await sink.send(rendered(sink, to(phone)))
    assert isinstance(result, outcome) and says in result.reason


async def test_generic_gateway_2xx_outside_success_status(
    generic: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(generic_block(generic.url, success={"status": [202]}), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and "HTTP 200 is not one of" in result.reason


@pytest.mark.parametrize("provider", ["twilio", "zenziva", "http"])
@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("a" * 306, True),  # 2 GSM-7 parts
        ("a" * 307, False),  # 3 parts
        ("{}" * 76 + "ab", True),  # extension characters count double: 306 septets
        ("{}" * 77, False),  # 308 septets
        ("Paket kamu sudah sampai 📦" + "x" * 108, True),  # UCS-2, 134 units
        ("Paket kamu sudah sampai 📦" + "x" * 109, False),  # 135 units: 3 parts
    ],
)
async def test_the_cost_guard_refuses_a_text_over_max_segments(
    twilio: Fake,
    zenziva: Fake,
    generic: Fake,
    client: httpx.AsyncClient,
    provider: str,
    text: str,
    sent: bool,
) -> None:
    block = {
        "twilio": twilio_block(twilio.url),
        "zenziva": zenziva_block(zenziva.url),
        "http": generic_block(generic.url),
    }[provider]
    sink = build(block, client)
    result = await sink.send(make_message(contact=SITI, text=text))
    received = twilio.received + zenziva.received + generic.received
    if sent:
        assert isinstance(result, Delivered) and len(received) == 1
    else:
        assert isinstance(result, Permanent) and received == []
        assert "the text needs 3 SMS" in result.reason and "max_segments 2" in result.reason


async def test_max_segments_can_be_raised(zenziva: Fake, client: httpx.AsyncClient) -> None:
    sink = build(zenziva_block(zenziva.url, max_segments=3), client)
    assert isinstance(await sink.send(make_message(contact=SITI, text="a" * 459)), Delivered)
    result = await sink.send(make_message(contact=SITI, text="a" * 460))
    assert isinstance(result, Permanent) and "4 SMS (460 GSM-7 characters)" in result.reason


@pytest.mark.parametrize("provider", ["twilio", "zenziva"])
@pytest.mark.parametrize(
    ("contact", "outcome", "says"),
    [
        (None, Skipped, "no phone number for order OID-1001"),
        (Contact(order_id="OID-1001", phone="0812345"), Permanent, "not a valid number"),
    ],
)
async def test_no_or_invalid_phone_sends_nothing(
    twilio: Fake,
    zenziva: Fake,
    client: httpx.AsyncClient,
    provider: str,
    contact: Contact | None,
    outcome: type[Skipped | Permanent],
    says: str,
) -> None:
    block = twilio_block(twilio.url) if provider == "twilio" else zenziva_block(zenziva.url)
    sink = build(block, client)
    result = await sink.send(rendered(sink, contact))
    assert isinstance(result, outcome) and says in result.reason
    assert twilio.received == [] and zenziva.received == []


def test_default_templates_fit_one_gsm7_sms() -> None:
    sink = build(zenziva_block(None), None)
    for status in ("shipped", "delivered", "returned"):
        message = rendered(
            sink,
            status=status,
            reason="Penerima tidak ada di tempat",
            details={"tracking_url": "https://toko.example/lacak/JP1234567890"},
        )
        assert "1 SMS" in sink.preview(message) and "GSM-7" in sink.preview(message)


# respx: the exact request of each provider at its public address --------------------------


async def test_twilio_request_at_the_public_api() -> None:
    async with httpx.AsyncClient() as c:
        sink = build(twilio_block(None), c)
        with respx.mock(assert_all_called=True) as router:
            route = router.post(
                f"https://api.twilio.com/2010-04-01/Accounts/{SID}/Messages.json"
            ).respond(201, json={"sid": "SM1", "status": "queued"})
            assert await sink.send(rendered(sink)) == Delivered(status_code=201)
        request = route.calls.last.request
        basic = base64.b64encode(f"{SID}:{AUTH_TOKEN}".encode()).decode()
        assert request.headers["authorization"] == f"Basic {basic}"
        assert parse_qs(request.content.decode()) == {
            "To": ["+6281234567890"],
            "From": ["KABARIN"],
            "Body": [DEFAULT_TEXT],
        }


async def test_zenziva_request_at_the_public_api() -> None:
    async with httpx.AsyncClient() as c:
        sink = build(zenziva_block(None), c)
        with respx.mock(assert_all_called=True) as router:
            route = router.post("https://console.zenziva.net/reguler/api/sendsms/").respond(
                200, json={"status": "1", "text": "Success"}
            )
            assert isinstance(await sink.send(rendered(sink)), Delivered)
        form = parse_qs(route.calls.last.request.content.decode())
        assert form["to"] == ["6281234567890"] and form["message"] == [DEFAULT_TEXT]


async def test_generic_get_request_puts_the_form_in_the_query() -> None:
    async with httpx.AsyncClient() as c:
        block = {
            "provider": "http",
            "method": "GET",
            "url": "https://sms.example.co.id/send?apikey=gw-query-key-3131",
            "form": {"no": "{{ phone }}", "pesan": "{{ text }}"},
        }
        sink = build(block, c)
        with respx.mock(assert_all_called=True) as router:
            route = router.get(url__startswith="https://sms.example.co.id/send").respond(200)
            assert isinstance(await sink.send(rendered(sink)), Delivered)
        params = route.calls.last.request.url.params
        assert params["no"] == "+6281234567890" and params["pesan"] == DEFAULT_TEXT
        assert params["apikey"] == "gw-query-key-3131"
        assert "gw-query-key-3131" in sink.secrets()


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"provider": "twilio", "auth_token": "t", "from": "X"}, "account_sid"),
        ({"provider": "zenziva", "userkey": "u"}, "passkey"),
        ({"provider": "zenziva", "userkey": "u", "passkey": "p", "from": "X"}, "from"),
        (
            {"provider": "zenziva", "userkey": "u", "passkey": "p", "max_segments": 0},
            "max_segments",
        ),
        ({"provider": "http", "url": "sms.example", "form": {}}, "url"),
        ({"provider": "http", "url": "https://s.example", "form": {"a": "{{ order }}"}}, "form"),
        ({"provider": "http", "url": "https://s.example", "form": {"a": "{{ x"}}, "form"),
        ({"provider": "http", "url": "https://s.example", "json": {"a": [1, "{{ y }}"]}}, "json"),
    ],
)
def test_keys_are_checked_per_provider(block: dict[str, Any], key: str) -> None:
    kind = load_sink_types()["sms"]
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"type": "sms", **block}, kind.config_type, dec_hook=dec_hook)
    cause = caught.value.__cause__
    assert isinstance(cause, FieldError) and cause.key[0] == key


# Misbehaving providers (a raw local peer): once the SMS went out, it is never sent again --------

SENT_AGAIN = "the provider may have sent the message; not retried, as a replay would send it again"


async def test_a_2xx_whose_body_breaks_off_is_not_sent_again(client: httpx.AsyncClient) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    async with raw_peer(answer, 0.05, b'{"r', 0.05, "reset") as url:
        sink = build(generic_block(url), client)
        result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.status_code == 200, result
    assert result.reason.startswith("HTTP 200 from the SMS gateway, but its body broke off (")
    assert result.reason.endswith(SENT_AGAIN)


async def test_no_answer_within_the_timeout_is_not_sent_again(client: httpx.AsyncClient) -> None:
    async with raw_peer(1.0, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n") as url:
        sink = build(generic_block(url, timeout="300ms"), client)
        result = await sink.send(rendered(sink))
    assert result == Permanent(
        reason=f"timed out: no answer within 0.3 s (the sink's timeout): the request was sent,"
        f" so {SENT_AGAIN}",
        unanswered=True,  # a failure of the sink for its circuit breaker
    )


async def test_a_body_that_trickles_is_bounded_by_the_timeout(client: httpx.AsyncClient) -> None:
    drip = [item for _ in range(20) for item in (0.1, b" ")]
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n"
    async with raw_peer(answer, *drip) as url:
        sink = build(zenziva_block(url, timeout="500ms"), client)
        result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.status_code == 200, result
    assert "not complete within 0.5 s, the sink's timeout" in result.reason
    assert result.reason.startswith("HTTP 200 from Zenziva") and result.reason.endswith(SENT_AGAIN)


async def test_a_huge_answer_is_read_to_64_kib_only(client: httpx.AsyncClient) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 500000000\r\n\r\n"
    async with raw_peer(head, b'{"status": "1", "pad": "' + b"x" * 1_000_000, 60.0) as url:
        sink = build(zenziva_block(url, timeout="5s"), client)
        result = await sink.send(rendered(sink))
    assert result == Permanent(
        reason=f"HTTP 200 from Zenziva, but its body was cut at 64 KiB and it could not be"
        f" parsed: {SENT_AGAIN}",
        status_code=200,
    )
