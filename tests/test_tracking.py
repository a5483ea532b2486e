"""The tracking client against KiriminAja's documented answers and its failures (respx)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import respx

from gateway.config import KiriminAjaConfig, parse_config
from gateway.errors import ConfigError
from gateway.sources.kiriminaja.pulled import Pulled, normalise_pulled
from gateway.sources.kiriminaja.tracking import (
    MAX_DEPTH,
    NotFound,
    Refused,
    TrackingClient,
    TryLater,
)

FIXTURES = Path(__file__).parent / "fixtures" / "tracking"
BASE = "https://ka.example.test"
KEY = "ka-live-0123456789abcdef"
EXPRESS = f"{BASE}/api/mitra/tracking"


def fixture(name: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return answer


def instant_url(order_id: str) -> str:
    return f"{BASE}/api/mitra/v4/instant/tracking/{order_id}"


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def client(http: httpx.AsyncClient) -> TrackingClient:
    return TrackingClient(KiriminAjaConfig(base_url=BASE + "/"), api_key=KEY, http=http)


async def test_express_answer_is_pulled_as_it_came(client: TrackingClient) -> None:
    answer = fixture("express.json")
    with respx.mock() as router:
        route = router.post(EXPRESS).respond(200, json=answer)
        result = await client.track("express", "OID-8793949106")
    assert result == Pulled(kind="express", order_id="OID-8793949106", answer=answer)
    request = route.calls.last.request
    assert json.loads(request.content) == {"order_id": "OID-8793949106"}
    assert request.headers["authorization"] == f"Bearer {KEY}"


async def test_instant_answer_is_pulled_as_it_came(client: TrackingClient) -> None:
    answer = fixture("instant.json")
    with respx.mock() as router:
        route = router.get(instant_url("NBL2-1705636897084")).respond(200, json=answer)
        result = await client.track("instant", "NBL2-1705636897084")
    assert result == Pulled(kind="instant", order_id="NBL2-1705636897084", answer=answer)
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


async def test_an_order_id_cannot_leave_the_tracking_path(client: TrackingClient) -> None:
    with respx.mock() as router:
        route = router.get(instant_url("A%2F..%2Fb%3Fx")).respond(200, json=fixture("instant.json"))
        result = await client.track("instant", "A/../b?x")
    assert isinstance(result, Pulled) and route.called


async def test_documented_not_found_is_final(client: TrackingClient) -> None:
    with respx.mock() as router:
        router.get(instant_url("NOPE-1")).respond(200, json=fixture("instant_not_found.json"))
        result = await client.track("instant", "NOPE-1")
    assert result == NotFound(
        kind="instant", order_id="NOPE-1", reason="KiriminAja: data not found"
    )


@pytest.mark.parametrize(
    ("status_code", "body"),
    [
        (200, {"status": False, "text": "Data tidak ditemukan", "method": "shTracking"}),
        (404, {"status": False, "text": "order not found"}),
    ],
)
async def test_express_not_found_is_final(
    client: TrackingClient, status_code: int, body: dict[str, Any]
) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(status_code, json=body)
        result = await client.track("express", "OID-0")
    assert isinstance(result, NotFound) and result.order_id == "OID-0"


async def test_status_false_is_try_later(client: TrackingClient) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(200, json={"status": False, "text": "Server sedang sibuk"})
        result = await client.track("express", "OID-1")
    assert result == TryLater(reason="KiriminAja answered status false: Server sedang sibuk")


async def test_429_is_try_later(client: TrackingClient) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(429, json={"message": "Too Many Attempts."})
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater)
    assert result.status_code == 429 and result.after is None
    assert "rate-limited" in result.reason


async def test_500_is_try_later_and_never_shows_the_key(client: TrackingClient) -> None:
    echo = f"Internal error handling Authorization: Bearer {KEY} for {KEY}"
    with respx.mock() as router:
        router.post(EXPRESS).respond(500, text=echo)
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater) and result.status_code == 500
    assert "500" in result.reason and KEY not in result.reason


async def test_a_bare_404_is_not_taken_for_a_missing_order(client: TrackingClient) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(404, text="<html>Not Found</html>")
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater) and result.status_code == 404


async def test_401_says_to_check_the_key(client: TrackingClient) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(401, json={"status": False, "text": "Unauthenticated."})
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater) and result.status_code == 401
    assert "kiriminaja.api_key" in result.reason and KEY not in result.reason


@pytest.mark.parametrize(
    "failure",
    [httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")],
)
async def test_network_failures_are_try_later(client: TrackingClient, failure: Exception) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).mock(side_effect=failure)
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater) and result.status_code is None


@pytest.mark.parametrize("body", [b"<html>maintenance</html>", b"[1, 2]", b""])
async def test_a_200_that_is_not_a_json_object_is_try_later(
    client: TrackingClient, body: bytes
) -> None:
    with respx.mock() as router:
        router.post(EXPRESS).respond(200, content=body)
        result = await client.track("express", "OID-1")
    assert isinstance(result, TryLater)


@pytest.mark.parametrize(
    ("env", "base"),
    [("production", "https://client.kiriminaja.com"), ("sandbox", "https://tdev.kiriminaja.com")],
)
async def test_env_picks_the_base_url(http: httpx.AsyncClient, env: str, base: str) -> None:
    config = parse_config(f"receiver: {{token: {KEY}}}\nkiriminaja: {{env: {env}}}\n").kiriminaja
    client = TrackingClient(config, api_key=KEY, http=http)
    with respx.mock() as router:
        route = router.post(f"{base}/api/mitra/tracking").respond(200, json={"status": True})
        assert isinstance(await client.track("express", "OID-1"), Pulled)
    assert route.called
    assert KEY not in repr(client)


def test_config_section_defaults_to_the_receiver_token() -> None:
    config = parse_config("receiver: {token: push-key-1234}\n")
    assert config.kiriminaja.url == "https://client.kiriminaja.com"
    assert config.kiriminaja_api_key == "push-key-1234"
    own = parse_config(
        "receiver: {token: push-key-1234}\n"
        "kiriminaja: {api_key: api-key-5678, base_url: 'http://127.0.0.1:9/'}\n"
    )
    assert own.kiriminaja_api_key == "api-key-5678"
    assert own.kiriminaja.url == "http://127.0.0.1:9"
    assert "api-key-5678" in own.secrets


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ("{env: staging}", "kiriminaja.env"),
        ("{base_url: 'ftp://x'}", "kiriminaja.base_url"),
        ("{api_key: ''}", "kiriminaja.api_key"),
        ("{api_kye: x}", "kiriminaja.api_kye"),
    ],
)
def test_config_section_problems_name_their_key(block: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(f"receiver: {{token: push-key-1234}}\nkiriminaja: {block}\n")
    assert any(problem.startswith(message) for problem in caught.value.problems)


# -- answers about one order, and answers that misbehave ------------------------------------------


@pytest.mark.parametrize("status_code", [200, 400, 404, 422])
async def test_a_refusal_about_the_order_is_refused_not_try_later(
    client: TrackingClient, status_code: int
) -> None:
    body = {"status": False, "text": "Order ini bukan milik akun Anda"}
    with respx.mock() as router:
        router.post(EXPRESS).respond(status_code, json=body)
        result = await client.track("express", "Z0")
    assert isinstance(result, Refused) and result.order_id == "Z0"
    assert "Order ini bukan milik akun Anda" in result.reason


async def test_json_nested_thousands_deep_is_refused(client: TrackingClient) -> None:
    deep = b'{"status": true, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    with respx.mock() as router:
        router.post(EXPRESS).respond(200, content=deep)
        result = await client.track("express", "Z0")
    assert result == Refused(
        kind="express",
        order_id="Z0",
        reason=f"KiriminAja answered with JSON nested more than {MAX_DEPTH} levels deep",
    )


async def test_json_nested_past_the_limit_is_refused(client: TrackingClient) -> None:
    deep = b'{"status": true, "x": ' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}"
    with respx.mock() as router:
        router.post(EXPRESS).respond(200, content=deep)
        assert isinstance(await client.track("express", "Z0"), Refused)
        router.post(EXPRESS).respond(200, content=deep.replace(b"[", b"", 1).replace(b"]", b"", 1))
        assert isinstance(await client.track("express", "Z0"), Pulled)


async def test_a_lone_surrogate_is_replaced_and_the_answer_makes_events(
    client: TrackingClient,
) -> None:
    answer = fixture("express.json")
    # A problem whose text has a lone surrogate (valid JSON, not text) and a proper pair (kept).
    problem = {"status_code": 500, "status": "\ud800 rusak \U0001f600", "created_at": "x"}
    answer["histories"].insert(0, problem)
    body = json.dumps(answer).encode()  # ASCII: the surrogate as \ud800
    with respx.mock() as router:
        router.post(EXPRESS).respond(200, content=body)
        result = await client.track("express", "OID-8793949106")
    assert isinstance(result, Pulled)
    assert result.answer["histories"][0]["status"] == "\ufffd rusak \U0001f600"
    normalised = normalise_pulled(result, received_at=datetime.now(UTC), tz=ZoneInfo("UTC"))
    assert "\ufffd rusak \U0001f600" in [e.reason for e in normalised.events]
    assert result.encode()


async def test_an_answer_dripped_slower_than_the_timeout_is_try_later() -> None:
    """httpx times each read: a peer sending a byte now and then never trips it. The call as
    a whole has the client's timeout."""

    async def drip() -> AsyncIterator[bytes]:
        for byte in b'{"status": true, "text": "ok", "details": {}, "histories": []}':
            await asyncio.sleep(0.05)
            yield bytes([byte])

    async with httpx.AsyncClient(timeout=httpx.Timeout(0.5)) as http:
        client = TrackingClient(KiriminAjaConfig(base_url=BASE + "/"), api_key=KEY, http=http)
        with respx.mock() as router:
            router.post(EXPRESS).mock(side_effect=lambda _: httpx.Response(200, content=drip()))
            result = await client.track("express", "OID-1")
    assert result == TryLater(reason="KiriminAja did not answer within 0.5s")
