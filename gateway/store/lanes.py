"""Ordering within a lane, the deliveries of one (sink, order): which one to claim, which are stale.

The rules every store applies (see `DeliveryQueue.claim`), stated once in plain Python: a
backend either feeds lanes to `plan_claims` or, to keep a claim a few statements per batch,
states them in SQL (SQLite's ``sql.CLAIM_PLAN`` as window functions over each lane); the
contract suite holds both to the same cases:

- at most one delivery of a lane is in flight;
- ``ordering: all``: every delivery goes, one at a time, in the order the deliveries were
  created (the order their events arrived); the oldest unfinished one goes first, and only once
  it is due. Nothing is ever superseded: the receiver owns its state machine and sorts by
  ``occurred_at`` itself;
- ``ordering: latest``: only the highest-ranked unfinished delivery may go; a ``latest``
  delivery ranked below another unfinished one, or below one already ``delivered``, is
  ``superseded``.

A delivery's rank (`rank`) is its shipment's lifecycle stage first (`STAGES`), then, within a
stage, whether its time is the source's own (a time taken from the arrival, because the push
carried none, never outranks one the courier gave), then that time, then creation order. A
lane's ordering is that of its newest delivery (a configuration change takes effect for the
deliveries created after it); a delivery created under ``all`` is never superseded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.events import Event, Status

__all__ = ["STAGES", "SUPERSEDED", "plan_claims", "rank", "stage_of", "timed_by_source"]

SUPERSEDED = (
    "superseded (ordering: latest): a status of this order further along went, or goes,"
    " to this sink instead"
)
"""The `last_error` of a superseded delivery (both backends): an earlier error no longer says
why it ended."""

STAGES: tuple[frozenset[Status], ...] = (
    frozenset({Status.UNKNOWN}),  # a method nobody knows yet: never hides a known status
    frozenset({Status.PROCESSED}),  # AWB issued
    frozenset({Status.VALIDATED, Status.NO_DRIVER}),  # confirmed, waiting to be picked up
    frozenset({Status.SHIPPED, Status.PICKED_UP}),  # with the courier
    frozenset({Status.IN_TRANSIT, Status.PROBLEM}),  # on its way; a problem is news on the way
    frozenset({Status.REJECTED, Status.RETURNING}),  # refused, going back to the shop
    frozenset({Status.DELIVERED, Status.RETURNED, Status.CANCELED}),  # ended
)
"""The shipment lifecycle, earliest stage first: the table of stages in docs/delivery.md.
``stuck`` (raised by the pull tracker) takes the stage of the status it is stuck in."""

_STAGE = {status: number for number, stage in enumerate(STAGES) for status in stage}


def stage_of(event: Event) -> int:
    """The lifecycle stage of the event's status (an index into `STAGES`)."""
    status = event.status
    if status is Status.STUCK:
        try:
            status = Status(event.raw_status or "")
        except ValueError:
            return 0
    return _STAGE.get(status, 0)


def timed_by_source(event: Event) -> bool:
    """Whether ``occurred_at`` is the update's own time (the courier's, or for ``stuck`` the
    moment the alert was raised), not the arrival time taken because the push carried none:
    the normaliser dates a timeless update by its arrival (``occurred_at == received_at``)."""
    return event.status is Status.STUCK or event.occurred_at != event.received_at


def rank(event: Event) -> tuple[int, bool]:
    """What the store keeps with each delivery for ``ordering: latest``: (stage, timed)."""
    return stage_of(event), timed_by_source(event)


# Lane rows: (id, state, occurred_at, seq, next_attempt_at, lease_until, ordering, stage, timed)
_ID, _STATE, _OCCURRED, _SEQ, _NEXT, _LEASE, _ORDERING, _STAGE_COL, _TIMED = range(9)


def _rank(row: Sequence[Any]) -> tuple[Any, ...]:
    return (row[_STAGE_COL], bool(row[_TIMED]), row[_OCCURRED], row[_SEQ])


def plan_claims(lane: Sequence[Sequence[Any]], now: int) -> tuple[str | None, list[str]]:
    """The delivery to claim now (if any) and the ones to mark superseded."""
    best_delivered = max((_rank(r) for r in lane if r[_STATE] == "delivered"), default=None)
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
        elif (
            row[_ORDERING] == "latest"
            and best_delivered is not None
            and _rank(row) < best_delivered
        ):
            drop.append(row[_ID])
        else:
            waiting.append(row)
    if busy or not waiting:
        return None, drop
    if max(waiting, key=lambda r: r[_SEQ])[_ORDERING] == "latest":
        candidate = max(waiting, key=_rank)
        drop.extend(r[_ID] for r in waiting if r is not candidate and r[_ORDERING] == "latest")
    else:
        candidate = min(waiting, key=lambda r: r[_SEQ])
    return (candidate[_ID] if _due(candidate, now) else None), drop


def _due(row: Sequence[Any], now: int) -> bool:
    if row[_STATE] == "pending":
        return bool(row[_NEXT] <= now)
    return row[_LEASE] is None or row[_LEASE] <= now  # an expired lease
