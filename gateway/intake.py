"""The intake: pending entries of the push log → events, deliveries and contacts.

Every source appends what it learns to the push log (`IngestStore.append_push`): the receiver
the raw body a push source POSTed, the pull tracker what the tracking API answered; each entry
records which source (`gateway.sources`) decoded it. The intake is the one way events enter
the store. It takes pending log entries in batches, asks that source to decode and normalise
each (`DECODERS`), routes the events, and stores the whole batch in
ONE commit (`IngestStore.record_intake`): events deduplicated by id, deliveries for the new
ones, contacts, and every entry marked ``processed`` or ``failed``. Then it wakes the
dispatcher.

An entry whose decoding or normalising raises is marked ``failed`` with the error, never lost
and never blocking the others; so is one whose rows the store refuses (`Intake._isolate`).
``kabarin reprocess`` puts failed entries back to ``pending`` after a fix. Event ids are
deterministic, so processing an entry twice stores nothing twice.

It runs as a task in ``kabarin serve`` and in ``kabarin worker``, woken on every append.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any, Protocol

from gateway import metrics
from gateway.delivery.model import NewDelivery
from gateway.errors import StoreError, StoreRefused
from gateway.routing import Router
from gateway.sources.base import Normalised, Paged, Tracked
from gateway.sources.registry import get_source
from gateway.store.roles import IngestResult, IngestStore, LoggedPush, PushOutcome

__all__ = [
    "DECODERS",
    "PART_DECODERS",
    "Backlog",
    "Decoder",
    "Intake",
    "IntakeSummary",
    "LoggedPart",
    "decode_logged",
    "decode_logged_part",
    "new_push_id",
]

log = logging.getLogger("kabarin.intake")


@dataclass
class Backlog:
    """Pending log entries as this process last knew them: the receiver adds what it appends,
    the intake sets it from the store after every batch. Backpressure reads it without a query
    per request."""

    pending: int = 0
    checked: float = 0.0
    """`time.monotonic()` of the last count read from the store."""
    requests: int = 0
    """Pushes the receiver is reading or appending right now. While there are any, the intake
    takes small batches: an append shares the group commit with whatever intake job is queued,
    so a long one would hold every request of a burst back."""

    async def over(self, limit: int, store: IngestStore) -> bool:
        """Whether `limit` or more entries wait. Near the limit the count is read again from
        the store (at most once a second): another process's intake may have taken them."""
        if self.pending < limit:
            return False
        now = time.monotonic()
        if now - self.checked >= 1.0:
            self.checked = now
            await self.recount(store)
        return self.pending >= limit

    async def recount(self, store: IngestStore) -> None:
        """Read the count from the store (at start: what the last run left pending)."""
        self.pending = await store.count_pending_pushes()


class Decoder(Protocol):
    def __call__(self, push: LoggedPush, tz: tzinfo) -> Normalised: ...


def _decode_pushed(push: LoggedPush, tz: tzinfo) -> Normalised:
    source = get_source(push.origin)
    return source.normalise(
        source.decode(push.body), received_at=push.received_at, tz=tz, shop=push.shop
    )


def _decode_pulled(push: LoggedPush, tz: tzinfo) -> Normalised:
    source = get_source(push.origin)
    if not isinstance(source, Tracked):
        raise ValueError(f"push source {push.origin!r} has no tracking to read a pull entry by")
    return source.decode_pulled(push, tz)


DECODERS: dict[str, Decoder] = {"push": _decode_pushed, "pull": _decode_pulled}
"""How a log entry becomes events, by how it came (``source``): ``push`` what its push source
(``origin``) decodes and normalises, ``pull`` what the pull tracker of that source appended (for
KiriminAja a tracking answer or a stuck alert: `gateway.sources.kiriminaja.entries`)."""


@dataclass(frozen=True, slots=True)
class LoggedPart:
    """A range of a log entry's items and the events they yield."""

    items: list[Any]
    """The range's package items as received, in body order."""
    normalised: Normalised
    total: int
    """Items in the whole entry."""


class PartDecoder(Protocol):
    def __call__(self, push: LoggedPush, tz: tzinfo, start: int, stop: int) -> LoggedPart: ...


def _decode_pushed_part(push: LoggedPush, tz: tzinfo, start: int, stop: int) -> LoggedPart:
    source = get_source(push.origin)
    if isinstance(source, Paged):  # only the range's items are decoded
        part, total = source.decode_part(push.body, start, stop)
        normalised = source.normalise(part, received_at=push.received_at, tz=tz, shop=push.shop)
        return LoggedPart(list(part.items), normalised, total)
    whole = source.decode(push.body)
    items = list(whole.items)[start:stop]
    found = source.normalise(whole, received_at=push.received_at, tz=tz, shop=push.shop)
    # The range's events are those made of its items (`Event.raw` is the item as received).
    mine = {id(item) for item in items}
    events = [e for e in found.events if id(e.raw) in mine]
    orders = {e.order_id for e in events}
    contacts = [c for c in found.contacts if c.order_id in orders]
    return LoggedPart(items, Normalised(events, contacts), len(whole.items))


PART_DECODERS: dict[str, PartDecoder] = {"push": _decode_pushed_part}
"""How a range of a log entry's items is read, by how it came: a source that can
(`gateway.sources.base.Paged`) decodes only the range; any other decodes the whole body."""


def new_push_id(now: datetime) -> str:
    """``psh_`` + milliseconds since the epoch + randomness: unique, and in arrival order, so
    the log's id index grows at its end like its sequence does."""
    ms = int(now.timestamp() * 1000)
    return f"psh_{ms:012x}{os.urandom(5).hex()}"


def decode_logged(
    push: LoggedPush, tz: tzinfo, decoders: Mapping[str, Decoder] = DECODERS
) -> Normalised:
    """The events and contacts one log entry yields (raises on a body the code cannot read)."""
    decoder = decoders.get(push.source)
    if decoder is None:
        raise ValueError(f"no decoder for source {push.source!r}")
    return decoder(push, tz)


def decode_logged_part(push: LoggedPush, tz: tzinfo, start: int, stop: int) -> LoggedPart:
    """Items ``[start, stop)`` of a log entry and the events they yield (raises on a body the
    code cannot read). A source without a `PART_DECODERS` entry has no items to page (a pull
    tracker entry is one order's tracking answer): its first part holds all its events."""
    decoder = PART_DECODERS.get(push.source)
    if decoder is not None:
        return decoder(push, tz, start, stop)
    whole = decode_logged(push, tz) if start == 0 else Normalised([], [])
    return LoggedPart([], whole, 0)


class IntakeSummary:
    """What the intake took, said at INFO at most once every `every` seconds (a burst of
    200,000 pushes is a handful of lines, not one a push): pushes, new events, duplicates,
    failures and the longest lag from arrival to commit. Each push is still logged at DEBUG,
    and one that fails at ERROR, as it happens."""

    def __init__(self, every: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.clock = clock
        self._since = clock()
        """When the last summary was logged (or the intake was made)."""
        self._clear()

    def _clear(self) -> None:
        self.pushes = self.failed = self.events = self.duplicates = 0
        self.lag = 0.0

    def add(self, *, events: int, duplicates: int, lag: float, failed: bool = False) -> None:
        """One log entry taken: its new events and repeats, and seconds since it arrived."""
        self.pushes += 1
        self.failed += failed
        self.events += events
        self.duplicates += duplicates
        self.lag = max(self.lag, lag)

    def flush(self, *, force: bool = False) -> None:
        """Log the summary if something was taken and `every` seconds have passed since the
        last one (or now, with `force`: the intake is stopping)."""
        now = self.clock()
        if not self.pushes or (not force and now - self._since < self.every):
            return
        log.info(
            "intake: %d pushes in the last %.0f s (%d failed): %d new events, %d duplicates; "
            "lag up to %.1f s",
            self.pushes,
            now - self._since,
            self.failed,
            self.events,
            self.duplicates,
            self.lag,
        )
        self._since = now
        self._clear()


class Intake:
    """Turns pending log entries into stored events, batch by batch (see the module doc)."""

    def __init__(
        self,
        *,
        store: IngestStore,
        router: Router,
        timezone: tzinfo,
        batch: int = 200,
        busy_batch: int = 10,
        poll_interval: float = 1.0,
        on_stored: Callable[[], None] = lambda: None,
        decoders: Mapping[str, Decoder] | None = None,
        backlog: Backlog | None = None,
        summary: IntakeSummary | None = None,
        zones: Mapping[str, tzinfo] | None = None,
    ) -> None:
        self.store = store
        self.router = router
        self.timezone = timezone
        self.zones: Mapping[str, tzinfo] = zones or {}
        """Shop id → the zone of its naive times (`timezone` for a shop not named)."""
        self.batch = max(1, batch)
        self.busy_batch = max(1, min(busy_batch, self.batch))
        self.poll_interval = poll_interval
        self.on_stored = on_stored
        self.decoders = DECODERS if decoders is None else decoders
        self.backlog = backlog
        self.summary = IntakeSummary() if summary is None else summary
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def reconfigure(
        self, *, router: Router, timezone: tzinfo, zones: Mapping[str, tzinfo] | None = None
    ) -> None:
        """Routes (and the zones of naive times) of a reloaded configuration, for the batches
        taken from now on."""
        self.router, self.timezone = router, timezone
        if zones is not None:
            self.zones = zones

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="kabarin-intake")

    def wake(self) -> None:
        """Something was appended to the log: look at it now."""
        self._wake.set()

    async def stop(self) -> None:
        """Finish the batch under way (its commit is short), then stop."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self.summary.flush(force=True)

    async def _run(self) -> None:
        backoff = self.poll_interval
        # The next batch is read and normalised on the event loop while the previous one is
        # committed by the writer thread (SQLite releases the GIL): the two overlap instead of
        # taking turns. At most one batch is being stored at a time.
        storing: asyncio.Task[int] | None = None
        storing_ids: set[str] = set()
        trouble = metrics.StoreTrouble(log, "intake")
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    limit = self._limit()
                    pushes = await self.store.pending_pushes(limit=limit + len(storing_ids))
                    pushes = [p for p in pushes if p.id not in storing_ids][:limit]
                    outcomes = [self._outcome(p) for p in pushes]
                    stored = storing is not None
                    if storing is not None:
                        task, storing, storing_ids = storing, None, set()
                        await task
                    trouble.recovered()
                    if pushes:
                        storing = asyncio.create_task(self._store(pushes, outcomes))
                        storing_ids = {p.id for p in pushes}
                        continue
                    if not stored:  # otherwise the batch just stored counted what is left
                        self._set_backlog(0)
                except StoreError as exc:
                    trouble.failed("the store failed", exc, "pushes stay pending")
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                except Exception as exc:
                    trouble.failed("unexpected error", exc, "pushes stay pending")
                    await self._sleep(self.poll_interval)
                    continue
                backoff = self.poll_interval
                self.summary.flush()  # the end of a burst is said within a poll interval
                await self._sleep(self.poll_interval)
        finally:
            if storing is not None:  # finish the batch under way: its commit is short
                with suppress(Exception):
                    await storing

    async def _sleep(self, seconds: float) -> None:
        if self._stopping:
            return
        with suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def drain(self) -> int:
        """Process until nothing is pending; how many log entries were taken."""
        total = 0
        while n := await self.run_once():
            total += n
        return total

    # -- one batch ---------------------------------------------------------------------------
    async def run_once(self, now: datetime | None = None) -> int:
        """Take one batch of pending entries through to the store; how many were taken."""
        pushes = await self.store.pending_pushes(limit=self._limit())
        if not pushes:
            self._set_backlog(0)
            return 0
        outcomes = [self._outcome(p) for p in pushes]
        return await self._store(pushes, outcomes, now)

    async def _store(
        self,
        pushes: Sequence[LoggedPush],
        outcomes: Sequence[PushOutcome],
        now: datetime | None = None,
    ) -> int:
        started = time.perf_counter()
        when = now or datetime.now(UTC)
        try:
            stored = await self.store.record_intake(outcomes, now=when)
        except Exception as exc:
            if not _refusal(exc):
                raise  # the store is failing: the batch stays pending, the loop backs off
            outcomes, stored = await self._isolate(outcomes, when, exc)
        self._count(pushes, outcomes, stored, when)
        self._set_backlog(await self.store.count_pending_pushes())
        if any(s.deliveries for s in stored):
            self.on_stored()
        log.debug(
            "intake: %d log entries, %d failed, stored in %.1f ms",
            len(pushes),
            sum(1 for o in outcomes if o.error is not None),
            (time.perf_counter() - started) * 1000,
        )
        return len(pushes)

    async def _isolate(
        self, outcomes: Sequence[PushOutcome], now: datetime, exc: Exception
    ) -> tuple[list[PushOutcome], list[IngestResult]]:
        """The store refused the batch's rows (`StoreRefused`, or an error the rows met in the
        code): store its entries one at a time. An entry refused alone (rows it cannot hold,
        such as a NUL character in PostgreSQL text) is kept as failed, for `kabarin reprocess`
        after a fix, instead of holding back every entry behind it for ever. A failure of the
        store itself (a dropped connection, a locked or full disk) is never taken for a
        refusal: it goes up, and the entries not stored yet stay pending."""
        log.warning(
            "intake: the store refused a batch of %d log entries (%s); storing them one by one",
            len(outcomes),
            exc,
        )
        kept: list[PushOutcome] = []
        results: list[IngestResult] = []
        for outcome in outcomes:
            outcome, result = await self._store_alone(outcome, now)
            kept.append(outcome)
            results.append(result)
        return kept, results

    async def _store_alone(
        self, outcome: PushOutcome, now: datetime
    ) -> tuple[PushOutcome, IngestResult]:
        try:
            (result,) = await self.store.record_intake([outcome], now=now)
            return outcome, result
        except Exception as exc:
            if not _refusal(exc):
                raise
            refusal = exc  # the same rows would be refused again: no second try
        failed = PushOutcome(
            push_id=outcome.push_id, error=f"the store refused its events: {refusal}"
        )
        (result,) = await self.store.record_intake([failed], now=now)
        log.error(
            "intake: push %s: the store refused its events (%s); kept as failed for "
            "`kabarin reprocess`",
            outcome.push_id,
            refusal,
        )
        return failed, result

    def _limit(self) -> int:
        busy = self.backlog is not None and self.backlog.requests > 0
        return self.busy_batch if busy else self.batch

    def _set_backlog(self, pending: int) -> None:
        metrics.INTAKE_BACKLOG.set(pending)
        if self.backlog is not None:
            self.backlog.pending = pending

    def _outcome(self, push: LoggedPush) -> PushOutcome:
        try:
            tz = self.zones.get(push.shop, self.timezone)
            result = decode_logged(push, tz, self.decoders)
            deliveries: list[NewDelivery] = []
            unrouted = 0
            for event in result.events:
                routed = self.router.deliveries(event)
                deliveries.extend(routed)
                unrouted += not routed
        except Exception as exc:  # a body the code cannot handle is kept, not lost
            log.exception("intake: push %s failed; kept as failed for `kabarin reprocess`", push.id)
            return PushOutcome(push_id=push.id, error=f"{type(exc).__name__}: {exc}")
        return PushOutcome(
            push_id=push.id,
            events=result.events,
            deliveries=deliveries,
            contacts=result.contacts,
            unrouted=unrouted,
        )

    def _count(
        self,
        pushes: Sequence[LoggedPush],
        outcomes: Sequence[PushOutcome],
        stored: Sequence[IngestResult],
        now: datetime,
    ) -> None:
        oldest = min(p.received_at for p in pushes)
        metrics.INTAKE_LAG.set(max(0.0, (now - oldest).total_seconds()))
        for push, outcome, result in zip(pushes, outcomes, stored, strict=True):
            state = "failed" if outcome.error is not None else "processed"
            metrics.PUSHES_BY_STATE.labels(state).inc()
            lag = (now - push.received_at).total_seconds()
            if outcome.error is not None:
                self.summary.add(events=0, duplicates=0, lag=lag, failed=True)
                continue
            self.summary.add(events=result.accepted, duplicates=result.duplicates, lag=lag)
            log.debug(
                "push %s %r: %d items, %d accepted, %d duplicates, %.1f ms after it arrived",
                push.id,
                push.method,
                push.items,
                result.accepted,
                result.duplicates,
                lag * 1000,
            )
            new = set(result.new_event_ids)
            statuses = Counter(e.status.value for e in outcome.events if e.id in new)
            method = _method_label(push)
            for status, count in statuses.items():
                metrics.EVENTS.labels(method, status, push.shop).inc(count)
            if result.duplicates:
                metrics.EVENTS_DUPLICATE.inc(result.duplicates)
            if outcome.unrouted:
                metrics.EVENTS_UNROUTED.inc(outcome.unrouted)
        self.summary.flush()


def _method_label(push: LoggedPush) -> str:
    try:
        source = get_source(push.origin)
    except LookupError:  # decoded by a source since uninstalled
        return "other"
    return metrics.method_label(push.method or "", source)


def _refusal(exc: Exception) -> bool:
    """Whether `exc` says the rows were refused (the same rows would be again), not that the
    store failed: a `StoreRefused`, or an error that is not the store's at all (a value the
    code cannot encode)."""
    return isinstance(exc, StoreRefused) or not isinstance(exc, StoreError)
