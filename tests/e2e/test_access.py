"""Access through the real `kabarin serve`: wrong tokens per client address (through the proxy
headers uvicorn trusts from 127.0.0.1), two Authorization headers, and dashboard sessions that
outlive a restart and work on every replica sharing PostgreSQL.

The tests that neither restart nor push share one server: the lockout is of an address no other
test uses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from .conftest import ADMIN_TOKEN, PUSH_TOKEN, KabarinProcess, write_config

ATTACKER = {"X-Forwarded-For": "203.0.113.7"}
OPERATOR = {"X-Forwarded-For": "198.51.100.9"}
PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "ACC-1"}]}'


def sign_in(server: KabarinProcess, client: httpx.Client | None = None) -> httpx.Client:
    """A browser-like client of `server` holding a dashboard session."""
    browser = client or httpx.Client(base_url=server.url, timeout=10)
    r = browser.post("/ui/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    assert "kabarin_session" in browser.cookies
    return browser


def csrf(page: str) -> str:
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def test_ten_wrong_tokens_from_one_address_lock_it_out_and_no_other(
    shared_server: KabarinProcess,
) -> None:
    server = shared_server
    wrong = {"Authorization": "Bearer not-the-admin-token", **ATTACKER}
    for _ in range(10):
        assert server.client.get("/admin/v1/sinks", headers=wrong).status_code == 401
    r = server.client.get(
        "/admin/v1/sinks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **ATTACKER}
    )
    assert r.status_code == 429, r.text
    assert 590 <= int(r.headers["retry-after"]) <= 600
    r = server.client.post("/ui/login", data={"token": ADMIN_TOKEN}, headers=ATTACKER)
    assert r.status_code == 429
    assert r.headers["retry-after"]

    # The operator, elsewhere, with the right token: the API and the dashboard both work.
    r = server.client.get(
        "/admin/v1/sinks", headers={"Authorization": f"Bearer {ADMIN_TOKEN}", **OPERATOR}
    )
    assert r.status_code == 200, r.text
    r = server.client.post(
        "/ui/login", data={"token": ADMIN_TOKEN}, headers=OPERATOR, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    assert server.admin("GET", "/sinks").status_code == 200  # 127.0.0.1 itself


def test_the_session_cookie_is_secure_when_the_trusted_proxy_says_https(
    shared_server: KabarinProcess,
) -> None:
    server = shared_server
    r = server.client.post(
        "/ui/login",
        data={"token": ADMIN_TOKEN},
        headers={"X-Forwarded-Proto": "https"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    assert "secure" in r.headers["set-cookie"].lower()
    r = server.client.post("/ui/login", data={"token": ADMIN_TOKEN}, follow_redirects=False)
    assert "secure" not in r.headers["set-cookie"].lower()


def test_two_authorization_headers_are_refused_by_the_push_endpoint_and_the_admin_api(
    shared_server: KabarinProcess,
) -> None:
    server = shared_server
    twice = [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {PUSH_TOKEN}")]
    r = server.client.post(
        "/kiriminaja/push", content=PUSH, headers=[*twice, ("Content-Type", "application/json")]
    )
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "bad_request",
        "detail": "more than one Authorization header: send exactly one",
    }
    twice = [("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {ADMIN_TOKEN}")]
    r = server.client.get("/admin/v1/pushes", headers=twice)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "more than one Authorization header: send exactly one"
    assert server.admin("GET", "/pushes").json()["items"] == []  # nothing was taken in


def test_a_dashboard_session_outlives_a_restart_and_ends_at_sign_out(
    server: KabarinProcess,
) -> None:
    browser = sign_in(server)
    try:
        page = browser.get("/ui/pushes")
        assert page.status_code == 200
        token = csrf(page.text)
        assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean exit
        server.start()

        page = browser.get("/ui/pushes", follow_redirects=False)
        assert page.status_code == 200, page.headers
        assert csrf(page.text) == token
        r = browser.post("/ui/logout", data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 303
        assert browser.get("/ui/pushes", follow_redirects=False).status_code == 303
    finally:
        browser.close()


@pytest.fixture
def two_replicas(tmp_path: Path, pg_url: str) -> Iterator[list[KabarinProcess]]:
    servers = []
    for n in range(2):
        workdir = tmp_path / f"replica{n}"
        workdir.mkdir()
        config = write_config(workdir / "config.yaml", store=pg_url, dispatcher=False)
        servers.append(KabarinProcess(config, workdir))
    try:
        for server in servers:
            server.launch()
        for server in servers:
            server.ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


def test_a_session_made_on_one_replica_works_on_the_other(
    two_replicas: list[KabarinProcess], make_server: Callable[..., KabarinProcess]
) -> None:
    first, second = two_replicas
    browser = sign_in(first)
    try:
        token = csrf(browser.get("/ui/pushes").text)
        elsewhere = httpx.Client(base_url=second.url, timeout=10, cookies=browser.cookies)
        page = elsewhere.get("/ui/pushes", follow_redirects=False)
        assert page.status_code == 200, page.headers
        assert csrf(page.text) == token

        # What an action on one replica says shows on the page the other one serves next.
        r = elsewhere.post("/ui/pushes/reprocess", data={"csrf": token}, follow_redirects=False)
        assert r.status_code == 303, r.text
        assert "0 pushes put back to the intake." in browser.get(r.headers["location"]).text

        # Signing out on one replica signs out on both.
        assert browser.post("/ui/logout", data={"csrf": token}).status_code == 303
        assert elsewhere.get("/ui/pushes", follow_redirects=False).status_code == 303
        elsewhere.close()
    finally:
        browser.close()
