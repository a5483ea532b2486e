"""The sink contract: a small class built from its YAML block, with one `send` and `aclose`.

A sink renders nothing itself: the dispatcher hands it a `Message` with the rendered text.
It sends with the shared `httpx.AsyncClient` it was built with and answers with a `SendResult`
(`Delivered`, `Retry` or `Permanent`), never by raising for an expected failure.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any, ClassVar, Literal, Protocol, Self

import httpx
import msgspec

from gateway.events import Contact, Event
from gateway.units import Duration, RateLimit

__all__ = [
    "Delivered",
    "Message",
    "Permanent",
    "Retry",
    "RetryConfig",
    "SendResult",
    "Sink",
    "SinkConfig",
    "load_sink_types",
]

Language = Literal["id", "en"]


class RetryConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    schedule: list[Duration] | None = None
    """Waits between attempts; ``None`` takes the global `retry.schedule`."""


class SinkConfig(
    msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"
):
    """Keys every sink block accepts. Each sink kind subclasses this with ``tag="<type>"``."""

    retry: RetryConfig | None = None
    concurrency: int = 10
    """How many sends to this sink may be in flight at once."""
    rate_limit: RateLimit | None = None
    ordering: Literal["all", "latest"] | None = None
    """``None`` takes the sink kind's default (`Sink.default_ordering`)."""
    language: Language = "id"
    template: str | None = None
    """Default template for routes that give none; ``None`` uses the kind's built-in one."""

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("`concurrency` must be at least 1")


class Message(msgspec.Struct, frozen=True, kw_only=True):
    """What the dispatcher hands a sink for one delivery."""

    delivery_id: str
    """Stable across retries: receivers drop repeats by it (``webhook-id``)."""
    route: str
    event: Event
    contact: Contact | None
    text: str
    """The rendered template."""
    attempt: int = 1


class Delivered(msgspec.Struct, frozen=True, kw_only=True):
    status_code: int | None = None


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    after: float | None = None
    """Seconds the peer asked us to wait (``Retry-After``); ``None``: follow the schedule."""
    status_code: int | None = None


class Permanent(msgspec.Struct, frozen=True, kw_only=True):
    reason: str
    status_code: int | None = None
    disable_sink: bool = False
    """The peer said it is gone for good (410): stop sending to this sink until re-enabled."""


SendResult = Delivered | Retry | Permanent


class Sink(Protocol):
    """One configured destination."""

    config_type: ClassVar[type[SinkConfig]]
    default_ordering: ClassVar[Literal["all", "latest"]]
    default_templates: ClassVar[dict[str, str]]
    """Built-in template source by language (``id``, ``en``)."""

    name: str
    config: SinkConfig

    @classmethod
    def build(cls, name: str, config: Any, client: httpx.AsyncClient) -> Self: ...

    async def send(self, message: Message) -> SendResult: ...

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, errors or attempt rows."""
        ...

    async def aclose(self) -> None: ...


def load_sink_types() -> dict[str, type[Sink]]:
    """Built-in sink kinds plus third-party ones from the ``kabarin.sinks`` entry-point group."""
    from sinks.console import ConsoleSink
    from sinks.slack import SlackSink
    from sinks.webhook import WebhookSink

    types: dict[str, type[Sink]] = {"console": ConsoleSink, "slack": SlackSink, "webhook": WebhookSink}
    for ep in entry_points(group="kabarin.sinks"):
        types.setdefault(ep.name, ep.load())
    return types
