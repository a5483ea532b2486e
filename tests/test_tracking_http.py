"""The tracking page's HTTP answers in-process (the real app, no intake or dispatcher): the 404
of a bad link in the default brand, and HEAD answered like GET. The page end to end, in a
browser, is tests/e2e/test_tracking_page.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from gateway.events import Contact, Event, Status
from gateway.runtime import Runtime
from gateway.tracking_page import LinkSigner

from .conftest import ingest

SECRET = "tracking-page-http-secret-0123456789"
PUBLIC = "https://lacak.toko.example"
ORDER = "OID-HTTP-1"


def _config(tmp_path: Path, default_brand: str) -> str:
    return f"""
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-token-for-tests}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
shops:
  toko-sari:
    token: toko-sari-kiriminaja-key
    brand: {{name: Toko Sari}}
  butik-bunga:
    token: butik-bunga-kiriminaja-key
    brand: {{name: Butik Bunga}}
tracking_page:
  enabled: true
  secret: {SECRET}
  public_url: {PUBLIC}
  {default_brand}
routes: []
sinks: {{}}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(_config(tmp_path, "brand: {name: Grup Sari, color: '#123456'}"))
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        rt: Runtime = client.app.state.runtime
        moment = datetime.now(UTC) - timedelta(hours=1)
        shipped = Event(
            id="evt-http-shipped",
            source="push",
            method="shipped_packages",
            kind="express",
            status=Status.SHIPPED,
            order_id=ORDER,
            shop="toko-sari",
            awb="JNE777",
            occurred_at=moment,
            received_at=moment,
        )
        contact = Contact(order_id=ORDER, shop="toko-sari", name="Ibu Ratna Sari")
        client.blocking_portal.call(partial(ingest, rt.store, events=[shipped], contacts=[contact]))
        yield client


def _token(shop: str, order_id: str, *, days: float = 1) -> str:
    return LinkSigner(SECRET, PUBLIC, 86400).sign(
        shop, order_id, datetime.now(UTC) + timedelta(days=days)
    )


def test_a_bad_link_is_404_in_the_default_brand_never_a_shops(
    client: TestClient[Litestar],
) -> None:
    assert client.get(f"/t/{_token('toko-sari', ORDER)}").status_code == 200
    bad = [
        client.get(f"/t/{t}")
        for t in ("nonsense", _token("toko-sari", "OID-NOT-THERE"), _token("nowhere", ORDER))
    ]
    assert [a.status_code for a in bad] == [404, 404, 404]
    assert len({a.text for a in bad}) == 1, "no hint which shop or order"
    html = bad[0].text
    assert 'id="shop">Grup Sari<' in html and "#123456" in html
    assert "Kabarin" not in html and "Toko Sari" not in html and "Butik Bunga" not in html


def test_without_a_default_brand_name_the_404_says_kabarin(tmp_path: Path) -> None:
    config = parse_config(_config(tmp_path, ""))
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        answer = client.get("/t/nonsense")
    assert answer.status_code == 404 and 'id="shop">Kabarin<' in answer.text


def test_head_answers_like_get_without_a_body(client: TestClient[Litestar]) -> None:
    for path in (f"/t/{_token('toko-sari', ORDER)}", "/t", "/t/nonsense"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code, path
        assert head.content == b"" and got.content
        assert head.headers["content-length"] == str(len(got.content))
        for name in ("etag", "content-type", "content-security-policy", "cache-control"):
            assert head.headers.get(name) == got.headers.get(name), (path, name)
    page = f"/t/{_token('toko-sari', ORDER)}"
    etag = client.get(page).headers["etag"]
    assert client.head(page, headers={"If-None-Match": etag}).status_code == 304
