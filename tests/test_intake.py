"""The intake against a real store: batches, failures kept apart, reprocessing, metrics."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway import metrics
from gateway.config import parse_config
from gateway.delivery.model import DeliveryFilter
from gateway.errors import StoreError, StoreRefused
from gateway.intake import DECODERS, Backlog, Intake, IntakeSummary, new_push_id
from gateway.routing import Router
from gateway.sources.base import Normalised
from gateway.store import EventQuery, LoggedPush, NewPush, Store
from gateway.store.roles import PushOutcome
from tests.waiting import eventually

T0 = datetime(2024, 5, 5, 3, 0, tzinfo=UTC)
JAKARTA = ZoneInfo("Asia/Jakarta")
CONFIG = parse_config(
    """
receiver: {token: t}
sinks: {console: {type: console}}
routes: [{name: all, sinks: [console]}]
"""
)


def body(order_id: str) -> bytes:
    item = {"order_id": order_id, "shipped_at": "2024-05-05 10:00:00"}
    return json.dumps({"method": "shipped_packages", "data": [item]}).encode()


async def append(store: Store, order_id: str, at: datetime = T0) -> str:
    push_id = new_push_id(at)
    await store.append_push(
        NewPush(
            id=push_id,
            source="push",
            received_at=at,
            body=body(order_id),
            method="shipped_packages",
            items=1,
        )
    )
    return push_id


def broken_for(order_id: str) -> dict[str, object]:
    def decode(push: LoggedPush, tz: tzinfo) -> Normalised:
        if order_id.encode() in push.body:
            raise KeyError("a bug in normalising")
        return DECODERS["push"](push, tz)

    return {"push": decode}


async def test_a_push_that_raises_is_failed_and_the_rest_of_its_batch_is_stored(
    store: Store,
) -> None:
    ids = [await append(store, f"O-{i}") for i in range(5)]
    intake = Intake(
        store=store,
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        decoders=broken_for("O-2"),  # type: ignore[arg-type]
    )
    failed_before = (
        metrics.REGISTRY.get_sample_value("kabarin_intake_pushes_total", {"state": "failed"}) or 0.0
    )
    assert await intake.run_once(now=T0 + timedelta(seconds=1)) == 5
    states = {i: (await store.get_push(i)).state for i in ids}  # type: ignore[union-attr]
    assert states == {i: ("failed" if n == 2 else "processed") for n, i in enumerate(ids)}
    failed = await store.get_push(ids[2])
    assert failed is not None and failed.error == "KeyError: 'a bug in normalising'"
    page = await store.list_events(EventQuery())
    assert sorted(s.event.order_id for s in page.items) == ["O-0", "O-1", "O-3", "O-4"]
    assert (
        metrics.REGISTRY.get_sample_value("kabarin_intake_pushes_total", {"state": "failed"})
        == failed_before + 1
    )
    assert len(await store.list_deliveries(DeliveryFilter(limit=500))) == 4

    # the fault removed: reprocessing the failed push makes its events, nothing twice
    fixed = Intake(store=store, router=Router.from_config(CONFIG), timezone=JAKARTA)
    assert await store.requeue_pushes(state="failed") == 1
    assert await fixed.drain() == 1
    again = await store.get_push(ids[2])
    assert again is not None and (again.state, again.accepted, again.error) == (
        "processed",
        1,
        None,
    )
    page = await store.list_events(EventQuery())
    assert sorted(s.event.order_id for s in page.items) == ["O-0", "O-1", "O-2", "O-3", "O-4"]
    assert len(await store.list_deliveries(DeliveryFilter(limit=500))) == 5


async def test_batches_follow_the_log_and_the_backlog_follows_the_store(store: Store) -> None:
    for i in range(7):
        await append(store, f"B-{i}", T0 + timedelta(seconds=i))
    backlog = Backlog(pending=7)
    woken: list[int] = []
    intake = Intake(
        store=store,
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        batch=3,
        backlog=backlog,
        on_stored=lambda: woken.append(1),
    )
    assert await intake.run_once() == 3
    assert backlog.pending == 4
    assert await intake.drain() == 4
    assert backlog.pending == 0
    assert await intake.run_once() == 0
    assert len(woken) == 3  # the dispatcher is woken after each batch that made deliveries
    assert metrics.REGISTRY.get_sample_value("kabarin_intake_backlog") == 0


async def test_a_burst_is_summed_up_in_a_line_every_10_seconds(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """60 pushes over 12 s of a fake clock: two INFO lines whose counts add up to the burst (the
    second said when the intake stops), each push at DEBUG, each failure at ERROR."""
    for i in range(60):
        await append(store, f"O-{i % 45}")  # the last 15 repeat the first 15
    clock = [100.0]
    intake = Intake(
        store=store,
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        batch=5,
        decoders=broken_for("O-7"),  # type: ignore[arg-type]
        summary=IntakeSummary(clock=lambda: clock[0]),
    )
    caplog.set_level(logging.DEBUG, logger="kabarin.intake")
    for _ in range(12):
        clock[0] += 1
        assert await intake.run_once(now=T0 + timedelta(seconds=1)) == 5
    await intake.stop()

    def said(level: int, start: str) -> list[str]:
        lines = [r.getMessage() for r in caplog.records if r.name == "kabarin.intake"]
        levels = [r.levelno for r in caplog.records if r.name == "kabarin.intake"]
        return [m for m, n in zip(lines, levels, strict=True) if n == level and m.startswith(start)]

    assert said(logging.INFO, "") == [
        "intake: 50 pushes in the last 10 s (1 failed): 44 new events, 5 duplicates;"
        " lag up to 1.0 s",
        "intake: 10 pushes in the last 2 s (1 failed): 0 new events, 9 duplicates; lag up to 1.0 s",
    ]
    assert len(said(logging.DEBUG, "push psh_")) == 58
    assert len(said(logging.ERROR, "intake: push psh_")) == 2


async def test_backlog_over_rereads_the_store_near_the_limit(store: Store) -> None:
    await append(store, "X")
    backlog = Backlog(pending=10)
    assert await backlog.over(5, store) is False  # re-read: only 1 pending
    assert backlog.pending == 1
    assert await Backlog(pending=0).over(5, store) is False


async def test_while_pushes_are_being_received_the_intake_takes_small_batches(
    store: Store,
) -> None:
    for i in range(8):
        await append(store, f"S-{i}", T0 + timedelta(seconds=i))
    backlog = Backlog(pending=8, requests=1)
    intake = Intake(
        store=store,
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        batch=5,
        busy_batch=2,
        backlog=backlog,
    )
    assert await intake.run_once() == 2  # an append must not wait behind a long intake job
    backlog.requests = 0
    assert await intake.run_once() == 5
    assert await intake.run_once() == 1


class HeldStore:
    """The store, with every `record_intake` held until the test lets it through."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.release = asyncio.Event()
        self.recorded: list[str] = []

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def record_intake(self, outcomes: list[PushOutcome], now: datetime) -> object:
        await self.release.wait()
        self.recorded.extend(o.push_id for o in outcomes)
        return await self._store.record_intake(outcomes, now=now)


async def test_the_next_batch_is_normalised_while_the_previous_one_is_stored(
    store: Store,
) -> None:
    ids = [await append(store, f"P-{i}", T0 + timedelta(seconds=i)) for i in range(4)]
    held = HeldStore(store)
    normalised: list[str] = []
    second_batch = asyncio.Event()

    def decode(push: LoggedPush, tz: tzinfo) -> Normalised:
        normalised.append(push.id)
        if push.id == ids[2]:
            second_batch.set()
        return DECODERS["push"](push, tz)

    intake = Intake(
        store=held,  # type: ignore[arg-type]
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        batch=2,
        decoders={"push": decode},
    )
    await intake.start()
    try:
        # The first batch's commit is held: the second batch is read and normalised anyway.
        await asyncio.wait_for(second_batch.wait(), 10)
        assert held.recorded == []
        held.release.set()
        await eventually(lambda: len(held.recorded) == 4)
    finally:
        held.release.set()
        await intake.stop()
    assert held.recorded == ids  # each push stored once, in log order
    assert sorted(normalised) == sorted(ids)
    assert [(await store.get_push(i)).state for i in ids] == ["processed"] * 4  # type: ignore[union-attr]


def unstorable(order_id: str) -> dict[str, object]:
    """Decoders that give the push carrying `order_id` rows the store refuses: an order id
    with a NUL character (PostgreSQL's text cannot hold one) and a detail no JSON encoder can
    write (neither backend can store it)."""

    def decode(push: LoggedPush, tz: tzinfo) -> Normalised:
        result = DECODERS["push"](push, tz)
        if order_id.encode() not in push.body:
            return result
        (event,) = result.events
        event = msgspec.structs.replace(
            event, order_id=f"{order_id}\x00", details={**event.details, "x": object()}
        )
        return Normalised(events=[event], contacts=result.contacts)

    return {"push": decode}


async def test_an_entry_whose_rows_the_store_refuses_is_failed_and_the_rest_are_stored(
    store: Store,
) -> None:
    ids = [await append(store, f"R-{i}", T0 + timedelta(seconds=i)) for i in range(4)]
    intake = Intake(
        store=store,
        router=Router.from_config(CONFIG),
        timezone=JAKARTA,
        decoders=unstorable("R-1"),  # type: ignore[arg-type]
    )
    assert await intake.drain() == 4
    states = {i: (await store.get_push(i)).state for i in ids}  # type: ignore[union-attr]
    assert states == {i: ("failed" if n == 1 else "processed") for n, i in enumerate(ids)}
    failed = await store.get_push(ids[1])
    assert failed is not None and failed.error is not None
    assert failed.error.startswith("the store refused its events: ")
    page = await store.list_events(EventQuery())
    assert sorted(s.event.order_id for s in page.items) == ["R-0", "R-2", "R-3"]
    assert len(await store.list_deliveries(DeliveryFilter(limit=500))) == 3


class FailingStore:
    """The store while it is failing: each commit of the intake raises the next of `errors`
    (the last one for ever)."""

    def __init__(self, store: Store, *errors: StoreError) -> None:
        self._store = store
        self.errors = list(errors)
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def record_intake(self, outcomes: list[PushOutcome], now: datetime) -> object:
        self.calls += 1
        raise self.errors.pop(0) if len(self.errors) > 1 else self.errors[0]


async def test_while_the_store_fails_nothing_is_kept_as_failed(store: Store) -> None:
    ids = [await append(store, f"F-{i}", T0 + timedelta(seconds=i)) for i in range(3)]
    # the batch refused, then the connection dropped under each entry tried alone
    for failing in (
        FailingStore(store, StoreError("disk I/O error")),
        FailingStore(
            store, StoreRefused("DataError: bad value"), StoreError("OperationalError: dropped")
        ),
    ):
        intake = Intake(
            store=failing,  # type: ignore[arg-type]
            router=Router.from_config(CONFIG),
            timezone=JAKARTA,
        )
        with pytest.raises(StoreError) as info:
            await intake.run_once()
        assert not isinstance(info.value, StoreRefused)
        # a failing store is never taken for a refusal: nothing is kept as failed
        assert failing.calls <= 2
        states = [(await store.get_push(i)).state for i in ids]  # type: ignore[union-attr]
        assert states == ["pending"] * 3
    # the store back, everything is stored
    intake = Intake(store=store, router=Router.from_config(CONFIG), timezone=JAKARTA)
    assert await intake.drain() == 3
