"""Retention on SQLite: each prune step is one writer job, so one short commit (see sql.py)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.roles import Cutoffs, Pruned, PruneStep
from gateway.store.sqlite import insights_sql, sql
from gateway.store.sqlite.rows import encode_rows, to_us

__all__ = ["count_prunable", "prune"]

_PAST_EVERY_ROW = 1 << 62
"""The bound when no row is young enough to stay: every row may be looked at."""


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else to_us(moment)


def _bound(conn: sqlite3.Connection, young: str, cutoff: int | None) -> int:
    """The first seq (or id) of a row that arrived at or after `cutoff`: rows before it are
    the only candidates. No cut-off: nothing is a candidate."""
    if cutoff is None:
        return 0
    row = conn.execute(young, (cutoff,)).fetchone()
    return _PAST_EVERY_ROW if row is None else int(row[0])


def _params(conn: sqlite3.Connection, cutoffs: Cutoffs) -> dict[str, Any]:
    delivered, dead = _us(cutoffs.delivered), _us(cutoffs.dead)
    either = [c for c in (delivered, dead) if c is not None]
    params: dict[str, Any] = {
        "pushes": _us(cutoffs.pushes),
        "events": _us(cutoffs.events),
        "delivered": delivered,
        "dead": dead,
        "rejected": _us(cutoffs.rejected),
        "bound": _bound(conn, sql.DELIVERIES_YOUNG, max(either) if either else None),
    }
    params["events_bound"] = _bound(conn, sql.EVENTS_YOUNG, params["events"])
    params["pushes_bound"] = _bound(conn, sql.PUSHES_YOUNG, params["pushes"])
    params["rejected_bound"] = _bound(conn, sql.REJECTED_YOUNG, params["rejected"])
    return params


def _remove_deliveries(conn: sqlite3.Connection, ids: Sequence[str]) -> tuple[int, int]:
    """Delete deliveries, their attempts and (grouped messages) their list of events
    (attempts first: none is left without one)."""
    if not ids:
        return 0, 0
    listed = encode_rows(list(ids))
    attempts = conn.execute(sql.PRUNE_ATTEMPTS, (listed,)).rowcount
    conn.execute(sql.PRUNE_GROUP_EVENTS, (listed,))
    deliveries = conn.execute(sql.PRUNE_DELIVERIES, (listed,)).rowcount
    return deliveries, attempts


def prune(conn: sqlite3.Connection, step: PruneStep, cutoffs: Cutoffs, limit: int) -> Pruned:
    """One step's batch (a writer job: it commits with its group)."""
    if step == "deliveries":
        delivered, dead = _us(cutoffs.delivered), _us(cutoffs.dead)
        either = [c for c in (delivered, dead) if c is not None]
        if not either:
            return Pruned()
        params = {
            "bound": _bound(conn, sql.DELIVERIES_YOUNG, max(either)),
            "delivered": delivered,
            "dead": dead,
            "limit": limit,
        }
        ids = [r[0] for r in conn.execute(sql.PRUNABLE_DELIVERIES, params)]
        deliveries, attempts = _remove_deliveries(conn, ids)
        if delivered is not None:
            conn.execute(sql.PRUNE_IDLE_GROUPS, (delivered,))
        return Pruned(deliveries=deliveries, attempts=attempts)
    if step == "events":
        if cutoffs.events is None:
            return Pruned()
        events = _us(cutoffs.events)
        params = {
            "bound": _bound(conn, sql.EVENTS_YOUNG, events),
            "events": events,
            "dead": _us(cutoffs.dead),
            "limit": limit,
        }
        chosen = [(r[0], r[1]) for r in conn.execute(sql.PRUNABLE_EVENTS, params)]
        if not chosen:
            return Pruned()
        found = conn.execute(sql.DELIVERIES_OF_EVENTS, (encode_rows(chosen),))
        deliveries, attempts = _remove_deliveries(conn, [r[0] for r in found])
        removed = conn.execute(sql.PRUNE_EVENTS, (encode_rows([e for e, _ in chosen]),))
        return Pruned(events=removed.rowcount, deliveries=deliveries, attempts=attempts)
    if step == "orders":
        if cutoffs.orders is None:
            return Pruned()
        params = {"orders": _us(cutoffs.orders), "limit": limit}
        return Pruned(orders=conn.execute(insights_sql.PRUNE_ORDERS, params).rowcount)
    if step == "pushes":
        pushes = _us(cutoffs.pushes)
        bound = _bound(conn, sql.PUSHES_YOUNG, pushes)
        params = {"bound": bound, "pushes": pushes, "limit": limit}
        return Pruned(pushes=conn.execute(sql.PRUNE_PUSHES, params).rowcount)
    rejected = _us(cutoffs.rejected)
    bound = _bound(conn, sql.REJECTED_YOUNG, rejected)
    params = {"bound": bound, "rejected": rejected, "limit": limit}
    return Pruned(rejected=conn.execute(sql.PRUNE_REJECTED, params).rowcount)


def count_prunable(conn: sqlite3.Connection, cutoffs: Cutoffs) -> Pruned:
    events, deliveries, attempts, pushes, rejected = conn.execute(
        sql.COUNT_PRUNABLE, _params(conn, cutoffs)
    ).fetchone()
    orders = 0
    if cutoffs.orders is not None:
        (orders,) = conn.execute(
            insights_sql.COUNT_OLD_ORDERS, {"orders": _us(cutoffs.orders)}
        ).fetchone()
    return Pruned(
        pushes=pushes,
        events=events,
        deliveries=deliveries,
        attempts=attempts,
        rejected=rejected,
        orders=orders,
    )
