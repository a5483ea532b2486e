"""The insights role on PostgreSQL: ``order_facts`` written with the events, and read for
scorecards and transit histories (`gateway.store.facts`), as on SQLite.

Percentiles are exact nearest-rank, never computed by loading the rows: an estimate's k-th
transit time is read with ``ORDER BY transit LIMIT 1 OFFSET k`` over an index whose order is
the transit time; a scorecard counts its window's orders per hour of transit (over an index in
that order, so nothing is sorted) and reads the k-th value inside the one hour that holds it
(`gateway.store.facts.Tally`). Times are
``timestamptz``; ``transit`` and ``pickup`` are whole seconds (stored generated columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from gateway.store.facts import (
    COLUMNS,
    MIN_SAMPLES,
    STAGES,
    CourierFigures,
    OrderFacts,
    Tally,
    TransitHistory,
    facts_from_row,
    fold,
    locate,
    nearest_rank,
    upsert_assignments,
)
from gateway.store.postgres.rows import Conn, decode_event

__all__ = [
    "COUNT_OLD_ORDERS",
    "PRUNE_ORDERS",
    "courier_figures",
    "courier_orders",
    "merge_copied",
    "order_facts",
    "rebuild",
    "record",
    "transit_history",
]

_TYPES = ("text",) * 6 + ("integer",) * 2 + ("timestamptz",) * len(STAGES)
UPSERT = (
    f"INSERT INTO order_facts ({', '.join(COLUMNS)})"
    f" SELECT * FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)})"
    f" ON CONFLICT (shop, order_id) DO UPDATE SET {upsert_assignments('order_facts', 'LEAST')}"
)
"""The merge rule of `gateway.store.facts`, one statement per batch."""
FACTS_LATEST = (
    "coalesce(greatest(created_at, shipped_at, delivered_at, returned_at, problem_at,"
    " stuck_at), '-infinity'::timestamptz)"
)
"""An order's latest stage time (none: ``-infinity``), as the ``order_facts_latest`` index
has it (schema migration 15)."""
_OLD_ORDERS = f"FROM order_facts WHERE {FACTS_LATEST} < %(orders)s::timestamptz"
PRUNE_ORDERS = (
    "WITH o AS (DELETE FROM order_facts WHERE (shop, order_id) IN"
    f" (SELECT shop, order_id {_OLD_ORDERS} LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING 1) SELECT count(*) FROM o"
)
"""Retention's ``orders`` step (`retention.orders`)."""
COUNT_OLD_ORDERS = f"SELECT count(*) {_OLD_ORDERS}"
GET = f"SELECT {', '.join(COLUMNS)} FROM order_facts WHERE order_id = %s AND shop = %s"
_KNOWN = (
    "SELECT count(*) FROM unnest(%(shops)s::text[], %(orders)s::text[]) AS k (shop, order_id)"
    " JOIN order_facts USING (shop, order_id)"
)
EVENTS_FROM = "SELECT seq, body::text FROM events WHERE seq > %s ORDER BY seq LIMIT %s"

_SCOPE = "courier = %(courier)s AND product = %(product)s AND transit IS NOT NULL"
_HISTORY_COUNT = (
    f"SELECT count(*) FROM order_facts WHERE shop = %(shop)s AND {_SCOPE}"
    " AND destination = %(destination)s"
)
_HISTORY_NTH_TO = (
    f"SELECT transit FROM order_facts WHERE shop = %(shop)s AND {_SCOPE}"
    " AND destination = %(destination)s ORDER BY transit LIMIT 1 OFFSET %(k)s"
)
_HISTORY_ALL_COUNT = f"SELECT count(*) FROM order_facts WHERE shop = %(shop)s AND {_SCOPE}"
_HISTORY_NTH = (
    f"SELECT transit FROM order_facts WHERE shop = %(shop)s AND {_SCOPE}"
    " ORDER BY transit LIMIT 1 OFFSET %(k)s"
)


def _time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


async def record(conn: Conn, facts: Iterable[OrderFacts]) -> None:
    """Merge these facts into the stored ones (inside the caller's transaction). Sorted by
    key, so two intakes merging into the same orders lock them in the same order."""
    rows = sorted(facts, key=lambda f: (f.shop, f.order_id))
    if rows:
        columns = [[getattr(f, c) for f in rows] for c in COLUMNS]
        await conn.execute(UPSERT, columns)


async def merge_copied(conn: Conn, facts: Sequence[OrderFacts]) -> int:
    """Merge the facts of another store (`gateway.store.moving`) into the stored ones (inside
    the caller's transaction): how many orders were not stored yet."""
    keys = {"shops": [f.shop for f in facts], "orders": [f.order_id for f in facts]}
    known = await _one(conn, _KNOWN, keys)
    await record(conn, facts)
    return len(facts) - int(known or 0)


async def rebuild(conn: Conn, *, chunk: int = 5000) -> None:
    """Fill ``order_facts`` from every stored event, in arrival order (a migration's step)."""
    last = 0
    while True:
        found = await (await conn.execute(EVENTS_FROM, (last, chunk))).fetchall()
        if not found:
            return
        await record(conn, fold(decode_event(r[1]) for r in found))
        last = found[-1][0]


async def order_facts(conn: Conn, order_id: str, shop: str) -> OrderFacts | None:
    row = await (await conn.execute(GET, (order_id, shop))).fetchone()
    return facts_from_row(row, _time) if row else None


async def _one(conn: Conn, statement: str, params: dict[str, Any]) -> Any:
    row = await (await conn.execute(statement, params)).fetchone()
    return None if row is None else row[0]


async def _nth(conn: Conn, statement: str, params: dict[str, Any], n: int, p: int) -> Any:
    if n == 0:
        return None
    return await _one(conn, statement, {**params, "k": nearest_rank(n, p)})


async def transit_history(
    conn: Conn, shop: str, courier: str, product: str, destination: str
) -> TransitHistory:
    params = {"shop": shop, "courier": courier, "product": product, "destination": destination}
    if destination:
        n = await _one(conn, _HISTORY_COUNT, params)
        if n >= MIN_SAMPLES:
            p50 = await _nth(conn, _HISTORY_NTH_TO, params, n, 50)
            p90 = await _nth(conn, _HISTORY_NTH_TO, params, n, 90)
            return TransitHistory(samples=n, p50=p50, p90=p90, destination=destination)
    n = await _one(conn, _HISTORY_ALL_COUNT, params)
    p50 = await _nth(conn, _HISTORY_NTH, params, n, 50)
    p90 = await _nth(conn, _HISTORY_NTH, params, n, 90)
    return TransitHistory(samples=n, p50=p50, p90=p90)


def _group(by_destination: bool) -> str:
    return "courier, product" + (", destination" if by_destination else "")


def _counts(by_destination: bool, shop: bool) -> str:
    """The rows of `gateway.store.facts.Tally.add`."""
    group = _group(by_destination)
    return (
        f"SELECT {group}, count(*), count(delivered_at), count(returned_at), count(problem_at),"
        " count(stuck_at), count(CASE WHEN delivered_at IS NOT NULL THEN est_max_days END),"
        " count(CASE WHEN delivered_at <= shipped_at + make_interval(days => est_max_days)"
        " THEN 1 END) FROM order_facts WHERE shipped_at >= %(since)s"
        + (" AND shop = ANY(%(shops)s)" if shop else "")
        + f" GROUP BY {group}"
    )


def _hours(column: str, by_destination: bool, shop: bool) -> str:
    """The rows of `gateway.store.facts.Tally.add_hours`: `column`'s histogram by hour."""
    group = _group(by_destination)
    return (
        f"SELECT {group}, {column}_hour, count(*) FROM order_facts"
        f" WHERE {column} IS NOT NULL AND shipped_at >= %(since)s"
        + (" AND shop = ANY(%(shops)s)" if shop else "")
        + f" GROUP BY {group}, {column}_hour"
    )


def _nth_in_hour(column: str, by_destination: bool, shop: bool) -> str:
    """The value of rank %(k)s among the window's values of `column` in hour %(hour)s."""
    where = f"courier = %(courier)s AND product = %(product)s AND {column}_hour = %(hour)s"
    if by_destination:
        where += " AND destination = %(destination)s"
    if shop:
        where += " AND shop = ANY(%(shops)s)"
    return (
        f"SELECT {column} FROM order_facts WHERE {where} AND {column} IS NOT NULL"
        f" AND shipped_at >= %(since)s ORDER BY {column} LIMIT 1 OFFSET %(k)s"
    )


async def _rows(conn: Conn, statement: str, params: dict[str, Any]) -> list[Any]:
    return await (await conn.execute(statement, params)).fetchall()


async def courier_figures(
    conn: Conn, since: datetime, shops: Sequence[str] | None, by_destination: bool
) -> list[CourierFigures]:
    if shops is not None and not shops:
        return []
    params: dict[str, Any] = {"since": since, "shops": None if shops is None else sorted(shops)}
    chosen = shops is not None
    tally = Tally(3 if by_destination else 2)
    for row in await _rows(conn, _counts(by_destination, chosen), params):
        tally.add(row)
    for which, column in enumerate(("transit", "pickup")):
        for row in await _rows(conn, _hours(column, by_destination, chosen), params):
            tally.add_hours(which, row)
    nth = {c: _nth_in_hour(c, by_destination, chosen) for c in ("transit", "pickup")}
    figures: list[CourierFigures] = []
    for key in sorted(tally.counts):
        scope = {**params, **dict(zip(("courier", "product", "destination"), key, strict=False))}
        found: dict[str, int | None] = {}
        for column, histogram in zip(("transit", "pickup"), tally.histograms[key], strict=True):
            for percent in (50, 90):
                at = locate(histogram, percent)
                value = None
                if at is not None:
                    value = await _one(conn, nth[column], {**scope, "hour": at[0], "k": at[1]})
                found[f"{column}_p{percent}"] = None if value is None else int(value)
        figures.append(tally.figures(key, found))
    return figures


async def courier_orders(
    conn: Conn,
    courier: str,
    since: datetime,
    shops: Sequence[str] | None,
    product: str | None,
    limit: int,
) -> list[OrderFacts]:
    where = "courier = %(courier)s AND shipped_at >= %(since)s"
    if product is not None:
        where += " AND product = %(product)s"
    if shops is not None:
        where += " AND shop = ANY(%(shops)s)"
    statement = (
        f"SELECT {', '.join(COLUMNS)} FROM order_facts WHERE {where}"
        " ORDER BY shipped_at DESC LIMIT %(limit)s"
    )
    params = {
        "courier": courier,
        "since": since,
        "product": product,
        "shops": None if shops is None else list(shops),
        "limit": limit,
    }
    rows = await (await conn.execute(statement, params)).fetchall()
    return [facts_from_row(r, _time) for r in rows]
