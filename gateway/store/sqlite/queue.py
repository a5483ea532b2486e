"""The delivery queue on SQLite: claim with a lease, finish, replay, and the sink switches.

Claiming is one writer job: the lanes with something due are read, `plan_claims` decides per
lane what goes and what is stale, and the leases are written, all in one transaction, so two
dispatchers on one file never lease the same delivery. The ordering rules themselves live in
`gateway.store.lanes`, shared by every backend; this module only feeds them rows.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta

from gateway.deliveries import Attempt, Claim, DeliveryFilter, DeliveryState, NewDelivery
from gateway.store.base import SinkCounts
from gateway.store.lanes import plan_claims
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import (
    contact_from_row,
    decode_event,
    delivery_from_row,
    opt_time,
    to_us,
)

__all__ = [
    "claim",
    "disable_sink",
    "disabled_sinks",
    "enable_sink",
    "finish",
    "next_due",
    "replay",
    "replay_one",
    "sink_counts",
]


def claim(
    conn: sqlite3.Connection, *, worker: str, now: datetime, limit: int, lease_seconds: float
) -> list[Claim]:
    now_us = to_us(now)
    until = to_us(now + timedelta(seconds=lease_seconds))
    candidates = conn.execute(sql.CLAIM_CANDIDATES, (now_us, limit * 4)).fetchall()
    claimed: list[str] = []
    superseded: list[str] = []
    for sink, order_id in candidates:
        if len(claimed) >= limit:
            break
        lane = conn.execute(sql.LANE, (sink, order_id)).fetchall()
        take, drop = plan_claims(lane, now_us)
        superseded.extend(drop)
        if take is not None:
            claimed.append(take)
    conn.executemany(sql.SUPERSEDE, [(now_us, i) for i in superseded])
    conn.executemany(sql.LEASE, [(worker, until, now_us, i) for i in claimed])
    result = []
    for delivery_id in claimed:
        delivery = delivery_from_row(conn.execute(sql.CLAIMED_DELIVERY, (delivery_id,)).fetchone())
        body = conn.execute(sql.EVENT_BODY, (delivery.event_id,)).fetchone()[0]
        c = conn.execute(sql.GET_CONTACT, (delivery.order_id,)).fetchone()
        contact = None if c is None else contact_from_row(c)
        result.append(Claim(delivery=delivery, event=decode_event(body), contact=contact))
    return result


def finish(
    conn: sqlite3.Connection,
    delivery_id: str,
    *,
    worker: str,
    attempt: Attempt | None,
    state: DeliveryState,
    next_attempt_at: datetime | None,
    error: str | None,
    count_attempt: bool,
    waiting: str | None,
    now: datetime,
    fallback: NewDelivery | None = None,
) -> bool:
    cur = conn.execute(
        sql.FINISH,
        (
            state,
            1 if count_attempt else 0,
            None if next_attempt_at is None else to_us(next_attempt_at),
            error,
            to_us(now),
            delivery_id,
            worker,
            waiting,
        ),
    )
    if cur.rowcount != 1:
        return False
    if attempt is not None:
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
    if fallback is not None and state in ("dead", "skipped"):
        now_us = to_us(now)
        conn.execute(
            sql.INSERT_FALLBACK,
            (
                fallback.id,
                fallback.route,
                fallback.sink,
                fallback.ordering,
                fallback.template,
                now_us,
                delivery_id,
            ),
        )
    return True


def replay(conn: sqlite3.Connection, query: DeliveryFilter, now: datetime) -> int:
    statement, params = sql.replay(query, to_us(now))
    return conn.execute(statement, params).rowcount


def replay_one(conn: sqlite3.Connection, delivery_id: str, now: datetime) -> bool:
    now_us = to_us(now)
    return conn.execute(sql.REPLAY_ONE, (now_us, now_us, delivery_id)).rowcount == 1


def next_due(conn: sqlite3.Connection) -> datetime | None:
    return opt_time(conn.execute(sql.NEXT_DUE).fetchone()[0])


def sink_counts(conn: sqlite3.Connection) -> list[SinkCounts]:
    return [
        SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2]))
        for r in conn.execute(sql.SINK_COUNTS).fetchall()
    ]


def disable_sink(conn: sqlite3.Connection, sink: str, reason: str, now: datetime) -> None:
    conn.execute(sql.DISABLE_SINK, (sink, reason, to_us(now)))


def enable_sink(conn: sqlite3.Connection, sink: str) -> bool:
    return conn.execute(sql.ENABLE_SINK, (sink,)).rowcount == 1


def disabled_sinks(conn: sqlite3.Connection) -> dict[str, str]:
    return {r[0]: r[1] for r in conn.execute(sql.DISABLED_SINKS).fetchall()}
