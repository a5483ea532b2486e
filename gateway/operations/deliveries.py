"""Deliveries as an operator sees them (why a pending one waits) and replaying them: one, or
the dead ones a filter names."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from gateway.delivery.model import Delivery, DeliveryFilter
from gateway.errors import NotReplayable
from gateway.operations.sinks import sink_filter_matched

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = [
    "ROUTE_REPLAY_LIMIT",
    "find_deliveries",
    "replay_dead",
    "replay_delivery",
    "with_waiting",
]

ROUTE_REPLAY_LIMIT = 10_000
"""Dead deliveries replayed at most by one replay narrowed to a route (the store has no route
filter: they are picked from a bounded page)."""


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


async def find_deliveries(
    rt: Runtime, query: DeliveryFilter, *, route: str | None = None
) -> list[Delivery]:
    """The deliveries `query` names, newest first, at most ``query.limit``. The store has no
    route filter: a `route` narrows a page ten times as large here."""
    if route is None:
        return await rt.store.list_deliveries(query)
    found = await rt.store.list_deliveries(msgspec.structs.replace(query, limit=query.limit * 10))
    return [d for d in found if d.route == route][: query.limit]


async def replay_delivery(rt: Runtime, delivery_id: str) -> None:
    """Put one dead, skipped or superseded delivery back to pending with a fresh schedule, and
    wake the dispatcher; `NotReplayable` says why not (missing, or in which state)."""
    if not await rt.store.replay_one(delivery_id, now=datetime.now(UTC)):
        found = await rt.store.get_delivery(delivery_id)
        raise NotReplayable(delivery_id, found[0].state if found is not None else None)
    rt.wake_dispatcher()


async def replay_dead(
    rt: Runtime,
    *,
    sink: str | None = None,
    order_id: str | None = None,
    since: datetime | None = None,
    route: str | None = None,
    shops: tuple[str, ...] | None = None,
) -> int:
    """Put the dead deliveries the filters name (of `shops` only, when given) back to pending
    with a fresh schedule, and wake the dispatcher; how many. A `sink` that matched nothing
    because it is not configured is `UnknownSink`; a `route` replays at most
    `ROUTE_REPLAY_LIMIT`, newest first."""
    now = datetime.now(UTC)
    dead = DeliveryFilter(state="dead", sink=sink, order_id=order_id, since=since, shops=shops)
    if route is None:
        count = await rt.store.replay(dead, now=now)
    else:
        count = 0
        narrowed = msgspec.structs.replace(dead, limit=ROUTE_REPLAY_LIMIT)
        for d in await find_deliveries(rt, narrowed, route=route):
            count += await rt.store.replay_one(d.id, now=now)
    sink_filter_matched(rt.config, sink, count)
    rt.wake_dispatcher()
    return count
