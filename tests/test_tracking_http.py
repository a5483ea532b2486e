"""The tracking page's HTTP answers in-process (the real app, no intake or dispatcher): the 404
of a bad link in the default brand, HEAD answered like GET, and the lookup's count by AWB. The page
end to end, in a browser, is tests/e2e/test_tracking_page.py."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

import gateway.tracking_page.page as tracking_page
from gateway.access import client_key
from gateway.app import create_app
from gateway.config import load_config, parse_config
from gateway.events import Contact, Event, Status
from gateway.runtime import Runtime
from gateway.tracking_page import LinkSigner

from .conftest import ingest

SECRET = "tracking-page-http-secret-0123456789"
PUBLIC = "https://lacak.toko.example"
ORDER = "OID-HTTP-1"
ADMIN = {"Authorization": "Bearer adm1n-token-for-tests"}


def _config(tmp_path: Path, default_brand: str, *, enabled: bool = True) -> str:
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
  enabled: {str(enabled).lower()}
  secret: {SECRET}
  public_url: {PUBLIC}
  {default_brand}
routes: []
sinks: {{}}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    yield from _client(tmp_path)


@pytest.fixture
def page_off(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    yield from _client(tmp_path, enabled=False)


def _client(tmp_path: Path, *, enabled: bool = True) -> Iterator[TestClient[Litestar]]:
    brand = "brand: {name: Grup Sari, color: '#123456'}"
    config = parse_config(_config(tmp_path, brand, enabled=enabled))
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


def test_ten_misses_of_one_awb_from_ten_addresses_refuse_it_even_with_the_right_digits(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt: Runtime = client.app.state.runtime
    moment = datetime.now(UTC) - timedelta(hours=1)
    events = [
        Event(
            id=f"evt-awb-{awb}",
            source="push",
            method="shipped_packages",
            kind="express",
            status=Status.SHIPPED,
            order_id=f"OID-{awb}",
            shop="toko-sari",
            awb=awb,
            occurred_at=moment,
            received_at=moment,
        )
        for awb in ("SICEPAT-A1", "SICEPAT-B2")
    ]
    contacts = [
        Contact(order_id=e.order_id, shop="toko-sari", phone="081234567890") for e in events
    ]
    client.blocking_portal.call(partial(ingest, rt.store, events=events, contacts=contacts))
    # Each request from another IPv6 /64 (all of one /56): no client reaches its own limit.
    addresses = iter(f"2001:db8:0:{n:x}::1" for n in range(256))
    monkeypatch.setattr(tracking_page, "client_key", lambda _host: client_key(next(addresses)))
    misses = [
        client.post("/t", data={"awb": awb, "phone_last4": last4})
        for awb, last4 in [("sicepat-a1", f"{n:04d}") for n in range(9)] + [("SICEPAT-A1", "12")]
    ]
    assert {m.status_code for m in misses} == {200}
    assert all("Tidak ada paket yang cocok." in m.text for m in misses)
    # An eleventh address with the right digits learns nothing: the same generic miss.
    right = client.post(
        "/t", data={"awb": "SICEPAT-A1", "phone_last4": "7890"}, follow_redirects=False
    )
    assert right.status_code == 200 and right.text == misses[-1].text
    # Another AWB still works, and a made-up one takes no room in the count by AWB.
    other = client.post(
        "/t", data={"awb": "SICEPAT-B2", "phone_last4": "7890"}, follow_redirects=False
    )
    assert other.status_code == 303 and "/t/" in other.headers["location"]
    assert client.post("/t", data={"awb": "NO-SUCH-AWB", "phone_last4": "7890"}).status_code == 200
    assert len(client.app.state[tracking_page.AWB_LOOKUPS]) == 1


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


def test_staff_see_the_orders_tracking_link_in_the_admin_api_and_the_dashboard(
    client: TestClient[Litestar],
) -> None:
    answer = client.get(f"/admin/v1/orders/{ORDER}", params={"shop": "toko-sari"}, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    url = answer.json()["tracking_url"]
    assert url.startswith(f"{PUBLIC}/t/")
    link = LinkSigner(SECRET, PUBLIC, 86400).verify(url.rsplit("/", 1)[1], now=datetime.now(UTC))
    assert (link.shop, link.order_id) == ("toko-sari", ORDER)
    assert client.get(url.removeprefix(PUBLIC)).status_code == 200
    signed = client.post("/ui/login", data={"token": "adm1n-token-for-tests"})
    assert signed.status_code == 200, signed.text
    page = client.get("/ui/orders/view", params={"id": ORDER})
    assert page.status_code == 200
    (shown,) = re.findall(r'<a id="tracking-url" href="([^"]+)"', page.text)
    assert shown.startswith(f"{PUBLIC}/t/") and client.get(shown.removeprefix(PUBLIC)).is_success


def test_with_the_page_off_staff_see_no_tracking_link(page_off: TestClient[Litestar]) -> None:
    answer = page_off.get(f"/admin/v1/orders/{ORDER}", params={"shop": "toko-sari"}, headers=ADMIN)
    assert answer.status_code == 200 and answer.json()["tracking_url"] is None
    page_off.post("/ui/login", data={"token": "adm1n-token-for-tests"})
    page = page_off.get("/ui/orders/view", params={"id": ORDER})
    assert page.status_code == 200 and "tracking-url" not in page.text and "/t/" not in page.text


def test_a_reload_names_the_tracking_page_when_it_changed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(_config(tmp_path, "", enabled=False))
    with TestClient(create_app(load_config(path), config_path=path)) as client:
        path.write_text(_config(tmp_path, "", enabled=True))
        with caplog.at_level(logging.INFO, logger="kabarin.reload"):
            r = client.post("/admin/v1/reload", headers=ADMIN)
        assert r.status_code == 200 and r.json()["ok"], r.text
        assert r.json()["sections_changed"] == ["tracking_page"]
        (logged,) = [m for m in caplog.messages if m.startswith("configuration reloaded")]
        assert "sections changed: tracking_page" in logged and SECRET not in logged
        again = client.post("/admin/v1/reload", headers=ADMIN).json()
        assert again["ok"] and again["sections_changed"] == []
