"""The admin API and the app's error answers in-process: parameter checks, 500s, the docs page;
the dashboard's parameter checks and sign-in page."""

from __future__ import annotations

import logging
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
from gateway.events import Event, Status
from gateway.runtime import Runtime

from .conftest import ingest, store_url

ADMIN = {"Authorization": "Bearer adm1n-adm1n-adm1n"}
SLACK_URL = "https://hooks.slack.com/services/T000/B000/s3cr3tpath"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-adm1n-adm1n}}
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


# -- parameters no store can answer: on every backend ------------------------------------------


@pytest.fixture
def served(backend: str, tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    """The app on the test's store of each backend, with no intake or dispatcher running: what
    it shows is what the test stored."""
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "{store_url(backend, tmp_path)}"}}
admin: {{token: adm1n-adm1n-adm1n}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
sinks:
  ops: {{type: slack, webhook_url: "{SLACK_URL}"}}
"""
    )
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        yield test_client


def stored(client: TestClient[Litestar], *events: Event, sink: str = "ops") -> None:
    """Events with a delivery each to `sink`, stored as the intake stores them."""
    deliveries = [
        NewDelivery(id=f"dlv-{e.id}", event_id=e.id, route="r", sink=sink, ordering="all")
        for e in events
    ]
    client.blocking_portal.call(
        partial(ingest, runtime(client).store, events=events, deliveries=deliveries)
    )


def shipped(order_id: str, minute: int = 0) -> Event:
    moment = datetime(2024, 5, 1, 8, minute, tzinfo=UTC)
    return Event(
        id=f"evt-{order_id}-{minute}",
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id=order_id,
        occurred_at=moment,
        received_at=moment,
        raw={"order_id": order_id},
    )


def sign_in(client: TestClient[Litestar]) -> str:
    """A dashboard session on `client`; its CSRF token."""
    r = client.post("/ui/login", data={"token": "adm1n-adm1n-adm1n"}, follow_redirects=False)
    assert r.status_code == 303, r.text
    page = client.get("/ui/pushes").text
    return page.split('name="csrf" value="', 1)[1].split('"', 1)[0]


NUL_REQUESTS = [
    ("GET", "/admin/v1/events?order_id=%00", "order_id"),
    ("GET", "/admin/v1/events?order_id=a%00b&limit=5", "order_id"),
    ("GET", "/admin/v1/deliveries?sink=%00", "sink"),
    ("GET", "/admin/v1/deliveries?order_id=%00", "order_id"),
    ("GET", "/admin/v1/deliveries?cursor=%00", "cursor"),
    ("GET", "/admin/v1/orders/a%00b", "order_id"),
    ("GET", "/admin/v1/events/a%00b", "event_id"),
    ("GET", "/admin/v1/pushes/a%00b", "push_id"),
    ("GET", "/admin/v1/deliveries/a%00b", "delivery_id"),
    ("POST", "/admin/v1/deliveries/a%00b/replay", "delivery_id"),
    ("GET", "/admin/v1/contacts/a%00b", "order_id"),
    ("DELETE", "/admin/v1/contacts/a%00b", "order_id"),
    ("POST", "/admin/v1/pushes/reprocess?id=a%00b", "id"),
    ("POST", "/admin/v1/pushes/reprocess?id=ok&id=a%00b", "id"),
    ("POST", "/admin/v1/deliveries/replay?order_id=a%00b", "order_id"),
    ("POST", "/admin/v1/deliveries/replay?sink=a%00b", "sink"),
    ("POST", "/admin/v1/sinks/a%00b/enable", "name"),
]


@pytest.mark.parametrize(("method", "url", "name"), NUL_REQUESTS)
def test_a_nul_in_a_parameter_is_400_naming_it(
    served: TestClient[Litestar], method: str, url: str, name: str
) -> None:
    r = served.request(method, url, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "bad_request",
        "detail": f"{name}: a NUL character (U+0000) is not allowed",
    }


def test_a_nul_in_a_contact_is_400_naming_the_field(served: TestClient[Litestar]) -> None:
    r = served.put("/admin/v1/contacts/S-1", json={"name": "Bu\x00di"}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["detail"] == "name: a NUL character (U+0000) is not allowed"
    assert served.get("/admin/v1/contacts/S-1", headers=ADMIN).status_code == 404


def test_a_nul_in_a_dashboard_parameter_or_form_is_400(served: TestClient[Litestar]) -> None:
    csrf = sign_in(served)
    for url, name in [
        ("/ui/orders?q=a%00b", "q"),
        ("/ui/orders/view?id=a%00b", "id"),
        ("/ui/pushes/a%00b", "push_id"),
        ("/ui/deliveries/a%00b", "delivery_id"),
        ("/ui/deliveries?sink=%00", "sink"),
    ]:
        r = served.get(url)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["detail"].startswith(f"{name}: a NUL character"), url
    for url, form, name in [
        ("/ui/pushes/reprocess", {"id": "a\x00b"}, "id"),
        ("/ui/deliveries/replay", {"sink": "a\x00b"}, "sink"),
    ]:
        r = served.post(url, data={"csrf": csrf, **form}, follow_redirects=False)
        assert r.status_code == 400, (url, r.text)
        assert r.json()["detail"].startswith(f"{name}: a NUL character"), url


# -- times, cursors and sinks ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/events"),
        ("GET", "/pushes"),
        ("GET", "/deliveries"),
        ("POST", "/pushes/reprocess"),
        ("POST", "/deliveries/replay"),
    ],
)
@pytest.mark.parametrize(
    "since", ["253402300800", "99999999999999999999", "-62135596801", "soon", "2024-13-01"]
)
def test_a_time_that_cannot_be_read_is_400_naming_it(
    client: TestClient[Litestar], method: str, path: str, since: str
) -> None:
    r = client.request(method, f"/admin/v1{path}", params={"since": since}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request"
    assert r.json()["detail"].startswith("since: "), r.text


@pytest.mark.parametrize(
    "since", ["253402300799", "0", "2024-05-01T08:00:00", "2024-05-01T08:00:00+07:00"]
)
def test_times_in_range_are_read(served: TestClient[Litestar], since: str) -> None:
    stored(served, shipped("T-1"))
    r = served.get("/admin/v1/deliveries", params={"since": since}, headers=ADMIN)
    assert r.status_code == 200, r.text
    found = len(r.json()["items"])
    assert found == (0 if since == "253402300799" else 1)
    r = served.get("/admin/v1/events", params={"since": since}, headers=ADMIN)
    assert r.status_code == 200, r.text


def test_a_delivery_cursor_that_names_no_delivery_is_400(served: TestClient[Litestar]) -> None:
    stored(served, *(shipped("C-1", minute) for minute in range(3)))
    first = served.get("/admin/v1/deliveries", params={"limit": 2}, headers=ADMIN).json()
    assert len(first["items"]) == 2
    cursor = first["next_cursor"]
    rest = served.get(
        "/admin/v1/deliveries", params={"limit": 2, "cursor": cursor}, headers=ADMIN
    ).json()
    assert len(rest["items"]) == 1
    assert rest["next_cursor"] is None

    for bad in ("abc", "dlv-evt-C-9-0"):
        r = served.get("/admin/v1/deliveries", params={"cursor": bad}, headers=ADMIN)
        assert r.status_code == 400, r.text
        assert r.json()["detail"].startswith(f"cursor: no delivery {bad!r}"), r.text


def test_replaying_by_an_unconfigured_sink_is_400_naming_it(served: TestClient[Litestar]) -> None:
    r = served.post("/admin/v1/deliveries/replay", params={"sink": "nosuch"}, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "error": "bad_request",
        "detail": "sink: no sink named 'nosuch' is configured (configured sinks: ops)",
    }
    r = served.post("/admin/v1/deliveries/replay", params={"sink": "ops"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json() == {"replayed": 0}


def test_the_dashboard_replay_names_an_unconfigured_sink(served: TestClient[Litestar]) -> None:
    csrf = sign_in(served)
    confirm = served.get("/ui/deliveries/replay", params={"sink": "nosuch"})
    assert confirm.status_code == 400
    assert "No sink named &#39;nosuch&#39; is configured (configured sinks: ops)." in confirm.text
    r = served.post(
        "/ui/deliveries/replay", data={"csrf": csrf, "sink": "nosuch"}, follow_redirects=False
    )
    assert r.status_code == 400
    assert "No sink named &#39;nosuch&#39; is configured" in r.text
    r = served.post(
        "/ui/deliveries/replay", data={"csrf": csrf, "sink": "ops"}, follow_redirects=False
    )
    assert r.status_code == 303


# -- order ids holding a slash -----------------------------------------------------------------

INVOICE = "INV/2024/05/001"


@pytest.mark.parametrize("written", [INVOICE, "INV%2F2024%2F05%2F001"])
def test_an_order_id_with_slashes_is_reachable(served: TestClient[Litestar], written: str) -> None:
    stored(served, shipped(INVOICE), shipped("INV"))
    r = served.get(f"/admin/v1/orders/{written}", headers=ADMIN)
    assert r.status_code == 200, r.text
    timeline = r.json()
    assert timeline["order_id"] == INVOICE
    assert [e["order_id"] for e in timeline["events"]] == [INVOICE]
    assert [d["order_id"] for d in timeline["deliveries"]] == [INVOICE]

    url = f"/admin/v1/contacts/{written}"
    r = served.put(url, json={"name": "Budi", "language": "id"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    assert r.json()["order_id"] == INVOICE
    assert served.get(f"/admin/v1/contacts/{INVOICE}", headers=ADMIN).json()["name"] == "Budi"
    assert served.get("/admin/v1/contacts/INV", headers=ADMIN).status_code == 404
    assert served.delete(url, headers=ADMIN).status_code == 204
    assert served.get(url, headers=ADMIN).status_code == 404
    assert served.get("/admin/v1/orders/INV/2024", headers=ADMIN).status_code == 404

    sign_in(served)
    page = served.get("/ui/orders", params={"q": INVOICE})
    assert page.status_code == 200
    assert str(page.url).endswith("/ui/orders/view?id=INV%2F2024%2F05%2F001")
    assert f'id="order-id">{INVOICE}<' in page.text


# -- the dashboard -----------------------------------------------------------------------------


def test_dashboard_ids_out_of_range_are_400(client: TestClient[Litestar]) -> None:
    sign_in(client)
    huge = "99999999999999999999999"
    for method, url in [
        ("GET", f"/ui/rejected/{huge}"),
        ("POST", f"/ui/rejected/{huge}/replay"),
        ("GET", "/ui/rejected/0"),
    ]:
        r = client.request(method, url, follow_redirects=False)
        assert r.status_code == 400, (url, r.text)
        assert "rejected_id: " in r.json()["detail"], url
    r = client.get("/admin/v1/rejected/0", headers=ADMIN)
    assert r.status_code == 400, r.text
    assert "rejected_id: " in r.json()["detail"]


def test_the_sign_in_page_says_when_the_dashboard_is_off(tmp_path: Path) -> None:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
dispatcher: {{enabled: false}}
"""
    )
    with TestClient(create_app(config)) as off:
        page = off.get("/ui/")  # to the sign-in page
        assert page.url.path == "/ui/login"
        assert page.status_code == 403
        assert "The dashboard is off: set admin.token in the configuration." in page.text
        assert 'id="token"' not in page.text  # no form to fill in for nothing
        page = off.get("/ui/login", params={"lang": "id"})
        assert "Dasbor nonaktif: isi admin.token di konfigurasi." in page.text
