"""A store that keeps failing under the loops that poll it (retention, the pull tracker): one
log line per cause, none per turn, and one when it works again. The faults are real: the
SQLite database file deleted under the open store, then put back (a hard link kept aside)."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.config import PullConfig
from gateway.errors import StoreError
from gateway.events import EventKind
from gateway.metrics import StoreTrouble
from gateway.retention import Retention, RetentionPolicy
from gateway.sources.kiriminaja.pull import PullTracker
from gateway.sources.kiriminaja.tracking import NotFound, TrackingResult
from gateway.store import Store, open_store
from gateway.units import Duration, Window
from tests.waiting import eventually


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/k.db")
    await opened.open(now=datetime.now(UTC))
    os.link(tmp_path / "k.db", tmp_path / "kept.db")
    yield opened
    await opened.close()


class Fault:
    """The database file gone from its path, then back: the same file, so the store works."""

    def __init__(self, folder: Path) -> None:
        self.db = folder / "k.db"
        self.kept = folder / "kept.db"

    def start(self) -> None:
        self.db.unlink()

    def end(self) -> None:
        os.link(self.kept, self.db)


class Turns:
    """Counts the turns of a loop (whatever it calls once a turn) and returns when asked."""

    def __init__(self) -> None:
        self.count = 0
        self._turned = asyncio.Event()

    def turn(self) -> None:
        self.count += 1
        self._turned.set()

    async def more(self, n: int) -> None:
        target = self.count + n
        while self.count < target:
            self._turned.clear()
            await self._turned.wait()


def lines(caplog: pytest.LogCaptureFixture, name: str) -> tuple[list[str], list[str]]:
    """The failures (ERROR) and the recoveries logged by `name`."""
    records = [r for r in caplog.records if r.name == name]
    assert all(r.exc_info is None for r in records), "a StoreError needs no traceback"
    failures = [r.getMessage() for r in records if r.levelno >= logging.ERROR]
    back = [r.getMessage() for r in records if "works again" in r.getMessage()]
    return failures, back


async def test_retention_logs_a_failing_store_once_and_its_recovery(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    turns = Turns()

    async def sleep(seconds: float) -> None:
        turns.turn()
        await asyncio.sleep(0)

    day = Window(86400)
    policy = RetentionPolicy(
        pushes=day, events=day, delivered=day, dead=day, rejected=day, orders=day
    )
    retention = Retention(store=store, policy=policy, interval=60, sleep=sleep)
    fault = Fault(tmp_path)
    with caplog.at_level(logging.INFO, logger="kabarin.retention"):
        fault.start()
        await retention.start()
        await turns.more(5)
        fault.end()
        await turns.more(5)
        await retention.stop()
    failures, back = lines(caplog, "kabarin.retention")
    assert len(failures) == 1, failures
    assert failures[0].startswith(
        f"retention: could not prune: the SQLite database file {fault.db}"
    )
    assert failures[0].endswith("trying again every 60s (not logged again until the store works)")
    assert back == ["retention: the store works again"]


class NobodyKnows:
    """A tracking API that knows no order, counting the calls."""

    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        return NotFound(kind=kind, order_id=order_id, reason="not found")


class CountingClock:
    """The pull tracker's clock: each pass asks it the time, so it counts the passes."""

    def __init__(self, turns: Turns) -> None:
        self.turns = turns

    def now(self) -> datetime:
        self.turns.turn()
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def test_the_pull_tracker_logs_a_failing_store_once_and_its_recovery(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    turns = Turns()
    tracker = PullTracker(
        store=store,
        client=NobodyKnows(),
        config=PullConfig(enabled=True, interval=Duration(0.01)),
        timezone=ZoneInfo("Asia/Jakarta"),
        clock=CountingClock(turns),
    )
    fault = Fault(tmp_path)
    deleted = f"the SQLite database file {fault.db} was deleted"

    def said(start: str, part: str = "") -> list[str]:
        failures, back = lines(caplog, "kabarin.pull")
        return [f for f in failures + back if f.startswith(start) and part in f]

    with caplog.at_level(logging.INFO, logger="kabarin.pull"):
        await tracker.start()
        fault.start()
        # The passes and the stuck alerts keep their own schedules: each meets the fault,
        # then goes on failing without saying so again.
        await eventually(lambda: said("pull: a pass failed", deleted))
        await eventually(lambda: said("stuck alerts: could not look"))
        await turns.more(10)
        fault.end()
        await eventually(lambda: len(said("", "the store works again")) == 2)
        await turns.more(10)
        await tracker.stop()
    failures, back = lines(caplog, "kabarin.pull")
    # a pass reads and writes: each fails in its own words, each said once
    passes = [f for f in failures if f.startswith("pull: a pass failed: ")]
    alerts = [
        f for f in failures if f.startswith("stuck alerts: could not look for stuck orders: ")
    ]
    assert 1 <= len(passes) <= 2 and len(set(passes)) == len(passes), failures
    assert len(alerts) == 1 and len(passes) + len(alerts) == len(failures), failures
    assert any(deleted in f for f in passes) and deleted in alerts[0], failures
    assert sorted(back) == ["pull: the store works again", "stuck alerts: the store works again"]


def test_each_cause_is_logged_once_while_it_lasts_and_a_bug_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    trouble = StoreTrouble(logging.getLogger("kabarin.test"), "loop")
    with caplog.at_level(logging.DEBUG, logger="kabarin.test"):
        for _ in range(3):
            trouble.failed("could not read", StoreError("the disk is full"), "trying again")
        assert trouble.failing
        trouble.failed("could not read", StoreError("database is locked"), "trying again")
        for _ in range(2):
            trouble.failed("could not read", KeyError("x"), "trying again")
        # causes that alternate (a read and a write of one broken file) are not logged again
        trouble.failed("could not read", StoreError("the disk is full"), "trying again")
        trouble.failed("could not read", StoreError("database is locked"), "trying again")
        trouble.recovered()
        trouble.recovered()
        # a new failure after the recovery is news
        trouble.failed("could not read", StoreError("the disk is full"), "trying again")
        trouble.recovered()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    until = "(not logged again until the store works)"
    assert [r.getMessage() for r in errors] == [
        f"loop: could not read: the disk is full; trying again {until}",
        f"loop: could not read: database is locked; trying again {until}",
        f"loop: could not read: KeyError: 'x'; trying again {until}",
        f"loop: could not read: the disk is full; trying again {until}",
    ]
    assert [r.exc_info is not None for r in errors] == [False, False, True, False]
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING] == [
        "loop: the store works again"
    ] * 2
    assert not trouble.failing
