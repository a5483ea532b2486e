"""The metrics the alerting rules need for the failures that matter are set where those
failures happen."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway import metrics
from gateway.app import create_app
from gateway.config import PullConfig, parse_config
from gateway.errors import StoreError
from gateway.events import EventKind
from gateway.kiriminaja.pull import PullTracker
from gateway.kiriminaja.tracking import NotFound, TrackingResult
from gateway.store import Store, open_store
from gateway.units import Duration
from tests.waiting import eventually

# -- the metrics the rules need ---------------------------------------------------------------


def sample(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/kabarin.db")
    await opened.open(now=datetime.now(UTC))
    yield opened
    await opened.close()


async def test_a_sink_switched_off_shows_on_scrape_until_it_is_enabled(store: Store) -> None:
    now = datetime.now(UTC)
    await store.disable_sink("alerting-erp", reason="410 Gone", now=now)
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_sink_disabled", sink="alerting-erp") == 1
    assert await store.enable_sink("alerting-erp")
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_sink_disabled", sink="alerting-erp") == 0


async def test_store_readiness_follows_the_ping(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert await metrics.refresh_store_ready(store, now=datetime.now(UTC)) is None
    assert sample("kabarin_store_ready") == 1

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("database or disk is full")

    monkeypatch.setattr(store, "ping", broken)
    problem = await metrics.refresh_store_ready(store, now=datetime.now(UTC))
    assert str(problem) == "database or disk is full"
    assert sample("kabarin_store_ready") == 0


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
dispatcher: {{enabled: false}}
"""
    )
    with TestClient(create_app(config)) as test_client:
        yield test_client


def test_a_scrape_says_whether_the_store_can_commit_without_a_readyz_probe(
    client: TestClient[Litestar], monkeypatch: pytest.MonkeyPatch
) -> None:
    def scraped() -> str:
        return next(
            line
            for line in client.get("/metrics").text.splitlines()
            if line.startswith("kabarin_store_ready ")
        )

    assert scraped() == "kabarin_store_ready 1.0"

    async def broken(*args: object, **kwargs: object) -> None:
        raise StoreError("the SQLite writer is not running")

    monkeypatch.setattr(client.app.state.runtime.store, "ping", broken)
    assert scraped() == "kabarin_store_ready 0.0"
    assert client.get("/readyz").status_code == 503


class _Unknown:
    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        return NotFound(kind=kind, order_id=order_id, reason="not found")


async def test_a_failing_turn_of_the_pull_tracker_is_counted(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: object, **kwargs: object) -> int:
        raise StoreError("disk I/O error")

    monkeypatch.setattr(store, "count_pending_pushes", broken)
    before = sample("kabarin_pull_failures_total") or 0.0
    tracker = PullTracker(
        store=store,
        client=_Unknown(),
        config=PullConfig(enabled=True, interval=Duration(0.05)),
        timezone=UTC,
    )
    await tracker.start()
    try:
        await eventually(lambda: (sample("kabarin_pull_failures_total") or 0.0) >= before + 2)
    finally:
        await tracker.stop()
