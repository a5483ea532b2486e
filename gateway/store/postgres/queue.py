"""The delivery queue on PostgreSQL: claim with a lease, finish, replay, and the sink switches.

Replicas claim side by side: ``FOR UPDATE SKIP LOCKED`` on the due rows, and a
transaction-scoped advisory lock per lane (sink, order), so one claimer at a time decides a
lane and at most one of its deliveries is in flight across replicas. What a lane's claim
decides is `gateway.store.lanes.plan_claims`, fed the lane's rows. A grouped route's message
closes its group as it is leased, and comes with its events (`groups.close`). Sinks switched
off live in ``sink_state``, read by every replica's claim. Whatever makes deliveries due (a
replay, a sink enabled or released) notifies every replica in its commit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Claim,
    Claimed,
    Delivery,
    DeliveryFilter,
    NewDelivery,
)
from gateway.store.lanes import plan_claims
from gateway.store.postgres import groups, sql
from gateway.store.postgres.rows import (
    Conn,
    contact_from_row,
    decode_event,
    delivery_from_row,
    text,
    to_us,
)
from gateway.store.roles import Finished, SinkCounts

__all__ = [
    "claim",
    "disable_sink",
    "disabled_sinks",
    "enable_sink",
    "finish_batch",
    "finish_one",
    "next_due",
    "release_sink",
    "renew",
    "replay",
    "replay_one",
    "sink_counts",
    "start",
]


async def claim(
    conn: Conn, *, worker: str, now: datetime, limit: int, lease_seconds: float
) -> Claimed:
    """One claim (a transaction, the caller's)."""
    ended = await (
        await conn.execute(sql.UNKNOWN_OUTCOMES, {"now": now, "reason": OUTCOME_UNKNOWN})
    ).fetchall()
    unknown = [delivery_from_row(r[1:]) for r in ended]
    due = await (
        await conn.execute(sql.CLAIM_CANDIDATES, {"now": now, "rows": limit * 4})
    ).fetchall()
    # A lane is (sink, order id, shop): two shops' orders of one id are two lanes.
    lanes = list(dict.fromkeys((r[0], r[1], r[2]) for r in due))
    if not lanes:
        return Claimed(claims=[], unknown=unknown)
    held_rows = await (await conn.execute(sql.LOCK_LANES, _columns(lanes))).fetchall()
    held = {(r[0], r[1], r[2]) for r in held_rows}
    lanes = [lane for lane in lanes if lane in held]
    if not lanes:
        return Claimed(claims=[], unknown=unknown)
    rows = await (await conn.execute(sql.LANES, _columns(lanes))).fetchall()
    by_lane: dict[tuple[str, str, str], list[tuple[Any, ...]]] = {}
    for r in rows:
        # plan_claims compares times as integers, as the SQLite rows hold them.
        by_lane.setdefault((r[0], r[1], r[2]), []).append(
            (
                *(r[3], r[4], to_us(r[5]), r[6], to_us(r[7])),
                *(None if r[8] is None else to_us(r[8]), r[9], r[10], r[11]),
            )
        )
    now_us = to_us(now)
    claimed: list[str] = []
    superseded: list[str] = []
    for lane in lanes:
        if len(claimed) >= limit:
            break
        take, drop = plan_claims(by_lane.get(lane, []), now_us)
        superseded.extend(drop)
        if take is not None:
            claimed.append(take)
    stale: list[Delivery] = []
    if superseded:
        rows = await (await conn.execute(sql.SUPERSEDE, {"now": now, "ids": superseded})).fetchall()
        stale = [delivery_from_row(r) for r in rows]
    if not claimed:
        return Claimed(claims=[], superseded=stale, unknown=unknown)
    until = now + timedelta(seconds=lease_seconds)
    leased = await (
        await conn.execute(
            sql.LEASE, {"worker": worker, "until": until, "now": now, "ids": claimed}
        )
    ).fetchall()
    position = {delivery_id: i for i, delivery_id in enumerate(claimed)}
    leased.sort(key=lambda r: position[r[0]])
    deliveries = [delivery_from_row(r[:21]) for r in leased]
    grouped = await groups.close(conn, deliveries, now)
    claims = [
        Claim(
            delivery=d,
            event=group.events[0] if (group := grouped.get(d.id)) else decode_event(r[21]),
            contact=None if r[22] is None else contact_from_row(r[22:28]),
            group=group,
        )
        for d, r in zip(deliveries, leased, strict=True)
    ]
    return Claimed(claims=claims, superseded=stale, unknown=unknown)


def _columns(lanes: Sequence[tuple[str, str, str]]) -> tuple[list[str], list[str], list[str]]:
    """Lanes as the three arrays the lane statements unnest."""
    return [s for s, _, _ in lanes], [o for _, o, _ in lanes], [h for _, _, h in lanes]


async def start(conn: Conn, delivery_ids: Sequence[str], *, worker: str, now: datetime) -> set[str]:
    params = {"now": now, "ids": list(delivery_ids), "worker": worker}
    rows = await (await conn.execute(sql.START, params)).fetchall()
    return {r[0] for r in rows}


async def renew(
    conn: Conn, delivery_ids: Sequence[str], *, worker: str, now: datetime, lease_seconds: float
) -> set[str]:
    until = now + timedelta(seconds=lease_seconds)
    params = {"until": until, "ids": list(delivery_ids), "worker": worker}
    rows = await (await conn.execute(sql.RENEW, params)).fetchall()
    return {r[0] for r in rows}


async def finish_one(conn: Conn, outcome: Finished, *, worker: str) -> bool:
    row = await (await conn.execute(sql.FINISH, _finish_params(outcome, worker))).fetchone()
    return row is not None and int(row[0]) == 1


async def finish_batch(conn: Conn, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
    """`finish_one` for each outcome (a transaction, the caller's)."""
    async with conn.cursor() as cur:
        await cur.executemany(
            sql.FINISH, [_finish_params(o, worker) for o in outcomes], returning=True
        )
        done: list[bool] = []
        while True:
            row = await cur.fetchone()
            done.append(row is not None and int(row[0]) == 1)
            if not cur.nextset():
                break
    return done


def _finish_params(outcome: Finished, worker: str) -> dict[str, Any]:
    attempt = outcome.attempt
    fallback: NewDelivery | None = outcome.fallback
    return {
        "id": outcome.delivery_id,
        "worker": worker,
        "state": outcome.state,
        "count": 1 if outcome.count_attempt else 0,
        "next": outcome.next_attempt_at,
        "error": text(outcome.error),
        "waiting": outcome.waiting,
        "now": outcome.now,
        "a_delivery": None if attempt is None else attempt.delivery_id,
        "a_started": None if attempt is None else attempt.started_at,
        "a_ms": None if attempt is None else attempt.duration_ms,
        "a_outcome": None if attempt is None else attempt.outcome,
        "a_code": None if attempt is None else attempt.status_code,
        "a_error": None if attempt is None else text(attempt.error),
        "f_id": None if fallback is None else fallback.id,
        "f_route": None if fallback is None else fallback.route,
        "f_sink": None if fallback is None else fallback.sink,
        "f_ordering": None if fallback is None else fallback.ordering,
        "f_template": None if fallback is None else fallback.template,
        "channel": sql.DELIVERIES_CHANNEL,
    }


async def replay(conn: Conn, query: DeliveryFilter, now: datetime) -> int:
    """(A transaction, the caller's, as for every requeue: the notice goes with the commit.)"""
    statement, params = sql.replay(query, now)
    return await _requeue(conn, statement, params)


async def replay_one(conn: Conn, delivery_id: str, now: datetime) -> bool:
    return await _requeue(conn, sql.REPLAY_ONE, [now, now, delivery_id]) == 1


async def release_sink(conn: Conn, sink: str, now: datetime) -> int:
    return await _requeue(conn, sql.RELEASE_SINK, {"sink": sink, "now": now})


async def _requeue(conn: Conn, statement: str, params: Sequence[Any] | Mapping[str, Any]) -> int:
    """Make deliveries due, and wake every replica's dispatcher when there are any."""
    count = (await conn.execute(statement, params)).rowcount
    if count:
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
    return count


async def next_due(conn: Conn) -> datetime | None:
    row = await (await conn.execute(sql.NEXT_DUE)).fetchone()
    return None if row is None else row[0]


async def sink_counts(conn: Conn, by_shop: bool) -> list[SinkCounts]:
    if by_shop:
        rows = await (await conn.execute(sql.SHOP_SINK_COUNTS)).fetchall()
        return [SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2]), shop=r[3]) for r in rows]
    rows = await (await conn.execute(sql.SINK_COUNTS)).fetchall()
    return [SinkCounts(sink=r[0], pending=int(r[1]), dead=int(r[2])) for r in rows]


async def disable_sink(conn: Conn, sink: str, reason: str, now: datetime) -> None:
    await conn.execute(sql.DISABLE_SINK, (sink, text(reason), now))


async def enable_sink(conn: Conn, sink: str) -> bool:
    """(A transaction, the caller's.)"""
    enabled = (await conn.execute(sql.ENABLE_SINK, (sink,))).rowcount == 1
    if enabled:  # its deliveries can be claimed again
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
    return enabled


async def disabled_sinks(conn: Conn) -> dict[str, str]:
    rows = await (await conn.execute(sql.DISABLED_SINKS)).fetchall()
    return {r[0]: r[1] for r in rows}
