"""Digests sent: composed into deliveries, each period claimed once, and a background task that
wakes for the next one due.

`compose` reads the summary, renders it (`gateway.digests.render`) and makes one delivery per
sink of the digest, naming a stand-in event (`gateway.digests.message`): from there the
dispatcher sends it, retries, dead-letters and replays it like any other delivery. `Digests`
runs where the intake runs (``kabarin serve``, or the ``kabarin worker`` with the intake): at
each wake it asks each digest's `DigestSchedule` what is due and claims the period with its
deliveries in one commit (`DigestStore.record_digest`), so a period goes once across restarts,
a ``kill -9`` and replicas sharing PostgreSQL; a period missed while Kabarin was down goes once,
at start (the latest only). `send_now` is ``kabarin digest send``: a digest of the window ending
now, recorded and delivered, that takes no period's place.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Mapping
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from gateway import metrics
from gateway.config import Config, DigestConfig
from gateway.delivery.model import NewDelivery
from gateway.digests.message import PART_TEMPLATES, DigestParts, digest_event
from gateway.digests.render import render_digest
from gateway.digests.schedule import Baseline, DigestSchedule, SendNow
from gateway.digests.summary import summarise
from gateway.routing import delivery_id
from gateway.store.digests import DigestRun
from gateway.store.roles import DigestStore
from gateway.tasks import cancelled
from gateway.templating import encode_parts
from sinks.base import Sink

__all__ = ["Digests", "compose", "digest_problems", "preview", "schedule_of", "send_now"]

log = logging.getLogger("kabarin.digests")

_MAX_SLEEP = 300.0
"""Longest sleep between looks: a clock that jumps (a suspended VM) is noticed this soon."""
_RETRY_AFTER = 30.0
"""After a store failure, the next try."""


def utcnow() -> datetime:
    return datetime.now(UTC)


def schedule_of(config: Config, name: str) -> DigestSchedule:
    """The schedule of the digest `name` (its zone defaults to ``receiver.timezone``)."""
    digest = config.digests[name]
    return DigestSchedule.of(
        zone=_zone(config, digest), at=digest.at, every=digest.every, window=digest.window
    )


def _zone(config: Config, digest: DigestConfig) -> ZoneInfo:
    return ZoneInfo(digest.timezone) if digest.timezone else config.receiver.tz


def digest_problems(config: Config, sinks: Mapping[str, Sink]) -> list[str]:
    """`kabarin check`'s refusals: a digest is for staff, never sent to a customer."""
    out = []
    for name, digest in config.digests.items():
        for j, sink_name in enumerate(digest.sinks):
            sink = sinks.get(sink_name)
            if sink is not None and getattr(sink, "writes_to_customer", False):
                out.append(
                    f"{config.where('digests', name, 'sinks', j)}: sink {sink_name!r} writes to"
                    " customers; a digest is for the shop's staff (slack, email to staff,"
                    " webhook)"
                )
    return out


async def render(
    store: DigestStore, config: Config, name: str, *, end: datetime, period: datetime | None
) -> DigestParts:
    """The digest of the window ending at `end`, rendered."""
    digest = config.digests[name]
    schedule = schedule_of(config, name)
    summary = await summarise(store, name, end=end, window=schedule.window)
    return render_digest(
        summary, language=digest.language, zone=_zone(config, digest), period=period
    )


async def compose(
    store: DigestStore, config: Config, name: str, *, now: datetime, period: datetime | None
) -> tuple[DigestRun, list[NewDelivery]]:
    """The digest of `period` (``None``: of the window ending `now`, sent by hand) and its
    deliveries, one per sink."""
    parts = await render(store, config, name, end=period or now, period=period)
    nonce = "" if period is not None else secrets.token_hex(4)
    event = digest_event(name=name, period=period, now=now, parts=parts, nonce=nonce)
    route = f"digest:{name}"
    template = encode_parts(PART_TEMPLATES)
    deliveries = [
        NewDelivery(
            id=delivery_id(event.id, route, sink),
            event_id=event.id,
            route=route,
            sink=sink,
            ordering="all",  # never superseded: each period's digest is its own news
            template=template,
        )
        for sink in config.digests[name].sinks
    ]
    return DigestRun(digest=name, period=period, event=event), deliveries


async def preview(store: DigestStore, config: Config, name: str, *, now: datetime) -> DigestParts:
    """``kabarin digest preview``: the digest of the window ending `now`; nothing is kept."""
    return await render(store, config, name, end=now, period=None)


async def send_now(store: DigestStore, config: Config, name: str, *, now: datetime) -> DigestRun:
    """``kabarin digest send``: the digest of the window ending `now`, kept and handed to the
    dispatcher (its deliveries are due now). It takes no period's place: the next scheduled
    one goes as planned."""
    run, deliveries = await compose(store, config, name, now=now, period=None)
    await store.record_digest(name, period=None, run=run, deliveries=deliveries, now=now)
    return run


def _forget_before(config: Config, now: datetime) -> datetime | None:
    """Runs older than every retention window of deliveries may go (once none of their
    deliveries is left); ``None`` while either window keeps deliveries for ever."""
    windows = (config.retention.delivered, config.retention.dead)
    if any(w.off for w in windows):
        return None
    return now - timedelta(seconds=max(float(w) for w in windows))


class Digests:
    """Sends every configured digest once per period, from `start` until `stop`."""

    def __init__(
        self,
        *,
        store: DigestStore,
        config: Config,
        clock: Callable[[], datetime] = utcnow,
        on_sent: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.config = config
        self.clock = clock
        self._on_sent = on_sent
        """Wakes this process's dispatcher: a digest's deliveries are due at once."""
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def reconfigure(self, config: Config) -> None:
        """Use a reloaded configuration's digests from the next look (which is now)."""
        self.config = config
        self._wake.set()

    async def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="kabarin-digests")

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    async def _run(self) -> None:
        trouble = metrics.StoreTrouble(log, "digests")
        while True:
            try:
                wake = await self.run_once()
            except Exception as exc:
                trouble.failed("could not send digests", exc, f"trying again in {_RETRY_AFTER:g}s")
                delay = _RETRY_AFTER
            else:
                trouble.recovered()
                delay = (wake - self.clock()).total_seconds() if wake else _MAX_SLEEP
            self._wake.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), min(max(delay, 0.01), _MAX_SLEEP))

    async def run_once(self) -> datetime | None:
        """Send what is due now; when the next digest falls due (``None``: no digests)."""
        config = self.config
        wakes: list[datetime] = []
        for name in list(config.digests):
            now = self.clock()
            schedule = schedule_of(config, name)
            decision = schedule.decide(now, await self.store.last_digest(name))
            if isinstance(decision, Baseline):
                await self.store.record_digest(
                    name, period=decision.period, run=None, deliveries=(), now=now
                )
                log.info(
                    "digest %s: first period %s", name, decision.next.isoformat(timespec="seconds")
                )
                wakes.append(decision.next)
            elif isinstance(decision, SendNow):
                await self._send(config, name, decision, now)
                wakes.append(schedule.following(decision.period))
            else:
                wakes.append(decision.when)
        return min(wakes) if wakes else None

    async def _send(self, config: Config, name: str, due: SendNow, now: datetime) -> None:
        run, deliveries = await compose(self.store, config, name, now=now, period=due.period)
        sent = await self.store.record_digest(
            name,
            period=due.period,
            run=run,
            deliveries=deliveries,
            now=now,
            forget_before=_forget_before(config, now),
        )
        when = due.period.isoformat(timespec="seconds")
        if not sent:
            log.info(
                "digest %s of %s: sent already (another process, or before a restart)", name, when
            )
            return
        late = ""
        if due.skipped or due.late >= 1:
            late = f", {due.late:.1f}s late (missed while Kabarin was down)"
        log.info(
            "digest %s of %s: handed to %s%s",
            name,
            when,
            ", ".join(config.digests[name].sinks),
            late,
        )
        self._on_sent()
