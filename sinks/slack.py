"""`slack`: staff alerts through a Slack incoming webhook, as a Block Kit message.

The message carries the rendered template as ``text`` (what notifications and old clients
show) and as the first block, then the shipment's facts as fields (status in the sink's
``language``, order id, AWB, courier / service, shipping price in rupiah, the customer's name
when the order's contact is known, reason) and a "track" button when the event has a
``tracking_url``.

A grouped route's message (``group:``) carries the rendered text as its heading (by default
"*12 pembaruan pesanan* (status: Dibatalkan)"), then the events as a list, one line each
(order id, AWB, status, reason), in sections of at most 3,000 characters; past Slack's 50
blocks the rest is said as "… dan 30 lainnya" / "… and 30 more".

Slack allows about one message a second per webhook, so ``rate_limit`` defaults to ``1/s``; a
429 carries ``Retry-After``, which `sinks.http.classify` honours. A webhook that was removed,
revoked or whose channel was archived (``no_service``, ``invalid_token``,
``channel_is_archived``, ...) fails permanently and disables the sink until an operator
switches it back on.

```yaml
sinks:
  ops-slack:
    type: slack
    webhook_url: ${SLACK_WEBHOOK_URL}   # https://hooks.slack.com/services/T…/B…/…
    channel: "#gudang"                  # optional; only legacy webhooks honour these three
    username: Kabarin
    icon_emoji: ":package:"
    language: id
```
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import httpx
import msgspec

from gateway.delivery.model import Ordering
from gateway.digests.message import digest_of
from gateway.events import Contact, Event
from gateway.redaction import Redactor
from gateway.templating import STATUS_LABELS, rupiah
from gateway.units import RateLimit
from sinks.base import Language, Message, SendResult, SinkConfig, SinkDeps, config_secrets
from sinks.http import post

__all__ = ["SlackConfig", "SlackSink", "group_blocks", "slack_payload"]

_GONE = frozenset(
    {
        b"no_service",
        b"no_service_id",
        b"no_team",
        b"team_disabled",
        b"invalid_token",
        b"channel_is_archived",
    }
)
"""Answers meaning this webhook will never work again."""

_MRKDWN = (
    "{%- macro m(value) -%}"
    "{{ value | string | replace('&', '&amp;') | replace('<', '&lt;') | replace('>', '&gt;') }}"
    "{%- endmacro -%}"
)
"""A template macro escaping a value for Slack's mrkdwn as `_escape` does (``&``, ``<``,
``>``): the default templates' way to show event data as text, never as a mention or link."""

_TEXT_LIMIT = 3000  # a section's text
_FIELD_LIMIT = 2000  # one field
_URL_LIMIT = 3000  # a button's url

_LABELS: dict[Language, dict[str, str]] = {
    "id": {
        "status": "Status",
        "order": "Pesanan",
        "awb": "Resi",
        "courier": "Kurir / layanan",
        "price": "Ongkir",
        "customer": "Pelanggan",
        "reason": "Alasan",
        "track": "Lacak paket",
    },
    "en": {
        "status": "Status",
        "order": "Order",
        "awb": "AWB",
        "courier": "Courier / service",
        "price": "Shipping price",
        "customer": "Customer",
        "reason": "Reason",
        "track": "Track package",
    },
}


class SlackConfig(SinkConfig, tag="slack", kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A ``type: slack`` block: staff alerts through a Slack incoming webhook."""

    webhook_url: str
    """The incoming-webhook URL Slack gave (``https://hooks.slack.com/services/...``), a
    credential."""
    channel: str | None = None
    """Sent with each message; only legacy incoming webhooks honour it."""
    username: str | None = None
    """Sent with each message; only legacy incoming webhooks honour it."""
    icon_emoji: str | None = None
    """Sent with each message (``:package:``); only legacy incoming webhooks honour it."""
    rate_limit: RateLimit | None = RateLimit(1, 1)
    """Slack's limit for one incoming webhook."""

    def __post_init__(self) -> None:
        super().__post_init__()
        parts = urlsplit(self.webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "`webhook_url` must be the incoming-webhook URL Slack gave you "
                "(https://hooks.slack.com/services/...)"
            )


class SlackSink:
    """POSTs one Block Kit message per delivery to an incoming webhook."""

    config_type: ClassVar[type[SinkConfig]] = SlackConfig
    writes_to_customer: ClassVar[bool] = False
    """The shop's staff read it."""
    default_ordering: ClassVar[Ordering] = "latest"
    parts: ClassVar[tuple[str, ...]] = ("text",)
    """The blocks are built here from the event; only the text is a template."""
    default_templates: ClassVar[dict[str, dict[str, str]]] = {
        # Every value from the event goes through `m` (`_MRKDWN`): escaped, a reason such as
        # "<!channel> <https://evil.example|refund>" shows as typed instead of pinging the
        # channel or disguising a link.
        "text": {
            "id": (
                _MRKDWN + "{% if group %}*{{ group.count }} pembaruan pesanan*"
                "{% if group.key %} ({{ m(group.key | group_key) }}){% endif %}{% else %}"
                "*{{ event.status | status_label }}*: pesanan {{ m(event.order_id) }}"
                "{% if event.awb %} (resi {{ m(event.awb) }}){% endif %}"
                ", {{ event.occurred_at | localtime }}"
                "{% if contact and contact.name %}\nPelanggan: {{ m(contact.name) }}{% endif %}"
                "{% if event.details.get('shipping_price') %}\nOngkir: "
                "{{ m(event.details.shipping_price | rupiah) }}{% endif %}"
                "{% if event.reason %}\nAlasan: {{ m(event.reason) }}{% endif %}{% endif %}"
            ),
            "en": (
                _MRKDWN + "{% if group %}*{{ group.count }} order updates*"
                "{% if group.key %} ({{ m(group.key | group_key) }}){% endif %}{% else %}"
                "*{{ event.status | status_label }}*: order {{ m(event.order_id) }}"
                "{% if event.awb %} (AWB {{ m(event.awb) }}){% endif %}"
                ", {{ event.occurred_at | localtime }}"
                "{% if contact and contact.name %}\nCustomer: {{ m(contact.name) }}{% endif %}"
                "{% if event.details.get('shipping_price') %}\nShipping price: "
                "{{ m(event.details.shipping_price | rupiah) }}{% endif %}"
                "{% if event.reason %}\nReason: {{ m(event.reason) }}{% endif %}{% endif %}"
            ),
        }
    }

    def __init__(self, name: str, config: SlackConfig, client: httpx.AsyncClient | None) -> None:
        self.name = name
        self.config = config
        self._client = client
        self._redactor = Redactor(self.secrets())

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        if not isinstance(config, SlackConfig):
            raise TypeError(f"expected SlackConfig, got {type(config).__name__}")
        return cls(name, config, deps.http)

    async def send(self, message: Message) -> SendResult:
        if self._client is None:
            raise RuntimeError(f"sink {self.name!r} was built without an HTTP client")
        payload = slack_payload(message, self.config)
        return await post(
            self._client,
            self.config.webhook_url,
            content=msgspec.json.encode(payload),
            headers={"content-type": "application/json; charset=utf-8"},
            redactor=self._redactor,
            gone=_GONE,
        )

    def preview(self, message: Message) -> str:
        """The incoming-webhook JSON `send` POSTs (text and blocks)."""
        return msgspec.json.format(
            msgspec.json.encode(slack_payload(message, self.config)), indent=2
        ).decode()

    def secrets(self) -> list[str]:
        """The webhook URL, its path and its last segment: each alone lets anyone post."""
        return config_secrets(self.config)

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and closed by its owner."""

    def __repr__(self) -> str:
        return f"SlackSink({self.name!r}, {self.config!r})"


def slack_payload(message: Message, config: SlackConfig) -> dict[str, Any]:
    """The incoming-webhook JSON for one message (a digest's blocks as they were rendered)."""
    event = message.event
    labels = _LABELS[config.language]
    text = message.text.strip() or f"{event.status.value}: {_escape(event.order_id)}"
    digest = digest_of(event)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, _TEXT_LIMIT)}}
    ]
    if digest is not None:
        blocks = digest.blocks
        text = _cut(digest.subject, _TEXT_LIMIT)  # the notification's line; the blocks say it all
    elif message.group is not None:
        blocks += group_blocks(message.group.events, config.language, _BLOCK_LIMIT - 1)
    else:
        blocks.append(
            {"type": "section", "fields": _fields(event, message.contact, config.language)}
        )
    tracking_url = event.details.get("tracking_url")
    if digest is None and message.group is None and _is_link(tracking_url):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": labels["track"]},
                        "url": tracking_url,
                    }
                ],
            }
        )
    payload: dict[str, Any] = {"text": text, "blocks": blocks}
    for key in ("channel", "username", "icon_emoji"):
        value = getattr(config, key)
        if value:
            payload[key] = value
    return payload


def group_blocks(events: Sequence[Event], language: Language, limit: int) -> list[dict[str, Any]]:
    """A grouped message's events as a list, one line each, in sections of at most 3,000
    characters and at most `limit` blocks; what does not fit is counted in a last line."""
    lines = [_line(e, language) for e in events]
    blocks: list[dict[str, Any]] = []
    current: list[str] = []
    size = 0
    shown = 0
    for line in lines:
        if current and size + 1 + len(line) > _TEXT_LIMIT:
            if len(blocks) + 2 >= limit:  # room left for this block and the "more" one
                break
            blocks.append(_section("\n".join(current)))
            current, size = [], 0
        current.append(line)
        size += len(line) + (1 if size else 0)
        shown += 1
    if current:
        blocks.append(_section("\n".join(current)))
    if shown < len(lines):
        blocks.append(_section(_MORE[language].format(len(lines) - shown)))
    return blocks


_BLOCK_LIMIT = 50  # blocks in one message
_LINE_LIMIT = 500  # one event's line in a group's list
_MORE: dict[Language, str] = {"id": "… dan {} lainnya", "en": "… and {} more"}


def _line(event: Event, language: Language) -> str:
    awb = f" ({_escape(event.awb)})" if event.awb else ""
    reason = f": {_escape(event.reason)}" if event.reason else ""
    status = STATUS_LABELS[language][event.status]
    return _cut(f"• *{_escape(event.order_id)}*{awb} {status}{reason}", _LINE_LIMIT)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _fields(event: Event, contact: Contact | None, language: Language) -> list[dict[str, str]]:
    labels = _LABELS[language]
    courier = " / ".join(
        dict.fromkeys(
            str(event.details[k])
            for k in ("courier", "service", "service_name")
            if event.details.get(k) not in (None, "")
        )
    )
    price = event.details.get("shipping_price")
    facts = [
        ("status", STATUS_LABELS[language][event.status]),
        ("order", event.order_id),
        ("awb", event.awb),
        ("courier", courier),
        ("price", None if price in (None, "") else rupiah(price)),
        ("customer", contact.name if contact is not None else None),
        ("reason", event.reason),
    ]
    return [
        {"type": "mrkdwn", "text": _cut(f"*{labels[key]}*\n{_escape(value)}", _FIELD_LIMIT)}
        for key, value in facts
        if value
    ]


def _is_link(value: object) -> bool:
    return (
        isinstance(value, str)
        and value.startswith(("https://", "http://"))
        and len(value) <= _URL_LIMIT
    )


def _escape(text: str) -> str:
    """Slack mrkdwn control characters in data that came from KiriminAja."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
