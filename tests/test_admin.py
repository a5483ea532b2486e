"""The admin API and the app's error answers in-process: parameter checks, 500s, the docs page."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from gateway.runtime import Runtime

ADMIN = {"Authorization": "Bearer adm1n"}
SLACK_URL = "https://hooks.slack.com/services/T000/B000/s3cr3tpath"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n}}
dispatcher: {{enabled: false}}
sinks:
  ops: {{type: slack, webhook_url: "{SLACK_URL}"}}
"""
    )
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        yield test_client


def runtime(client: TestClient[Litestar]) -> Runtime:
    rt: Runtime = client.app.state.runtime
    return rt


@pytest.mark.parametrize(
    ("path", "params", "name"),
    [
        ("/events", {"cursor": "9223372036854775808"}, "cursor"),
        ("/events", {"cursor": "-1"}, "cursor"),
        ("/events", {"cursor": "abc"}, "cursor"),
        ("/events", {"limit": "0"}, "limit"),
        ("/events", {"limit": "501"}, "limit"),
        ("/events", {"since": "yesterday"}, "since"),
        ("/events", {"status": "cancelled"}, "status"),
        ("/deliveries", {"state": "lost"}, "state"),
        ("/deliveries", {"limit": "100000"}, "limit"),
        ("/deliveries", {"since": "2024-13-01"}, "since"),
        ("/rejected", {"limit": "-5"}, "limit"),
    ],
)
def test_bad_query_parameters_are_400_naming_the_parameter(
    client: TestClient[Litestar], path: str, params: dict[str, str], name: str
) -> None:
    r = client.get(f"/admin/v1{path}", params=params, headers=ADMIN)
    assert r.status_code == 400, r.text
    body = r.json()
    assert set(body) == {"error", "detail"}
    assert body["error"] == "bad_request"
    assert name in body["detail"]


def test_replay_filter_since_is_checked(client: TestClient[Litestar]) -> None:
    r = client.post("/admin/v1/deliveries/replay", params={"since": "soon"}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert "since" in r.json()["detail"]


def test_an_unhandled_error_is_logged_with_its_traceback_and_secrets_masked(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"exploded talking to {SLACK_URL} with t0ken-for-pushes")

    monkeypatch.setattr(runtime(client).store, "list_events", broken)
    with caplog.at_level(logging.ERROR):
        r = client.get("/admin/v1/events", headers=ADMIN)
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error"
    assert "exploded" not in r.text  # the cause is for the log, not the caller
    logged = "\n".join(caplog.text.splitlines())
    assert "Traceback" in logged
    assert "RuntimeError: exploded talking to https://hooks.slack.com/***" in logged
    assert "s3cr3tpath" not in logged
    assert "t0ken-for-pushes" not in logged


def test_an_unhandled_error_in_a_plain_handler_is_logged_too(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("a bug in the metrics path")

    monkeypatch.setattr("gateway.metrics.refresh_store_gauges", broken)
    with caplog.at_level(logging.ERROR):
        r = client.get("/metrics")
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error"
    assert "ValueError: a bug in the metrics path" in caplog.text
    assert "Traceback" in caplog.text


def test_the_push_endpoint_answers_500_as_json_when_it_breaks(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("unexpected")

    monkeypatch.setattr(runtime(client).store, "append_push", broken)
    with caplog.at_level(logging.ERROR):
        r = client.post(
            "/kiriminaja/push",
            content=b'{"method": "shipped_packages", "data": [{"order_id": "S-1"}]}',
            headers={"Authorization": "Bearer t0ken-for-pushes"},
        )
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error"
    assert "KeyError: 'unexpected'" in caplog.text


def test_the_docs_page_loads_nothing_from_a_cdn(client: TestClient[Litestar]) -> None:
    page = client.get("/schema/swagger")
    assert page.status_code == 200
    assert "cdn" not in page.text.lower()
    assets = [part.split('"')[0] for part in page.text.split('src="')[1:]]
    assets += [part.split('"')[0] for part in page.text.split('href="')[1:]]
    assets = [a for a in assets if a.endswith((".js", ".css"))]
    assert len(assets) >= 2
    for asset in assets:
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset


def test_the_schema_documents_the_real_error_bodies(client: TestClient[Litestar]) -> None:
    schema = client.get("/schema/openapi.json").json()
    events = schema["paths"]["/admin/v1/events"]["get"]["responses"]
    for status in ("400", "401"):
        ref = events[status]["content"]["application/json"]["schema"]["$ref"]
        body = schema["components"]["schemas"][ref.rsplit("/", 1)[1]]
        assert set(body["required"]) >= {"error", "detail"}, status
    detail = schema["paths"]["/admin/v1/events/{event_id}"]["get"]["responses"]
    assert "404" in detail
    assert "503" in schema["paths"]["/readyz"]["get"]["responses"]
    push = schema["paths"]["/kiriminaja/push"]["post"]["responses"]
    assert {"200", "400", "401", "413", "503"} <= set(push)
