"""The receiver in-process: what it answers when the store fails, and its auth rules."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import Runtime, create_app
from gateway.config import parse_config
from gateway.errors import StoreError
from gateway.receiver import authorised

PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "S-1"}]}'
HEADERS = {"Authorization": "Bearer t0ken"}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n}}
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

    monkeypatch.setattr(runtime(client).store, "ingest", broken)
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
    async def broken() -> None:
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
    assert authorised(header, b"t0ken") is ok
