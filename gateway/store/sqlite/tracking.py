"""The tracking role on SQLite: the pull tracker's orders, kept in step with the events.

The ``tracking`` table holds one row per order: its newest status and time, as taken from
``events`` (past a cursor on ``events.seq``) and ``contacts`` (past ``contacts.updated_at``) at
the start of every claim, and the tracker's own schedule, lease and stuck alert. The intake
never writes it: it stays the one way events enter the store.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import msgspec

from gateway.events import EventKind, Status
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import opt_time, to_us
from gateway.store.tracking import PullClaim, TrackedOrder, TrackingCounts

__all__ = [
    "claim_pulls",
    "claim_stuck",
    "finish_pull",
    "get_tracking",
    "known_statuses",
    "last_push_at",
    "oldest_due_pull",
    "track_orders",
    "tracking_counts",
]


def _sync(conn: sqlite3.Connection, now: int) -> None:
    """Take in events and contacts stored since the last look (inside the caller's job)."""
    event_seq, contacts_at = conn.execute(sql.TRACKING_CURSOR).fetchone()
    last_seq = conn.execute(sql.LAST_EVENT_SEQ).fetchone()[0] or 0
    last_contact = conn.execute(sql.LAST_CONTACT_AT).fetchone()[0] or 0
    if last_seq > event_seq:
        conn.execute(sql.TRACKING_FROM_EVENTS, (event_seq, last_seq, now))
    if last_contact > contacts_at:
        conn.execute(sql.TRACKING_FROM_CONTACTS, (contacts_at, now))
    if (last_seq, last_contact) != (event_seq, contacts_at):
        conn.execute(
            sql.SET_TRACKING_CURSOR, (max(last_seq, event_seq), max(last_contact, contacts_at))
        )


def _order(row: Sequence[Any]) -> TrackedOrder:
    """A row of `sql.TRACKING_COLUMNS`."""
    return TrackedOrder(
        order_id=row[0],
        kind=row[1],
        last_status=Status(row[2]) if row[2] is not None else None,
        last_update=opt_time(row[3]),
        closed=bool(row[4]),
        last_pulled_at=opt_time(row[5]),
        next_pull_at=opt_time(row[6]),
        gone=row[7],
        stuck_status=Status(row[8]) if row[8] is not None else None,
        stuck_since=opt_time(row[9]),
        last_asked_at=opt_time(row[10]),
        shop=row[11],
    )


def _oldest_update_first(rows: list[Any]) -> list[TrackedOrder]:
    # RETURNING gives rows in no promised order.
    orders = [_order(r) for r in rows]
    return sorted(orders, key=lambda o: (_us(o.last_update), o.order_id, o.shop))


def _least_recently_asked_first(rows: list[Any]) -> list[TrackedOrder]:
    # The claim's own order (`sql.CLAIM_PULLS`): RETURNING does not keep it.
    orders = [_order(r) for r in rows]
    return sorted(
        orders, key=lambda o: (_us(o.last_asked_at), _us(o.last_update), o.order_id, o.shop)
    )


def _us(moment: datetime | None) -> int:
    return to_us(moment) if moment is not None else 0


def track_orders(
    conn: sqlite3.Connection, orders: Sequence[tuple[str, EventKind]], now: datetime, shop: str
) -> int:
    _sync(conn, to_us(now))  # an order its events already named is not new
    before = conn.total_changes
    conn.executemany(sql.TRACK_ORDER, [(o, k, to_us(now), shop) for o, k in orders])
    return conn.total_changes - before


def claim_pulls(conn: sqlite3.Connection, claim: PullClaim) -> list[TrackedOrder]:
    now = to_us(claim.now)
    _sync(conn, now)
    params = {
        "now": now,
        "lease": now + round(claim.lease_seconds * 1_000_000),
        "stale_before": to_us(claim.stale_before) if claim.stale_before else None,
        "pulled_before": to_us(claim.pulled_before) if claim.pulled_before else None,
        "asked_before": to_us(claim.asked_before) if claim.asked_before else None,
        "catch_up_shops": None
        if claim.catch_up_shops is None
        else msgspec.json.encode(sorted(claim.catch_up_shops)).decode(),
        "limit": claim.limit,
    }
    return _least_recently_asked_first(conn.execute(sql.CLAIM_PULLS, params).fetchall())


def finish_pull(
    conn: sqlite3.Connection,
    order_id: str,
    *,
    shop: str,
    now: datetime,
    next_pull_at: datetime,
    answered: bool,
    asked: bool,
    gone: str | None,
) -> None:
    conn.execute(
        sql.FINISH_PULL,
        {
            "next": to_us(next_pull_at),
            "answered": answered,
            "asked": asked,
            "now": to_us(now),
            "gone": gone,
            "order_id": order_id,
            "shop": shop,
        },
    )


def claim_stuck(
    conn: sqlite3.Connection, after: Mapping[Status, float], now: datetime, limit: int
) -> list[TrackedOrder]:
    now_us = to_us(now)
    _sync(conn, now_us)
    if not after:
        return []
    limits = msgspec.json.encode({str(s): round(v * 1_000_000) for s, v in after.items()})
    return _oldest_update_first(conn.execute(sql.CLAIM_STUCK, (limits, now_us, limit)).fetchall())


def known_statuses(
    conn: sqlite3.Connection, order_id: str, shop: str
) -> set[tuple[Status, str | None]]:
    return {(Status(r[0]), r[1]) for r in conn.execute(sql.KNOWN_STATUSES, (order_id, shop))}


def last_push_at(conn: sqlite3.Connection, shop: str | None) -> datetime | None:
    if shop is None:
        row = conn.execute(sql.LAST_PUSH_AT).fetchone()
    else:
        row = conn.execute(sql.LAST_SHOP_PUSH_AT, (shop,)).fetchone()
    return opt_time(row[0]) if row else None


def get_tracking(conn: sqlite3.Connection, order_id: str, shop: str) -> TrackedOrder | None:
    row = conn.execute(sql.GET_TRACKING, (order_id, shop)).fetchone()
    return _order(row) if row else None


def tracking_counts(conn: sqlite3.Connection) -> TrackingCounts:
    open_, stuck = conn.execute(sql.TRACKING_COUNTS).fetchone()
    return TrackingCounts(open=int(open_), stuck=int(stuck))


def oldest_due_pull(conn: sqlite3.Connection, now: datetime, stale_after: float) -> datetime | None:
    params = {"now": to_us(now), "stale": round(stale_after * 1_000_000)}
    _sync(conn, params["now"])
    return opt_time(conn.execute(sql.OLDEST_DUE_PULL, params).fetchone()[0])
