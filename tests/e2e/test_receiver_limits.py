"""Hostile input at the real server: deep nesting, slow and idle connections, a busy port."""

from __future__ import annotations

import base64
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

from gateway.sources.kiriminaja.push import MAX_DEPTH

from .conftest import KABARIN, PUSH_TOKEN, KabarinProcess, Peer, write_config

SECRET = "whsec_" + base64.b64encode(b"kabarin-e2e-signing-key-32bytes!").decode()


def nested(depth: int, order_id: str) -> bytes:
    """A push whose whole document is `depth` levels deep (the envelope and item count)."""
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    body = f'{{"method": "shipped_packages", "data": [{{"order_id": "{order_id}", "x": {inner}}}]}}'
    return body.encode()


def test_nesting_at_the_limit_is_readable_and_delivered_past_it_is_400(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    server = make_server(
        f"""
sinks:
  erp: {{type: webhook, url: "{peer.url}/erp", secret: "{SECRET}"}}
routes:
  - {{name: all, sinks: [erp]}}
"""
    )
    r = server.push(nested(MAX_DEPTH, "DEEP-OK"))
    assert r.status_code == 200, r.text
    server.wait_for(lambda: len(peer.requests("/erp")) == 1)
    (sent,) = peer.bodies("/erp")
    assert sent["data"]["order_id"] == "DEEP-OK"

    for depth in (MAX_DEPTH + 1, 500, 1000):  # 500 used to be accepted and break every read
        r = server.push(nested(depth, f"DEEP-{depth}"))
        assert r.status_code == 400, r.text
        assert r.json()["error"] == "invalid_push"
    rejected = server.admin("GET", "/rejected").json()["items"]
    assert len(rejected) == 3

    (event,) = server.events()
    assert event["order_id"] == "DEEP-OK"
    detail = server.admin("GET", f"/events/{event['id']}")
    assert detail.status_code == 200, detail.text


def limited_server(tmp_path: Path) -> KabarinProcess:
    config = write_config(tmp_path / "config.yaml")
    text = config.read_text().replace(
        "  max_body_bytes: 65536\n",
        "  max_body_bytes: 65536\n  read_timeout: 1s\n  keep_alive: 1s\n",
    )
    config.write_text(text)
    server = KabarinProcess(config, tmp_path)
    server.start()
    return server


def read_until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes; a generous bound, not a timing check."""
    conn.settimeout(30)
    received = b""
    while chunk := conn.recv(4096):
        received += chunk
    return received


def test_idle_and_half_sent_connections_are_closed(tmp_path: Path) -> None:
    server = limited_server(tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as idle:
            # A kept-alive connection: one answered request first, then silence.
            idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: k\r\n\r\n")
            answer = read_until_closed(idle)
            assert answer.startswith(b"HTTP/1.1 200 "), answer
            assert answer.endswith(b'{"status":"ok"}'), answer
        with socket.create_connection(("127.0.0.1", server.port)) as silent:
            assert read_until_closed(silent) == b""  # never sent a byte
        with socket.create_connection(("127.0.0.1", server.port)) as half_headers:
            half_headers.sendall(b"POST /kiriminaja/push HTTP/1.1\r\nHost: k\r\n")
            assert read_until_closed(half_headers) == b""
        with socket.create_connection(("127.0.0.1", server.port)) as half_body:
            half_body.sendall(
                b"POST /kiriminaja/push HTTP/1.1\r\nHost: k\r\n"
                + f"Authorization: Bearer {PUSH_TOKEN}\r\n".encode()
                + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                + b'{"method": "shipped_'
            )
            answer = read_until_closed(half_body)
            assert answer.startswith(b"HTTP/1.1 408 "), answer
            assert b"request_timeout" in answer
        assert server.client.get("/healthz").status_code == 200  # still serving
    finally:
        server.stop()


# The three tests below share one server: none of them pushes anything that is kept.


def test_the_ready_line_says_where_the_server_listens(shared_server: KabarinProcess) -> None:
    server = shared_server
    address = f"http://127.0.0.1:{server.port}"
    (ready,) = [line for line in server.output().splitlines() if " ready on " in line]
    assert f"ready on {address}: push endpoint {address}/kiriminaja/push," in ready


def test_a_busy_port_is_one_clear_error(shared_server: KabarinProcess) -> None:
    server = shared_server
    second = subprocess.run(
        [str(KABARIN), "serve", "--config", str(server.config_path), "--port", str(server.port)],
        cwd=server.workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    output = (second.stdout + second.stderr).strip()
    assert "ready:" not in output  # the startup line
    assert len(output.splitlines()) == 1, output
    assert f"cannot listen on 127.0.0.1:{server.port}" in output
    assert server.client.get("/healthz").status_code == 200


def test_a_sender_that_leaves_halfway_through_its_body_leaves_nothing(
    shared_server: KabarinProcess,
) -> None:
    server = shared_server
    with socket.create_connection(("127.0.0.1", server.port)) as gone:
        gone.sendall(
            b"POST /kiriminaja/push HTTP/1.1\r\nHost: k\r\n"
            + f"Authorization: Bearer {PUSH_TOKEN}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            + b'{"method": "shipped_'
        )
    # Counted once the server has seen the disconnect: a truncated body is not judged, not kept.
    server.wait_for(
        lambda: (
            'kabarin_push_rejections_total{reason="disconnected"} 1.0'
            in server.client.get("/metrics").text
        )
    )
    assert server.admin("GET", "/rejected").json()["items"] == []
    assert server.admin("GET", "/pushes").json()["items"] == []
