"""Grouped routes' groups on PostgreSQL (`gateway.delivery.grouping`): the intake puts events
in their group's message, the claim closes a message and reads its events, people read the rest.

Replicas share groups through the group's row: the intake locks the rows of its batch's groups
(`sql.LOCK_GROUPS`, in id order) before it reads which message each collects, and the claim
locks a message's group (`sql.CLOSE_GROUPS`, in id order too) before it reads the message's
events. So an event goes in a message either before the claim that closes it reads it, or,
once that claim has committed, in the group's next message: never in none, never in two.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from gateway.delivery.grouping import GROUP_PREFIX, GroupState, plan_groups
from gateway.delivery.model import Delivery, Group, GroupRef, NewDelivery
from gateway.events import Event
from gateway.store.postgres import sql
from gateway.store.postgres.rows import Conn, decode_event
from gateway.store.roles import WaitingGroup

__all__ = ["close", "group_of", "record", "waiting_groups"]

_decode_key = msgspec.json.Decoder(dict[str, str | None]).decode


async def record(
    conn: Conn, grouped: Sequence[NewDelivery], events: dict[str, Event], now: datetime
) -> bool:
    """Put each grouped delivery's event in its group's message (`plan_groups`): the one the
    group collects, else a new one, pending until its time comes (a transaction, the
    caller's). Whether a message was opened (the dispatchers should look at when it is due)."""
    refs: dict[str, tuple[NewDelivery, GroupRef]] = {}
    for d in grouped:
        if d.group is not None:
            refs.setdefault(d.group.id, (d, d.group))
    ids = sorted(refs)
    rows = await (
        await conn.execute(
            sql.LOCK_GROUPS,
            (
                ids,
                [refs[i][0].route for i in ids],
                [refs[i][0].sink for i in ids],
                [msgspec.json.encode(refs[i][1].key).decode() for i in ids],
                now,
            ),
        )
    ).fetchall()
    state = {r[0]: GroupState(r[1], r[2]) for r in rows}
    plan = plan_groups(grouped, state, now)
    if plan.opened:
        opened = plan.opened
        await conn.execute(
            sql.INSERT_GROUP_MESSAGES,
            (
                [d.id for d, _, _ in opened],
                [d.event_id for d, _, _ in opened],
                [d.route for d, _, _ in opened],
                [d.sink for d, _, _ in opened],
                [g.id for _, g, _ in opened],
                [events[d.event_id].occurred_at for d, _, _ in opened],
                [d.template for d, _, _ in opened],
                [due for _, _, due in opened],
                now,
            ),
        )
        await conn.execute(
            sql.OPEN_GROUPS, ([g.id for _, g, _ in opened], [d.id for d, _, _ in opened])
        )
    members = plan.members
    await conn.execute(
        sql.INSERT_GROUP_EVENTS,
        (
            [m.message_id for m in members],
            [m.group_id for m in members],
            [m.event_id for m in members],
        ),
    )
    return bool(plan.opened)


async def close(conn: Conn, deliveries: Sequence[Delivery], now: datetime) -> dict[str, Group]:
    """The grouped messages among the `deliveries` just leased (on a group's lane): their
    groups stop collecting them, then the events each carries, by delivery id."""
    grouped = [d for d in deliveries if d.order_id.startswith(GROUP_PREFIX)]
    if not grouped:
        return {}
    await conn.execute(sql.CLOSE_GROUPS, {"now": now, "ids": [d.id for d in grouped]})
    return await _events(conn, {d.id: d.fallback_of or d.id for d in grouped})


async def _events(conn: Conn, source: dict[str, str]) -> dict[str, Group]:
    """`source`: delivery id → the message whose events it carries (a fallback: the one it
    replaces); each delivery's `Group`, for those that are a group's."""
    rows = await (
        await conn.execute(sql.MESSAGE_EVENTS, (sorted(set(source.values())),))
    ).fetchall()
    found: dict[str, tuple[str, list[Event]]] = {}
    for message, key, body in rows:
        found.setdefault(message, (key, []))[1].append(decode_event(body))
    return {
        delivery: Group(key=_decode_key(found[message][0]), events=found[message][1])
        for delivery, message in source.items()
        if message in found
    }


async def group_of(conn: Conn, delivery_id: str) -> Group | None:
    row = await (await conn.execute(sql.GROUP_SOURCE, (delivery_id,))).fetchone()
    if row is None or not row[1].startswith(GROUP_PREFIX):
        return None
    return (await _events(conn, {delivery_id: row[0]})).get(delivery_id)


async def waiting_groups(conn: Conn) -> list[WaitingGroup]:
    rows = await (await conn.execute(sql.WAITING_GROUPS)).fetchall()
    return [
        WaitingGroup(
            id=r[0],
            route=r[1],
            sink=r[2],
            key=_decode_key(r[3]),
            message_id=r[4],
            due_at=r[5],
            events=int(r[6]),
        )
        for r in rows
    ]
