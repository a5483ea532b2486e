"""The admin API under ``/admin/v1``, guarded by an admin token (bearer, `gateway.access`).

A scoped token (``admin.tokens``) sees its shops' records only: lists keep them, another
shop's record is 404 to it, and what acts on the whole deployment is 403 (`whole_deployment`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated

import msgspec
from litestar import Controller, Response, delete, get, post, put
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
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

from gateway.access import admin_guard, admin_viewer, whole_deployment
from gateway.admin_answers import (
    ContactBody,
    DeliveryDetail,
    DeliveryList,
    EventDetail,
    EventList,
    OrderTimeline,
    PushDetail,
    PushList,
    RejectedList,
    ReplayResult,
    ReprocessResult,
    SinkList,
    event_summary,
    push_summary,
)
from gateway.contacts import InvalidContact
from gateway.delivery.model import DeliveryFilter, DeliveryState
from gateway.errors import ErrorBody, NotReplayable, ShopRequired, UnknownShop, UnknownSink
from gateway.events import Contact, Source, Status
from gateway.insights.estimates import estimate_for
from gateway.operations import (
    EVERY_SHOP,
    RejectedItem,
    RejectedReplay,
    SinkStatus,
    delete_contact,
    enable_sink,
    list_shops,
    one_shop,
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
from gateway.shops import AdminScope
from gateway.store.roles import EventQuery, PushQuery, PushState
from gateway.tracking_page.links import staff_link

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["INT64_MAX", "AdminController", "RejectedId"]

INT64_MAX = 2**63 - 1
"""The largest row id or cursor the stores keep (a signed 64-bit integer)."""


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
_NO_SHOP = ResponseSpec(
    ErrorBody,
    description="`shop` names a shop outside this scoped admin token's shops (as if there were"
    " none), or no such item.",
)
_WHOLE = ResponseSpec(
    ErrorBody, description="A scoped admin token (`admin.tokens`): this needs `admin.token`."
)
_READ: dict[int, ResponseSpec] = {400: _BAD, 401: _UNAUTHORISED, 404: _NO_SHOP}
_ONE: dict[int, ResponseSpec] = {400: _BAD, 401: _UNAUTHORISED, 404: _NO_SHOP}
_ALL: dict[int, ResponseSpec] = {400: _BAD, 401: _UNAUTHORISED, 403: _WHOLE}
ShopParam = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        description="A shop id: only its records. Unknown: 400; outside a scoped token's"
        " shops: 404. Left out, a list keeps every shop the token sees.",
    ),
]
OneShop = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        description="The shop whose order it is (contacts and orders are kept per shop):"
        " required (400) when the token sees more than one shop.",
    ),
]


Viewer = NamedDependency[AdminScope]
"""What the request's admin token may see (`gateway.access.admin_viewer`)."""


class AdminController(Controller):
    path = "/admin/v1"
    guards = [admin_guard]
    dependencies = {"viewer": Provide(admin_viewer, sync_to_thread=False)}
    tags = ["admin"]
    security = [{"BearerToken": []}]

    @get("/events", summary="List events, newest first", responses=_READ)
    async def list_events(
        self,
        state: State,
        viewer: Viewer,
        shop: ShopParam = None,
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
                shops=_shops(rt, viewer, shop),
            )
        )
        return EventList([event_summary(s.seq, s.event) for s in page.items], page.next_cursor)

    @get(
        "/orders/{order_id:path}",
        summary="One order's timeline: its events with their source, and its deliveries",
        responses=_ONE,
    )
    async def get_order(
        self, state: State, viewer: Viewer, order_id: OrderPath, shop: OneShop = None
    ) -> OrderTimeline:
        rt: Runtime = state.runtime
        order_id = _order_id(order_id)
        chosen = _one_shop(rt, viewer, shop)
        page = await rt.store.list_events(EventQuery(order_id=order_id, limit=500, shops=(chosen,)))
        tracking = await rt.store.get_tracking(order_id, shop=chosen)
        if not page.items and tracking is None:
            raise NotFoundException(f"no order {order_id!r}")
        deliveries = await rt.store.list_deliveries(
            DeliveryFilter(order_id=order_id, limit=500, shops=(chosen,))
        )
        return OrderTimeline(
            order_id=order_id,
            shop=chosen,
            events=[event_summary(s.seq, s.event) for s in reversed(page.items)],
            deliveries=list(reversed(deliveries)),
            contact=await rt.store.get_contact(order_id, shop=chosen),
            tracking=tracking,
            facts=await rt.store.order_facts(order_id, shop=chosen),
            estimate=await estimate_for(rt.store, order_id, shop=chosen),
            tracking_url=staff_link(rt.config, chosen, order_id, now=datetime.now(UTC)),
        )

    @get("/events/{event_id:str}", summary="One event with its raw push item", responses=_ONE)
    async def get_event(self, state: State, viewer: Viewer, event_id: FromPath[str]) -> EventDetail:
        rt: Runtime = state.runtime
        event = await rt.store.get_event(event_id)
        if event is None or not viewer.sees(event.shop):
            raise NotFoundException(f"no event {event_id!r}")
        contact = await rt.store.get_contact(event.order_id, shop=event.shop)
        deliveries = await rt.store.list_deliveries(
            DeliveryFilter(
                order_id=event.order_id, event_id=event.id, limit=500, shops=(event.shop,)
            )
        )
        return EventDetail(
            event=event, contact=contact, deliveries=await with_waiting(rt, deliveries)
        )

    @get(
        "/rejected",
        summary="Authenticated bodies that were not a push, newest first",
        responses=_READ,
    )
    async def list_rejected(
        self, state: State, viewer: Viewer, shop: ShopParam = None, limit: Limit = 100
    ) -> RejectedList:
        rt: Runtime = state.runtime
        rows = await rt.store.list_rejected(limit=limit, shops=_shops(rt, viewer, shop))
        return RejectedList([rejected_item(r) for r in rows])

    @get("/rejected/{rejected_id:int}", summary="One rejected body", responses=_ONE)
    async def get_rejected(
        self, state: State, viewer: Viewer, rejected_id: RejectedId
    ) -> RejectedItem:
        rt: Runtime = state.runtime
        found = await rt.store.get_rejected(rejected_id)
        if found is None or not viewer.sees(found.shop):
            raise NotFoundException(f"no rejected body {rejected_id}")
        return rejected_item(found)

    @post(
        "/rejected/{rejected_id:int}/replay",
        status_code=200,
        summary="Run a rejected body through the push endpoint again",
        responses=_ONE,
    )
    async def replay_rejected(
        self, state: State, viewer: Viewer, rejected_id: RejectedId
    ) -> Response[RejectedReplay]:
        rt: Runtime = state.runtime
        found = await rt.store.get_rejected(rejected_id)
        if found is None or not viewer.sees(found.shop):
            raise NotFoundException(f"no rejected body {rejected_id}")
        result = await replay_rejected(rt, found)
        # 503 when the store could not keep the verdict, like the push endpoint itself.
        return Response(result, status_code=503 if result.status_code == 503 else 200)

    @get("/pushes", summary="The push log, newest first", responses=_READ)
    async def list_pushes(
        self,
        state: State,
        viewer: Viewer,
        shop: ShopParam = None,
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
                shops=_shops(rt, viewer, shop),
            )
        )
        items = [push_summary(p) for p in rows[:limit]]
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
        viewer: Viewer,
        push_id: FromPath[str],
        limit: Limit = 100,
        cursor: EventCursor = None,
    ) -> PushDetail:
        rt: Runtime = state.runtime
        push = await rt.store.get_push(push_id)
        if push is None or not viewer.sees(push.shop):
            raise NotFoundException(f"no push {push_id!r}")
        page = await push_page(rt, push, start=cursor or 0, limit=limit)
        return PushDetail(
            push=push_summary(push),
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
    async def get_push_body(
        self, state: State, viewer: Viewer, push_id: FromPath[str]
    ) -> Response[bytes]:
        rt: Runtime = state.runtime
        push = await rt.store.get_push(push_id)
        if push is None or not viewer.sees(push.shop):
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
        guards=[whole_deployment],
        responses=_ALL,
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
        viewer: Viewer,
        shop: ShopParam = None,
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
        shops = _shops(rt, viewer, shop)
        # The page starts below the cursor's delivery: one that is not there (a typo, or pruned
        # since) would be an empty page, as if nothing were left.
        found = None if cursor is None else await rt.store.get_delivery(cursor)
        if cursor is not None and (found is None or not viewer.sees(found[0].shop)):
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
                shops=shops,
            )
        )
        return DeliveryList(
            await with_waiting(rt, items), items[-1].id if len(items) == limit else None
        )

    @get("/deliveries/{delivery_id:str}", summary="One delivery with its attempts", responses=_ONE)
    async def get_delivery(
        self, state: State, viewer: Viewer, delivery_id: FromPath[str]
    ) -> DeliveryDetail:
        rt: Runtime = state.runtime
        found = await rt.store.get_delivery(delivery_id)
        if found is None or not viewer.sees(found[0].shop):
            raise NotFoundException(f"no delivery {delivery_id!r}")
        delivery, attempts = found
        return DeliveryDetail((await with_waiting(rt, [delivery]))[0], attempts)

    @post(
        "/deliveries/{delivery_id:str}/replay",
        status_code=200,
        summary="Replay one delivery",
        responses=_ONE,
    )
    async def replay_one(
        self, state: State, viewer: Viewer, delivery_id: FromPath[str]
    ) -> ReplayResult:
        rt: Runtime = state.runtime
        if not viewer.everything:
            found = await rt.store.get_delivery(delivery_id)
            if found is None or not viewer.sees(found[0].shop):
                raise NotFoundException(f"no delivery {delivery_id!r}")
        try:
            await replay_delivery(rt, delivery_id)
        except NotReplayable:
            raise NotFoundException(
                f"no dead, skipped or superseded delivery {delivery_id!r}"
            ) from None
        return ReplayResult(1)

    @post(
        "/deliveries/replay",
        status_code=200,
        summary="Replay dead deliveries by filter",
        guards=[whole_deployment],
        responses=_ALL,
    )
    async def replay(
        self,
        state: State,
        shop: ShopParam = None,
        sink: Annotated[str | None, QueryParameter(min_length=1)] = None,
        order_id: FromQuery[str | None] = None,
        since: Since = None,
    ) -> ReplayResult:
        try:
            count = await replay_dead(
                state.runtime,
                sink=sink,
                order_id=order_id,
                since=_since(since),
                shops=_shops(state.runtime, EVERY_SHOP, shop),
            )
        except UnknownSink as exc:
            raise ValidationException(f"sink: {exc}") from None
        return ReplayResult(count)

    @post(
        "/reload",
        status_code=200,
        summary="Read the configuration file again and apply it (refused if invalid)",
        guards=[whole_deployment],
        responses={
            401: _UNAUTHORISED,
            403: _WHOLE,
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
        responses=_ONE,
    )
    async def put_contact(
        self,
        state: State,
        viewer: Viewer,
        order_id: OrderPath,
        data: JSONBody[ContactBody],
        shop: OneShop = None,
    ) -> Contact:
        fields = msgspec.structs.asdict(data)
        for name, value in fields.items():
            if value is not None and "\x00" in value:
                raise ValidationException(f"{name}: a NUL character (U+0000) is not allowed")
        try:
            return await put_contact(
                state.runtime,
                _order_id(order_id),
                shop=_one_shop(state.runtime, viewer, shop),
                **fields,
            )
        except InvalidContact as exc:
            raise ValidationException(str(exc)) from None

    @get(
        "/contacts/{order_id:path}",
        summary="An order's customer as the sinks see it (registered, else pushed)",
        responses=_ONE,
    )
    async def get_contact(
        self, state: State, viewer: Viewer, order_id: OrderPath, shop: OneShop = None
    ) -> Contact:
        rt: Runtime = state.runtime
        order_id = _order_id(order_id)
        contact = await rt.store.get_contact(order_id, shop=_one_shop(rt, viewer, shop))
        if contact is None:
            raise NotFoundException(f"no contact for order {order_id!r}")
        return contact

    @delete(
        "/contacts/{order_id:path}",
        summary="Forget an order's customer, whoever gave it",
        responses=_ONE,
    )
    async def delete_contact(
        self, state: State, viewer: Viewer, order_id: OrderPath, shop: OneShop = None
    ) -> None:
        order_id = _order_id(order_id)
        chosen = _one_shop(state.runtime, viewer, shop)
        if not await delete_contact(state.runtime, order_id, shop=chosen):
            raise NotFoundException(f"no contact for order {order_id!r}")

    @get(
        "/sinks",
        summary="Sinks with their queue depth, circuit and switch (every shop's deliveries)",
        guards=[whole_deployment],
        responses={401: _UNAUTHORISED, 403: _WHOLE},
    )
    async def list_sinks(self, state: State) -> SinkList:
        return SinkList(await sink_statuses(state.runtime))

    @post(
        "/sinks/{name:str}/enable",
        status_code=200,
        summary="Switch a disabled sink back on",
        guards=[whole_deployment],
        responses={400: _BAD, 401: _UNAUTHORISED, 403: _WHOLE, 404: _MISSING},
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


def _shops(rt: Runtime, viewer: Viewer, shop: str | None) -> tuple[str, ...] | None:
    """The shops a list keeps (`list_shops`): an unknown `shop` is a 400 naming it, one outside
    a scoped token's shops a 404 (as its records are)."""
    try:
        return list_shops(rt.shops, viewer, shop)
    except UnknownShop as exc:
        raise _shop_refused(exc) from None


def _one_shop(rt: Runtime, viewer: Viewer, shop: str | None) -> str:
    """The shop of a contact or an order (`one_shop`), refused as `_shops` refuses one."""
    try:
        return one_shop(rt.shops, viewer, shop)
    except (UnknownShop, ShopRequired) as exc:
        raise _shop_refused(exc) from None


def _shop_refused(exc: UnknownShop | ShopRequired) -> Exception:
    if isinstance(exc, UnknownShop) and exc.hidden:
        return NotFoundException(str(exc))
    return ValidationException(f"shop: {exc}")


def _order_id(value: str) -> str:
    """The order id of an `OrderPath` parameter, without the ``/`` Litestar puts before it."""
    return value.removeprefix("/")
