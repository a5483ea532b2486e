"""The admin API with two shops and a scoped token, on every backend: `?shop=` filters every
list, contacts and orders need it, an unknown shop is a 400, and a token of one shop sees only
that shop's records (another's are 404) and none of what acts on the whole deployment (403)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from gateway.delivery.model import NewDelivery
from gateway.events import Contact, Event, Status
from gateway.store import NewPush, RejectedRequest

from .conftest import ingest, store_url
from .test_admin import ADMIN, SLACK_URL, runtime

OWNER_A = {"Authorization": "Bearer toko-a-0wner-token"}
MOMENT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def shops(backend: str, tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    """Two shops, each with one push, one rejected body, one event (of one order id, OID-1)
    with a delivery, and one contact of that order."""
    config = parse_config(
        f"""
shops:
  toko-a: {{name: Toko A, token: t0ken-of-toko-a-1234}}
  toko-b: {{name: Toko B, token: t0ken-of-toko-b-1234}}
store: {{url: "{store_url(backend, tmp_path)}"}}
admin:
  token: adm1n-adm1n-adm1n
  tokens:
    - {{token: toko-a-0wner-token, shops: [toko-a]}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
sinks:
  ops: {{type: slack, webhook_url: "{SLACK_URL}"}}
"""
    )
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        store = runtime(client).store
        events = [_shipped(shop) for shop in ("toko-a", "toko-b")]
        client.blocking_portal.call(
            partial(
                ingest,
                store,
                events=events,
                deliveries=[
                    NewDelivery(
                        id=f"dlv-{e.shop}", event_id=e.id, route="r", sink="ops", ordering="all"
                    )
                    for e in events
                ],
                contacts=[Contact(order_id="OID-1", shop=e.shop, name=e.shop) for e in events],
                now=MOMENT,
            )
        )
        for shop in ("toko-a", "toko-b"):
            push = NewPush(
                id=f"psh-{shop}", source="push", shop=shop, received_at=MOMENT, body=b"{}"
            )
            client.blocking_portal.call(store.append_push, push)
            rejected = RejectedRequest(received_at=MOMENT, reason="x", body=b"{", shop=shop)
            client.blocking_portal.call(store.reject, rejected)
        yield client


def _shipped(shop: str) -> Event:
    return Event(
        id=f"evt-{shop}",
        shop=shop,
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id="OID-1",
        occurred_at=MOMENT,
        received_at=MOMENT,
    )


LISTS = ["/events", "/pushes", "/deliveries", "/rejected"]


@pytest.mark.parametrize("path", LISTS)
def test_shop_filters_every_list(shops: TestClient[Litestar], path: str) -> None:
    every = shops.get(f"/admin/v1{path}", headers=ADMIN).json()["items"]
    assert sorted(item["shop"] for item in every) == ["toko-a", "toko-b"]
    only_b = shops.get(f"/admin/v1{path}", params={"shop": "toko-b"}, headers=ADMIN)
    assert [item["shop"] for item in only_b.json()["items"]] == ["toko-b"]


@pytest.mark.parametrize("path", LISTS)
def test_a_scoped_token_lists_its_shops_only(shops: TestClient[Litestar], path: str) -> None:
    mine = shops.get(f"/admin/v1{path}", headers=OWNER_A)
    assert mine.status_code == 200, mine.text
    assert [item["shop"] for item in mine.json()["items"]] == ["toko-a"]
    # Another shop, named, is as if it did not exist: 404, like an unknown one to this token.
    for other in ("toko-b", "toko-z"):
        r = shops.get(f"/admin/v1{path}", params={"shop": other}, headers=OWNER_A)
        assert r.status_code == 404, r.text


@pytest.mark.parametrize("path", [*LISTS, "/orders/OID-1", "/contacts/OID-1"])
def test_an_unknown_shop_is_400_naming_the_parameter(
    shops: TestClient[Litestar], path: str
) -> None:
    r = shops.get(f"/admin/v1{path}", params={"shop": "toko-z"}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["detail"].startswith("shop: ")


@pytest.mark.parametrize("path", ["/orders/OID-1", "/contacts/OID-1"])
def test_contacts_and_orders_need_the_shop_among_several(
    shops: TestClient[Litestar], path: str
) -> None:
    r = shops.get(f"/admin/v1{path}", headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "shop: name the shop: one of toko-a, toko-b"
    assert shops.get(f"/admin/v1{path}", params={"shop": "toko-b"}, headers=ADMIN).is_success
    # A token of one shop means that shop; another is 404 to it.
    assert shops.get(f"/admin/v1{path}", headers=OWNER_A).is_success
    r = shops.get(f"/admin/v1{path}", params={"shop": "toko-b"}, headers=OWNER_A)
    assert r.status_code == 404, r.text


def test_an_order_and_a_contact_are_their_shops(shops: TestClient[Litestar]) -> None:
    order = shops.get("/admin/v1/orders/OID-1", params={"shop": "toko-b"}, headers=ADMIN).json()
    assert order["shop"] == "toko-b"
    assert [e["id"] for e in order["events"]] == ["evt-toko-b"]
    assert [d["id"] for d in order["deliveries"]] == ["dlv-toko-b"]
    assert order["contact"]["name"] == "toko-b"
    r = shops.put(
        "/admin/v1/contacts/OID-1",
        params={"shop": "toko-a"},
        json={"name": "Ani"},
        headers=OWNER_A,
    )
    assert r.status_code == 200, r.text
    assert r.json()["shop"] == "toko-a"
    b = shops.get("/admin/v1/contacts/OID-1", params={"shop": "toko-b"}, headers=ADMIN).json()
    assert b["name"] == "toko-b"
    r = shops.delete("/admin/v1/contacts/OID-1", params={"shop": "toko-b"}, headers=OWNER_A)
    assert r.status_code == 404
    assert shops.delete("/admin/v1/contacts/OID-1", headers=OWNER_A).status_code == 204
    assert shops.get(
        "/admin/v1/contacts/OID-1", params={"shop": "toko-b"}, headers=ADMIN
    ).is_success


def test_another_shops_records_are_404_to_a_scoped_token(shops: TestClient[Litestar]) -> None:
    rejected = {
        r["shop"]: r["id"] for r in shops.get("/admin/v1/rejected", headers=ADMIN).json()["items"]
    }
    for shop, status in (("toko-a", 200), ("toko-b", 404)):
        for method, url in [
            ("GET", f"/admin/v1/events/evt-{shop}"),
            ("GET", f"/admin/v1/pushes/psh-{shop}"),
            ("GET", f"/admin/v1/pushes/psh-{shop}/body"),
            ("GET", f"/admin/v1/deliveries/dlv-{shop}"),
            ("GET", f"/admin/v1/rejected/{rejected[shop]}"),
        ]:
            r = shops.request(method, url, headers=OWNER_A)
            assert r.status_code == status, (url, r.text)
            assert shops.request(method, url, headers=ADMIN).status_code == 200
    r = shops.post("/admin/v1/deliveries/dlv-toko-b/replay", headers=OWNER_A)
    assert r.status_code == 404  # not dead anyway, but the answer must not say so
    assert "pending" not in r.text
    r = shops.post(f"/admin/v1/rejected/{rejected['toko-b']}/replay", headers=OWNER_A)
    assert r.status_code == 404


def test_an_event_shows_its_shops_contact_and_deliveries(shops: TestClient[Litestar]) -> None:
    detail = shops.get("/admin/v1/events/evt-toko-b", headers=ADMIN).json()
    assert detail["contact"]["name"] == "toko-b"
    assert [d["id"] for d in detail["deliveries"]] == ["dlv-toko-b"]


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("POST", "/admin/v1/reload"),
        ("GET", "/admin/v1/sinks"),
        ("POST", "/admin/v1/sinks/ops/enable"),
        ("POST", "/admin/v1/deliveries/replay"),
        ("POST", "/admin/v1/deliveries/replay?shop=toko-a"),
        ("POST", "/admin/v1/pushes/reprocess"),
    ],
)
def test_what_acts_on_the_whole_deployment_is_403_to_a_scoped_token(
    shops: TestClient[Litestar], method: str, url: str
) -> None:
    r = shops.request(method, url, headers=OWNER_A)
    assert r.status_code == 403, r.text
    assert "admin.token" in r.json()["detail"]


def test_a_replay_by_filter_keeps_to_the_shop_asked_for(shops: TestClient[Litestar]) -> None:
    r = shops.post("/admin/v1/deliveries/replay", params={"shop": "toko-b"}, headers=ADMIN)
    assert r.status_code == 200 and r.json() == {"replayed": 0}
    r = shops.post("/admin/v1/deliveries/replay", params={"shop": "toko-z"}, headers=ADMIN)
    assert r.status_code == 400


def test_a_scoped_token_is_a_right_token_to_the_limiter(shops: TestClient[Litestar]) -> None:
    wrong = {"Authorization": "Bearer not-a-token-at-all"}
    for _ in range(9):
        assert shops.get("/admin/v1/events", headers=wrong).status_code == 401
    assert shops.get("/admin/v1/events", headers=OWNER_A).status_code == 200
    # Its success forgot the slips: nine more wrong ones are still not too many.
    for _ in range(9):
        assert shops.get("/admin/v1/events", headers=wrong).status_code == 401
    assert shops.get("/admin/v1/events", headers=OWNER_A).status_code == 200


def test_with_one_shop_nothing_needs_naming(tmp_path: Path) -> None:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-adm1n-adm1n}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
"""
    )
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        r = client.put("/admin/v1/contacts/OID-9", json={"name": "Ani"}, headers=ADMIN)
        assert r.status_code == 200 and r.json()["shop"] == "default"
        assert client.get("/admin/v1/contacts/OID-9", headers=ADMIN).is_success
        r = client.get("/admin/v1/contacts/OID-9", params={"shop": "default"}, headers=ADMIN)
        assert r.is_success
        r = client.get("/admin/v1/events", params={"shop": "toko-a"}, headers=ADMIN)
        assert r.status_code == 400


def test_a_scoped_token_signs_in_to_its_shops_dashboard(shops: TestClient[Litestar]) -> None:
    r = shops.post("/ui/login", data={"token": "toko-a-0wner-token"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = shops.get("/ui/pushes").text
    assert "psh-toko-a" in page and "psh-toko-b" not in page
    assert 'id="shop-filter"' not in page  # one shop to see: no filter
    assert 'href="/ui/config"' not in page
    deliveries = shops.get("/ui/deliveries").text
    assert "dlv-toko-a" in deliveries and "dlv-toko-b" not in deliveries
    assert shops.get("/ui/pushes/psh-toko-b").status_code == 404
    assert shops.get("/ui/deliveries/dlv-toko-b").status_code == 404
    assert shops.get("/ui/pushes/psh-toko-a").status_code == 200
    assert shops.get("/ui/pushes", params={"shop": "toko-b"}).status_code == 404
    for url in ("/ui/config", "/ui/try", "/ui/deliveries/replay"):
        assert shops.get(url).status_code == 403, url
    overview = shops.get("/ui/").text
    assert 'id="sinks"' not in overview and 'id="backlog"' not in overview


def test_the_admin_dashboard_filters_by_shop_and_names_it(shops: TestClient[Litestar]) -> None:
    r = shops.post("/ui/login", data={"token": "adm1n-adm1n-adm1n"}, follow_redirects=False)
    assert r.status_code == 303
    page = shops.get("/ui/deliveries").text
    assert 'id="shop-filter"' in page
    assert "Toko A" in page and "Toko B" in page
    only_b = shops.get("/ui/deliveries", params={"shop": "toko-b"}).text
    assert "dlv-toko-b" in only_b and "dlv-toko-a" not in only_b
    order = shops.get("/ui/orders/view", params={"id": "OID-1", "shop": "toko-b"}).text
    assert 'id="order-shop">Toko B<' in order
