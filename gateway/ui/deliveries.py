"""Deliveries: the filtered list, one with its attempts and message, and replaying them (one,
or the dead ones a filter names, after a confirmation)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from gateway import operations
from gateway.delivery.model import Delivery, DeliveryFilter, DeliveryState
from gateway.delivery.preparation import estimate_to_render
from gateway.errors import KabarinError, NotReplayable, UnknownSink
from gateway.insights.estimates import estimate_for
from gateway.ui.labels import translate
from gateway.ui.render import (
    PREFIX,
    back,
    language_of,
    order_url,
    posted_form,
    render,
    runtime_of,
    sees,
    session_of,
    shops_of,
)
from gateway.ui.session import signed_in, whole_deployment_ui
from gateway.units import parse_duration

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = [
    "DELIVERY_STATES",
    "deliveries",
    "delivery",
    "replay_confirm",
    "replay_dead",
    "replay_one",
]

DELIVERY_STATES: tuple[DeliveryState, ...] = (
    "pending",
    "in_flight",
    "delivered",
    "dead",
    "skipped",
    "superseded",
)

_SINCE_CHOICES = ("1h", "6h", "24h", "7d", "30d")


@dataclass(frozen=True)
class _DeliveryQuery:
    state: DeliveryState | None
    sink: str | None
    route: str | None
    since: str | None

    @classmethod
    def of(cls, params: Mapping[str, str]) -> _DeliveryQuery:
        state = params.get("state") or None
        since = params.get("since") or None
        return cls(
            state=state if state in DELIVERY_STATES else None,
            sink=params.get("sink") or None,
            route=params.get("route") or None,
            since=since if since in _SINCE_CHOICES else None,
        )

    def since_time(self) -> datetime | None:
        if self.since is None:
            return None
        return datetime.now(UTC) - timedelta(seconds=float(parse_duration(self.since)))

    def query(self) -> str:
        values = {"state": self.state, "sink": self.sink, "route": self.route, "since": self.since}
        return urlencode({k: v for k, v in values.items() if v})

    async def find(
        self,
        rt: Runtime,
        *,
        limit: int,
        state: DeliveryState | None = None,
        shops: tuple[str, ...] | None = None,
    ) -> list[Delivery]:
        """Newest first."""
        return await operations.find_deliveries(
            rt,
            DeliveryFilter(
                state=state or self.state,
                sink=self.sink,
                since=self.since_time(),
                limit=limit,
                shops=shops,
            ),
            route=self.route,
        )


@get("/deliveries", guards=[signed_in])
async def deliveries(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    query = _DeliveryQuery.of(request.query_params)
    found = await operations.with_waiting(
        rt, await query.find(rt, limit=200, shops=shops_of(request))
    )
    return render(
        request,
        "deliveries.html.j2",
        query=query,
        items=found,
        states=DELIVERY_STATES,
        sinks=list(rt.config.sinks),
        routes=[r.name for r in rt.config.routes],
        since_choices=_SINCE_CHOICES,
    )


@get("/deliveries/replay", guards=[signed_in, whole_deployment_ui])
async def replay_confirm(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    query = _DeliveryQuery.of(request.query_params)
    dead = await query.find(rt, limit=operations.ROUTE_REPLAY_LIMIT, state="dead")
    try:
        operations.sink_filter_matched(rt.config, query.sink, len(dead))
    except UnknownSink as exc:
        return _no_such_sink(request, exc)
    return render(request, "replay.html.j2", query=query, count=len(dead))


@post("/deliveries/replay", guards=[signed_in, whole_deployment_ui], status_code=303)
async def replay_dead(request: Request[Any, Any, State]) -> Response[Any]:
    form = await posted_form(request)
    query = _DeliveryQuery.of(form)
    try:
        count = await operations.replay_dead(
            runtime_of(request), sink=query.sink, since=query.since_time(), route=query.route
        )
    except UnknownSink as exc:
        return _no_such_sink(request, exc)
    lang = language_of(request)[0]
    target = f"{PREFIX}/deliveries?{query.query()}"
    return back(target, session_of(request), translate("{n} deliveries replayed.", lang, n=count))


def _no_such_sink(request: Request[Any, Any, Any], exc: UnknownSink) -> Response[str]:
    """As ``POST /admin/v1/deliveries/replay`` and ``kabarin replay --sink``: a sink filter that
    matched nothing because no such sink is configured is a typo, and said to be one (400)."""
    lang = language_of(request)[0]
    text = translate(
        "No sink named {sink} is configured (configured sinks: {known}).",
        lang,
        sink=repr(exc.sink),
        known=", ".join(exc.configured) or "-",
    )
    return render(request, "message.html.j2", status_code=400, title="No such sink", text=text)


@get("/deliveries/{delivery_id:str}", guards=[signed_in])
async def delivery(request: Request[Any, Any, State], delivery_id: FromPath[str]) -> Response[str]:
    rt = runtime_of(request)
    found = await rt.store.get_delivery(delivery_id)
    if found is None or not sees(request, found[0].shop):
        raise NotFoundException(delivery_id)
    item, attempts = found
    item = (await operations.with_waiting(rt, [item]))[0]
    event = await rt.store.get_event(item.event_id)
    # The delivery its ending issued on the route's fallback sink (a dead WhatsApp's SMS).
    fallback: Delivery | None = None
    if item.state in ("dead", "skipped") and item.fallback_of is None:
        same_event = await rt.store.list_deliveries(
            DeliveryFilter(event_id=item.event_id, limit=100)
        )
        fallback = next((d for d in same_event if d.fallback_of == item.id), None)
    preview: str | None = None
    problem: str | None = None
    sink = rt.sinks.get(item.sink)
    if sink is None:
        problem = "The sink is no longer in the configuration."
    elif event is not None:
        contact = await rt.store.get_contact(item.order_id, shop=item.shop)
        group = await rt.store.group_of(item.id)  # a grouped message: shown with its events
        try:
            # With the estimate the dispatcher would render it with now.
            estimate = await estimate_to_render(
                lambda order_id, shop: estimate_for(rt.store, order_id, shop=shop),
                rt.templates,
                sink,
                item,
                event=event,
                contact=contact,
                group=group,
            )
            message = rt.templates.message(
                sink, item, event=event, contact=contact, group=group, estimate=estimate
            )
            preview = sink.preview(message)
        except KabarinError as exc:
            problem = str(exc)
    return render(
        request,
        "delivery.html.j2",
        item=item,
        attempts=attempts,
        event=event,
        preview=rt.redactor.redact(preview) if preview is not None else None,
        problem=problem,
        replayable=item.state in ("dead", "skipped", "superseded"),
        order_url=order_url(item.order_id),
        fallback=fallback,
    )


@post("/deliveries/{delivery_id:str}/replay", guards=[signed_in], status_code=303)
async def replay_one(
    request: Request[Any, Any, State], delivery_id: FromPath[str]
) -> Response[Any]:
    await posted_form(request)
    rt = runtime_of(request)
    found = await rt.store.get_delivery(delivery_id)
    if found is None or not sees(request, found[0].shop):
        raise NotFoundException(delivery_id)
    try:
        await operations.replay_delivery(rt, delivery_id)
        notice = "Delivery replayed."
    except NotReplayable:
        notice = "This delivery cannot be replayed now."
    lang = language_of(request)[0]
    return back(f"{PREFIX}/deliveries/{delivery_id}", session_of(request), translate(notice, lang))
