"""Retention on PostgreSQL: one bounded step of pruning at a time, counting, and size.

Each step is one statement, `limit` rows at most (a step's cascade, the deliveries of pruned
events and their attempts, in the same statement), so a replica pruning never holds locks
long and the others keep claiming beside it.
"""

from __future__ import annotations

from typing import Any

from gateway.store.postgres import insights, sql
from gateway.store.postgres.rows import Conn
from gateway.store.roles import Cutoffs, Pruned, PruneStep

__all__ = ["count_prunable", "prune", "size_bytes"]


async def prune(conn: Conn, step: PruneStep, cutoffs: Cutoffs, limit: int) -> Pruned:
    params = {**_cutoff_params(cutoffs), "limit": limit}
    if step == "deliveries":
        row = await (await conn.execute(sql.PRUNE_DELIVERIES, params)).fetchone()
        return Pruned() if row is None else Pruned(deliveries=row[1], attempts=row[2])
    if step == "events":
        row = await (await conn.execute(sql.PRUNE_EVENTS, params)).fetchone()
        if row is None:
            return Pruned()
        return Pruned(events=row[0], deliveries=row[1], attempts=row[2])
    if step == "orders":
        row = await (await conn.execute(insights.PRUNE_ORDERS, params)).fetchone()
        return Pruned(orders=0 if row is None else int(row[0]))
    statement = sql.PRUNE_PUSHES if step == "pushes" else sql.PRUNE_REJECTED
    row = await (await conn.execute(statement, params)).fetchone()
    removed = 0 if row is None else int(row[0])
    return Pruned(pushes=removed) if step == "pushes" else Pruned(rejected=removed)


async def count_prunable(conn: Conn, cutoffs: Cutoffs) -> Pruned:
    params = _cutoff_params(cutoffs)
    row = await (await conn.execute(sql.COUNT_PRUNABLE, params)).fetchone()
    if row is None:
        return Pruned()
    events, deliveries, attempts, pushes, rejected = (int(v) for v in row)
    orders = 0
    if cutoffs.orders is not None:
        found = await (await conn.execute(insights.COUNT_OLD_ORDERS, params)).fetchone()
        orders = 0 if found is None else int(found[0])
    return Pruned(
        pushes=pushes,
        events=events,
        deliveries=deliveries,
        attempts=attempts,
        rejected=rejected,
        orders=orders,
    )


async def size_bytes(conn: Conn) -> int:
    row = await (await conn.execute(sql.SIZE_BYTES)).fetchone()
    return 0 if row is None else int(row[0])


def _cutoff_params(cutoffs: Cutoffs) -> dict[str, Any]:
    return {
        "pushes": cutoffs.pushes,
        "events": cutoffs.events,
        "delivered": cutoffs.delivered,
        "dead": cutoffs.dead,
        "rejected": cutoffs.rejected,
        "orders": cutoffs.orders,
    }
