"""Grouped routes' groups on SQLite (`gateway.delivery.grouping`): the intake puts events in
their group's message, the claim closes a message and reads its events, people read the rest.

Every write here runs inside the intake's or the claim's writer job, so in their commit: one
writer at a time is what makes a group's message take an event or be closed, never both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

import msgspec

from gateway.delivery.grouping import GROUP_PREFIX, GroupState, plan_groups
from gateway.delivery.model import Delivery, Group, NewDelivery
from gateway.events import Event
from gateway.store.roles import WaitingGroup
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import decode_event, encode_rows, from_us, opt_time, to_us

__all__ = ["close", "group_of", "record", "waiting_groups"]

_decode_key = msgspec.json.Decoder(dict[str, str | None]).decode


def record(
    conn: sqlite3.Connection,
    grouped: Sequence[NewDelivery],
    occurred: dict[str, int],
    now: datetime,
) -> None:
    """Put each grouped delivery's event in its group's message (`plan_groups`): the one the
    group collects, else a new one, pending until its time comes. `occurred`: event id → its
    ``occurred_at`` as stored."""
    now_us = to_us(now)
    ids = sorted({d.group.id for d in grouped if d.group is not None})
    state = {
        r[0]: GroupState(r[1], opt_time(r[2]))
        for r in conn.execute(sql.GROUP_STATES, (encode_rows(ids),))
    }
    plan = plan_groups(grouped, state, now)
    if plan.opened:
        messages = [
            (d.id, d.event_id, d.route, d.sink, g.id, occurred[d.event_id], d.template, to_us(due))
            for d, g, due in plan.opened
        ]
        conn.execute(sql.INSERT_GROUP_MESSAGES, (encode_rows(messages), now_us))
        rows = [
            (g.id, d.route, d.sink, msgspec.json.encode(g.key).decode(), d.id)
            for d, g, _ in plan.opened
        ]
        conn.execute(sql.OPEN_GROUPS, (encode_rows(rows), now_us))
    conn.execute(sql.INSERT_GROUP_EVENTS, (encode_rows(plan.members),))


def close(
    conn: sqlite3.Connection, deliveries: Sequence[Delivery], now_us: int
) -> dict[str, Group]:
    """The grouped messages among the `deliveries` just leased (on a group's lane): their
    groups stop collecting them (from the first claim on, an event goes in the next message),
    and the events each carries, by delivery id."""
    grouped = [d for d in deliveries if d.order_id.startswith(GROUP_PREFIX)]
    if not grouped:
        return {}
    conn.execute(sql.CLOSE_GROUPS, (now_us, encode_rows([d.id for d in grouped])))
    return _events(conn, {d.id: d.fallback_of or d.id for d in grouped})


def _events(conn: sqlite3.Connection, source: dict[str, str]) -> dict[str, Group]:
    """`source`: delivery id → the message whose events it carries (a fallback: the one it
    replaces); each delivery's `Group`, for those that are a group's."""
    found: dict[str, tuple[str, list[Event]]] = {}
    messages = encode_rows(sorted(set(source.values())))
    for message, key, body in conn.execute(sql.MESSAGE_EVENTS, (messages,)):
        found.setdefault(message, (key, []))[1].append(decode_event(body))
    return {
        delivery: Group(key=_decode_key(found[message][0]), events=found[message][1])
        for delivery, message in source.items()
        if message in found
    }


def group_of(conn: sqlite3.Connection, delivery_id: str) -> Group | None:
    row = conn.execute(sql.GROUP_SOURCE, (delivery_id,)).fetchone()
    if row is None or not row[1].startswith(GROUP_PREFIX):
        return None
    return _events(conn, {delivery_id: row[0]}).get(delivery_id)


def waiting_groups(conn: sqlite3.Connection) -> list[WaitingGroup]:
    return [
        WaitingGroup(
            id=r[0],
            route=r[1],
            sink=r[2],
            key=_decode_key(r[3]),
            message_id=r[4],
            due_at=from_us(r[5]),
            events=int(r[6]),
        )
        for r in conn.execute(sql.WAITING_GROUPS).fetchall()
    ]
