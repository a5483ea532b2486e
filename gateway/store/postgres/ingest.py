"""The ingest role on PostgreSQL: the push log's intake leases, the intake's commit, rejected
bodies. (Appending is the group-committing `PushWriter`, writer.py.)

Several replicas' intakes share the log: each leases the pending entries it takes
(``FOR UPDATE SKIP LOCKED``), and `record_intake` locks the entries it records, so one that
another intake finished meanwhile is not stored twice. Events are inserted ``ON CONFLICT DO
NOTHING``: a push arriving at two replicas at once stores its events once. What the commit
decides is `gateway.store.accounting`; this module writes it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.store.accounting import IntakeBatch
from gateway.store.facts import fold
from gateway.store.lanes import rank
from gateway.store.postgres import groups, insights, sql
from gateway.store.postgres.rows import Conn, encode, push_from_row, text
from gateway.store.postgres.tracking import tracking_rows
from gateway.store.roles import IngestResult, LoggedPush, PushOutcome, RejectedRequest

__all__ = ["count_pending", "pending_pushes", "record_intake", "reject", "requeue_pushes"]


async def reject(conn: Conn, request: RejectedRequest) -> None:
    if request.replaces is not None:
        # A replay keeps the body's first arrival time: only the verdict changes.
        await conn.execute(sql.UPDATE_REJECTED, (request.reason, request.replaces))
        return
    await conn.execute(
        sql.INSERT_REJECTED,
        (
            request.received_at,
            request.reason,
            request.body,
            request.content_type,
            request.origin,
            request.shop,
        ),
    )


async def pending_pushes(
    conn: Conn, *, owner: str, now: datetime | None, lease: float, limit: int
) -> list[LoggedPush]:
    """Lease the oldest pending entries nobody else holds to `owner`, in log order."""
    params = {"owner": owner, "now": now, "lease": lease, "limit": limit}
    rows = await (await conn.execute(sql.CLAIM_PUSHES, params)).fetchall()
    return sorted((push_from_row(r) for r in rows), key=lambda p: p.seq)


async def count_pending(conn: Conn) -> int:
    row = await (await conn.execute(sql.COUNT_PENDING_PUSHES)).fetchone()
    return 0 if row is None else int(row[0])


async def record_intake(
    conn: Conn, outcomes: Sequence[PushOutcome], now: datetime
) -> list[IngestResult]:
    """Store a batch's events, the new events' deliveries and the contacts, and mark every
    entry processed or failed (one transaction, the caller's); one result per outcome."""
    # Entries another intake (a replica whose lease ran out, `kabarin reprocess`) finished
    # while this batch was being normalised are theirs: locking them waits for that intake's
    # commit, then shows its verdict.
    ids = [o.push_id for o in outcomes]
    locked = await (await conn.execute(sql.LOCK_PUSHES, (ids,))).fetchall()
    batch = IntakeBatch(outcomes, {r[0] for r in locked if r[1] != "pending"})
    events = batch.events
    new: set[str] = set()
    if events:
        # Sorted, so two intakes inserting overlapping events lock them in the same order.
        rows = [events[i] for i in sorted(events)]
        cur = await conn.execute(
            sql.INSERT_EVENTS,
            (
                [e.id for e in rows],
                [e.order_id for e in rows],
                [str(e.status) for e in rows],
                [e.method for e in rows],
                [e.occurred_at for e in rows],
                [e.received_at for e in rows],
                [encode(e).decode() for e in rows],
                [batch.owner[e.id] for e in rows],
                [e.shop for e in rows],
            ),
        )
        new = {r[0] for r in await cur.fetchall()}
        # What the orders now know, in the same commit as their events.
        await insights.record(conn, fold(e for e in events.values() if e.id in new))

    chosen = batch.deliveries(new)
    single = [d for d in chosen if d.group is None]
    if len(single) < len(chosen):
        grouped = [d for d in chosen if d.group is not None]
        if await groups.record(conn, grouped, events, now):
            await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))
    if single:
        ranks = {i: rank(events[i]) for i in {d.event_id for d in single}}
        await conn.execute(
            sql.INSERT_DELIVERIES,
            (
                [d.id for d in single],
                [d.event_id for d in single],
                [d.route for d in single],
                [d.sink for d in single],
                [events[d.event_id].order_id for d in single],
                [events[d.event_id].occurred_at for d in single],
                [d.ordering for d in single],
                [d.template for d in single],
                [ranks[d.event_id][0] for d in single],
                [int(ranks[d.event_id][1]) for d in single],
                [events[d.event_id].shop for d in single],
                now,
            ),
        )
        await conn.execute(sql.NOTIFY, (sql.DELIVERIES_CHANNEL,))

    contacts = [(c.order_id, c.name, c.phone, c.email, now, c.shop) for c in batch.contacts()]
    if contacts:  # in order: each upsert sees the one before (registered fields win)
        async with conn.cursor() as cur:
            await cur.executemany(sql.UPSERT_CONTACT, contacts)
        orders = sorted({(c[0], c[5]) for c in contacts})
        await conn.execute(
            sql.TRACK_CONTACTS, (now, [o for o, _ in orders], [s for _, s in orders])
        )
    tracked = tracking_rows(e for i, e in events.items() if i in new)
    if tracked:
        await conn.execute(
            sql.TRACK_EVENTS, (now, *(list(column) for column in zip(*tracked, strict=True)))
        )

    results, verdicts = batch.results(new, chosen)
    marks = [(m.push_id, m.state, text(m.error), m.accepted, m.duplicates) for m in verdicts]
    if marks:
        await conn.execute(
            sql.MARK_PUSHES, (now, *(list(column) for column in zip(*marks, strict=True)))
        )
    return results


async def requeue_pushes(
    conn: Conn, *, state: str, since: datetime | None, ids: Sequence[str]
) -> int:
    """Put pushes back to ``pending`` (``kabarin reprocess``) and wake every intake; how many.
    (A transaction, the caller's: the notice goes out with the commit.)"""
    statement, params = sql.requeue_pushes(state, since, ids)
    count = (await conn.execute(statement, params)).rowcount
    if count:
        await conn.execute(sql.NOTIFY, (sql.PUSHES_CHANNEL,))
    return count
