"""SQLite statements of the push log and the intake (run by `SQLiteStore`).

The log is append-only: a push row is written once by the receiver (or the pull tracker) and
afterwards only its ``state`` changes, from ``pending`` to ``processed`` or ``failed``. The intake
commits a whole batch (events, deliveries, contacts, and the pushes' new states) in one job.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.base import (
    IngestResult,
    LoggedPush,
    NewPush,
    PushOutcome,
    PushQuery,
)
from gateway.store.rows import (
    INSERT_DELIVERIES,
    INSERT_EVENTS,
    UPSERT_CONTACT,
    encode_rows,
    from_us,
    opt_time,
    to_us,
)

__all__ = [
    "PUSH_COLUMNS",
    "append_push",
    "count_pending",
    "get_push",
    "list_pushes",
    "pending_pushes",
    "push_from_row",
    "record_intake",
    "requeue_pushes",
]

PUSH_COLUMNS = (
    "seq, id, source, method, items, received_at, content_type, body, state, error,"
    " processed_at, accepted, duplicates"
)


def push_from_row(row: Sequence[Any]) -> LoggedPush:
    return LoggedPush(
        seq=row[0],
        id=row[1],
        source=row[2],
        method=row[3],
        items=row[4],
        received_at=from_us(row[5]),
        content_type=row[6],
        body=bytes(row[7]),
        state=row[8],
        error=row[9],
        processed_at=opt_time(row[10]),
        accepted=row[11],
        duplicates=row[12],
    )


def append_push(conn: sqlite3.Connection, push: NewPush) -> None:
    conn.execute(
        "INSERT INTO pushes (id, source, method, items, received_at, content_type, body, state)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')",
        (
            push.id,
            push.source,
            push.method,
            push.items,
            to_us(push.received_at),
            push.content_type,
            push.body,
        ),
    )


def pending_pushes(conn: sqlite3.Connection, limit: int) -> list[LoggedPush]:
    rows = conn.execute(
        f"SELECT {PUSH_COLUMNS} FROM pushes WHERE state = 'pending' ORDER BY seq LIMIT ?",
        (limit,),
    ).fetchall()
    return [push_from_row(r) for r in rows]


def count_pending(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM pushes WHERE state = 'pending'").fetchone()[0])


def record_intake(
    conn: sqlite3.Connection, outcomes: Sequence[PushOutcome], now: datetime
) -> list[IngestResult]:
    """Store a batch's events (deduplicated by id), the new events' deliveries and the
    contacts, and mark every push processed or failed; one result per outcome, in order."""
    now_us = to_us(now)
    # Another intake (a second process on this file, or `kabarin reprocess`) may have finished
    # some of these entries since they were read: their outcome is theirs, not stored twice.
    ids = [o.push_id for o in outcomes]
    marks = ", ".join("?" for _ in ids)
    taken = {
        r[0]
        for r in conn.execute(
            f"SELECT id FROM pushes WHERE id IN ({marks}) AND state != 'pending'", ids
        )
    }
    owner: dict[str, str] = {}  # event id -> the first push of the batch that carries it
    event_rows: list[tuple[Any, ...]] = []
    occurred: dict[str, tuple[str, int]] = {}
    mine_outcomes = [o for o in outcomes if o.push_id not in taken]
    for outcome in mine_outcomes:
        for e in outcome.events:
            if e.id in owner:
                continue
            owner[e.id] = outcome.push_id
            occurred[e.id] = (e.order_id, to_us(e.occurred_at))
            event_rows.append(
                (
                    e.id,
                    e.order_id,
                    e.status,
                    e.method,
                    occurred[e.id][1],
                    to_us(e.received_at),
                    e,
                    outcome.push_id,
                )
            )
    new: set[str] = set()
    if event_rows:
        last_seq = conn.execute("SELECT max(seq) FROM events").fetchone()[0] or 0
        before = conn.total_changes
        conn.execute(INSERT_EVENTS, (encode_rows(event_rows),))
        inserted = conn.total_changes - before
        if inserted == len(event_rows):
            new = set(owner)
        elif inserted:
            new = {r[0] for r in conn.execute("SELECT id FROM events WHERE seq > ?", (last_seq,))}

    delivery_rows = [
        (d.id, d.event_id, d.route, d.sink, *occurred[d.event_id], d.ordering, d.template)
        for outcome in mine_outcomes
        for d in outcome.deliveries
        if d.event_id in new and owner[d.event_id] == outcome.push_id
    ]
    created: dict[str, int] = {}
    if delivery_rows:
        conn.execute(INSERT_DELIVERIES, (encode_rows(delivery_rows), now_us))
        for row in delivery_rows:
            push_id = owner[row[1]]
            created[push_id] = created.get(push_id, 0) + 1
    contacts = [
        (c.order_id, c.name, c.phone, c.email, now_us) for o in mine_outcomes for c in o.contacts
    ]
    if contacts:
        conn.executemany(UPSERT_CONTACT, contacts)

    results: list[IngestResult] = []
    updates: list[tuple[Any, ...]] = []
    for outcome in outcomes:
        if outcome.push_id in taken:
            results.append(IngestResult(accepted=0, duplicates=0))
            continue
        if outcome.error is not None:
            results.append(IngestResult(accepted=0, duplicates=0))
            updates.append(("failed", outcome.error, now_us, None, None, outcome.push_id))
            continue
        mine = list(
            dict.fromkeys(
                e.id for e in outcome.events if e.id in new and owner[e.id] == outcome.push_id
            )
        )
        result = IngestResult(
            accepted=len(mine),
            duplicates=len(outcome.events) - len(mine),
            deliveries=created.get(outcome.push_id, 0),
            new_event_ids=tuple(mine),
        )
        results.append(result)
        updates.append(
            ("processed", None, now_us, result.accepted, result.duplicates, outcome.push_id)
        )
    conn.executemany(
        "UPDATE pushes SET state = ?, error = ?, processed_at = ?, accepted = ?, duplicates = ?"
        " WHERE id = ?",
        updates,
    )
    return results


def requeue_pushes(
    conn: sqlite3.Connection, *, state: str, since: datetime | None, ids: Sequence[str]
) -> int:
    """Put pushes back to ``pending`` (``kabarin reprocess``); how many."""
    where = ["state = ?"]
    params: list[Any] = [state]
    if since is not None:
        where.append("received_at >= ?")
        params.append(to_us(since))
    if ids:
        where.append(f"id IN ({', '.join('?' for _ in ids)})")
        params.extend(ids)
    sql = (
        "UPDATE pushes SET state = 'pending', error = NULL, processed_at = NULL WHERE "
        + " AND ".join(where)
    )
    return conn.execute(sql, params).rowcount


def get_push(conn: sqlite3.Connection, push_id: str) -> LoggedPush | None:
    row = conn.execute(f"SELECT {PUSH_COLUMNS} FROM pushes WHERE id = ?", (push_id,)).fetchone()
    return None if row is None else push_from_row(row)


def list_pushes(conn: sqlite3.Connection, query: PushQuery) -> list[LoggedPush]:
    where: list[str] = []
    params: list[Any] = []
    if query.state is not None:
        where.append("state = ?")
        params.append(query.state)
    if query.source is not None:
        where.append("source = ?")
        params.append(query.source)
    if query.since is not None:
        where.append("received_at >= ?")
        params.append(to_us(query.since))
    if query.before_seq is not None:
        where.append("seq < ?")
        params.append(query.before_seq)
    sql = f"SELECT {PUSH_COLUMNS} FROM pushes"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq DESC LIMIT ?"
    return [push_from_row(r) for r in conn.execute(sql, (*params, query.limit)).fetchall()]
