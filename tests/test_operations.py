"""The operator actions of `gateway.operations` themselves, below the admin API, the dashboard and
the command line that call them: what each changes in the store, which stage it wakes, and the
one rule for a sink that is not configured."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import operations
from gateway.config import parse_config
from gateway.contacts import InvalidContact
from gateway.delivery.model import DeliveryFilter, NewDelivery
from gateway.errors import NotReplayable, UnknownSink
from gateway.events import Event, Status
from gateway.intake import new_push_id
from gateway.runtime import Runtime, open_runtime
from gateway.store import NewPush, PushOutcome

from .conftest import ingest

GOOD = b'{"method": "shipped_packages", "data": [{"order_id": "OID-1"}]}'
BROKEN = b'{"method": "shipped_packages", "data": 5}'
"""A body the code cannot normalise: it fails again however often it is reprocessed."""


class Woken:
    """Counts the wake-ups an action gives this process's stages."""

    def __init__(self, rt: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dispatcher = 0
        self.intake = 0
        monkeypatch.setattr(rt, "wake_dispatcher", self._dispatcher)
        monkeypatch.setattr(rt, "wake_intake", self._intake)

    def _dispatcher(self) -> None:
        self.dispatcher += 1

    def _intake(self) -> None:
        self.intake += 1


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    config = parse_config(
        f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks:
  ops: {{type: console}}
  erp: {{type: console}}
routes: [{{name: all, sinks: [ops]}}]
"""
    )
    async with AsyncExitStack() as stack:
        yield await open_runtime(config, stack, dispatcher=False)


def shipped(order_id: str) -> Event:
    moment = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)
    return Event(
        id=f"evt-{order_id}",
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id=order_id,
        occurred_at=moment,
        received_at=moment,
        raw={"order_id": order_id},
    )


async def dead(rt: Runtime, *deliveries: tuple[str, str, str]) -> None:
    """Deliveries ``(order id, route, sink)`` stored and then ended dead, as a dispatcher ends
    those a sink refused for good."""
    events = [shipped(order_id) for order_id, _, _ in deliveries]
    await ingest(
        rt.store,
        events=events,
        deliveries=[
            NewDelivery(id=f"dlv-{o}", event_id=f"evt-{o}", route=route, sink=sink, ordering="all")
            for o, route, sink in deliveries
        ],
    )
    now = datetime.now(UTC)
    claimed = await rt.store.claim(worker="w", now=now, limit=100, lease_seconds=60)
    assert len(claimed.claims) == len(deliveries)
    for c in claimed.claims:
        await rt.store.finish(
            c.delivery.id, worker="w", attempt=None, state="dead", now=now, error="400"
        )


async def states(rt: Runtime) -> dict[str, str]:
    return {d.id: d.state for d in await rt.store.list_deliveries(DeliveryFilter(limit=100))}


async def test_replay_dead_by_sink_replays_those_and_wakes_the_dispatcher(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = Woken(rt, monkeypatch)
    await dead(rt, ("A", "all", "ops"), ("B", "all", "erp"))
    assert await operations.replay_dead(rt, sink="ops") == 1
    assert await states(rt) == {"dlv-A": "pending", "dlv-B": "dead"}
    assert woken.dispatcher == 1


async def test_replay_dead_by_route_replays_that_route_only(rt: Runtime) -> None:
    await dead(rt, ("A", "all", "ops"), ("B", "other", "ops"))
    assert await operations.replay_dead(rt, route="other") == 1
    assert await states(rt) == {"dlv-A": "dead", "dlv-B": "pending"}


async def test_a_sink_filter_naming_no_configured_sink_is_unknown_sink(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = Woken(rt, monkeypatch)
    with pytest.raises(UnknownSink) as raised:
        await operations.replay_dead(rt, sink="opps")
    assert raised.value.sink == "opps"
    assert raised.value.configured == ["erp", "ops"]
    assert str(raised.value) == "no sink named 'opps' is configured (configured sinks: erp, ops)"
    assert woken.dispatcher == 0
    # a configured sink with nothing dead is "nothing to replay", not a typo
    assert await operations.replay_dead(rt, sink="erp") == 0


async def test_a_sink_taken_out_of_the_file_still_has_its_dead_replayed(rt: Runtime) -> None:
    await dead(rt, ("A", "all", "gone"))
    assert await operations.replay_dead(rt, sink="gone") == 1
    operations.sink_filter_matched(rt.config, "gone", 1)  # matched something: never refused
    with pytest.raises(UnknownSink):
        operations.sink_filter_matched(rt.config, "gone", 0)
    operations.sink_filter_matched(rt.config, None, 0)


async def test_replay_one_says_why_a_delivery_cannot_be_replayed(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = Woken(rt, monkeypatch)
    await dead(rt, ("A", "all", "ops"))
    await operations.replay_delivery(rt, "dlv-A")
    assert await states(rt) == {"dlv-A": "pending"}
    assert woken.dispatcher == 1

    with pytest.raises(NotReplayable) as raised:
        await operations.replay_delivery(rt, "dlv-A")
    assert raised.value.state == "pending"
    assert str(raised.value) == (
        "delivery dlv-A is pending: only dead, skipped or superseded deliveries are replayed"
    )
    with pytest.raises(NotReplayable) as raised:
        await operations.replay_delivery(rt, "dlv-nope")
    assert raised.value.state is None
    assert str(raised.value) == "delivery dlv-nope not found"
    assert woken.dispatcher == 1


async def test_enable_sink_switches_a_configured_sink_back_on(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = Woken(rt, monkeypatch)
    await rt.store.disable_sink("erp", reason="410 Gone", now=datetime.now(UTC))
    before = {s.name: s.disabled for s in await operations.sink_statuses(rt)}
    assert before == {"ops": None, "erp": "410 Gone"}

    status = await operations.enable_sink(rt, "erp")
    assert (status.name, status.type, status.disabled) == ("erp", "console", None)
    assert await rt.store.disabled_sinks() == {}
    assert woken.dispatcher == 1

    with pytest.raises(UnknownSink):
        await operations.enable_sink(rt, "nosuch")
    assert woken.dispatcher == 1


async def failed(rt: Runtime, *bodies: bytes) -> list[str]:
    """Pushes kept as failed, as the intake keeps those its code raised on."""
    ids = []
    for n, body in enumerate(bodies):
        push_id = f"{new_push_id(datetime.now(UTC))}{n}"
        await rt.store.append_push(
            NewPush(id=push_id, source="push", received_at=datetime.now(UTC), body=body)
        )
        ids.append(push_id)
    outcomes = [PushOutcome(push_id=i, error="KeyError: a bug") for i in ids]
    await rt.store.record_intake(outcomes, now=datetime.now(UTC))
    return ids


async def test_requeue_failed_counts_them_into_the_backlog_and_wakes_the_intake(
    rt: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    woken = Woken(rt, monkeypatch)
    _, second = await failed(rt, GOOD, BROKEN)
    rt.backlog.pending = 0
    assert await operations.requeue_failed(rt, ids=[second]) == 1
    assert (rt.backlog.pending, woken.intake) == (1, 1)
    assert await operations.requeue_failed(rt) == 1  # the other one: the rest already pending
    assert (rt.backlog.pending, woken.intake) == (2, 2)
    assert await rt.store.count_pending_pushes() == 2


async def test_reprocess_failed_reads_each_verdict_back(rt: Runtime) -> None:
    assert (await operations.reprocess_failed(rt, wait=0)).ids == []
    good, broken = await failed(rt, GOOD, BROKEN)
    told: list[int] = []
    done = await operations.reprocess_failed(rt, wait=0, on_held=told.append)
    assert done.ids == [good, broken]
    assert done.processed == 1
    assert list(done.failed) == [broken]
    assert (done.failed[broken] or "").startswith("PushError: ")
    assert done.held == [] and told == []
    assert (await rt.store.get_push(good)).state == "processed"  # type: ignore[union-attr]


async def test_contacts_put_delete_and_import(rt: Runtime) -> None:
    contact = await operations.put_contact(rt, "OID-7", name="Siti", phone="0812-2991-7190")
    assert (contact.order_id, contact.name, contact.phone) == ("OID-7", "Siti", "+6281229917190")
    assert await rt.store.get_contact("OID-7") == contact
    with pytest.raises(InvalidContact, match="phone: "):
        await operations.put_contact(rt, "OID-7", phone="not a number")

    assert await operations.delete_contact(rt, "OID-7") is True
    assert await operations.delete_contact(rt, "OID-7") is False
    assert await rt.store.get_contact("OID-7") is None

    done = await operations.import_contacts(
        rt, "order_id,name,phone\nOID-8,Budi,081229917191\nOID-9,,nope\n"
    )
    assert done.imported == 1
    assert len(done.problems) == 1 and done.problems[0].startswith("line 3: phone: ")
    assert (await rt.store.get_contact("OID-8")).name == "Budi"  # type: ignore[union-attr]
    wrong = await operations.import_contacts(rt, "phone\n0812\n")
    assert wrong.imported == 0 and wrong.problems[0].startswith("line 1: the header")
