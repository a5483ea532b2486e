"""The email sink end to end against a real SMTP server (aiosmtpd) the test starts.

Every case goes through the sink's real `send()` with parts rendered by `Templates` from the
kind's built-in templates (or the test's), and reads what the server received.
"""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any
from zoneinfo import ZoneInfo

import msgspec
import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session

from gateway.delivery.attempts import send_once
from gateway.events import Contact
from gateway.redaction import Redactor, mask_email
from gateway.templating import Templates
from gateway.units import FieldError, dec_hook
from sinks.base import Delivered, Message, Permanent, Retry, SinkDeps, Skipped
from sinks.email import EmailConfig, EmailSink
from tests.test_sinks_shared import make_event, make_message

USER, PASSWORD = "kabarin@toko.example", "smtp-Pa55-word-991"


@dataclass
class Mailbox:
    """What the server saw, and how it answers."""

    mails: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    sessions: list[Session] = field(default_factory=list)
    logins: list[tuple[bytes, bytes]] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)
    """Recipient → the RCPT reply that refuses it."""
    data_reply: str = "250 OK queued"

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, _: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        if not self.data_reply.startswith("250"):
            return self.data_reply
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        self.mails.append((envelope, parsed))
        self.sessions.append(session)
        return self.data_reply

    def authenticate(
        self, server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        self.logins.append((data.login, data.password))
        ok = (data.login, data.password) == (USER.encode(), PASSWORD.encode())
        return AuthResult(success=ok, handled=False)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class SmtpServer:
    box: Mailbox
    port: int
    ca_file: str | None = None


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


def start(box: Mailbox, **server: Any) -> Iterator[SmtpServer]:
    port = free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        authenticator=box.authenticate,
        **server,
    )
    controller.start()
    try:
        yield SmtpServer(box, port)
    finally:
        controller.stop()


@pytest.fixture
def plain() -> Iterator[SmtpServer]:
    """No TLS at all; AUTH allowed in clear (a relay on a private network)."""
    yield from start(Mailbox(), auth_require_tls=False)


@pytest.fixture
def starttls(ca: tuple[trustme.CA, str]) -> Iterator[SmtpServer]:
    """STARTTLS required before anything else, with a certificate the test's CA issued."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca[0].issue_cert("127.0.0.1").configure_cert(context)
    for server in start(Mailbox(), tls_context=context, require_starttls=True):
        server.ca_file = ca[1]
        yield server


def sink_for(server: SmtpServer, **block: Any) -> EmailSink:
    config = msgspec.convert(
        {
            "type": "email",
            "host": "127.0.0.1",
            "port": server.port,
            "tls": "none",
            "from": "Toko Kabarin <kabarin@toko.example>",
            "to": ["gudang@toko.example"],
            **block,
        },
        EmailConfig,
        dec_hook=dec_hook,
    )
    return EmailSink.build("mail", config, SinkDeps())


def rendered(sink: EmailSink, contact: Contact | None = None, **event: Any) -> Message:
    """A message whose parts are the sink's built-in templates rendered for the event."""
    templates = Templates(timezone=ZoneInfo("Asia/Jakarta"))
    evt = make_event(**event)
    parts = templates.render_parts(
        templates.sources({}, sink), event=evt, contact=contact, route="r", language="id"
    )
    return make_message(event=evt, contact=contact, parts=parts)


async def test_plain_smtp_with_auth_sends_both_parts_and_every_header(plain: SmtpServer) -> None:
    sink = sink_for(
        plain,
        username=USER,
        password=PASSWORD,
        cc=["cs@toko.example"],
        reply_to="Layanan Pelanggan <cs@toko.example>",
    )
    contact = Contact(order_id="OID-1001", name="Dédé Sulaiman", email="dede@pelanggan.example")
    message = rendered(
        sink, contact, reason="Alamat tidak ditemukan — rumah <b>kosong</b> & pagar terkunci"
    )

    result = await sink.send(message)

    assert result == Delivered(status_code=250)
    assert plain.box.logins == [(USER.encode(), PASSWORD.encode())]
    [(envelope, mail)] = plain.box.mails
    assert envelope.mail_from == "kabarin@toko.example"
    assert sorted(envelope.rcpt_tos) == ["cs@toko.example", "gudang@toko.example"]
    assert mail["From"] == "Toko Kabarin <kabarin@toko.example>"
    assert mail["To"] == "gudang@toko.example"
    assert mail["Cc"] == "cs@toko.example"
    assert mail["Reply-To"] == "Layanan Pelanggan <cs@toko.example>"
    assert mail["Subject"] == "Dikirim: pesanan OID-1001 (resi JP1234567890)"
    assert mail["Message-ID"] == "<dlv_01HZX3K9Q2.kabarin@toko.example>"
    assert mail["Date"] is not None and mail["Date"].datetime.tzinfo is not None
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    plain_text, html_text = text.get_content(), html.get_content()
    # Mail to staff: the facts, not a letter to the customer.
    assert plain_text.startswith("Pesanan OID-1001: Dikirim\r\nWaktu: 05 Mei 2024 16:30 WIB")
    assert "Keterangan: Alamat tidak ditemukan — rumah <b>kosong</b> & pagar terkunci" in plain_text
    assert "Resi: JP1234567890" in plain_text
    assert "Kurir: JNE REG" in plain_text
    for text_part in (plain_text, html_text):
        assert "Dédé" not in text_part and "Halo" not in text_part
        assert "Terima kasih" not in text_part
    # Data from the push is escaped in the HTML part, the template's own markup is not.
    assert "rumah &lt;b&gt;kosong&lt;/b&gt; &amp; pagar" in html_text
    assert "<b>OID-1001</b>" in html_text


async def test_a_resend_is_the_same_mail(plain: SmtpServer) -> None:
    sink = sink_for(plain)
    message = rendered(sink)
    assert isinstance(await sink.send(message), Delivered)
    assert isinstance(await sink.send(msgspec.structs.replace(message, attempt=2)), Delivered)
    first, second = (mail for _, mail in plain.box.mails)
    assert first["Message-ID"] == second["Message-ID"]


async def test_starttls_is_used_when_required_and_offered(starttls: SmtpServer) -> None:
    sink = sink_for(
        starttls, tls="starttls", ca_file=starttls.ca_file, username=USER, password=PASSWORD
    )
    result = await sink.send(rendered(sink))
    assert result == Delivered(status_code=250)
    assert starttls.box.sessions[0].ssl is not None  # the mail went over TLS
    assert starttls.box.logins == [(USER.encode(), PASSWORD.encode())]


async def test_starttls_not_offered_fails_the_delivery_instead_of_sending_in_clear(
    plain: SmtpServer,
) -> None:
    sink = sink_for(plain, tls="starttls")
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent)
    assert "STARTTLS" in result.reason
    assert plain.box.mails == []


async def test_an_untrusted_certificate_is_not_accepted(starttls: SmtpServer) -> None:
    sink = sink_for(starttls, tls="starttls")  # the system CAs do not know the test's CA
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and "certificate" in result.reason.lower()
    assert starttls.box.mails == []


async def test_a_wrong_password_is_permanent_and_never_shown(plain: SmtpServer) -> None:
    sink = sink_for(plain, username=USER, password="not-the-password-123")
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.status_code == 535
    assert "not-the-password-123" not in result.reason


async def test_550_for_the_only_recipient_is_permanent(plain: SmtpServer) -> None:
    plain.box.refuse["gudang@toko.example"] = "550 5.1.1 No such user"
    sink = sink_for(plain)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Permanent) and result.status_code == 550
    assert "550" in result.reason and "No such user" in result.reason
    assert mask_email("gudang@toko.example") in result.reason
    assert "gudang@toko.example" not in result.reason


async def test_451_is_retried(plain: SmtpServer) -> None:
    plain.box.data_reply = "451 4.3.0 Mail server temporarily rejected message"
    sink = sink_for(plain)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and result.status_code == 451
    assert "temporarily rejected" in result.reason


async def test_a_greylisted_recipient_is_retried(plain: SmtpServer) -> None:
    plain.box.refuse["gudang@toko.example"] = "451 4.7.1 Greylisted, try again later"
    sink = sink_for(plain)
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and result.status_code == 451


async def test_a_partial_refusal_is_delivered_with_the_refused_addresses(
    plain: SmtpServer,
) -> None:
    plain.box.refuse["lama@toko.example"] = "550 5.1.1 Mailbox unavailable"
    sink = sink_for(plain, to=["gudang@toko.example", "lama@toko.example"])
    result = await sink.send(rendered(sink))
    assert isinstance(result, Delivered) and result.note is not None
    assert mask_email("lama@toko.example") in result.note
    assert "550" in result.note and "Mailbox unavailable" in result.note
    assert mask_email("gudang@toko.example") not in result.note
    [(envelope, _)] = plain.box.mails
    assert envelope.rcpt_tos == ["gudang@toko.example"]


async def test_the_customer_gets_the_mail_at_the_contact_address(plain: SmtpServer) -> None:
    sink = sink_for(plain, to="customer")
    contact = Contact(order_id="OID-1001", name="Siti", email="siti@pelanggan.example")
    assert isinstance(await sink.send(rendered(sink, contact)), Delivered)
    [(envelope, mail)] = plain.box.mails
    assert envelope.rcpt_tos == ["siti@pelanggan.example"]
    assert mail["To"] == "siti@pelanggan.example"
    # The customer's default: a letter to them, with no link to the shop's dashboard.
    text = mail.get_body(("plain",))
    assert text is not None
    body = text.get_content()
    assert body.startswith("Halo Siti,") and "Terima kasih." in body
    assert "Nomor resi: JP1234567890" in body and "/ui/" not in body


@pytest.mark.parametrize("language", ["id", "en"])
async def test_staff_mail_links_to_the_orders_dashboard_page_when_the_public_url_is_set(
    plain: SmtpServer, language: str
) -> None:
    sink = sink_for(plain, language=language)
    templates = Templates(
        timezone=ZoneInfo("Asia/Jakarta"), public_url="https://kabarin.toko.example/"
    )
    evt = make_event(order_id="INV/2024/001")
    parts = templates.render_parts(
        templates.sources({}, sink), event=evt, contact=None, route="r", language=language
    )
    assert isinstance(await sink.send(make_message(event=evt, parts=parts)), Delivered)
    [(_, mail)] = plain.box.mails
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and html is not None
    link = "https://kabarin.toko.example/ui/orders/view?id=INV%2F2024%2F001"
    label = {"id": "Dasbor", "en": "Dashboard"}[language]
    assert f"{label}: {link}" in text.get_content()
    assert f'<a href="{link}">' in html.get_content()


def test_staff_mail_has_no_link_without_a_public_url() -> None:
    sink = sink_for(SmtpServer(Mailbox(), 2525))
    shown = sink.preview(rendered(sink))
    assert "Pesanan OID-1001: Dikirim" in shown and "Resi: JP1234567890" in shown
    assert "Dasbor" not in shown and "href" not in shown


@pytest.mark.parametrize(
    "contact",
    [None, Contact(order_id="OID-1001", name="Siti", phone="081234567890")],
    ids=["no-contact", "no-email"],
)
async def test_no_customer_email_is_skipped(plain: SmtpServer, contact: Contact | None) -> None:
    sink = sink_for(plain, to="customer")
    result = await sink.send(rendered(sink, contact))
    assert result == Skipped(reason="no email for order OID-1001")
    assert "skipped" in sink.preview(rendered(sink, contact))


async def test_no_server_listening_is_retried() -> None:
    sink = sink_for(SmtpServer(Mailbox(), free_port()))
    result = await sink.send(rendered(sink))
    assert isinstance(result, Retry) and result.status_code is None
    assert "SMTP connection to 127.0.0.1 failed" in result.reason
    assert result.unsent  # nothing reached a server: quick retries are safe


@pytest.mark.parametrize(
    ("block", "key"),
    [
        ({"from": "not an address"}, "from"),
        ({"to": []}, "to"),
        ({"to": ["ok@toko.example", "nope"]}, "to"),
        ({"cc": ["nope"]}, "cc"),
        ({"tls": "ssl"}, "tls"),
        ({"password": "x"}, "password"),
    ],
)
def test_bad_blocks_are_refused_at_their_key(block: dict[str, Any], key: str) -> None:
    base = {"type": "email", "host": "smtp.toko.example", "from": "a@toko.example", "to": ["b@c.d"]}
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.convert({**base, **block}, EmailConfig, dec_hook=dec_hook)
    cause = caught.value.__cause__
    if isinstance(cause, FieldError):
        assert cause.key[0] == key
    else:  # a type error: msgspec names the key itself
        assert f"`$.{key}`" in str(caught.value)


def test_default_ports_follow_tls() -> None:
    base = {"type": "email", "host": "h.example", "from": "a@toko.example", "to": ["b@c.d"]}
    ports = {
        tls: msgspec.convert({**base, "tls": tls}, EmailConfig).smtp_port
        for tls in ("starttls", "implicit", "none")
    }
    assert ports == {"starttls": 587, "implicit": 465, "none": 25}


def test_preview_shows_headers_and_both_parts() -> None:
    sink = sink_for(SmtpServer(Mailbox(), 2525))
    shown = sink.preview(rendered(sink))
    assert "Subject: Dikirim: pesanan OID-1001" in shown
    assert "Message-ID: <dlv_01HZX3K9Q2.kabarin@toko.example>" in shown
    assert "-- html --" in shown and "Pesanan OID-1001: Dikirim" in shown


async def test_the_attempt_row_keeps_the_refused_addresses_masked(plain: SmtpServer) -> None:
    plain.box.refuse["lama@toko.example"] = "550 5.1.1 Mailbox unavailable"
    sink = sink_for(plain, to=["gudang@toko.example", "lama@toko.example"])
    result, attempt = await send_once(
        sink, rendered(sink), clock=lambda: datetime.now(UTC), redactor=Redactor(())
    )
    assert isinstance(result, Delivered) and attempt.outcome == "delivered"
    assert attempt.error is not None and mask_email("lama@toko.example") in attempt.error
    assert "lama@toko.example" not in attempt.error
