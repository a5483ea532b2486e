"""The admin API under ``/admin/v1``, guarded by ``admin.token`` (bearer)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, NotFoundException
from litestar.handlers.base import BaseRouteHandler
from litestar.params import FromPath, FromQuery, QueryParameter

from gateway.events import Contact, Event, Status
from gateway.store.base import (
    Attempt,
    Delivery,
    DeliveryFilter,
    DeliveryState,
    EventQuery,
)

if TYPE_CHECKING:
    from gateway.app import Runtime

__all__ = ["AdminController"]


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    rt: Runtime = connection.app.state.runtime
    if rt.admin_token is None:
        raise NotAuthorizedException("the admin API is off: set `admin.token` in the configuration")
    header = connection.headers.get("authorization", "")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), rt.admin_token
    ):
        raise NotAuthorizedException("missing or wrong admin bearer token")


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    source: str
    method: str
    kind: str
    status: Status
    raw_status: str | None
    order_id: str
    awb: str | None
    occurred_at: datetime
    received_at: datetime
    reason: str | None
    details: dict[str, Any]


class EventList(msgspec.Struct, frozen=True):
    items: list[EventSummary]
    next_cursor: int | None
    """Pass as `cursor` for the next (older) page."""


class EventDetail(msgspec.Struct, frozen=True, kw_only=True):
    event: Event
    """With `raw`, the package item exactly as KiriminAja sent it."""
    contact: Contact | None
    deliveries: list[Delivery]


class DeliveryList(msgspec.Struct, frozen=True):
    items: list[Delivery]
    next_cursor: str | None


class DeliveryDetail(msgspec.Struct, frozen=True):
    delivery: Delivery
    attempts: list[Attempt]


class ReplayResult(msgspec.Struct, frozen=True):
    replayed: int


class RejectedItem(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    received_at: datetime
    reason: str
    content_type: str | None
    body: str
    """The body as received (bytes that are not UTF-8 shown as U+FFFD)."""


class RejectedList(msgspec.Struct, frozen=True):
    items: list[RejectedItem]


class SinkStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    pending: int
    dead: int
    disabled: str | None
    """Why the sink is switched off (e.g. the peer answered 410 Gone), if it is."""
    circuit: str


class SinkList(msgspec.Struct, frozen=True):
    items: list[SinkStatus]


def _summary(seq: int, e: Event) -> EventSummary:
    return EventSummary(
        seq=seq,
        id=e.id,
        source=e.source,
        method=e.method,
        kind=e.kind,
        status=e.status,
        raw_status=e.raw_status,
        order_id=e.order_id,
        awb=e.awb,
        occurred_at=e.occurred_at,
        received_at=e.received_at,
        reason=e.reason,
        details=e.details,
    )


Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size.")]


class AdminController(Controller):
    path = "/admin/v1"
    guards = [admin_guard]
    tags = ["admin"]
    security = [{"BearerToken": []}]

    @get("/events", summary="List events, newest first")
    async def list_events(
        self,
        state: State,
        order_id: FromQuery[str | None] = None,
        status: FromQuery[Status | None] = None,
        since: FromQuery[datetime | None] = None,
        limit: Limit = 50,
        cursor: FromQuery[int | None] = None,
    ) -> EventList:
        rt: Runtime = state.runtime
        page = await rt.store.list_events(
            EventQuery(
                order_id=order_id,
                status=status,
                since=_aware(since),
                limit=limit,
                before_seq=cursor,
            )
        )
        return EventList([_summary(s.seq, s.event) for s in page.items], page.next_cursor)

    @get("/events/{event_id:str}", summary="One event with its raw push item")
    async def get_event(self, state: State, event_id: FromPath[str]) -> EventDetail:
        rt: Runtime = state.runtime
        event = await rt.store.get_event(event_id)
        if event is None:
            raise NotFoundException(f"no event {event_id!r}")
        contact = await rt.store.get_contact(event.order_id)
        deliveries = await rt.store.list_deliveries(DeliveryFilter(order_id=event.order_id))
        return EventDetail(
            event=event,
            contact=contact,
            deliveries=[d for d in deliveries if d.event_id == event.id],
        )

    @get("/rejected", summary="Authenticated bodies that were not a push, newest first")
    async def list_rejected(self, state: State, limit: Limit = 100) -> RejectedList:
        rt: Runtime = state.runtime
        rows = await rt.store.list_rejected(limit=limit)
        return RejectedList(
            [
                RejectedItem(
                    id=r.id,
                    received_at=r.received_at,
                    reason=r.reason,
                    content_type=r.content_type,
                    body=r.body.decode("utf-8", errors="replace"),
                )
                for r in rows
            ]
        )

    @get("/deliveries", summary="List deliveries, newest first")
    async def list_deliveries(
        self,
        state: State,
        delivery_state: Annotated[DeliveryState | None, QueryParameter(name="state")] = None,
        sink: FromQuery[str | None] = None,
        order_id: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
        limit: Limit = 100,
        cursor: FromQuery[str | None] = None,
    ) -> DeliveryList:
        rt: Runtime = state.runtime
        items = await rt.store.list_deliveries(
            DeliveryFilter(
                state=delivery_state,
                sink=sink,
                order_id=order_id,
                since=_aware(since),
                limit=limit,
                before=cursor,
            )
        )
        return DeliveryList(items, items[-1].id if len(items) == limit else None)

    @get("/deliveries/{delivery_id:str}", summary="One delivery with its attempts")
    async def get_delivery(self, state: State, delivery_id: FromPath[str]) -> DeliveryDetail:
        rt: Runtime = state.runtime
        found = await rt.store.get_delivery(delivery_id)
        if found is None:
            raise NotFoundException(f"no delivery {delivery_id!r}")
        return DeliveryDetail(*found)

    @post("/deliveries/{delivery_id:str}/replay", status_code=200, summary="Replay one delivery")
    async def replay_one(self, state: State, delivery_id: FromPath[str]) -> ReplayResult:
        rt: Runtime = state.runtime
        if not await rt.store.replay_one(delivery_id, now=datetime.now(UTC)):
            raise NotFoundException(f"no dead, skipped or superseded delivery {delivery_id!r}")
        rt.wake_dispatcher()
        return ReplayResult(1)

    @post("/deliveries/replay", status_code=200, summary="Replay dead deliveries by filter")
    async def replay(
        self,
        state: State,
        sink: FromQuery[str | None] = None,
        order_id: FromQuery[str | None] = None,
        since: FromQuery[datetime | None] = None,
    ) -> ReplayResult:
        rt: Runtime = state.runtime
        count = await rt.store.replay(
            DeliveryFilter(state="dead", sink=sink, order_id=order_id, since=_aware(since)),
            now=datetime.now(UTC),
        )
        rt.wake_dispatcher()
        return ReplayResult(count)

    @get("/sinks", summary="Sinks with their queue depth, circuit and switch")
    async def list_sinks(self, state: State) -> SinkList:
        return SinkList(await _sink_statuses(state.runtime))

    @post("/sinks/{name:str}/enable", status_code=200, summary="Switch a disabled sink back on")
    async def enable_sink(self, state: State, name: FromPath[str]) -> SinkStatus:
        rt: Runtime = state.runtime
        if name not in rt.config.sinks:
            raise NotFoundException(f"no sink {name!r} in the configuration")
        await rt.store.enable_sink(name)
        rt.wake_dispatcher()
        return next(s for s in await _sink_statuses(rt) if s.name == name)


async def _sink_statuses(rt: Runtime) -> list[SinkStatus]:
    counts = {c.sink: c for c in await rt.store.sink_counts()}
    disabled = await rt.store.disabled_sinks()
    items = []
    for name, config in rt.config.sinks.items():
        c = counts.get(name)
        items.append(
            SinkStatus(
                name=name,
                type=str(type(config).__struct_config__.tag),
                pending=c.pending if c else 0,
                dead=c.dead if c else 0,
                disabled=disabled.get(name),
                circuit=rt.circuit_state(name),
            )
        )
    return items


def _aware(value: datetime | None) -> datetime | None:
    """Query times without a zone are UTC."""
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value
