"""Ordering within a lane, the deliveries of one (sink, order): which one to claim, which are stale.

The rules every store applies (see `Store.claim`), stated once in plain Python: a backend
either feeds lanes to `plan_claims` or, to keep a claim a few statements per batch, states
them in SQL (SQLite's ``sql.CLAIM_PLAN`` as window functions over each lane); the contract
suite holds both to the same cases:

- a delivery older than one already ``delivered`` to the sink is ``superseded``;
- at most one delivery of a lane is in flight;
- ``ordering: latest``: only the newest unfinished delivery may go; older ones are superseded;
- ``ordering: all``: the oldest unfinished delivery goes first, and only once it is due.

"Older" compares the event's own time, then creation order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["plan_claims"]

# Lane rows: (id, state, occurred_at, seq, next_attempt_at, lease_until, ordering)
_ID, _STATE, _OCCURRED, _SEQ, _NEXT, _LEASE, _ORDERING = range(7)


def plan_claims(lane: Sequence[Sequence[Any]], now: int) -> tuple[str | None, list[str]]:
    """The delivery to claim now (if any) and the ones to mark superseded."""
    newest_delivered = max(
        ((r[_OCCURRED], r[_SEQ]) for r in lane if r[_STATE] == "delivered"), default=None
    )
    busy = False
    drop: list[str] = []
    waiting: list[Sequence[Any]] = []
    for row in lane:
        state = row[_STATE]
        if state == "delivered":
            continue
        live = state == "in_flight" and row[_LEASE] is not None and row[_LEASE] > now
        if live:
            busy = True
        elif newest_delivered is not None and (row[_OCCURRED], row[_SEQ]) < newest_delivered:
            drop.append(row[_ID])
        else:
            waiting.append(row)
    if busy or not waiting:
        return None, drop
    waiting.sort(key=lambda r: (r[_OCCURRED], r[_SEQ]))
    if waiting[-1][_ORDERING] == "latest":
        drop.extend(r[_ID] for r in waiting[:-1])
        candidate = waiting[-1]
    else:
        candidate = waiting[0]
    return (candidate[_ID] if _due(candidate, now) else None), drop


def _due(row: Sequence[Any], now: int) -> bool:
    if row[_STATE] == "pending":
        return bool(row[_NEXT] <= now)
    return row[_LEASE] is None or row[_LEASE] <= now  # an expired lease
