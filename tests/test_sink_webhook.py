"""The `webhook` sink: what an ERP receives, checked with the Standard Webhooks verifier."""

from __future__ import annotations

import base64
import json
import logging
import time
from datetime import UTC, datetime

import httpx
import msgspec
import pytest
import respx
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from gateway.config import parse_config
from gateway.errors import ConfigError
from sinks.base import Delivered
from sinks.http import make_http_client
from sinks.webhook import WebhookConfig, WebhookSink, decode_secret, sign
from tests.test_sinks_shared import WHSEC_A, WHSEC_B, build_sink, make_message

URL = "https://erp.example.com/hooks/kiriminaja"


async def capture(block: dict[str, object], **message: object) -> httpx.Request:
    """Send one message and return the request the ERP received."""
    async with httpx.AsyncClient() as client:
        sink = build_sink({"type": "webhook", "url": URL, **block}, client)
        with respx.mock() as router:
            route = router.post(URL).respond(204)
            assert await sink.send(make_message(**message)) == Delivered(status_code=204)
    return route.calls.last.request


async def test_one_secret_is_accepted_by_the_standard_webhooks_verifier() -> None:
    request = await capture({"secret": WHSEC_A})
    payload = Webhook(WHSEC_A).verify(request.content, dict(request.headers))
    assert payload["type"] == "shipment.shipped"
    assert payload["data"]["order_id"] == "OID-1001"
    assert len(request.headers["webhook-signature"].split(" ")) == 1


async def test_each_of_two_rotated_secrets_verifies_on_its_own() -> None:
    request = await capture({"secret": [WHSEC_A, WHSEC_B]})
    signatures = request.headers["webhook-signature"].split(" ")
    assert len(signatures) == 2 and all(s.startswith("v1,") for s in signatures)
    for secret in (WHSEC_A, WHSEC_B):
        Webhook(secret).verify(request.content, dict(request.headers))
    other = "whsec_" + base64.b64encode(b"c" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(request.content, dict(request.headers))


async def test_a_tampered_body_fails_verification() -> None:
    request = await capture({"secret": WHSEC_A})
    with pytest.raises(WebhookVerificationError):
        Webhook(WHSEC_A).verify(
            request.content.replace(b"OID-1001", b"OID-9999"), dict(request.headers)
        )


async def test_envelope_headers_and_body() -> None:
    before = int(time.time())
    request = await capture({"secret": WHSEC_A}, delivery_id="dlv_42", text="ignored prose")
    headers = request.headers
    assert headers["webhook-id"] == "dlv_42"
    assert before <= int(headers["webhook-timestamp"]) <= int(time.time())
    assert headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert set(body) == {"type", "timestamp", "data"}
    assert body["timestamp"].endswith("Z")
    stamp = datetime.fromisoformat(body["timestamp"])
    assert stamp.tzinfo is not None and abs(stamp.timestamp() - time.time()) < 5
    event = make_message().event
    assert body["data"] == json.loads(msgspec.json.encode(event))
    assert body["data"]["status"] == "shipped" and body["data"]["raw"] == event.raw
    assert b"ignored prose" not in request.content  # the rendered text is not sent


async def test_the_webhook_id_is_the_same_on_every_retry() -> None:
    first = await capture({"secret": WHSEC_A}, attempt=1)
    second = await capture({"secret": WHSEC_A}, attempt=2)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == "dlv_01HZX3K9Q2"


async def test_custom_headers_are_sent_beside_the_signature() -> None:
    request = await capture(
        {"secret": WHSEC_A, "headers": {"X-Shop": "toko-a", "Authorization": "Bearer erp-key-1"}}
    )
    assert request.headers["x-shop"] == "toko-a"
    assert request.headers["authorization"] == "Bearer erp-key-1"
    Webhook(WHSEC_A).verify(request.content, dict(request.headers))


@pytest.mark.parametrize("header", ["webhook-id", "Webhook-Signature", "WEBHOOK-TIMESTAMP"])
def test_custom_headers_cannot_replace_the_webhook_headers(header: str) -> None:
    block = {"type": "webhook", "url": URL, "secret": WHSEC_A, "headers": {header: "x"}}
    with pytest.raises(msgspec.ValidationError, match="set by Kabarin"):
        msgspec.convert(block, WebhookConfig)


async def test_user_agent_and_timeout_come_from_the_shared_client_and_the_block() -> None:
    seen: list[httpx.Request] = []

    def peer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200)

    async with make_http_client(transport=httpx.MockTransport(peer)) as client:
        sink = build_sink(
            {"type": "webhook", "url": URL, "secret": WHSEC_A, "timeout": "3s"}, client
        )
        assert await sink.send(make_message()) == Delivered(status_code=200)
    assert seen[0].headers["user-agent"].startswith("Kabarin/")
    assert seen[0].extensions["timeout"]["read"] == 3.0


def test_signature_matches_the_reference_implementation() -> None:
    key = decode_secret(WHSEC_A)
    body = b'{"type":"shipment.shipped"}'
    expected = Webhook(WHSEC_A).sign(
        "msg_1", datetime.fromtimestamp(1700000000, UTC), body.decode()
    )
    assert sign([key], "msg_1", 1700000000, body) == expected


CONFIG = """
receiver:
  token: push-token
sinks:
  erp:
    type: webhook
    url: https://erp.example.com/hook
    secret: {secret}
"""


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("plain-old-password-1234", "must start with `whsec_`"),
        ("whsec_not*base64*at*all", "not valid base64"),
        ("whsec_" + base64.b64encode(b"too short").decode(), "24 to 64"),
        ("[]", "at least one"),
    ],
)
def test_a_bad_secret_is_a_clear_config_error_that_does_not_echo_it(
    secret: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(secret=secret), env={})
    [message] = info.value.problems
    assert message.startswith("sinks.erp") and problem in message
    if secret != "[]":
        assert secret not in message


def test_a_list_names_the_bad_entry() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(CONFIG.format(secret=f"[{WHSEC_A}, whsec_bad!]"), env={})
    assert "secret[1]" in info.value.problems[0]


@pytest.mark.parametrize("url", ["erp.example.com/hook", "ftp://erp.example.com/hook"])
def test_the_url_must_be_http(url: str) -> None:
    with pytest.raises(msgspec.ValidationError, match="absolute http"):
        msgspec.convert({"type": "webhook", "url": url, "secret": WHSEC_A}, WebhookConfig)


def test_secrets_cover_keys_url_credentials_and_auth_headers() -> None:
    block = {
        "type": "webhook",
        "url": "https://u:pw-1234@erp.example.com/h?token=qt-5678&page=1",
        "secret": [WHSEC_A, WHSEC_B],
        "headers": {"X-Api-Key": "key-abcd", "X-Shop": "toko-a"},
    }
    sink = build_sink(block, None)
    assert isinstance(sink, WebhookSink)
    found = sink.secrets()
    for value in (WHSEC_A, WHSEC_B, WHSEC_A.removeprefix("whsec_"), "pw-1234", "qt-5678"):
        assert value in found
    assert "key-abcd" in found and "toko-a" not in found and "1" not in found
    assert sink.default_ordering == "all"


async def test_built_without_a_client_it_refuses_to_send() -> None:
    sink = build_sink({"type": "webhook", "url": URL, "secret": WHSEC_A}, None)
    with pytest.raises(RuntimeError, match="without an HTTP client"):
        await sink.send(make_message())


async def test_url_credentials_go_as_basic_auth_to_a_real_server(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiohttp import web

    seen: list[tuple[str | None, str]] = []

    async def hook(request: web.Request) -> web.Response:
        seen.append((request.headers.get("Authorization"), str(request.url)))
        expected = "Basic " + base64.b64encode(b"toko:pw-r4h4s1a").decode()
        ok = request.headers.get("Authorization") == expected
        return web.Response(status=200 if ok else 401, text="ok" if ok else "who are you")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    caplog.set_level(logging.DEBUG)
    try:
        async with make_http_client() as client:
            url = f"http://toko:pw-r4h4s1a@{host}:{port}/hook"
            sink = build_sink({"type": "webhook", "url": url, "secret": WHSEC_A}, client)
            assert await sink.send(make_message()) == Delivered(status_code=200)
    finally:
        await runner.cleanup()
    ((auth, called),) = seen
    assert auth is not None and "pw-r4h4s1a" not in called
    assert "pw-r4h4s1a" not in caplog.text
    assert base64.b64encode(b"toko:pw-r4h4s1a").decode() in sink.secrets()


def test_url_credentials_and_an_authorization_header_are_one_too_many() -> None:
    with pytest.raises(msgspec.ValidationError, match="keep only one"):
        msgspec.convert(
            {
                "type": "webhook",
                "url": "https://u:p@erp.example.com/h",
                "secret": WHSEC_A,
                "headers": {"Authorization": "Bearer x"},
            },
            WebhookConfig,
        )


def test_preview_is_the_envelope_that_is_sent() -> None:
    sink = build_sink(
        {"type": "webhook", "url": "https://erp.example.com/h", "secret": WHSEC_A}, None
    )
    shown = json.loads(sink.preview(make_message()))
    assert shown["type"] == "shipment.shipped"
    assert shown["data"]["order_id"] == "OID-1001"
    assert "Dikirim" not in sink.preview(make_message())
