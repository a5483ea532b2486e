"""Several real `kabarin serve` processes sharing one PostgreSQL store (a fresh schema each)."""

from __future__ import annotations

import json
import threading
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import KabarinProcess, Peer, write_config

Replicas = Callable[..., list[KabarinProcess]]


@pytest.fixture
def replicas(tmp_path: Path, pg_url: str) -> Iterator[Replicas]:
    started: list[KabarinProcess] = []

    def start(
        count: int,
        sinks: str,
        *,
        dispatcher: str = "",
        without_dispatcher: int = 0,
    ) -> list[KabarinProcess]:
        """`count` replicas on the test's schema; the last `without_dispatcher` of them
        run no dispatcher."""
        made = []
        for n in range(count):
            workdir = tmp_path / f"replica{n}"
            workdir.mkdir()
            extra = f"{dispatcher}\n{sinks}\nroutes:\n  - name: all\n    sinks: [erp]\n"
            config = write_config(
                workdir / "config.yaml",
                extra,
                store=pg_url,
                dispatcher=n < count - without_dispatcher,
            )
            server = KabarinProcess(config, workdir)
            started.append(server)
            made.append(server)
        for server in made:
            server.launch()
        for server in made:
            server.ready()
        return made

    yield start
    for server in started:
        server.stop()


def erp(peer: Peer, extra: str = "") -> str:
    return f"""
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    concurrency: 10
{extra}"""


def packages(first: int, count: int, prefix: str = "OID") -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [
            {"order_id": f"{prefix}-{n:05d}", "shipped_at": "2026-03-01 10:00:00"}
            for n in range(first, first + count)
        ],
    }


def by_webhook_id(peer: Peer) -> Counter[str]:
    return Counter(r.headers["webhook-id"] for r in peer.requests("/erp"))


def test_three_replicas_deliver_everything_and_a_killed_one_loses_nothing(
    replicas: Replicas, peer: Peer
) -> None:
    peer.delay = 0.02  # sends overlap, so the replica killed has some in flight
    servers = replicas(3, erp(peer), dispatcher="  lease: 2s")
    pushes = []
    for n in range(30):  # 3,000 events, 100 packages a push, round-robin
        server = servers[n % 3]
        r = server.push(packages(n * 100, 100), wait=False)
        assert r.status_code == 200, r.text
        pushes.append((server, r.json()["push_id"]))
    for server, push_id in pushes:
        assert server.processed(push_id)["accepted"] == 100
    victim, survivors = servers[0], servers[1:]
    survivors[0].wait_for(lambda: len(by_webhook_id(peer)) >= 300, timeout=60)
    victim.kill9()

    survivors[0].wait_for(lambda: len(by_webhook_id(peer)) == 3000, timeout=120)

    def nothing_left() -> bool:
        (sink,) = survivors[1].admin("GET", "/sinks").json()["items"]
        return bool(sink["pending"] == 0 and sink["dead"] == 0)

    # the victim's claims are sent again once their leases run out, which may be after the
    # last new webhook-id arrived: "pending" counts in-flight deliveries too
    survivors[1].wait_for(nothing_left, timeout=30)
    received = by_webhook_id(peer)
    assert len(received) == 3000
    # What the victim had sent but not recorded was sent again by the others, under the same
    # webhook-id: one event never arrives under two ids.
    ids_of_event: dict[str, set[str]] = defaultdict(set)
    for request in peer.requests("/erp"):
        ids_of_event[request.json()["data"]["id"]].add(request.headers["webhook-id"])
    assert len(ids_of_event) == 3000
    assert all(len(ids) == 1 for ids in ids_of_event.values())
    # The sends the victim had in flight (the receiver answers after 20 ms) reached the
    # receiver unrecorded: once its lease ran out, another replica sent them again.
    assert sum(received.values()) > 3000, "the killed replica had nothing in flight"


def test_the_same_push_at_two_replicas_at_once_is_stored_and_delivered_once(
    replicas: Replicas, peer: Peer
) -> None:
    a, b = replicas(2, erp(peer))
    body = json.dumps(packages(0, 20, prefix="DUP")).encode()
    answers: list[httpx.Response] = []

    def push(server: KabarinProcess) -> None:
        answers.append(server.push(body, wait=False))

    threads = [threading.Thread(target=push, args=(s,)) for s in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.status_code for r in answers] == [200, 200]
    entries = [a.processed(r.json()["push_id"]) for r in answers]
    assert sorted(e["accepted"] for e in entries) == [0, 20]
    assert sorted(e["duplicates"] for e in entries) == [0, 20]
    a.wait_for(lambda: len(by_webhook_id(peer)) == 20)

    def settled() -> bool:
        r = b.admin("GET", "/deliveries", params={"sink": "erp", "limit": 500})
        items = r.json()["items"]
        return len(items) == 20 and all(d["state"] == "delivered" for d in items)

    b.wait_for(settled)
    assert len(a.events()) == 20
    assert sorted(by_webhook_id(peer).values()) == [1] * 20


def test_a_rate_limit_holds_across_three_replicas(replicas: Replicas, peer: Peer) -> None:
    # 4/s with no burst: sends are booked 0.25 s apart in the shared row, whoever sends.
    servers = replicas(3, erp(peer, "    rate_limit: 4/s"), dispatcher="  lease: 2s\n  batch: 2")
    for n, server in enumerate(servers):
        assert server.push(packages(n * 4, 4, prefix="RATE"), wait=False).status_code == 200
    servers[0].wait_for(lambda: len(peer.requests("/erp")) >= 12, timeout=30)
    arrivals = sorted(r.at for r in peer.requests("/erp"))
    # At most 4 in any one second: every fifth send is a second after the first, less the
    # jitter of a local HTTP request (a process sends at its slot, give or take a few ms).
    gaps = [later - first for first, later in zip(arrivals, arrivals[4:], strict=False)]
    assert min(gaps) >= 0.9, gaps


def test_work_one_replica_stores_wakes_the_others_at_once(replicas: Replicas, peer: Peer) -> None:
    # The replica taking the push in runs no dispatcher; the one that does looks at the store
    # only once a minute on its own: only the notification can make it send sooner.
    sender, receiver = replicas(
        2, erp(peer), dispatcher="  poll_interval: 60s", without_dispatcher=1
    )
    assert receiver.push(packages(0, 3, prefix="WAKE"), wait=False).status_code == 200
    sender.wait_for(lambda: len(by_webhook_id(peer)) == 3, timeout=15)
