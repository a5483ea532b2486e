"""Moving a store on PostgreSQL (`Portable`, for ``kabarin store migrate``): rows out by key,
in pages, and rows in, exactly as they were."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gateway.store.facts import copied_events, facts_from_row, fold
from gateway.store.moving import Table
from gateway.store.postgres import insights, sql
from gateway.store.postgres.rows import Conn, as_bytes

__all__ = ["export_rows", "import_rows"]


async def export_rows(
    conn: Conn, table: Table, after: int | str | None, limit: int
) -> tuple[list[tuple[Any, ...]], int | str | None]:
    key_type = "bigint" if table.key in ("seq", "id") and not table.text_key else "text"
    statement = sql.copy_out(table.name, table.key, key_type, table.columns)
    found = await (await conn.execute(statement, {"after": after, "limit": limit})).fetchall()
    rows = [tuple(as_bytes(v) for v in r[1:]) for r in found]
    return rows, (found[-1][0] if len(found) == limit else None)


async def import_rows(conn: Conn, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
    """(A transaction, the caller's.)"""
    if table.name == "order_facts":  # merged with what the target knows of the orders
        return await insights.merge_copied(conn, [facts_from_row(r, _as_time) for r in rows])
    async with conn.cursor() as cur:
        if table.name == "attempts":
            params = [dict(zip(table.columns, row, strict=True)) for row in rows]
            await cur.executemany(sql.COPY_IN_ATTEMPT, params)
        else:
            await cur.executemany(sql.copy_in(table.name, table.columns), rows)
        copied = max(cur.rowcount, 0)  # summed over the rows by executemany
    # The pull tracker follows the orders of copied events and contacts, as it does those the
    # intake stores.
    if table.name == "events":
        await conn.execute(sql.TRACK_COPIED_EVENTS, ([r[0] for r in rows],))
        # ... and knows their orders' facts, as it does those of the events the intake stores.
        await insights.record(conn, fold(copied_events(rows, table.columns.index("body"))))
    elif table.name == "contacts":
        now = datetime.now(UTC)
        shop = table.columns.index("shop")
        await conn.execute(sql.TRACK_CONTACTS, (now, [r[0] for r in rows], [r[shop] for r in rows]))
    return copied


def _as_time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None
