"""Order facts and the figures read from them, on every backend, against synthetic histories
whose transit times are known (`gateway.store.facts`)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gateway.cli import main
from gateway.events import Event, Status
from gateway.insights import estimates
from gateway.insights.estimates import Estimate, TransitHistories, clear_histories, estimate_for
from gateway.insights.scorecards import scorecards
from gateway.sources.kiriminaja.normalise import normalise
from gateway.sources.kiriminaja.pulled import Pulled, normalise_pulled
from gateway.sources.kiriminaja.push import decode_push
from gateway.store import Store, open_store
from gateway.store.facts import OrderFacts, TransitHistory, estimation_days, fold, nearest_rank
from gateway.store.postgres import schema as pg_schema
from gateway.store.sqlite import schema as sqlite_schema
from gateway.templating import Templates, sample_estimate

from .conftest import ingest, store_url

FIXTURES = Path(__file__).parent / "fixtures"
T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def ev(
    order: str,
    status: Status,
    at: datetime,
    *,
    shop: str = "default",
    **details: Any,
) -> Event:
    return Event(
        id=f"evt-{shop}-{order}-{status.value}-{at.timestamp()}",
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


def history(
    courier: str,
    product: str,
    transits: list[int],
    *,
    shop: str = "default",
    city: str = "",
    start: datetime = T0,
    prefix: str = "",
    estimation: str | None = None,
) -> list[Event]:
    """One delivered order per transit time (hours), each picked up `i + 1` hours after it
    was created, shipped an hour apart."""
    events: list[Event] = []
    extra: dict[str, Any] = {"destination_city": city} if city else {}
    if estimation:
        extra["estimation"] = estimation
    for i, hours in enumerate(transits):
        order = f"{prefix}{courier}-{product}-{city}-{i}"
        created = start + i * HOUR
        shipped = created + (i + 1) * HOUR
        details = {"service": courier, "service_type": product}
        events += [
            ev(order, Status.PROCESSED, created, shop=shop, **details),
            ev(order, Status.SHIPPED, shipped, shop=shop, **details, **extra),
            ev(order, Status.DELIVERED, shipped + hours * HOUR, shop=shop),
        ]
    return events


def test_nearest_rank_and_estimation_days() -> None:
    assert [nearest_rank(10, 50), nearest_rank(10, 90)] == [4, 8]
    assert [nearest_rank(1, 50), nearest_rank(1, 90)] == [0, 0]
    assert [nearest_rank(21, 50), nearest_rank(21, 90)] == [10, 18]
    assert estimation_days("2-3") == (2, 3)
    assert estimation_days(" 3 - 4 hari") == (3, 4)
    assert estimation_days("1") == (1, 1)
    assert estimation_days("-") is None
    assert estimation_days("") is None


async def test_facts_merge_earliest_stage_latest_text(store: Store) -> None:
    shipped = T0 + 2 * HOUR
    await ingest(
        store,
        events=[
            ev("A1", Status.SHIPPED, shipped, service="jne", service_type="REG"),
            ev("A1", Status.PROCESSED, T0),
        ],
    )
    # A later push: an earlier shipped time wins, a later one does not; new texts win,
    # empty ones do not.
    await ingest(
        store,
        events=[
            ev("A1", Status.SHIPPED, shipped - HOUR, service="JNE", destination_city="Bantul"),
            ev("A1", Status.SHIPPED, shipped + HOUR, service="", estimation="2-3"),
            ev("A1", Status.PROBLEM, shipped + 3 * HOUR),
            ev("A1", Status.PROBLEM, shipped + 2 * HOUR, estimation="-"),
        ],
    )
    facts = await store.order_facts("A1")
    assert facts is not None
    assert (facts.courier, facts.product, facts.destination) == ("jne", "REG", "Bantul")
    assert (facts.estimation, facts.est_min_days, facts.est_max_days) == ("2-3", 2, 3)
    assert facts.created_at == T0
    assert facts.shipped_at == shipped - HOUR
    assert facts.problem_at == shipped + 2 * HOUR
    assert facts.delivered_at is None
    assert await store.order_facts("A1", shop="other") is None


async def test_on_time_counts_only_orders_with_kiriminajas_estimate(store: Store) -> None:
    """As docs/insights.md says: judged against KiriminAja's estimate only, within its upper
    bound in days times 24 h of shipping (not the end of that day); none with no estimate at all."""
    second = timedelta(seconds=1)
    events = []
    for order, courier, estimation, transit in (
        ("ON", "jne", "1-2", 48 * HOUR),  # exactly 2 days: on time
        ("LATE", "jne", "1-2", 48 * HOUR + second),  # a second more: late
        ("NONE", "jne", None, HOUR),  # no estimate: not counted, not late
        ("BARE", "lion", None, HOUR),  # a courier with no estimate at all
    ):
        extra = {"estimation": estimation} if estimation else {}
        details = {"service": courier, "service_type": "REG"}
        events += [
            ev(order, Status.SHIPPED, T0, **details, **extra),
            ev(order, Status.DELIVERED, T0 + transit),
        ]
    await ingest(store, events=events)
    cards = {c.courier: c for c in await scorecards(store, since=T0 - HOUR)}
    jne, lion = cards["jne"], cards["lion"]
    assert (jne.delivered, jne.on_time_rate) == (3, 0.5)  # 1 of the 2 with an estimate
    assert (lion.delivered, lion.on_time_rate) == (1, None)


async def test_scorecard_figures_are_exact(store: Store) -> None:
    transits = [7, 3, 10, 1, 5, 9, 2, 8, 4, 6]  # p50 = 5 h, p90 = 9 h (nearest rank)
    events = history("jne", "REG", transits, estimation="0-1")
    # sicepat: two delivered (20 h, 40 h), one returned, one with a problem, one stuck
    events += history("sicepat", "BEST", [20, 40], estimation="1")
    for name, status in (("R", Status.RETURNED), ("P", Status.PROBLEM), ("S", Status.STUCK)):
        events += [
            ev(name, Status.SHIPPED, T0, service="sicepat", service_type="BEST"),
            ev(name, status, T0 + 5 * HOUR),
        ]
    # shipped before the window: not counted
    events += history("jne", "REG", [100], start=T0 - timedelta(days=40), prefix="old-")
    await ingest(store, events=events)

    rows = await store.courier_figures(since=T0 - timedelta(days=1))
    by = {(r.courier, r.product): r for r in rows}
    assert set(by) == {("jne", "REG"), ("sicepat", "BEST")}
    jne = by["jne", "REG"]
    assert (jne.shipments, jne.delivered, jne.returned, jne.problems, jne.stuck) == (
        10,
        10,
        0,
        0,
        0,
    )
    assert (jne.transit_p50, jne.transit_p90) == (5 * 3600, 9 * 3600)
    assert (jne.pickup_p50, jne.pickup_p90) == (5 * 3600, 9 * 3600)  # pickups 1..10 h
    # 0-1 days: on time when delivered within 24 h: every one
    assert (jne.promised, jne.on_time) == (10, 10)
    sicepat = by["sicepat", "BEST"]
    assert (sicepat.shipments, sicepat.delivered, sicepat.returned) == (5, 2, 1)
    assert (sicepat.problems, sicepat.stuck) == (1, 1)
    assert (sicepat.transit_p50, sicepat.transit_p90) == (20 * 3600, 40 * 3600)
    assert (sicepat.promised, sicepat.on_time) == (2, 1)  # 1 day: 20 h is, 40 h is not

    everything = await store.courier_figures(since=T0 - timedelta(days=100))
    jne_all = next(r for r in everything if r.courier == "jne")
    assert jne_all.shipments == 11
    assert jne_all.transit_p90 == 10 * 3600  # 11 values: rank 10 of 1..10, 100

    orders = await store.courier_orders("sicepat", since=T0 - timedelta(days=1), limit=3)
    assert len(orders) == 3
    assert all(o.courier == "sicepat" for o in orders)
    assert await store.courier_orders("sicepat", since=T0, shops=[]) == []


async def test_scorecards_by_shop_and_destination(store: Store) -> None:
    events = history("jne", "REG", [1, 2, 3], city="Bantul")
    events += history("jne", "REG", [10, 20], city="Sleman")
    events += history("jne", "REG", [50, 60, 70], shop="toko-b", city="Bantul")
    await ingest(store, events=events)
    since = T0 - timedelta(days=1)

    (mine,) = await store.courier_figures(since=since, shops=["default"])
    assert (mine.shipments, mine.transit_p50, mine.transit_p90) == (5, 3 * 3600, 20 * 3600)
    (both,) = await store.courier_figures(since=since)
    assert (both.shipments, both.transit_p50) == (8, 10 * 3600)

    rows = await store.courier_figures(since=since, shops=["default"], by_destination=True)
    assert [(r.destination, r.shipments, r.transit_p90) for r in rows] == [
        ("Bantul", 3, 3 * 3600),
        ("Sleman", 2, 20 * 3600),
    ]
    rows = await store.courier_figures(since=since, by_destination=True)
    assert [(r.destination, r.shipments, r.transit_p50) for r in rows] == [
        ("Bantul", 6, 3 * 3600),
        ("Sleman", 2, 10 * 3600),
    ]


async def test_transit_history_uses_the_city_once_it_has_20(store: Store) -> None:
    events = history("jne", "REG", list(range(1, 20)), city="Bantul")  # 19 deliveries
    events += history("jne", "REG", [100] * 11, city="Sleman")
    await ingest(store, events=events)

    few = await store.transit_history(
        shop="default", courier="jne", product="REG", destination="Bantul"
    )
    assert (few.samples, few.destination) == (30, "")
    assert (few.p50, few.p90) == (15 * 3600, 100 * 3600)

    await ingest(store, events=history("jne", "REG", [20], city="Bantul", prefix="more-"))
    enough = await store.transit_history(
        shop="default", courier="jne", product="REG", destination="Bantul"
    )
    assert (enough.samples, enough.destination) == (20, "Bantul")
    assert (enough.p50, enough.p90) == (10 * 3600, 18 * 3600)
    none = await store.transit_history(shop="default", courier="anteraja", product="REG")
    assert (none.samples, none.p50, none.p90) == (0, None, None)


async def test_migration_rebuilds_facts_from_stored_events(backend: str, tmp_path: Path) -> None:
    """A store from before the facts table: its events are there, the facts are rebuilt."""
    url = store_url(backend, tmp_path)
    store = open_store(url)
    await store.open(now=T0)
    await ingest(store, events=history("jne", "REG", [3, 1, 2]))
    await ingest(store, events=[ev("jne-REG--0", Status.SHIPPED, T0, destination_city="Bantul")])
    await store.close()
    forget = ["DROP TABLE order_facts", "DELETE FROM schema_version WHERE version = %d"]
    if backend == "sqlite":
        assert "CREATE TABLE order_facts" in dict(sqlite_schema.MIGRATIONS)[18]
        conn = sqlite3.connect(tmp_path / "kabarin.db", isolation_level=None)
        for statement in forget:
            conn.execute(statement.replace("%d", "18"))
        conn.close()
    else:
        assert "CREATE TABLE order_facts" in dict(pg_schema.MIGRATIONS)[13]
        with psycopg.connect(url, autocommit=True) as pg:
            for statement in forget:
                pg.execute(statement.replace("%d", "13").encode())

    store = open_store(url)
    await store.open(now=T0)
    try:
        (row,) = await store.courier_figures(since=T0 - HOUR)
        assert (row.shipments, row.delivered, row.transit_p50) == (3, 3, 2 * 3600)
        facts = await store.order_facts("jne-REG--0")
        assert facts is not None
        assert (facts.destination, facts.shipped_at) == ("Bantul", T0)  # the earliest
    finally:
        await store.close()


def test_facts_from_a_tracking_answer_and_a_complete_push() -> None:
    """The tracking API's courier, product, city and estimate, and the complete push
    format's ``packages[]`` fields, reach the order's facts."""
    answer = json.loads((FIXTURES / "tracking" / "express.json").read_text())
    answer["details"]["estimation"] = "2-3"
    answer["details"]["delivered"] = False
    answer["details"]["delivered_at"] = None
    answer["status_code"] = 106
    answer["histories"] = []
    pulled = Pulled(kind="express", order_id="OID-8793949106", answer=answer)
    events = normalise_pulled(pulled, received_at=T0, tz=UTC).events
    (facts,) = fold(events)
    assert (facts.courier, facts.product, facts.destination) == ("jne", "REG", "Kabupaten Bantul")
    assert (facts.estimation, facts.est_min_days, facts.est_max_days) == ("2-3", 2, 3)
    assert facts.shipped_at == datetime(2021, 7, 13, 17, 44, 4, tzinfo=UTC)

    push = decode_push(
        json.dumps(
            {
                "method": "shipped_packages",
                "data": [{"order_id": "X1", "shipped_at": "2026-11-01 08:00:00"}],
                "packages": [
                    {
                        "order_id": "X1",
                        "service": "SiCepat",
                        "service_type": "BEST",
                        "destination": {"name": "Siti", "city": "Kota Yogyakarta"},
                    }
                ],
            }
        ).encode()
    )
    (pushed,) = fold(normalise(push, received_at=T0, tz=UTC).events)
    assert (pushed.courier, pushed.product, pushed.destination) == (
        "sicepat",
        "BEST",
        "Kota Yogyakarta",
    )
    assert pushed.shipped_at == T0


async def test_estimate_from_history_else_kiriminaja(store: Store) -> None:
    shipped = T0 + timedelta(days=30)
    open_order = [
        ev("NEW", Status.PROCESSED, shipped - HOUR, service="jne", service_type="REG"),
        ev("NEW", Status.SHIPPED, shipped, estimation="2-3", destination_city="Bantul"),
    ]
    await ingest(store, events=[*open_order, *history("jne", "REG", list(range(1, 20)))])
    estimate = await estimate_for(store, "NEW")
    assert estimate is not None  # 19 deliveries: too few, KiriminAja's "2-3" days
    assert (estimate.basis, estimate.estimation) == ("kiriminaja", "2-3")
    assert (estimate.earliest, estimate.latest) == (
        shipped + timedelta(days=2),
        shipped + timedelta(days=3),
    )
    assert estimate.as_dict()["latest"] == (shipped + timedelta(days=3)).isoformat()

    await ingest(store, events=history("jne", "REG", [20], prefix="more-"))
    clear_histories()  # else the estimate uses the history of 19 for up to 5 minutes
    estimate = await estimate_for(store, "NEW")
    assert estimate is not None  # 20 deliveries of 1..20 h: p50 10 h, p90 18 h
    assert (estimate.basis, estimate.samples, estimate.destination) == ("history", 20, None)
    assert (estimate.earliest, estimate.latest) == (shipped + 10 * HOUR, shipped + 18 * HOUR)
    assert await estimate_for(store, "NEW", shop="other") is None

    await ingest(store, events=[ev("NEW", Status.DELIVERED, shipped + HOUR)])
    assert await estimate_for(store, "NEW") is None  # delivered: nothing to expect
    await ingest(store, events=[ev("BARE", Status.SHIPPED, shipped, service="anteraja")])
    assert await estimate_for(store, "BARE") is None  # no history, no estimate of KiriminAja's
    await ingest(store, events=[ev("WAIT", Status.PROCESSED, shipped, estimation="1-2")])
    assert await estimate_for(store, "WAIT") is None  # not shipped yet


class Counting:
    """A store that counts the transit histories read from it."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.reads = 0

    async def order_facts(self, order_id: str, *, shop: str = "default") -> OrderFacts | None:
        return await self.store.order_facts(order_id, shop=shop)

    async def transit_history(
        self, *, shop: str, courier: str, product: str, destination: str = ""
    ) -> TransitHistory:
        self.reads += 1
        return await self.store.transit_history(
            shop=shop, courier=courier, product=product, destination=destination
        )


async def test_an_estimate_reads_the_history_again_only_after_5_minutes(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(estimates, "HISTORIES", TransitHistories(clock=lambda: now[0]))
    shipped = T0 + timedelta(days=30)
    opened = [
        ev(o, s, shipped, service="jne", service_type="REG", destination_city="Bantul")
        for o in ("A", "B")
        for s in (Status.PROCESSED, Status.SHIPPED)
    ]
    await ingest(store, events=[*opened, *history("jne", "REG", list(range(1, 21)))])
    counting = Counting(store)
    first = await estimate_for(counting, "A")  # type: ignore[arg-type]
    assert first is not None and (first.basis, first.samples) == ("history", 20)
    assert counting.reads == 1

    await ingest(store, events=history("jne", "REG", [100] * 5, prefix="more-"))
    now[0] += 299
    again = await estimate_for(counting, "B")  # type: ignore[arg-type]
    assert counting.reads == 1  # the same courier, product and city: kept
    assert again is not None and again.samples == 20
    assert await estimate_for(counting, "A", shop="other") is None  # type: ignore[arg-type]

    now[0] += 2  # 301 s after the first read: read again, with the 5 new deliveries
    later = await estimate_for(counting, "B")  # type: ignore[arg-type]
    assert counting.reads == 2
    assert later is not None and later.samples == 25


def test_templates_see_the_estimate_with_localdate() -> None:
    templates = Templates(timezone=ZoneInfo("Asia/Jakarta"))
    event = ev("T1", Status.SHIPPED, T0)
    source = (
        "{% if estimate %}perkiraan tiba {{ estimate.latest | localdate }}"
        " ({{ estimate.basis }}){% else %}-{{ estimate.latest | localdate }}{% endif %}"
    )

    def render(estimate: Estimate | None, language: str = "id") -> str:
        return templates.render(
            source, event=event, contact=None, route="r", language=language, estimate=estimate
        )

    estimate = Estimate(
        earliest=T0, latest=datetime(2026, 11, 5, 20, 0, tzinfo=UTC), basis="kiriminaja"
    )
    # 20:00 UTC is 03:00 the next day in Jakarta
    assert render(estimate) == "perkiraan tiba Jumat, 06 November 2026 (kiriminaja)"
    assert render(estimate, "en") == "perkiraan tiba Friday, 06 November 2026 (kiriminaja)"
    assert render(None) == "--"
    assert sample_estimate(event).latest == T0 + timedelta(days=3)


async def test_percentiles_inside_and_across_the_hour_buckets(store: Store) -> None:
    """Ranks are exact to the second, however many values share an hour."""
    events: list[Event] = []
    for courier, seconds in (
        ("jne", [300, 100, 7300, 200, 3800, 3700]),  # p50: 300 s (3rd), p90: 7300 s (6th)
        ("jnt", [10 * (i + 1) for i in range(10)]),  # one bucket: p50 50 s, p90 90 s
    ):
        for i, s in enumerate(seconds):
            order = f"{courier}-{i}"
            shipped = T0 + i * HOUR
            details = {"service": courier, "service_type": "REG"}
            events += [
                ev(order, Status.PROCESSED, shipped - timedelta(seconds=s), **details),
                ev(order, Status.SHIPPED, shipped),
                ev(order, Status.DELIVERED, shipped + timedelta(seconds=s)),
            ]
    await ingest(store, events=events)
    rows = {r.courier: r for r in await store.courier_figures(since=T0 - HOUR)}
    assert (rows["jne"].transit_p50, rows["jne"].transit_p90) == (300, 7300)
    assert (rows["jne"].pickup_p50, rows["jne"].pickup_p90) == (300, 7300)
    assert (rows["jnt"].transit_p50, rows["jnt"].transit_p90) == (50, 90)


def test_a_moved_store_keeps_its_order_facts(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``kabarin store migrate`` copies the facts, and those of the events it copies, both ways:
    facts whose events retention removed too."""
    first, back = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/back.db"

    async def fill() -> None:
        store = open_store(first)
        await store.open(now=T0)
        await ingest(store, events=history("jne", "REG", [3, 1, 2], city="Bantul", prefix="old-"))
        await store.close()
        with sqlite3.connect(f"{tmp_path}/first.db") as db:  # as `retention.events` does
            db.execute("DELETE FROM events")
        store = open_store(first)
        await store.open(now=T0)
        await ingest(store, events=history("jne", "REG", [3, 1, 2], city="Bantul"))
        await store.close()

    async def figures(url: str) -> list[tuple[str, int, int | None, int | None]]:
        store = open_store(url)
        await store.open(now=T0)
        try:
            rows = await store.courier_figures(since=T0 - HOUR, by_destination=True)
            return [(r.destination or "", r.shipments, r.transit_p50, r.pickup_p90) for r in rows]
        finally:
            await store.close()

    asyncio.run(fill())
    expected = [("Bantul", 6, 2 * 3600, 3 * 3600)]
    assert asyncio.run(figures(first)) == expected
    for source, target in ((first, pg_url), (pg_url, back)):
        assert main(["store", "migrate", "--from", source, "--to", target]) == 0
        assert asyncio.run(figures(target)) == expected
    capsys.readouterr()
