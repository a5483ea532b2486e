"""`kabarin store migrate`: a populated SQLite file to PostgreSQL and back, row for row."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.delivery.model import Attempt, GroupRef, NewDelivery
from gateway.digests.message import DigestParts, digest_event
from gateway.events import Contact, Event, Status
from gateway.routing import group_id
from gateway.store import NewPush, PushOutcome, open_store
from gateway.store.digests import DigestRun
from gateway.store.moving import TABLES, Portable

T0 = datetime(2026, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
ORDERS = 30


async def populate(url: str) -> None:
    """Pushes (taken in and pending), events, deliveries in every state with attempts,
    contacts pushed and registered, and a sink switched off."""
    store = open_store(url)
    await store.open(now=T0)
    outcomes = []
    for n in range(ORDERS):
        order = f"OID-{n:03d}"
        body = json.dumps({"method": "shipped_packages", "data": [{"order_id": order}]}).encode()
        push_id = f"psh_{n:04d}"
        await store.append_push(
            NewPush(
                id=push_id,
                source="push",
                received_at=T0 + timedelta(seconds=n),
                body=body,
                content_type="application/json",
                method="shipped_packages",
                items=1,
            )
        )
        if n % 10 == 9:
            continue  # left pending for the intake
        event = Event(
            id=f"evt-{order}",
            source="push",
            method="shipped_packages",
            kind="express",
            status=Status.SHIPPED,
            order_id=order,
            occurred_at=T0 + timedelta(minutes=n),
            received_at=T0 + timedelta(seconds=n),
            details={"service": "jne", "note": "caf\u00e9 \u2713"},
            raw={"order_id": order, "nested": {"b": 2, "a": 1}},
        )
        outcomes.append(
            PushOutcome(
                push_id=push_id,
                events=[event],
                deliveries=[
                    NewDelivery(
                        id=f"dlv-{order}-{s}", event_id=event.id, route="r", sink=s, ordering="all"
                    )
                    for s in ("erp", "slack")
                ]
                + [
                    NewDelivery(
                        id=f"dlv-{order}-ops",
                        event_id=event.id,
                        route="grouped",
                        sink="ops",
                        ordering="all",
                        group=GroupRef(
                            id=group_id("grouped", "ops", {"n": str(n % 2)}),
                            key={"n": str(n % 2)},
                            wait=30,
                            interval=300,
                        ),
                    )
                ],
                contacts=[Contact(order_id=order, name=f"Budi {n}", phone="+6281200000000")],
            )
        )
    await store.record_intake(outcomes, now=T0 + timedelta(minutes=1))
    claimed = await store.claim(worker="w", now=T0 + timedelta(hours=2), limit=40, lease_seconds=60)
    claims = claimed.claims
    for i, claim in enumerate(claims):
        at = T0 + timedelta(hours=2, seconds=i)
        attempt = Attempt(
            delivery_id=claim.delivery.id,
            started_at=at,
            duration_ms=12.5,
            outcome="delivered" if i % 3 else "retry",
            status_code=200 if i % 3 else 503,
            error=None if i % 3 else "503 Service Unavailable",
        )
        await store.finish(
            claim.delivery.id,
            worker="w",
            attempt=attempt,
            state="delivered" if i % 3 else "pending",
            now=at,
            next_attempt_at=None if i % 3 else at + timedelta(minutes=5),
        )
    await store.register_contacts(
        [Contact(order_id="OID-REG", email="ani@example.com", language="id")], now=T0
    )
    await store.disable_sink("slack", reason="410 Gone", now=T0)
    # a digest sent, with its stand-in event and its delivery
    parts = DigestParts(subject="s", text="t", html="<p>h</p>", blocks=[{"a": 1}], payload={})
    stand_in = digest_event(name="pagi", period=T0, now=T0, parts=parts)
    await store.record_digest(
        "pagi",
        period=T0,
        run=DigestRun(digest="pagi", period=T0, event=stand_in),
        deliveries=[
            NewDelivery(
                id="dlv-pagi", event_id=stand_in.id, route="digest:pagi", sink="erp", ordering="all"
            )
        ],
        now=T0,
    )
    await store.close()


async def dump(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every copied table, in the neutral shape, sorted."""
    store = open_store(url)
    await store.open(now=T0)
    assert isinstance(store, Portable)
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table in TABLES:
        rows, _ = await store.export_rows(table, after=None, limit=100_000)
        found[table.name] = sorted(rows, key=repr)
    await store.close()
    return found


def migrate(source: str, target: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["store", "migrate", "--from", source, "--to", target]) == 0
    return capsys.readouterr().out


def test_sqlite_to_postgresql_and_back_keeps_every_row(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    first, back = f"sqlite:///{tmp_path}/first.db", f"sqlite:///{tmp_path}/back.db"
    asyncio.run(populate(first))
    original = asyncio.run(dump(first))
    counts = {name: len(rows) for name, rows in original.items()}
    assert counts == {
        "pushes": ORDERS,
        "order_facts": 27,
        "events": 27,
        "digest_runs": 1,
        "deliveries": 57,  # 27 events each to erp and slack, 2 grouped messages, 1 digest
        "attempts": 40,
        "groups": 2,
        "group_events": 27,
        "contacts": 28,
        "sink_state": 1,
        "digests": 1,
    }

    out = migrate(first, pg_url, capsys)
    for table, n in counts.items():
        assert f"{table:<11} {n:>9} copied  (0 already there)" in out, out
    assert asyncio.run(dump(pg_url)) == original

    # Re-run: nothing new is copied, nothing is doubled.
    out = migrate(first, pg_url, capsys)
    assert f"{'attempts':<11} {0:>9} copied  (40 already there)" in out, out
    assert f"{'order_facts':<11} {0:>9} copied  (27 already there)" in out, out
    assert asyncio.run(dump(pg_url)) == original

    migrate(pg_url, back, capsys)
    assert asyncio.run(dump(back)) == original


def test_the_moved_store_works_where_it_arrives(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/k.db"
    asyncio.run(populate(source))
    migrate(source, pg_url, capsys)

    async def check() -> None:
        store = open_store(pg_url)
        await store.open(now=T0)
        # Pending pushes wait for the intake there; the switched-off sink stays off.
        assert await store.count_pending_pushes() == 3
        assert await store.disabled_sinks() == {"slack": "410 Gone"}
        contact = await store.get_contact("OID-REG")
        assert contact is not None and contact.email == "ani@example.com"
        event = await store.get_event("evt-OID-001")
        assert event is not None and event.details["note"] == "caf\u00e9 \u2713"
        # The pull tracker follows the orders it arrived with, as it does those stored there.
        counts = await store.tracking_counts()
        assert counts.open == 28  # 27 orders with events, and one registered contact
        tracked = await store.get_tracking("OID-001")
        assert tracked is not None and tracked.last_status is Status.SHIPPED
        await store.close()

    asyncio.run(check())


def test_the_same_store_twice_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path}/k.db"
    assert main(["store", "migrate", "--from", url, "--to", url]) == 1
    assert "same store" in capsys.readouterr().err


def test_a_source_that_does_not_exist_is_an_error_and_nothing_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path}/nowhere/k.db"
    target = f"sqlite:///{tmp_path}/copy.db"
    assert main(["store", "migrate", "--from", source, "--to", target]) == 1
    assert capsys.readouterr().err == (
        f"kabarin: --from: no store at {source}: {tmp_path}/nowhere/k.db does not exist\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option", ["--from", "--to"])
def test_an_unsupported_url_is_an_error_of_its_option(
    tmp_path: Path, option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sqlite = f"sqlite:///{tmp_path}/k.db"
    asyncio.run(populate(sqlite))
    urls = {"--from": sqlite, "--to": f"sqlite:///{tmp_path}/copy.db", option: "mysql://x"}
    assert main(["store", "migrate", "--from", urls["--from"], "--to", urls["--to"]]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"kabarin: {option}: unsupported store 'mysql' (use sqlite:///"), err
    assert "config" not in err
    assert not (tmp_path / "copy.db").exists()
