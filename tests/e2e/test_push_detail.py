"""One push of 80,000 packages through the real server: its admin API detail and its dashboard
page come a page of items at a time, each page small, every item on exactly one page."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from .conftest import ADMIN_TOKEN, PUSH_TOKEN, KabarinProcess

PACKAGES = 80_000
MB = 1024 * 1024


def test_a_push_of_80000_packages_is_read_a_page_at_a_time(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""
receiver:
  token: {PUSH_TOKEN}
  max_body_bytes: 8388608
store:
  url: sqlite:///{tmp_path / "kabarin.db"}
admin:
  token: {ADMIN_TOKEN}
dispatcher:
  enabled: false
"""
    )
    server = KabarinProcess(config, tmp_path)
    server.start()
    try:
        body = json.dumps(
            {
                "method": "shipped_packages",
                "data": [
                    {"order_id": f"BIG-{i:05d}", "shipped_at": "2024-05-01 08:00:00"}
                    for i in range(PACKAGES)
                ],
            }
        ).encode()
        assert len(body) > 4 * MB
        r = server.push(body, wait=False)
        assert r.status_code == 200, r.text
        push_id = r.json()["push_id"]
        assert server.processed(push_id, timeout=120)["accepted"] == PACKAGES

        first = server.admin("GET", f"/pushes/{push_id}")
        assert first.status_code == 200, first.text
        assert len(first.content) < MB
        detail = first.json()
        assert (detail["body"], detail["body_bytes"]) == (None, len(body))
        assert len(detail["items"]) == 100 and detail["next_cursor"] == 100

        seen: list[int] = []
        orders: list[str] = []
        cursor = None
        while True:
            params = {"limit": 500} | ({} if cursor is None else {"cursor": cursor})
            r = server.admin("GET", f"/pushes/{push_id}", params=params)
            assert r.status_code == 200, r.text
            assert len(r.content) < MB
            page = r.json()
            seen += [i["index"] for i in page["items"]]
            orders += [i["item"]["order_id"] for i in page["items"]]
            page_orders = [i["item"]["order_id"] for i in page["items"]]
            assert [e["order_id"] for e in page["events"]] == page_orders
            assert {e["outcome"] for e in page["events"]} == {"produced"}
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == list(range(PACKAGES))
        assert orders == [f"BIG-{i:05d}" for i in range(PACKAGES)]

        whole = server.admin("GET", f"/pushes/{push_id}/body")
        assert whole.status_code == 200
        assert whole.content == body
        assert whole.headers["content-type"] == "application/octet-stream"

        with httpx.Client(base_url=server.url, timeout=30) as ui:
            signed_in = ui.post("/ui/login", data={"token": ADMIN_TOKEN})
            assert signed_in.status_code == 303, signed_in.text
            page = ui.get(f"/ui/pushes/{push_id}")
            assert page.status_code == 200
            assert len(page.content) < MB
            assert "BIG-00099" in page.text and "BIG-00100" not in page.text
            (target,) = re.findall(r'id="next-page" href="([^"]+)"', page.text)
            assert target == f"/ui/pushes/{push_id}?cursor=100"
            last = ui.get(f"/ui/pushes/{push_id}", params={"cursor": PACKAGES - 100})
            assert last.status_code == 200 and len(last.content) < MB
            assert f"BIG-{PACKAGES - 1:05d}" in last.text and 'id="next-page"' not in last.text
    finally:
        server.stop()
