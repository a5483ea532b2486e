"""Digests on SQLite (`gateway.store.roles.DigestStore`): a window's counts, read through the
``events_received`` and ``deliveries_dead`` indexes, and a period claimed with its deliveries
in one writer job (one SAVEPOINT of a group commit: all of it or none).
"""

from __future__ import annotations

import sqlite3
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
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import encode_rows, from_us, opt_time, to_us

__all__ = ["last_digest", "record_digest", "window_counts"]

_TROUBLES = encode_rows([s.value for s in TROUBLE_STATUSES])
_encode = msgspec.json.Encoder().encode


def window_counts(
    conn: sqlite3.Connection, start: datetime, end: datetime, limit: int
) -> WindowCounts:
    window = (to_us(start), to_us(end))
    conn.execute(sql.DIGEST_SNAPSHOT)  # one snapshot for every count, taking no write lock
    try:
        by_status = {Status(r[0]): r[1] for r in conn.execute(sql.DIGEST_BY_STATUS, window)}
        by_courier = {str(r[0]): r[1] for r in conn.execute(sql.DIGEST_BY_COURIER, window)}
        stuck = [
            StuckParcel(order_id=r[0], awb=r[1], stuck_in=r[2], at=from_us(r[3]), reason=r[4])
            for r in conn.execute(sql.DIGEST_STUCK, (*window, limit))
        ]
        stuck_total = conn.execute(sql.DIGEST_STUCK_TOTAL, window).fetchone()[0]
        troubles = [
            ReasonCount(status=Status(r[0]), reason=r[1], count=r[2])
            for r in conn.execute(sql.DIGEST_TROUBLES, (*window, limit, _TROUBLES))
        ]
        dead = {r[0]: r[1] for r in conn.execute(sql.DIGEST_DEAD, window)}
    finally:
        conn.execute(sql.COMMIT)
    return WindowCounts(
        start=start,
        end=end,
        by_status=by_status,
        by_courier=by_courier,
        stuck=stuck,
        stuck_total=stuck_total,
        troubles=troubles,
        dead=dead,
    )


def last_digest(conn: sqlite3.Connection, digest: str) -> datetime | None:
    row = conn.execute(sql.LAST_DIGEST, (digest,)).fetchone()
    return opt_time(None if row is None else row[0])


def record_digest(
    conn: sqlite3.Connection,
    digest: str,
    period: datetime | None,
    run: DigestRun | None,
    deliveries: Sequence[NewDelivery],
    now: datetime,
    forget_before: datetime | None,
) -> bool:
    """(A writer job: it runs in its own SAVEPOINT, so a failure keeps none of it.)"""
    now_us = to_us(now)
    if period is not None:
        claimed = conn.execute(sql.CLAIM_DIGEST_PERIOD, (digest, to_us(period), now_us)).fetchall()
        if not claimed:
            return False
    if forget_before is not None:
        conn.execute(sql.FORGET_DIGEST_RUNS, (digest, to_us(forget_before)))
    if run is None:
        return True
    event = run.event
    conn.execute(
        sql.INSERT_DIGEST_RUN,
        (
            event.id,
            digest,
            event.order_id,
            None if period is None else to_us(period),
            now_us,
            _encode(event).decode(),
        ),
    )
    if deliveries:
        occurred = to_us(event.occurred_at)
        rows = [
            # `ordering: all`: no rank (`gateway.store.lanes`), so stage and timed are 0
            (
                d.id,
                d.event_id,
                d.route,
                d.sink,
                event.order_id,
                occurred,
                d.ordering,
                d.template,
                0,
                0,
                event.shop,
            )
            for d in deliveries
        ]
        conn.execute(sql.INSERT_DELIVERIES, (encode_rows(rows), now_us))
    return True
