"""The push log as an operator sees it (a push's items a page at a time, with the events they
produced or repeated) and putting failed pushes back to the intake after a fix."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from gateway.events import Event, Status
from gateway.intake import decode_logged_part
from gateway.runtime import Runtime, build_intake
from gateway.store.roles import AdminReader, LoggedPush, PushQuery

__all__ = [
    "BODY_SHOWN",
    "PushEvent",
    "PushItem",
    "PushPage",
    "Reprocessed",
    "push_page",
    "reprocess_failed",
    "requeue_failed",
    "shown_body",
]


class PushEvent(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    status: Status
    order_id: str
    outcome: str
    """``produced`` (this push stored it) or ``repeated`` (an earlier push had)."""
    push_id: str | None
    """The push that stored it."""


class PushItem(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    """Its place among the push's package items, from 0."""
    item: dict[str, Any]
    """The package item as received."""


class PushPage(msgspec.Struct, frozen=True, kw_only=True):
    items: list[PushItem]
    events: list[PushEvent]
    """What this page's items became: the events they produced or repeated."""
    next_cursor: int | None
    """The index of the first item of the next page; ``None`` on the last one."""


BODY_SHOWN = 64 * 1024
"""Bodies up to this many bytes are shown whole beside their paged items; a larger one would
make every page as large as itself (a push at the size limit is megabytes)."""


def shown_body(push: LoggedPush) -> str | None:
    """The body as received when it is at most `BODY_SHOWN` bytes (bytes that are not UTF-8
    shown as U+FFFD), else ``None``."""
    if len(push.body) > BODY_SHOWN:
        return None
    return push.body.decode("utf-8", errors="replace")


async def push_page(rt: Runtime, push: LoggedPush, *, start: int = 0, limit: int) -> PushPage:
    """Package items ``[start, start + limit)`` of a push, with the events they yield, each
    said to be produced by it or repeated (no events while it is pending, or when it failed).

    Event ids are deterministic, so decoding the logged items again names them exactly; only
    the page's items are decoded (`decode_logged_part`), however many the push holds.
    """
    try:
        # off the event loop: finding a page's items reads through a body of megabytes
        zone = rt.shops.timezone_of(push.shop, rt.timezone)  # its naive times are its shop's
        part = await asyncio.to_thread(decode_logged_part, push, zone, start, start + limit)
    except Exception:  # the code changed since: the push's counts still say what it did
        return PushPage(items=[], events=[], next_cursor=None)
    items = [PushItem(index=start + i, item=item) for i, item in enumerate(part.items)]
    following = start + len(part.items)
    return PushPage(
        items=items,
        events=await _events(rt, push, part.normalised.events),
        next_cursor=following if part.items and following < part.total else None,
    )


async def _events(rt: Runtime, push: LoggedPush, events: list[Event]) -> list[PushEvent]:
    if push.state != "processed" or not events:
        return []
    stored = await rt.store.events_by_id([e.id for e in events])
    out: list[PushEvent] = []
    seen: set[str] = set()
    for e in events:
        if e.id not in stored or e.id in seen:
            continue
        seen.add(e.id)
        owner = stored[e.id][1]
        out.append(
            PushEvent(
                id=e.id,
                status=e.status,
                order_id=e.order_id,
                outcome="produced" if owner == push.id else "repeated",
                push_id=owner,
            )
        )
    return out


async def requeue_failed(
    rt: Runtime, *, since: datetime | None = None, ids: Sequence[str] = ()
) -> int:
    """Put the failed pushes received since `since` (among `ids`, when given) back to pending,
    for whichever intake looks first; how many. This process's intake is told at once."""
    count = await rt.store.requeue_pushes(state="failed", since=since, ids=ids)
    rt.backlog.pending += count
    rt.wake_intake()
    return count


@dataclass(frozen=True)
class Reprocessed:
    """What became of the failed pushes `reprocess_failed` took, read back from the store."""

    ids: list[str]
    """Every push taken, oldest first."""
    failed: dict[str, str | None] = field(default_factory=dict)
    """Those that failed again, with their error."""
    held: list[str] = field(default_factory=list)
    """Those still pending: another process's intake has them and did not finish in time."""

    @property
    def processed(self) -> int:
        return len(self.ids) - len(self.failed) - len(self.held)


REQUEUE_PAGE = 500
"""Failed pushes put back to pending by one store call."""
HELD_POLL = 0.2
"""Seconds between two looks at pushes another process's intake has taken."""


async def reprocess_failed(
    rt: Runtime,
    *,
    since: datetime | None = None,
    ids: Sequence[str] = (),
    wait: float,
    on_held: Callable[[int], None] = lambda held: None,
    shops: tuple[str, ...] | None = None,
) -> Reprocessed:
    """Failed pushes back to pending, then through an intake here and now: event ids are
    deterministic, so a server's intake taking some of them at the same time is harmless.

    The verdict is read back from the store, push by push: a push another process's intake
    took before this one could is waited for (up to `wait` seconds; `on_held` is told how many
    first), never counted unseen."""
    taken = await _failed_pushes(rt.store, since=since, only=ids, shops=shops)
    if not taken:
        return Reprocessed(ids=[])
    for start in range(0, len(taken), REQUEUE_PAGE):
        await requeue_failed(rt, ids=taken[start : start + REQUEUE_PAGE])
    intake = build_intake(rt)
    await intake.drain()
    states = {push_id: await _push_state(rt.store, push_id) for push_id in taken}
    held = [i for i, (state, _) in states.items() if state == "pending"]
    if held:
        on_held(len(held))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while held and loop.time() < deadline:
        await asyncio.sleep(min(HELD_POLL, max(0.0, deadline - loop.time())))
        await intake.drain()  # takes those whose holder let go of them (it stopped)
        for push_id in held:
            states[push_id] = await _push_state(rt.store, push_id)
        held = [i for i in held if states[i][0] == "pending"]
    failed = {i: error for i, (state, error) in states.items() if state == "failed"}
    return Reprocessed(ids=taken, failed=failed, held=held)


async def _failed_pushes(
    store: AdminReader,
    *,
    since: datetime | None,
    only: Sequence[str],
    shops: tuple[str, ...] | None = None,
) -> list[str]:
    """The ids of the failed pushes received since `since` (among `only`, when given; of
    `shops` only, when given)."""
    if only:
        found = [await store.get_push(push_id) for push_id in dict.fromkeys(only)]
        return [
            p.id
            for p in found
            if p is not None
            and p.state == "failed"
            and (since is None or p.received_at >= since)
            and (shops is None or p.shop in shops)
        ]
    ids: list[str] = []
    cursor: int | None = None
    while True:
        page = await store.list_pushes(
            PushQuery(
                state="failed", since=since, limit=REQUEUE_PAGE, before_seq=cursor, shops=shops
            )
        )
        ids.extend(p.id for p in page)
        if len(page) < REQUEUE_PAGE:
            return ids[::-1]  # oldest first, as the intake takes them
        cursor = page[-1].seq


async def _push_state(store: AdminReader, push_id: str) -> tuple[str, str | None]:
    """A push's state and error; one retention removed was processed (only those go)."""
    push = await store.get_push(push_id)
    return ("processed", None) if push is None else (push.state, push.error)
