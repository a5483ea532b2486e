"""The whatsapp sink against local servers that imitate Meta's Cloud API and Fonnte, and the
exact request of each provider (respx).

The fakes answer as the providers document: Cloud API errors as ``{"error": {"code": ...}}``
with an HTTP 4xx/5xx, Fonnte always HTTP 200 with ``status`` and ``reason`` in the body.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
import respx
from aiohttp import web
from aiohttp.test_utils import TestServer

from gateway.events import Contact
from gateway.templating import Templates
from gateway.units import FieldError, dec_hook
from sinks.base import Delivered, Message, Permanent, Retry, Sink, SinkDeps, Skipped
from sinks.http import make_http_client
from sinks.registry import load_sink_types
from tests.test_sinks_http import raw_peer
from tests.test_sinks_shared import make_event, make_message

TOKEN = "EAAG-cloud-access-token-4455"
FONNTE_TOKEN = "fonnte-token-Zx81q"
SITI = Contact(order_id="OID-1001", name="Siti Aminah", phone="0812-3456-7890")


@dataclass
class Fake:
    """A provider imitation: records what it got and answers from `answer`."""

    answer: Callable[[web.Request, dict[str, Any]], Awaitable[web.Response]]
    received: list[tuple[web.Request, dict[str, Any]]] = field(default_factory=list)
    url: str = ""


async def serve(fake: Fake, routes: list[tuple[str, str]]) -> AsyncIterator[Fake]:
    async def handle(request: web.Request) -> web.Response:
        if request.content_type == "application/json":
            body: dict[str, Any] = await request.json()
        else:
            body = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        fake.received.append((request, body))
        return await fake.answer(request, body)

    app = web.Application()
    for method, path in routes:
        app.router.add_route(method, path, handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()


# Meta Cloud API --------------------------------------------------------------------------

CLOUD_FAILURES: dict[str, tuple[int, int]] = {}
"""Recipient (digits) → (HTTP status, error.code) the fake answers with."""


async def cloud_answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    if request.headers.get("Authorization") != f"Bearer {TOKEN}":
        return cloud_error(401, 190, "Error validating access token: Session has expired")
    failure = CLOUD_FAILURES.get(body.get("to", ""))
    if failure is not None:
        return cloud_error(*failure, f"Message failed ({failure[1]})")
    return web.json_response(
        {
            "messaging_product": "whatsapp",
            "contacts": [{"input": body["to"], "wa_id": body["to"]}],
            "messages": [{"id": "wamid.HBgLNjI4MTIzNDU2Nzg5MBUCABEYEjQ"}],
        }
    )


def cloud_error(status: int, code: int, message: str) -> web.Response:
    return web.json_response(
        {
            "error": {
                "message": message,
                "type": "OAuthException",
                "code": code,
                "error_data": {"messaging_product": "whatsapp", "details": message},
                "fbtrace_id": "AbCdEf123",
            }
        },
        status=status,
    )


@pytest.fixture
async def cloud() -> AsyncIterator[Fake]:
    CLOUD_FAILURES.clear()
    async for fake in serve(Fake(cloud_answer), [("POST", "/v21.0/{phone_number_id}/messages")]):
        yield fake


# Fonnte -------------------------------------------------------------------------------------

FONNTE_FAILURES: dict[str, str] = {}
"""Target → the ``reason`` Fonnte gives for refusing it."""


async def fonnte_answer(request: web.Request, body: dict[str, Any]) -> web.Response:
    if request.headers.get("Authorization") != FONNTE_TOKEN:
        return web.json_response({"status": False, "reason": "token invalid"})
    if body.get("target", "") in FONNTE_FAILURES:
        return web.json_response({"status": False, "reason": FONNTE_FAILURES[body["target"]]})
    return web.json_response(
        {
            "detail": "success! message in queue",
            "id": ["80367170"],
            "process": "pending",
            "status": True,
            "target": [body["target"]],
        }
    )


@pytest.fixture
async def fonnte() -> AsyncIterator[Fake]:
    FONNTE_FAILURES.clear()
    async for fake in serve(Fake(fonnte_answer), [("POST", "/send")]):
        yield fake


# ---------------------------------------------------------------------------------------------


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_http_client() as c:
        yield c


def build(block: dict[str, Any], client: httpx.AsyncClient | None) -> Sink:
    kind = load_sink_types()["whatsapp"]
    config = msgspec.convert({"type": "whatsapp", **block}, kind.config_type, dec_hook=dec_hook)
    sink: Sink = kind.build("wa", config, SinkDeps(http=client))
    return sink


def cloud_block(base_url: str | None, **more: Any) -> dict[str, Any]:
    return {
        "provider": "cloud",
        "phone_number_id": "106540352242922",
        "access_token": TOKEN,
        "template": "status_paket",
        "parameters": [
            "{{ contact.name or 'Kak' }}",
            "{{ event.order_id }}",
            "{{ event.status | status_label }}",
        ],
        **({"base_url": f"{base_url}/v21.0"} if base_url else {}),
        **more,
    }


def fonnte_block(base_url: str | None, **more: Any) -> dict[str, Any]:
    return {
        "provider": "fonnte",
        "token": FONNTE_TOKEN,
        **({"base_url": base_url} if base_url else {}),
        **more,
    }


def rendered(sink: Sink, contact: Contact | None = SITI, **event: Any) -> Message:
    """The message the dispatcher would hand `sink`: every part it declares, rendered."""
    templates = Templates(timezone=ZoneInfo("Asia/Jakarta"))
    evt = make_event(**event)
    parts = templates.render_parts(
        templates.sources({}, sink),
        event=evt,
        contact=contact,
        route="r",
        language=sink.config.language,
    )
    return make_message(event=evt, contact=contact, parts=parts)


async def test_cloud_sends_the_approved_template_with_rendered_parameters(
    cloud: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(cloud_block(cloud.url), client)
    result = await sink.send(rendered(sink))
    assert result == Delivered(status_code=200)
    [(request, body)] = cloud.received
    assert request.path == "/v21.0/106540352242922/messages"
    assert body == {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "6281234567890",
        "type": "template",
        "template": {
            "name": "status_paket",
            "language": {"code": "id"},
            "components": [
                {
                    "type": "body",
                    "parameters": [
                        {"type": "text", "text": "Siti Aminah"},
                        {"type": "text", "text": "OID-1001"},
                        {"type": "text", "text": "Dikirim"},
                    ],
                }
            ],
        },
    }


async def test_cloud_template_language_can_be_regional(
    cloud: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(cloud_block(cloud.url, language="en", template_language="en_US"), client)
    assert isinstance(await sink.send(rendered(sink)), Delivered)
    [(_, body)] = cloud.received
    assert body["template"]["language"] == {"code": "en_US"}
    assert body["template"]["components"][0]["parameters"][2]["text"] == "Shipped"


@pytest.mark.parametrize(
    ("status", "code", "outcome", "says"),
    [
        (400, 130429, Retry, "rate limit"),
        (500, 131000, Retry, "something went wrong"),
        (400, 131056, Retry, "too many messages"),
        (503, 135000, Retry, "WhatsApp error 135000"),
        (400, 131026, Permanent, "not on WhatsApp"),
        (400, 131047, Permanent, "24 hours"),
        (400, 132000, Permanent, "parameter count"),
        (404, 132001, Permanent, "does not exist in this language"),
        (400, 132015, Permanent, "paused"),
        (400, 132016, Permanent, "disabled"),
        (400, 100, Permanent, "WhatsApp error 100"),
    ],
)
async def test_cloud_errors_by_their_documented_code(
    cloud: Fake,
    client: httpx.AsyncClient,
    status: int,
    code: int,
    outcome: type[Retry | Permanent],
    says: str,
) -> None:
    CLOUD_FAILURES["6281234567890"] = (status, code)
    sink = build(cloud_block(cloud.url), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, outcome), result
    assert result.status_code == status
    assert says in result.reason and str(code) in result.reason
    assert not (isinstance(result, Permanent) and result.disable_sink)


async def test_cloud_expired_token_switches_the_sink_off_and_is_never_shown(
    cloud: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(cloud_block(cloud.url, access_token="EAAG-expired-token-000"), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.disable_sink and result.status_code == 401
    assert "expired or was revoked" in result.reason
    assert "EAAG-expired-token-000" not in result.reason


async def test_fonnte_sends_the_text_to_the_normalised_number(
    fonnte: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(fonnte_block(fonnte.url), client)
    result = await sink.send(rendered(sink, reason=None))
    assert result == Delivered(status_code=200)
    [(request, body)] = fonnte.received
    assert request.headers["Authorization"] == FONNTE_TOKEN
    assert body == {
        "target": "6281234567890",
        "countryCode": "62",
        "message": (
            "Halo Siti Aminah, pesanan OID-1001: Dikirim (resi JP1234567890), "
            "05 Mei 2024 16:30 WIB."
        ),
    }


@pytest.mark.parametrize(
    ("reason", "outcome", "disable"),
    [
        ("token invalid", Permanent, True),
        ("target invalid", Permanent, False),
        ("insufficient quota", Retry, False),
        ("request invalid on disconnected device", Retry, False),
        ("invalid message", Permanent, False),
    ],
)
async def test_fonnte_refusals_by_reason(
    fonnte: Fake,
    client: httpx.AsyncClient,
    reason: str,
    outcome: type[Retry | Permanent],
    disable: bool,
) -> None:
    FONNTE_FAILURES["6281234567890"] = reason
    sink = build(fonnte_block(fonnte.url), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, outcome) and reason in result.reason
    assert (isinstance(result, Permanent) and result.disable_sink) is disable


async def test_fonnte_wrong_token_is_reported_without_it(
    fonnte: Fake, client: httpx.AsyncClient
) -> None:
    sink = build(fonnte_block(fonnte.url, token="wrong-token-771"), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.disable_sink
    assert result.reason == "Fonnte refused: token invalid"


async def test_fonnte_http_errors_follow_the_http_table(
    fonnte: Fake, client: httpx.AsyncClient
) -> None:
    async def broken(request: web.Request, body: dict[str, Any]) -> web.Response:
        return web.Response(status=502, text="Bad Gateway")

    fonnte.answer = broken
    sink = build(fonnte_block(fonnte.url), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and result.status_code == 502
    assert "Bad Gateway" in result.reason


@pytest.mark.parametrize("provider", ["cloud", "fonnte"])
@pytest.mark.parametrize(
    ("contact", "outcome", "says"),
    [
        (None, Skipped, "no phone number for order OID-1001"),
        (Contact(order_id="OID-1001", name="Siti"), Skipped, "no phone number for order OID-1001"),
        (Contact(order_id="OID-1001", phone="0812345"), Permanent, "not a valid number"),
        (Contact(order_id="OID-1001", phone="telepon"), Permanent, "not a phone number"),
    ],
)
async def test_no_or_invalid_phone_sends_nothing(
    cloud: Fake,
    fonnte: Fake,
    client: httpx.AsyncClient,
    provider: str,
    contact: Contact | None,
    outcome: type[Skipped | Permanent],
    says: str,
) -> None:
    block = cloud_block(cloud.url) if provider == "cloud" else fonnte_block(fonnte.url)
    sink = build(block, client)
    result = await sink.send(rendered(sink, contact))
    assert isinstance(result, outcome) and says in result.reason
    assert cloud.received == [] and fonnte.received == []


async def test_unreachable_provider_is_retried(client: httpx.AsyncClient) -> None:
    sink = build(fonnte_block("http://127.0.0.1:9"), client)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and result.status_code is None


# respx: the exact request of each provider at its public address --------------------------


async def test_cloud_request_at_the_public_api() -> None:
    async with httpx.AsyncClient() as c:
        sink = build(cloud_block(None), c)
        with respx.mock(assert_all_called=True) as router:
            route = router.post(
                "https://graph.facebook.com/v21.0/106540352242922/messages"
            ).respond(200, json={"messages": [{"id": "wamid.X"}]})
            assert isinstance(await sink.send(rendered(sink)), Delivered)
        request = route.calls.last.request
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert request.headers["content-type"] == "application/json"
        body = msgspec.json.decode(request.content)
        assert body["to"] == "6281234567890" and body["template"]["name"] == "status_paket"


async def test_fonnte_request_at_the_public_api() -> None:
    async with httpx.AsyncClient() as c:
        sink = build(fonnte_block(None), c)
        with respx.mock(assert_all_called=True) as router:
            route = router.post("https://api.fonnte.com/send").respond(
                200, json={"status": True, "detail": "success! message in queue"}
            )
            assert isinstance(await sink.send(rendered(sink)), Delivered)
        request = route.calls.last.request
        assert request.headers["authorization"] == FONNTE_TOKEN
        assert request.headers["content-type"] == "application/x-www-form-urlencoded"
        form = parse_qs(request.content.decode())
        assert form["target"] == ["6281234567890"] and form["countryCode"] == ["62"]
        assert form["message"][0].startswith("Halo Siti Aminah, pesanan OID-1001")


def test_preview_shows_the_request_without_the_token() -> None:
    sink = build(cloud_block(None), None)
    shown = sink.preview(rendered(sink))
    assert "graph.facebook.com/v21.0/106540352242922/messages" in shown
    assert "status_paket" in shown and TOKEN not in shown
    assert "not sent: no phone number" in sink.preview(rendered(sink, None))


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"provider": "cloud", "access_token": "t", "template": "x"}, "phone_number_id"),
        ({"provider": "cloud", "phone_number_id": "1", "template": "x"}, "access_token"),
        ({"provider": "cloud", "phone_number_id": "1", "access_token": "t"}, "template"),
        ({"provider": "fonnte"}, "token"),
        ({"provider": "fonnte", "token": "t", "phone_number_id": "1"}, "phone_number_id"),
        ({"provider": "cloud", **cloud_block(None), "token": "t"}, "token"),
        ({"provider": "fonnte", "token": "t", "base_url": "api.fonnte.com"}, "base_url"),
        ({**cloud_block(None), "base_url": "https://graph.facebook.com"}, "base_url"),
        ({**cloud_block(None), "base_url": "https://proxy.toko.example/wa/"}, "base_url"),
    ],
)
def test_keys_are_checked_per_provider(block: dict[str, Any], key: str) -> None:
    kind = load_sink_types()["whatsapp"]
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({"type": "whatsapp", **block}, kind.config_type, dec_hook=dec_hook)
    cause = caught.value.__cause__
    assert isinstance(cause, FieldError) and cause.key == (key,)


async def test_a_fonnte_200_that_breaks_off_is_not_sent_again(client: httpx.AsyncClient) -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    async with raw_peer(answer, 0.05, b'{"s', 0.05, "reset") as url:
        sink = build(fonnte_block(url), client)
        result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.status_code == 200, result
    assert result.reason.startswith("HTTP 200 from Fonnte, but its body broke off (")
    assert result.reason.endswith(
        "the provider may have sent the message; not retried, as a replay would send it again"
    )


async def test_no_cloud_answer_within_the_timeout_is_not_sent_again(
    client: httpx.AsyncClient,
) -> None:
    drip = [item for _ in range(20) for item in (0.1, b"X-Drip: 1\r\n")]
    async with raw_peer(b"HTTP/1.1 200 OK\r\n", *drip, b"Content-Length: 0\r\n\r\n") as url:
        sink = build(cloud_block(url, timeout="500ms"), client)
        result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent), result
    assert result.reason.startswith("timed out: no answer within 0.5 s (the sink's timeout)")


@pytest.mark.parametrize(
    "base_url",
    ["https://graph.facebook.com/v21.0", "https://proxy.toko.example/wa/v19.0/", "http://x/v22"],
)
def test_a_cloud_base_url_with_the_graph_api_version_is_accepted(base_url: str) -> None:
    sink = build({**cloud_block(None), "base_url": base_url}, None)
    assert "/106540352242922/messages" in sink.preview(rendered(sink))


def test_a_cloud_base_url_without_the_version_says_what_it_needs() -> None:
    kind = load_sink_types()["whatsapp"]
    block = {"type": "whatsapp", **cloud_block(None), "base_url": "https://graph.facebook.com"}
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert(block, kind.config_type, dec_hook=dec_hook)
    assert str(caught.value.__cause__) == (
        "must end with the Graph API version, like https://graph.facebook.com/v21.0"
        " (https://graph.facebook.com has none)"
    )
