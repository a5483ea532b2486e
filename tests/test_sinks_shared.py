"""One table for every sink kind: what each HTTP answer means, and that no secret leaks.

Every HTTP sink runs the same retry table through its real `send()` against respx. A new HTTP
sink adds one line to `HTTP_SINKS`; the console sink joins the parts that apply to it.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import msgspec
import pytest
import respx
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import SandboxedEnvironment

from gateway.events import Event, Status
from gateway.units import dec_hook
from sinks.base import Delivered, Message, Permanent, Retry, Sink, SinkDeps, mask
from sinks.registry import load_sink_types

WHSEC_A = "whsec_" + base64.b64encode(b"a" * 24 + b"kabarin-test-key").decode()
WHSEC_B = "whsec_" + base64.b64encode(b"b" * 32).decode()
ERP_URL = "https://erp-user:erp-pass-7788@erp.example.com/hooks/kiriminaja?token=erp-qtoken-991"
SLACK_URL = "https://hooks.slack.com/services/T0KABARIN/B0KABARIN/s3cr3tSlackPathToken"


def make_event(**changes: Any) -> Event:
    """A realistic shipped event for order OID-1001."""
    at = datetime(2024, 5, 5, 9, 30, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": "evt_0123456789abcdef01234567",
        "source": "push",
        "method": "shipped_packages",
        "kind": "express",
        "status": Status.SHIPPED,
        "order_id": "OID-1001",
        "awb": "JP1234567890",
        "occurred_at": at,
        "received_at": at + timedelta(seconds=3),
        "details": {"courier": "jne", "service_name": "REG"},
        "raw": {"order_id": "OID-1001", "shipped_at": "2024-05-05 16:30:00"},
    }
    fields.update(changes)
    return Event(**fields)


def make_message(**changes: Any) -> Message:
    """A message; ``text=...`` is the shorthand for ``parts={"text": ...}``."""
    if "text" in changes:
        changes["parts"] = {"text": changes.pop("text")}
    fields: dict[str, Any] = {
        "delivery_id": "dlv_01HZX3K9Q2",
        "route": "all-to-erp",
        "event": make_event(),
        "contact": None,
        "parts": {"text": "Dikirim: pesanan OID-1001 (resi JP1234567890)"},
    }
    fields.update(changes)
    return Message(**fields)


def build_sink(block: dict[str, Any], client: httpx.AsyncClient | None, name: str = "s") -> Sink:
    """Validate a YAML block the way `gateway.config` does and build its sink."""
    kind = load_sink_types()[block["type"]]
    config = msgspec.convert(block, kind.config_type, dec_hook=dec_hook)
    built: Sink = kind.build(name, config, SinkDeps(http=client))
    return built


@dataclass(frozen=True)
class HttpSinkCase:
    block: dict[str, Any]
    secrets: tuple[str, ...]
    """Values from the block that must never be shown."""


HTTP_SINKS = [
    pytest.param(
        HttpSinkCase(
            {"type": "webhook", "url": ERP_URL, "secret": [WHSEC_A, WHSEC_B]},
            (WHSEC_A, WHSEC_B, WHSEC_A.removeprefix("whsec_"), "erp-pass-7788", "erp-qtoken-991"),
        ),
        id="webhook",
    ),
    pytest.param(
        HttpSinkCase(
            {"type": "slack", "webhook_url": SLACK_URL},
            (
                SLACK_URL,
                "/services/T0KABARIN/B0KABARIN/s3cr3tSlackPathToken",
                "s3cr3tSlackPathToken",
            ),
        ),
        id="slack",
    ),
]
LOCAL_SINKS = [*HTTP_SINKS, pytest.param(HttpSinkCase({"type": "console"}, ()), id="console")]
"""Sinks that deliver with respx answering any POST (or with nothing to call)."""
ALL_SINKS = [
    *LOCAL_SINKS,
    pytest.param(
        HttpSinkCase(
            {
                "type": "email",
                "host": "smtp.toko.example",
                "username": "kabarin@toko.example",
                "password": "smtp-Pa55-word-991",
                "from": "kabarin@toko.example",
                "to": ["gudang@toko.example"],
            },
            ("smtp-Pa55-word-991",),
        ),
        id="email",
    ),
    pytest.param(
        HttpSinkCase(
            {
                "type": "email",
                "host": "smtp.toko.example",
                "username": "kabarin@toko.example",
                "password": "smtp-Pa55-word-991",
                "from": "kabarin@toko.example",
                "to": "customer",
            },
            ("smtp-Pa55-word-991",),
        ),
        id="email-customer",
    ),
    pytest.param(
        HttpSinkCase(
            {
                "type": "whatsapp",
                "provider": "cloud",
                "phone_number_id": "106540352242922",
                "access_token": "EAAG-cloud-access-token-4455",
                "template": "status_paket",
                "parameters": ["{{ event.order_id }}: {{ event.status | status_label }}"],
            },
            ("EAAG-cloud-access-token-4455",),
        ),
        id="whatsapp-cloud",
    ),
    pytest.param(
        HttpSinkCase(
            {"type": "whatsapp", "provider": "fonnte", "token": "fonnte-token-Zx81q"},
            ("fonnte-token-Zx81q",),
        ),
        id="whatsapp-fonnte",
    ),
    pytest.param(
        HttpSinkCase(
            {
                "type": "sms",
                "provider": "twilio",
                "account_sid": "AC0123456789abcdef",
                "auth_token": "twilio-auth-token-9911",
                "from": "KABARIN",
            },
            ("twilio-auth-token-9911",),
        ),
        id="sms-twilio",
    ),
    pytest.param(
        HttpSinkCase(
            {"type": "sms", "provider": "zenziva", "userkey": "zz-user-123", "passkey": "zz-pass"},
            ("zz-user-123", "zz-pass"),
        ),
        id="sms-zenziva",
    ),
    pytest.param(
        HttpSinkCase(
            {
                "type": "sms",
                "provider": "http",
                "url": "https://sms.example.co.id/send?apikey=gw-query-key-3131",
                "headers": {"Authorization": "Bearer gw-token-8080"},
                "json": {"to": "{{ phone }}", "text": "{{ text }}"},
            },
            ("gw-query-key-3131", "gw-token-8080"),
        ),
        id="sms-http",
    ),
]


@pytest.fixture
async def client() -> Any:
    async with httpx.AsyncClient() as c:
        yield c


async def answer(
    case: HttpSinkCase, client: httpx.AsyncClient, response: httpx.Response | Exception
) -> Any:
    """Send one message through the case's sink while the peer answers `response`."""
    sink = build_sink(case.block, client)
    with respx.mock(assert_all_called=True) as router:
        route = router.route(method="POST")
        if isinstance(response, Exception):
            route.side_effect = response
        else:
            route.return_value = response
        return await sink.send(make_message())


@pytest.mark.parametrize("case", HTTP_SINKS)
@pytest.mark.parametrize("status", [200, 201, 204])
async def test_2xx_is_delivered(case: HttpSinkCase, client: httpx.AsyncClient, status: int) -> None:
    result = await answer(case, client, httpx.Response(status, text="ok" if status != 204 else ""))
    assert result == Delivered(status_code=status)


@pytest.mark.parametrize("case", HTTP_SINKS)
@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
async def test_other_4xx_is_permanent(
    case: HttpSinkCase, client: httpx.AsyncClient, status: int
) -> None:
    result = await answer(case, client, httpx.Response(status, text="rejected: bad field"))
    assert isinstance(result, Permanent)
    assert result.status_code == status and not result.disable_sink
    assert result.reason.startswith(f"HTTP {status} ")
    assert "rejected: bad field" in result.reason


@pytest.mark.parametrize("case", HTTP_SINKS)
async def test_410_gone_is_permanent_and_disables_the_sink(
    case: HttpSinkCase, client: httpx.AsyncClient
) -> None:
    result = await answer(case, client, httpx.Response(410, text="gone"))
    assert isinstance(result, Permanent) and result.disable_sink and result.status_code == 410


@pytest.mark.parametrize("case", HTTP_SINKS)
@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
async def test_transient_statuses_are_retried(
    case: HttpSinkCase, client: httpx.AsyncClient, status: int
) -> None:
    result = await answer(case, client, httpx.Response(status, text="busy"))
    assert isinstance(result, Retry)
    assert result.status_code == status and result.after is None
    assert result.reason.startswith(f"HTTP {status} ") and "busy" in result.reason


@pytest.mark.parametrize("case", HTTP_SINKS)
@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_honoured(
    case: HttpSinkCase, client: httpx.AsyncClient, status: int
) -> None:
    result = await answer(case, client, httpx.Response(status, headers={"Retry-After": "30"}))
    assert isinstance(result, Retry) and result.after == 30


@pytest.mark.parametrize("case", HTTP_SINKS)
async def test_retry_after_http_date_is_honoured(
    case: HttpSinkCase, client: httpx.AsyncClient
) -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    result = await answer(case, client, httpx.Response(503, headers={"Retry-After": when}))
    assert isinstance(result, Retry) and result.after is not None
    assert 115 <= result.after <= 121


@pytest.mark.parametrize("case", HTTP_SINKS)
@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("[Errno 111] Connection refused"),
        httpx.ConnectTimeout("timed out connecting"),
        httpx.ReadTimeout("timed out reading"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
    ids=["connect-error", "connect-timeout", "read-timeout", "disconnected"],
)
async def test_network_errors_and_timeouts_are_retried(
    case: HttpSinkCase, client: httpx.AsyncClient, error: Exception
) -> None:
    result = await answer(case, client, error)
    assert isinstance(result, Retry) and result.status_code is None
    assert str(error) in result.reason


def _echoes(secret: str) -> list[httpx.Response | Exception]:
    quoted = secret.replace("/", "\\/")
    return [
        httpx.Response(400, text=f"{secret} is not allowed here"),
        httpx.Response(403, json={"error": "denied", "called": secret}),  # JSON escapes "/"
        httpx.Response(500, text=f"upstream {quoted} failed"),
        httpx.ConnectError(f"cannot connect to {secret}"),
    ]


@pytest.mark.parametrize("case", HTTP_SINKS)
async def test_no_secret_in_reasons_or_logs_even_when_the_peer_echoes_it(
    case: HttpSinkCase, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # `kabarin` quiets it when run in-process
    sink = build_sink(case.block, client)
    shown = set(case.secrets) | set(sink.secrets())
    url = case.block.get("url") or case.block["webhook_url"]
    for secret in [url, *case.secrets]:
        for response in _echoes(secret):
            with respx.mock() as router:
                route = router.route(method="POST")
                if isinstance(response, Exception):
                    route.side_effect = response
                else:
                    route.return_value = response
                result = await sink.send(make_message())
            assert isinstance(result, Retry | Permanent)
            assert "***" in result.reason  # the echo is there, masked
            for value in shown:
                assert value not in result.reason, (secret, result.reason)
    logged = caplog.text
    assert "HTTP Request: POST" in logged  # httpx did log every request ...
    for value in shown:
        assert value not in logged  # ... without the secret parts of the URL


@pytest.mark.parametrize("case", ALL_SINKS)
def test_printing_a_config_masks_its_secrets(case: HttpSinkCase) -> None:
    sink = build_sink(case.block, None)
    for text in (repr(sink.config), str(sink.config), repr(mask(sink.config)), repr(sink)):
        for value in case.secrets:
            assert value not in text
    assert mask(sink.config)["type"] == case.block["type"]


@pytest.mark.parametrize("case", ALL_SINKS)
def test_every_kind_declares_the_protocol(case: HttpSinkCase) -> None:
    kind = load_sink_types()[case.block["type"]]
    assert kind.default_ordering in ("all", "latest")
    sink = build_sink(case.block, None)  # a block may choose the defaults (email's `to`)
    assert set(sink.default_templates) <= set(sink.parts)
    for part in sink.parts:  # a built-in sink works with no template configured
        assert set(sink.default_templates[part]) == {"id", "en"}, part
    assert kind.config_type.__struct_config__.tag == case.block["type"]
    config = msgspec.convert(
        {
            **case.block,
            "retry": {"schedule": ["5s", "1m"]},
            "concurrency": 3,
            "rate_limit": "2/s",
            "ordering": "all",
            "language": "en",
            "template": "{{ event.order_id }}",
        },
        kind.config_type,
        dec_hook=dec_hook,
    )
    assert config.concurrency == 3 and config.language == "en" and config.ordering == "all"
    assert config.retry is not None and config.retry.schedule == [5.0, 60.0]


@pytest.mark.parametrize("case", ALL_SINKS)
@pytest.mark.parametrize("event", [make_event(), make_event(awb=None, reason="3pl rejection")])
def test_default_templates_render_with_only_the_documented_names(
    case: HttpSinkCase, event: Event
) -> None:
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
    env.filters |= {
        "rupiah": lambda n: f"Rp{n:,}".replace(",", "."),
        "localtime": lambda t: t.strftime("%d/%m/%Y %H:%M WIB"),
        "status_label": lambda s: s.value.title(),
        "group_key": lambda key: str(key),
    }
    defaults = build_sink(case.block, None).default_templates.items()
    link = "https://kabarin.toko.example/ui/orders/view?id=OID-1001"
    for language, source in ((lang, src) for _, by in defaults for lang, src in by.items()):
        names = meta.find_undeclared_variables(env.parse(source))
        documented = {"event", "contact", "route", "order_url", "tracking_url", "group"}
        assert names <= documented, (language, names)
        for order_url in (None, link):
            text = env.from_string(source).render(
                event=event,
                contact=None,
                route="r",
                order_url=order_url,
                tracking_url=None,
                group=None,
            )
            assert "OID-1001" in text and "Shipped" in text
            if "event.reason" in source:
                assert ("3pl rejection" in text) is (event.reason is not None)
            assert (link in text) is (order_url is not None and "order_url" in source)


@pytest.mark.parametrize("case", LOCAL_SINKS)
async def test_send_never_raises_for_an_expected_failure_and_aclose_is_safe(
    case: HttpSinkCase, client: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = build_sink(case.block, client)
    with respx.mock(assert_all_called=False) as router:
        router.route(method="POST").return_value = httpx.Response(200)
        assert isinstance(await sink.send(make_message()), Delivered)
    await sink.aclose()
    await sink.aclose()
