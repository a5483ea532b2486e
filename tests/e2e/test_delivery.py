"""Routes and delivery end to end: `kabarin serve`, a real ERP receiver and a Slack stand-in."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from standardwebhooks.webhooks import Webhook

from .conftest import FIXTURES, KabarinProcess, Peer

SECRET = "whsec_" + base64.b64encode(b"kabarin-e2e-signing-key-32bytes!").decode()
KABARIN = Path(sys.executable).with_name("kabarin")


def sinks_and_routes(
    peer: Peer,
    *,
    ordering: str | None = "all",
    schedule: str = "[200ms, 200ms, 200ms]",
    slack: bool = True,
) -> str:
    slack_sink = (
        f"""
  ops-slack:
    type: slack
    webhook_url: {peer.url}/slack
    rate_limit: 20/s
    language: en
"""
        if slack
        else ""
    )
    slack_route = (
        """
  - name: trouble-to-slack
    match:
      status: [canceled, rejected, problem]
    sinks: [ops-slack]
"""
        if slack
        else ""
    )
    return f"""
retry:
  schedule: {schedule}
  jitter: 0
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: {SECRET}
    {f"ordering: {ordering}" if ordering else "# ordering: the default"}
    circuit_breaker: {{cooldown: 300ms, max_cooldown: 1s}}
    headers:
      X-Shop: toko-kabarin
{slack_sink}
routes:
  - name: everything-to-erp
    sinks: [erp]
{slack_route}
"""


def one(order_id: str, method: str, **fields: Any) -> dict[str, Any]:
    return {"method": method, "data": [{"order_id": order_id, **fields}]}


def deliveries(server: KabarinProcess, **params: Any) -> list[dict[str, Any]]:
    r = server.admin("GET", "/deliveries", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def kabarin(server: KabarinProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KABARIN), *args, "--config", str(server.config_path)],
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_push_reaches_the_erp_signed_and_slack(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(sinks_and_routes(peer))
    assert server.push((FIXTURES / "canceled_packages.json").read_bytes()).status_code == 200

    server.wait_for(lambda: len(peer.requests("/erp")) == 1 and len(peer.requests("/slack")) == 1)
    erp = peer.requests("/erp")[0]
    payload = Webhook(SECRET).verify(erp.body, erp.headers)
    assert payload["type"] == "shipment.canceled"
    assert payload["data"]["order_id"] == "X"
    assert payload["data"]["reason"] == "3pl rejection"
    assert erp.headers["x-shop"] == "toko-kabarin"

    slack = peer.requests("/slack")[0].json()
    assert "X" in slack["text"]
    assert slack["blocks"]
    # the outcome is recorded just after the peer's answer
    server.wait_for(lambda: deliveries(server, sink="erp")[0]["state"] == "delivered")
    (delivery,) = deliveries(server, sink="erp")
    assert erp.headers["webhook-id"] == delivery["id"]


def test_failing_receiver_gets_the_event_after_retries(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.script = [(503, {}), (500, {}), (502, {})]
    server = make_server(sinks_and_routes(peer, slack=False))
    server.push((FIXTURES / "finished_packages.json").read_bytes())
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    assert len(peer.requests("/erp", ok_only=False)) == 4
    server.wait_for(lambda: deliveries(server)[0]["state"] == "delivered")
    (d,) = deliveries(server)
    detail = server.admin("GET", f"/deliveries/{d['id']}").json()
    assert [a["status_code"] for a in detail["attempts"]] == [503, 500, 502, 200]
    assert [a["outcome"] for a in detail["attempts"]] == ["retry", "retry", "retry", "delivered"]
    assert detail["delivery"]["state"] == "delivered"


def test_400_is_a_dead_letter_that_replay_delivers(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.script = [(400, {})]
    server = make_server(sinks_and_routes(peer, slack=False))
    server.push((FIXTURES / "shipped_packages.json").read_bytes())
    server.wait_for(lambda: [d["state"] for d in deliveries(server)] == ["dead"])

    listed = kabarin(server, "deliveries", "--state", "dead")
    assert listed.returncode == 0, listed.stderr
    (dead,) = deliveries(server, state="dead")
    assert dead["id"] in listed.stdout
    assert "400" in (dead["last_error"] or "")

    replayed = kabarin(server, "replay", "--delivery", dead["id"])
    assert replayed.returncode == 0, replayed.stderr
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    server.wait_for(lambda: deliveries(server)[0]["state"] == "delivered")
    first, second = peer.requests("/erp", ok_only=False)
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == dead["id"]


def test_replay_dead_by_filter_through_the_admin_api(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.script = [(422, {}), (422, {})]
    server = make_server(sinks_and_routes(peer, slack=False))
    server.push(one("A-1", "shipped_packages", shipped_at="2024-01-01 10:00:00"))
    server.push(one("A-2", "shipped_packages", shipped_at="2024-01-01 10:00:00"))
    server.wait_for(lambda: len(deliveries(server, state="dead")) == 2)
    r = server.admin("POST", "/deliveries/replay", params={"sink": "erp"})
    assert r.status_code == 200 and r.json() == {"replayed": 2}
    server.wait_for(lambda: len(peer.requests("/erp")) == 2)


def test_429_retry_after_is_waited_out(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.script = [(429, {"Retry-After": "1"})]  # longer than the retry schedule's 200ms
    server = make_server(sinks_and_routes(peer, slack=False))
    server.push((FIXTURES / "shipped_packages.json").read_bytes())
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    first, second = peer.requests("/erp", ok_only=False)
    assert first.status == 429
    assert second.at - first.at >= 0.9


def test_kill_9_with_pending_deliveries_loses_nothing(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(
        sinks_and_routes(peer, slack=False, schedule="[" + ", ".join(["300ms"] * 10) + "]")
    )
    peer.default = (503, {})  # the ERP is down while pushes come in
    for first in range(0, 30, 10):  # 30 orders in three pushes, each taken by the intake
        orders = [
            {"order_id": f"K-{i}", "shipped_at": "2024-02-02 08:00:00"}
            for i in range(first, first + 10)
        ]
        server.push({"method": "shipped_packages", "data": orders})
    server.kill9()
    peer.default = (200, {})
    server.start()
    server.wait_for(lambda: len({r.headers["webhook-id"] for r in peer.requests("/erp")}) == 30)
    # every outcome is recorded just after its peer's answer
    server.wait_for(lambda: {d["state"] for d in deliveries(server, limit=100)} == {"delivered"})
    # At-least-once: a repeat can only be a delivery the kill interrupted, with the same id.
    ids = [r.headers["webhook-id"] for r in peer.requests("/erp")]
    for repeated in {i for i in ids if ids.count(i) > 1}:
        bodies = {
            r.json()["data"]["id"]
            for r in peer.requests("/erp")
            if r.headers["webhook-id"] == repeated
        }
        assert len(bodies) == 1


def _ordering_case(
    make_server: Callable[..., KabarinProcess], peer: Peer, ordering: str
) -> KabarinProcess:
    server = make_server(
        sinks_and_routes(
            peer, ordering=ordering, slack=False, schedule="[300ms, 300ms, 300ms, 300ms, 300ms]"
        )
    )
    peer.default = (503, {})
    server.push(one("ORD-1", "finished_packages", finished_at="2024-03-03 12:00:00"))
    server.push(one("ORD-1", "shipped_packages", shipped_at="2024-03-02 09:00:00"))
    server.wait_for(lambda: len(peer.requests("/erp", ok_only=False)) >= 1)
    peer.default = (200, {})
    return server


def test_ordering_all_sends_every_status_once_in_arrival_order(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = _ordering_case(make_server, peer, "all")
    server.wait_for(lambda: len(peer.requests("/erp")) == 2)
    assert [b["type"] for b in peer.bodies("/erp")] == ["shipment.delivered", "shipment.shipped"]
    # A late older status still reaches the ERP (it sorts by occurred_at), after the others.
    server.push(one("ORD-1", "processed_packages", awb="AWB-LATE", date="2024-03-01 08:00:00"))
    server.wait_for(lambda: len(peer.requests("/erp")) == 3)
    assert peer.bodies("/erp")[2]["data"]["occurred_at"].startswith("2024-03-01")
    server.wait_for(lambda: {d["state"] for d in deliveries(server)} == {"delivered"})


def test_the_erp_gets_every_status_of_inv_2001(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    # processed_packages carries no time: dated on its arrival. shipped_packages then says it
    # shipped 3 s before that arrival, and finished_packages comes a second after the
    # shipping. Every one reaches the ERP (ordering: all, the webhook's default), in order.
    server = make_server(sinks_and_routes(peer, slack=False, ordering=None))
    wib = timezone(timedelta(hours=7))
    shipped = datetime.now(wib) - timedelta(seconds=3)
    server.push(one("INV-2001", "processed_packages", awb="JX1"))
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)  # sent before the next arrives
    server.push(one("INV-2001", "shipped_packages", shipped_at=f"{shipped:%Y-%m-%d %H:%M:%S}"))
    finished = shipped + timedelta(seconds=1)
    server.push(one("INV-2001", "finished_packages", finished_at=f"{finished:%Y-%m-%d %H:%M:%S}"))
    server.wait_for(lambda: len(peer.requests("/erp")) == 3)
    assert [b["type"] for b in peer.bodies("/erp")] == [
        "shipment.processed",
        "shipment.shipped",
        "shipment.delivered",
    ]
    server.wait_for(
        lambda: (
            [(d["state"], d["attempts"]) for d in deliveries(server, order_id="INV-2001")]
            == [("delivered", 1)] * 3
        )
    )


def test_ordering_latest_sends_only_the_newest(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = _ordering_case(make_server, peer, "latest")
    # Superseded is final: once both are settled, nothing more can go out for them.
    server.wait_for(lambda: {d["state"] for d in deliveries(server)} == {"delivered", "superseded"})
    assert [b["type"] for b in peer.bodies("/erp")] == ["shipment.delivered"]
    _late_older_status_is_superseded(server, peer)


def _late_older_status_is_superseded(server: KabarinProcess, peer: Peer) -> None:
    sent = [b["type"] for b in peer.bodies("/erp")]
    server.push(one("ORD-1", "processed_packages", awb="AWB-LATE", date="2024-03-01 08:00:00"))
    server.wait_for(
        lambda: any(
            d["state"] == "superseded" and d["occurred_at"].startswith("2024-03-01")
            for d in deliveries(server)
        )
    )
    # A newer status of the same order must arrive; the late older one never goes before it.
    server.push(one("ORD-1", "returned_packages", returned_at="2024-03-05 08:00:00"))
    server.wait_for(lambda: len(peer.requests("/erp")) == len(sent) + 1)
    assert [b["type"] for b in peer.bodies("/erp")] == [*sent, "shipment.returned"]


def test_sigterm_lets_the_send_in_flight_finish(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(sinks_and_routes(peer, slack=False))
    peer.delay = 1.0  # a slow ERP: the send is in flight when SIGTERM comes
    server.push((FIXTURES / "shipped_packages.json").read_bytes())
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    code = server.terminate()
    assert code in (0, -15)  # uvicorn re-raises SIGTERM once it has shut down cleanly
    assert "Application shutdown complete" in server.output()
    peer.delay = 0
    server.start()
    (d,) = deliveries(server)
    assert d["state"] == "delivered"  # finished before the process exited, not re-sent
    server.push(one("AFTER-1", "shipped_packages", shipped_at="2024-01-01 10:00:00"))
    server.wait_for(lambda: len(peer.requests("/erp")) == 2)  # the restarted one is sending
    assert [b["data"]["order_id"] for b in peer.bodies("/erp")][1:] == ["AFTER-1"]


def test_metrics(make_server: Callable[..., KabarinProcess], peer: Peer) -> None:
    server = make_server(sinks_and_routes(peer))
    server.push((FIXTURES / "canceled_packages.json").read_bytes())
    delivered = 'kabarin_deliveries_total{outcome="delivered",shop="default",sink="erp"} 1.0'
    # the peer has the request before the gateway has read the answer and counted it
    server.wait_for(lambda: len(peer.requests()) == 2)
    server.wait_for(lambda: delivered in server.client.get("/metrics").text)
    text = server.client.get("/metrics").text
    assert 'kabarin_pushes_total{method="canceled_packages",shop="default"} 1.0' in text
    assert (
        'kabarin_events_total{method="canceled_packages",shop="default",status="canceled"} 1.0'
        in text
    )
    assert "kabarin_delivery_latency_seconds_bucket" in text
    assert 'kabarin_deliveries_pending{shop="default",sink="erp"} 0.0' in text
    assert 'kabarin_sink_circuit_state{sink="erp"}' in text


def test_simulate_shows_routes_and_messages_without_sending(
    make_server: Callable[..., KabarinProcess], peer: Peer, tmp_path: Path
) -> None:
    server = make_server(sinks_and_routes(peer), start=False)
    r = kabarin(server, "simulate", str(FIXTURES / "canceled_packages.json"))
    assert r.returncode == 0, r.stderr
    assert "route everything-to-erp -> sink erp" in r.stdout
    assert "route trouble-to-slack -> sink ops-slack" in r.stdout
    assert peer.requests(ok_only=False) == []
    assert not (tmp_path / "kabarin.db").exists()
    # each sink shows what it sends: the webhook its envelope, Slack its blocks
    erp, slack = r.stdout.split("route trouble-to-slack -> sink ops-slack")
    erp = erp.split("route everything-to-erp -> sink erp")[1]
    envelope = json.loads(_shown(erp))
    assert envelope["type"] == "shipment.canceled" and envelope["data"]["order_id"] == "X"
    blocks = json.loads(_shown(slack))
    assert blocks["blocks"][1]["fields"][0]["text"] == "*Status*\nCanceled"


def _shown(output: str) -> str:
    """The ``    | `` lines `simulate` prints under one route, without that prefix."""
    return "\n".join(line[6:] for line in output.splitlines() if line.startswith("    | "))


def test_replay_and_deliveries_say_what_is_wrong_with_the_arguments(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(sinks_and_routes(peer))
    server.push(one("R-1", "shipped_packages", shipped_at="2024-01-01 10:00:00"))
    server.wait_for(lambda: [d["state"] for d in deliveries(server)] == ["delivered"])
    (delivered,) = deliveries(server)

    missing = kabarin(server, "replay", "--delivery", "dlv_nope")
    assert missing.returncode == 1 and "delivery dlv_nope not found" in missing.stderr
    live = kabarin(server, "replay", "--delivery", delivered["id"])
    assert live.returncode == 1 and f"{delivered['id']} is delivered" in live.stderr
    for command in (["replay", "--dead"], ["deliveries"]):
        typo = kabarin(server, *command, "--sink", "erpp")
        assert typo.returncode == 1, typo.stdout
        assert "no sink named 'erpp'" in typo.stderr
        assert "configured sinks: erp, ops-slack" in typo.stderr
    none_dead = kabarin(server, "replay", "--dead", "--sink", "erp")
    assert none_dead.returncode == 0 and "replayed 0 dead deliveries" in none_dead.stdout


def test_gone_410_switches_the_sink_off_and_its_deliveries_wait_until_enabled(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.script = [(410, {})]
    server = make_server(sinks_and_routes(peer))
    server.push(one("G-1", "shipped_packages", shipped_at="2024-01-01 10:00:00"))
    server.wait_for(lambda: "410" in (sinks(server)["erp"]["disabled"] or ""))
    server.wait_for(lambda: [d["state"] for d in deliveries(server)] == ["pending"])
    (gone,) = deliveries(server)
    assert gone["attempts"] == 0  # the refusal used no attempt

    # G-2 goes to Slack and to the switched-off ERP: Slack receiving it shows the dispatcher
    # has claimed since, and the ERP's copy was not among what it sent.
    server.push(one("G-2", "canceled_packages", canceled_at="2024-01-01 11:00:00"))
    server.wait_for(lambda: len(peer.requests("/slack")) == 1)
    assert len(peer.requests("/erp", ok_only=False)) == 1
    listed = kabarin(server, "deliveries", "--sink", "erp")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.count("waiting: sink switched off (HTTP 410 Gone") == 2, listed.stdout
    assert "disabled" in server.output().lower()

    assert server.admin("POST", "/sinks/erp/enable").status_code == 200
    server.wait_for(lambda: len(peer.requests("/erp")) == 2)
    assert {b["data"]["order_id"] for b in peer.bodies("/erp")} == {"G-1", "G-2"}
    # The peer has answered; the dispatcher records the outcome just after.
    server.wait_for(lambda: {d["state"] for d in deliveries(server, sink="erp")} == {"delivered"})
    after = {d["order_id"]: d for d in deliveries(server, sink="erp")}
    assert after["G-1"]["attempts"] == 1 and after["G-1"]["last_error"] is None
    refused = peer.requests("/erp", ok_only=False)[0]
    assert refused.status == 410 and refused.headers["webhook-id"] == gone["id"]


def sinks(server: KabarinProcess) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in server.admin("GET", "/sinks").json()["items"]}


def test_a_separate_worker_delivers_what_serve_stored(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(sinks_and_routes(peer, slack=False), dispatcher=False)
    server.push((FIXTURES / "shipped_packages.json").read_bytes())
    # Ready means started: a dispatcher inside serve would have said so in its log by now.
    assert "started (batch" not in server.output()
    assert [d["state"] for d in deliveries(server)] == ["pending"]
    worker = subprocess.Popen(
        [str(KABARIN), "worker", "--config", str(server.config_path)],
        cwd=server.workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        server.wait_for(lambda: len(peer.requests("/erp")) == 1)
        # the worker records the outcome just after the peer's answer
        server.wait_for(lambda: deliveries(server)[0]["state"] == "delivered")
        assert len(peer.requests(ok_only=False)) == 1  # serve alone sent nothing beside it
    finally:
        worker.terminate()
        assert worker.wait(20) == 0
