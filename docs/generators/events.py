"""``reference/events.md``: the `Event` every sink and template sees, from the struct itself
(fields via `msgspec.inspect`, descriptions from the docstrings under them), and the webhook
sink's request, produced by the real sink sending one example push to a mock transport."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import httpx
import msgspec

from gateway.config.reference import field_docs
from gateway.events import TERMINAL_STATUSES, Event, Status
from gateway.routing import delivery_id
from gateway.sources.kiriminaja import decode_push, normalise
from generators.markdown import cell, code, prose
from sinks.base import Message
from sinks.http import make_http_client
from sinks.webhook import WebhookConfig, WebhookSink

__all__ = ["events_page"]

EXAMPLE_PUSH = {
    "method": "shipped_packages",
    "data": [{"order_id": "OID-8812", "awb": "JNE0012345678", "shipped_at": "2025-03-04 09:15:00"}],
}
"""A push as KiriminAja sends it; the example event is what the intake makes of it."""
_SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
_RECEIVED_AT = datetime(2025, 3, 4, 2, 15, 7, tzinfo=UTC)

_TRANSPORT = frozenset({"accept", "accept-encoding", "connection"})
"""Headers the HTTP client adds on its own (they differ by transport): not the sink's."""

_INTRO = """\
# Events and the webhook payload

Every push method, and every result of the pull tracker, becomes one **event** per package: the
one shape every route matches, every template renders (`{{ event.status }}`) and the `webhook`
sink sends to the shop's own system. Its field names are a public contract.
"""


def events_page() -> str:
    """The page's Markdown."""
    event = _example_event()
    request = asyncio.run(_webhook_request(event))
    body = request.content.decode()
    headers = "\n".join(
        f"{name}: {value}" for name, value in request.headers.items() if name not in _TRANSPORT
    )
    return (
        _INTRO
        + _fields()
        + _statuses()
        + "\n## An example\n\nThis push:\n\n"
        + f"```json\n{json.dumps(EXAMPLE_PUSH, indent=2)}\n```\n\n"
        + "becomes this event (as JSON; times are ISO 8601 with their zone):\n\n"
        + f"```json\n{msgspec.json.format(msgspec.json.encode(event), indent=2).decode()}\n```\n"
        + _WEBHOOK
        + f"\n```http\nPOST {request.url.raw_path.decode()} HTTP/1.1\n{headers}\n\n{body}\n```\n"
        + _VERIFY
    )


def _fields() -> str:
    docs = field_docs(Event)
    info = msgspec.inspect.type_info(Event)
    assert isinstance(info, msgspec.inspect.StructType)
    rows = [
        f"| {code(f.name)} | {_type(f.type)} | {'yes' if f.required else 'no'} | "
        f"{cell(docs.get(f.name, ''))} |\n"
        for f in info.fields
    ]
    head = "| Field | Type | Always there | Description |\n| --- | --- | --- | --- |\n"
    return "\n## Fields\n\n" + head + "".join(rows)


def _statuses() -> str:
    """Each `Status` with the comment beside it in the code, if any."""
    notes = dict(re.findall(r'^\s*\w+ = "(\w+)"\s*#\s*(.+)$', inspect.getsource(Status), re.M))
    rows = "".join(
        f"| {code(s.value)} | {'yes' if s in TERMINAL_STATUSES else ''} | "
        f"{cell(notes.get(s.value, ''))} |\n"
        for s in Status
    )
    return (
        f"\n## Statuses\n\n{prose(inspect.getdoc(Status) or '')} After a *final* status an order"
        " has no more news to wait for.\n\n| Status | Final | Note |\n| --- | --- | --- |\n" + rows
    )


def _type(t: msgspec.inspect.Type) -> str:
    match t:
        case msgspec.inspect.StrType():
            return "string"
        case msgspec.inspect.DateTimeType():
            return "time (ISO 8601)"
        case msgspec.inspect.LiteralType():
            return " or ".join(code(str(v)) for v in sorted(map(str, t.values)))
        case msgspec.inspect.EnumType():
            return "status (below)"
        case msgspec.inspect.UnionType():
            return " or ".join(_type(u) for u in t.types)
        case msgspec.inspect.NoneType():
            return code("null")
        case msgspec.inspect.DictType():
            return f"object of {_type(t.value_type)}"
        case msgspec.inspect.AnyType():
            return "any"
    return type(t).__name__.removesuffix("Type").lower()


def _example_event() -> Event:
    push = decode_push(json.dumps(EXAMPLE_PUSH).encode())
    (event,) = normalise(push, received_at=_RECEIVED_AT, tz=ZoneInfo("Asia/Jakarta")).events
    return event


async def _webhook_request(event: Event) -> httpx.Request:
    """The request the real `webhook` sink sends for `event`, caught before it leaves."""
    sent: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(204)

    config = msgspec.convert(
        {"type": "webhook", "url": "https://erp.example.com/hooks/kiriminaja", "secret": _SECRET},
        WebhookConfig,
    )
    async with make_http_client(transport=httpx.MockTransport(answer)) as client:
        sink = WebhookSink("erp", config, client)
        message = Message(
            delivery_id=delivery_id(event.id, "to-erp", "erp"),
            route="to-erp",
            event=event,
            contact=None,
        )
        await sink.send(message)
    (request,) = sent
    return request


_WEBHOOK = """
## The webhook sink's request

A `webhook` sink POSTs each event to the shop's system, wrapped in the envelope
[Standard Webhooks](https://www.standardwebhooks.com/) recommends: `type` is
`shipment.<status>`, `timestamp` the moment of sending, `data` the event. Its headers:
`webhook-id` is the delivery's id, the same on every retry (drop repeats by it);
`webhook-timestamp` the attempt's Unix time; `webhook-signature` one `v1,<base64 HMAC-SHA256>`
of `{id}.{timestamp}.{body}` per configured secret. The request the sink sends for the event
above (secret `SECRET`; the body is the exact bytes signed, one line):
""".replace("SECRET", _SECRET)

_VERIFY = """
Any Standard Webhooks library verifies it, for example in Python:

```python
from standardwebhooks import Webhook

Webhook(secret).verify(body, headers)  # raises if the signature or the timestamp is wrong
```
"""
