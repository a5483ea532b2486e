"""Reloading the configuration of a running server: SIGHUP, the admin API, and what survives."""

from __future__ import annotations

import base64
import re
import signal
from collections.abc import Callable
from typing import Any

from .conftest import KabarinProcess, Peer, write_config

SECRET = "whsec_" + base64.b64encode(b"kabarin-e2e-reload-signing-key!!").decode()


def webhook(name: str, peer: Peer) -> str:
    return f"""
  {name}:
    type: webhook
    url: {peer.url}/{name}
    secret: {SECRET}
    retry: {{schedule: [1s, 1s, 1s, 1s, 1s, 1s, 1s, 1s]}}
    circuit_breaker: {{failures: 0}}"""


def shipped(order_id: str) -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [{"order_id": order_id, "shipped_at": "2024-05-05 10:00:00"}],
    }


def metric(server: KabarinProcess, name: str) -> float:
    text = server.client.get("/metrics").text
    found = re.search(rf"^{name} (\S+)$", text, re.M)
    assert found, name
    return float(found.group(1))


def rewrite(server: KabarinProcess, extra: str) -> None:
    write_config(server.config_path, extra)


def sighup_and_wait(server: KabarinProcess, what: str) -> None:
    before = server.output().count(what)
    assert server.proc is not None
    server.proc.send_signal(signal.SIGHUP)
    server.wait_for(lambda: server.output().count(what) > before)


def test_sighup_adds_a_route_for_the_pushes_after_it(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(
        f"sinks:{webhook('erp', peer)}\nroutes:\n  - {{name: erp, sinks: [erp]}}\n"
    )
    server.push(shipped("BEFORE"))
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    loaded = metric(server, "kabarin_config_last_reload_success_timestamp_seconds")

    rewrite(
        server,
        f"sinks:{webhook('erp', peer)}{webhook('ops', peer)}\nroutes:\n"
        "  - {name: erp, sinks: [erp]}\n  - {name: ops, sinks: [ops]}\n",
    )
    sighup_and_wait(server, "configuration reloaded")
    assert "added ops" in server.output()
    server.push(shipped("AFTER"))
    server.wait_for(lambda: len(peer.requests("/ops")) == 1)
    server.wait_for(lambda: len(peer.requests("/erp")) == 2)
    # the push before the reload went only where the routes then sent it
    assert [b["data"]["order_id"] for b in peer.bodies("/ops")] == ["AFTER"]
    assert metric(server, "kabarin_config_last_reload_successful") == 1
    assert metric(server, "kabarin_config_last_reload_success_timestamp_seconds") > loaded


def test_an_invalid_file_is_refused_and_the_old_routes_keep_running(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(
        f"sinks:{webhook('erp', peer)}\nroutes:\n  - {{name: erp, sinks: [erp]}}\n"
    )
    rewrite(server, f"sinks:{webhook('erp', peer)}\nroutes:\n  - {{name: erp, sinks: [nope]}}\n")
    r = server.admin("POST", "/reload")
    assert r.status_code == 400
    assert r.json()["ok"] is False
    assert any("undefined sink 'nope'" in p for p in r.json()["problems"])
    assert "configuration reload refused" in server.output()
    assert metric(server, "kabarin_config_last_reload_successful") == 0

    server.push(shipped("STILL"))  # the old routes are still in use
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)

    rewrite(server, f"sinks:{webhook('erp', peer)}\nroutes:\n  - {{name: erp, sinks: [erp]}}\n")
    r = server.admin("POST", "/reload")
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is True and r.json()["sinks_changed"] == []
    assert metric(server, "kabarin_config_last_reload_successful") == 1


def test_a_removed_sinks_deliveries_wait_and_go_when_it_is_back(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    config = f"sinks:{webhook('erp', peer)}\nroutes:\n  - {{name: erp, sinks: [erp]}}\n"
    server = make_server(config)
    peer.default = (503, {})  # the ERP is down: the delivery stays pending, retried
    server.push(shipped("WAIT-1"))
    server.wait_for(lambda: len(peer.requests("/erp", ok_only=False)) >= 1)

    rewrite(server, "sinks: {}\nroutes: []\n")
    r = server.admin("POST", "/reload")
    assert r.json()["sinks_removed"] == ["erp"]

    def waiting() -> str | None:
        (d,) = server.admin("GET", "/deliveries").json()["items"]
        assert d["state"] in ("pending", "in_flight")
        return str(d["waiting"]) if d["state"] == "pending" and d["waiting"] else None

    server.wait_for(lambda: "not in the configuration" in (waiting() or ""))
    peer.default = (200, {})
    rewrite(server, config)
    r = server.admin("POST", "/reload")
    assert r.json()["sinks_added"] == ["erp"]
    server.wait_for(lambda: len(peer.requests("/erp")) == 1, timeout=10)
    server.wait_for(
        lambda: server.admin("GET", "/deliveries").json()["items"][0]["state"] == "delivered"
    )


def test_settings_that_need_a_restart_are_reported_not_applied(
    make_server: Callable[..., KabarinProcess],
) -> None:
    server = make_server()
    text = server.config_path.read_text()
    server.config_path.write_text(text.replace("/kabarin.db", "/other.db"))
    r = server.admin("POST", "/reload")
    assert r.status_code == 200, r.text
    assert r.json()["restart_needed"] == ["store"]
    assert "a restart is needed to apply store" in server.output()
    assert server.push(shipped("SAME-STORE")).status_code == 200
    assert [e["order_id"] for e in server.events()] == ["SAME-STORE"]
