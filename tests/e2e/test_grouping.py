"""Grouped routes end to end: `kabarin serve`, a Slack stand-in and a real SMTP server.

Fifty cancellations inside the window reach Slack as one message that lists them and the
warehouse as one mail; later ones go together in the next interval's message; a ``kill -9``
while a group waits loses nothing and sends nothing twice. (A waiting group surviving a reopen
of the store, and its message claimed again once, is in tests/test_store_contract.py for both
backends; the process here runs on SQLite.)
"""

from __future__ import annotations

import email
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import Envelope, Session

from .conftest import KabarinProcess, Peer

WAIT, INTERVAL = 2.0, 3.0


@dataclass
class Mailbox:
    mails: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.content, bytes)
        parsed = email.message_from_bytes(envelope.content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        with self.lock:
            self.mails.append(parsed)
        return "250 OK queued"


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def grouped_routes(peer: Peer, smtp_port: int | None = None) -> str:
    mail = (
        f"""
  gudang:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    tls: none
    from: "Kabarin <kabarin@toko.example>"
    to: [gudang@toko.example]
    language: en
"""
        if smtp_port is not None
        else ""
    )
    return f"""
sinks:
  ops-slack:
    type: slack
    webhook_url: {peer.url}/slack
    rate_limit: 20/s
    language: en
{mail}
routes:
  - name: cancellations
    match: {{status: [canceled, returned, problem]}}
    sinks: [ops-slack{", gudang" if smtp_port is not None else ""}]
    group: {{by: [status], wait: {WAIT}s, interval: {INTERVAL}s}}
"""


def cancellations(orders: list[str]) -> dict[str, Any]:
    return {
        "method": "canceled_packages",
        "data": [
            {
                "order_id": order,
                "date": "2024-05-05 09:00:00",
                "canceled_at": "2024-05-05 09:30:00",
                "reason": f"3pl rejection {order}",
            }
            for order in orders
        ],
    }


def listed(message: dict[str, Any]) -> list[str]:
    """The order ids a Slack message lists (its list sections, after the heading)."""
    lines = [
        line
        for block in message["blocks"][1:]
        for line in block["text"]["text"].splitlines()
        if line.startswith("• ")
    ]
    return [line.split("*")[1] for line in lines]


def test_fifty_cancellations_arrive_as_one_slack_message_and_one_mail_then_the_next_interval(
    make_server: Callable[..., KabarinProcess], peer: Peer, smtp: tuple[Mailbox, int]
) -> None:
    box, port = smtp
    server = make_server(grouped_routes(peer, port))
    orders = [f"OID-{i:03d}" for i in range(50)]
    started = time.monotonic()
    for chunk in range(0, 50, 10):  # five pushes inside the window
        assert server.push(cancellations(orders[chunk : chunk + 10])).status_code == 200
    server.wait_for(lambda: len(peer.requests("/slack")) == 1 and len(box.mails) == 1, timeout=20)
    (first,) = peer.requests("/slack")
    assert first.at - started >= WAIT - 0.5, "the first message waits for the group"
    message = first.json()
    assert message["text"] == "*50 order updates* (status: Canceled)"
    assert listed(message) == orders
    assert "3pl rejection OID-049" in message["blocks"][-1]["text"]["text"]
    (mail,) = box.mails
    assert mail["Subject"] == "50 order updates: status: Canceled"
    html = mail.get_body(("html",))
    assert html is not None
    table = html.get_content()
    assert table.count("<tr>") == 51 and "OID-000" in table and "3pl rejection OID-049" in table
    text = mail.get_body(("plain",))
    assert text is not None and text.get_content().count("\n- OID-") == 50

    later = ["OID-LATE-1", "OID-LATE-2", "OID-LATE-3"]
    for order in later:
        assert server.push(cancellations([order])).status_code == 200
    server.wait_for(lambda: len(peer.requests("/slack")) == 2 and len(box.mails) == 2, timeout=20)
    second = peer.requests("/slack")[1]
    assert listed(second.json()) == later
    assert second.at - first.at >= INTERVAL - 0.5, "at most one message per interval"
    assert box.mails[1]["Subject"] == "3 order updates: status: Canceled"
    # each event in exactly one message: two messages, and nothing more after a while
    assert server.push(cancellations(["OID-LAST"])).status_code == 200
    server.wait_for(lambda: len(peer.requests("/slack")) == 3 and len(box.mails) == 3, timeout=20)
    assert [listed(r.json()) for r in peer.requests("/slack")] == [orders, later, ["OID-LAST"]]
    last = box.mails[2].get_body(("plain",))
    assert last is not None and "OID-LAST" in last.get_content()


def test_a_group_waiting_through_a_kill_9_is_sent_once_after_the_restart(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(grouped_routes(peer))
    orders = [f"OID-K{i}" for i in range(5)]
    assert server.push(cancellations(orders)).status_code == 200
    pending = server.admin("GET", "/deliveries", params={"state": "pending"}).json()["items"]
    assert [d["route"] for d in pending] == ["cancellations"]
    assert pending[0]["order_id"].startswith("grp_"), "a message on its group's lane"
    server.kill9()  # while the group waits (WAIT has not passed)
    assert peer.requests("/slack") == []
    server.start()
    server.wait_for(lambda: len(peer.requests("/slack")) == 1, timeout=20)
    assert listed(peer.requests("/slack")[0].json()) == orders
    # a positive signal before looking for a repeat: the group's next message arrives
    assert server.push(cancellations(["OID-AFTER"])).status_code == 200
    server.wait_for(lambda: len(peer.requests("/slack")) == 2, timeout=20)
    sent = [order for r in peer.requests("/slack") for order in listed(r.json())]
    assert sent == [*orders, "OID-AFTER"], "each event in exactly one message"
    # the peer has a request before its answer is read and the outcome committed
    server.wait_for(lambda: len(_delivered(server)) == 2)


def _delivered(server: KabarinProcess) -> list[dict[str, object]]:
    items: list[dict[str, object]] = server.admin(
        "GET", "/deliveries", params={"state": "delivered"}
    ).json()["items"]
    return items
