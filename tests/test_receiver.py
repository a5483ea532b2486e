"""The receiver in-process: what it answers when the store fails, and its auth rules."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway import metrics
from gateway.app import create_app
from gateway.config import parse_config
from gateway.errors import StoreError
from gateway.receiver import push_shop
from gateway.runtime import Runtime
from gateway.shops import Shops
from gateway.sources.registry import get_source
from gateway.store import NewPush
from tests.waiting import eventually

PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "S-1"}]}'
HEADERS = {"Authorization": "Bearer t0ken"}
ADMIN = {"Authorization": "Bearer adm1n-adm1n-adm1n"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-adm1n-adm1n}}
dispatcher: {{enabled: false}}
"""
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


def runtime(client: TestClient[Litestar]) -> Runtime:
    rt: Runtime = client.app.state.runtime
    return rt


def test_503_when_the_store_cannot_commit(
    client: TestClient[Litestar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(runtime(client).store, "append_push", broken)
    r = client.post("/kiriminaja/push", content=PUSH, headers=HEADERS)
    assert r.status_code == 503
    assert r.json()["error"] == "store_unavailable"


def test_503_when_a_rejected_body_cannot_be_kept(
    client: TestClient[Litestar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(runtime(client).store, "reject", broken)
    r = client.post("/kiriminaja/push", content=b"not json", headers=HEADERS)
    assert r.status_code == 503  # KiriminAja sends it again rather than it being lost


def test_readyz_is_503_when_the_store_is_unusable(
    client: TestClient[Litestar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the SQLite writer is not running")

    assert client.get("/readyz").status_code == 200
    monkeypatch.setattr(runtime(client).store, "ping", broken)
    r = client.get("/readyz")
    assert r.status_code == 503
    assert "writer" in r.json()["detail"]


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer t0ken", True),
        ("bearer t0ken", True),
        ("t0ken", True),
        ("  Bearer   t0ken  ", True),
        ("Bearer t0ken2", False),
        ("Basic t0ken", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_authorised(header: str | None, ok: bool) -> None:
    shops = Shops.from_config(parse_config("receiver: {token: t0ken}", env={}))
    shop = push_shop(shops, header, None)
    assert (shop is not None and shop.id == "default") is ok


def processed(client: TestClient[Litestar], push: bytes) -> dict[str, object]:
    """POST a push and wait until the intake has taken it; its log entry."""
    r = client.post("/kiriminaja/push", content=push, headers=HEADERS)
    assert r.status_code == 200, r.text

    def taken() -> dict[str, object] | None:
        entry = client.get(f"/admin/v1/pushes/{r.json()['push_id']}", headers=ADMIN).json()["push"]
        return dict(entry) if entry["state"] != "pending" else None

    return asyncio.run(eventually(taken))


def sample(name: str, **labels: str) -> float:
    value = metrics.REGISTRY.get_sample_value(name, labels)
    return value or 0.0


def test_invalid_utf8_in_a_string_is_400_and_kept(client: TestClient[Litestar]) -> None:
    body = b'{"method":"shipped_packages","data":[{"order_id":"A\xff"}]}'
    r = client.post("/kiriminaja/push", content=body, headers=HEADERS)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_push"
    kept = client.get("/admin/v1/rejected", headers=ADMIN).json()
    assert [item["body"] for item in kept["items"]] == [body.decode(errors="replace")]


def test_a_nul_character_in_a_string_is_400_and_kept(client: TestClient[Litestar]) -> None:
    body = rb'{"method":"shipped_packages","data":[{"order_id":"A\u0000B"}]}'
    r = client.post("/kiriminaja/push", content=body, headers=HEADERS)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_push"
    assert r.json()["path"] == "$.data[0].order_id"
    kept = client.get("/admin/v1/rejected", headers=ADMIN).json()
    assert [item["body"] for item in kept["items"]] == [body.decode()]


def test_deep_nesting_is_400_and_kept(client: TestClient[Litestar]) -> None:
    body = b'{"method": "x", "data": [{"order_id": "D-1", "x": ' + b"[" * 1000 + b"]" * 1000
    r = client.post("/kiriminaja/push", content=body + b"}]}", headers=HEADERS)
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_push"
    kept = client.get("/admin/v1/rejected", headers=ADMIN).json()
    assert len(kept["items"]) == 1


def test_events_count_stored_events_and_duplicates_apart(client: TestClient[Litestar]) -> None:
    push = b'{"method": "shipped_packages", "data": [{"order_id": "M-1"}, {"order_id": "M-2"}]}'
    labels = {"method": "shipped_packages", "status": "shipped", "shop": "default"}
    before = sample("kabarin_events_total", **labels)
    duplicates = sample("kabarin_events_duplicate_total")
    assert processed(client, push)["accepted"] == 2
    assert processed(client, push)["duplicates"] == 2
    # the intake counts a batch just after its commit, which `processed` may see first
    asyncio.run(eventually(lambda: sample("kabarin_events_total", **labels) == before + 2))
    asyncio.run(eventually(lambda: sample("kabarin_events_duplicate_total") == duplicates + 2))


def test_method_labels_are_bounded(client: TestClient[Litestar]) -> None:
    for method in ("shipped_package", "made_up_method_x1", "made_up_method_x2"):
        body = f'{{"method": "{method}", "data": [{{"order_id": "L-{method}"}}]}}'
        assert processed(client, body.encode())["state"] == "processed"
    methods = {
        s.labels["method"]
        for family in metrics.REGISTRY.collect()
        if family.name in ("kabarin_pushes", "kabarin_events")
        for s in family.samples
    }
    assert "shipped_packages" in methods
    assert "other" in methods
    assert not {m for m in methods if m.startswith("made_up") or m == "shipped_package"}


@pytest.mark.parametrize(
    ("method", "label"),
    [
        ("shipped_packages", "shipped_packages"),
        ("Shipped_Package", "shipped_packages"),
        ("cancelled_packages", "canceled_packages"),
        ("update_instant_package", "update_instant_packages"),
        ("' OR 1=1 --", "other"),
        ("", "other"),
    ],
)
def test_method_label(method: str, label: str) -> None:
    assert metrics.method_label(method, get_source("kiriminaja")) == label


def test_each_accepted_push_is_logged_at_debug(
    client: TestClient[Litestar], caplog: pytest.LogCaptureFixture
) -> None:
    push = b'{"method": "shipped_packages", "data": [{"order_id": "G-1"}, {"order_id": "G-1"}]}'

    def lines(entry_id: str) -> list[logging.LogRecord]:
        return [
            r for r in caplog.records if r.name == "kabarin.intake" and entry_id in r.getMessage()
        ]

    with caplog.at_level(logging.DEBUG, logger="kabarin.intake"):
        entry = processed(client, push)
        asyncio.run(eventually(lambda: lines(str(entry["id"]))))  # logged after the commit
    (line,) = lines(str(entry["id"]))
    assert line.levelno == logging.DEBUG
    for part in ("shipped_packages", "2 items", "1 accepted", "1 duplicate", "ms"):
        assert part in line.getMessage()


def test_a_push_counts_as_being_received_until_it_is_answered(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt = runtime(client)
    append = rt.store.append_push
    during: list[int] = []

    async def watched(push: NewPush) -> None:
        during.append(rt.backlog.requests)
        await append(push)

    monkeypatch.setattr(rt.store, "append_push", watched)
    assert client.post("/kiriminaja/push", content=PUSH, headers=HEADERS).status_code == 200
    assert during == [1]  # the intake takes small batches meanwhile
    assert rt.backlog.requests == 0
    assert client.post("/kiriminaja/push", content=b"{", headers=HEADERS).status_code == 400
    assert rt.backlog.requests == 0


@pytest.mark.parametrize(
    ("sinks", "routes", "said"),
    [
        (0, 0, ", 0 sinks, 0 routes"),
        (1, 1, ", 1 sink, 1 route"),
        (2, 1, ", 2 sinks, 1 route"),
        (1, 2, ", 1 sink, 2 routes"),
    ],
)
def test_the_ready_line_counts_sinks_and_routes_in_words(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sinks: int, routes: int, said: str
) -> None:
    names = [f"out{n}" for n in range(sinks)]
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
dispatcher: {{enabled: false}}
sinks: {{{", ".join(f"{name}: {{type: console}}" for name in names)}}}
routes: [{", ".join(f"{{name: r{n}, sinks: [{names[0]}]}}" for n in range(routes))}]
"""
    )
    with caplog.at_level(logging.INFO, logger="kabarin"), TestClient(create_app(config)):
        pass
    (ready,) = [r.getMessage() for r in caplog.records if " ready" in r.getMessage()]
    assert ready.endswith(said), ready
