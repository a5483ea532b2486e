"""The pull tracker end to end: the real server against a fake KiriminAja on loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from gateway.tracking_page import LinkSigner
from tests.e2e.conftest import KABARIN, KabarinProcess, Peer, write_config
from tests.waiting import eventually

API_KEY = "e2e-kiriminaja-api-key"


@dataclass
class FakeKiriminAja:
    """KiriminAja's express tracking: each order's current answer, and every call's time."""

    port: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    instant: set[str] = field(default_factory=set)
    """Instant orders it knows; each answers that no driver has taken it yet."""
    calls: list[tuple[str, float]] = field(default_factory=list)
    callbacks: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def move(self, order_id: str, **details: Any) -> None:
        """The order's tracking now shows these fields (shipped_at, delivered_at, ...)."""
        with self.lock:
            answer = self.orders.setdefault(order_id, _answer(order_id))
            answer["details"].update(details)
            if details.get("delivered_at"):
                answer["details"]["delivered"] = True

    def asked(self, order_id: str | None = None) -> list[float]:
        with self.lock:
            return [at for o, at in self.calls if order_id is None or o == order_id]


def _answer(order_id: str) -> dict[str, Any]:
    return {
        "status": True,
        "text": "ok",
        "method": "shTracking",
        "status_code": None,
        "details": {
            "order_id": order_id,
            "awb": f"AWB-{order_id}",
            "shipped_at": "",
            "delivered": False,
            "delivered_at": "",
            "refunded": False,
            "refunded_at": "",
            "destination": {"name": "Zainal Arifin", "phone": "6287839087416"},
        },
        "histories": [],
    }


@pytest.fixture
def kiriminaja() -> Iterator[FakeKiriminAja]:
    state = FakeKiriminAja()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)))
            if self.headers.get("authorization") != f"Bearer {API_KEY}":
                return self._reply(401, {"status": False, "text": "unauthorized"})
            if self.path == "/api/mitra/set_callback":
                state.callbacks.append(body["url"])
                text = f"Callback di set ke {body['url']}"
                return self._reply(200, {"status": True, "method": "set_callback", "text": text})
            order_id = str(body.get("order_id"))
            with state.lock:
                state.calls.append((order_id, time.monotonic()))
                answer = state.orders.get(order_id)
                reply = json.loads(json.dumps(answer)) if answer else None
            if order_id.startswith("OID-THEIRS"):  # another account's order
                refusal = {"status": False, "text": "Order ini bukan milik akun Anda"}
                return self._reply(200, refusal)
            if reply is None:
                return self._reply(200, {"status": False, "code": 2, "text": "Order not found"})
            self._reply(200, reply)

        def do_GET(self) -> None:
            if self.headers.get("authorization") != f"Bearer {API_KEY}":
                return self._reply(401, {"status": False, "text": "unauthorized"})
            prefix = "/api/mitra/v4/instant/tracking/"
            if not self.path.startswith(prefix):
                return self._reply(404, {"status": False, "text": "no such path"})
            order_id = unquote(self.path[len(prefix) :])
            with state.lock:
                state.calls.append((order_id, time.monotonic()))
                known = order_id in state.instant
            if not known:
                return self._reply(200, {"status": False, "code": 2, "text": "data not found"})
            result: dict[str, Any] = {"order_id": order_id, "tracking_code": None, "date": {}}
            self._reply(200, {"status": True, "text": "success", "result": result})

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    # a short poll: `shutdown` waits for the loop to look, 0.5 s by default
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


def config(peer: Peer, kiriminaja: FakeKiriminAja, pull: str, interval: str = "200ms") -> str:
    return f"""
retry: {{schedule: [200ms, 200ms], jitter: 0}}
kiriminaja:
  api_key: {API_KEY}
  base_url: {kiriminaja.url}
pull:
  enabled: true
  interval: {interval}
{pull}
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: whsec_{"a2FiYXJpbi1lMmUtd2ViaG9vay1zZWNyZXQ="}
routes:
  - name: shipped
    match: {{status: shipped}}
    sinks: [erp]
  - name: delivered
    match: {{status: delivered}}
    sinks: [erp]
  - name: stuck
    match: {{status: stuck}}
    sinks: [erp]
"""


def delivered(peer: Peer, status: str) -> list[dict[str, Any]]:
    """The events the webhook received with this status."""
    return [b["data"] for b in peer.bodies("/erp") if b["data"]["status"] == status]


def wib_now() -> str:
    """Now as KiriminAja writes times (WIB, UTC+7)."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(time.time() + 7 * 3600))


def shipped(order_id: str, at: str) -> dict[str, Any]:
    return {"method": "shipped_packages", "data": [{"order_id": order_id, "shipped_at": at}]}


def test_missed_pushes_are_pulled_after_a_restart_and_the_late_push_is_a_duplicate(
    make_server: Callable[..., KabarinProcess], peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    server = make_server(config(peer, kiriminaja, "  stale_after: 1h\n  gap: 1s\n  rate: 5"))
    kiriminaja.move("OID-1", shipped_at=wib_now())
    assert server.ingest(shipped("OID-1", wib_now())) == {"accepted": 1, "duplicates": 0}
    server.wait_for(lambda: len(delivered(peer, "shipped")) == 1)
    (newest,) = server.admin("GET", "/pushes", params={"limit": 1}).json()["items"]
    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean stop

    # While Kabarin is down the parcel arrives; its push is missed. Kabarin comes back once
    # the newest push is older than pull.gap, and says it saw the gap.
    pushed_at = datetime.fromisoformat(newest["received_at"])
    gap_over = pushed_at + timedelta(seconds=1.1)
    asyncio.run(eventually(lambda: datetime.now(UTC) > gap_over))
    delivered_at = wib_now()
    kiriminaja.move("OID-1", delivered_at=delivered_at)
    server.start()
    server.wait_for(
        lambda: "(longer than pull.gap): asking about every open order" in server.output()
    )

    server.wait_for(lambda: len(delivered(peer, "delivered")) == 1)
    (event,) = delivered(peer, "delivered")
    assert event["order_id"] == "OID-1" and event["source"] == "pull"

    # KiriminAja's own push of the same update comes late: the same event, stored once.
    late = {
        "method": "finished_packages",
        "data": [{"order_id": "OID-1", "finished_at": delivered_at}],
    }
    assert server.ingest(late) == {"accepted": 0, "duplicates": 1}

    timeline = server.admin("GET", "/orders/OID-1").json()
    statuses = [(e["status"], e["source"]) for e in timeline["events"]]
    assert ("shipped", "push") in statuses and ("delivered", "pull") in statuses
    assert sorted(d["route"] for d in timeline["deliveries"]) == ["delivered", "shipped"]
    server.wait_for(lambda: all(d["state"] == "delivered" for d in _deliveries(server)))
    assert len(delivered(peer, "shipped")) == 1 and len(delivered(peer, "delivered")) == 1
    # The catch-up asks once: it says it is done, and a pass a second later asks nothing.
    server.wait_for(lambda: "pull: caught up (1 order asked about)" in server.output())
    seen = _last_pass(server)
    server.wait_for(lambda: _last_pass(server) > seen + 1)
    assert len(kiriminaja.asked("OID-1")) == 1


def _deliveries(server: KabarinProcess) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = server.admin("GET", "/orders/OID-1").json()["deliveries"]
    return items


def _last_pass(server: KabarinProcess) -> float:
    text = httpx.get(f"{server.url}/metrics").text
    for line in text.splitlines():
        if line.startswith("kabarin_pull_last_pass_timestamp_seconds "):
            return float(line.split()[1])
    return 0.0


def test_a_stuck_parcel_alerts_once_until_it_moves(
    make_server: Callable[..., KabarinProcess], peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    pull = "  stale_after: 1h\n  gap: 1h\n  alert_after: {processed: 1s, shipped: 1s}"
    server = make_server(config(peer, kiriminaja, pull))
    processed = {"method": "processed_packages", "data": [{"order_id": "OID-2", "awb": "A2"}]}
    server.ingest(processed)

    server.wait_for(lambda: len(delivered(peer, "stuck")) == 1)
    (alert,) = delivered(peer, "stuck")
    assert alert["order_id"] == "OID-2" and alert["details"]["stuck_in"] == "processed"
    assert alert["details"]["stuck_for"] >= 1

    # Several passes later, still one alert.
    seen = _last_pass(server)
    server.wait_for(lambda: _last_pass(server) > seen + 1)
    assert len(delivered(peer, "stuck")) == 1

    # It moves, then waits again: one more alert, for its new status.
    server.ingest(shipped("OID-2", wib_now()))
    server.wait_for(lambda: len(delivered(peer, "stuck")) == 2)
    assert delivered(peer, "stuck")[1]["details"]["stuck_in"] == "shipped"
    seen = _last_pass(server)
    server.wait_for(lambda: _last_pass(server) > seen + 1)
    assert len(delivered(peer, "stuck")) == 2
    assert kiriminaja.asked() == []


def test_every_open_order_is_asked_once_a_pass_and_stuck_ones_still_alert(
    make_server: Callable[..., KabarinProcess], peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    """25 open orders whose status does not change, asked about every second at 10 a second:
    a pass takes 2.5 s, and the orders answered first are due again long before it ends. They
    used to be asked again first: ten orders over and over, the newer ones and the instant one
    never, no pass ever ended, and no stuck alert was raised."""
    pull = "  stale_after: 1s\n  gap: 1h\n  rate: 10\n  alert_after: {shipped: 3s, picked_up: 3s}"
    server = make_server(config(peer, kiriminaja, pull, interval="1s"))
    express = [f"OID-{i:02}" for i in range(24)]
    items = []
    for order_id in express:  # one push: the tracker sees them all at once
        at = wib_now()
        kiriminaja.move(order_id, shipped_at=at, awb=None)  # no news in any answer
        items.append({"order_id": order_id, "shipped_at": at})
    assert server.ingest({"method": "shipped_packages", "data": items})["accepted"] == 24
    kiriminaja.instant.add("OID-I")
    taken = {"order_id": "OID-I", "status": "picked_up", "event_date": wib_now()}
    assert server.ingest({"method": "update_instant_packages", "data": taken})["accepted"] == 1
    everyone = {*express, "OID-I"}

    def asked() -> list[str]:
        with kiriminaja.lock:
            return [order_id for order_id, _ in kiriminaja.calls]

    server.wait_for(lambda: set(asked()) == everyone, timeout=30)
    first = asked()[:25]
    assert sorted(first) == sorted(everyone), first  # the first pass asks each once
    server.wait_for(lambda: len(delivered(peer, "stuck")) == 25, timeout=30)
    stuck = {e["order_id"]: e["details"]["stuck_in"] for e in delivered(peer, "stuck")}
    assert stuck == {o: "picked_up" if o == "OID-I" else "shipped" for o in everyone}
    server.wait_for(lambda: len(asked()) >= 50, timeout=30)
    assert sorted(asked()[25:50]) == sorted(everyone)  # and so does the next
    metric = _metric(server, "kabarin_pull_oldest_due_age_seconds")
    assert metric is not None and metric >= 0


def _metric(server: KabarinProcess, name: str) -> float | None:
    for line in httpx.get(f"{server.url}/metrics").text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return None


def test_tracking_calls_keep_to_the_rate(
    make_server: Callable[..., KabarinProcess], peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    server = make_server(config(peer, kiriminaja, "  stale_after: 1s\n  gap: 1h\n  rate: 4/s"))
    for i in range(8):
        kiriminaja.move(f"OID-{i}", shipped_at="2024-01-01 09:00:00")
        server.ingest(shipped(f"OID-{i}", "2024-01-01 09:00:00"))

    server.wait_for(lambda: len(kiriminaja.asked()) >= 10, timeout=30)
    times = sorted(kiriminaja.asked())[:10]
    busiest = max(sum(1 for t in times if start <= t < start + 1.0) for start in times)
    # 4 a second; one more for the time a request spends on its way.
    assert busiest <= 5, times


def test_the_command_line_follows_pulls_and_registers_the_callback(
    tmp_path: Path, peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    path = write_config(tmp_path / "config.yaml", config(peer, kiriminaja, "  gap: 1h"))

    def kabarin(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(KABARIN), *args, "--config", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,
        )

    added = kabarin("track", "add", "OID-9", "OID-9")
    assert added.returncode == 0 and "1 order added" in added.stdout, added.stderr
    kiriminaja.move("OID-9", shipped_at="2024-06-01 09:00:00")
    first = kabarin("pull", "OID-9")
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "OID-9: new shipped, processed"
    again = kabarin("pull", "OID-9")
    assert again.stdout.strip() == "OID-9: nothing new"
    unknown = kabarin("pull", "OID-NOPE")
    assert unknown.stdout.startswith("OID-NOPE: not found")
    theirs = kabarin("pull", "OID-THEIRS-1", "OID-9")
    assert theirs.returncode == 1, theirs.stderr  # one order was refused
    lines = theirs.stdout.strip().splitlines()
    assert lines[0].startswith("OID-THEIRS-1: skipped: KiriminAja refused"), theirs.stdout
    assert "Order ini bukan milik akun Anda" in lines[0]
    assert lines[1] == "OID-9: nothing new"  # the other order was asked all the same

    done = kabarin("register-callback", "--url", "https://toko.example/kiriminaja/push")
    assert done.returncode == 0, done.stderr
    assert "Callback di set ke https://toko.example/kiriminaja/push" in done.stdout
    assert kiriminaja.callbacks == ["https://toko.example/kiriminaja/push"]


def test_the_tracking_apis_proof_of_delivery_is_on_the_tracking_page(
    make_server: Callable[..., KabarinProcess], peer: Peer, kiriminaja: FakeKiriminAja
) -> None:
    """A delivery the pull tracker finds first keeps the answer's photo and signature, and the
    customer's tracking page links to them."""
    secret = "pull-e2e-tracking-secret-0123456789"
    page = f"tracking_page: {{enabled: true, secret: {secret}, public_url: http://lacak.example}}\n"
    server = make_server(config(peer, kiriminaja, "  stale_after: 1s\n  gap: 1h") + page)
    photo = "https://pod.example/1626253243482P.jpeg"
    signature = "https://pod.example/1626253255242S.jpeg"
    kiriminaja.move("OID-POD", shipped_at=wib_now())
    assert server.ingest(shipped("OID-POD", wib_now())) == {"accepted": 1, "duplicates": 0}
    images = {"camera_img": photo, "signature_img": signature, "pop_img": None}
    kiriminaja.move("OID-POD", delivered_at=wib_now(), images=images)
    server.wait_for(lambda: len(delivered(peer, "delivered")) == 1, timeout=20)
    (event,) = server.events(order_id="OID-POD", status="delivered")
    assert event["details"]["proof_of_delivery"] == {"photo": photo, "signature": signature}
    link = LinkSigner(secret, "http://lacak.example", 60).sign(
        "default", "OID-POD", datetime.now(UTC) + timedelta(hours=1)
    )
    html = httpx.get(f"{server.url}/t/{link}").text
    assert f'href="{photo}"' in html and f'href="{signature}"' in html and "Terkirim" in html
