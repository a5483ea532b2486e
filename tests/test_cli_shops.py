"""``kabarin`` with two shops: ``--shop`` narrows the listings and replays, and names the shop
of contacts and tracked orders (required when the file lists several; checked against it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from gateway.cli import main
from gateway.delivery.model import NewDelivery
from gateway.events import Event, Status
from gateway.store import RejectedRequest, open_store

from .conftest import ingest

MOMENT = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def _event(shop: str) -> Event:
    return Event(
        id=f"evt-{shop}",
        shop=shop,
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id="OID-1",
        occurred_at=MOMENT,
        received_at=MOMENT,
    )


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"""
shops:
  toko-a: {{token: t0ken-of-toko-a-1234}}
  toko-b: {{token: t0ken-of-toko-b-1234}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks:
  erp: {{type: console}}
"""
    )

    async def seed() -> None:
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        await store.open(now=MOMENT)
        events = [_event("toko-a"), _event("toko-b")]
        deliveries = [
            NewDelivery(id=f"dlv-{e.shop}", event_id=e.id, route="r", sink="erp", ordering="all")
            for e in events
        ]
        await ingest(store, events=events, deliveries=deliveries, now=MOMENT)
        for shop in ("toko-a", "toko-b"):
            await store.reject(
                RejectedRequest(received_at=MOMENT, reason="x", body=b"{", shop=shop)
            )
        await store.close()

    asyncio.run(seed())
    return str(path)


def test_shop_narrows_the_listings(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deliveries", "-c", config, "--shop", "toko-b"]) == 0
    out = capsys.readouterr().out
    assert "dlv-toko-b" in out and "dlv-toko-a" not in out
    assert main(["rejected", "list", "-c", config, "--shop", "toko-a"]) == 0
    out = capsys.readouterr().out
    assert "toko-a" in out and "toko-b" not in out
    assert main(["deliveries", "-c", config, "--shop", "toko-z"]) == 1
    err = capsys.readouterr().err
    assert "--shop: no shop 'toko-z' (configured: toko-a, toko-b)" in err


def test_contacts_and_tracked_orders_need_their_shop(
    config: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "contacts.csv"
    csv.write_text("order_id,name\nOID-1,Budi\n")
    assert main(["contacts", "import", "-c", config, str(csv)]) == 1
    assert "--shop: name the shop: one of toko-a, toko-b" in capsys.readouterr().err
    assert main(["contacts", "import", "-c", config, str(csv), "--shop", "toko-b"]) == 0
    assert main(["track", "add", "-c", config, "OID-7"]) == 1
    assert "--shop" in capsys.readouterr().err
    assert main(["track", "add", "-c", config, "OID-7", "--shop", "toko-a"]) == 0
    assert main(["pull", "-c", config, "OID-7"]) == 1
    assert "--shop: name the shop" in capsys.readouterr().err

    async def read() -> tuple[object, object, object, object]:
        store = open_store(f"sqlite:///{tmp_path}/k.db")
        await store.open(now=MOMENT)
        try:
            return (
                await store.get_contact("OID-1", shop="toko-b"),
                await store.get_contact("OID-1", shop="toko-a"),
                await store.get_tracking("OID-7", shop="toko-a"),
                await store.get_tracking("OID-7", shop="toko-b"),
            )
        finally:
            await store.close()

    contact_b, contact_a, tracked_a, tracked_b = asyncio.run(read())
    assert getattr(contact_b, "name", None) == "Budi" and contact_a is None
    assert tracked_a is not None and tracked_b is None


def test_replay_keeps_to_the_shop(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", "-c", config, "--dead", "--shop", "toko-b"]) == 0
    assert "replayed 0 dead deliveries" in capsys.readouterr().out


def test_routes_test_reads_one_shops_events(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    since = "2024-01-01T00:00:00+00:00"
    assert main(["routes", "test", "-c", config, "--since", since, "--json"]) == 0
    assert msgspec.json.decode(capsys.readouterr().out)["events"] == 2
    args = ["routes", "test", "-c", config, "--since", since, "--json", "--shop", "toko-b"]
    assert main(args) == 0
    assert msgspec.json.decode(capsys.readouterr().out)["events"] == 1
