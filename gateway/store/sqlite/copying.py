"""Rows in and out of SQLite for moving a store (`gateway.store.moving`): times are integer
microseconds here and aware datetimes in the neutral shape."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from gateway.store.facts import copied_events, facts_from_row, fold
from gateway.store.moving import Table
from gateway.store.sqlite import insights, sql
from gateway.store.sqlite.rows import from_us, to_us

__all__ = ["export_rows", "import_rows"]


def export_rows(
    conn: sqlite3.Connection, table: Table, after: int | str | None, limit: int
) -> tuple[list[tuple[Any, ...]], int | str | None]:
    statement = sql.copy_out(table.name, table.key, table.columns)
    found = conn.execute(statement, (after, limit)).fetchall()
    rows = [
        tuple(
            _neutral(value, column in table.times)
            for column, value in zip(table.columns, row[1:], strict=True)
        )
        for row in found
    ]
    return rows, (found[-1][0] if len(found) == limit else None)


def import_rows(conn: sqlite3.Connection, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
    if table.name == "order_facts":  # merged with what the target knows of the orders
        return insights.merge_copied(conn, [facts_from_row(r, _as_time) for r in rows])
    if table.name == "attempts":
        statement = sql.COPY_IN_ATTEMPT
    else:
        statement = sql.copy_in(table.name, table.columns)
    before = conn.total_changes
    conn.executemany(
        statement,
        [
            tuple(to_us(value) if isinstance(value, datetime) else value for value in row)
            for row in rows
        ],
    )
    copied = conn.total_changes - before
    if table.name == "events":  # the orders' facts, as the intake's events make them
        insights.record(conn, fold(copied_events(rows, table.columns.index("body"))))
    return copied


def _as_time(value: Any) -> datetime | None:
    return value if isinstance(value, datetime) else None


def _neutral(value: Any, is_time: bool) -> Any:
    if value is None:
        return None
    if is_time:
        return from_us(value)
    if isinstance(value, memoryview):
        return bytes(value)
    return value
