"""The admin API and `kabarin rejected` against the real `kabarin serve` process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import ADMIN_TOKEN, KabarinProcess, Peer

KABARIN = Path(sys.executable).with_name("kabarin")


def erp(peer: Peer, schedule: str = "[1h]") -> str:
    return f"""
retry: {{schedule: {schedule}, jitter: 0}}
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: whsec_a2FiYXJpbi1lMmUtc2lnbmluZy1rZXktMzJieXRlcyE=
    circuit_breaker: {{failures: 0}}
routes:
  - name: everything
    sinks: [erp]
"""


def shipped(order_id: str, *times: str) -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [{"order_id": order_id, "shipped_at": t} for t in times],
    }


def deliveries(server: KabarinProcess, **params: Any) -> list[dict[str, Any]]:
    r = server.admin("GET", "/deliveries", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_event_detail_lists_its_own_deliveries_however_many_the_order_has(
    make_server: Callable[..., KabarinProcess],
) -> None:
    server = make_server(
        "sinks: {out: {type: console}}\nroutes: [{name: all, sinks: [out]}]\n",
    )
    assert server.ingest(shipped("OLD-1", "2024-05-01 08:00:00"))["accepted"] == 1
    (first,) = server.events(order_id="OLD-1")
    later = [f"2024-05-02 {h:02}:{m:02}:00" for h in range(10) for m in range(0, 60, 5)]
    assert server.ingest(shipped("OLD-1", *later))["accepted"] == len(later) == 120

    r = server.admin("GET", f"/events/{first['id']}")
    assert r.status_code == 200, r.text
    own = r.json()["deliveries"]
    assert [(d["event_id"], d["sink"]) for d in own] == [(first["id"], "out")]


def test_a_waiting_delivery_says_why(
    make_server: Callable[..., KabarinProcess], peer: Peer
) -> None:
    peer.default = (503, {})
    server = make_server(erp(peer))
    server.push(shipped("WAIT-1", "2024-05-01 08:00:00"))
    server.wait_for(lambda: any(d["attempts"] == 1 for d in deliveries(server, sink="erp")))
    (d,) = deliveries(server, sink="erp")
    assert d["state"] == "pending"
    assert d["waiting"].startswith("next attempt at "), d
    assert "503" in d["waiting"]
    detail = server.admin("GET", f"/deliveries/{d['id']}").json()["delivery"]
    assert detail["waiting"] == d["waiting"]

    # A 410 switches the sink off: what is still pending says so.
    peer.default = (410, {})
    server.push(shipped("WAIT-2", "2024-05-01 09:00:00"))
    server.wait_for(
        lambda: any(s["disabled"] for s in server.admin("GET", "/sinks").json()["items"])
    )
    server.push(shipped("WAIT-3", "2024-05-01 10:00:00"))
    server.wait_for(lambda: len(deliveries(server, order_id="WAIT-3")) == 1)
    (waiting,) = deliveries(server, order_id="WAIT-3")
    assert waiting["state"] == "pending"
    assert waiting["waiting"].startswith("sink switched off"), waiting


def _reject(server: KabarinProcess, body: bytes) -> dict[str, Any]:
    assert server.push(body).status_code == 400
    item: dict[str, Any] = server.admin("GET", "/rejected").json()["items"][0]
    assert item["body"] == body.decode()
    return item


def _keep_as_rejected(server: KabarinProcess, body: dict[str, Any]) -> int:
    """A body an older version refused, as it sits in the rejected table."""
    db = server.workdir / "kabarin.db"
    with sqlite3.connect(db) as conn:
        cur = conn.execute(
            "INSERT INTO rejected (received_at, reason, body, content_type) VALUES (?, ?, ?, ?)",
            (
                int(time.time() * 1e6),
                "an older version refused it",
                json.dumps(body).encode(),
                "application/json",
            ),
        )
        assert cur.lastrowid is not None
        return cur.lastrowid


def test_replaying_a_rejected_body_through_the_api(shared_server: KabarinProcess) -> None:
    server = shared_server
    item = _reject(server, b'{"method": "shipped_packages"}')
    r = server.admin("GET", f"/rejected/{item['id']}")
    assert r.status_code == 200, r.text
    assert r.json() == item
    before = server.admin("GET", "/rejected").json()["items"]

    r = server.admin("POST", f"/rejected/{item['id']}/replay")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "rejected"
    assert r.json()["answer"]["error"] == "invalid_push"
    kept = server.admin("GET", "/rejected").json()["items"]
    assert [k["id"] for k in kept] == [k["id"] for k in before]  # updated, not added twice

    fixed = _keep_as_rejected(server, shipped("LATE-1", "2024-05-01 08:00:00"))
    r = server.admin("POST", f"/rejected/{fixed}/replay")
    assert r.status_code == 200, r.text
    assert r.json()["outcome"] == "accepted"
    assert r.json()["answer"]["items"] == 1
    assert server.processed(r.json()["answer"]["push_id"])["accepted"] == 1
    assert [e["order_id"] for e in server.events(order_id="LATE-1")] == ["LATE-1"]
    assert server.admin("GET", f"/rejected/{fixed}").status_code == 404
    assert server.admin("POST", f"/rejected/{fixed}/replay").status_code == 404


def kabarin(server: KabarinProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KABARIN), "rejected", *args, "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )


def test_replaying_a_rejected_body_from_the_command_line(shared_server: KabarinProcess) -> None:
    server = shared_server
    item = _reject(server, b"not json, still not json")
    before = server.admin("GET", "/rejected").json()["items"]
    listed = kabarin(server, "list")
    assert listed.returncode == 0, listed.stderr
    assert str(item["id"]) in listed.stdout
    shown = kabarin(server, "show", str(item["id"]))
    assert shown.returncode == 0, shown.stderr
    assert "not json, still not json" in shown.stdout

    again = kabarin(server, "replay", str(item["id"]))
    assert again.returncode == 1
    assert "invalid_push" in again.stderr
    kept = server.admin("GET", "/rejected").json()["items"]
    assert [k["id"] for k in kept] == [k["id"] for k in before]  # updated, not added twice

    fixed = _keep_as_rejected(server, shipped("LATE-2", "2024-05-01 08:00:00"))
    done = kabarin(server, "replay", str(fixed))
    assert done.returncode == 0, done.stderr
    assert '"items":1' in done.stdout
    # the command runs the intake itself: the events are there when it returns
    assert [e["order_id"] for e in server.events(order_id="LATE-2")] == ["LATE-2"]
    assert kabarin(server, "show", str(fixed)).returncode == 1


@pytest.mark.filterwarnings("ignore")
def test_the_schema_holds_against_the_running_server(server: KabarinProcess) -> None:
    """Schemathesis, every check: each answer's status and body is the one the OpenAPI document
    promises, a request it calls valid is accepted and one it calls invalid refused, and every
    405 and OPTIONS lists the allowed methods (the few exceptions in schemathesis.toml)."""
    server.push(shipped("SCHEMA-1", "2024-05-01 08:00:00"))
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "--config-file",
            str(Path(__file__).with_name("schemathesis.toml")),
            "run",
            f"{server.url}/schema/openapi.json",
            "--header",
            f"Authorization: Bearer {ADMIN_TOKEN}",
            "--max-examples",
            "15",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "1",
            "--no-shrink",
            "--report-dir",
            str(server.workdir / "schemathesis"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]


def test_order_ids_with_slashes_and_bad_parameters_through_the_real_server(
    shared_server: KabarinProcess,
) -> None:
    """What the HTTP server decodes (``%2F``, ``%00``) before the app sees the path."""
    server = shared_server
    invoice = "INV/2024/05/001"
    assert server.ingest(shipped(invoice, "2024-05-01 08:00:00"))["accepted"] == 1
    for written in (invoice, "INV%2F2024%2F05%2F001"):
        r = server.admin("GET", f"/orders/{written}")
        assert r.status_code == 200, r.text
        assert r.json()["order_id"] == invoice
        assert [e["order_id"] for e in r.json()["events"]] == [invoice]
        r = server.admin("PUT", f"/contacts/{written}", json={"name": "Budi"})
        assert r.status_code == 200, r.text
        assert server.admin("GET", f"/contacts/{invoice}").json()["name"] == "Budi"
        assert server.admin("DELETE", f"/contacts/{written}").status_code == 204
    assert server.admin("GET", "/orders/INV/2024").status_code == 404

    for method, path, name in [
        ("GET", "/orders/a%00b", "order_id"),
        ("GET", "/events?order_id=%00", "order_id"),
        ("GET", "/deliveries?cursor=%00", "cursor"),
        ("GET", "/events?since=253402300800", "since"),
        ("POST", "/pushes/reprocess?since=253402300800", "since"),
        ("GET", "/deliveries?cursor=abc", "cursor"),
        ("POST", "/deliveries/replay?sink=nosuch", "sink"),
    ]:
        r = server.admin(method, path)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["detail"].startswith(f"{name}: "), (path, r.text)
