"""Moving a store: copy what Kabarin keeps from one store to another (SQLite to PostgreSQL, or
back), as ``kabarin store migrate --from URL --to URL`` does.

Each backend exports a table's rows page by page in one neutral shape (the columns of `TABLES`,
times as aware UTC datetimes, push bodies as bytes, event bodies as their JSON text exactly as
stored) and imports them, skipping a row the target
already has (by its id; attempts, which have no id of their own, by delivery, start time and
outcome). So a copy can be stopped and run again: the second run copies only what is missing.
Tables go in an order that puts every row after the rows it names (events after their push,
deliveries after their event or digest run, attempts after their delivery, groups after their
messages).

The orders' facts (``order_facts``) are copied too, before the events: retention keeps them
longer than the events they were made of (``retention.orders``, ``retention.events``). They
are merged into the target's by the merge rule of `gateway.store.facts`, as the facts of the
copied events are, so both kinds of history arrive whole; "copied" counts the orders the target
did not know.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from gateway.store.facts import COLUMNS as FACT_COLUMNS
from gateway.store.facts import STAGES

__all__ = ["TABLES", "Portable", "Table", "copy_store"]


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[str, ...]
    key: str
    """The column (or unique expression) pages are taken in order of (a sequence, or the
    primary key)."""
    times: frozenset[str] = frozenset()
    """Columns holding a moment."""
    text_key: bool = False
    """`key` is text (``id`` is a number unless this says otherwise)."""


TABLES: tuple[Table, ...] = (
    Table(
        "pushes",
        (
            "id",
            "source",
            "method",
            "items",
            "received_at",
            "content_type",
            "body",
            "state",
            "error",
            "processed_at",
            "accepted",
            "duplicates",
            "origin",
            "shop",
        ),
        key="seq",
        times=frozenset({"received_at", "processed_at"}),
    ),
    Table(
        "order_facts",
        FACT_COLUMNS,
        # Unique, and ordered alike by both backends' text: shop ids hold no `/`.
        key="shop || '/' || order_id",
        times=frozenset(STAGES),
    ),
    Table(
        "events",
        (
            "id",
            "order_id",
            "status",
            "method",
            "occurred_at",
            "received_at",
            "body",
            "push_id",
            "shop",
        ),
        key="seq",
        times=frozenset({"occurred_at", "received_at"}),
    ),
    Table(
        "digest_runs",
        ("id", "digest", "order_id", "period", "created_at", "body"),
        key="seq",
        times=frozenset({"period", "created_at"}),
    ),
    Table(
        "deliveries",
        (
            "id",
            "event_id",
            "route",
            "sink",
            "order_id",
            "occurred_at",
            "ordering",
            "template",
            "state",
            "attempts",
            "next_attempt_at",
            "lease_owner",
            "lease_until",
            "last_error",
            "created_at",
            "updated_at",
            "delivered_at",
            "waiting",
            "fallback_of",
            "stage",
            "timed",
            "started_at",
            "shop",
        ),
        key="seq",
        times=frozenset(
            {
                "occurred_at",
                "next_attempt_at",
                "lease_until",
                "created_at",
                "updated_at",
                "delivered_at",
                "started_at",
            }
        ),
    ),
    Table(
        "attempts",
        ("delivery_id", "started_at", "duration_ms", "outcome", "status_code", "error"),
        key="id",
        times=frozenset({"started_at"}),
    ),
    Table(
        "groups",
        (
            "id",
            "route",
            "sink",
            "key",
            "open_message",
            "last_closed_at",
            "created_at",
            "updated_at",
        ),
        key="id",
        times=frozenset({"last_closed_at", "created_at", "updated_at"}),
        text_key=True,
    ),
    Table("group_events", ("message_id", "group_id", "event_id"), key="seq"),
    Table(
        "contacts",
        ("order_id", "name", "phone", "email", "language", "updated_at", "registered_at", "shop"),
        # Unique, and ordered alike by both backends' text: shop ids hold no `/`.
        key="shop || '/' || order_id",
        times=frozenset({"updated_at", "registered_at"}),
    ),
    Table(
        "sink_state",
        ("sink", "disabled_reason", "disabled_at"),
        key="sink",
        times=frozenset({"disabled_at"}),
    ),
    Table(
        "digests",
        ("name", "last_period", "updated_at"),
        key="name",
        times=frozenset({"last_period", "updated_at"}),
    ),
)

PAGE = 2000
"""Rows read and written per step: one transaction on the target each."""


@runtime_checkable
class Portable(Protocol):
    """A store whose rows can be copied to another backend."""

    async def export_rows(
        self, table: Table, *, after: int | str | None, limit: int
    ) -> tuple[list[tuple[Any, ...]], int | str | None]:
        """Up to `limit` rows (in `table.columns` order) past `after` (``None``: from the
        start), and where the next page starts (``None``: this was the last)."""
        ...

    async def import_rows(self, table: Table, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert the rows the store does not have yet, in one transaction: how many."""
        ...


async def copy_store(
    source: Portable,
    target: Portable,
    *,
    progress: Callable[[str, int, int], None] = lambda table, read, copied: None,
) -> dict[str, tuple[int, int]]:
    """Copy every table of `TABLES`: per table, (rows read, rows copied); rows the target
    already had are read and not copied again."""
    counts: dict[str, tuple[int, int]] = {}
    for table in TABLES:
        read = copied = 0
        after: int | str | None = None
        while True:
            rows, after = await source.export_rows(table, after=after, limit=PAGE)
            if rows:
                copied += await target.import_rows(table, rows)
                read += len(rows)
                progress(table.name, read, copied)
            if after is None:
                break
        counts[table.name] = (read, copied)
    return counts
