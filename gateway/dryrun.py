"""What a push would do, sending and storing nothing: `kabarin simulate` and the dashboard's
"Try a push" page both show `simulate`'s answer. A template that reads ``estimate`` gets the
parcel's delivery estimate as the dispatcher would look it up now, when a store is at hand.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import msgspec

from gateway.delivery.preparation import Estimates, estimate_to_render
from gateway.errors import KabarinError
from gateway.events import DEFAULT_SHOP, Event
from gateway.routing import Router
from gateway.sources.base import PushSource
from gateway.templating import Templates
from sinks.base import Sink

__all__ = ["Simulated", "SimulatedDelivery", "SimulatedEvent", "simulate"]


class SimulatedDelivery(msgspec.Struct, frozen=True, kw_only=True):
    route: str
    sink: str
    ordering: str
    preview: str | None
    """What the sink would send (`Sink.preview`: a webhook's envelope, Slack's text, ...)."""
    error: str | None = None
    """The template error, when the message could not be rendered."""


class SimulatedEvent(msgspec.Struct, frozen=True, kw_only=True):
    event: Event
    routes: list[str]
    """The routes that fire; none: the event is stored and counted, sent nowhere."""
    deliveries: list[SimulatedDelivery]


class Simulated(msgspec.Struct, frozen=True, kw_only=True):
    method: str
    events: list[SimulatedEvent]


async def simulate(
    body: bytes,
    *,
    source: PushSource,
    router: Router,
    templates: Templates,
    sinks: Mapping[str, Sink],
    timezone: ZoneInfo,
    shop: str = DEFAULT_SHOP,
    estimates: Estimates | None = None,
) -> Simulated:
    """Decode `body` as the receiver would at `source`'s path and render what every matching
    sink would send (a template reading ``estimate`` gets the order's from `estimates`: what
    the store knows of it, not what this push would add).

    Raises `gateway.errors.PushError` when the body is not a push (the receiver answers 400).
    """
    push = source.decode(body)
    result = source.normalise(push, received_at=datetime.now(UTC), tz=timezone, shop=shop)
    contacts = {c.order_id: c for c in result.contacts}
    events: list[SimulatedEvent] = []
    for event in result.events:
        deliveries: list[SimulatedDelivery] = []
        for delivery in router.deliveries(event):
            sink = sinks[delivery.sink]
            shown: str | None = None
            error: str | None = None
            contact = contacts.get(event.order_id)
            try:
                estimate = await estimate_to_render(
                    estimates, templates, sink, delivery, event=event, contact=contact
                )
                message = templates.message(
                    sink, delivery, event=event, contact=contact, estimate=estimate
                )
                # What the sink really sends: a webhook sends the event, not the rendered text.
                shown = sink.preview(message)
            except KabarinError as exc:
                error = str(exc)
            deliveries.append(
                SimulatedDelivery(
                    route=delivery.route,
                    sink=delivery.sink,
                    ordering=delivery.ordering,
                    preview=shown,
                    error=error,
                )
            )
        routes = [route.name for route in router.match(event)]
        events.append(SimulatedEvent(event=event, routes=routes, deliveries=deliveries))
    return Simulated(method=push.method, events=events)
