"""The tracking role on PostgreSQL: the pull tracker's orders, kept in step with the events.

The commit that stores events or contacts updates ``tracking`` too (`tracking_rows`, for the
intake; `sql.TRACK_CONTACTS`): a cursor on ``events.seq``, as SQLite keeps, would miss an event
whose transaction commits after one that took a higher seq, which replicas committing side by
side do all the time. Claims lease rows, so two replicas never ask about one order at once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from gateway.events import TERMINAL_STATUSES, Event, EventKind, Status
from gateway.store.postgres import sql
from gateway.store.postgres.rows import EPOCH, Conn
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
    "tracking_rows",
]


def tracking_rows(stored: Iterable[Event]) -> list[tuple[str, str, str, datetime, bool, str]]:
    """Per (order, shop), from events just stored (in batch order, ``stuck`` aside): the last
    kind, the newest status by ``occurred_at`` (a later one wins a tie) and whether one is
    final."""
    orders: dict[tuple[str, str], tuple[str, str, str, datetime, bool, str]] = {}
    for e in stored:
        if e.status == Status.STUCK:
            continue
        key = (e.order_id, e.shop)
        known = orders.get(key)
        closed = e.status in TERMINAL_STATUSES or (known is not None and known[4])
        if known is None or e.occurred_at >= known[3]:
            orders[key] = (e.order_id, e.kind, str(e.status), e.occurred_at, closed, e.shop)
        else:
            orders[key] = (e.order_id, e.kind, known[2], known[3], closed, e.shop)
    return [orders[k] for k in sorted(orders)]


async def track_orders(
    conn: Conn, orders: Sequence[tuple[str, EventKind]], now: datetime, shop: str
) -> int:
    if not orders:
        return 0
    params = (now, shop, [o for o, _ in orders], [k for _, k in orders])
    return (await conn.execute(sql.TRACK_ORDERS, params)).rowcount


async def claim_pulls(conn: Conn, claim: PullClaim) -> list[TrackedOrder]:
    params = {
        "now": claim.now,
        "lease": claim.now + timedelta(seconds=claim.lease_seconds),
        "stale_before": claim.stale_before,
        "pulled_before": claim.pulled_before,
        "asked_before": claim.asked_before,
        "catch_up_shops": None if claim.catch_up_shops is None else sorted(claim.catch_up_shops),
        "limit": claim.limit,
    }
    rows = await (await conn.execute(sql.CLAIM_PULLS, params)).fetchall()
    return _least_recently_asked_first(rows)


async def finish_pull(
    conn: Conn,
    order_id: str,
    *,
    shop: str,
    now: datetime,
    next_pull_at: datetime,
    answered: bool,
    asked: bool,
    gone: str | None,
) -> None:
    params = {
        "next": next_pull_at,
        "answered": answered,
        "asked": asked,
        "now": now,
        "gone": gone,
        "order_id": order_id,
        "shop": shop,
    }
    await conn.execute(sql.FINISH_PULL, params)


async def claim_stuck(
    conn: Conn, after: Mapping[Status, float], now: datetime, limit: int
) -> list[TrackedOrder]:
    if not after:
        return []
    statuses = [str(s) for s in after]
    seconds = [float(after[s]) for s in after]
    rows = await (await conn.execute(sql.CLAIM_STUCK, (statuses, seconds, now, limit))).fetchall()
    return _oldest_first(rows)


async def known_statuses(conn: Conn, order_id: str, shop: str) -> set[tuple[Status, str | None]]:
    rows = await (await conn.execute(sql.KNOWN_STATUSES, (order_id, shop))).fetchall()
    return {(Status(r[0]), r[1]) for r in rows}


async def last_push_at(conn: Conn, shop: str | None) -> datetime | None:
    if shop is None:
        row = await (await conn.execute(sql.LAST_PUSH_AT)).fetchone()
    else:
        row = await (await conn.execute(sql.LAST_SHOP_PUSH_AT, (shop,))).fetchone()
    return None if row is None else row[0]


async def get_tracking(conn: Conn, order_id: str, shop: str) -> TrackedOrder | None:
    row = await (await conn.execute(sql.GET_TRACKING, (order_id, shop))).fetchone()
    return None if row is None else _tracked(row)


async def tracking_counts(conn: Conn) -> TrackingCounts:
    row = await (await conn.execute(sql.TRACKING_COUNTS)).fetchone()
    if row is None:
        return TrackingCounts(open=0, stuck=0)
    return TrackingCounts(open=int(row[0]), stuck=int(row[1]))


async def oldest_due_pull(conn: Conn, now: datetime, stale_after: float) -> datetime | None:
    params = {"now": now, "stale": stale_after}
    row = await (await conn.execute(sql.OLDEST_DUE_PULL, params)).fetchone()
    return None if row is None else row[0]


def _tracked(row: Sequence[Any]) -> TrackedOrder:
    """A row of `sql.TRACKING_COLUMNS`."""
    return TrackedOrder(
        order_id=row[0],
        kind=row[1],
        last_status=None if row[2] is None else Status(row[2]),
        last_update=row[3],
        closed=bool(row[4]),
        last_pulled_at=row[5],
        next_pull_at=row[6],
        gone=row[7],
        stuck_status=None if row[8] is None else Status(row[8]),
        stuck_since=row[9],
        last_asked_at=row[10],
        shop=row[11],
    )


def _oldest_first(rows: Sequence[Sequence[Any]]) -> list[TrackedOrder]:
    # RETURNING gives rows in no promised order.
    orders = [_tracked(r) for r in rows]
    return sorted(
        orders, key=lambda o: (o.last_update is not None, o.last_update or EPOCH, o.order_id)
    )


def _least_recently_asked_first(rows: Sequence[Sequence[Any]]) -> list[TrackedOrder]:
    # The claim's own order (`sql.CLAIM_PULLS`): RETURNING does not keep it.
    orders = [_tracked(r) for r in rows]
    return sorted(
        orders,
        key=lambda o: (
            o.last_asked_at is not None,
            o.last_asked_at or EPOCH,
            o.last_update is not None,
            o.last_update or EPOCH,
            o.order_id,
        ),
    )
