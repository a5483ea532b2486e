"""The pull tracker: asks KiriminAja's tracking API about orders pushes left quiet.

Two schedules run side by side, each every ``pull.interval``:

1. stuck alerts: an open order whose last status is a key of ``pull.alert_after`` and has not
   changed for that long gets ONE ``stuck`` log entry, and no other until it moves (the store
   marks the alert when it hands the order out). Skipped while the intake is behind, since the
   store's view of the orders is then older than the log. This schedule also refreshes the
   tracker's gauges. It never waits for a pass: at shop scale a pass may take hours;
2. passes: a pass leases open orders (no final status, not unknown to KiriminAja) whose last
   update is older than ``pull.stale_after`` and whose next pull has come, least recently
   asked first (never asked first), and asks about each, at most ``pull.rate`` calls a second.
   A pass asks about each order at most once (the store hands out only orders not asked since
   the pass began), so it ends, and an order answered again cannot crowd out the others. The
   lease in the store lets replicas share the orders without asking about one twice. After an
   answer the order waits ``stale_after`` before it is asked about again. So does an order
   KiriminAja refuses to tell about, or whose answer cannot be read or made into a log entry
   (``skipped``, logged once per answer): the pass goes on with the others. A shop whose
   orders are refused one after another in the same words (its key revoked) is left alone
   for the rest of the pass, its orders waiting an ``interval``; the other shops' are asked
   about. Only a "try later" (429, 5xx, network error, timeout: KiriminAja as a whole is
   limiting or failing) ends the pass, and that order waits an ``interval``.

When the process starts after a gap (a shop's newest push is older than ``pull.gap``, whether
Kabarin was down or KiriminAja stopped pushing to that account), passes pull every open order
of the shops concerned once, whatever its last update, until one such pass completes. Each
shop is judged by its own pushes: one busy account does not hide another's silence.

What an answer teaches is appended to the push log (source ``pull``, a `PullEntry`) and the
intake is woken: it makes the events, one way in as for pushes. Statuses the order already has
are listed in the entry and make no event; an answer with nothing new appends nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Literal, Protocol

import msgspec

from gateway import metrics
from gateway.config import PullConfig
from gateway.events import DEFAULT_SHOP, Contact, Event, EventKind
from gateway.intake import new_push_id
from gateway.sources.kiriminaja.entries import STUCK_METHOD, PullEntry, Stuck, status_key
from gateway.sources.kiriminaja.pulled import Pulled, normalise_pulled
from gateway.sources.kiriminaja.tracking import NotFound, Refused, TrackingResult
from gateway.store.roles import IngestStore, NewPush
from gateway.store.tracking import PullClaim, TrackedOrder, TrackingStore
from gateway.tasks import cancelled
from gateway.units import how_many

__all__ = ["Clock", "PassReport", "PullResult", "PullStore", "PullTracker", "SystemClock"]

log = logging.getLogger("kabarin.pull")

SAME_REFUSALS = 3
"""A shop's orders refused one after another in the same words that are taken for a refusal of
the shop's whole account (a revoked API key answered ``status: false``), ending the pass for
that shop."""
Outcome = Literal["changed", "unchanged", "not_found", "skipped", "try_later"]

_STUCK_BATCH = 100


class PullStore(IngestStore, TrackingStore, Protocol):
    """What the tracker uses of the store."""

    async def get_contact(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> Contact | None: ...


class Tracker(Protocol):
    """The tracking API (`gateway.sources.kiriminaja.tracking.TrackingClient`)."""

    async def track(self, kind: EventKind, order_id: str) -> TrackingResult: ...


class Clock(Protocol):
    def now(self) -> datetime: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class PullResult:
    """What asking about one order did."""

    order_id: str
    outcome: Outcome
    new: list[Event] = field(default_factory=list)
    """The statuses it learned (appended to the log for the intake)."""
    reason: str | None = None
    """Why there was no answer (``try_later``, ``not_found``, ``skipped``)."""
    shop: str = DEFAULT_SHOP
    """The shop whose order it is (whose key asked)."""


@dataclass
class ShopLine:
    """How the tracker asks about one shop's orders: with its key (its client), at its rate,
    reading naive times in its zone."""

    client: Tracker
    calls_per_second: float
    timezone: tzinfo
    next_call: datetime | None = None
    """Not before this: the shop's place in its own rate."""


class _Unreadable(Exception):
    """An answer that cannot be made into events or a log entry (its reason is the message)."""


@dataclass
class PassReport:
    pulls: list[PullResult] = field(default_factory=list)
    stuck: list[TrackedOrder] = field(default_factory=list)
    catch_up: bool = False
    """It was a catch-up pass (after a gap)."""


class PullTracker:
    """The background task; `run_pass` and `pull` are its decisions, usable one at a time."""

    def __init__(
        self,
        *,
        store: PullStore,
        client: Tracker,
        config: PullConfig,
        timezone: tzinfo,
        wake_intake: Callable[[], None] = lambda: None,
        clock: Clock | None = None,
        shops: Mapping[str, ShopLine] | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.config = config
        self.timezone = timezone
        self.wake_intake = wake_intake
        self.clock = clock or SystemClock()
        self.catch_up_since: datetime | None = None
        """Set after a gap: passes pull every open order of `catch_up_shops` not pulled since
        then."""
        self.catch_up_shops: frozenset[str] = frozenset()
        """The shops whose pushes stopped for longer than ``pull.gap``."""
        self.shops: dict[str, ShopLine] = (
            dict(shops)
            if shops
            else {DEFAULT_SHOP: ShopLine(client, config.calls_per_second, timezone)}
        )
        """Shop id → its key, rate and zone: each shop's orders are asked about with its own
        key, at its own rate (`client` and `pull.rate` with one shop)."""
        rates = [line.calls_per_second for line in self.shops.values()]
        # The slowest shop's pace bounds how long a claimed order may wait for its turn.
        self._spacing = 1.0 / min(rates)
        # About a second of calls per claim: a lease never outlives its place in the rate.
        self._batch = min(50, max(1, math.ceil(sum(rates))))
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        await self.check_gap()
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="kabarin-pull")

    async def stop(self) -> None:
        self._stop.set()
        await cancelled(self._task)
        self._task = None

    async def check_gap(self) -> bool:
        """Whether a shop's pushes have been missing for longer than ``pull.gap``: then the
        next passes catch up on every open order of the shops whose pushes are missing (a shop
        that was never pushed to has no gap: it is new)."""
        now = self.clock.now()
        quiet: set[str] = set()
        for shop in self.shops:
            last = await self.store.last_push_at(shop=shop)
            if last is None or (now - last).total_seconds() <= self.config.gap:
                continue
            quiet.add(shop)
            log.info(
                "pull: no push for shop %s since %s (longer than pull.gap): asking about every "
                "open order of it once",
                shop,
                last.isoformat(),
            )
        if not quiet:
            return False
        self.catch_up_since, self.catch_up_shops = now, frozenset(quiet)
        return True

    async def _run(self) -> None:
        await asyncio.gather(
            self._every_interval(self.pull_pass, "pull", "a pass failed"),
            self._every_interval(self.watch, "stuck alerts", "could not look for stuck orders"),
        )

    async def _every_interval(
        self, turn: Callable[[], Awaitable[object]], stage: str, doing: str
    ) -> None:
        # Each schedule keeps its own account of a failing store: they call it at different
        # moments, and a shared account would log a recovery whenever one schedule's call
        # went through between the other's failures.
        trouble = metrics.StoreTrouble(log, stage)
        while not self._stop.is_set():
            try:
                await turn()
            except Exception as exc:
                metrics.PULL_FAILURES.inc()
                trouble.failed(doing, exc, f"trying again every {self.config.interval:g}s")
            else:
                trouble.recovered()
            with suppress(TimeoutError):
                async with asyncio.timeout(self.config.interval):
                    await self._stop.wait()

    # -- one pass ----------------------------------------------------------------------------
    async def run_pass(self) -> PassReport:
        """Stuck alerts, then one pass, then the gauges: what `kabarin pull --stale` does once
        (the background task runs the first on its own schedule)."""
        stuck = await self.raise_stuck()
        report = await self.pull_pass()
        report.stuck = stuck
        await self.refresh_gauges()
        return report

    async def pull_pass(self) -> PassReport:
        """Ask about every due order once (see the module doc)."""
        report = PassReport(catch_up=self.catch_up_since is not None)
        if await self.store.count_pending_pushes():
            # Pushes still waiting for the intake may carry the very statuses a pull would
            # find; pulled first, they would become second events (a pulled time is not the
            # pushed one), so the customer would hear twice. The next pass asks.
            completed = False
        else:
            completed = await self._pull_due(report)
        if completed and report.catch_up:
            log.info("pull: caught up (%s asked about)", how_many(len(report.pulls), "order"))
            self.catch_up_since, self.catch_up_shops = None, frozenset()
        metrics.PULL_LAST_PASS.set(self.clock.now().timestamp())
        return report

    async def watch(self) -> None:
        """Raise stuck alerts and refresh the gauges: the schedule beside the passes."""
        await self.raise_stuck()
        await self.refresh_gauges()

    async def refresh_gauges(self) -> None:
        now = self.clock.now()
        due = await self.store.oldest_due_pull(now=now, stale_after=self.config.stale_after)
        counts = await self.store.tracking_counts()
        metrics.ORDERS_OPEN.set(counts.open)
        metrics.ORDERS_STUCK.set(counts.stuck)
        metrics.PULL_OLDEST_DUE_AGE.set(
            0.0 if due is None else max(0.0, (now - due).total_seconds())
        )

    async def _pull_due(self, report: PassReport) -> bool:
        """Lease and ask until nothing is due that this pass has not asked about yet; False
        when a "try later" ended the pass, or a shop's account was refused."""
        started = self.clock.now()
        recent: dict[str, deque[PullResult]] = {}
        """Each shop's last answers: the account refusal is judged per shop."""
        refused: set[str] = set()
        """Shops whose account was refused in this pass: not asked about again in it."""
        while True:
            now = self.clock.now()
            catch_up = self.catch_up_since
            claimed = await self.store.claim_pulls(
                PullClaim(
                    now=now,
                    limit=self._batch,
                    lease_seconds=self._batch * self._spacing + self.config.lease,
                    stale_before=now - timedelta(seconds=self.config.stale_after),
                    pulled_before=catch_up,
                    catch_up_shops=self.catch_up_shops if catch_up else None,
                    # An order answered during the pass is due again after stale_after, which
                    # may be shorter than the pass: without this bound the pass never ended
                    # (25 orders at 5/s with stale_after 1s: ten were asked over and over, the
                    # others never, and no stuck alert was raised).
                    asked_before=started,
                )
            )
            if not claimed:
                return not refused
            for i, order in enumerate(claimed):
                if order.shop in refused:
                    # Its account was refused: not asked, it waits an interval like them.
                    now = self.clock.now()
                    later = now + timedelta(seconds=self.config.interval)
                    await self.store.finish_pull(
                        order.order_id, shop=order.shop, now=now, next_pull_at=later, answered=False
                    )
                    continue
                result = await self._pull_claimed(order)
                report.pulls.append(result)
                last = recent.setdefault(order.shop, deque(maxlen=SAME_REFUSALS))
                last.append(result)
                if self._whole_account_refused(last):
                    # A shop's orders refused in the same words one after another: its account
                    # (a revoked API key, say), not the orders: they wait an interval, as
                    # after a "try later", not their stale_after. The other shops' keys are
                    # their own: the pass goes on with their orders.
                    refused.add(order.shop)
                    now = self.clock.now()
                    later = now + timedelta(seconds=self.config.interval)
                    for one in last:
                        await self.store.finish_pull(
                            one.order_id,
                            shop=one.shop,
                            now=now,
                            next_pull_at=later,
                            answered=False,
                        )
                    log.warning(
                        "pull: %d orders in a row refused with the same words (%s) for shop %s:"
                        " taken for a problem of its account; its orders wait for the next pass",
                        SAME_REFUSALS,
                        result.reason,
                        order.shop,
                    )
                    # Reported as what it is for this order: asked about again after an interval.
                    report.pulls[-1] = PullResult(
                        order.order_id, "try_later", reason=result.reason, shop=order.shop
                    )
                if result.outcome == "try_later":
                    # Handed back for the next pass, not left to wait out their lease.
                    now = self.clock.now()
                    for rest in claimed[i + 1 :]:
                        await self.store.finish_pull(
                            rest.order_id,
                            shop=rest.shop,
                            now=now,
                            next_pull_at=now,
                            answered=False,
                            asked=False,
                        )
                    return False

    @staticmethod
    def _whole_account_refused(last: deque[PullResult]) -> bool:
        return (
            len(last) == SAME_REFUSALS
            and all(p.outcome == "skipped" for p in last)
            and len({p.reason for p in last}) == 1
        )

    async def _pull_claimed(self, order: TrackedOrder) -> PullResult:
        result = await self.pull(order.order_id, order.kind, shop=order.shop)
        now = self.clock.now()
        if result.outcome == "try_later":
            later = now + timedelta(seconds=self.config.interval)
            await self.store.finish_pull(
                order.order_id, shop=order.shop, now=now, next_pull_at=later, answered=False
            )
        else:
            # Answered, skipped or unknown: asked about (a catch-up pass is done with it).
            await self.store.finish_pull(
                order.order_id,
                shop=order.shop,
                now=now,
                next_pull_at=now + timedelta(seconds=self.config.stale_after),
                gone=result.reason if result.outcome == "not_found" else None,
            )
        return result

    # -- one order -------------------------------------------------------------------------
    async def pull(self, order_id: str, kind: EventKind, *, shop: str = DEFAULT_SHOP) -> PullResult:
        """Ask about one of a shop's orders now (within its rate, with its key) and append
        what is new."""
        line = self.shops.get(shop)
        if line is None:  # tracked before the shop left the configuration
            return self._skipped(order_id, f"shop {shop!r} is not configured", shop)
        await self._pace(line)
        try:
            answer: TrackingResult = await line.client.track(kind, order_id)
        except Exception as exc:  # the client promises results; a failure is this order's
            answer = Refused(kind=kind, order_id=order_id, reason=_cause("no answer", exc))
        if isinstance(answer, Pulled):
            metrics.PULL_CALLS.labels("pulled").inc()
            try:
                new = await self._learn(answer, shop, line.timezone)
            except _Unreadable as exc:
                return self._skipped(order_id, str(exc), shop)
            return PullResult(order_id, "changed" if new else "unchanged", new, shop=shop)
        if isinstance(answer, Refused):
            metrics.PULL_CALLS.labels("refused").inc()
            return self._skipped(order_id, answer.reason, shop)
        if isinstance(answer, NotFound):
            metrics.PULL_CALLS.labels("not_found").inc()
            log.warning("pull: KiriminAja does not know order %s: %s", order_id, answer.reason)
            return PullResult(order_id, "not_found", reason=answer.reason, shop=shop)
        metrics.PULL_CALLS.labels("try_later").inc()
        log.warning("pull: no answer about order %s: %s", order_id, answer.reason)
        return PullResult(order_id, "try_later", reason=answer.reason, shop=shop)

    def _skipped(self, order_id: str, reason: str, shop: str) -> PullResult:
        log.warning(
            "pull: no usable answer about order %s: %s; asking again in %gs (pull.stale_after)",
            order_id,
            reason,
            self.config.stale_after,
        )
        return PullResult(order_id, "skipped", reason=reason, shop=shop)

    async def _pace(self, line: ShopLine) -> None:
        now = self.clock.now()
        if line.next_call is not None and line.next_call > now:
            await self.clock.sleep((line.next_call - now).total_seconds())
            now = self.clock.now()
        start = max(now, line.next_call or now)
        line.next_call = start + timedelta(seconds=1.0 / line.calls_per_second)

    async def _learn(self, pulled: Pulled, shop: str, tz: tzinfo) -> list[Event]:
        now = self.clock.now()
        try:
            events = normalise_pulled(pulled, received_at=now, tz=tz, shop=shop).events
        except Exception as exc:
            raise _Unreadable(_cause("cannot make events of the answer", exc)) from exc
        known = await self.store.known_statuses(pulled.order_id, shop=shop)
        new = [e for e in events if status_key(e) not in known]
        if not new:
            return []
        contact = await self.store.get_contact(pulled.order_id, shop=shop)
        entry = PullEntry(
            kind=pulled.kind,
            order_id=pulled.order_id,
            answer=pulled.answer,
            known=sorted(known, key=lambda k: (k[0].value, k[1] or "")),
            # A pulled recipient fills a gap; it never replaces what a push or an operator set.
            contact=contact is None or (contact.name is None and contact.phone is None),
        )
        try:
            body = entry.encode()
        except Exception as exc:
            raise _Unreadable(_cause("cannot log the answer", exc)) from exc
        await self.store.append_push(
            NewPush(
                id=new_push_id(now),
                source="pull",
                shop=shop,
                received_at=now,
                body=body,
                content_type="application/json",
                method=pulled.method,
                items=len(new),
            )
        )
        self.wake_intake()
        log.info("pull: order %s has %s", pulled.order_id, ", ".join(e.status.value for e in new))
        return new

    # -- stuck parcels -----------------------------------------------------------------------
    async def raise_stuck(self) -> list[TrackedOrder]:
        """One ``stuck`` log entry per order that waits too long in its status (see the module
        doc); the orders alerted."""
        if not self.config.alert_after or await self.store.count_pending_pushes():
            return []
        after = {status: float(d) for status, d in self.config.alert_after.items()}
        raised: list[TrackedOrder] = []
        while True:
            now = self.clock.now()
            orders = await self.store.claim_stuck(after, now=now, limit=_STUCK_BATCH)
            alerts = [
                (
                    order,
                    NewPush(
                        id=new_push_id(now),
                        source="pull",
                        shop=order.shop,
                        received_at=now,
                        body=msgspec.json.encode(
                            Stuck(
                                kind=order.kind,
                                order_id=order.order_id,
                                stuck_in=order.last_status,
                                since=order.last_update,
                            )
                        ),
                        content_type="application/json",
                        method=STUCK_METHOD,
                        items=1,
                    ),
                )
                for order in orders
                if order.last_status is not None and order.last_update is not None
            ]
            # Submitted together, the alerts share one group commit: the orders just marked
            # are logged all at once, not some of them if the process stops half-way.
            await asyncio.gather(*(self.store.append_push(push) for _, push in alerts))
            for order, _ in alerts:
                raised.append(order)
                log.info(
                    "pull: order %s stuck in %s since %s",
                    order.order_id,
                    order.last_status,
                    order.last_update,
                )
            if len(orders) < _STUCK_BATCH:
                break
        if raised:
            self.wake_intake()
        return raised


def _cause(what: str, exc: BaseException) -> str:
    text = " ".join(str(exc).split())[:200]
    return f"{what}: {type(exc).__name__}" + (f": {text}" if text else "")
