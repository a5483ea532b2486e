"""Two shops in one `kabarin serve`: each shop's token pushes, the same order id stays two
orders, routes pick a shop, a shop owner's scoped admin token sees only that shop (API and
dashboard), ``kabarin --shop`` keeps to one shop, and a store written by a one-shop Kabarin
keeps working."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx

from .conftest import ADMIN_TOKEN, KABARIN, KabarinProcess, Peer

TOKEN_A = "e2e-key-of-toko-a"
TOKEN_B = "e2e-key-of-toko-b"
OWNER_A = "e2e-admin-token-of-toko-a"
PUSH = {
    "method": "shipped_packages",
    "data": [{"order_id": "OID-7", "awb": "JNE7", "shipped_at": "2024-03-01 15:00:00"}],
}


def two_shop_server(tmp_path: Path, peer: Peer) -> KabarinProcess:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
receiver:
  max_body_bytes: 65536
shops:
  toko-a:
    name: Toko A
    token: {TOKEN_A}
  toko-b:
    name: Toko B
    token: {TOKEN_B}
store:
  url: sqlite:///{tmp_path / "kabarin.db"}
admin:
  token: {ADMIN_TOKEN}
  tokens:
    - {{token: {OWNER_A}, shops: [toko-a]}}
dispatcher:
  poll_interval: 200ms
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
routes:
  - name: toko-a-to-erp
    shop: toko-a
    sinks: [erp]
"""
    )
    server = KabarinProcess(config, tmp_path)
    server.start()
    return server


def post(server: KabarinProcess, token: str, path: str = "/kiriminaja/push") -> httpx.Response:
    return server.client.post(
        path,
        content=json.dumps(PUSH).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_two_shops_push_the_same_order_and_routes_pick_a_shop(tmp_path: Path, peer: Peer) -> None:
    server = two_shop_server(tmp_path, peer)
    try:
        a = post(server, TOKEN_A)
        b = post(server, TOKEN_B, "/kiriminaja/push/toko-b")
        assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
        for answer in (a, b):
            assert server.processed(answer.json()["push_id"])["accepted"] == 1
        events = server.events()
        assert sorted((e["shop"], e["order_id"]) for e in events) == [
            ("toko-a", "OID-7"),
            ("toko-b", "OID-7"),
        ]
        assert len({e["id"] for e in events}) == 2
        entry = server.admin("GET", f"/pushes/{b.json()['push_id']}").json()["push"]
        assert entry["shop"] == "toko-b"

        # Only toko-a's event goes to the ERP, and its payload names the shop.
        server.wait_for(lambda: len(peer.requests("/erp")) == 1)
        (sent,) = peer.bodies("/erp")
        assert (sent["data"]["shop"], sent["data"]["order_id"]) == ("toko-a", "OID-7")

        # A shop's path takes only its own token; an unknown token is 401 as ever.
        assert post(server, TOKEN_A, "/kiriminaja/push/toko-b").status_code == 401
        assert post(server, "not-a-shops-key").status_code == 401
        assert post(server, TOKEN_A, "/kiriminaja/push/toko-a").status_code == 200
        metrics = server.client.get("/metrics").text
        assert 'kabarin_pushes_total{method="shipped_packages",shop="toko-a"} 2.0' in metrics
        assert 'kabarin_pushes_total{method="shipped_packages",shop="toko-b"} 1.0' in metrics
    finally:
        server.stop()


def test_a_shop_owner_sees_only_their_shop(tmp_path: Path, peer: Peer) -> None:
    server = two_shop_server(tmp_path, peer)
    try:
        a, b = post(server, TOKEN_A), post(server, TOKEN_B)
        for answer in (a, b):
            server.processed(answer.json()["push_id"])
        push_a, push_b = a.json()["push_id"], b.json()["push_id"]
        owner = httpx.Client(
            base_url=server.url, timeout=10, headers={"Authorization": f"Bearer {OWNER_A}"}
        )
        events = owner.get("/admin/v1/events").json()["items"]
        assert [e["shop"] for e in events] == ["toko-a"]
        assert owner.get(f"/admin/v1/pushes/{push_b}").status_code == 404
        assert owner.get("/admin/v1/orders/OID-7").json()["shop"] == "toko-a"
        assert owner.post("/admin/v1/reload").status_code == 403

        # The dashboard, signed in with the same token: its shop's pushes only, no config.
        ui = httpx.Client(base_url=server.url, timeout=10, follow_redirects=True)
        r = ui.post("/ui/login", data={"token": OWNER_A})
        assert r.status_code == 200 and "/ui/login" not in str(r.url), r.text
        pushes = ui.get("/ui/pushes").text
        assert push_a in pushes and push_b not in pushes
        assert ui.get(f"/ui/pushes/{push_b}").status_code == 404
        assert ui.get("/ui/config").status_code == 403
        order = ui.get("/ui/orders/view", params={"id": "OID-7"}).text
        assert "JNE7" in order

        # The admin's dashboard has a shop filter; with it, one shop's pushes.
        admin = httpx.Client(base_url=server.url, timeout=10, follow_redirects=True)
        admin.post("/ui/login", data={"token": ADMIN_TOKEN})
        page = admin.get("/ui/pushes").text
        assert 'id="shop-filter"' in page and push_a in page and push_b in page
        only_b = admin.get("/ui/pushes", params={"shop": "toko-b"}).text
        assert push_b in only_b and push_a not in only_b

        # The command line, against the same store: --shop keeps to one shop.
        listed = subprocess.run(
            [str(KABARIN), "deliveries", "-c", str(server.config_path), "--shop", "toko-b"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "no deliveries match" in listed.stdout  # toko-b's event is routed nowhere
        listed = subprocess.run(
            [str(KABARIN), "deliveries", "-c", str(server.config_path), "--shop", "toko-a"],
            capture_output=True,
            text=True,
            check=True,
        )
        assert "OID-7" in listed.stdout
        refused = subprocess.run(
            [str(KABARIN), "track", "add", "-c", str(server.config_path), "OID-9"],
            capture_output=True,
            text=True,
        )
        assert refused.returncode == 1
        assert "--shop: name the shop: one of toko-a, toko-b" in refused.stderr
    finally:
        server.stop()


def _events_of(server: KabarinProcess) -> list[dict[str, Any]]:
    return server.events()


def test_a_one_shop_store_keeps_working_after_a_shops_file(tmp_path: Path, peer: Peer) -> None:
    """A one-shop store (its rows are the shop `default`) opened by a file that lists shops,
    one of them named `default` to keep them: a repeat of an old push is still a duplicate."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
receiver:
  token: {TOKEN_A}
store:
  url: sqlite:///{tmp_path / "kabarin.db"}
admin:
  token: {ADMIN_TOKEN}
"""
    )
    server = KabarinProcess(config, tmp_path)
    server.start()
    try:
        r = post(server, TOKEN_A)
        assert server.processed(r.json()["push_id"])["accepted"] == 1
        (before,) = _events_of(server)
        assert before["shop"] == "default"
    finally:
        server.stop()

    config.write_text(
        f"""
shops:
  default:
    name: Toko Lama
    token: {TOKEN_A}
  toko-b:
    token: {TOKEN_B}
store:
  url: sqlite:///{tmp_path / "kabarin.db"}
admin:
  token: {ADMIN_TOKEN}
"""
    )
    server = KabarinProcess(config, tmp_path)
    server.start()
    try:
        again = server.processed(post(server, TOKEN_A).json()["push_id"])
        assert (again["accepted"], again["duplicates"]) == (0, 1)
        other = server.processed(post(server, TOKEN_B).json()["push_id"])
        assert other["accepted"] == 1
        assert sorted(e["shop"] for e in _events_of(server)) == ["default", "toko-b"]
    finally:
        server.stop()
