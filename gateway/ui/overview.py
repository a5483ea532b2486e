"""The overview: pushes and events per hour, deliveries per state, the intake backlog, the
sinks (and switching one back on)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath

from gateway import operations
from gateway.delivery.model import DeliveryFilter
from gateway.errors import UnknownSink
from gateway.events import Event
from gateway.store.roles import EventQuery, PushQuery
from gateway.ui.chart import count_per_hour, hour_buckets, hourly_svg
from gateway.ui.deliveries import DELIVERY_STATES
from gateway.ui.labels import translate
from gateway.ui.render import (
    PREFIX,
    back,
    language_of,
    posted_form,
    render,
    runtime_of,
    session_of,
    shops_of,
)
from gateway.ui.session import signed_in, whole_deployment_ui

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["enable_sink", "events_since", "overview"]

_COUNT_CAP = 1000
"""Deliveries counted per state on the overview; more shows as ``1000+``."""


@get("/", guards=[signed_in])
async def overview(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    now = datetime.now(UTC)
    buckets = hour_buckets(now, 24)
    since = buckets[0]
    shops = shops_of(request)
    everything = session_of(request).scope.everything
    pushes = await rt.store.list_pushes(PushQuery(since=since, limit=10 * _COUNT_CAP, shops=shops))
    events = await events_since(rt, since, limit=10 * _COUNT_CAP, shops=shops)
    chart = hourly_svg(
        buckets,
        [
            (
                translate("pushes", language_of(request)[0]),
                "pushes",
                count_per_hour([p.received_at for p in pushes], buckets),
            ),
            (
                translate("events", language_of(request)[0]),
                "events",
                count_per_hour([e.received_at for e in events], buckets),
            ),
        ],
        rt.timezone,
    )
    by_state: dict[str, str] = {}
    for state in DELIVERY_STATES:
        found = await rt.store.list_deliveries(
            DeliveryFilter(state=state, limit=_COUNT_CAP + 1, shops=shops)
        )
        by_state[state] = f"{_COUNT_CAP}+" if len(found) > _COUNT_CAP else str(len(found))
    return render(
        request,
        "overview.html.j2",
        chart=chart,
        push_total=len(pushes),
        event_total=len(events),
        by_state=by_state,
        # The backlog and the sinks are the whole deployment's: admin.token's to see.
        backlog=await rt.store.count_pending_pushes() if everything else None,
        rejected=await rt.store.count_rejected(shops=shops),
        sinks=await operations.sink_statuses(rt) if everything else [],
    )


async def events_since(
    rt: Runtime, since: datetime, *, limit: int, shops: tuple[str, ...] | None = None
) -> list[Event]:
    out: list[Event] = []
    cursor: int | None = None
    while len(out) < limit:
        page = await rt.store.list_events(
            EventQuery(since=since, limit=500, before_seq=cursor, shops=shops)
        )
        out.extend(s.event for s in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return out[:limit]


@post("/sinks/{name:str}/enable", guards=[signed_in, whole_deployment_ui], status_code=303)
async def enable_sink(request: Request[Any, Any, State], name: FromPath[str]) -> Response[Any]:
    await posted_form(request)
    try:
        await operations.enable_sink(runtime_of(request), name)
    except UnknownSink:
        raise NotFoundException(f"no sink {name!r} in the configuration") from None
    return back(
        f"{PREFIX}/", session_of(request), f"{translate('Enable', language_of(request)[0])}: {name}"
    )
