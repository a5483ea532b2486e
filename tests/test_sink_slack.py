"""The `slack` sink: the Block Kit message a channel sees, and Slack's own answers."""

from __future__ import annotations

import json
from typing import Any

import httpx
import msgspec
import pytest
import respx

from gateway.config import parse_config
from gateway.events import Contact, Status
from gateway.units import RateLimit
from sinks.base import Delivered, Permanent, Retry, mask
from sinks.slack import SlackConfig
from tests.test_sinks_shared import SLACK_URL, build_sink, make_event, make_message


async def post_one(block: dict[str, Any], response: httpx.Response, **message: Any) -> Any:
    async with httpx.AsyncClient() as client:
        sink = build_sink({"type": "slack", "webhook_url": SLACK_URL, **block}, client)
        with respx.mock() as router:
            route = router.post(SLACK_URL).mock(return_value=response)
            result = await sink.send(make_message(**message))
    return result, (json.loads(route.calls.last.request.content) if route.called else None)


async def test_text_blocks_and_fields() -> None:
    event = make_event(
        status=Status.CANCELED,
        reason="3pl rejection <alamat salah> & retur",
        details={"courier": "gosend", "service_name": "instant"},
    )
    result, payload = await post_one(
        {}, httpx.Response(200, text="ok"), event=event, text="*Batal*"
    )
    assert result == Delivered(status_code=200)
    assert payload["text"] == "*Batal*"
    section, facts = payload["blocks"][:2]
    assert section == {"type": "section", "text": {"type": "mrkdwn", "text": "*Batal*"}}
    fields = [f["text"] for f in facts["fields"]]
    assert fields == [
        "*Status*\nDibatalkan",
        "*Pesanan*\nOID-1001",
        "*Resi*\nJP1234567890",
        "*Kurir / layanan*\ngosend / instant",
        "*Alasan*\n3pl rejection &lt;alamat salah&gt; &amp; retur",
    ]
    assert len(payload["blocks"]) == 2  # no tracking link, no button
    assert "channel" not in payload and "username" not in payload


async def test_a_tracking_url_adds_a_button_in_the_sinks_language() -> None:
    event = make_event(details={"tracking_url": "http://gjk.io/abcd"})
    _, payload = await post_one({"language": "en"}, httpx.Response(200), event=event)
    actions = payload["blocks"][-1]
    assert actions["type"] == "actions"
    [button] = actions["elements"]
    assert button["url"] == "http://gjk.io/abcd"
    assert button["text"] == {"type": "plain_text", "text": "Track package"}
    assert "*Order*\nOID-1001" in [f["text"] for f in payload["blocks"][1]["fields"]]


@pytest.mark.parametrize(
    ("language", "status", "price", "customer"),
    [
        ("id", "*Status*\nDibatalkan", "*Ongkir*\nRp34.000", "*Pelanggan*\nSiti Aminah"),
        ("en", "*Status*\nCanceled", "*Shipping price*\nRp34.000", "*Customer*\nSiti Aminah"),
    ],
)
async def test_fields_speak_the_sinks_language_with_price_and_customer(
    language: str, status: str, price: str, customer: str
) -> None:
    event = make_event(
        status=Status.CANCELED,
        kind="instant",
        raw_status="cancel",
        details={"shipping_price": "34000"},
    )
    contact = Contact(order_id="OID-1001", name="Siti Aminah", phone="081298765432")
    _, payload = await post_one(
        {"language": language}, httpx.Response(200), event=event, contact=contact
    )
    fields = [f["text"] for f in payload["blocks"][1]["fields"]]
    assert fields[0] == status and price in fields and customer in fields
    assert "cancel" not in fields[0]


async def test_no_customer_field_without_a_contact() -> None:
    _, payload = await post_one({"language": "en"}, httpx.Response(200))
    assert not any("Customer" in f["text"] for f in payload["blocks"][1]["fields"])


def test_the_default_template_shows_price_and_customer() -> None:
    from zoneinfo import ZoneInfo

    from gateway.templating import Templates

    sink = build_sink({"type": "slack", "webhook_url": SLACK_URL}, None)
    event = make_event(status=Status.CANCELED, details={"shipping_price": 34000})
    text = Templates(timezone=ZoneInfo("Asia/Jakarta")).render(
        sink.default_templates["text"]["id"],
        event=event,
        contact=Contact(order_id="OID-1001", name="Siti Aminah"),
        route="r",
        language="id",
    )
    assert text.startswith("*Dibatalkan*: pesanan OID-1001")
    assert "Pelanggan: Siti Aminah" in text and "Ongkir: Rp34.000" in text


def test_preview_is_the_payload_that_is_sent() -> None:
    sink = build_sink({"type": "slack", "webhook_url": SLACK_URL}, None)
    shown = json.loads(sink.preview(make_message(text="*Dikirim*")))
    assert shown["text"] == "*Dikirim*" and shown["blocks"][1]["type"] == "section"


@pytest.mark.parametrize("bad", ["javascript:alert(1)", "", None, 42, "https://x/" + "a" * 3000])
async def test_an_unusable_tracking_url_is_left_out(bad: object) -> None:
    event = make_event(details={"tracking_url": bad})
    _, payload = await post_one({}, httpx.Response(200), event=event)
    assert all(block["type"] != "actions" for block in payload["blocks"])


async def test_channel_username_and_icon_are_passed_on() -> None:
    block = {"channel": "#gudang", "username": "Kabarin", "icon_emoji": ":package:"}
    _, payload = await post_one(block, httpx.Response(200))
    assert (payload["channel"], payload["username"], payload["icon_emoji"]) == (
        "#gudang",
        "Kabarin",
        ":package:",
    )


async def test_an_empty_rendered_text_still_gives_slack_a_valid_message() -> None:
    _, payload = await post_one({}, httpx.Response(200), text="  ")
    assert payload["text"] == "shipped: OID-1001"
    assert payload["blocks"][0]["text"]["text"] == "shipped: OID-1001"


async def test_a_long_text_is_cut_to_slacks_section_limit() -> None:
    _, payload = await post_one({}, httpx.Response(200), text="x" * 5000)
    assert len(payload["blocks"][0]["text"]["text"]) == 3000


async def test_429_with_retry_after_is_retried_after_that_long() -> None:
    result, _ = await post_one({}, httpx.Response(429, headers={"Retry-After": "7"}, text="rl"))
    assert isinstance(result, Retry) and result.after == 7 and result.status_code == 429


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (404, "no_service"),
        (403, "invalid_token"),
        (410, "channel_is_archived"),
        (404, "no_team"),
        (400, "no_service_id"),
    ],
)
async def test_a_dead_webhook_is_permanent_and_disables_the_sink(status: int, body: str) -> None:
    result, _ = await post_one({}, httpx.Response(status, text=body))
    assert isinstance(result, Permanent) and result.disable_sink
    assert body in result.reason and SLACK_URL not in result.reason


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, "invalid_payload"), (404, "channel_not_found"), (403, "action_prohibited")],
)
async def test_other_slack_errors_are_permanent_for_this_message_only(
    status: int, body: str
) -> None:
    result, _ = await post_one({}, httpx.Response(status, text=body))
    assert isinstance(result, Permanent) and not result.disable_sink
    assert result.reason == f"HTTP {status} {httpx.codes.get_reason_phrase(status)}: {body}"


def test_rate_limit_defaults_to_one_a_second_and_shows_in_the_config() -> None:
    text = (
        f"receiver: {{token: push-token}}\nsinks:\n  ops: {{type: slack, webhook_url: {SLACK_URL}}}"
    )
    config = parse_config(text, env={})
    slack = config.sinks["ops"]
    assert isinstance(slack, SlackConfig)
    assert slack.rate_limit == RateLimit(1, 1)
    assert mask(slack)["rate_limit"] == "1/s"
    assert mask(slack)["webhook_url"] == "***"
    assert SLACK_URL in config.secrets


def test_defaults_and_validation() -> None:
    sink = build_sink({"type": "slack", "webhook_url": SLACK_URL}, None)
    assert sink.default_ordering == "latest"
    assert sink.secrets()[0] == SLACK_URL
    with pytest.raises(msgspec.ValidationError, match="incoming-webhook URL"):
        msgspec.convert({"type": "slack", "webhook_url": "hooks.slack.com/x"}, SlackConfig)
    with pytest.raises(msgspec.ValidationError, match="unknown field"):
        msgspec.convert({"type": "slack", "webhook_url": SLACK_URL, "chanel": "#x"}, SlackConfig)


@pytest.mark.parametrize("language", ["id", "en"])
def test_the_default_template_renders_without_price_or_contact(language: str) -> None:
    from zoneinfo import ZoneInfo

    from gateway.templating import Templates

    sink = build_sink({"type": "slack", "webhook_url": SLACK_URL}, None)
    text = Templates(timezone=ZoneInfo("Asia/Jakarta")).render(
        sink.default_templates["text"][language],
        event=make_event(details={}),
        contact=None,
        route="r",
        language=language,
    )
    assert "OID-1001" in text and "Rp" not in text


INJECTION = "<!channel> transfer ke <https://evil.example/pay|KiriminAja refund> & <@U123>"


@pytest.mark.parametrize("language", ["id", "en"])
async def test_event_values_cannot_ping_the_channel_or_disguise_a_link(language: str) -> None:
    from zoneinfo import ZoneInfo

    from gateway.templating import Templates

    sink = build_sink({"type": "slack", "webhook_url": SLACK_URL, "language": language}, None)
    event = make_event(status=Status.CANCELED, reason=INJECTION, order_id="OID-<!here>")
    text = Templates(timezone=ZoneInfo("Asia/Jakarta")).render(
        sink.default_templates["text"][language],
        event=event,
        contact=Contact(order_id="OID-<!here>", name="<!everyone>"),
        route="r",
        language=language,
    )
    escaped = "&lt;!channel&gt; transfer ke &lt;https://evil.example/pay|KiriminAja refund&gt;"
    assert escaped + " &amp; &lt;@U123&gt;" in text
    assert "OID-&lt;!here&gt;" in text and "&lt;!everyone&gt;" in text
    assert "<" not in text and ">" not in text

    _, payload = await post_one({"language": language}, httpx.Response(200), text=text)
    sent = json.dumps(payload, ensure_ascii=False)
    assert "<!" not in sent and "<https://evil" not in sent
    assert payload["text"] == text == payload["blocks"][0]["text"]["text"]


async def test_the_fallback_text_escapes_the_order_id() -> None:
    _, payload = await post_one(
        {}, httpx.Response(200), text="", event=make_event(order_id="<!channel>")
    )
    assert payload["text"] == "shipped: &lt;!channel&gt;"
