"""`console`: prints each rendered message, so the example configuration works with no secrets.

One block per delivery: a header line naming the sink, route, status and order, then the text,
masked like a log line (`gateway.redaction`: phone numbers, emails and credential-shaped text)::

    == console | route everything-to-console | delivered | order OID-1 | AWB JP123
    Delivered: order OID-1 (AWB JP123), 05 May 2022 07:00 WIB

With the customer's tracking page on (``tracking_page``), the default text ends with the
order's link, ``Track: https://.../t/<token>``: a way to see one locally.

```yaml
sinks:
  console:
    type: console
    stream: stdout        # or stderr
```
"""

from __future__ import annotations

import sys
from typing import Any, ClassVar, Literal, Self

from gateway.delivery.model import Ordering
from gateway.redaction import redact_text
from sinks.base import Delivered, Message, Retry, SendResult, SinkConfig, SinkDeps, with_group

__all__ = ["ConsoleConfig", "ConsoleSink"]


class ConsoleConfig(
    SinkConfig, tag="console", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    """A ``type: console`` block: each rendered message printed, personal data masked."""

    stream: Literal["stdout", "stderr"] = "stdout"
    """Where each rendered message is printed."""


class ConsoleSink:
    """Writes to the process's stdout or stderr and flushes after every message."""

    config_type: ClassVar[type[SinkConfig]] = ConsoleConfig
    writes_to_customer: ClassVar[bool] = False
    """Prints for the operator, not the customer."""
    default_ordering: ClassVar[Ordering] = "latest"
    parts: ClassVar[tuple[str, ...]] = ("text",)
    default_templates: ClassVar[dict[str, dict[str, str]]] = with_group(
        {
            "text": {
                "id": "{{ group.count }} pembaruan pesanan"
                "{% if group.key %} ({{ group.key | group_key }}){% endif %}:"
                "{% for e in group.events %}\n- {{ e.order_id }}: {{ e.status | status_label }}"
                "{% if e.reason %}. Alasan: {{ e.reason }}{% endif %}{% endfor %}",
                "en": "{{ group.count }} order updates"
                "{% if group.key %} ({{ group.key | group_key }}){% endif %}:"
                "{% for e in group.events %}\n- {{ e.order_id }}: {{ e.status | status_label }}"
                "{% if e.reason %}. Reason: {{ e.reason }}{% endif %}{% endfor %}",
            }
        },
        {
            "text": {
                "id": (
                    "{{ event.status | status_label }}: pesanan {{ event.order_id }}"
                    "{% if event.awb %} (resi {{ event.awb }}){% endif %}"
                    ", {{ event.occurred_at | localtime }}"
                    "{% if event.reason %}. Alasan: {{ event.reason }}{% endif %}"
                    "{% if tracking_url %}\nLacak: {{ tracking_url }}{% endif %}"
                ),
                "en": (
                    "{{ event.status | status_label }}: order {{ event.order_id }}"
                    "{% if event.awb %} (AWB {{ event.awb }}){% endif %}"
                    ", {{ event.occurred_at | localtime }}"
                    "{% if event.reason %}. Reason: {{ event.reason }}{% endif %}"
                    "{% if tracking_url %}\nTrack: {{ tracking_url }}{% endif %}"
                ),
            }
        },
    )

    def __init__(self, name: str, config: ConsoleConfig) -> None:
        self.name = name
        self.config = config

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        if not isinstance(config, ConsoleConfig):
            raise TypeError(f"expected ConsoleConfig, got {type(config).__name__}")
        return cls(name, config)

    def preview(self, message: Message) -> str:
        """The block `send` prints: the header line and the masked text."""
        event = message.event
        header = (
            f"== {self.name} | route {message.route} | {event.status.value}"
            f" | order {event.order_id}" + (f" | AWB {event.awb}" if event.awb else "")
        )
        if message.group is not None:
            header = f"== {self.name} | route {message.route} | {message.group.count} events"
        # A terminal is a log: it gets the same masking, whatever text a template pulled in.
        return redact_text(f"{header}\n{message.text}")

    async def send(self, message: Message) -> SendResult:
        """Print the header line and the text; a closed stream is a `Retry`."""
        stream = sys.stdout if self.config.stream == "stdout" else sys.stderr
        block = self.preview(message)
        try:
            try:
                print(block, file=stream, flush=True)
            except UnicodeEncodeError:  # a stream that cannot show emoji or accents
                encoding = getattr(stream, "encoding", None) or "ascii"
                safe = block.encode(encoding, "backslashreplace").decode(encoding)
                print(safe, file=stream, flush=True)
        except (OSError, ValueError) as exc:  # closed pipe or stream
            return Retry(reason=f"cannot write to {self.config.stream}: {exc}")
        return Delivered()

    def secrets(self) -> list[str]:
        """None: a console sink holds no credentials."""
        return []

    async def aclose(self) -> None:
        """Nothing to close: the standard streams belong to the process."""

    def __repr__(self) -> str:
        return f"ConsoleSink({self.name!r}, {self.config!r})"
