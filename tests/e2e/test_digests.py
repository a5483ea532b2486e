"""Digests end to end: the real server sends a scheduled summary to a Slack stand-in, an ERP
webhook and a real SMTP server (aiosmtpd), once per period, across a restart, a ``kill -9``
and two replicas sharing PostgreSQL.

The digests here run ``every: 1s`` so that periods come within a test; each assertion that a
period was not sent twice waits first for a later period to arrive (a positive signal that the
server went on past it).
"""

from __future__ import annotations

import email
import re
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime
from email.message import Message as Mail
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.e2e.conftest import KABARIN, KabarinProcess, Peer, free_port, write_config

EVERY = 1.0


class Inbox:
    """What the SMTP server received, parsed."""

    def __init__(self) -> None:
        self.mails: list[Mail] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.mails.append(email.message_from_bytes(envelope.content))  # type: ignore[arg-type]
        return "250 OK"


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    box, port = Inbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


def digest_config(peer: Peer, smtp_port: int) -> str:
    return f"""
sinks:
  ops-slack:
    type: slack
    webhook_url: {peer.url}/slack
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  owner-mail:
    type: email
    host: 127.0.0.1
    port: {smtp_port}
    tls: none
    from: Kabarin <kabarin@toko.example>
    to: [owner@toko.example]
routes: []
digests:
  pagi:
    every: {EVERY:g}s
    window: 1h
    timezone: Asia/Makassar
    sinks: [ops-slack, erp, owner-mail]
    language: id
"""


def periods(peer: Peer) -> list[str]:
    """The period of every digest the ERP received, in arrival order."""
    return [b["data"]["period"] for b in peer.bodies("/erp") if b["type"] == "digest"]


def wait_periods(server: KabarinProcess, peer: Peer, at_least: int, timeout: float = 30) -> None:
    server.wait_for(lambda: len(periods(peer)) >= at_least, timeout)


def once_each(values: list[Any]) -> None:
    repeated = [v for v, n in Counter(values).items() if n > 1]
    assert repeated == [], f"sent more than once: {repeated}"


def packages(*orders: tuple[str, str]) -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [
            {"order_id": o, "awb": f"AWB-{o}", "service": s, "shipped_at": "2026-03-01 09:00:00"}
            for o, s in orders
        ],
    }


def test_a_digest_due_while_up_arrives_once_on_every_sink_with_the_counts(
    make_server: Callable[..., KabarinProcess], peer: Peer, inbox: tuple[Inbox, int]
) -> None:
    box, smtp_port = inbox
    server = make_server(digest_config(peer, smtp_port))
    server.ingest(packages(("D1", "jne"), ("D2", "jne"), ("D3", "sicepat")))
    pushed_at = time.time()

    # a period after the pushes counts them (the window is an hour)
    def counted() -> bool:
        return any(
            b["data"]["events"]["count"] == 3
            for b in peer.bodies("/erp")
            if datetime.fromisoformat(b["data"]["period"]).timestamp() > pushed_at
        )

    server.wait_for(counted, 30)
    body = next(b for b in peer.bodies("/erp") if b["data"]["events"]["count"] == 3)
    data = body["data"]
    assert data["digest"] == "pagi"
    assert data["by_status"]["shipped"] == {"count": 3, "previous": 0, "delta": 3}
    assert data["by_courier"] == {"jne": 2, "sicepat": 1}
    assert data["dead"]["count"] == 0

    # Slack got the blocks, the owner a mail with a text and an HTML table, for that period
    def everywhere() -> bool:
        return len(peer.requests("/slack")) >= 2 and len(box.mails) >= 2

    server.wait_for(everywhere, 20)
    slack = peer.bodies("/slack")
    assert slack[0]["blocks"][0]["text"]["text"] == "Ringkasan pagi"
    sections = [b["text"]["text"] for m in slack for b in m["blocks"] if b["type"] == "section"]
    assert "*Per kurir*\n• JNE: 2\n• SICEPAT: 1" in sections
    mail = box.mails[-1]
    assert mail["Subject"].startswith("Ringkasan pagi: ") and "WITA" in mail["Subject"]
    kinds = {part.get_content_type() for part in mail.walk()}
    assert {"text/plain", "text/html"} <= kinds

    # a later period has come: none before it was sent twice, on any sink
    wait_periods(server, peer, len(periods(peer)) + 1)
    once_each(periods(peer))
    once_each([s["text"] for s in peer.bodies("/slack")])
    once_each([m["Subject"] for m in box.mails])


def test_a_period_missed_while_down_is_sent_once_at_start(
    make_server: Callable[..., KabarinProcess], peer: Peer, inbox: tuple[Inbox, int]
) -> None:
    server = make_server(digest_config(peer, inbox[1]))
    wait_periods(server, peer, 1)
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean exit
    time.sleep(3 * EVERY)  # three periods pass with Kabarin down
    server.start()
    wait_periods(server, peer, len(periods(peer)) + 2)  # the missed one, and a regular one

    # the first digest the restarted server claims is the latest period missed, sent late,
    # once; none of the periods missed before it is sent (no backlog)
    first_run, _, second_run = server.output().rpartition("Started server process")
    claimed_before = re.findall(r"digest pagi of (\S+): handed to", first_run)
    line = next(x for x in second_run.splitlines() if "handed to" in x)
    first = re.findall(r"digest pagi of (\S+): handed to", line)[0]
    assert "missed while Kabarin was down" in line
    last_claimed = max(claimed_before)
    gap = datetime.fromisoformat(first) - datetime.fromisoformat(last_claimed)
    assert gap.total_seconds() >= 2 * EVERY  # periods were missed ...
    between = [p for p in periods(peer) if last_claimed < p < first]
    assert between == []  # ... and only the latest of them was sent
    assert first in periods(peer)
    once_each(periods(peer))


def test_kill_9_and_restart_does_not_send_a_period_again(
    make_server: Callable[..., KabarinProcess], peer: Peer, inbox: tuple[Inbox, int]
) -> None:
    server = make_server(digest_config(peer, inbox[1]))
    wait_periods(server, peer, 1)

    # once every delivery of the period is recorded as delivered (a machine sink is at least
    # once: an unrecorded one may go again), a kill -9 cannot make the digest go again
    def recorded() -> bool:
        r = server.admin("GET", "/deliveries", params={"order_id": "digest:pagi"})
        items = r.json()["items"]
        return len(items) >= 3 and all(d["state"] == "delivered" for d in items)

    server.wait_for(recorded)
    server.kill9()
    seen = periods(peer)
    server.start()
    wait_periods(server, peer, len(seen) + 1)  # the server went on to a later period
    once_each(periods(peer))
    assert sorted(periods(peer))[: len(seen)] == sorted(seen)


def test_two_servers_on_one_postgresql_send_each_period_once(
    tmp_path: Path, pg_url: str, peer: Peer, inbox: tuple[Inbox, int]
) -> None:
    servers: list[KabarinProcess] = []
    try:
        for n in range(2):
            workdir = tmp_path / f"replica{n}"
            workdir.mkdir()
            config = write_config(
                workdir / "config.yaml", digest_config(peer, inbox[1]), store=pg_url
            )
            servers.append(KabarinProcess(config, workdir))
        for server in servers:
            server.launch()
        for server in servers:
            server.ready()
        wait_periods(servers[0], peer, 4, timeout=40)
        once_each(periods(peer))
        once_each([s["text"] for s in peer.bodies("/slack")])
        sent = [s for s in servers if "digest pagi of" in s.output() and "handed to" in s.output()]
        assert sent, "one of them sent"
    finally:
        for server in servers:
            server.stop()


def test_digest_preview_and_send_from_the_command_line(
    make_server: Callable[..., KabarinProcess], peer: Peer, inbox: tuple[Inbox, int]
) -> None:
    server = make_server(digest_config(peer, inbox[1]).replace(f"every: {EVERY:g}s", "at: '08:00'"))
    server.ingest(packages(("C1", "jne")))
    run = [str(KABARIN), "digest", "--help"]
    assert subprocess.run(run, capture_output=True, check=False).returncode == 0

    def kabarin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KABARIN), "digest", *args, "--config", str(server.config_path)],
            capture_output=True,
            text=True,
            cwd=server.workdir,
            check=False,
        )

    shown = kabarin("preview", "pagi")
    assert shown.returncode == 0, shown.stderr
    assert "Peristiwa: 1 (+1) dibanding periode sebelumnya" in shown.stdout
    assert "  JNE: 1" in shown.stdout
    assert kabarin("preview", "pagi", "--format", "webhook").stdout.count('"digest": "pagi"') == 1
    assert peer.requests("/erp") == []  # a preview sends nothing

    sent = kabarin("send", "pagi")
    assert sent.returncode == 0, sent.stderr
    server.wait_for(lambda: len(peer.requests("/erp")) == 1 and len(inbox[0].mails) == 1)
    assert peer.bodies("/erp")[0]["data"]["period"] is None
    assert kabarin("preview", "nope").returncode == 1
