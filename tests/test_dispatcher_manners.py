"""The dispatcher's manners for people-facing sinks, on the real SQLite store and a fake clock:
quiet hours (kept across a restart), staleness, contact lookups and fallbacks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.config import ContactLookupConfig
from gateway.contacts import ContactLookup, ContactResolver, LookupFailed
from gateway.delivery.model import Delivery, DeliveryFilter, NewDelivery
from gateway.events import Contact
from gateway.store import open_store
from gateway.store.roles import Store
from sinks.base import Permanent, QuietHoursConfig
from tests.test_dispatcher import Clock, FakeSink, add, config, delivery, dispatcher

WIB = ZoneInfo("Asia/Jakarta")


async def opened(path: Path) -> Store:
    store = open_store(f"sqlite:///{path}")
    await store.open(now=datetime.now(UTC))
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    kept = await opened(tmp_path / "k.db")
    try:
        yield kept
    finally:
        await kept.close()


async def test_quiet_hours_wait_durably_until_the_window_ends(tmp_path: Path) -> None:
    night = QuietHoursConfig(start="21:00", end="07:00")
    clock = Clock()  # deliveries are due from the real time they are stored: tomorrow night
    tomorrow = datetime.now(WIB).date() + timedelta(days=1)
    clock.now = datetime.combine(tomorrow, datetime.min.time(), WIB) + timedelta(hours=23.5)
    store = await opened(tmp_path / "k.db")
    sink = FakeSink(config=config(quiet_hours=night))
    did = await add(store)
    assert await dispatcher(store, sink, clock=clock).run_once() == 1
    assert sink.messages == []
    waiting, attempts = await delivery(store, did)
    end = datetime.combine(tomorrow + timedelta(days=1), datetime.min.time(), WIB) + timedelta(
        hours=7
    )
    assert (waiting.state, waiting.attempts, waiting.next_attempt_at) == ("pending", 0, end)
    assert waiting.waiting == (
        f"quiet hours (21:00-07:00 Asia/Jakarta): waits until {end:%Y-%m-%d} 07:00 WIB"
    )
    assert attempts == []
    await store.close()

    # A restart: a new store on the same file, a new dispatcher.
    store = await opened(tmp_path / "k.db")
    try:
        clock.now = (end - timedelta(minutes=1)).astimezone(UTC)
        later = dispatcher(store, sink, clock=clock)
        assert await later.run_once() == 0
        clock.now = end.astimezone(UTC)
        assert await later.run_once() == 1
        assert len(sink.messages) == 1
        sent, _ = await delivery(store, did)
        assert (sent.state, sent.attempts, sent.waiting) == ("delivered", 1, None)
    finally:
        await store.close()


def spare_of(first: Delivery) -> NewDelivery | None:
    return NewDelivery(
        id=f"{first.id}_sms",
        event_id=first.event_id,
        route=first.route,
        sink="sms",
        ordering="latest",
    )


async def test_a_stale_event_is_skipped_without_a_fallback(store: Store) -> None:
    sink = FakeSink(config=config(max_age=12 * 3600.0))  # the stored event is from 2024
    did = await add(store)
    worker = dispatcher(store, sink)
    worker.fallbacks = spare_of
    assert await worker.run_once() == 1
    assert sink.messages == []
    skipped, attempts = await delivery(store, did)
    assert skipped.state == "skipped"
    assert skipped.last_error is not None
    assert skipped.last_error.startswith("stale: the event is ")
    assert skipped.last_error.endswith("d old, more than max_age 12h")
    assert [(a.outcome, a.error) for a in attempts] == [("skipped", skipped.last_error)]
    assert len(await store.list_deliveries(DeliveryFilter())) == 1

    patient = FakeSink("patient", config=config(max_age=10_000 * 86400.0))
    fresh = await add(store, "OID-2", sink="patient")
    assert await dispatcher(store, patient).run_once() == 1
    assert (await delivery(store, fresh))[0].state == "delivered"


async def test_a_dead_delivery_issues_its_fallback_once(store: Store) -> None:
    wa = FakeSink("fake", default=Permanent(reason="131026: not a WhatsApp user"))
    sms = FakeSink("sms")
    did = await add(store)
    worker = dispatcher(store, wa, sms)
    worker.fallbacks = spare_of
    assert await worker.run_once() == 1
    assert (await delivery(store, did))[0].state == "dead"
    spare, _ = await delivery(store, f"{did}_sms")
    assert (spare.state, spare.fallback_of, spare.sink) == ("pending", did, "sms")
    assert await worker.run_once() == 1
    assert (await delivery(store, f"{did}_sms"))[0].state == "delivered"
    assert sms.messages[0].delivery_id == f"{did}_sms"


class FlakyLookup(ContactLookup):
    def __init__(self, answers: list[Contact | LookupFailed | None]) -> None:
        config = ContactLookupConfig(url="https://erp.example/{order_id}")
        super().__init__(config, httpx.AsyncClient())
        self.answers = answers

    async def get(self, order_id: str, *, shop: str = "default") -> Contact | None:
        answer = self.answers.pop(0)
        if isinstance(answer, LookupFailed):
            raise answer
        return answer


async def test_a_failed_lookup_retries_and_an_answer_fills_the_contact(store: Store) -> None:
    clock = Clock()
    sink = FakeSink()
    did = await add(store)
    worker = dispatcher(store, sink, clock=clock)
    phone = Contact(order_id="OID-1", name="Siti", phone="+6281234567890")
    worker.contacts = ContactResolver(
        FlakyLookup([LookupFailed("contact lookup failed: HTTP 503"), phone])
    )
    assert await worker.run_once() == 1
    assert sink.messages == []
    waiting, attempts = await delivery(store, did)
    assert (waiting.state, waiting.attempts) == ("pending", 1)
    assert [(a.outcome, a.error) for a in attempts] == [
        ("retry", "contact lookup failed: HTTP 503")
    ]
    assert worker.circuit_state("fake") == "closed"
    clock.now = waiting.next_attempt_at
    assert await worker.run_once() == 1
    assert sink.messages[0].contact == phone
    assert (await delivery(store, did))[0].state == "delivered"
