"""Courier scorecards and estimates through the admin API, the CLI and the dashboard pages
(in-process), against a synthetic history whose transit times are known."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.cli import main
from gateway.config import parse_config
from gateway.delivery.model import NewDelivery
from gateway.events import Event, Status
from gateway.insights.scorecards import parse_since
from gateway.runtime import Runtime

from .conftest import ingest

ADMIN = {"Authorization": "Bearer adm1n-token-for-tests"}
NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=3)
HOUR = timedelta(hours=1)


def ev(order: str, status: Status, at: datetime, shop: str = "toko-a", **details: str) -> Event:
    return Event(
        id=f"evt-{shop}-{order}-{status.value}",
        shop=shop,
        source="push",
        method="x",
        kind="express",
        status=status,
        order_id=order,
        occurred_at=at,
        received_at=at,
        details=details,
    )


def synthetic() -> list[Event]:
    """toko-a's jne REG: 10 deliveries of 1..10 h after a 2 h pickup (p50 5 h, p90 9 h), each
    with KiriminAja's estimate of 0 days (none is on time); its sicepat BEST: 4 shipped, 1
    delivered in 30 h (estimate 1 day: late), 1 returned, 1 problem, 1 stuck; and one jne REG
    order of toko-b, still on its way."""
    events: list[Event] = []
    for i, hours in enumerate([7, 3, 10, 1, 5, 9, 2, 8, 4, 6]):
        order, created = f"J{i}", START + i * HOUR
        shipped = created + 2 * HOUR
        events += [
            ev(order, Status.PROCESSED, created, service="jne", service_type="REG"),
            ev(order, Status.SHIPPED, shipped, destination_city="Bantul", estimation="0"),
            ev(order, Status.DELIVERED, shipped + hours * HOUR),
        ]
    for order, last in (("S0", Status.DELIVERED), ("S1", Status.RETURNED)):
        events += [
            ev(
                order, Status.SHIPPED, START, service="sicepat", service_type="BEST", estimation="1"
            ),
            ev(order, last, START + 30 * HOUR),
        ]
    for order, last in (("S2", Status.PROBLEM), ("S3", Status.STUCK)):
        events += [
            ev(order, Status.SHIPPED, START, service="sicepat", service_type="BEST"),
            ev(order, last, START + 5 * HOUR),
        ]
    events.append(
        ev(
            "B1",
            Status.SHIPPED,
            NOW - HOUR,
            "toko-b",
            service="jne",
            service_type="REG",
            estimation="2-3",
        )
    )
    return events


CONFIG = """
store: {{url: "sqlite:///{path}/k.db"}}
admin: {{token: adm1n-token-for-tests}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
shops:
  toko-a: {{token: t0ken-for-toko-a, name: Toko A}}
  toko-b: {{token: t0ken-for-toko-b, name: Toko B}}
sinks:
  ops: {{type: console}}
"""


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient[Litestar]]:
    path = tmp_path_factory.mktemp("insights")
    (path / "config.yaml").write_text(CONFIG.format(path=path))
    config = parse_config(CONFIG.format(path=path))
    with TestClient(create_app(config), raise_server_exceptions=False) as test_client:
        rt: Runtime = test_client.app.state.runtime
        test_client.blocking_portal.call(partial(ingest, rt.store, events=synthetic()))
        r = test_client.post("/ui/login", data={"token": "adm1n-token-for-tests"})
        assert r.status_code == 200, r.text
        yield test_client


def test_the_scorecard_api_gives_the_known_figures(client: TestClient[Litestar]) -> None:
    r = client.get("/admin/v1/insights/couriers", params={"since": "30d"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    jne, sicepat = body["couriers"]
    assert jne == {
        "courier": "jne",
        "service": "REG",
        "shipments": 11,
        "delivered": 10,
        "returned": 0,
        "problems": 0,
        "stuck": 0,
        "transit_hours": {"p50": 5.0, "p90": 9.0},
        "pickup_hours": {"p50": 2.0, "p90": 2.0},
        "return_rate": 0.0,
        "problem_rate": 0.0,
        "on_time_rate": 0.0,  # "0" days: none was delivered by the day it shipped
    }
    assert sicepat["shipments"] == 4
    assert (sicepat["returned"], sicepat["problems"], sicepat["stuck"]) == (1, 1, 1)
    assert (sicepat["return_rate"], sicepat["problem_rate"]) == (0.25, 0.25)
    assert sicepat["transit_hours"] == {"p50": 30.0, "p90": 30.0}
    assert sicepat["pickup_hours"] == {"p50": None, "p90": None}
    assert sicepat["on_time_rate"] == 0.0  # 30 h > 1 day

    one = client.get(
        "/admin/v1/insights/couriers", params={"shop": "toko-b"}, headers=ADMIN
    ).json()["couriers"]
    assert [(c["courier"], c["shipments"], c["delivered"]) for c in one] == [("jne", 1, 0)]
    by = client.get(
        "/admin/v1/insights/couriers",
        params={"shop": "toko-a", "by": "destination"},
        headers=ADMIN,
    ).json()["couriers"]
    assert [(c["courier"], c["destination"], c["shipments"]) for c in by] == [
        ("jne", "Bantul", 10),
        ("sicepat", None, 4),
    ]


@pytest.mark.parametrize(
    "params",
    [{"since": "yesterday"}, {"by": "city"}, {"shop": "toko-z"}],
)
def test_bad_scorecard_parameters_are_400(
    client: TestClient[Litestar], params: dict[str, str]
) -> None:
    r = client.get("/admin/v1/insights/couriers", params=params, headers=ADMIN)
    assert r.status_code == 400, r.text
    assert client.get("/admin/v1/insights/couriers").status_code == 401


def test_the_order_api_and_page_show_the_estimate(client: TestClient[Litestar]) -> None:
    r = client.get("/admin/v1/orders/B1", params={"shop": "toko-b"}, headers=ADMIN)
    assert r.status_code == 200, r.text
    body = r.json()
    shipped = NOW - HOUR
    assert body["estimate"]["basis"] == "kiriminaja"
    assert body["estimate"]["estimation"] == "2-3"
    latest = datetime.fromisoformat(body["estimate"]["latest"].replace("Z", "+00:00"))
    assert latest == shipped + timedelta(days=3)
    assert body["facts"]["courier"] == "jne"
    delivered = client.get("/admin/v1/orders/J1", params={"shop": "toko-a"}, headers=ADMIN)
    assert delivered.json()["estimate"] is None

    page = client.get("/ui/orders/view", params={"id": "B1", "lang": "id"}).text
    assert 'id="order-estimate"' in page
    assert "Perkiraan KiriminAja: 2-3 hari" in page
    assert 'id="order-estimate"' not in client.get("/ui/orders/view", params={"id": "J1"}).text


def test_a_delivery_preview_renders_the_estimate_it_would_be_sent_with(
    client: TestClient[Litestar],
) -> None:
    rt: Runtime = client.app.state.runtime
    moving = ev("B1", Status.IN_TRANSIT, NOW - HOUR / 2, "toko-b")
    text = "{{ event.order_id }}: {{ estimate.basis }} {{ estimate.estimation }}"
    sent = NewDelivery(
        id="dlv-b1-eta",
        event_id=moving.id,
        route="eta",
        sink="ops",
        ordering="all",
        template=text,
    )
    client.blocking_portal.call(partial(ingest, rt.store, events=[moving], deliveries=[sent]))
    page = client.get("/ui/deliveries/dlv-b1-eta")
    assert page.status_code == 200, page.text
    assert "B1: kiriminaja 2-3" in page.text


def test_the_couriers_page_draws_its_charts_and_links_the_orders(
    client: TestClient[Litestar],
) -> None:
    page = client.get("/ui/couriers", params={"lang": "en"}).text
    assert "<script" not in page.split("<main", 1)[1]  # nothing but the inline SVG
    assert page.count('class="hchart"') == 2
    assert "5 / 9" in page  # jne REG transit p50 / p90 hours
    assert 'data-courier="sicepat"' in page
    link = "/ui/couriers/orders?courier=sicepat&amp;service=BEST&amp;days=30"
    assert link in page
    orders = client.get(link.replace("&amp;", "&")).text
    assert orders.count("/ui/orders/view?id=S") == 4
    assert "/ui/orders/view?id=J" not in orders
    indonesian = client.get("/ui/couriers", params={"lang": "id"}).text
    assert "Rapor kurir" in indonesian and "Tingkat retur" in indonesian


def test_the_cli_prints_the_table_and_the_csv(
    client: TestClient[Litestar], capsys: pytest.CaptureFixture[str]
) -> None:
    rt: Runtime = client.app.state.runtime
    config = str(rt.store.path.parent / "config.yaml")  # type: ignore[attr-defined]
    assert main(["insights", "couriers", "--since", "30d", "-c", config, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["courier"] for r in rows] == ["jne", "sicepat"]
    assert (rows[0]["transit_p50_hours"], rows[0]["transit_p90_hours"]) == ("5.0", "9.0")
    assert rows[1]["return_rate"] == "0.25"
    assert main(["insights", "couriers", "-c", config, "--shop", "toko-b"]) == 0
    table = capsys.readouterr().out
    assert "jne" in table and "sicepat" not in table
    assert re.match(r"orders shipped since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d WIB\n", table)
    assert main(["insights", "couriers", "-c", config, "--since", "soon"]) == 1
    assert "--since" in capsys.readouterr().err


def test_a_since_without_a_zone_is_the_receivers_local_time() -> None:
    now = datetime(2026, 12, 7, tzinfo=UTC)
    wib = ZoneInfo("Asia/Jakarta")
    assert parse_since("2026-12-01", now, wib) == datetime(2026, 11, 30, 17, tzinfo=UTC)
    assert parse_since("2026-12-01T00:00:00+00:00", now, wib) == datetime(2026, 12, 1, tzinfo=UTC)
    assert parse_since("2w", now, wib) == now - timedelta(days=14)
    assert parse_since(None, now, wib) == now - timedelta(days=30)


def test_kabarin_check_knows_the_estimate(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = """
receiver: {token: t0ken-for-pushes-123}
store: {url: "sqlite:///STORE/k.db"}
sinks:
  ops: {type: console}
routes:
  - name: eta
    match: {status: shipped}
    sinks: [ops]
    template: {ops: "tiba {{ estimate.latest | localdate }} ({{ estimate.basis }})"}
""".replace("STORE", str(tmp_path))
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert main(["check", "-c", str(config)]) == 0
    config.write_text(text.replace("estimate.basis", "estimate.nope"))
    assert main(["check", "-c", str(config)]) == 1
    assert "estimate has no attribute 'nope'" in capsys.readouterr().err
