"""No customer's phone number or email shows in full, whatever encoding a sink's request uses.

One table of every provider that writes to a customer: each case renders the provider's real
request through the sink's own code (`preview`, shown on ``/ui/deliveries/{id}`` and by
``kabarin simulate``) and sends it to a peer that echoes what it received into its refusal (the
attempt's error, shown by the admin API and the dashboard). Both pass through the `Redactor`
the dispatcher and the dashboard use; neither may hold the number or the address in any form,
while the request itself really carried them (so the test sees the encoding it is about).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest
import respx

from gateway.events import Contact
from gateway.redaction import Redactor
from sinks.base import Message, Permanent, Retry
from sinks.sms import SmsSink
from sinks.whatsapp import WhatsAppSink
from tests.test_sink_email import Mailbox, SmtpServer, start
from tests.test_sinks_shared import build_sink, make_message

PHONE = "+6281399990000"
EMAIL = "budi.santoso@example.com"
CONTACT = Contact(order_id="OID-1001", name="Budi Santoso", phone="0813-9999-0000", email=EMAIL)
TEXT = f"Pesanan OID-1001 dikirim. Bila ada kendala hubungi {PHONE} atau {EMAIL}, kak."

HIDDEN = ("9999", "udi.santoso")
"""What no masked form keeps: the middle digits of the number, the address's local part."""


def _forms(value: str) -> set[str]:
    """The value as every encoding a request or an answer may carry it."""
    return {
        value,
        quote(value, safe=""),
        quote_plus(value),
        json.dumps(value)[1:-1],
        value.removeprefix("+"),
    }


def assert_hidden(shown: str) -> None:
    for value in (PHONE, EMAIL):
        for form in _forms(value):
            assert form not in shown, (form, shown)
    for part in HIDDEN:
        assert part not in shown, (part, shown)


@dataclass(frozen=True)
class Provider:
    block: dict[str, Any]
    carries: str
    """How the request carries the number: the encoding under test."""


PROVIDERS = [
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "twilio",
                "account_sid": "AC0123456789abcdef",
                "auth_token": "twilio-auth-token-9911",
                "from": "KABARIN",
                "max_segments": 3,
            },
            "To=%2B6281399990000",
        ),
        id="sms-twilio-form",
    ),
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "zenziva",
                "userkey": "zz-user-123",
                "passkey": "zz-pass-456",
                "max_segments": 3,
            },
            "to=6281399990000",
        ),
        id="sms-zenziva-form",
    ),
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "http",
                "url": "https://sms.example.co.id/send",
                "json": {"to": "{{ phone }}", "text": "{{ text }}"},
                "max_segments": 3,
            },
            '"to":"+6281399990000"',
        ),
        id="sms-http-json",
    ),
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "http",
                "url": "https://sms.example.co.id/send",
                "form": {"msisdn": "{{ phone }}", "msg": "{{ text }}"},
                "max_segments": 3,
            },
            "msisdn=%2B6281399990000",
        ),
        id="sms-http-form",
    ),
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "http",
                "method": "GET",
                "url": "https://sms.example.co.id/send",
                "form": {"to": "{{ phone }}", "text": "{{ text }}"},
                "max_segments": 3,
            },
            "?to=%2B6281399990000",
        ),
        id="sms-http-query",
    ),
    pytest.param(
        Provider(
            {
                "type": "sms",
                "provider": "http",
                "url": "https://sms.example.co.id/send?to={{ phone | urlencode }}",
                "json": {"text": "{{ text }}"},
                "max_segments": 3,
            },
            "to=%2B6281399990000",
        ),
        id="sms-http-url-template",
    ),
    pytest.param(
        Provider(
            {
                "type": "whatsapp",
                "provider": "cloud",
                "phone_number_id": "106540352242922",
                "access_token": "EAAG-cloud-access-token-4455",
                "template": "status_paket",
                "parameters": ["{{ contact.phone }} {{ contact.email }}"],
            },
            '"to":"6281399990000"',
        ),
        id="whatsapp-cloud-json",
    ),
    pytest.param(
        Provider(
            {"type": "whatsapp", "provider": "fonnte", "token": "fonnte-token-Zx81q"},
            "target=6281399990000",
        ),
        id="whatsapp-fonnte-form",
    ),
]


def customer_message() -> Message:
    return make_message(
        contact=CONTACT,
        parts={"text": TEXT, "parameter_1": f"{PHONE} {EMAIL}"},
    )


@pytest.fixture
async def client() -> Any:
    async with httpx.AsyncClient() as c:
        yield c


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_the_rendered_request_shows_no_phone_or_email(provider: Provider) -> None:
    sink = build_sink(provider.block, None)
    message = customer_message()
    if isinstance(sink, WhatsAppSink):
        request = sink.request(message, PHONE)
    else:
        assert isinstance(sink, SmsSink)
        request = sink.request(PHONE, TEXT)
    sent = f"{request.url}\n{request.content.decode()}"
    assert provider.carries in sent  # the request carries the number in this encoding ...
    assert any(form in sent for form in _forms(EMAIL))  # ... and the address in the text

    shown = Redactor(sink.secrets()).redact(sink.preview(message))  # as the dashboard does
    assert_hidden(shown)
    assert "62813*****000" in shown  # masked, not dropped: the operator prefix and the end stay


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_a_peer_echoing_the_request_leaves_no_phone_or_email_in_the_attempt(
    provider: Provider, client: httpx.AsyncClient
) -> None:
    sink = build_sink(provider.block, client)
    received: list[httpx.Request] = []

    def echo(request: httpx.Request) -> httpx.Response:
        received.append(request)
        said = f"bad request {request.url.query.decode()} {request.content.decode()}"
        return httpx.Response(400, text=said[:400])

    with respx.mock() as router:
        router.route().mock(side_effect=echo)
        result = await sink.send(customer_message())
    assert received and provider.carries in f"{received[0].url}\n{received[0].content.decode()}"
    assert isinstance(result, Permanent | Retry)
    # The dispatcher redacts every reason once more before it keeps it (`send_once`).
    shown = Redactor(sink.secrets()).redact(result.reason)
    assert "bad request" in shown
    assert_hidden(shown)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    box = Mailbox(refuse={EMAIL: f"550 5.1.1 <{EMAIL}>: no such user ({quote(EMAIL)})"})
    yield from start(box)


async def test_mail_to_the_customer_shows_no_address_but_its_message_id_whole(
    smtp: SmtpServer,
) -> None:
    block = {
        "type": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "tls": "none",
        "from": "Toko A <kabarin@toko.example>",
        "to": "customer",
    }
    sink = build_sink(block, None)
    message = make_message(contact=CONTACT, parts={"subject": "s", "text": TEXT, "html": TEXT})
    preview = sink.preview(message)
    assert f"To: {EMAIL}" in preview
    shown = Redactor(sink.secrets()).redact(preview)
    assert_hidden(shown)
    assert "To: b***@example.com" in shown
    # A Message-ID is no one's address: it stays whole, so it can be found in a mail log.
    assert "Message-ID: <dlv_01HZX3K9Q2.kabarin@toko.example>" in shown

    result = await sink.send(message)
    assert isinstance(result, Permanent) and "550" in result.reason
    assert_hidden(Redactor(sink.secrets()).redact(result.reason))
