"""`webhook`: the event as JSON to the merchant's own system, signed per Standard Webhooks.

Each delivery is one POST whose body is the envelope the spec recommends::

    {"type": "shipment.<status>", "timestamp": "<now, ISO 8601 UTC>", "data": <Event>}

``data`` is the `gateway.events.Event` exactly as documented in docs/event.md. A grouped route's
message (``group:``) carries its events as an array, with the group beside them::

    {"type": "shipment.group", "timestamp": "...",
     "group": {"route": "cancellations", "key": {"status": "canceled"}, "count": 2},
     "data": [<Event>, <Event>]}

The kind declares
no message part (`WebhookSink.parts` is empty): the receiver gets data, not prose, and a
``template`` given to a webhook sink is checked but not rendered for delivery.

Headers: ``webhook-id`` (the delivery id, the same on every retry: use it to drop repeats),
``webhook-timestamp`` (unix seconds of this attempt), ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of "{id}.{timestamp}.{body}">``, one per configured secret, space-separated, so a
secret can be rotated without downtime), ``content-type: application/json`` and
``user-agent: Kabarin/<version>``. Any Standard Webhooks verifier accepts it, e.g.
``standardwebhooks.Webhook("whsec_...").verify(body, headers)``. Credentials in the URL
(``https://user:pass@host/hook``) are sent as ``Authorization: Basic`` and taken out of the URL.

```yaml
sinks:
  erp:
    type: webhook
    url: https://erp.example.com/hooks/kiriminaja
    secret: ${ERP_WEBHOOK_SECRET}        # whsec_<base64>; a list while rotating
    headers: {X-Shop: toko-a}            # optional; cannot replace the webhook-* headers
    timeout: 10s
```
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from datetime import UTC, datetime
from typing import Any, ClassVar, Self
from urllib.parse import urlsplit

import httpx
import msgspec

from gateway.delivery.model import Ordering
from gateway.digests.message import digest_of
from gateway.events import Event
from gateway.redaction import Redactor
from gateway.units import Duration, FieldError
from sinks.base import Message, SendResult, SinkConfig, SinkDeps, config_secrets
from sinks.http import post

__all__ = ["WebhookConfig", "WebhookSink", "decode_secret", "sign"]

_SECRET_PREFIX = "whsec_"
_MIN_KEY_BYTES, _MAX_KEY_BYTES = 24, 64
"""Standard Webhooks: a symmetric secret is random, 24 to 64 bytes."""
_RESERVED_HEADERS = frozenset({"content-type", "content-length", "host", "transfer-encoding"})


class WebhookConfig(
    SinkConfig, tag="webhook", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A ``type: webhook`` block: each event POSTed to the shop's system, signed per Standard
    Webhooks."""

    url: str
    """The ERP's endpoint; credentials in it are sent as ``Authorization: Basic``."""
    secret: str | list[str]
    """``whsec_<base64>``; several while rotating: each one signs every message."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Added to every request; cannot replace the ``webhook-*`` headers."""
    timeout: Duration = Duration(10)
    """How long one request may take."""

    def __post_init__(self) -> None:
        super().__post_init__()
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FieldError("url", "must be an absolute http:// or https:// URL")
        secrets = [self.secret] if isinstance(self.secret, str) else self.secret
        if not secrets:
            raise FieldError("secret", "must name at least one whsec_ secret")
        for i, secret in enumerate(secrets):
            key = ("secret",) if isinstance(self.secret, str) else ("secret", i)
            try:
                decode_secret(secret)
            except ValueError as exc:
                raise FieldError(key, str(exc)) from None
        for name in self.headers:
            lowered = name.lower()
            if lowered.startswith("webhook-") or lowered in _RESERVED_HEADERS:
                raise FieldError(("headers", name), "set by Kabarin, it cannot be overridden")
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")
        if parts.username is not None and any(h.lower() == "authorization" for h in self.headers):
            raise ValueError(
                "`url` carries credentials and `headers` an Authorization: keep only one of them"
            )

    @property
    def secret_list(self) -> list[str]:
        return [self.secret] if isinstance(self.secret, str) else list(self.secret)


def decode_secret(secret: str) -> bytes:
    """The HMAC key of a ``whsec_<base64>`` secret; `ValueError` (never echoing it) if bad."""
    if not secret.startswith(_SECRET_PREFIX):
        raise ValueError("a webhook secret must start with `whsec_` (Standard Webhooks format)")
    encoded = secret.removeprefix(_SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after `whsec_` is not valid base64") from None
    if not _MIN_KEY_BYTES <= len(key) <= _MAX_KEY_BYTES:
        raise ValueError(
            f"the key after `whsec_` must decode to {_MIN_KEY_BYTES} to {_MAX_KEY_BYTES} "
            f"random bytes, got {len(key)}; make one with: echo whsec_$(openssl rand -base64 32)"
        )
    return key


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: ``v1,<base64>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


class _Envelope(msgspec.Struct, frozen=True):
    type: str
    timestamp: datetime
    data: Event


class _GroupInfo(msgspec.Struct, frozen=True):
    route: str
    key: dict[str, str | None]
    count: int


class _GroupEnvelope(msgspec.Struct, frozen=True):
    type: str
    timestamp: datetime
    group: _GroupInfo
    data: list[Event]


class _DigestEnvelope(msgspec.Struct, frozen=True):
    type: str
    timestamp: datetime
    data: dict[str, Any]
    """`gateway.digests.render`'s payload (documented in docs/digests.md)."""


_encode = msgspec.json.Encoder().encode


class WebhookSink:
    """Signs and POSTs every event."""

    config_type: ClassVar[type[SinkConfig]] = WebhookConfig
    writes_to_customer: ClassVar[bool] = False
    """The shop's own system: at least once; it drops a repeat by its ``webhook-id``."""
    default_ordering: ClassVar[Ordering] = "all"
    parts: ClassVar[tuple[str, ...]] = ()
    """None: the body is the event itself, the receiver gets data, not prose."""
    default_templates: ClassVar[dict[str, dict[str, str]]] = {}

    def __init__(self, name: str, config: WebhookConfig, client: httpx.AsyncClient | None) -> None:
        self.name = name
        self.config = config
        self._client = client
        self._keys = [decode_secret(s) for s in config.secret_list]
        self._url, basic = _split_credentials(config.url)
        self._headers = {**config.headers, **basic, "content-type": "application/json"}
        self._redactor = Redactor(self.secrets())

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        if not isinstance(config, WebhookConfig):
            raise TypeError(f"expected WebhookConfig, got {type(config).__name__}")
        return cls(name, config, deps.http)

    def envelope(self, message: Message, now: datetime) -> bytes:
        """The exact bytes that are signed and sent: a digest's ``data`` is its summary."""
        event = message.event
        digest = digest_of(event)
        if digest is not None:
            return _encode(_DigestEnvelope("digest", now, digest.payload))
        group = message.group
        if group is not None:
            info = _GroupInfo(message.route, group.key, group.count)
            return _encode(_GroupEnvelope("shipment.group", now, info, group.events))
        return _encode(_Envelope(f"shipment.{event.status.value}", now, event))

    def preview(self, message: Message) -> str:
        """The envelope JSON `send` signs and POSTs (its timestamp is this moment)."""
        return msgspec.json.format(self.envelope(message, datetime.now(UTC)), indent=2).decode()

    async def send(self, message: Message) -> SendResult:
        if self._client is None:
            raise RuntimeError(f"sink {self.name!r} was built without an HTTP client")
        now = datetime.now(UTC)
        timestamp = int(now.timestamp())
        body = self.envelope(message, now)
        headers = {
            **self._headers,
            "webhook-id": message.delivery_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self._keys, message.delivery_id, timestamp, body),
        }
        return await post(
            self._client,
            self._url,
            content=body,
            headers=headers,
            redactor=self._redactor,
            request_timeout=float(self.config.timeout),
        )

    def secrets(self) -> list[str]:
        """The secrets (with and without ``whsec_``), the URL's credentials (and the Basic
        header made of them) and secret query values, and secret headers' values."""
        return config_secrets(self.config)

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and closed by its owner."""

    def __repr__(self) -> str:
        return f"WebhookSink({self.name!r}, {self.config!r})"


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without its ``user:pass@`` part, and the Basic ``authorization`` header for it.

    The aiohttp transport refuses a request that has both URL credentials and the header httpx
    derives from them, so they travel only as the header.
    """
    parsed = httpx.URL(url)
    if not parsed.userinfo:
        return url, {}
    token = base64.b64encode(f"{parsed.username}:{parsed.password}".encode()).decode()
    return str(parsed.copy_with(userinfo=b"")), {"authorization": f"Basic {token}"}
