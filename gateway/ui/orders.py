"""Orders: found by order id or AWB, and one order's timeline with its deliveries."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromQuery
from litestar.response import Redirect

from gateway import operations
from gateway.delivery.model import Delivery, DeliveryFilter
from gateway.events import Event
from gateway.insights.estimates import estimate_for
from gateway.store.roles import EventQuery
from gateway.tracking_page.links import staff_link
from gateway.ui.overview import events_since
from gateway.ui.render import order_url, render, runtime_of, shops_of
from gateway.ui.session import signed_in

__all__ = ["order", "orders"]

_SCAN_EVENTS = 2000
"""Recent events looked through for an AWB (the store has no AWB index to ask)."""


@get("/orders", guards=[signed_in])
async def orders(request: Request[Any, Any, State], q: FromQuery[str] = "") -> Response[Any]:
    rt = runtime_of(request)
    shops = shops_of(request)
    query = q.strip()
    if query:
        page = await rt.store.list_events(EventQuery(order_id=query, limit=1, shops=shops))
        if page.items:
            return Redirect(order_url(query), status_code=303)
        scanned = await events_since(
            rt, datetime.min.replace(tzinfo=UTC), limit=_SCAN_EVENTS, shops=shops
        )
        for event in scanned:
            if event.awb is not None and event.awb.casefold() == query.casefold():
                return Redirect(order_url(event.order_id), status_code=303)
    recent = await rt.store.list_events(EventQuery(limit=200, shops=shops))
    seen: dict[str, Event] = {}
    awbs: dict[str, str] = {}
    for stored in recent.items:  # newest first: the latest status, and the latest AWB known
        seen.setdefault(stored.event.order_id, stored.event)
        if stored.event.awb:
            awbs.setdefault(stored.event.order_id, stored.event.awb)
    shown = list(seen.values())[:50]
    for event in shown:
        if event.order_id not in awbs:  # given by a push older than the events looked through
            own = await rt.store.list_events(
                EventQuery(order_id=event.order_id, limit=100, shops=(event.shop,))
            )
            awb = next((s.event.awb for s in own.items if s.event.awb), None)
            if awb is not None:
                awbs[event.order_id] = awb
    return render(request, "orders.html.j2", q=query, missing=bool(query), recent=shown, awbs=awbs)


@get("/orders/view", guards=[signed_in])
async def order(request: Request[Any, Any, State], order_id: FromQuery[str] = "") -> Response[str]:
    order_id = request.query_params.get("id", order_id)
    rt = runtime_of(request)
    page = await rt.store.list_events(
        EventQuery(order_id=order_id, limit=500, shops=shops_of(request))
    )
    if not page.items:
        raise NotFoundException(order_id)
    # One order id of several shops: the newest event's shop, unless `shop` names one.
    shop = page.items[0].event.shop
    page.items[:] = [s for s in page.items if s.event.shop == shop]
    events = sorted((s.event for s in page.items), key=lambda e: (e.occurred_at, e.received_at))
    deliveries = await operations.with_waiting(
        rt,
        await rt.store.list_deliveries(DeliveryFilter(order_id=order_id, limit=500, shops=(shop,))),
    )
    attempts = {}
    for d in deliveries[:100]:
        found = await rt.store.get_delivery(d.id)
        attempts[d.id] = found[1] if found else []
    by_event: dict[str, list[Delivery]] = {}
    for d in sorted(deliveries, key=lambda d: d.created_at):
        by_event.setdefault(d.event_id, []).append(d)
    contact = await rt.store.get_contact(order_id, shop=shop)
    facts = await rt.store.order_facts(order_id, shop=shop)
    estimate = await estimate_for(rt.store, order_id, shop=shop)
    return render(
        request,
        "order.html.j2",
        order_id=order_id,
        shop=shop,
        awbs=sorted({e.awb for e in events if e.awb}),
        events=events,
        by_event=by_event,
        attempts=attempts,
        contact=contact,
        facts=facts,
        estimate=estimate,
        mask=rt.redactor.redact,
        tracking_url=staff_link(rt.config, shop, order_id, now=datetime.now(UTC)),
    )
