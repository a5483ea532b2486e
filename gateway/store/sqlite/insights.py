"""The insights role on SQLite: ``order_facts`` written with the events, and read for
scorecards and transit histories (`gateway.store.facts`).

Percentiles are exact nearest-rank, never computed by loading the rows: an estimate's k-th
transit time is read with ``ORDER BY transit LIMIT 1 OFFSET k`` over an index whose order is
the transit time; a scorecard counts its window's orders per hour of transit (over an index in
that order, so nothing is sorted) and reads the k-th value inside the one hour that holds it
(`gateway.store.facts.Tally`). Times are
integer microseconds; ``transit`` and ``pickup`` are whole seconds (generated columns).
"""

from __future__ import annotations

import sqlite3
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
)
from gateway.store.sqlite import insights_sql as sql
from gateway.store.sqlite.rows import decode_event, encode_rows, opt_time, to_us

__all__ = [
    "courier_figures",
    "courier_orders",
    "merge_copied",
    "order_facts",
    "rebuild",
    "record",
    "transit_history",
]


def _row(facts: OrderFacts) -> list[Any]:
    row: list[Any] = [getattr(facts, c) for c in COLUMNS[: -len(STAGES)]]
    row += [None if (t := getattr(facts, c)) is None else to_us(t) for c in STAGES]
    return row


def _facts(row: Sequence[Any]) -> OrderFacts:
    return facts_from_row(row, opt_time)


def record(conn: sqlite3.Connection, facts: Iterable[OrderFacts]) -> None:
    """Merge these facts into the stored ones (inside the caller's job: the intake's commit)."""
    rows = [_row(f) for f in facts]
    if rows:
        conn.execute(sql.UPSERT, (encode_rows(rows),))


def merge_copied(conn: sqlite3.Connection, facts: Sequence[OrderFacts]) -> int:
    """Merge the facts of another store (`gateway.store.moving`) into the stored ones: how
    many orders were not stored yet."""
    known = conn.execute(sql.KNOWN, (encode_rows([[f.shop, f.order_id] for f in facts]),))
    new = len(facts) - int(known.fetchone()[0])
    record(conn, facts)
    return new


def rebuild(conn: sqlite3.Connection, *, chunk: int = 5000) -> None:
    """Fill ``order_facts`` from every stored event, in arrival order (a migration's step)."""
    last = 0
    while True:
        found = conn.execute(sql.EVENTS_FROM, (last, chunk)).fetchall()
        if not found:
            return
        record(conn, fold(decode_event(r[1]) for r in found))
        last = found[-1][0]


def order_facts(conn: sqlite3.Connection, order_id: str, shop: str) -> OrderFacts | None:
    row = conn.execute(sql.GET, (order_id, shop)).fetchone()
    return _facts(row) if row else None


def _nth(conn: sqlite3.Connection, statement: str, params: dict[str, Any], n: int, p: int) -> Any:
    if n == 0:
        return None
    return conn.execute(statement, {**params, "k": nearest_rank(n, p)}).fetchone()[0]


def transit_history(
    conn: sqlite3.Connection, shop: str, courier: str, product: str, destination: str
) -> TransitHistory:
    params = {"shop": shop, "courier": courier, "product": product, "destination": destination}
    if destination:
        n = conn.execute(sql.HISTORY_COUNT, params).fetchone()[0]
        if n >= MIN_SAMPLES:
            p50, p90 = (_nth(conn, sql.HISTORY_NTH_TO, params, n, p) for p in (50, 90))
            return TransitHistory(samples=n, p50=p50, p90=p90, destination=destination)
    n = conn.execute(sql.HISTORY_ALL_COUNT, params).fetchone()[0]
    p50, p90 = (_nth(conn, sql.HISTORY_NTH, params, n, p) for p in (50, 90))
    return TransitHistory(samples=n, p50=p50, p90=p90)


def courier_figures(
    conn: sqlite3.Connection, since: datetime, shops: Sequence[str] | None, by_destination: bool
) -> list[CourierFigures]:
    if shops is not None and not shops:
        return []
    params: dict[str, Any] = {
        "since": to_us(since),
        "shops": None if shops is None else encode_rows(sorted(shops)).decode(),
    }
    chosen = shops is not None
    tally = Tally(3 if by_destination else 2)
    for row in conn.execute(sql.counts(by_destination, chosen), params):
        tally.add(row)
    for which, column in enumerate(("transit", "pickup")):
        for row in conn.execute(sql.hours(column, by_destination, chosen), params):
            tally.add_hours(which, row)
    nth = {c: sql.nth_in_hour(c, by_destination, chosen) for c in ("transit", "pickup")}
    figures: list[CourierFigures] = []
    for key in sorted(tally.counts):
        scope = {**params, **dict(zip(("courier", "product", "destination"), key, strict=False))}
        found: dict[str, int | None] = {}
        for column, histogram in zip(("transit", "pickup"), tally.histograms[key], strict=True):
            for percent in (50, 90):
                found[f"{column}_p{percent}"] = _in_hour(
                    conn, nth[column], scope, locate(histogram, percent)
                )
        figures.append(tally.figures(key, found))
    return figures


def _in_hour(
    conn: sqlite3.Connection, statement: str, scope: dict[str, Any], at: tuple[int, int] | None
) -> int | None:
    if at is None:
        return None
    hour, k = at
    row = conn.execute(statement, {**scope, "hour": hour, "k": k}).fetchone()
    return None if row is None else int(row[0])


def courier_orders(
    conn: sqlite3.Connection,
    courier: str,
    since: datetime,
    shops: Sequence[str] | None,
    product: str | None,
    limit: int,
) -> list[OrderFacts]:
    if shops is not None and not shops:
        return []
    where = "courier = ? AND shipped_at >= ?"
    params: list[Any] = [courier, to_us(since)]
    if product is not None:
        where += " AND product = ?"
        params.append(product)
    if shops is not None:
        where += f" AND shop IN ({', '.join('?' * len(shops))})"
        params += list(shops)
    statement = sql.orders_of(where)
    return [_facts(r) for r in conn.execute(statement, [*params, limit]).fetchall()]
