"""``kabarin rejected list | show`` and ``kabarin deliveries`` as a person reads them: a header
row, times in the configured timezone (as the dashboard shows them), and a text cut short that
says so with ``…``."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest

from gateway.cli import main
from gateway.delivery.model import Attempt, NewDelivery
from gateway.events import Event, Status
from gateway.store import RejectedRequest, open_store
from gateway.units import clipped

from .conftest import ingest

MOMENT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)  # 15:00 in Jakarta
REASON = "the body is not JSON: " + "x" * 100
ERROR = "HTTP 500: " + "the ERP says no " * 10


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> str:
    tmp_path = tmp_path_factory.mktemp("listings")
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
receiver: {{token: t0ken-of-the-shop-1234, timezone: Asia/Jakarta}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks:
  erp: {{type: console}}
"""
    )

    async def seed() -> None:
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        await store.open(now=MOMENT)
        event = Event(
            id="evt-1",
            source="push",
            method="shipped_packages",
            kind="express",
            status=Status.SHIPPED,
            order_id="OID-1",
            occurred_at=MOMENT,
            received_at=MOMENT,
        )
        delivery = NewDelivery(id="dlv-1", event_id=event.id, route="r", sink="erp", ordering="all")
        await ingest(store, events=[event], deliveries=[delivery], now=MOMENT)
        (claim,) = (await store.claim(worker="w", now=MOMENT, limit=1, lease_seconds=30)).claims
        attempt = Attempt(
            delivery_id=claim.delivery.id,
            started_at=MOMENT,
            duration_ms=1,
            outcome="permanent",
            status_code=500,
            error=ERROR,
        )
        await store.finish(
            "dlv-1", worker="w", attempt=attempt, state="dead", now=MOMENT, error=ERROR
        )
        await store.reject(RejectedRequest(received_at=MOMENT, reason=REASON, body=b"{"))
        await store.close()

    asyncio.run(seed())
    return str(path)


def test_rejected_list_has_a_header_and_local_times(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rejected", "list", "-c", config]) == 0
    header, row = capsys.readouterr().out.splitlines()
    assert header.split() == ["ID", "RECEIVED", "SHOP", "REASON"]
    assert "2024-05-01 15:00:00 WIB" in row and "+00:00" not in row
    assert row.endswith(clipped(REASON, 70)) and row.endswith("…")
    assert header.index("REASON") == row.index("the body")  # the columns line up


def test_rejected_show_gives_the_local_time(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rejected", "list", "-c", config, "--json"]) == 0
    rejected_id = json.loads(capsys.readouterr().out)["id"]
    assert main(["rejected", "show", "-c", config, str(rejected_id)]) == 0
    out = capsys.readouterr().out
    assert "received_at   2024-05-01 15:00:00 WIB\n" in out
    assert REASON in out  # shown whole


def test_deliveries_says_when_it_cuts_the_last_error(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["deliveries", "-c", config]) == 0
    _, row = capsys.readouterr().out.splitlines()
    assert row.endswith(ERROR[:59] + "…")


def test_clipped_leaves_a_short_text_whole() -> None:
    assert clipped("HTTP 503", 60) == "HTTP 503"
    assert clipped("a\nb", 60) == "a b"
    assert clipped("x" * 61, 60) == "x" * 59 + "…"
    assert len(clipped("x" * 61, 60)) == 60
