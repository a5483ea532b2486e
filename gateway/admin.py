"""The admin API under ``/admin/v1``, guarded by ``admin.token`` (bearer)."""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    NotFoundException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType, Schema
from litestar.params import (
    FromPath,
    FromQuery,
    JSONBody,
    Parameter,
    PathParameter,
    QueryParameter,
)

from gateway.access import AmbiguousCredentials, SignInLimiter, client_key, only_authorization
from gateway.contacts import InvalidContact
from gateway.delivery.model import Attempt, Delivery, DeliveryFilter, DeliveryState
from gateway.errors import ErrorBody, NotReplayable, UnknownSink
from gateway.events import Contact, Event, Source, Status
from gateway.operations import (
    PushEvent,
    PushItem,
    RejectedItem,
    RejectedReplay,
    SinkStatus,
    delete_contact,
    enable_sink,
    push_page,
    put_contact,
    rejected_item,
    replay_dead,
    replay_delivery,
    replay_rejected,
    requeue_failed,
    shown_body,
    sink_statuses,
    with_waiting,
)
from gateway.reload import ReloadResult, reload
from gateway.store.roles import EventQuery, LoggedPush, PushQuery, PushState
from gateway.store.tracking import TrackedOrder

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["INT64_MAX", "AdminController", "RejectedId"]

INT64_MAX = 2**63 - 1
"""The largest row id or cursor the stores keep (a signed 64-bit integer)."""


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """The admin bearer token, once, from a client not refused for too many wrong ones
    (`gateway.access`)."""
    rt: Runtime = connection.app.state.runtime
    if rt.admin_token is None:
        raise NotAuthorizedException("the admin API is off: set `admin.token` in the configuration")
    try:
        header = only_authorization(connection.scope["headers"])
    except AmbiguousCredentials as exc:
        raise ClientException(str(exc)) from None
    limiter: SignInLimiter = connection.app.state.sign_ins
    client = client_key(connection.client.host if connection.client else None)
    now = time.monotonic()
    wait = limiter.retry_after(client, now)
    if wait is not None:
        raise TooManyRequestsException(
            f"too many wrong admin tokens from this address: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if header is None:
        raise NotAuthorizedException("missing or wrong admin bearer token")
    scheme, _sep, value = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        value.strip().encode(), rt.admin_token
    ):
        limiter.failed(client, now)
        raise NotAuthorizedException("missing or wrong admin bearer token")
    limiter.succeeded(client)


class EventSummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    shop: str
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


class OrderTimeline(msgspec.Struct, frozen=True, kw_only=True):
    order_id: str
    events: list[EventSummary]
    """Oldest first; `source` says whether a push or the pull tracker brought each."""
    deliveries: list[Delivery]
    """Oldest first."""
    contact: Contact | None
    tracking: TrackedOrder | None
    """What the pull tracker knows of it: last status, schedule, stuck alert."""


class DeliveryList(msgspec.Struct, frozen=True):
    items: list[Delivery]
    next_cursor: str | None


class DeliveryDetail(msgspec.Struct, frozen=True):
    delivery: Delivery
    attempts: list[Attempt]


class ReplayResult(msgspec.Struct, frozen=True):
    replayed: int


class RejectedList(msgspec.Struct, frozen=True):
    items: list[RejectedItem]


class PushSummary(msgspec.Struct, frozen=True, kw_only=True):
    seq: int
    id: str
    shop: str
    source: str
    method: str | None
    items: int
    received_at: datetime
    state: PushState
    """``pending`` (waiting for the intake), ``processed`` or ``failed``."""
    error: str | None
    processed_at: datetime | None
    accepted: int | None
    """New events it produced."""
    duplicates: int | None
    """Events it repeated (already stored by an earlier push)."""


class PushList(msgspec.Struct, frozen=True):
    items: list[PushSummary]
    next_cursor: int | None
    """Pass as `cursor` for the next (older) page."""


class PushDetail(msgspec.Struct, frozen=True, kw_only=True):
    push: PushSummary
    content_type: str | None
    body: str | None
    """The body as received (bytes that are not UTF-8 shown as U+FFFD) when it is at most 64
    KiB; ``null`` for a larger one, whose items are read a page at a time (`GET
    /admin/v1/pushes/{id}/body` answers it whole)."""
    body_bytes: int
    """The body's length in bytes."""
    items: list[PushItem]
    """This page of its package items, in body order (a pull tracker entry has none)."""
    events: list[PushEvent]
    """The events this page's items produced or repeated (none while pending, or when it
    failed)."""
    next_cursor: int | None
    """Pass as `cursor` for the next page of items."""


class ReprocessResult(msgspec.Struct, frozen=True):
    requeued: int


class ContactBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An order's customer as the shop registers it; a field left out (or blank) keeps what a
    push said."""

    name: str | None = None
    phone: str | None = None
    """Any written form of the number; stored in E.164 (``+6281234567890``)."""
    email: str | None = None
    language: str | None = None
    """``id`` or ``en``."""


class SinkList(msgspec.Struct, frozen=True):
    items: list[SinkStatus]


def _push_summary(p: LoggedPush) -> PushSummary:
    return PushSummary(
        seq=p.seq,
        id=p.id,
        shop=p.shop,
        source=p.source,
        method=p.method,
        items=p.items,
        received_at=p.received_at,
        state=p.state,
        error=p.error,
        processed_at=p.processed_at,
        accepted=p.accepted,
        duplicates=p.duplicates,
    )


def _summary(seq: int, e: Event) -> EventSummary:
    return EventSummary(
        seq=seq,
        id=e.id,
        shop=e.shop,
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


_FIRST_SECOND = -62135596800
"""0001-01-01T00:00:00Z in Unix seconds: the earliest `since`."""
_LAST_SECOND = 253402300799
"""9999-12-31T23:59:59Z in Unix seconds: the latest `since`."""
Limit = Annotated[int, QueryParameter(ge=1, le=500, description="Page size.")]
EventCursor = Annotated[
    int | None,
    QueryParameter(ge=1, le=INT64_MAX, description="`next_cursor` of the previous page."),
]
RejectedId = Annotated[int, Parameter(ge=1, le=INT64_MAX)]
"""A row id as the stores keep it (a signed 64-bit integer): the dashboard's too."""
Since = Annotated[
    str | None,
    QueryParameter(
        description="An ISO 8601 time (UTC if it has no zone) or Unix seconds.",
        schema_extra={
            "one_of": [
                Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.DATE_TIME),
                Schema(type=OpenAPIType.NUMBER, minimum=_FIRST_SECOND, maximum=_LAST_SECOND),
                Schema(type=OpenAPIType.NULL),
            ]
        },
    ),
]
"""Read by `_since`: as a `datetime` parameter, a year past 9999 would be a 500."""
OrderPath = Annotated[
    str,
    PathParameter(
        description="The order id as it is; one holding `/` (`INV/2024/05/001`) is written with"
        " its slashes as they are, or as `%2F`."
    ),
]
"""An order id: a ``{order_id:path}`` parameter, so that one holding ``/`` is reachable; read
by `_order_id`."""

_UNAUTHORISED = ResponseSpec(
    ErrorBody, description="Missing or wrong admin token, or no `admin.token` configured."
)
_BAD = ResponseSpec(ErrorBody, description="A parameter is invalid; `detail` names it.")
_MISSING = ResponseSpec(ErrorBody, description="No such item.")
_READ: dict[int, ResponseSpec] = {400: _BAD, 401: _UNAUTHORISED}
_ONE: dict[int, ResponseSpec] = {400: _BAD, 401: _UNAUTHORISED, 404: _MISSING}


class AdminController(Controller):
    path = "/admin/v1"
    guards = [admin_guard]
    tags = ["admin"]
    security = [{"BearerToken": []}]

    @get("/events", summary="List events, newest first", responses=_READ)
    async def list_events(
        self,
        state: State,
        order_id: FromQuery[str | None] = None,
        status: FromQuery[Status | None] = None,
        since: Since = None,
        limit: Limit = 50,
        cursor: EventCursor = None,
    ) -> EventList:
        rt: Runtime = state.runtime
        page = await rt.store.list_events(
            EventQuery(
                order_id=order_id,
                status=status,
                since=_since(since),
                limit=limit,
                before_seq=cursor,
            )
        )
        return EventList([_summary(s.seq, s.event) for s in page.items], page.next_cursor)

    @get(
        "/orders/{order_id:path}",
        summary="One order's timeline: its events with their source, and its deliveries",
        responses=_ONE,
    )
    async def get_order(self, state: State, order_id: OrderPath) -> OrderTimeline:
        rt: Runtime = state.runtime
        order_id = _order_id(order_id)
        page = await rt.store.list_events(EventQuery(order_id=order_id, limit=500))
        tracking = await rt.store.get_tracking(order_id)
        if not page.items and tracking is None:
            raise NotFoundException(f"no order {order_id!r}")
        deliveries = await rt.store.list_deliveries(DeliveryFilter(order_id=order_id, limit=500))
        return OrderTimeline(
            order_id=order_id,
            events=[_summary(s.seq, s.event) for s in reversed(page.items)],
            deliveries=list(reversed(deliveries)),
            contact=await rt.store.get_contact(order_id),
            tracking=tracking,
        )

    @get("/events/{event_id:str}", summary="One event with its raw push item", responses=_ONE)
    async def get_event(self, state: State, event_id: FromPath[str]) -> EventDetail:
        rt: Runtime = state.runtime
        event = await rt.store.get_event(event_id)
        if event is None:
            raise NotFoundException(f"no event {event_id!r}")
        contact = await rt.store.get_contact(event.order_id)
        deliveries = await rt.store.list_deliveries(
            DeliveryFilter(order_id=event.order_id, event_id=event.id, limit=500)
        )
        return EventDetail(
            event=event, contact=contact, deliveries=await with_waiting(rt, deliveries)
        )

    @get(
        "/rejected",
        summary="Authenticated bodies that were not a push, newest first",
        responses=_READ,
    )
    async def list_rejected(self, state: State, limit: Limit = 100) -> RejectedList:
        rt: Runtime = state.runtime
        rows = await rt.store.list_rejected(limit=limit)
        return RejectedList([rejected_item(r) for r in rows])

    @get("/rejected/{rejected_id:int}", summary="One rejected body", responses=_ONE)
    async def get_rejected(self, state: State, rejected_id: RejectedId) -> RejectedItem:
        rt: Runtime = state.runtime
        found = await rt.store.get_rejected(rejected_id)
        if found is None:
            raise NotFoundException(f"no rejected body {rejected_id}")
        return rejected_item(found)

    @post(
        "/rejected/{rejected_id:int}/replay",
        status_code=200,
        summary="Run a rejected body through the push endpoint again",
        responses=_ONE,
    )
    async def replay_rejected(
        self, state: State, rejected_id: RejectedId
    ) -> Response[RejectedReplay]:
        rt: Runtime = state.runtime
        found = await rt.store.get_rejected(rejected_id)
        if found is None:
            raise NotFoundException(f"no rejected body {rejected_id}")
        result = await replay_rejected(rt, found)
        # 503 when the store could not keep the verdict, like the push endpoint itself.
        return Response(result, status_code=503 if result.status_code == 503 else 200)

    @get("/pushes", summary="The push log, newest first", responses=_READ)
    async def list_pushes(
        self,
        state: State,
        push_state: Annotated[PushState | None, QueryParameter(name="state")] = None,
        source: FromQuery[Source | None] = None,
        since: Since = None,
        limit: Limit = 50,
        cursor: EventCursor = None,
    ) -> PushList:
        rt: Runtime = state.runtime
        rows = await rt.store.list_pushes(
            PushQuery(
                state=push_state,
                source=source,
                since=_since(since),
                limit=limit + 1,
                before_seq=cursor,
            )
        )
        items = [_push_summary(p) for p in rows[:limit]]
        more = len(rows) > limit
        return PushList(items, items[-1].seq if more and items else None)

    @get(
        "/pushes/{push_id:str}",
        summary="One push: its state, raw body, and a page of its items with the events they"
        " produced or repeated",
        responses=_ONE,
    )
    async def get_push(
        self,
        state: State,
        push_id: FromPath[str],
        limit: Limit = 100,
        cursor: EventCursor = None,
    ) -> PushDetail:
        rt: Runtime = state.runtime
        push = await rt.store.get_push(push_id)
        if push is None:
            raise NotFoundException(f"no push {push_id!r}")
        page = await push_page(rt, push, start=cursor or 0, limit=limit)
        return PushDetail(
            push=_push_summary(push),
            content_type=push.content_type,
            body=shown_body(push),
            body_bytes=len(push.body),
            items=page.items,
            events=page.events,
            next_cursor=page.next_cursor,
        )

    @get(
        "/pushes/{push_id:str}/body",
        summary="One push's body exactly as received",
        media_type="application/octet-stream",
        responses=_ONE,
    )
    async def get_push_body(self, state: State, push_id: FromPath[str]) -> Response[bytes]:
        rt: Runtime = state.runtime
        push = await rt.store.get_push(push_id)
        if push is None:
            raise NotFoundException(f"no push {push_id!r}")
        # as a download, never rendered: a body is whatever the sender wrote
        return Response(
            push.body,
            media_type="application/octet-stream",
            headers={"Content-Disposition": f'attachment; filename="{push.id}.json"'},
        )

    @post(
        "/pushes/reprocess",
        status_code=200,
        summary="Put failed pushes back to the intake (after a fix)",
        responses=_READ,
    )
    async def reprocess(
        self,
        state: State,
        since: Since = None,
        push_id: Annotated[list[str] | None, QueryParameter(name="id")] = None,
    ) -> ReprocessResult:
        count = await requeue_failed(state.runtime, since=_since(since), ids=push_id or ())
        return ReprocessResult(count)

    @get("/deliveries", summary="List deliveries, newest first", responses=_READ)
    async def list_deliveries(
        self,
        state: State,
        delivery_state: Annotated[DeliveryState | None, QueryParameter(name="state")] = None,
        sink: FromQuery[str | None] = None,
        order_id: FromQuery[str | None] = None,
        since: Since = None,
        limit: Limit = 100,
        cursor: Annotated[
            str | None,
            QueryParameter(min_length=1, description="`next_cursor` of the previous page."),
        ] = None,
    ) -> DeliveryList:
        rt: Runtime = state.runtime
        moment = _since(since)
        # The page starts below the cursor's delivery: one that is not there (a typo, or pruned
        # since) would be an empty page, as if nothing were left.
        if cursor is not None and await rt.store.get_delivery(cursor) is None:
            raise ValidationException(
                f"cursor: no delivery {cursor!r} (a typo, or pruned since): list again without it"
            )
        items = await rt.store.list_deliveries(
            DeliveryFilter(
                state=delivery_state,
                sink=sink,
                order_id=order_id,
                since=moment,
                limit=limit,
                before=cursor,
            )
        )
        return DeliveryList(
            await with_waiting(rt, items), items[-1].id if len(items) == limit else None
        )

    @get("/deliveries/{delivery_id:str}", summary="One delivery with its attempts", responses=_ONE)
    async def get_delivery(self, state: State, delivery_id: FromPath[str]) -> DeliveryDetail:
        rt: Runtime = state.runtime
        found = await rt.store.get_delivery(delivery_id)
        if found is None:
            raise NotFoundException(f"no delivery {delivery_id!r}")
        delivery, attempts = found
        return DeliveryDetail((await with_waiting(rt, [delivery]))[0], attempts)

    @post(
        "/deliveries/{delivery_id:str}/replay",
        status_code=200,
        summary="Replay one delivery",
        responses=_ONE,
    )
    async def replay_one(self, state: State, delivery_id: FromPath[str]) -> ReplayResult:
        try:
            await replay_delivery(state.runtime, delivery_id)
        except NotReplayable:
            raise NotFoundException(
                f"no dead, skipped or superseded delivery {delivery_id!r}"
            ) from None
        return ReplayResult(1)

    @post(
        "/deliveries/replay",
        status_code=200,
        summary="Replay dead deliveries by filter",
        responses=_READ,
    )
    async def replay(
        self,
        state: State,
        sink: Annotated[str | None, QueryParameter(min_length=1)] = None,
        order_id: FromQuery[str | None] = None,
        since: Since = None,
    ) -> ReplayResult:
        try:
            count = await replay_dead(
                state.runtime, sink=sink, order_id=order_id, since=_since(since)
            )
        except UnknownSink as exc:
            raise ValidationException(f"sink: {exc}") from None
        return ReplayResult(count)

    @post(
        "/reload",
        status_code=200,
        summary="Read the configuration file again and apply it (refused if invalid)",
        responses={
            401: _UNAUTHORISED,
            400: ResponseSpec(
                ReloadResult,
                description="The file is invalid (`problems`, as `kabarin check` says them):"
                " the configuration in use keeps running.",
            ),
        },
    )
    async def reload_config(self, state: State) -> Response[ReloadResult]:
        rt: Runtime = state.runtime
        result = await reload(rt, now=datetime.now(UTC))
        return Response(result, status_code=200 if result.ok else 400)

    @put(
        "/contacts/{order_id:path}",
        summary="Register an order's customer (wins over what pushes say)",
        responses={400: _BAD, 401: _UNAUTHORISED},
    )
    async def put_contact(
        self, state: State, order_id: OrderPath, data: JSONBody[ContactBody]
    ) -> Contact:
        fields = msgspec.structs.asdict(data)
        for name, value in fields.items():
            if value is not None and "\x00" in value:
                raise ValidationException(f"{name}: a NUL character (U+0000) is not allowed")
        try:
            return await put_contact(state.runtime, _order_id(order_id), **fields)
        except InvalidContact as exc:
            raise ValidationException(str(exc)) from None

    @get(
        "/contacts/{order_id:path}",
        summary="An order's customer as the sinks see it (registered, else pushed)",
        responses=_ONE,
    )
    async def get_contact(self, state: State, order_id: OrderPath) -> Contact:
        rt: Runtime = state.runtime
        order_id = _order_id(order_id)
        contact = await rt.store.get_contact(order_id)
        if contact is None:
            raise NotFoundException(f"no contact for order {order_id!r}")
        return contact

    @delete(
        "/contacts/{order_id:path}",
        summary="Forget an order's customer, whoever gave it",
        responses={401: _UNAUTHORISED, 404: _MISSING},
    )
    async def delete_contact(self, state: State, order_id: OrderPath) -> None:
        order_id = _order_id(order_id)
        if not await delete_contact(state.runtime, order_id):
            raise NotFoundException(f"no contact for order {order_id!r}")

    @get(
        "/sinks",
        summary="Sinks with their queue depth, circuit and switch",
        responses={401: _UNAUTHORISED},
    )
    async def list_sinks(self, state: State) -> SinkList:
        return SinkList(await sink_statuses(state.runtime))

    @post(
        "/sinks/{name:str}/enable",
        status_code=200,
        summary="Switch a disabled sink back on",
        responses=_ONE,
    )
    async def enable_sink(self, state: State, name: FromPath[str]) -> SinkStatus:
        try:
            return await enable_sink(state.runtime, name)
        except UnknownSink:
            raise NotFoundException(f"no sink {name!r} in the configuration") from None


def _since(value: str | None) -> datetime | None:
    """The ``since`` parameter read as Litestar reads a `datetime` (ISO 8601, or Unix seconds),
    without a zone in UTC; one that is not a time, or not within the years 1-9999, is a 400
    naming it."""
    if value is None:
        return None
    try:
        moment = msgspec.convert(value, datetime, strict=False)
    except (ValueError, OverflowError):  # msgspec's ValidationError is a ValueError
        raise ValidationException(
            f"since: {value!r} is not an ISO 8601 time or Unix seconds within the years 1-9999"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _order_id(value: str) -> str:
    """The order id of an `OrderPath` parameter, without the ``/`` Litestar puts before it."""
    return value.removeprefix("/")
