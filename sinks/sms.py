"""`sms`: the ``text`` part by SMS to the order's customer, never longer than it should cost.

The recipient is the order's contact phone in E.164 (`sinks.base.customer_phone`): no number is
`Skipped`, a number that cannot be one is `Permanent`. Before anything is sent the text is
measured (`sinks.segments`): over ``max_segments`` SMS (default 2) the delivery is
`Permanent` with the count in the reason, never a silent five-part message. Shorten the
template, or raise ``max_segments`` knowingly. ``kabarin check`` shows the most SMS each route's
text takes over the sample events (`SmsSink.check`).

Providers, chosen with ``provider`` (each takes ``base_url``, default its public API):

- ``twilio``: the Messages API (``account_sid``, ``auth_token``, and ``from`` or
  ``messaging_service_sid``). Its answers follow `sinks.http.classify`, with Twilio's error
  code and message in the reason; a refused login (401) switches the sink off.
- ``zenziva``: Indonesian SMS (``userkey``, ``passkey``; sends ``to`` and ``message``). It
  answers HTTP 200 either way: ``status == "1"`` is delivered, otherwise its ``text`` is the
  reason (an empty balance retries, anything else is permanent).
- ``http``: any other gateway, described in YAML: ``method``, ``url``, ``headers``, and a
  ``form`` or ``json`` body whose string values are templates over ``phone`` (E.164, e.g.
  ``+6281234567890``; ``{{ phone[1:] }}`` drops the plus) and ``text``; ``success`` says
  which HTTP statuses (default any 2xx) and, optionally, which JSON ``field`` (dotted path)
  with which ``value`` mean the message was accepted. Other statuses follow
  `sinks.http.classify`.

```yaml
sinks:
  sms:
    type: sms
    provider: zenziva
    userkey: ${ZENZIVA_USERKEY}
    passkey: ${ZENZIVA_PASSKEY}
    max_segments: 2
  sms-lain:
    type: sms
    provider: http
    url: https://sms.example.co.id/api/send
    headers: {Authorization: "Bearer ${SMS_TOKEN}"}
    json: {to: "{{ phone[1:] }}", message: "{{ text }}"}
    success: {status: [200], field: result.code, value: "OK"}
```
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from datetime import UTC
from typing import Any, ClassVar, Literal, Self

import httpx
import msgspec
from jinja2 import Template, TemplateSyntaxError, meta

from gateway.delivery.model import Ordering
from gateway.redaction import Redactor
from gateway.templating.sandbox import sandbox
from gateway.units import Duration, FieldError
from sinks.base import (
    CheckSamples,
    Delivered,
    Message,
    Permanent,
    Retry,
    SendResult,
    SinkConfig,
    SinkDeps,
    Skipped,
    config_secrets,
    customer_phone,
)
from sinks.http import Answer, classify, exchange, unreadable
from sinks.segments import Segments, count_segments

__all__ = ["HttpSuccess", "SmsConfig", "SmsSink"]

TWILIO_API = "https://api.twilio.com"
ZENZIVA_API = "https://console.zenziva.net/reguler/api"

_KEYS = {
    "twilio": ("account_sid", "auth_token", "sender", "messaging_service_sid"),
    "zenziva": ("userkey", "passkey"),
    "http": ("url", "headers", "form", "json", "success"),
}
_YAML_KEY = {"sender": "from"}
_ZENZIVA_RETRY = ("saldo", "balance", "kuota", "quota")
_TEMPLATE_NAMES = frozenset({"phone", "text"})
_ENV = sandbox(UTC)


class HttpSuccess(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a generic provider's answer looks like when it accepted the message."""

    status: list[int] | None = None
    """``None``: any 2xx."""
    field: str | None = None
    """A dotted path into the JSON answer (``result.code``) that must equal `value`."""
    value: str | int | float | bool | None = None
    """What `field` must hold (with `field`)."""


class SmsConfig(SinkConfig, tag="sms", kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A ``type: sms`` block: the ``text`` part by SMS to the order's customer; which keys
    apply depends on ``provider``."""

    provider: Literal["twilio", "zenziva", "http"]
    """Which gateway sends: Twilio, Zenziva, or any other described by `url`."""
    base_url: str | None = None
    """``None``: the provider's public API (not for ``http``, which has its `url`)."""
    max_segments: int = 2
    """A text that needs more SMS than this is not sent (the delivery is permanent)."""
    timeout: Duration = Duration(10)
    """How long one request may take."""
    # twilio
    account_sid: str | None = None
    """Twilio's account SID."""
    auth_token: str | None = None
    """Twilio's auth token."""
    sender: str | None = msgspec.field(default=None, name="from")
    """Twilio: the sending number (or give `messaging_service_sid`)."""
    messaging_service_sid: str | None = None
    """Twilio: the messaging service that picks the sender (or give ``from``)."""
    # zenziva
    userkey: str | None = None
    """Zenziva's user key."""
    passkey: str | None = None
    """Zenziva's pass key."""
    # http
    method: Literal["POST", "PUT", "GET"] = "POST"
    """``http``: the request's method (``GET`` puts the `form` in the query)."""
    url: str | None = None
    """``http``: the gateway's URL, a template over ``phone`` and ``text``."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """``http``: request headers, each a template over ``phone`` and ``text``."""
    form: dict[str, str] | None = None
    """``http``: a form body, each value a template over ``phone`` (E.164) and ``text``."""
    json: dict[str, Any] | None = None
    """``http``: a JSON body, its strings templates over ``phone`` (E.164) and ``text``."""
    success: HttpSuccess | None = None
    """``http``: what an accepted message's answer looks like; ``None``: any 2xx."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for provider, keys in _KEYS.items():
            if provider == self.provider:
                continue
            for key in keys:
                if getattr(self, key) not in (None, {}):
                    raise FieldError(_YAML_KEY.get(key, key), f"is not a `{self.provider}` key")
        if self.max_segments < 1:
            raise FieldError("max_segments", "must be at least 1")
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise FieldError("base_url", "must be an absolute http:// or https:// URL")
        if self.provider == "twilio":
            _require(self, "account_sid", "auth_token")
            if (self.sender is None) == (self.messaging_service_sid is None):
                raise ValueError("give exactly one of `from` and `messaging_service_sid`")
        elif self.provider == "zenziva":
            _require(self, "userkey", "passkey")
        else:
            self._check_http()

    def _check_http(self) -> None:
        if self.base_url is not None:
            raise FieldError("base_url", "a `http` provider is described by its `url`")
        if not self.url or not self.url.startswith(("http://", "https://")):
            raise FieldError("url", "must be the provider's absolute http:// or https:// URL")
        if self.form is not None and self.json is not None:
            raise ValueError("give `form` or `json`, not both")
        if self.form is None and self.json is None and self.method != "GET":
            raise ValueError("give the body as `form` or `json` (templates over phone and text)")
        _check_template(("url",), self.url)
        for name, value in self.headers.items():
            _check_template(("headers", name), value)
        for key, body in (("form", self.form), ("json", self.json)):
            for path, value in _strings(body or {}, (key,)):
                _check_template(path, value)
        success = self.success or HttpSuccess()
        if (success.field is None) != (success.value is None):
            raise FieldError("success", "`field` and `value` go together")

    @property
    def api(self) -> str:
        default = TWILIO_API if self.provider == "twilio" else ZENZIVA_API
        return (self.base_url or default).rstrip("/")


def _require(config: SmsConfig, *keys: str) -> None:
    for key in keys:
        if not getattr(config, key):
            raise FieldError(key, f"is required with `provider: {config.provider}`")


def _check_template(path: tuple[str | int, ...], source: str) -> None:
    try:
        names = meta.find_undeclared_variables(_ENV.parse(source))
    except TemplateSyntaxError as exc:
        raise FieldError(path, f"template line {exc.lineno}: {exc.message}") from None
    unknown = sorted(names - _TEMPLATE_NAMES)
    if unknown:
        raise FieldError(path, f"only `phone` and `text` can be used here, not {unknown}")


def _strings(data: Any, path: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string inside a JSON-like body, with its path."""
    if isinstance(data, str):
        return [(path, data)]
    if isinstance(data, Mapping):
        return [p for k, v in data.items() for p in _strings(v, (*path, str(k)))]
    if isinstance(data, list):
        return [p for i, v in enumerate(data) for p in _strings(v, (*path, i))]
    return []


class SmsSink:
    """One SMS per delivery to the order's customer."""

    config_type: ClassVar[type[SinkConfig]] = SmsConfig
    default_ordering: ClassVar[Ordering] = "latest"
    writes_to_customer: ClassVar[bool] = True
    """Default templates come in the customer's registered language when there is one."""
    parts: ClassVar[tuple[str, ...]] = ("text",)
    default_templates: ClassVar[dict[str, dict[str, str]]] = {
        # Plain GSM-7 and short: one SMS for the usual statuses (no emoji, no curly quotes).
        "text": {
            "id": (
                "Pesanan {{ event.order_id }}: {{ event.status | status_label }}"
                "{% if event.awb %}, resi {{ event.awb }}{% endif %}"
                "{% if event.reason %}. {{ event.reason }}{% endif %}"
                "{% if tracking_url or event.details.get('tracking_url') %}"
                ". Lacak: {{ tracking_url or event.details.tracking_url }}{% endif %}"
            ),
            "en": (
                "Order {{ event.order_id }}: {{ event.status | status_label }}"
                "{% if event.awb %}, AWB {{ event.awb }}{% endif %}"
                "{% if event.reason %}. {{ event.reason }}{% endif %}"
                "{% if tracking_url or event.details.get('tracking_url') %}"
                ". Track: {{ tracking_url or event.details.tracking_url }}{% endif %}"
            ),
        }
    }

    def __init__(self, name: str, config: SmsConfig, client: httpx.AsyncClient | None) -> None:
        self.name = name
        self.config = config
        self._client = client
        self._redactor = Redactor(self.secrets())
        self._templates: dict[str, Template] = {}

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        if not isinstance(config, SmsConfig):
            raise TypeError(f"expected SmsConfig, got {type(config).__name__}")
        return cls(name, config, deps.http)

    def request(self, phone: str, text: str) -> httpx.Request:
        """The provider's HTTP request sending `text` to `phone` (E.164)."""
        config = self.config
        if config.provider == "twilio":
            form = {"To": phone, "Body": text}
            if config.messaging_service_sid:
                form["MessagingServiceSid"] = config.messaging_service_sid
            else:
                form["From"] = str(config.sender)
            return httpx.Request(
                "POST",
                f"{config.api}/2010-04-01/Accounts/{config.account_sid}/Messages.json",
                data=form,
                headers={"authorization": f"Basic {self._twilio_basic()}"},
            )
        if config.provider == "zenziva":
            return httpx.Request(
                "POST",
                f"{config.api}/sendsms/",
                data={
                    "userkey": str(config.userkey),
                    "passkey": str(config.passkey),
                    "to": phone.removeprefix("+"),
                    "message": text,
                },
            )
        values = {"phone": phone, "text": text}
        headers = {k: self._render(v, values) for k, v in config.headers.items()}
        url = self._render(str(config.url), values)
        if config.json is not None:
            body = _render_json(config.json, lambda s: self._render(s, values))
            headers.setdefault("content-type", "application/json")
            return httpx.Request(
                config.method, url, content=msgspec.json.encode(body), headers=headers
            )
        form = {k: self._render(v, values) for k, v in (config.form or {}).items()}
        if config.method == "GET":
            return httpx.Request("GET", httpx.URL(url).copy_merge_params(form), headers=headers)
        return httpx.Request(config.method, url, data=form, headers=headers)

    def _render(self, source: str, values: Mapping[str, str]) -> str:
        template = self._templates.get(source)
        if template is None:
            template = self._templates[source] = _ENV.from_string(source)
        return template.render(values)

    def _twilio_basic(self) -> str:
        credentials = f"{self.config.account_sid}:{self.config.auth_token}"
        return base64.b64encode(credentials.encode()).decode()

    def guard(self, message: Message) -> str | Skipped | Permanent:
        """The recipient, or why nothing is sent: no or a bad number, or a text too long."""
        phone = customer_phone(message)
        if isinstance(phone, Skipped | Permanent):
            return phone
        segments = count_segments(message.text)
        if segments.count > self.config.max_segments:
            return Permanent(
                reason=f"the text needs {segments}, more than max_segments"
                f" {self.config.max_segments}: shorten the template"
            )
        if segments.count == 0:
            return Permanent(reason="the text is empty")
        return phone

    def check(self, samples: CheckSamples) -> list[str]:
        """The most SMS the text takes over the sample messages of one route, against
        ``max_segments`` (a text over it would be refused at run time)."""
        worst: tuple[Segments, str] | None = None
        for message in samples.messages:
            got = count_segments(message.text)
            if worst is None or got.units > worst[0].units:
                worst = (got, f"{message.event.status.value} {message.event.kind}")
        if worst is None:
            return []
        limit = self.config.max_segments
        where = f"route {samples.route}" if samples.route else "no route"
        over = f", OVER max_segments {limit}: refused" if worst[0].count > limit else ""
        return [f"{self.name} ({where}): up to {worst[0]}, for a {worst[1]} event{over}"]

    def preview(self, message: Message) -> str:
        """The provider request `send` would make (credentials masked) and its SMS count."""
        phone = self.guard(message)
        if isinstance(phone, Skipped | Permanent):
            return f"(not sent: {phone.reason})"
        request = self.request(phone, message.text)
        shown = f"{request.method} {request.url}\n{request.content.decode('utf-8', 'replace')}"
        return self._redactor.redact(f"{shown}\n({count_segments(message.text)})")

    async def send(self, message: Message) -> SendResult:
        if self._client is None:
            raise RuntimeError(f"sink {self.name!r} was built without an HTTP client")
        phone = self.guard(message)
        if isinstance(phone, Skipped | Permanent):
            return phone
        request = self.request(phone, message.text)
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
        if self.config.provider == "twilio":
            return self._twilio_outcome(response)
        if self.config.provider == "zenziva":
            return self._zenziva_outcome(response)
        return self._http_outcome(response)

    def _twilio_outcome(self, response: Answer) -> SendResult:
        status = response.status_code
        body = _json(response)
        code, said = body.get("code"), body.get("message")
        if 200 <= status < 300 or code is None:
            return classify(status, response.headers, response.body, redactor=self._redactor)
        result = classify(status, response.headers, b"", redactor=self._redactor)
        reason = self._redactor.redact(f"Twilio error {code}: {said} (HTTP {status})")
        if isinstance(result, Retry):
            return Retry(reason=reason, after=result.after, status_code=status)
        if isinstance(result, Permanent):
            # A refused login fails every message alike: stop until someone fixes it.
            gone = result.disable_sink or status == 401
            return Permanent(reason=reason, status_code=status, disable_sink=gone)
        return result

    def _zenziva_outcome(self, response: Answer) -> SendResult:
        status = response.status_code
        if not 200 <= status < 300:
            return classify(status, response.headers, response.body, redactor=self._redactor)
        body = _json(response)
        if str(body.get("status")) == "1":
            return Delivered(status_code=status)
        if not body and response.partial:
            return unreadable(response, "Zenziva")
        said = str(body.get("text") or "no reason given")
        reason = self._redactor.redact(f"Zenziva refused: {said}")
        if any(word in said.lower() for word in _ZENZIVA_RETRY):
            return Retry(reason=reason, status_code=status)
        return Permanent(reason=reason, status_code=status)

    def _http_outcome(self, response: Answer) -> SendResult:
        status = response.status_code
        success = self.config.success or HttpSuccess()
        accepted = status in success.status if success.status else 200 <= status < 300
        if not accepted:
            result = classify(status, response.headers, response.body, redactor=self._redactor)
            if isinstance(result, Delivered):  # a 2xx the configuration does not count
                return Permanent(
                    reason=f"HTTP {status} is not one of success.status {success.status}",
                    status_code=status,
                )
            return result
        if success.field is None:
            return Delivered(status_code=status)
        body = _json(response)
        found = _dig(body, success.field)
        # YAML and the provider's JSON need not agree on types: "1" and 1 both mean 1.
        if found is not None and str(found) == str(success.value):
            return Delivered(status_code=status)
        if not body and response.partial:
            return unreadable(response, "the SMS gateway")
        return Permanent(
            reason=self._redactor.redact(
                f"HTTP {status} but {success.field} is {found!r}, not {success.value!r}"
            ),
            status_code=status,
        )

    def secrets(self) -> list[str]:
        """Tokens, keys, passwords and URL credentials of the block, and Twilio's Basic
        credential."""
        found = config_secrets(self.config)
        if self.config.provider == "twilio":
            found.append(self._twilio_basic())
        return found

    async def aclose(self) -> None:
        """Nothing to close: the HTTP client is shared and closed by its owner."""

    def __repr__(self) -> str:
        return f"SmsSink({self.name!r}, {self.config!r})"


def _render_json(data: Any, render: Callable[[str], str]) -> Any:
    if isinstance(data, str):
        return render(data)
    if isinstance(data, Mapping):
        return {k: _render_json(v, render) for k, v in data.items()}
    if isinstance(data, list):
        return [_render_json(v, render) for v in data]
    return data


def _dig(data: Any, path: str) -> Any:
    for key in path.split("."):
        if isinstance(data, Mapping):
            data = data.get(key)
        elif isinstance(data, list) and key.isdigit() and int(key) < len(data):
            data = data[int(key)]
        else:
            return None
    return data


def _json(response: Answer) -> dict[str, Any]:
    """The answer's JSON object; ``{}`` if it is none (or was cut, `Answer.partial`)."""
    try:
        data = msgspec.json.decode(response.body)
    except msgspec.DecodeError:
        return {}
    return data if isinstance(data, dict) else {}
