"""The delivery queue on SQLite: claim with a lease, finish, replay, and the sink switches.

Claiming is one writer job of a few statements whatever the batch: customer sends that started
and lost their lease without an outcome end dead first (`sql.UNKNOWN_OUTCOMES`); one query
decides, over the lanes with something due, what goes and what is stale (`sql.CLAIM_PLAN`, the
rules of `gateway.store.lanes` as window functions); one UPDATE supersedes, one UPDATE ...
RETURNING leases, and one query each fetches the batch's events and contacts (and, for a
grouped route's messages, closes their groups and fetches their events: `group_events`). All in
one transaction, so two dispatchers on one file never lease the same delivery. `finish_batch`
likewise records a batch of outcomes with one UPDATE and one INSERT.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta

from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Claim,
    Claimed,
    Delivery,
    DeliveryFilter,
)
from gateway.store.roles import Finished, SinkCounts
from gateway.store.sqlite import groups, sql
from gateway.store.sqlite.rows import (
    contact_from_row,
    decode_event,
    delivery_from_row,
    encode_rows,
    opt_time,
    to_us,
)

__all__ = [
    "claim",
    "disable_sink",
    "disabled_sinks",
    "enable_sink",
    "finish_batch",
    "finish_one",
    "next_due",
    "renew",
    "replay",
    "replay_one",
    "sink_counts",
    "start",
]


def claim(
    conn: sqlite3.Connection, *, worker: str, now: datetime, limit: int, lease_seconds: float
) -> Claimed:
    now_us = to_us(now)
    unknown = _end_unknown(conn, now_us)
    plan = conn.execute(sql.CLAIM_PLAN, (now_us, limit * 4)).fetchall()
    stale = [r[0] for r in plan if not r[1]]
    taken = [r[0] for r in plan if r[1]][:limit]
    superseded: list[Delivery] = []
    if stale:
        superseded = list(
            map(delivery_from_row, conn.execute(sql.SUPERSEDE, (now_us, encode_rows(stale))))
        )
    if not taken:
        return Claimed(claims=[], superseded=superseded, unknown=unknown)
    until = to_us(now + timedelta(seconds=lease_seconds))
    leased = {
        d.id: d
        for d in map(
            delivery_from_row, conn.execute(sql.LEASE, (worker, until, now_us, encode_rows(taken)))
        )
    }
    deliveries = [leased[i] for i in taken]
    event_ids = encode_rows(sorted({d.event_id for d in deliveries}))
    events = {r[0]: decode_event(r[1]) for r in conn.execute(sql.CLAIMED_EVENTS, (event_ids,))}
    orders = encode_rows(sorted({(d.order_id, d.shop) for d in deliveries}))
    contacts = {
        (r[0], r[5]): contact_from_row(r) for r in conn.execute(sql.CLAIMED_CONTACTS, (orders,))
    }
    grouped = groups.close(conn, deliveries, now_us)
    claims = [
        Claim(
            delivery=d,
            event=group.events[0] if (group := grouped.get(d.id)) else events[d.event_id],
            contact=contacts.get((d.order_id, d.shop)),
            group=group,
        )
        for d in deliveries
    ]
    return Claimed(claims=claims, superseded=superseded, unknown=unknown)


def _end_unknown(conn: sqlite3.Connection, now_us: int) -> list[Delivery]:
    """Customer sends whose lease ran out after they started, with no outcome: dead, with an
    attempt of outcome ``unknown`` from when the send started."""
    started = conn.execute(sql.UNKNOWN_OUTCOMES, (now_us,)).fetchall()
    if not started:
        return []
    ended = list(
        map(
            delivery_from_row,
            conn.execute(
                sql.END_UNKNOWN, (now_us, OUTCOME_UNKNOWN, encode_rows([r[0] for r in started]))
            ),
        )
    )
    attempts = [
        (i, at, max(0.0, (now_us - at) / 1000), "unknown", None, OUTCOME_UNKNOWN)
        for i, at in started
    ]
    conn.execute(sql.INSERT_ATTEMPTS, (encode_rows(attempts),))
    return ended


def start(
    conn: sqlite3.Connection, delivery_ids: Sequence[str], *, worker: str, now: datetime
) -> set[str]:
    rows = conn.execute(sql.START, (to_us(now), encode_rows(list(delivery_ids)), worker))
    return {r[0] for r in rows}


def renew(
    conn: sqlite3.Connection,
    delivery_ids: Sequence[str],
    *,
    worker: str,
    now: datetime,
    lease_seconds: float,
) -> set[str]:
    until = to_us(now + timedelta(seconds=lease_seconds))
    rows = conn.execute(sql.RENEW, (until, encode_rows(list(delivery_ids)), worker))
    return {r[0] for r in rows}


def finish_one(conn: sqlite3.Connection, outcome: Finished, *, worker: str) -> bool:
    cur = conn.execute(
        sql.FINISH,
        (
            outcome.state,
            1 if outcome.count_attempt else 0,
            None if outcome.next_attempt_at is None else to_us(outcome.next_attempt_at),
            outcome.error,
            to_us(outcome.now),
            outcome.delivery_id,
            worker,
            outcome.waiting,
        ),
    )
    if cur.rowcount != 1:
        return False
    if (attempt := outcome.attempt) is not None:
        conn.execute(
            sql.INSERT_ATTEMPT,
            (
                attempt.delivery_id,
                to_us(attempt.started_at),
                attempt.duration_ms,
                attempt.outcome,
                attempt.status_code,
                attempt.error,
            ),
        )
    if (fallback := outcome.fallback) is not None and outcome.state in ("dead", "skipped"):
        now_us = to_us(outcome.now)
        conn.execute(
            sql.INSERT_FALLBACK,
            (
                fallback.id,
                fallback.route,
                fallback.sink,
                fallback.ordering,
                fallback.template,
                now_us,
                outcome.delivery_id,
            ),
        )
    return True


def finish_batch(
    conn: sqlite3.Connection, outcomes: Sequence[Finished], *, worker: str
) -> list[bool]:
    """`finish_one` for each outcome (each delivery once), with one UPDATE and one INSERT."""
    ids = [o.delivery_id for o in outcomes]
    rows = [
        (
            o.delivery_id,
            o.state,
            1 if o.count_attempt else 0,
            None if o.next_attempt_at is None else to_us(o.next_attempt_at),
            o.error,
            to_us(o.now),
            o.waiting,
        )
        for o in outcomes
    ]
    kept = {r[0] for r in conn.execute(sql.FINISH_MANY, (encode_rows(rows), worker))}
    attempts = [
        (
            a.delivery_id,
            to_us(a.started_at),
            a.duration_ms,
            a.outcome,
            a.status_code,
            a.error,
        )
        for o in outcomes
        if (a := o.attempt) is not None and o.delivery_id in kept
    ]
    if attempts:
        conn.execute(sql.INSERT_ATTEMPTS, (encode_rows(attempts),))
    fallbacks = [
        (f.id, f.route, f.sink, f.ordering, f.template, to_us(o.now), o.delivery_id)
        for o in outcomes
        if (f := o.fallback) is not None
        and o.state in ("dead", "skipped")
        and o.delivery_id in kept
    ]
    if fallbacks:  # rare (a route with a fallback sink): one row each
        conn.executemany(sql.INSERT_FALLBACK, fallbacks)
    return [i in kept for i in ids]


def replay(conn: sqlite3.Connection, query: DeliveryFilter, now: datetime) -> int:
    statement, params = sql.replay(query, now)
    return conn.execute(statement, params).rowcount


def replay_one(conn: sqlite3.Connection, delivery_id: str, now: datetime) -> bool:
    now_us = to_us(now)
    return conn.execute(sql.REPLAY_ONE, (now_us, now_us, delivery_id)).rowcount == 1


def next_due(conn: sqlite3.Connection) -> datetime | None:
    return opt_time(conn.execute(sql.NEXT_DUE).fetchone()[0])


def sink_counts(conn: sqlite3.Connection, by_shop: bool) -> list[SinkCounts]:
    if by_shop:
        rows = conn.execute(sql.SHOP_SINK_COUNTS).fetchall()
        return [SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2]), shop=r[3]) for r in rows]
    return [
        SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2]))
        for r in conn.execute(sql.SINK_COUNTS).fetchall()
    ]


def disable_sink(conn: sqlite3.Connection, sink: str, reason: str, now: datetime) -> None:
    conn.execute(sql.DISABLE_SINK, (sink, reason, to_us(now)))


def enable_sink(conn: sqlite3.Connection, sink: str) -> bool:
    return conn.execute(sql.ENABLE_SINK, (sink,)).rowcount == 1


def release_sink(conn: sqlite3.Connection, sink: str, now: datetime) -> int:
    return conn.execute(sql.RELEASE_SINK, (sink, to_us(now))).rowcount


def disabled_sinks(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute(sql.DISABLED_SINKS).fetchall()}
