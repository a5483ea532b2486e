"""`whatsapp`: the order's customer hears about the parcel on WhatsApp.

The recipient is the order's contact phone in E.164 (`sinks.base.customer_phone`): no number is
`Skipped`, a number that cannot be one is `Permanent`. Two providers, chosen with ``provider``:

``cloud``: Meta's WhatsApp Business Cloud API (``base_url`` includes the Graph API version:
``https://graph.facebook.com/v21.0``, the default; a ``base_url`` without one is refused).
Outside a conversation the customer opened, WhatsApp only lets a business send an approved
*template*, so ``template`` is the approved template's name (not a message template) and
``parameters`` are the message templates that fill its body's ``{{1}}``, ``{{2}}``, ... in
order. ``language`` is the template's language code (``id``, ``en``; ``template_language:
en_US`` for a regional one). Meta's ``error.code`` decides:

==================================================  ==========================================
130429 (rate limit), 131000 (something went wrong),  `Retry`
131056 (too many messages to this number), 5xx
131026 (not a WhatsApp user / cannot receive)        `Permanent`, naming the cause
131047 (over 24 hours since the customer wrote)      `Permanent`
132000, 132001, 132015, 132016 (the template:        `Permanent`
parameter count, not in this language, paused,
disabled)
190 (access token expired or revoked)                `Permanent`, and the sink is switched off
==================================================  ==========================================

Anything else follows `sinks.http.classify`.

``fonnte``: the Indonesian gateway (``POST /send`` with ``Authorization: <token>`` and the
form fields ``target``, ``message``, ``countryCode``). It answers HTTP 200 either way; its
body's ``status`` and ``reason`` decide: ``token invalid`` is permanent and switches the sink
off, ``target invalid`` is permanent, ``insufficient quota`` and a disconnected device retry.
The message is the ``text`` part.

```yaml
sinks:
  wa:
    type: whatsapp
    provider: cloud
    phone_number_id: "106540352242922"
    access_token: ${WA_TOKEN}
    template: status_paket            # the approved template
    language: id
    parameters:
      - "{{ contact.name or 'Kak' }}"
      - "{{ event.order_id }}"
      - "{{ event.status | status_label }}"
  wa-fonnte:
    type: whatsapp
    provider: fonnte
    token: ${FONNTE_TOKEN}
```
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit

import httpx
import msgspec
import phonenumbers

from gateway.delivery.model import Ordering
from gateway.redaction import Redactor
from gateway.units import Duration, FieldError
from sinks.base import (
    Delivered,
    Message,
    Permanent,
    Retry,
    SendResult,
    SinkConfig,
    SinkDeps,
    Skipped,
    customer_phone,
)
from sinks.http import Answer, classify, exchange, parse_retry_after, unreadable

__all__ = ["WhatsAppConfig", "WhatsAppSink"]

CLOUD_API = "https://graph.facebook.com/v21.0"
FONNTE_API = "https://api.fonnte.com"

_CLOUD_KEYS = ("phone_number_id", "access_token", "parameters", "template_language")
_GRAPH_VERSION = re.compile(r"v\d+(?:\.\d+)?")
"""The last path segment of a Cloud API ``base_url``: ``v21.0``."""
_FONNTE_KEYS = ("token",)

_CLOUD_RETRY = {
    130429: "rate limit hit",
    131000: "something went wrong at WhatsApp",
    131056: "too many messages to this number in a short time",
}
_CLOUD_PERMANENT = {
    131026: "the number is not on WhatsApp or cannot receive this message",
    131047: "more than 24 hours since the customer last wrote: only a template can be sent",
    132000: "the template's parameter count does not match `parameters`",
    132001: "the template does not exist in this language",
    132015: "the template is paused for low quality",
    132016: "the template is disabled",
}
_CLOUD_GONE = {190: "the access token expired or was revoked"}

_FONNTE_RETRY = ("insufficient quota", "disconnected", "device")
_FONNTE_GONE = ("token invalid",)


class WhatsAppConfig(
    SinkConfig, tag="whatsapp", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A ``type: whatsapp`` block: WhatsApp messages to the order's customer; which keys apply
    depends on ``provider``."""

    provider: Literal["cloud", "fonnte"]
    """Meta's WhatsApp Business Cloud API, or the Fonnte gateway."""
    base_url: str | None = None
    """``None``: the provider's public API."""
    timeout: Duration = Duration(10)
    """How long one request may take."""
    # cloud
    phone_number_id: str | None = None
    """``cloud``: the sending number's id."""
    access_token: str | None = None
    """``cloud``: the access token."""
    parameters: list[str] = msgspec.field(default_factory=list)
    """``cloud``: message templates filling the approved template's body ``{{1}}``,
    ``{{2}}``, ... in order (``template`` names the approved template)."""
    template_language: str | None = None
    """``cloud``: the approved template's language code when regional (``en_US``);
    ``None``: `language`."""
    # fonnte
    token: str | None = None
    """``fonnte``: the device token."""

    def __post_init__(self) -> None:
        super().__post_init__()
        other = _FONNTE_KEYS if self.provider == "cloud" else _CLOUD_KEYS
        for key in other:
            if getattr(self, key) not in (None, []):
                raise FieldError(key, f"is not a `{self.provider}` key")
        if self.provider == "cloud":
            for key in ("phone_number_id", "access_token"):
                if not getattr(self, key):
                    raise FieldError(key, "is required with `provider: cloud`")
            if not isinstance(self.template, str) or not self.template.strip():
                raise FieldError(
                    "template", "must be the name of the approved WhatsApp template to send"
                )
        elif not self.token:
            raise FieldError("token", "is required with `provider: fonnte`")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise FieldError("base_url", "must be an absolute http:// or https:// URL")
        if self.provider == "cloud" and self.base_url is not None:
            last = urlsplit(self.base_url).path.rstrip("/").rpartition("/")[2]
            if not _GRAPH_VERSION.fullmatch(last):
                # Requests go to {base_url}/{phone_number_id}/messages: without the version
                # the Graph API answers every message with an error that names no key.
                raise FieldError(
                    "base_url",
                    f"must end with the Graph API version, like {CLOUD_API}"
                    f" ({self.base_url} has none)",
                )
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")

    @property
    def template_parts(self) -> dict[str, str]:
        # With `cloud`, `template` names the approved WhatsApp template: it is not a message
        # template, the body parameters are.
        if self.provider == "cloud":
            return {}
        return super().template_parts

    @property
    def api(self) -> str:
        default = CLOUD_API if self.provider == "cloud" else FONNTE_API
        return (self.base_url or default).rstrip("/")


def _parameter_part(index: int) -> str:
    return f"parameter_{index + 1}"


class WhatsAppSink:
    """One WhatsApp message per delivery to the order's customer."""

    config_type: ClassVar[type[SinkConfig]] = WhatsAppConfig
    default_ordering: ClassVar[Ordering] = "latest"
    writes_to_customer: ClassVar[bool] = True
    """Default templates come in the customer's registered language when there is one."""
    parts: tuple[str, ...] = ("text",)
    """``text`` (fonnte); with ``cloud``, one part per body parameter: ``parameter_1``, ...,
    so a route can override one of them like any part."""
    default_templates: dict[str, dict[str, str]] = {
        "text": {
            "id": (
                "Halo{% if contact and contact.name %} {{ contact.name }}{% endif %}, "
                "pesanan {{ event.order_id }}: {{ event.status | status_label }}"
                "{% if event.awb %} (resi {{ event.awb }}){% endif %}"
                ", {{ event.occurred_at | localtime }}."
                "{% if event.reason %} Keterangan: {{ event.reason }}.{% endif %}"
                "{% if tracking_url or event.details.get('tracking_url') %}\nLacak: "
                "{{ tracking_url or event.details.tracking_url }}{% endif %}"
            ),
            "en": (
                "Hi{% if contact and contact.name %} {{ contact.name }}{% endif %}, "
                "order {{ event.order_id }}: {{ event.status | status_label }}"
                "{% if event.awb %} (AWB {{ event.awb }}){% endif %}"
                ", {{ event.occurred_at | localtime }}."
                "{% if event.reason %} Note: {{ event.reason }}.{% endif %}"
                "{% if tracking_url or event.details.get('tracking_url') %}\nTrack: "
                "{{ tracking_url or event.details.tracking_url }}{% endif %}"
            ),
        }
    }

    def __init__(self, name: str, config: WhatsAppConfig, client: httpx.AsyncClient | None) -> None:
        self.name = name
        self.config = config
        self._client = client
        self._redactor = Redactor(self.secrets())
        if config.provider == "cloud":
            # The approved template decides how many body parameters there are, so this
            # sink's parts are its own: each `parameters` entry is the built-in of its part.
            names = [_parameter_part(i) for i in range(len(config.parameters))]
            self.parts = tuple(names)
            self.default_templates = {
                part: {"id": source, "en": source}
                for part, source in zip(names, config.parameters, strict=True)
            }

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        if not isinstance(config, WhatsAppConfig):
            raise TypeError(f"expected WhatsAppConfig, got {type(config).__name__}")
        return cls(name, config, deps.http)

    def request(self, message: Message, phone: str) -> httpx.Request:
        """The provider's HTTP request for `message` to `phone` (E.164)."""
        config = self.config
        if config.provider == "cloud":
            template: dict[str, Any] = {
                "name": config.template,
                "language": {"code": config.template_language or config.language},
            }
            if self.parts:
                template["components"] = [
                    {
                        "type": "body",
                        "parameters": [
                            {"type": "text", "text": message.parts.get(part, "")}
                            for part in self.parts
                        ],
                    }
                ]
            body = {
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": phone.removeprefix("+"),
                "type": "template",
                "template": template,
            }
            return httpx.Request(
                "POST",
                f"{config.api}/{config.phone_number_id}/messages",
                content=msgspec.json.encode(body),
                headers={
                    "authorization": f"Bearer {config.access_token}",
                    "content-type": "application/json",
                },
            )
        country = str(phonenumbers.parse(phone).country_code)
        return httpx.Request(
            "POST",
            f"{config.api}/send",
            data={
                "target": phone.removeprefix("+"),
                "message": message.text,
                "countryCode": country,
            },
            headers={"authorization": str(config.token)},
        )

    def preview(self, message: Message) -> str:
        """The provider request `send` would make (without its credentials)."""
        phone = customer_phone(message)
        if isinstance(phone, Skipped | Permanent):
            return f"(not sent: {phone.reason})"
        request = self.request(message, phone)
        return self._redactor.redact(
            f"{request.method} {request.url}\n{request.content.decode('utf-8', 'replace')}"
        )

    async def send(self, message: Message) -> SendResult:
        if self._client is None:
            raise RuntimeError(f"sink {self.name!r} was built without an HTTP client")
        phone = customer_phone(message)
        if isinstance(phone, Skipped | Permanent):
            return phone
        request = self.request(message, phone)
        # A customer's message: once it went out, a failure is not retried (`exchange`).
        response = await exchange(
            self._client,
            request,
            redactor=self._redactor,
            deadline=float(self.config.timeout),
            replayable=False,
        )
        if not isinstance(response, Answer):
            return response
        if self.config.provider == "cloud":
            return self._cloud_outcome(response)
        return self._fonnte_outcome(response)

    def _cloud_outcome(self, response: Answer) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return Delivered(status_code=status)
        error = _json(response).get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if not isinstance(code, int):
            return classify(status, response.headers, response.body, redactor=self._redactor)
        detail = str(error.get("message") or "") if isinstance(error, dict) else ""
        reason = self._redactor.redact(f"WhatsApp error {code}: {detail}".rstrip(": "))
        if code in _CLOUD_RETRY or status >= 500:
            cause = _CLOUD_RETRY.get(code)
            return Retry(
                reason=f"{reason} ({cause})" if cause else reason,
                after=parse_retry_after(response.headers.get("retry-after")),
                status_code=status,
            )
        if code in _CLOUD_PERMANENT:
            return Permanent(reason=f"{_CLOUD_PERMANENT[code]} ({reason})", status_code=status)
        if code in _CLOUD_GONE:
            return Permanent(
                reason=f"{_CLOUD_GONE[code]} ({reason})", status_code=status, disable_sink=True
            )
        result = classify(status, response.headers, b"", redactor=self._redactor)
        if isinstance(result, Retry):
            return Retry(reason=reason, after=result.after, status_code=status)
        if isinstance(result, Permanent):
            return Permanent(reason=reason, status_code=status, disable_sink=result.disable_sink)
        return result

    def _fonnte_outcome(self, response: Answer) -> SendResult:
        status = response.status_code
        if not 200 <= status < 300:
            return classify(status, response.headers, response.body, redactor=self._redactor)
        body = _json(response)
        if body.get("status") is True:
            return Delivered(status_code=status)
        if not body and response.partial:
            return unreadable(response, "Fonnte")
        said = str(body.get("reason") or body.get("detail") or "no reason given")
        reason = self._redactor.redact(f"Fonnte refused: {said}")
        lowered = said.lower()
        if any(word in lowered for word in _FONNTE_GONE):
            return Permanent(reason=reason, status_code=status, disable_sink=True)
        if any(word in lowered for word in _FONNTE_RETRY):
            return Retry(reason=reason, status_code=status)
        return Permanent(reason=reason, status_code=status)

    def secrets(self) -> list[str]:
        """The Cloud API access token or the Fonnte token."""
        return [s for s in (self.config.access_token, self.config.token) if s]

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and closed by its owner."""

    def __repr__(self) -> str:
        return f"WhatsAppSink({self.name!r}, {self.config!r})"


def _json(response: Answer) -> dict[str, Any]:
    """The answer's JSON object; ``{}`` if it is none (or was cut, `Answer.partial`)."""
    try:
        data = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}
