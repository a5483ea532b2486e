"""A customer is never sent the same message twice: the real server, a slow SMS provider (a
local stand-in answering after a delay), and a stop or a crash in the middle of the send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .conftest import KabarinProcess, Peer


def sms_server(
    make_server: Callable[..., KabarinProcess], peer: Peer, **settings: str
) -> KabarinProcess:
    server = make_server(
        f"""
sinks:
  sms:
    type: sms
    provider: http
    url: {peer.url}/sms
    json: {{to: "{{{{ phone }}}}", message: "{{{{ text }}}}"}}
    timeout: 10s
routes:
  - name: tell-the-customer
    sinks: [sms]
""",
        **settings,
    )
    for order in ("OID-1", "OID-2"):
        r = server.admin("PUT", f"/contacts/{order}", json={"name": "Siti", "phone": "0812345678"})
        assert r.status_code < 300, r.text
    return server


def shipped(order_id: str) -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [{"order_id": order_id, "shipped_at": "2024-05-05 10:00:00"}],
    }


def sms_delivery(server: KabarinProcess, order_id: str) -> dict[str, Any]:
    r = server.admin("GET", "/deliveries", params={"order_id": order_id})
    assert r.status_code == 200, r.text
    (found,) = r.json()["items"]
    detail = server.admin("GET", f"/deliveries/{found['id']}")
    assert detail.status_code == 200, detail.text
    item: dict[str, Any] = detail.json()
    return item


def test_an_sms_under_way_at_sigterm_is_waited_for_and_sent_once(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = sms_server(make_server, peer, shutdown_timeout="1s")
    peer.delay = 2.5  # longer than dispatcher.shutdown_timeout (1s), within the sms timeout
    server.push(shipped("OID-1"))
    server.wait_for(lambda: len(peer.requests("/sms", ok_only=False)) == 1)
    assert server.terminate() in (0, -15)
    peer.delay = 0
    server.start()
    assert sms_delivery(server, "OID-1")["delivery"]["state"] == "delivered"
    # The restarted server sends what comes next, and nothing of what went before.
    server.push(shipped("OID-2"))
    server.wait_for(lambda: sms_delivery(server, "OID-2")["delivery"]["state"] == "delivered")
    to_customer = [b["message"] for b in peer.bodies("/sms")]
    assert len(to_customer) == 2 and "OID-1" in to_customer[0] and "OID-2" in to_customer[1]


def test_an_sms_under_way_at_kill_9_is_never_sent_again_by_itself(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = sms_server(make_server, peer, lease="1s")
    peer.delay = 30.0  # the provider has the request when the process dies
    server.push(shipped("OID-1"))
    server.wait_for(lambda: len(peer.requests("/sms", ok_only=False)) == 1)
    server.kill9()
    peer.delay = 0
    server.start()
    # The lease (1s) runs out: the send's outcome is unknown, so it is not sent again.
    server.wait_for(lambda: sms_delivery(server, "OID-1")["delivery"]["state"] == "dead")
    found = sms_delivery(server, "OID-1")
    assert "outcome unknown" in found["delivery"]["last_error"]
    assert "replay" in found["delivery"]["last_error"]
    assert [a["outcome"] for a in found["attempts"]] == ["unknown"]
    assert len(peer.requests("/sms", ok_only=False)) == 1
    # A person decides: the replay sends it again.
    r = server.admin("POST", f"/deliveries/{found['delivery']['id']}/replay")
    assert r.status_code < 300, r.text
    server.wait_for(lambda: sms_delivery(server, "OID-1")["delivery"]["state"] == "delivered")
    assert len(peer.requests("/sms", ok_only=False)) == 2
