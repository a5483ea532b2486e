"""Digests on PostgreSQL (`gateway.store.roles.DigestStore`): a window's counts, read through
the ``events_received`` and ``deliveries_dead`` indexes in one snapshot, and a period claimed
with its deliveries in one transaction. Replicas racing for one period: the upsert's row lock
makes the second wait for the first, then find the period taken and keep nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import msgspec

from gateway.delivery.model import NewDelivery
from gateway.events import Status
from gateway.store.digests import (
    TROUBLE_STATUSES,
    DigestRun,
    ReasonCount,
    StuckParcel,
    WindowCounts,
)
from gateway.store.postgres import sql
from gateway.store.postgres.rows import Conn

__all__ = ["last_digest", "record_digest", "window_counts"]

_TROUBLES = [s.value for s in TROUBLE_STATUSES]

# -- its statements ---------------------------------------------------------------------------
DIGEST_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
_DIGEST_WINDOW = (
    "FROM events WHERE received_at >= %(start)s::timestamptz AND received_at < %(end)s::timestamptz"
)
DIGEST_BY_STATUS = f"SELECT status, count(*) {_DIGEST_WINDOW} GROUP BY status"
DIGEST_BY_COURIER = (
    "SELECT coalesce(nullif(body -> 'details' ->> 'service', ''),"
    f" nullif(body -> 'raw' ->> 'service', ''), '') AS courier, count(*) {_DIGEST_WINDOW}"
    " GROUP BY courier ORDER BY count(*) DESC, courier"
)
DIGEST_STUCK = (
    "SELECT order_id, body ->> 'awb', body ->> 'raw_status', received_at, body ->> 'reason'"
    f" {_DIGEST_WINDOW} AND status = 'stuck' ORDER BY received_at DESC LIMIT %(limit)s"
)
DIGEST_STUCK_TOTAL = f"SELECT count(*) {_DIGEST_WINDOW} AND status = 'stuck'"
DIGEST_TROUBLES = (
    f"SELECT status, body ->> 'reason' AS reason, count(*) {_DIGEST_WINDOW}"
    " AND status = ANY(%(troubles)s::text[])"
    " GROUP BY status, reason ORDER BY count(*) DESC, status, reason LIMIT %(limit)s"
)
DIGEST_DEAD = (
    "SELECT sink, count(*) FROM deliveries WHERE state = 'dead'"
    " AND updated_at >= %(start)s::timestamptz AND updated_at < %(end)s::timestamptz"
    " GROUP BY sink ORDER BY sink"
)
LAST_DIGEST = "SELECT last_period FROM digests WHERE name = %s"
CLAIM_DIGEST_PERIOD = (
    "INSERT INTO digests (name, last_period, updated_at)"
    " VALUES (%s::text, %s::timestamptz, %s::timestamptz)"
    " ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period,"
    " updated_at = excluded.updated_at WHERE digests.last_period < excluded.last_period"
    " RETURNING name"
)
"""Claims the period only past the one recorded: a second claim of it returns no row."""
INSERT_DIGEST_RUN = (
    "INSERT INTO digest_runs (id, digest, order_id, period, created_at, body)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
FORGET_DIGEST_RUNS = (
    "DELETE FROM digest_runs WHERE id IN (SELECT r.id FROM digest_runs AS r"
    " WHERE r.digest = %s AND r.created_at < %s AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
    "  WHERE d.order_id = r.order_id AND d.event_id = r.id) LIMIT 100)"
)
"""Old runs none of whose deliveries is left (retention removed them)."""
_encode = msgspec.json.Encoder().encode


async def window_counts(conn: Conn, start: datetime, end: datetime, limit: int) -> WindowCounts:
    """(A transaction, the caller's: one snapshot for every count.)"""
    await conn.execute(DIGEST_SNAPSHOT)
    params = {"start": start, "end": end, "limit": limit, "troubles": _TROUBLES}

    async def rows(query: str) -> list[tuple[object, ...]]:
        return list(await (await conn.execute(query, params)).fetchall())

    by_status = {Status(str(r[0])): int(r[1]) for r in await rows(DIGEST_BY_STATUS)}  # type: ignore[call-overload]
    by_courier = {str(r[0]): int(r[1]) for r in await rows(DIGEST_BY_COURIER)}  # type: ignore[call-overload]
    stuck = [
        StuckParcel(
            order_id=str(r[0]),
            awb=None if r[1] is None else str(r[1]),
            stuck_in=None if r[2] is None else str(r[2]),
            at=r[3],  # type: ignore[arg-type]
            reason=None if r[4] is None else str(r[4]),
        )
        for r in await rows(DIGEST_STUCK)
    ]
    (total,) = (await rows(DIGEST_STUCK_TOTAL))[0]
    troubles = [
        ReasonCount(
            status=Status(str(r[0])),
            reason=None if r[1] is None else str(r[1]),
            count=int(r[2]),  # type: ignore[call-overload]
        )
        for r in await rows(DIGEST_TROUBLES)
    ]
    dead = {str(r[0]): int(r[1]) for r in await rows(DIGEST_DEAD)}  # type: ignore[call-overload]
    return WindowCounts(
        start=start,
        end=end,
        by_status=by_status,
        by_courier=by_courier,
        stuck=stuck,
        stuck_total=int(total),  # type: ignore[call-overload]
        troubles=troubles,
        dead=dead,
    )


async def last_digest(conn: Conn, digest: str) -> datetime | None:
    row = await (await conn.execute(LAST_DIGEST, (digest,))).fetchone()
    return None if row is None else row[0]


async def record_digest(
    conn: Conn,
    digest: str,
    period: datetime | None,
    run: DigestRun | None,
    deliveries: Sequence[NewDelivery],
    now: datetime,
    forget_before: datetime | None,
) -> bool:
    """(A transaction, the caller's.)"""
    if period is not None:
        claimed = await (await conn.execute(CLAIM_DIGEST_PERIOD, (digest, period, now))).fetchall()
        if not claimed:
            return False
    if forget_before is not None:
        await conn.execute(FORGET_DIGEST_RUNS, (digest, forget_before))
    if run is None:
        return True
    event = run.event
    await conn.execute(
        INSERT_DIGEST_RUN,
        (event.id, digest, event.order_id, period, now, _encode(event).decode()),
    )
    if deliveries:
        await conn.execute(
            sql.INSERT_DELIVERIES,
            (
                [d.id for d in deliveries],
                [d.event_id for d in deliveries],
                [d.route for d in deliveries],
                [d.sink for d in deliveries],
                [event.order_id for _ in deliveries],
                [event.occurred_at for _ in deliveries],
                [d.ordering for d in deliveries],
                [d.template for d in deliveries],
                [0 for _ in deliveries],  # `ordering: all`: no rank (`gateway.store.lanes`)
                [0 for _ in deliveries],
                [event.shop for _ in deliveries],
                now,
            ),
        )
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
    return True
