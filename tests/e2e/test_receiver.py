"""The push endpoint and the admin read API, against the real `kabarin serve` process.

Most tests share one server (`shared_server`): each keeps to order ids no other test here
uses, and one that shows nothing was stored compares with what was there before it. A test that
needs the whole store to itself (pagination, counting everything) starts its own.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from .conftest import FIXTURES, PUSH_TOKEN, KabarinProcess

EXPECTED_STATUS = {
    "processed_packages": ["processed"],
    "shipped_packages": ["shipped"],
    "canceled_packages": ["canceled"],
    "finished_packages": ["delivered"],
    "returned_packages": ["returned"],
    "return_finished_packages": ["returned", "returned"],
    "update_instant_packages": ["canceled"],
    "complete_processed_packages": ["processed"],
    "complete_instant_shipped_packages": ["shipped"],
}


def batch(n: int, method: str = "shipped_packages", prefix: str = "OID") -> dict[str, Any]:
    return {
        "method": method,
        "data": [
            {"order_id": f"{prefix}-{i}", "shipped_at": f"2024-03-0{1 + i % 9} 10:00:00"}
            for i in range(n)
        ],
    }


@pytest.mark.parametrize("name", sorted(EXPECTED_STATUS))
def test_every_fixture_is_accepted_and_listed(shared_server: KabarinProcess, name: str) -> None:
    # No two fixtures share an order id and a status: each one's events are new here.
    server = shared_server
    body = (FIXTURES / f"{name}.json").read_bytes()
    assert server.ingest(body) == {"accepted": len(EXPECTED_STATUS[name]), "duplicates": 0}
    method = json.loads(body)["method"]
    order_ids = {item["order_id"] for item in _items(json.loads(body))}
    # every event of these orders that this push made (the count above says there are no more)
    events = [e for o in sorted(order_ids) for e in server.events(order_id=o)]
    events = [e for e in events if e["method"] == method]
    assert sorted(e["status"] for e in events) == EXPECTED_STATUS[name]
    assert {e["order_id"] for e in events} == order_ids


def _items(push: dict[str, Any]) -> list[dict[str, Any]]:
    data = push["data"]
    return data if isinstance(data, list) else [data]


def fixture_as(name: str, order_id: str) -> dict[str, Any]:
    """A fixture push with its one item's order id changed to `order_id` (a new order)."""
    push: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_bytes())
    (item,) = _items(push)
    item["order_id"] = order_id
    return push


def stored(server: KabarinProcess) -> list[dict[str, Any]]:
    """Every event, once the intake has taken every push in the log."""
    server.drained()
    return server.events()


def test_push_times_are_read_in_jakarta_and_kept_with_zone(shared_server: KabarinProcess) -> None:
    server = shared_server
    server.push(fixture_as("shipped_packages", "TZ-1"))
    (event,) = server.events(order_id="TZ-1")
    # 2022-05-05 00:00:00 in Asia/Jakarta (UTC+7)
    assert event["occurred_at"] in ("2022-05-04T17:00:00Z", "2022-05-04T17:00:00+00:00")


def test_bare_token_without_bearer_prefix_is_accepted(shared_server: KabarinProcess) -> None:
    r = shared_server.client.post(
        "/kiriminaja/push",
        content=json.dumps(fixture_as("finished_packages", "BARE-1")).encode(),
        headers={"Authorization": PUSH_TOKEN, "Content-Type": "application/json"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("token", [None, "wrong-token", PUSH_TOKEN + "x", PUSH_TOKEN[:-1]])
def test_wrong_or_missing_token_is_401_and_stores_nothing(
    shared_server: KabarinProcess, token: str | None
) -> None:
    server, before = shared_server, stored(shared_server)
    r = server.push(fixture_as("shipped_packages", "NOAUTH-1"), token=token)
    assert r.status_code == 401
    assert r.json()["error"] == "unauthorized"
    assert stored(server) == before


def test_bad_json_is_400_with_a_reason(shared_server: KabarinProcess) -> None:
    server, before = shared_server, stored(shared_server)
    r = server.push(b'{"method": "shipped_packages", "data": [')
    assert r.status_code == 400
    body = r.json()
    assert body["error"] == "invalid_push"
    assert "JSON" in body["detail"] or "truncated" in body["detail"].lower()
    assert stored(server) == before


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"data": []}, "$.method"),
        ({"method": "shipped_packages", "data": "nope"}, "$.data"),
        (
            {"method": "shipped_packages", "data": [{"order_id": "A"}, {"shipped_at": "x"}]},
            "$.data[1].order_id",
        ),
    ],
)
def test_json_that_is_not_a_push_is_400_naming_the_path(
    shared_server: KabarinProcess, body: dict[str, Any], path: str
) -> None:
    server, before = shared_server, stored(shared_server)
    r = server.push(body)
    assert r.status_code == 400, r.text
    assert r.json()["path"] == path
    assert stored(server) == before


def test_rejected_bodies_are_kept_when_authenticated(shared_server: KabarinProcess) -> None:
    server = shared_server
    before = server.admin("GET", "/rejected").json()["items"]
    server.push(b"not json at all")
    server.push(b"also not json", token="wrong")  # unauthenticated: not kept
    r = server.admin("GET", "/rejected")
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [i["body"] for i in items if i not in before] == ["not json at all"]


def test_oversize_body_is_413(shared_server: KabarinProcess) -> None:
    server, before = shared_server, stored(shared_server)
    r = server.push(batch(2000, prefix="BIG"))  # config allows 64 KiB
    assert r.status_code == 413
    assert r.json()["error"] == "body_too_large"
    assert stored(server) == before


def test_oversize_chunked_body_without_length_is_413(shared_server: KabarinProcess) -> None:
    server, before = shared_server, stored(shared_server)

    def chunks() -> Iterator[bytes]:
        yield b'{"method": "shipped_packages", "data": ['
        for i in range(3000):
            yield b'{"order_id": "CH-%d"},' % i
        yield b'{"order_id": "last"}]}'

    r = server.client.post(
        "/kiriminaja/push",
        content=chunks(),
        headers={"Authorization": f"Bearer {PUSH_TOKEN}", "Content-Type": "application/json"},
    )
    assert r.status_code == 413
    assert stored(server) == before


def test_get_on_the_push_path_is_405(shared_server: KabarinProcess) -> None:
    r = shared_server.client.get("/kiriminaja/push")
    assert r.status_code == 405


def test_the_same_push_twice_is_stored_once(shared_server: KabarinProcess) -> None:
    server, before = shared_server, stored(shared_server)
    body = batch(20, prefix="TWICE")
    first = server.push(body, wait=False)
    second = server.push(body, wait=False)
    assert first.status_code == second.status_code == 200
    assert first.json()["push_id"] != second.json()["push_id"]  # both kept in the log
    assert first.json()["items"] == second.json()["items"] == 20
    assert server.processed(first.json()["push_id"])["accepted"] == 20
    again = server.processed(second.json()["push_id"])
    assert (again["accepted"], again["duplicates"]) == (0, 20)
    new = [e for e in stored(server) if e not in before]
    assert sorted(e["order_id"] for e in new) == sorted(f"TWICE-{i}" for i in range(20))


def test_batch_with_the_same_order_twice(shared_server: KabarinProcess) -> None:
    item = {"order_id": "DUP-1", "shipped_at": "2024-01-01 08:00:00"}
    assert shared_server.ingest({"method": "shipped_packages", "data": [item, item]}) == {
        "accepted": 1,
        "duplicates": 1,
    }


def test_admin_filters_and_pagination(server: KabarinProcess) -> None:
    server.push(batch(5))
    server.push((FIXTURES / "canceled_packages.json").read_bytes())
    assert [e["order_id"] for e in server.events(status="canceled")] == ["X"]
    assert [e["order_id"] for e in server.events(order_id="OID-3")] == ["OID-3"]

    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = server.admin("GET", "/events", params=params).json()
        seen += [e["order_id"] for e in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["X", "OID-4", "OID-3", "OID-2", "OID-1", "OID-0"]  # newest first

    future = server.events(since="2999-01-01T00:00:00Z")
    assert future == []


def test_admin_event_detail_has_the_raw_item(shared_server: KabarinProcess) -> None:
    server = shared_server
    raw = fixture_as("update_instant_packages", "DETAIL-1")
    server.push(raw)
    (summary,) = server.events(order_id="DETAIL-1")
    r = server.admin("GET", f"/events/{summary['id']}")
    assert r.status_code == 200
    event = r.json()["event"]
    assert event["raw"] == raw["data"]
    assert event["kind"] == "instant"
    assert server.admin("GET", "/events/evt_missing").status_code == 404


def test_admin_needs_its_token(shared_server: KabarinProcess) -> None:
    server = shared_server
    assert server.client.get("/admin/v1/events").status_code == 401
    r = server.client.get("/admin/v1/events", headers={"Authorization": f"Bearer {PUSH_TOKEN}"})
    assert r.status_code == 401


def test_health_and_openapi(shared_server: KabarinProcess) -> None:
    server = shared_server
    assert server.client.get("/healthz").json() == {"status": "ok"}
    assert server.client.get("/readyz").json() == {"status": "ready"}
    schema = server.client.get("/schema/openapi.json").json()
    assert "/admin/v1/events" in schema["paths"]
    assert "/admin/v1/deliveries/{delivery_id}" in schema["paths"]


def test_kill_9_after_200_loses_nothing(make_server: Callable[..., KabarinProcess]) -> None:
    server = make_server()
    acknowledged = 0
    for i in range(10):
        r = server.push(batch(50, prefix=f"K{i}"), wait=False)
        assert r.status_code == 200
        acknowledged += r.json()["items"]
    server.kill9()
    server.start()
    assert acknowledged == 500
    server.drained()  # what was pending at the kill is taken up after the restart
    assert _count_all(server) == acknowledged


def _count_all(server: KabarinProcess) -> int:
    total, cursor = 0, None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor is not None:
            params["cursor"] = cursor
        page = server.admin("GET", "/events", params=params).json()
        total += len(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return total


def test_unknown_method_is_kept_as_unknown(shared_server: KabarinProcess) -> None:
    server = shared_server
    r = server.push({"method": "teleported_packages", "data": [{"order_id": "T1", "x": 1}]})
    assert r.status_code == 200
    (event,) = server.events(order_id="T1")
    assert event["status"] == "unknown"
    detail = server.admin("GET", f"/events/{event['id']}").json()["event"]
    assert detail["raw"] == {"order_id": "T1", "x": 1}


def test_concurrent_pushes_all_commit(shared_server: KabarinProcess) -> None:
    import asyncio

    server = shared_server
    server.drained()
    before = _count_all(server)

    async def run() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url) as client:
            headers = {"Authorization": f"Bearer {PUSH_TOKEN}"}

            async def one(i: int) -> int:
                r = await client.post(
                    "/kiriminaja/push", json=batch(10, prefix=f"C{i}"), headers=headers
                )
                return r.status_code

            return await asyncio.gather(*(one(i) for i in range(40)))

    assert asyncio.run(run()) == [200] * 40
    server.drained()
    assert _count_all(server) == before + 400
