"""`email`: a multipart/alternative mail (text and HTML) over SMTP, for staff or the customer.

Each delivery opens one SMTP session with the sink's own settings (`aiosmtplib`): plain,
STARTTLS (the default, and required: a server that does not offer it fails the delivery rather
than getting the mail in clear) or implicit TLS, then ``AUTH`` when ``username`` is set. The
mail has a ``Date`` and a ``Message-ID`` made from the delivery id, so a resend after a lost
answer is recognisably the same mail.

Outcomes follow the reply codes of RFC 5321:

======================================  ==========================================
250 for every recipient                 `Delivered`
some recipients refused                 `Delivered` with a note naming them and why
4xx reply, connection error, timeout    `Retry`
5xx reply (``550`` no such user, ...)   `Permanent`
every recipient refused                 `Retry` if any refusal was 4xx, else `Permanent`
no STARTTLS / AUTH offered              `Permanent`: the configuration must change
``to: customer`` and no contact email   `Skipped`
======================================  ==========================================

```yaml
sinks:
  gudang-mail:
    type: email
    host: smtp.toko.example
    port: 587                      # default: 587 (starttls), 465 (implicit), 25 (none)
    tls: starttls                  # or implicit, or none
    username: kabarin@toko.example
    password: ${SMTP_PASSWORD}
    from: "Toko A <kabarin@toko.example>"
    to: [gudang@toko.example]      # or `customer`: the order's contact
    cc: [cs@toko.example]
    reply_to: cs@toko.example
```
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from typing import Any, ClassVar, Literal, Self

import aiosmtplib
import msgspec

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
    with_group,
)

__all__ = ["CUSTOMER_TEMPLATES", "STAFF_TEMPLATES", "EmailConfig", "EmailSink", "build_mail"]

_DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


class EmailConfig(SinkConfig, tag="email", kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A ``type: email`` block: mail over SMTP to staff, or to the order's customer."""

    host: str
    """The SMTP server."""
    port: int | None = None
    """``None``: 587 for ``starttls``, 465 for ``implicit``, 25 for ``none``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """``starttls`` requires the server to offer STARTTLS (never mail in clear);
    ``implicit``: TLS from the start; ``none``: no TLS."""
    username: str | None = None
    """SMTP login; ``None``: no login."""
    password: str | None = None
    """SMTP password (with `username`)."""
    sender: str = msgspec.field(name="from")
    """The ``From`` address (``"Toko A <kabarin@toko.example>"``)."""
    to: list[str] | Literal["customer"]
    """Staff addresses, or ``customer``: the order's contact email (none: skipped)."""
    cc: list[str] = msgspec.field(default_factory=list)
    """Copied on every mail."""
    reply_to: str | None = None
    """The ``Reply-To`` address."""
    ca_file: str | None = None
    """A CA bundle to verify the server with, for a relay with a private certificate."""
    timeout: Duration = Duration(30)
    """How long one SMTP session may take."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.host.strip():
            raise FieldError("host", "must name the SMTP server")
        if self.port is not None and not 0 < self.port < 65536:
            raise FieldError("port", "must be between 1 and 65535")
        _check_address("from", self.sender)
        if isinstance(self.to, list):
            if not self.to:
                raise FieldError("to", "must list at least one address, or be `customer`")
            for i, address in enumerate(self.to):
                _check_address(("to", i), address)
        for i, address in enumerate(self.cc):
            _check_address(("cc", i), address)
        if self.reply_to is not None:
            _check_address("reply_to", self.reply_to)
        if self.password is not None and self.username is None:
            raise FieldError("password", "needs `username`")
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")

    @property
    def smtp_port(self) -> int:
        return self.port if self.port is not None else _DEFAULT_PORTS[self.tls]


def _check_address(key: str | tuple[str | int, ...], value: str) -> None:
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (at and local and "." in domain):
        raise FieldError(key, f"{value!r} is not an email address")


_GROUP_TEMPLATES: dict[str, dict[str, str]] = {
    "subject": {
        "id": "{{ group.count }} pembaruan pesanan{% if group.key %}: {{ group.key | group_key }}"
        "{% endif %}",
        "en": "{{ group.count }} order updates{% if group.key %}: {{ group.key | group_key }}"
        "{% endif %}",
    },
    "text": {
        "id": (
            "{{ group.count }} pembaruan pesanan{% if group.key %} ({{ group.key | group_key }})"
            "{% endif %}:\n\n{% for e in group.events %}- {{ e.order_id }}"
            "{% if e.awb %} (resi {{ e.awb }}){% endif %}: {{ e.status | status_label }},"
            " {{ e.occurred_at | localtime }}{% if e.reason %}. Keterangan: {{ e.reason }}"
            "{% endif %}\n{% endfor %}"
        ),
        "en": (
            "{{ group.count }} order updates{% if group.key %} ({{ group.key | group_key }})"
            "{% endif %}:\n\n{% for e in group.events %}- {{ e.order_id }}"
            "{% if e.awb %} (AWB {{ e.awb }}){% endif %}: {{ e.status | status_label }},"
            " {{ e.occurred_at | localtime }}{% if e.reason %}. Reason: {{ e.reason }}"
            "{% endif %}\n{% endfor %}"
        ),
    },
    "html": {
        "id": (
            '<!DOCTYPE html><html lang="id"><body style="font-family:sans-serif">'
            "<p><b>{{ group.count }} pembaruan pesanan</b>"
            "{% if group.key %} ({{ group.key | group_key }}){% endif %}</p>"
            '<table cellpadding="4" style="border-collapse:collapse">'
            "<tr><th>Pesanan</th><th>Resi</th><th>Status</th><th>Waktu</th>"
            "<th>Keterangan</th></tr>{% for e in group.events %}<tr>"
            "<td><b>{{ e.order_id }}</b></td><td>{{ e.awb }}</td>"
            "<td>{{ e.status | status_label }}</td><td>{{ e.occurred_at | localtime }}</td>"
            "<td>{{ e.reason }}</td></tr>{% endfor %}</table></body></html>"
        ),
        "en": (
            '<!DOCTYPE html><html lang="en"><body style="font-family:sans-serif">'
            "<p><b>{{ group.count }} order updates</b>"
            "{% if group.key %} ({{ group.key | group_key }}){% endif %}</p>"
            '<table cellpadding="4" style="border-collapse:collapse">'
            "<tr><th>Order</th><th>AWB</th><th>Status</th><th>Time</th>"
            "<th>Reason</th></tr>{% for e in group.events %}<tr>"
            "<td><b>{{ e.order_id }}</b></td><td>{{ e.awb }}</td>"
            "<td>{{ e.status | status_label }}</td><td>{{ e.occurred_at | localtime }}</td>"
            "<td>{{ e.reason }}</td></tr>{% endfor %}</table></body></html>"
        ),
    },
}
"""A grouped message to staff (``group`` set): a subject with the count and the key, every
event as a line of text and as a row of an HTML table (order, AWB, status, time, reason)."""

STAFF_TEMPLATES: dict[str, dict[str, str]] = {
    "subject": {
        "id": (
            "{{ event.status | status_label }}: pesanan {{ event.order_id }}"
            "{% if event.awb %} (resi {{ event.awb }}){% endif %}"
        ),
        "en": (
            "{{ event.status | status_label }}: order {{ event.order_id }}"
            "{% if event.awb %} (AWB {{ event.awb }}){% endif %}"
        ),
    },
    "text": {
        "id": (
            "Pesanan {{ event.order_id }}: {{ event.status | status_label }}\n"
            "Waktu: {{ event.occurred_at | localtime }}\n"
            "{% if event.awb %}Resi: {{ event.awb }}\n{% endif %}"
            "{% if event.details.get('courier') %}Kurir: {{ event.details.courier | upper }}"
            "{% if event.details.get('service_name') %} {{ event.details.service_name }}"
            "{% endif %}\n{% endif %}"
            "{% if event.reason %}Keterangan: {{ event.reason }}\n{% endif %}"
            "{% if order_url %}\nDasbor: {{ order_url }}\n{% endif %}"
        ),
        "en": (
            "Order {{ event.order_id }}: {{ event.status | status_label }}\n"
            "Time: {{ event.occurred_at | localtime }}\n"
            "{% if event.awb %}AWB: {{ event.awb }}\n{% endif %}"
            "{% if event.details.get('courier') %}Courier: {{ event.details.courier | upper }}"
            "{% if event.details.get('service_name') %} {{ event.details.service_name }}"
            "{% endif %}\n{% endif %}"
            "{% if event.reason %}Reason: {{ event.reason }}\n{% endif %}"
            "{% if order_url %}\nDashboard: {{ order_url }}\n{% endif %}"
        ),
    },
    "html": {
        "id": (
            '<!DOCTYPE html><html lang="id"><body style="font-family:sans-serif"><table>'
            "<tr><td>Pesanan</td><td><b>{{ event.order_id }}</b></td></tr>"
            "<tr><td>Status</td><td><b>{{ event.status | status_label }}</b></td></tr>"
            "<tr><td>Waktu</td><td>{{ event.occurred_at | localtime }}</td></tr>"
            "{% if event.awb %}<tr><td>Resi</td><td>{{ event.awb }}</td></tr>{% endif %}"
            "{% if event.details.get('courier') %}<tr><td>Kurir</td><td>"
            "{{ event.details.courier | upper }} {{ event.details.get('service_name') }}"
            "</td></tr>{% endif %}{% if event.reason %}<tr><td>Keterangan</td><td>"
            "{{ event.reason }}</td></tr>{% endif %}</table>"
            '{% if order_url %}<p><a href="{{ order_url }}">Buka di dasbor</a></p>{% endif %}'
            "</body></html>"
        ),
        "en": (
            '<!DOCTYPE html><html lang="en"><body style="font-family:sans-serif"><table>'
            "<tr><td>Order</td><td><b>{{ event.order_id }}</b></td></tr>"
            "<tr><td>Status</td><td><b>{{ event.status | status_label }}</b></td></tr>"
            "<tr><td>Time</td><td>{{ event.occurred_at | localtime }}</td></tr>"
            "{% if event.awb %}<tr><td>AWB</td><td>{{ event.awb }}</td></tr>{% endif %}"
            "{% if event.details.get('courier') %}<tr><td>Courier</td><td>"
            "{{ event.details.courier | upper }} {{ event.details.get('service_name') }}"
            "</td></tr>{% endif %}{% if event.reason %}<tr><td>Reason</td><td>"
            "{{ event.reason }}</td></tr>{% endif %}</table>"
            '{% if order_url %}<p><a href="{{ order_url }}">Open in the dashboard</a></p>'
            "{% endif %}"
            "</body></html>"
        ),
    },
}
STAFF_TEMPLATES = with_group(_GROUP_TEMPLATES, STAFF_TEMPLATES)
"""The default parts of mail to staff (``to:`` a list): the order, status, time, AWB, courier
and reason, and a link to the order's dashboard page when ``admin.public_url`` is set. No
greeting: it is not written to the customer. A grouped message lists its events
(`_GROUP_TEMPLATES`)."""


CUSTOMER_TEMPLATES: dict[str, dict[str, str]] = {
    "subject": {
        "id": (
            "{{ event.status | status_label }}: pesanan {{ event.order_id }}"
            "{% if event.awb %} (resi {{ event.awb }}){% endif %}"
        ),
        "en": (
            "{{ event.status | status_label }}: order {{ event.order_id }}"
            "{% if event.awb %} (AWB {{ event.awb }}){% endif %}"
        ),
    },
    "text": {
        "id": (
            "Halo{% if contact and contact.name %} {{ contact.name }}{% endif %},\n\n"
            "Status pesanan {{ event.order_id }} sekarang: {{ event.status | status_label }}"
            " ({{ event.occurred_at | localtime }}).\n"
            "{% if event.awb %}Nomor resi: {{ event.awb }}\n{% endif %}"
            "{% if event.details.get('courier') %}Kurir: {{ event.details.courier | upper }}"
            "{% if event.details.get('service_name') %} {{ event.details.service_name }}"
            "{% endif %}\n{% endif %}"
            "{% if event.reason %}Keterangan: {{ event.reason }}\n{% endif %}"
            "{% if tracking_url or event.details.get('tracking_url') %}"
            "Lacak paket: {{ tracking_url or event.details.tracking_url }}\n{% endif %}"
            "\nTerima kasih."
        ),
        "en": (
            "Hello{% if contact and contact.name %} {{ contact.name }}{% endif %},\n\n"
            "Order {{ event.order_id }} is now: {{ event.status | status_label }}"
            " ({{ event.occurred_at | localtime }}).\n"
            "{% if event.awb %}AWB: {{ event.awb }}\n{% endif %}"
            "{% if event.details.get('courier') %}Courier: {{ event.details.courier | upper }}"
            "{% if event.details.get('service_name') %} {{ event.details.service_name }}"
            "{% endif %}\n{% endif %}"
            "{% if event.reason %}Note: {{ event.reason }}\n{% endif %}"
            "{% if tracking_url or event.details.get('tracking_url') %}"
            "Track the package: {{ tracking_url or event.details.tracking_url }}\n{% endif %}"
            "\nThank you."
        ),
    },
    "html": {
        "id": (
            '<!DOCTYPE html><html lang="id"><body style="font-family:sans-serif">'
            "<p>Halo{% if contact and contact.name %} {{ contact.name }}{% endif %},</p>"
            "<p>Status pesanan <b>{{ event.order_id }}</b> sekarang: "
            "<b>{{ event.status | status_label }}</b>"
            " ({{ event.occurred_at | localtime }}).</p><table>"
            "{% if event.awb %}<tr><td>Nomor resi</td><td>{{ event.awb }}</td></tr>"
            "{% endif %}{% if event.details.get('courier') %}<tr><td>Kurir</td><td>"
            "{{ event.details.courier | upper }} {{ event.details.get('service_name') }}"
            "</td></tr>{% endif %}{% if event.reason %}<tr><td>Keterangan</td><td>"
            "{{ event.reason }}</td></tr>{% endif %}</table>"
            "{% if tracking_url or event.details.get('tracking_url') %}<p><a href=\""
            '{{ tracking_url or event.details.tracking_url }}">Lacak paket</a></p>{% endif %}'
            "<p>Terima kasih.</p></body></html>"
        ),
        "en": (
            '<!DOCTYPE html><html lang="en"><body style="font-family:sans-serif">'
            "<p>Hello{% if contact and contact.name %} {{ contact.name }}{% endif %},</p>"
            "<p>Order <b>{{ event.order_id }}</b> is now: "
            "<b>{{ event.status | status_label }}</b>"
            " ({{ event.occurred_at | localtime }}).</p><table>"
            "{% if event.awb %}<tr><td>AWB</td><td>{{ event.awb }}</td></tr>"
            "{% endif %}{% if event.details.get('courier') %}<tr><td>Courier</td><td>"
            "{{ event.details.courier | upper }} {{ event.details.get('service_name') }}"
            "</td></tr>{% endif %}{% if event.reason %}<tr><td>Note</td><td>"
            "{{ event.reason }}</td></tr>{% endif %}</table>"
            "{% if tracking_url or event.details.get('tracking_url') %}<p><a href=\""
            '{{ tracking_url or event.details.tracking_url }}">Track the package</a></p>{% endif %}'
            "<p>Thank you.</p></body></html>"
        ),
    },
}
"""The default parts of mail to the customer (``to: customer``): a greeting by name, the
status, time, AWB, courier, reason and tracking link, and thanks."""


class EmailSink:
    """Sends one mail per delivery through the configured SMTP server."""

    config_type: ClassVar[type[SinkConfig]] = EmailConfig
    default_ordering: ClassVar[Ordering] = "latest"
    parts: ClassVar[tuple[str, ...]] = ("subject", "text", "html")
    default_templates: dict[str, dict[str, str]] = STAFF_TEMPLATES
    """`STAFF_TEMPLATES`; an instance with ``to: customer`` has `CUSTOMER_TEMPLATES`."""

    def __init__(self, name: str, config: EmailConfig) -> None:
        self.name = name
        self.config = config
        self._redactor = Redactor(self.secrets())
        if config.to == "customer":
            self.default_templates = CUSTOMER_TEMPLATES

    @property
    def writes_to_customer(self) -> bool:
        """``to: customer``: default templates come in the customer's registered language."""
        return self.config.to == "customer"

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        # The SMTP server is this block's own (host, TLS, login), so the sink opens its
        # sessions itself rather than through a process-wide connection factory.
        if not isinstance(config, EmailConfig):
            raise TypeError(f"expected EmailConfig, got {type(config).__name__}")
        return cls(name, config)

    def recipients(self, message: Message) -> list[str] | Skipped:
        """The ``To`` addresses for `message`, or why there are none."""
        if self.config.to != "customer":
            return list(self.config.to)
        email = message.contact.email if message.contact is not None else None
        if not email or not email.strip():
            return Skipped(reason=f"no email for order {message.event.order_id}")
        return [email.strip()]

    def preview(self, message: Message) -> str:
        """The headers and both parts `send` would mail, sending nothing."""
        to = self.recipients(message)
        if isinstance(to, Skipped):
            return f"(skipped: {to.reason})"
        mail = build_mail(message, self.config, to, datetime.now(UTC))
        headers = "\n".join(f"{k}: {v}" for k, v in mail.items() if k.lower() != "content-type")
        return (
            f"{headers}\n\n{message.parts.get('text', '')}\n\n-- html --\n"
            f"{message.parts.get('html', '')}"
        )

    async def send(self, message: Message) -> SendResult:
        to = self.recipients(message)
        if isinstance(to, Skipped):
            return to
        mail = build_mail(message, self.config, to, datetime.now(UTC))
        config = self.config
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.smtp_port,
            use_tls=config.tls == "implicit",
            start_tls=config.tls == "starttls",
            tls_context=self._tls_context() if config.tls != "none" else None,
            username=config.username,
            password=config.password,
            timeout=float(config.timeout),
        )
        try:
            async with client:
                refused, _ = await client.send_message(mail)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            return self._all_refused(exc)
        except aiosmtplib.SMTPResponseException as exc:
            return self._reply(exc.code, exc.message)
        except aiosmtplib.SMTPNotSupported as exc:
            return Permanent(reason=f"SMTP server: {self._redactor.redact(str(exc))}")
        except aiosmtplib.SMTPConnectError as exc:  # its timeout too: nothing was sent
            detail = self._redactor.redact(str(exc)) or type(exc).__name__
            return Retry(reason=f"SMTP connection to {config.host} failed: {detail}", unsent=True)
        except (aiosmtplib.SMTPTimeoutError, TimeoutError) as exc:
            return Retry(reason=f"SMTP timed out: {self._redactor.redact(str(exc))}")
        except (aiosmtplib.SMTPServerDisconnected, OSError) as exc:
            detail = self._redactor.redact(str(exc)) or type(exc).__name__
            return Retry(reason=f"SMTP connection to {config.host} failed: {detail}")
        except aiosmtplib.SMTPException as exc:
            # What is left is the server lacking what the configuration demands (STARTTLS,
            # AUTH): retrying cannot help, the configuration has to change.
            detail = self._redactor.redact(str(exc))
            return Permanent(reason=f"SMTP server {config.host}: {detail}")
        if refused:
            listed = ", ".join(
                f"{address} ({reply.code} {_one_line(reply.message)})"
                for address, reply in sorted(refused.items())
            )
            return Delivered(status_code=250, note=self._redactor.redact(f"refused: {listed}"))
        return Delivered(status_code=250)

    def _reply(self, code: int, text: str) -> SendResult:
        reason = self._redactor.redact(f"SMTP {code} {_one_line(text)}")
        if 400 <= code < 500:
            return Retry(reason=reason, status_code=code)
        if 500 <= code < 600:
            return Permanent(reason=reason, status_code=code)
        return Retry(reason=reason, status_code=code)

    def _all_refused(self, exc: aiosmtplib.SMTPRecipientsRefused) -> SendResult:
        listed = ", ".join(
            f"{r.recipient} ({r.code} {_one_line(r.message)})" for r in exc.recipients
        )
        reason = self._redactor.redact(f"every recipient refused: {listed}")
        codes = [r.code for r in exc.recipients]
        code = codes[0] if codes else None
        if any(400 <= c < 500 for c in codes):
            return Retry(reason=reason, status_code=code)
        return Permanent(reason=reason, status_code=code)

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.config.ca_file)

    def secrets(self) -> list[str]:
        """The SMTP password."""
        password = self.config.password
        return [password] if password else []

    async def aclose(self) -> None:
        """Nothing to close: every send opens and ends its own SMTP session."""

    def __repr__(self) -> str:
        return f"EmailSink({self.name!r}, {self.config!r})"


def build_mail(message: Message, config: EmailConfig, to: list[str], now: datetime) -> EmailMessage:
    """The multipart/alternative mail for one delivery."""
    mail = EmailMessage()
    mail["Subject"] = _one_line(message.parts.get("subject", "")) or message.event.order_id
    mail["From"] = config.sender
    mail["To"] = ", ".join(to)
    if config.cc:
        mail["Cc"] = ", ".join(config.cc)
    if config.reply_to:
        mail["Reply-To"] = config.reply_to
    mail["Date"] = format_datetime(now)
    mail["Message-ID"] = message_id(message.delivery_id, config.sender)
    mail.set_content(message.parts.get("text", ""))
    html = message.parts.get("html", "")
    if html.strip():
        mail.add_alternative(html, subtype="html")
    return mail


def message_id(delivery_id: str, sender: str) -> str:
    """The same ``Message-ID`` on every attempt of a delivery, in the sender's domain."""
    domain = parseaddr(sender)[1].rpartition("@")[2] or "kabarin.invalid"
    return f"<{delivery_id}.kabarin@{domain}>"


def _one_line(text: str) -> str:
    return " ".join(text.split())
