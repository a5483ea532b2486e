"""Routes tested against history (``kabarin routes test``), sending and storing nothing.

`History` runs stored events through another configuration: how many deliveries each (route,
sink) would get, a few messages rendered as the dispatcher renders them (`Templates.message`,
with the parcel's delivery estimate when a template reads it, as ``kabarin simulate`` does)
and masked, the template errors, and, given the configuration in
use, which (route, sink) pairs gain or lose deliveries and how many events change destination.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import datetime
from typing import Protocol

import msgspec

from gateway.config import Config
from gateway.delivery.model import NewDelivery
from gateway.delivery.preparation import Estimates, estimate_to_render
from gateway.errors import TemplateError
from gateway.events import Contact, Event
from gateway.insights.estimates import Estimate, estimate_for
from gateway.redaction import Redactor
from gateway.routing import Router
from gateway.store.facts import InsightsStore
from gateway.store.roles import AdminReader, EventQuery
from gateway.templating import Templates
from sinks.base import Sink

__all__ = [
    "DryRunReport",
    "History",
    "PairChange",
    "PairReport",
    "Sample",
    "format_report",
    "stored_events",
]

_PAGE = 500


class Reader(AdminReader, InsightsStore, Protocol):
    """What `History.read` reads: the events and contacts, and the order facts estimates
    come from."""


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    event_id: str
    order_id: str
    status: str
    message: str
    """What the sink would send (`Sink.preview`), masked."""


class PairReport(msgspec.Struct, kw_only=True):
    """One (route, sink) of the tested configuration."""

    route: str
    sink: str
    deliveries: int = 0
    template_errors: int = 0
    first_error: str | None = None
    """The first template error, with the event it happened on, masked."""
    samples: list[Sample] = msgspec.field(default_factory=list)


class PairChange(msgspec.Struct, frozen=True, kw_only=True):
    """A (route, sink) whose deliveries differ between the configuration in use and the tested."""

    route: str
    sink: str
    before: int
    """Deliveries under the configuration in use."""
    after: int
    """Deliveries under the tested configuration."""
    gained: int
    """Events it would get that it does not get now."""
    lost: int
    """Events it gets now that it would no longer get."""


class Diff(msgspec.Struct, frozen=True, kw_only=True):
    against: str
    """The configuration in use (its file)."""
    events_changed: int
    """Events whose (route, sink) pairs differ."""
    pairs: list[PairChange]


class DryRunReport(msgspec.Struct, frozen=True, kw_only=True):
    config: str
    store: str
    since: datetime | None
    events: int
    unrouted: int
    """Events that match no route of the tested configuration."""
    template_errors: int
    pairs: list[PairReport]
    diff: Diff | None = None


async def stored_events(
    store: AdminReader, since: datetime | None, shops: tuple[str, ...] | None = None
) -> AsyncIterator[Event]:
    """Every event the store holds received at or after `since` (of `shops` only, when given),
    newest first, page by page."""
    cursor: int | None = None
    while True:
        query = EventQuery(since=since, limit=_PAGE, before_seq=cursor, shops=shops)
        page = await store.list_events(query)
        for item in page.items:
            yield item.event
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


class History:
    """Runs events through `config` (and `current`, to compare) one at a time, then `report`s.

    Nothing is sent and nothing is stored: each delivery is rendered as the dispatcher would,
    and only counted, sampled or reported.
    """

    def __init__(
        self,
        config: Config,
        sinks: Mapping[str, Sink],
        redactor: Redactor,
        *,
        samples: int = 3,
        current: Config | None = None,
    ) -> None:
        self._router = Router.from_config(config)
        self._current = None if current is None else Router.from_config(current)
        self._templates = Templates.for_config(config)
        self._sinks = sinks
        self._redactor = redactor
        self._samples = samples
        self._pairs = {
            (route.name, sink): PairReport(route=route.name, sink=sink)
            for route in self._router.routes
            for sink in route.sinks
        }
        self._events = 0
        self._unrouted = 0
        self._errors = 0
        self._before: dict[tuple[str, str], int] = {}
        self._gained: dict[tuple[str, str], int] = {}
        self._lost: dict[tuple[str, str], int] = {}
        self._changed = 0

    async def read(
        self, store: Reader, since: datetime | None, shops: tuple[str, ...] | None = None
    ) -> None:
        """`add` every event `store` holds received at or after `since` (of `shops` only, when
        given), with its contact, and the parcel's delivery estimate for the messages whose
        templates read it (as the dispatcher would look it up now)."""
        contacts: dict[tuple[str, str], Contact | None] = {}
        known: dict[tuple[str, str], Estimate | None] = {}

        async def estimates(order_id: str, shop: str) -> Estimate | None:
            if (shop, order_id) not in known:
                known[shop, order_id] = await estimate_for(store, order_id, shop=shop)
            return known[shop, order_id]

        async for event in stored_events(store, since, shops):
            order = (event.shop, event.order_id)
            if order not in contacts:
                contacts[order] = await store.get_contact(event.order_id, shop=event.shop)
            self.add(
                event, contacts[order], await self._estimates(event, contacts[order], estimates)
            )

    async def _estimates(
        self, event: Event, contact: Contact | None, estimates: Estimates
    ) -> dict[tuple[str, str], Estimate | None]:
        """The estimate each sampled delivery of `event` renders with, by (route, sink)."""
        out: dict[tuple[str, str], Estimate | None] = {}
        for delivery in self._router.deliveries(event):
            pair = self._pairs[delivery.route, delivery.sink]
            if len(pair.samples) >= self._samples:
                continue  # not shown: rendered only for its template errors
            try:
                out[delivery.route, delivery.sink] = await estimate_to_render(
                    estimates,
                    self._templates,
                    self._sinks[delivery.sink],
                    delivery,
                    event=event,
                    contact=contact,
                )
            except TemplateError:
                continue  # rendering reports it
        return out

    def add(
        self,
        event: Event,
        contact: Contact | None,
        estimates: Mapping[tuple[str, str], Estimate | None] | None = None,
    ) -> None:
        """Route `event` under both configurations and render its deliveries (with
        `estimates`' estimate, by (route, sink))."""
        self._events += 1
        deliveries = self._router.deliveries(event)
        if not deliveries:
            self._unrouted += 1
        for delivery in deliveries:
            pair = self._pairs[delivery.route, delivery.sink]
            pair.deliveries += 1
            estimate = (estimates or {}).get((delivery.route, delivery.sink))
            self._render(pair, delivery, event, contact, estimate)
        if self._current is not None:
            after = {(d.route, d.sink) for d in deliveries}
            before = {(d.route, d.sink) for d in self._current.deliveries(event)}
            for key in before:
                self._before[key] = self._before.get(key, 0) + 1
            for key in after - before:
                self._gained[key] = self._gained.get(key, 0) + 1
            for key in before - after:
                self._lost[key] = self._lost.get(key, 0) + 1
            self._changed += before != after

    def _render(
        self,
        pair: PairReport,
        delivery: NewDelivery,
        event: Event,
        contact: Contact | None,
        estimate: Estimate | None,
    ) -> None:
        sink = self._sinks[delivery.sink]
        try:
            message = self._templates.message(
                sink, delivery, event=event, contact=contact, estimate=estimate
            )
        except TemplateError as exc:
            self._errors += 1
            pair.template_errors += 1
            if pair.first_error is None:
                pair.first_error = self._redactor.redact(
                    f"event {event.id} (order {event.order_id}, {event.status.value}): {exc}"
                )
            return
        if len(pair.samples) < self._samples:
            pair.samples.append(
                Sample(
                    event_id=event.id,
                    order_id=event.order_id,
                    status=event.status.value,
                    message=self._redactor.redact(sink.preview(message)),
                )
            )

    def report(
        self, *, config: str, store: str, since: datetime | None, against: str | None = None
    ) -> DryRunReport:
        diff = None
        if self._current is not None:
            after = {key: pair.deliveries for key, pair in self._pairs.items()}
            order = [*after, *(key for key in self._before if key not in after)]
            changes = [
                PairChange(
                    route=route,
                    sink=sink,
                    before=self._before.get((route, sink), 0),
                    after=after.get((route, sink), 0),
                    gained=self._gained.get((route, sink), 0),
                    lost=self._lost.get((route, sink), 0),
                )
                for route, sink in order
                if (route, sink) in self._gained or (route, sink) in self._lost
            ]
            diff = Diff(against=against or "", events_changed=self._changed, pairs=changes)
        return DryRunReport(
            config=config,
            store=store,
            since=since,
            events=self._events,
            unrouted=self._unrouted,
            template_errors=self._errors,
            pairs=list(self._pairs.values()),
            diff=diff,
        )


def format_report(report: DryRunReport) -> str:
    """The report as the terminal shows it: the table, template errors, samples, the diff."""
    since = f" received since {report.since.isoformat(timespec='seconds')}" if report.since else ""
    lines = [
        f"{report.config}: {report.events} stored event(s){since} in {report.store}"
        " (nothing sent or stored)",
        "",
    ]
    lines += _table(
        ("ROUTE", "SINK", "DELIVERIES", "TEMPLATE ERRORS"),
        [(p.route, p.sink, p.deliveries, p.template_errors) for p in report.pairs],
    )
    if not report.pairs:
        lines.append("(no routes)")
    lines.append(f"events matching no route: {report.unrouted}")
    failing = [p for p in report.pairs if p.template_errors]
    if failing:
        lines += ["", f"template errors: {report.template_errors}"]
        for p in failing:
            lines.append(f"  route {p.route} -> sink {p.sink}: {p.template_errors}, first:")
            lines.append(f"    {p.first_error}")
    sampled = [p for p in report.pairs if p.samples]
    if sampled:
        lines += ["", "samples"]
        for p in sampled:
            for s in p.samples:
                lines.append(
                    f"  route {p.route} -> sink {p.sink}: event {s.event_id}"
                    f" (order {s.order_id}, {s.status})"
                )
                lines += [f"    | {line}" for line in s.message.splitlines() or [""]]
    if report.diff is not None:
        diff = report.diff
        lines += ["", f"changes against {diff.against}"]
        if diff.pairs:
            lines += _table(
                ("ROUTE", "SINK", "BEFORE", "AFTER", "GAINED", "LOST"),
                [
                    (c.route, c.sink, c.before, c.after, f"+{c.gained}", f"-{c.lost}")
                    for c in diff.pairs
                ],
            )
        else:
            lines.append("no (route, sink) gains or loses a delivery")
        lines.append(f"events that change destination: {diff.events_changed} of {report.events}")
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple[str | int, ...]]) -> list[str]:
    """Route and sink left-aligned, the counts after them right-aligned, two spaces apart."""
    cells = [header, *(tuple(str(c) for c in row) for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [i >= 2 for i in range(len(header))]
    return [
        "  ".join(
            cell.rjust(width) if right else cell.ljust(width)
            for cell, width, right in zip(row, widths, numeric, strict=True)
        ).rstrip()
        for row in cells
    ]
