"""Retention: old rows pruned in the background, in small commits that never stall ingest.

`RetentionPolicy` is the decision: from the configured windows and a time, the `Cutoffs` (what
may go). It reads no clock and touches no store, so it is tested on its own, like
`gateway.delivery.retry.RetryPolicy`. `Retention` does the I/O: every `retention.interval` it
runs each prune step (`gateway.store.roles.PRUNE_STEPS`) in batches of `retention.batch` rows,
one commit each through the store's group commit, yielding to the event loop between batches:
a push arriving meanwhile waits for at most one small batch, never for the whole prune.

It runs where the intake runs (in ``kabarin serve``, or in ``kabarin worker`` when the intake
is there), so one process prunes; ``kabarin store prune`` runs the same pass on demand.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from gateway import metrics
from gateway.config import RetentionConfig
from gateway.store.roles import PRUNE_STEPS, Cutoffs, Pruned, RetentionStore
from gateway.tasks import cancelled
from gateway.units import Window

__all__ = ["Retention", "RetentionPolicy"]

log = logging.getLogger("kabarin.retention")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _cutoff(now: datetime, window: Window) -> datetime | None:
    return None if window.off else now - timedelta(seconds=window)


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each kind of row is kept; a window of 0 keeps it for ever."""

    pushes: Window
    events: Window
    delivered: Window
    dead: Window
    rejected: Window
    orders: Window

    @classmethod
    def from_config(cls, config: RetentionConfig) -> RetentionPolicy:
        return cls(
            pushes=config.pushes,
            events=config.events,
            delivered=config.delivered,
            dead=config.dead,
            rejected=config.rejected,
            orders=config.orders,
        )

    @property
    def enabled(self) -> bool:
        """Whether anything is ever pruned."""
        windows = (self.pushes, self.events, self.delivered, self.dead, self.rejected, self.orders)
        return any(not w.off for w in windows)

    def cutoffs(self, now: datetime) -> Cutoffs:
        """What may go at `now`: rows older than each window."""
        return Cutoffs(
            pushes=_cutoff(now, self.pushes),
            events=_cutoff(now, self.events),
            delivered=_cutoff(now, self.delivered),
            dead=_cutoff(now, self.dead),
            rejected=_cutoff(now, self.rejected),
            orders=_cutoff(now, self.orders),
        )


class Retention:
    """Prunes every `interval` seconds, from `start` until `stop` (see the module doc)."""

    def __init__(
        self,
        *,
        store: RetentionStore,
        policy: RetentionPolicy,
        interval: float = 3600.0,
        batch: int = 500,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.store = store
        self.policy = policy
        self.interval = interval
        self.batch = max(1, batch)
        self.clock = clock
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, store: RetentionStore, config: RetentionConfig) -> Retention:
        return cls(
            store=store,
            policy=RetentionPolicy.from_config(config),
            interval=float(config.interval),
            batch=config.batch,
        )

    async def start(self) -> None:
        if self.policy.enabled and (self._task is None or self._task.done()):
            self._task = asyncio.create_task(self._run(), name="kabarin-retention")

    async def stop(self) -> None:
        """Stop between two batches (the one under way commits or not, whole)."""
        await cancelled(self._task)
        self._task = None

    async def _run(self) -> None:
        trouble = metrics.StoreTrouble(log, "retention")
        while True:
            try:
                await self.run_once()
            except Exception as exc:
                trouble.failed("could not prune", exc, f"trying again every {self.interval:g}s")
            else:
                trouble.recovered()
            await self._sleep(self.interval)

    async def run_once(self) -> Pruned:
        """One pass: every step until it has nothing left to remove; what was removed."""
        cutoffs = self.policy.cutoffs(self.clock())
        total = Pruned()
        for step in PRUNE_STEPS:
            while True:
                removed = await self.store.prune(step, cutoffs, limit=self.batch)
                total += removed
                if removed.of(step) < self.batch:
                    break
                await asyncio.sleep(0)  # between commits, whatever else is waiting goes first
        for table in ("pushes", "events", "deliveries", "attempts", "rejected", "orders"):
            count = getattr(total, table)
            if count:
                metrics.PRUNED.labels(table).inc(count)
        if total != Pruned():
            log.info(
                "retention: removed %d pushes, %d events, %d deliveries, %d attempts,"
                " %d rejected bodies, %d order facts",
                total.pushes,
                total.events,
                total.deliveries,
                total.attempts,
                total.rejected,
                total.orders,
            )
        return total
