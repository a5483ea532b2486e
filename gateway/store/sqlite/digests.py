"""Digests on SQLite (`gateway.store.roles.DigestStore`): a window's counts, read through the
``events_received`` and ``deliveries_dead`` indexes, and a period claimed with its deliveries
in one writer job (one SAVEPOINT of a group commit: all of it or none).

The named queries are here rather than in sql.py, which is long enough: they are used only here.
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

SNAPSHOT = "BEGIN DEFERRED"
_IN_WINDOW = "FROM events WHERE received_at >= ?1 AND received_at < ?2"
BY_STATUS = f"SELECT status, count(*) {_IN_WINDOW} GROUP BY status"
BY_COURIER = (
    "SELECT coalesce(nullif(body ->> '$.details.service', ''),"
    f" nullif(body ->> '$.raw.service', ''), '') AS courier, count(*) {_IN_WINDOW}"
    " GROUP BY courier ORDER BY count(*) DESC, courier"
)
STUCK = (
    "SELECT order_id, body ->> '$.awb', body ->> '$.raw_status', received_at,"
    f" body ->> '$.reason' {_IN_WINDOW} AND status = 'stuck' ORDER BY received_at DESC LIMIT ?3"
)
STUCK_TOTAL = f"SELECT count(*) {_IN_WINDOW} AND status = 'stuck'"
TROUBLES = (
    f"SELECT status, body ->> '$.reason' AS reason, count(*) {_IN_WINDOW}"
    " AND status IN (SELECT value FROM json_each(?4))"
    " GROUP BY status, reason ORDER BY count(*) DESC, status, reason LIMIT ?3"
)
DEAD = (
    "SELECT sink, count(*) FROM deliveries WHERE state = 'dead'"
    " AND updated_at >= ?1 AND updated_at < ?2 GROUP BY sink ORDER BY sink"
)
LAST_DIGEST = "SELECT last_period FROM digests WHERE name = ?"
CLAIM_PERIOD = (
    "INSERT INTO digests (name, last_period, updated_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period,"
    " updated_at = excluded.updated_at WHERE excluded.last_period > digests.last_period"
    " RETURNING name"
)
"""Claims the period only past the one recorded: a second claim of it returns no row."""
INSERT_RUN = (
    "INSERT INTO digest_runs (id, digest, order_id, period, created_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
FORGET_RUNS = (
    "DELETE FROM digest_runs WHERE id IN (SELECT r.id FROM digest_runs AS r"
    " WHERE r.digest = ?1 AND r.created_at < ?2 AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
    "  WHERE d.order_id = r.order_id AND d.event_id = r.id) LIMIT 100)"
)
"""Old runs none of whose deliveries is left (retention removed them); the lane index finds
the deliveries by order."""

_TROUBLES = encode_rows([s.value for s in TROUBLE_STATUSES])
_encode = msgspec.json.Encoder().encode


def window_counts(
    conn: sqlite3.Connection, start: datetime, end: datetime, limit: int
) -> WindowCounts:
    window = (to_us(start), to_us(end))
    conn.execute(SNAPSHOT)  # one snapshot for every count, taking no write lock
    try:
        by_status = {Status(r[0]): r[1] for r in conn.execute(BY_STATUS, window)}
        by_courier = {str(r[0]): r[1] for r in conn.execute(BY_COURIER, window)}
        stuck = [
            StuckParcel(order_id=r[0], awb=r[1], stuck_in=r[2], at=from_us(r[3]), reason=r[4])
            for r in conn.execute(STUCK, (*window, limit))
        ]
        stuck_total = conn.execute(STUCK_TOTAL, window).fetchone()[0]
        troubles = [
            ReasonCount(status=Status(r[0]), reason=r[1], count=r[2])
            for r in conn.execute(TROUBLES, (*window, limit, _TROUBLES))
        ]
        dead = {r[0]: r[1] for r in conn.execute(DEAD, window)}
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
    row = conn.execute(LAST_DIGEST, (digest,)).fetchone()
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
        claimed = conn.execute(CLAIM_PERIOD, (digest, to_us(period), now_us)).fetchall()
        if not claimed:
            return False
    if forget_before is not None:
        conn.execute(FORGET_RUNS, (digest, to_us(forget_before)))
    if run is None:
        return True
    event = run.event
    conn.execute(
        INSERT_RUN,
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
            )
            for d in deliveries
        ]
        conn.execute(sql.INSERT_DELIVERIES, (encode_rows(rows), now_us))
    return True
