"""Who may use the admin token: the wrong-token limit, one Authorization header, the published
example tokens, the session cookie's Secure flag and every 405's Allow header, in-process."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.access import (
    MAX_FAILURES,
    AmbiguousCredentials,
    SignInLimiter,
    client_key,
    only_authorization,
    published_tokens,
)
from gateway.app import create_app
from gateway.config import parse_config
from gateway.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
KABARIN = Path(sys.executable).with_name("kabarin")
TOKEN = "adm1n-t0ken-for-tests"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def config_text(tmp_path: Path, admin: str = f"{{token: {TOKEN}}}") -> str:
    return f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {admin}
dispatcher: {{enabled: false}}
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    app = create_app(parse_config(config_text(tmp_path)))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


# -- the limit on wrong tokens -------------------------------------------------------------------


def test_the_eleventh_wrong_token_within_ten_minutes_waits_until_the_first_is_ten_minutes_old() -> (
    None
):
    limiter = SignInLimiter()
    for n in range(MAX_FAILURES):
        assert limiter.retry_after("203.0.113.7", 1000.0 + n) is None
        limiter.failed("203.0.113.7", 1000.0 + n)
    assert limiter.retry_after("203.0.113.7", 1010.0) == 590
    assert limiter.retry_after("198.51.100.9", 1010.0) is None  # another client
    assert limiter.retry_after("203.0.113.7", 1599.5) == 1
    assert limiter.retry_after("203.0.113.7", 1600.0) is None  # the first one no longer counts
    limiter.failed("203.0.113.7", 1600.0)
    assert limiter.retry_after("203.0.113.7", 1600.0) == 1


def test_slips_spread_over_more_than_ten_minutes_never_lock_anyone_out() -> None:
    limiter = SignInLimiter()
    for n in range(100):
        assert limiter.retry_after("203.0.113.7", n * 61.0) is None
        limiter.failed("203.0.113.7", n * 61.0)


def test_the_right_token_forgets_earlier_slips() -> None:
    limiter = SignInLimiter()
    for _ in range(MAX_FAILURES - 1):
        limiter.failed("203.0.113.7", 0.0)
    limiter.succeeded("203.0.113.7")
    limiter.failed("203.0.113.7", 0.0)
    assert limiter.retry_after("203.0.113.7", 0.0) is None


def test_the_limiter_remembers_a_bounded_number_of_clients() -> None:
    limiter = SignInLimiter(max_clients=100)
    for n in range(1000):
        limiter.failed(f"10.0.{n // 256}.{n % 256}", 0.0)
    assert len(limiter) == 100
    assert limiter.retry_after("10.0.0.0", 0.0) is None  # the least recently seen went first


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, "unknown"),
    ],
)
def test_a_client_is_its_address_and_an_ipv6_one_its_network(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_the_admin_api_answers_429_after_ten_wrong_tokens_whatever_comes_next(
    client: TestClient[Litestar],
) -> None:
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    for _ in range(MAX_FAILURES - 1):
        assert client.get("/admin/v1/sinks", headers=wrong).status_code == 401
    assert client.get("/admin/v1/sinks").status_code == 401  # no token is not a guess
    assert client.get("/admin/v1/sinks", headers=wrong).status_code == 401
    r = client.get("/admin/v1/sinks", headers=ADMIN)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too_many_requests"
    assert 590 <= int(r.headers["retry-after"]) <= 600
    assert client.get("/admin/v1/sinks", headers=wrong).status_code == 429


def test_the_dashboard_sign_in_answers_429_after_ten_wrong_tokens(
    client: TestClient[Litestar],
) -> None:
    for _ in range(MAX_FAILURES):
        r = client.post("/ui/login", data={"token": "guess"}, follow_redirects=False)
        assert r.status_code == 401
    r = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 429, r.text
    assert 590 <= int(r.headers["retry-after"]) <= 600
    assert "Too many wrong tokens" in r.text
    assert "kabarin_session" not in r.headers.get("set-cookie", "")
    # The admin API counts the same client's guesses: it is refused there too.
    assert client.get("/admin/v1/sinks", headers=ADMIN).status_code == 429


# -- exactly one Authorization header ------------------------------------------------------------


def test_one_authorization_header_or_none_is_read_and_two_are_refused() -> None:
    assert only_authorization([(b"host", b"x")]) is None
    assert only_authorization([(b"authorization", b"Bearer a")]) == "Bearer a"
    with pytest.raises(AmbiguousCredentials):
        only_authorization([(b"authorization", b"Bearer a"), (b"authorization", b"Bearer b")])


# -- the admin token itself ----------------------------------------------------------------------


def test_an_admin_token_shorter_than_16_characters_is_refused_naming_its_line(
    tmp_path: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text(tmp_path, admin="{token: x}"))
    assert caught.value.problems == [
        "admin.token (line 4): must be at least 16 characters (it has 1)"
    ]
    assert parse_config(config_text(tmp_path, admin="{token: 0123456789abcdef}"))
    assert parse_config(config_text(tmp_path, admin="{}")).admin.token is None


def test_kabarin_check_refuses_a_one_character_admin_token(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(config_text(tmp_path, admin="{token: x}"))
    r = subprocess.run(
        [str(KABARIN), "check", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert r.returncode == 1
    assert "admin.token (line 4): must be at least 16 characters" in r.stderr


def test_serve_beyond_loopback_refuses_the_example_tokens_naming_the_variables(
    tmp_path: Path,
) -> None:
    env = {
        k: v
        for k, v in __import__("os").environ.items()
        if k not in ("KIRIMINAJA_TOKEN", "KABARIN_ADMIN_TOKEN")
    }
    r = subprocess.run(
        [
            str(KABARIN),
            "serve",
            "--config",
            str(ROOT / "config.example.yaml"),
            "--host",
            "0.0.0.0",
            "--port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "set KIRIMINAJA_TOKEN" in r.stderr
    assert "set KABARIN_ADMIN_TOKEN" in r.stderr
    assert "dev-admin-token-local" in r.stderr
    assert not (tmp_path / "data").exists()  # refused before the store was opened


@pytest.mark.parametrize(
    ("host", "refused"),
    [
        ("127.0.0.1", False),
        ("127.0.0.2", False),
        ("::1", False),
        ("localhost", False),
        ("0.0.0.0", True),
        ("::", True),
        ("192.0.2.10", True),
        ("kabarin.internal", True),
    ],
)
def test_the_example_tokens_are_fine_on_loopback_only(host: str, refused: bool) -> None:
    example = (ROOT / "config.example.yaml").read_text()
    config = parse_config(example, base_dir=ROOT, env={})
    assert bool(published_tokens(config, host)) is refused
    own = parse_config(
        example, base_dir=ROOT, env={"KIRIMINAJA_TOKEN": "k" * 20, "KABARIN_ADMIN_TOKEN": "a" * 20}
    )
    assert published_tokens(own, host) == []


# -- the session cookie's Secure flag ------------------------------------------------------------


@pytest.mark.parametrize(
    ("secure_cookie", "base_url", "secure"),
    [
        ("auto", "http://testserver.local", False),
        ("auto", "https://testserver.local", True),
        ("always", "http://testserver.local", True),
    ],
)
def test_the_session_cookie_is_secure_as_admin_secure_cookie_says(
    tmp_path: Path, secure_cookie: str, base_url: str, secure: bool
) -> None:
    text = config_text(tmp_path, admin=f"{{token: {TOKEN}, secure_cookie: {secure_cookie}}}")
    with TestClient(create_app(parse_config(text)), base_url=base_url) as client:
        r = client.post("/ui/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("kabarin_session=")
    assert ("; Secure" in cookie or "; secure" in cookie) is secure, cookie


def test_admin_secure_cookie_takes_auto_or_always(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(config_text(tmp_path, admin=f"{{token: {TOKEN}, secure_cookie: yes}}"))
    assert caught.value.problems[0].startswith("admin.secure_cookie (line 4): ")


# -- 405 -------------------------------------------------------------------------------------------

_METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")


def test_every_route_answers_405_with_its_allow_header(client: TestClient[Litestar]) -> None:
    """RFC 9110: a 405 says which methods the resource takes."""
    checked = 0
    for route in client.app.routes:
        allowed = {m for m in route.methods if m != "OPTIONS"}
        if not allowed:
            continue
        path = re.sub(r"\{[^}:]+:int\}", "1", route.path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        for method in _METHODS:
            if method in allowed or (method == "GET" and not allowed - {"HEAD"}):
                continue
            r = client.request(method, path, headers=ADMIN)
            assert r.status_code == 405, (method, path, r.status_code)
            listed = {m.strip() for m in r.headers.get("allow", "").split(",") if m.strip()}
            assert allowed <= listed, (method, path, r.headers.get("allow"))
            checked += 1
    assert checked > 40
    r = client.request("OPTIONS", "/kiriminaja/push")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


def test_every_route_answers_options_with_all_its_methods(client: TestClient[Litestar]) -> None:
    for route in client.app.routes:
        if "OPTIONS" not in route.methods:
            continue
        path = re.sub(r"\{[^}:]+:int\}", "1", route.path)
        path = re.sub(r"\{[^}]+\}", "x", path)
        r = client.request("OPTIONS", path, headers=ADMIN)
        assert r.status_code == 204, path
        listed = {m.strip() for m in r.headers["allow"].split(",")}
        assert listed == set(route.methods), (path, r.headers["allow"])


# -- the OpenAPI document says what is checked ---------------------------------------------------


def test_the_openapi_document_states_the_checks_the_handlers_make(
    client: TestClient[Litestar],
) -> None:
    doc = client.get("/schema/openapi.json").json()
    schemas = doc["components"]["schemas"]
    push = doc["paths"]["/kiriminaja/push"]["post"]
    assert push["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Push"
    }
    assert schemas["Push"]["required"] == ["method", "data"]
    assert schemas["PushPackage"]["required"] == ["order_id"]
    assert schemas["PushItem"]["required"] == ["index", "item"]
    assert schemas["ContactBody"]["minProperties"] == 1
    assert schemas["ContactBody"]["additionalProperties"] is False

    (rejected_id,) = doc["paths"]["/admin/v1/rejected/{rejected_id}"]["get"]["parameters"]
    assert rejected_id["schema"]["maximum"] == 2**63 - 1  # exactly, not 9.223372036854776e18
    raw = client.get("/schema/openapi.json").text
    assert '"maximum":9223372036854775807' in raw.replace(" ", "")
    params = {p["name"]: p for p in doc["paths"]["/admin/v1/deliveries"]["get"]["parameters"]}
    assert params["cursor"]["schema"]["minLength"] == 1
    since = params["since"]["schema"]["oneOf"]
    assert {"type": "string", "format": "date-time"} in since
    replay = doc["paths"]["/admin/v1/deliveries/replay"]["post"]["parameters"]
    assert next(p for p in replay if p["name"] == "sink")["schema"]["minLength"] == 1
    for path, item in doc["paths"].items():
        if path.startswith("/admin/"):
            for method, operation in item.items():
                assert "429" in operation["responses"], (method, path)


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/admin/v1/deliveries", {"cursor": ""}),
        ("/admin/v1/rejected/9223372036854775808", {}),
    ],
)
def test_what_the_document_calls_invalid_is_refused_naming_it(
    client: TestClient[Litestar], path: str, params: dict[str, str]
) -> None:
    r = client.get(path, params=params, headers=ADMIN)
    assert r.status_code == 400, r.text


def test_an_empty_contact_is_refused_as_the_document_says(client: TestClient[Litestar]) -> None:
    r = client.put("/admin/v1/contacts/S-1", json={}, headers=ADMIN)
    assert r.status_code == 400, r.text
