"""The sink contract: a small class built from its YAML block and the dependencies it asks for.

A sink kind declares the message parts it needs (`Sink.parts`: ``text``, ``subject``, ``html``,
...); the dispatcher renders each from its template and hands the sink a `Message` with them.
A sink renders nothing itself. It sends with what `SinkDeps` gave it (the shared
`httpx.AsyncClient`, ...) and answers with a `SendResult` (`Delivered`, `Retry`, `Permanent`
or `Skipped`), never by raising for an expected failure. It says whether it writes to the
order's customer (`Sink.writes_to_customer`), and may check what it would be sent for
``kabarin check`` (`Checkable`). The kinds are found through the ``kabarin.sinks`` entry points
(`sinks.registry`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import msgspec

from gateway.delivery.model import Group, Ordering
from gateway.events import Contact, Event
from gateway.phone import InvalidPhone, normalize_phone
from gateway.redaction import mask_config, secret_values
from gateway.units import Duration, FieldError, RateLimit

__all__ = [
    "CheckSamples",
    "Checkable",
    "CircuitBreakerConfig",
    "ContactReader",
    "Delivered",
    "Language",
    "Message",
    "Permanent",
    "QuietHoursConfig",
    "Retry",
    "RetryConfig",
    "SendResult",
    "Sink",
    "SinkConfig",
    "SinkDeps",
    "Skipped",
    "SmtpConnect",
    "config_secrets",
    "customer_phone",
    "mask",
    "with_group",
]

Language = Literal["id", "en"]


class RetryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """This sink's own retry schedule."""

    schedule: list[Duration] | None = None
    """Waits between attempts; ``None`` takes the global `retry.schedule`."""


class CircuitBreakerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Stop calling a sink that keeps failing, and probe it again later."""

    failures: int = 5
    """Consecutive failed sends that open the circuit; 0 switches the breaker off."""
    cooldown: Duration = Duration(30)
    """How long the circuit stays open before one probe is let through."""
    max_cooldown: Duration = Duration(300)
    """Each failed probe doubles the cool-down, up to this."""

    def __post_init__(self) -> None:
        if self.failures < 0:
            raise FieldError("failures", "must be 0 (off) or more")
        if self.max_cooldown < self.cooldown:
            raise FieldError("max_cooldown", "must be at least `cooldown`")


class QuietHoursConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A daily window in which a sink sends nothing (``21:00``-``07:00`` spans midnight)."""

    start: str
    """When the window opens, ``HH:MM`` in `timezone`."""
    end: str
    """When it closes, ``HH:MM``; before `start`, the window spans midnight."""
    timezone: str | None = None
    """The recipient's zone; ``None`` takes ``receiver.timezone``."""

    def __post_init__(self) -> None:
        for key in ("start", "end"):
            if not _HH_MM.fullmatch(getattr(self, key)):
                raise FieldError(key, "expected a time of day as HH:MM, e.g. 21:00")
        if self.start == self.end:
            raise FieldError("end", "must differ from `start` (an empty or full-day window)")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise FieldError("timezone", f"unknown time zone `{self.timezone}`") from exc


_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


class SinkConfig(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    """Keys every sink block accepts. Each sink kind subclasses this with ``tag="<type>"``."""

    retry: RetryConfig | None = None
    """``None`` follows the global ``retry``."""
    circuit_breaker: CircuitBreakerConfig = msgspec.field(default_factory=CircuitBreakerConfig)
    concurrency: int = 10
    """How many sends to this sink may be in flight at once."""
    rate_limit: RateLimit | None = None
    """At most this many sends, e.g. ``1/s``, ``30/m``; ``None``: no limit."""
    ordering: Ordering | None = None
    """``None`` takes the sink kind's default (`Sink.default_ordering`)."""
    language: Language = "id"
    """Language of the default templates, ``status_label`` and ``localtime``; a customer's
    registered language wins for the sinks that write to customers."""
    template: str | dict[str, str] | None = None
    """Templates for routes that give none: a string is the ``text`` part, a mapping gives
    several parts (``{text: ..., subject: ...}``); a part not given uses the kind's built-in."""
    quiet_hours: QuietHoursConfig | None = None
    """Deliveries falling due inside this window wait for its end (`gateway.delivery.quiet`)."""
    max_age: Duration | None = None
    """A delivery whose event is older than this when it would be sent is skipped."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise FieldError("concurrency", "must be at least 1")

    @property
    def template_parts(self) -> dict[str, str]:
        """`template` as part name → source."""
        if self.template is None:
            return {}
        return {"text": self.template} if isinstance(self.template, str) else dict(self.template)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in mask(self).items())
        return f"{type(self).__name__}({fields})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        return list(mask(self).items())


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """What the dispatcher hands a sink for one delivery."""

    delivery_id: str
    """Stable across retries: receivers drop repeats by it (``webhook-id``)."""
    route: str
    event: Event
    contact: Contact | None
    parts: Mapping[str, str] = msgspec.field(default_factory=dict)
    """Every part the sink kind declares (`Sink.parts`), rendered: part name → text."""
    attempt: int = 1
    group: Group | None = None
    """A grouped route's message (``group:``): the events it carries, `event` being the
    first; ``None`` for a message about one event."""

    @property
    def text(self) -> str:
        """The ``text`` part ("" when the kind declares none)."""
        return self.parts.get("text", "")


class Delivered(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int | None = None
    note: str | None = None
    """Something the peer accepted only in part (an SMTP server refusing some recipients):
    kept on the attempt row."""


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    after: float | None = None
    """Seconds the peer asked us to wait (``Retry-After``); ``None``: follow the schedule."""
    status_code: int | None = None
    unsent: bool = False
    """The request cannot have reached the peer (refused, DNS failure, connect timeout): safe to
    try again at once, which the dispatcher does (`gateway.delivery.attempts`)."""


class Permanent(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    status_code: int | None = None
    disable_sink: bool = False
    """The peer said it is gone for good (410): stop sending to this sink until re-enabled."""
    unanswered: bool = False
    """The request went out and no (whole) answer came back: not sent again, since the peer
    may have acted on it, but a failure of the sink for its circuit breaker."""


class Skipped(msgspec.Struct, frozen=True, kw_only=True):
    """Nothing to send for this delivery (no recipient, ...): it ends ``skipped``, not dead,
    and the sink is not blamed (its circuit breaker does not count it)."""

    reason: str
    status_code: None = None
    """Never an HTTP answer: a skip is decided before anything is sent."""


SendResult = Delivered | Retry | Permanent | Skipped


class ContactReader(Protocol):
    """Reads an order's customer (the store is one): for sinks that write to people."""

    async def get_contact(self, order_id: str) -> Contact | None: ...


SmtpConnect = Callable[[], AbstractAsyncContextManager[Any]]
"""Opens one SMTP session (connected, TLS, logged in) for the email sink; closing the context
ends it. No built-in sink uses it yet."""


@dataclass(frozen=True, kw_only=True)
class SinkDeps:
    """The shared things a sink may ask for, handed to `Sink.build`.

    Every slot is ``None`` when the sink is built to be checked or previewed only
    (``kabarin check``, ``kabarin simulate``): `build` must not do I/O.
    """

    http: httpx.AsyncClient | None = None
    """The process's one HTTP client (`sinks.http.make_http_client`)."""
    smtp: SmtpConnect | None = None
    contacts: ContactReader | None = None


class Sink(Protocol):
    """One configured destination.

    `build` must not do I/O: `kabarin check` and `simulate` build every sink with an empty
    `SinkDeps` to validate and render, and never call `send` (`simulate` shows `preview`). A
    sink may also have a `check` (`Checkable`), which ``kabarin check`` calls.
    """

    config_type: ClassVar[type[SinkConfig]]
    default_ordering: ClassVar[Ordering]
    parts: ClassVar[tuple[str, ...]]
    """The message parts this kind sends (``("text",)``; ``()`` when it sends only data)."""

    @property
    def writes_to_customer(self) -> bool:
        """Whether this sink writes to the order's customer (``sms``, ``whatsapp``, ``email``
        with ``to: customer``), rather than to the shop's staff or machines.

        A send to a customer is at most once: the dispatcher records its start before the
        request leaves, and never repeats one whose outcome is unknown; other sends are at
        least once. Its messages are written in the customer's registered language
        (``contact.language``) when there is one, else in the sink's ``language``. Usually a
        class attribute; a kind registered without it is taken as ``False`` (`sinks.registry`).
        """
        ...

    @property
    def default_templates(self) -> dict[str, dict[str, str]]:
        """Built-in template source of each part, by language: ``{"text": {"id": ..., "en":
        ...}}``. Usually the kind's (a class attribute); a sink whose configuration changes
        what it writes has its own (WhatsApp Cloud's parameters, email to staff or customer)."""
        ...

    @property
    def name(self) -> str: ...

    @property
    def config(self) -> SinkConfig: ...

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self: ...

    async def send(self, message: Message) -> SendResult: ...

    def preview(self, message: Message) -> str:
        """What `send` would send for `message` (``kabarin simulate``), sending nothing."""
        ...

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, errors or attempt rows."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class CheckSamples:
    """What ``kabarin check`` hands `Checkable.check`: the messages one route would send."""

    route: str | None
    """The route's name; ``None`` for a sink no route sends to (it meets every sample)."""
    messages: Sequence[Message]
    """The message of every sample event the route's ``match`` lets through, each with a
    contact and without, every part rendered (a message whose template fails is left out:
    ``kabarin check`` reports that failure itself)."""


@runtime_checkable
class Checkable(Protocol):
    """A sink with its own checks (optional: a sink without `check` is only rendered)."""

    def check(self, samples: CheckSamples) -> list[str]:
        """Lines for ``kabarin check``'s summary about what this sink would send, each naming
        the sink (the SMS sink: the most segments a text takes). Called once per route that
        sends to the sink; must not do I/O."""
        ...


def with_group(
    grouped: Mapping[str, Mapping[str, str]], single: Mapping[str, Mapping[str, str]]
) -> dict[str, dict[str, str]]:
    """Default templates that render a grouped message (``group`` set) with `grouped` and a
    message about one event with `single`: part → language → source."""
    return {
        part: {
            language: (
                f"{{% if group %}}{grouped[part][language]}{{% else %}}{source}{{% endif %}}"
                if part in grouped and language in grouped[part]
                else source
            )
            for language, source in by_language.items()
        }
        for part, by_language in single.items()
    }


def customer_phone(message: Message) -> str | Skipped | Permanent:
    """Where a message to the order's customer goes: the contact's number in E.164, `Skipped`
    when the order has none, `Permanent` when the number cannot be one."""
    contact = message.contact
    raw = contact.phone if contact is not None else None
    if raw is None or not raw.strip():
        return Skipped(reason=f"no phone number for order {message.event.order_id}")
    try:
        return normalize_phone(raw)
    except InvalidPhone as exc:
        return Permanent(reason=f"order {message.event.order_id}: {exc}")


def mask(config: SinkConfig) -> dict[str, Any]:
    """The config as plain data for printing, with secret values replaced by ``***``
    (`gateway.redaction.mask_config`: a value under a secret key whole, URL credentials and
    personal data in every other string)."""
    masked: dict[str, Any] = mask_config(msgspec.to_builtins(config, enc_hook=_to_builtin))
    return masked


def config_secrets(config: SinkConfig) -> list[str]:
    """The secrets in a sink's config (`gateway.redaction.secret_values`): what a sink's
    `Sink.secrets` returns unless it holds others."""
    return secret_values(msgspec.to_builtins(config, enc_hook=_to_builtin))


_RATE_UNITS = {1.0: "s", 60.0: "m", 3600.0: "h", 86400.0: "d"}


def _to_builtin(value: Any) -> Any:
    if isinstance(value, float):  # Duration
        return float(value)
    if isinstance(value, RateLimit):
        unit = _RATE_UNITS.get(value.per)
        return f"{value.count:g}/{unit}" if unit else f"{value.count:g}/{value.per:g}s"
    raise NotImplementedError(f"cannot print {type(value).__name__}")
