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
_encode = msgspec.json.Encoder().encode


async def window_counts(conn: Conn, start: datetime, end: datetime, limit: int) -> WindowCounts:
    """(A transaction, the caller's: one snapshot for every count.)"""
    await conn.execute(sql.DIGEST_SNAPSHOT)
    params = {"start": start, "end": end, "limit": limit, "troubles": _TROUBLES}

    async def rows(query: str) -> list[tuple[object, ...]]:
        return list(await (await conn.execute(query, params)).fetchall())

    by_status = {Status(str(r[0])): int(r[1]) for r in await rows(sql.DIGEST_BY_STATUS)}  # type: ignore[call-overload]
    by_courier = {str(r[0]): int(r[1]) for r in await rows(sql.DIGEST_BY_COURIER)}  # type: ignore[call-overload]
    stuck = [
        StuckParcel(
            order_id=str(r[0]),
            awb=None if r[1] is None else str(r[1]),
            stuck_in=None if r[2] is None else str(r[2]),
            at=r[3],  # type: ignore[arg-type]
            reason=None if r[4] is None else str(r[4]),
        )
        for r in await rows(sql.DIGEST_STUCK)
    ]
    (total,) = (await rows(sql.DIGEST_STUCK_TOTAL))[0]
    troubles = [
        ReasonCount(
            status=Status(str(r[0])),
            reason=None if r[1] is None else str(r[1]),
            count=int(r[2]),  # type: ignore[call-overload]
        )
        for r in await rows(sql.DIGEST_TROUBLES)
    ]
    dead = {str(r[0]): int(r[1]) for r in await rows(sql.DIGEST_DEAD)}  # type: ignore[call-overload]
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
    row = await (await conn.execute(sql.LAST_DIGEST, (digest,))).fetchone()
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
        claimed = await (
            await conn.execute(sql.CLAIM_DIGEST_PERIOD, (digest, period, now))
        ).fetchall()
        if not claimed:
            return False
    if forget_before is not None:
        await conn.execute(sql.FORGET_DIGEST_RUNS, (digest, forget_before))
    if run is None:
        return True
    event = run.event
    await conn.execute(
        sql.INSERT_DIGEST_RUN,
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
                now,
            ),
        )
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
    return True
