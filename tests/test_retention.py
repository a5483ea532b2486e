"""Retention: the policy (windows → cut-offs), the background loop on an injected clock, the
`retention:` section, and the SQLite store's small commits. What every backend prunes is in the
contract suite (tests/test_store_contract.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest

from gateway.config import parse_config
from gateway.errors import ConfigError
from gateway.retention import Retention, RetentionPolicy
from gateway.store import Cutoffs, Pruned, RejectedRequest
from gateway.store.sqlite import SQLiteStore
from gateway.units import Window

from .conftest import ingest
from .test_store_contract import NOW, T0, WINDOWS, event, retention_scene

DAY = 86400.0

DEFAULTS = RetentionPolicy(
    pushes=Window(90 * DAY),
    events=Window(90 * DAY),
    delivered=Window(30 * DAY),
    dead=Window(90 * DAY),
    rejected=Window(30 * DAY),
    orders=Window(365 * DAY),
)


def test_the_policy_turns_windows_into_cutoffs_and_off_into_none() -> None:
    assert DEFAULTS.cutoffs(NOW) == msgspec.structs.replace(
        WINDOWS, orders=NOW - timedelta(days=365)
    )
    policy = RetentionPolicy(
        pushes=Window(0),
        events=Window(DAY),
        delivered=Window(0),
        dead=Window(0),
        rejected=Window(0),
        orders=Window(0),
    )
    assert policy.enabled
    assert policy.cutoffs(NOW) == Cutoffs(events=NOW - timedelta(days=1))
    nothing = RetentionPolicy(*(Window(0) for _ in range(6)))
    assert not nothing.enabled
    assert nothing.cutoffs(NOW) == Cutoffs()


def test_the_retention_section_defaults_and_off() -> None:
    base = "receiver: {token: t}\n"
    config = parse_config(base)
    assert RetentionPolicy.from_config(config.retention) == DEFAULTS
    assert (float(config.retention.interval), config.retention.batch) == (3600.0, 500)
    config = parse_config(
        base + "retention: {pushes: off, events: 0, delivered: 7d, dead: never,"
        " rejected: 12h, orders: off, interval: 10m, batch: 50}\n"
    )
    r = config.retention
    assert [r.pushes.off, r.events.off, r.dead.off, r.orders.off] == [True, True, True, True]
    assert [float(r.delivered), float(r.rejected), float(r.interval)] == [
        7 * DAY,
        12 * 3600.0,
        600.0,
    ]
    assert r.batch == 50


def test_bad_retention_values_name_their_key() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("receiver: {token: t}\nretention:\n  events: soon\n  batch: 0\n")
    text = "\n".join(caught.value.problems)
    assert "retention.events (line 3)" in text
    assert "retention.batch (line 4): must be at least 1" in text


async def test_small_transactions_one_commit_per_batch(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        for i in range(95):
            await store.reject(RejectedRequest(received_at=T0, reason="bad", body=b"%d" % i))
        retention = Retention(store=store, policy=DEFAULTS, batch=10, clock=lambda: NOW)
        before = store.commits
        assert await retention.run_once() == Pruned(rejected=95)
        # 9 full batches, one of 5; then one empty look at each of the other three steps.
        assert store.commits - before >= 10
        assert await store.count_rejected() == 0
    finally:
        await store.close()


async def test_no_attempt_is_left_without_its_delivery(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        await retention_scene(store)
        await Retention(store=store, policy=DEFAULTS, batch=2, clock=lambda: NOW).run_once()
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "k.db") as conn:
        orphans = conn.execute(
            "SELECT count(*) FROM attempts WHERE delivery_id NOT IN (SELECT id FROM deliveries)"
        ).fetchone()
        kept = conn.execute("SELECT count(*) FROM attempts").fetchone()
    assert (orphans, kept) == ((0,), (1,))  # the young dead delivery's attempt stays


async def test_the_loop_prunes_every_interval_on_its_clock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    clock = [T0]
    slept: list[float] = []
    third = asyncio.Event()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += timedelta(seconds=seconds)
        if len(slept) == 3:
            third.set()
            await asyncio.Event().wait()  # stopped here

    try:
        await ingest(store, events=[event("L1")], now=T0)
        policy = RetentionPolicy(
            pushes=Window(0),
            events=Window(90 * DAY),
            delivered=Window(0),
            dead=Window(0),
            rejected=Window(0),
            orders=Window(0),
        )
        retention = Retention(
            store=store, policy=policy, interval=50 * DAY, clock=lambda: clock[0], sleep=sleep
        )
        await retention.start()
        await asyncio.wait_for(third.wait(), 10)
        await retention.stop()
        # Runs at T0, T0+50d (the event is 50 days old: kept), T0+100d (90 days passed: gone).
        assert slept == [50 * DAY] * 3
        assert await store.get_event("evt-L1-shipped-0") is None
    finally:
        await store.close()


async def test_the_loop_keeps_what_is_inside_its_windows(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    ran = asyncio.Event()

    async def sleep(seconds: float) -> None:
        ran.set()
        await asyncio.Event().wait()

    try:
        await ingest(store, events=[event("K1")], now=T0)
        retention = Retention(
            store=store, policy=DEFAULTS, clock=lambda: T0 + timedelta(days=89), sleep=sleep
        )
        await retention.start()
        await asyncio.wait_for(ran.wait(), 10)  # one pass done
        await retention.stop()
        assert await store.get_event("evt-K1-shipped-0") is not None
    finally:
        await store.close()


async def test_nothing_starts_when_every_window_is_off(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    retention = Retention(store=store, policy=RetentionPolicy(*(Window(0) for _ in range(6))))
    await retention.start()  # the store is not even open: nothing may touch it
    assert retention._task is None
    await retention.stop()
