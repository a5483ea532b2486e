"""The ingest role on SQLite: the push log, the intake's batch commit, rejected bodies.

The log is append-only: a push row is written once by the receiver (or the pull tracker) and
afterwards only its ``state`` changes, from ``pending`` to ``processed`` or ``failed``. The log
has a file of its own (see store.py), so the intake commits a batch in two jobs: its events,
deliveries and contacts in the main file, then the pushes' new states in the log. A crash
between the two leaves the pushes pending: they are processed again, their events are already
stored (by id), so nothing new is stored or sent and they are recorded as duplicates.
Each function here is one writer (or reader) job: it runs on a connection `SQLiteStore` hands it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.accounting import IntakeBatch
from gateway.store.facts import fold
from gateway.store.lanes import rank
from gateway.store.roles import IngestResult, LoggedPush, NewPush, PushOutcome, RejectedRequest
from gateway.store.sqlite import groups, insights, sql
from gateway.store.sqlite.rows import encode_rows, push_from_row, to_us

__all__ = [
    "append_push",
    "count_pending",
    "mark_pushes",
    "pending_pushes",
    "pushes_taken",
    "record_events",
    "reject",
    "requeue_pushes",
]


def append_push(conn: sqlite3.Connection, push: NewPush) -> None:
    conn.execute(
        sql.APPEND_PUSH,
        (
            push.id,
            push.source,
            push.method,
            push.items,
            to_us(push.received_at),
            push.content_type,
            push.body,
            push.origin,
            push.shop,
        ),
    )


def pending_pushes(conn: sqlite3.Connection, limit: int) -> list[LoggedPush]:
    return [push_from_row(r) for r in conn.execute(sql.PENDING_PUSHES, (limit,)).fetchall()]


def count_pending(conn: sqlite3.Connection) -> int:
    return int(conn.execute(sql.COUNT_PENDING_PUSHES).fetchone()[0])


def pushes_taken(conn: sqlite3.Connection, ids: Sequence[str]) -> set[str]:
    """Which of these entries are no longer pending: another intake (a second process on
    this file, or `kabarin reprocess`) finished them since they were read."""
    if not ids:
        return set()
    return {r[0] for r in conn.execute(sql.pushes_taken(len(ids)), list(ids))}


Mark = tuple[str, str | None, int, int | None, int | None, str]
"""A push's new state: (state, error, processed_at, accepted, duplicates, id)."""


def record_events(
    conn: sqlite3.Connection, outcomes: Sequence[PushOutcome], taken: set[str], now: datetime
) -> tuple[list[IngestResult], list[Mark]]:
    """Store a batch's events (deduplicated by id), what the new events say of their orders
    (`gateway.store.facts`), the new events' deliveries and the contacts (a main-file job);
    one result per outcome, in order, and the pushes' new states for `mark_pushes` to record
    in the log file once this has committed. What the commit decides is
    `gateway.store.accounting`; this writes it."""
    now_us = to_us(now)
    batch = IntakeBatch(outcomes, taken)
    occurred: dict[str, tuple[str, int]] = {}
    shops: dict[str, str] = {}  # event id -> its shop, the lane's third key
    ranks: dict[str, tuple[int, bool]] = {}  # event id -> what `ordering: latest` compares
    event_rows: list[tuple[Any, ...]] = []
    for e in batch.events.values():
        occurred[e.id] = (e.order_id, to_us(e.occurred_at))
        ranks[e.id] = rank(e)
        shops[e.id] = e.shop
        event_rows.append(
            (
                e.id,
                e.order_id,
                e.status,
                e.method,
                occurred[e.id][1],
                to_us(e.received_at),
                e,
                batch.owner[e.id],
                e.shop,
            )
        )
    new: set[str] = set()
    if event_rows:
        last_seq = conn.execute(sql.LAST_EVENT_SEQ).fetchone()[0] or 0
        before = conn.total_changes
        conn.execute(sql.INSERT_EVENTS, (encode_rows(event_rows),))
        inserted = conn.total_changes - before
        if inserted == len(event_rows):
            new = set(batch.owner)
        elif inserted:
            new = {r[0] for r in conn.execute(sql.EVENTS_AFTER_SEQ, (last_seq,))}
        # What the orders now know, in the same commit as their events.
        insights.record(conn, fold(e for e in batch.events.values() if e.id in new))

    chosen = batch.deliveries(new)
    single = [d for d in chosen if d.group is None]
    if single:
        delivery_rows = [
            (d.id, d.event_id, d.route, d.sink, *occurred[d.event_id], d.ordering, d.template)
            + ranks[d.event_id]
            + (shops[d.event_id],)
            for d in single
        ]
        conn.execute(sql.INSERT_DELIVERIES, (encode_rows(delivery_rows), now_us))
    if len(single) < len(chosen):
        grouped = [d for d in chosen if d.group is not None]
        groups.record(conn, grouped, {i: o[1] for i, o in occurred.items()}, now)
    contacts = [(c.order_id, c.name, c.phone, c.email, now_us, c.shop) for c in batch.contacts()]
    if contacts:
        conn.executemany(sql.UPSERT_CONTACT, contacts)

    results, verdicts = batch.results(new, chosen)
    marks: list[Mark] = [
        (m.state, m.error, now_us, m.accepted, m.duplicates, m.push_id) for m in verdicts
    ]
    return results, marks


def mark_pushes(conn: sqlite3.Connection, marks: Sequence[Mark]) -> None:
    """Record the pushes' new states (a log-file job, after their events committed)."""
    conn.executemany(sql.MARK_PUSH, marks)


def requeue_pushes(
    conn: sqlite3.Connection, *, state: str, since: datetime | None, ids: Sequence[str]
) -> int:
    """Put pushes back to ``pending`` (``kabarin reprocess``); how many."""
    statement, params = sql.requeue_pushes(state, None if since is None else to_us(since), ids)
    return conn.execute(statement, params).rowcount


def reject(conn: sqlite3.Connection, request: RejectedRequest) -> None:
    if request.replaces is not None:
        # A replay keeps the body's first arrival time: only the verdict changes.
        conn.execute(sql.UPDATE_REJECTED, (request.reason, request.replaces))
        return
    conn.execute(
        sql.INSERT_REJECTED,
        (
            to_us(request.received_at),
            request.reason,
            request.body,
            request.content_type,
            request.origin,
            request.shop,
        ),
    )
