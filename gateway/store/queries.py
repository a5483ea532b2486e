"""The filters of the admin's list statements, for every backend.

Which conditions a query adds, in what order, and what each binds is the same on SQLite and on
PostgreSQL; the backends differ only in their placeholder and in how they bind a time, which a
`Dialect` names. Each backend's sql.py passes the head of the statement (its columns, its
casts) and keeps every other statement of its own; every value is bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.delivery.model import DeliveryFilter
from gateway.store.roles import EventQuery, PushQuery

__all__ = ["Dialect", "select"]


def select(head: str, where: Sequence[str], tail: str = "") -> str:
    sql = head
    if where:
        sql += " WHERE " + " AND ".join(where)
    return sql + tail


@dataclass(frozen=True, slots=True)
class Dialect:
    """How one backend binds a value: its placeholder, and what it binds for a time."""

    mark: str
    time: Callable[[datetime], Any]
    awb: str
    """The expression of an event's AWB in its stored body (the one its index is on)."""

    def _where(
        self, conditions: Iterable[tuple[str, Any]], shops: Sequence[str] | None = None
    ) -> tuple[list[str], list[Any]]:
        """The conditions whose value is given, each ``{}`` bound to it; then, when `shops` is
        given, the row's shop among them (an empty `shops` matches nothing)."""
        given = [(condition, value) for condition, value in conditions if value is not None]
        where, params = [c.format(self.mark) for c, _ in given], [v for _, v in given]
        if shops is not None:
            marks = ", ".join([self.mark] * len(shops))
            where.append(f"shop IN ({marks})" if shops else "1 = 0")
            params.extend(shops)
        return where, params

    def _since(self, moment: datetime | None) -> Any:
        return None if moment is None else self.time(moment)

    def _page(self, head: str, where: Sequence[str]) -> str:
        return select(head, where, f" ORDER BY seq DESC LIMIT {self.mark}")

    def list_pushes(self, head: str, query: PushQuery) -> tuple[str, list[Any]]:
        where, params = self._where(
            (
                ("state = {}", query.state),
                ("source = {}", query.source),
                ("received_at >= {}", self._since(query.since)),
                ("seq < {}", query.before_seq),
            ),
            query.shops,
        )
        return self._page(head, where), [*params, query.limit]

    def list_events(self, head: str, query: EventQuery) -> tuple[str, list[Any]]:
        """One row more than the page, to tell whether another page follows."""
        where, params = self._where(
            (
                ("order_id = {}", query.order_id),
                (f"{self.awb} = {{}}", query.awb),
                ("status = {}", None if query.status is None else query.status.value),
                ("received_at >= {}", self._since(query.since)),
                ("seq < {}", query.before_seq),
            ),
            query.shops,
        )
        return self._page(head, where), [*params, query.limit + 1]

    def _delivery_filter(
        self, query: DeliveryFilter, *, before: str | None = None
    ) -> tuple[list[str], list[Any]]:
        return self._where(
            (
                ("state = {}", query.state),
                ("sink = {}", query.sink),
                ("order_id = {}", query.order_id),
                ("event_id = {}", query.event_id),
                ("created_at >= {}", self._since(query.since)),
                ("seq < (SELECT seq FROM deliveries WHERE id = {})", before),
            ),
            query.shops,
        )

    def list_deliveries(self, head: str, query: DeliveryFilter) -> tuple[str, list[Any]]:
        where, params = self._delivery_filter(query, before=query.before)
        return self._page(head, where), [*params, query.limit]

    def replay(self, head: str, query: DeliveryFilter, now: datetime) -> tuple[str, list[Any]]:
        """Only ``dead`` deliveries, whatever state the filter names; `head` binds `now` twice."""
        where, params = self._delivery_filter(
            DeliveryFilter(
                state="dead",
                sink=query.sink,
                order_id=query.order_id,
                since=query.since,
                shops=query.shops,
            )
        )
        stamp = self.time(now)
        return select(head, where), [stamp, stamp, *params]

    def list_rejected(
        self, head: str, limit: int, shops: Sequence[str] | None
    ) -> tuple[str, list[Any]]:
        where, params = self._where((), shops)
        return select(head, where, f" ORDER BY id DESC LIMIT {self.mark}"), [*params, limit]

    def count_rejected(self, head: str, shops: Sequence[str] | None) -> tuple[str, list[Any]]:
        where, params = self._where((), shops)
        return select(head, where), params
