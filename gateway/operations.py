"""What an operator sees and does, the same through the admin API, the dashboard and the command
line: the sinks with their queue, circuit and switch; why a pending delivery waits; a push's
items a page at a time, with the events they produced or repeated; the rejected bodies, and
replaying one through the push path.

Nothing here knows HTTP: the admin API answers these structs as JSON, the dashboard renders
them, and ``kabarin rejected`` prints them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.delivery.model import Delivery
from gateway.events import Event, Status
from gateway.intake import decode_logged_part
from gateway.receiver import accept_push
from gateway.store.roles import LoggedPush, StoredRejected

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = [
    "BODY_SHOWN",
    "PushEvent",
    "PushItem",
    "PushPage",
    "RejectedItem",
    "RejectedReplay",
    "SinkStatus",
    "push_page",
    "rejected_item",
    "replay_rejected",
    "shown_body",
    "sink_statuses",
    "with_waiting",
]


class SinkStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    pending: int
    dead: int
    disabled: str | None
    """Why the sink is switched off (e.g. the peer answered 410 Gone), if it is."""
    circuit: str


async def sink_statuses(rt: Runtime) -> list[SinkStatus]:
    counts = {c.sink: c for c in await rt.store.sink_counts()}
    disabled = await rt.store.disabled_sinks()
    items = []
    for name, config in rt.config.sinks.items():
        c = counts.get(name)
        items.append(
            SinkStatus(
                name=name,
                type=str(type(config).__struct_config__.tag),
                pending=c.pending if c else 0,
                dead=c.dead if c else 0,
                disabled=disabled.get(name),
                circuit=rt.circuit_state(name),
            )
        )
    return items


async def with_waiting(rt: Runtime, deliveries: list[Delivery]) -> list[Delivery]:
    """Each unfinished delivery with why it waits: what the dispatcher recorded, or else what
    its row, the switched-off sinks and the circuit breakers say."""
    unfinished = any(d.state in ("pending", "in_flight") for d in deliveries)
    disabled = await rt.store.disabled_sinks() if unfinished else {}
    now = datetime.now(UTC)
    return [
        msgspec.structs.replace(
            d,
            waiting=(d.waiting if d.state == "pending" else None) or _waiting(rt, d, disabled, now),
        )
        for d in deliveries
    ]


def _waiting(rt: Runtime, d: Delivery, disabled: dict[str, str], now: datetime) -> str | None:
    if d.state == "in_flight":
        until = f" (leased until {d.lease_until.isoformat()})" if d.lease_until else ""
        return f"being sent{until}"
    if d.state != "pending":
        return None
    if d.sink in disabled:
        return f"sink switched off: {disabled[d.sink]}"
    after = f" (last error: {d.last_error})" if d.last_error else ""
    if rt.circuit_state(d.sink) == "open":
        return f"circuit open until the sink's cooldown ends; next attempt at {_at(d)}{after}"
    if d.next_attempt_at > now:
        return f"next attempt at {_at(d)}{after}"
    return f"due since {_at(d)}: waiting for the dispatcher or an older delivery of the order"


def _at(d: Delivery) -> str:
    return d.next_attempt_at.isoformat().replace("+00:00", "Z")


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
        part = await asyncio.to_thread(decode_logged_part, push, rt.timezone, start, start + limit)
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


class RejectedItem(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    received_at: datetime
    reason: str
    content_type: str | None
    body: str
    """The body as received (bytes that are not UTF-8 shown as U+FFFD)."""


class RejectedReplay(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    """``accepted``: the body is a push now, in the push log, and its rejected row removed;
    ``rejected``: still not a push, the row keeps the new reason; ``store_unavailable``."""
    status_code: int
    """What the push endpoint answers for this body now."""
    answer: dict[str, Any]
    """The push endpoint's answer (``{"push_id", "items"}`` or ``{"error", "detail"}``)."""


def rejected_item(r: StoredRejected) -> RejectedItem:
    return RejectedItem(
        id=r.id,
        received_at=r.received_at,
        reason=r.reason,
        content_type=r.content_type,
        body=r.body.decode("utf-8", errors="replace"),
    )


async def replay_rejected(rt: Runtime, rejected: StoredRejected) -> RejectedReplay:
    """Run a kept body through the push path again (`accept_push`, as the receiver does).

    Accepted: its events are stored and the rejected row is removed. Still not a push: the same
    row is updated with the new reason, not kept twice.
    """
    status, body = await accept_push(
        rt, rejected.body, rejected.content_type, rejected_id=rejected.id, shop=rejected.shop
    )
    if status == 200:
        await rt.store.delete_rejected(rejected.id)
        outcome = "accepted"
    else:
        outcome = "rejected" if status == 400 else "store_unavailable"
    answer: dict[str, Any] = msgspec.json.decode(body)
    return RejectedReplay(outcome=outcome, status_code=status, answer=answer)
