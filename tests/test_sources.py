"""Push sources: every source through the ``kabarin.sources`` entry points, loaded once; a
third-party source's pushes accepted at its own path, normalised by it, and routed like any."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway import metrics
from gateway.app import create_app
from gateway.check import validate_file
from gateway.config import parse_config
from gateway.errors import ConfigError, PushError
from gateway.events import Status, event_id
from gateway.intake import decode_logged, decode_logged_part
from gateway.sources import registry
from gateway.sources.base import Paged, PushSource, Tracked
from gateway.sources.kiriminaja import KiriminAjaSource
from gateway.sources.registry import get_source, load_sources
from gateway.store.roles import LoggedPush
from tests import plugin_source
from tests.waiting import eventually

HEADERS = {"Authorization": "Bearer t0ken"}
ADMIN = {"Authorization": "Bearer adm1n-adm1n-adm1n"}
AT = datetime(2024, 1, 1, 4, 0, tzinfo=UTC)


@pytest.fixture
def parcelku(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PushSource]:
    """The ``parcelku`` distribution installed on ``sys.path`` for this test."""
    monkeypatch.syspath_prepend(str(plugin_source.install(tmp_path / "site")))
    load_sources.cache_clear()
    yield get_source("parcelku")
    monkeypatch.undo()
    load_sources.cache_clear()


def logged(source: PushSource, body: bytes, state: str = "pending") -> LoggedPush:
    return LoggedPush(
        seq=1,
        id="psh_1",
        source="push",
        received_at=AT,
        body=body,
        content_type="application/json",
        method=None,
        items=1,
        state=state,  # type: ignore[arg-type]
        origin=source.name,
    )


# -- the registry ------------------------------------------------------------------------------


def test_kiriminaja_is_the_built_in_source_with_its_tracking_and_paging() -> None:
    source: PushSource = KiriminAjaSource()  # the protocol, checked statically too
    assert source.name == "kiriminaja"
    kiriminaja = get_source("kiriminaja")
    assert isinstance(kiriminaja, KiriminAjaSource)
    assert isinstance(kiriminaja, Paged) and isinstance(kiriminaja, Tracked)
    assert "shipped_packages" in kiriminaja.methods


def test_a_third_party_source_is_found_through_its_entry_point(parcelku: PushSource) -> None:
    assert set(load_sources()) == {"kiriminaja", "parcelku"}
    assert not isinstance(parcelku, Paged) and not isinstance(parcelku, Tracked)
    with pytest.raises(LookupError, match="installed: kiriminaja, parcelku"):
        get_source("biteship")


def fake_entry_points(monkeypatch: pytest.MonkeyPatch, *extra: EntryPoint) -> None:
    built_in = EntryPoint(
        "kiriminaja", "gateway.sources.kiriminaja:KiriminAjaSource", registry.GROUP
    )

    def entry_points(*, group: str) -> list[EntryPoint]:
        assert group == registry.GROUP
        return [*extra, built_in]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    load_sources.cache_clear()


def test_a_plugin_cannot_replace_kiriminaja(
    parcelku: PushSource, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    impostor = EntryPoint("kiriminaja", "parcelku_kabarin:Impostor", registry.GROUP)
    fake_entry_points(monkeypatch, impostor)
    try:
        with caplog.at_level(logging.WARNING, "kabarin.sources"):
            assert isinstance(get_source("kiriminaja"), KiriminAjaSource)
        assert "two push sources named 'kiriminaja'" in caplog.text
    finally:
        load_sources.cache_clear()


def test_a_broken_or_mislabelled_plugin_is_logged_and_left_out(
    parcelku: PushSource, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_entry_points(
        monkeypatch,
        EntryPoint("missing", "parcelku_kabarin.nowhere:Source", registry.GROUP),
        EntryPoint("parcelku", "parcelku_kabarin:NotASource", registry.GROUP),
        EntryPoint("renamed", "parcelku_kabarin:ParcelkuSource", registry.GROUP),
    )
    try:
        with caplog.at_level(logging.ERROR, "kabarin.sources"):
            assert set(load_sources()) == {"kiriminaja"}
        assert "push source 'missing'" in caplog.text and "cannot be loaded" in caplog.text
        assert "push source 'parcelku'" in caplog.text and "'renamed'" in caplog.text
    finally:
        load_sources.cache_clear()


# -- what the intake makes of its entries -------------------------------------------------------


def test_an_entry_is_normalised_by_the_source_that_decoded_it(parcelku: PushSource) -> None:
    body = plugin_source.push("PK-1", "delivered")
    (event,) = decode_logged(logged(parcelku, body), UTC).events
    assert (event.order_id, event.status, event.kind) == ("PK-1", Status.DELIVERED, "same_day")
    part = decode_logged_part(logged(parcelku, body), UTC, 0, 10)  # no paging: all decoded
    assert part.total == 1 and part.normalised.events == [event]
    assert decode_logged_part(logged(parcelku, body), UTC, 1, 10).normalised.events == []
    with pytest.raises(PushError):
        decode_logged(logged(parcelku, b'{"method": "shipped_packages", "data": []}'), UTC)


def test_the_id_namespace_is_the_source_and_kiriminaja_ids_did_not_change(
    parcelku: PushSource,
) -> None:
    kiriminaja = get_source("kiriminaja")
    body = b'{"method": "finished_packages", "data": [{"order_id": "PK-1", "awb": "A1"}]}'
    (event,) = decode_logged(logged(kiriminaja, body), UTC).events
    # The id KiriminAja's events had before there were other sources.
    assert event.id == event_id(
        "kiriminaja", "finished_packages", "PK-1", "delivered", None, "", "A1"
    )
    (theirs,) = decode_logged(logged(parcelku, plugin_source.push("PK-1", "delivered")), UTC).events
    assert theirs.id != event.id
    assert theirs.id == event_id(
        "parcelku",
        "shipment.updated",
        "PK-1",
        "delivered",
        "delivered",
        "2024-01-01T10:00:00+07:00",
        None,
    )


def test_metrics_label_a_sources_methods_by_its_own_names(parcelku: PushSource) -> None:
    assert metrics.method_label(" Shipment.Updated", parcelku) == "shipment.updated"
    assert metrics.method_label("shipped_packages", parcelku) == "other"
    assert metrics.method_label("shipment.updated", get_source("kiriminaja")) == "other"


# -- configuration -------------------------------------------------------------------------------


BASE = """
receiver: {token: t0ken}
store: {url: "sqlite:///k.db"}
sinks: {log: {type: console}}
routes: [{name: all, sinks: [log]}]
"""


def test_a_source_is_configured_at_a_path_of_its_own(parcelku: PushSource) -> None:
    config = parse_config(BASE + "sources: {parcelku: {path: /parcelku/push}}")
    assert config.sources["parcelku"].path == "/parcelku/push"
    problems = [
        ("sources: {biteship: {path: /b}}", "no push source 'biteship' is installed"),
        ("sources: {parcelku: {path: /kiriminaja/push}}", "already kiriminaja (receiver.path)'s"),
        ("sources: {parcelku: {path: nope}}", "must start with `/`"),
        ("sources: {kiriminaja: {path: /k}}", "kiriminaja is at receiver.path"),
    ]
    for extra, problem in problems:
        with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
            parse_config(BASE + extra)


def test_kabarin_check_renders_templates_with_the_configured_sources_samples(
    parcelku: PushSource, tmp_path: Path
) -> None:
    route = """
routes:
  - name: same-day
    match: {method: shipment.updated}
    sinks: [log]
    template: {log: "{{ event.raw.ref }} {{ event.status }}"}
sinks: {log: {type: console}}
receiver: {token: t0ken}
"""
    path = tmp_path / "kabarin.yaml"
    path.write_text(route + "sources: {parcelku: {path: /parcelku/push}}\n")
    validate_file(str(path))
    path.write_text(route)  # KiriminAja's samples alone have no `raw.ref`
    with pytest.raises(ConfigError, match="ref"):
        validate_file(str(path))


def test_a_route_may_match_the_kinds_of_the_configured_sources(
    parcelku: PushSource, tmp_path: Path
) -> None:
    route = "routes: [{name: same-day, match: {kind: same_day}, sinks: [log]}]\n"
    path = tmp_path / "kabarin.yaml"
    path.write_text(BASE.replace("routes: [{name: all, sinks: [log]}]\n", route))
    with pytest.raises(ConfigError, match="never a value of this field"):
        validate_file(str(path))
    path.write_text(path.read_text() + "sources: {parcelku: {path: /parcelku/push}}\n")
    validate_file(str(path))


# -- the receiver --------------------------------------------------------------------------------


@pytest.fixture
def client(parcelku: PushSource, tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-adm1n-adm1n}}
dispatcher: {{enabled: false}}
sources: {{parcelku: {{path: {plugin_source.PATH}}}}}
"""
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_a_sources_pushes_are_accepted_at_its_path_and_normalised_by_it(
    client: TestClient[Litestar],
) -> None:
    body = plugin_source.push("PK-7", "on_the_way")
    assert client.post(plugin_source.PATH, content=body).status_code == 401  # the same token
    r = client.post(plugin_source.PATH, content=body, headers=HEADERS)
    assert r.status_code == 200, r.text
    push_id = r.json()["push_id"]

    def events() -> list[dict[str, object]] | None:
        found = client.get("/admin/v1/events?order_id=PK-7", headers=ADMIN).json()["items"]
        return list(found) or None

    (event,) = asyncio.run(eventually(events))
    assert (event["status"], event["kind"], event["method"]) == (
        "in_transit",
        "same_day",
        "shipment.updated",
    )
    # The push log is a file of its own: the push is marked processed in a commit after the
    # events', so it may still read pending for a moment after they are visible.

    def processed() -> bool:
        entry = client.get(f"/admin/v1/pushes/{push_id}", headers=ADMIN).json()["push"]
        return bool(entry["state"] == "processed")

    assert asyncio.run(eventually(processed))
    # KiriminAja's path still judges bodies by KiriminAja's envelope.
    assert client.post("/kiriminaja/push", content=body, headers=HEADERS).status_code == 400


def test_a_rejected_body_is_replayed_through_the_source_it_came_to(
    client: TestClient[Litestar],
) -> None:
    r = client.post(
        plugin_source.PATH, content=b'{"event": "x", "shipments": [{}]}', headers=HEADERS
    )
    assert r.status_code == 400
    assert r.json()["detail"].startswith("a shipment needs a `ref`")
    (kept,) = client.get("/admin/v1/rejected", headers=ADMIN).json()["items"]
    replay = client.post(f"/admin/v1/rejected/{kept['id']}/replay", headers=ADMIN).json()
    # Judged by Parcelku's decoder again, not KiriminAja's.
    assert replay["answer"]["detail"].startswith("a shipment needs a `ref`")
