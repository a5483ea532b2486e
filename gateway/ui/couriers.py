"""The courier scorecards page (`gateway.insights.scorecards`): a table, the transit times
(p50 to p90) and the return and problem rates drawn as inline SVG, and each courier's orders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get
from litestar.datastructures import State

from gateway.insights.scorecards import Scorecard, parse_since, scorecards
from gateway.ui.chart import range_svg, rates_svg
from gateway.ui.labels import translate
from gateway.ui.render import language_of, render, runtime_of, shops_of
from gateway.ui.session import signed_in

__all__ = ["courier_orders", "couriers"]

PERIODS = (7, 30, 90)
"""The windows the page offers, in days."""
ORDER_CAP = 200
"""Orders listed per courier: the newest ones."""


def _days(request: Request[Any, Any, State]) -> int:
    asked = request.query_params.get("days", "30")
    return int(asked) if asked.isdigit() and int(asked) in PERIODS else 30


def _label(card: Scorecard) -> str:
    label = f"{card.courier or '-'} {card.service or ''}".strip()
    return f"{label} · {card.destination}" if card.destination else label


@get("/couriers", guards=[signed_in])
async def couriers(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    days = _days(request)
    by_destination = request.query_params.get("by") == "destination"
    now = datetime.now(UTC)
    cards = await scorecards(
        rt.store,
        since=parse_since(f"{days}d", now),
        shops=shops_of(request),
        by_destination=by_destination,
    )
    lang = language_of(request)[0]
    transit = range_svg([(_label(c), c.transit_hours.p50, c.transit_hours.p90) for c in cards], "h")
    rates = rates_svg(
        [(_label(c), (c.return_rate, c.problem_rate)) for c in cards],
        [(translate("returns", lang), "returns"), (translate("problems", lang), "problems")],
    )
    return render(
        request,
        "couriers.html.j2",
        cards=cards,
        days=days,
        periods=PERIODS,
        by_destination=by_destination,
        transit_chart=transit,
        rates_chart=rates,
    )


@get("/couriers/orders", guards=[signed_in])
async def courier_orders(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    days = _days(request)
    courier = request.query_params.get("courier", "")
    service = request.query_params.get("service")
    orders = await rt.store.courier_orders(
        courier,
        since=parse_since(f"{days}d", datetime.now(UTC)),
        shops=shops_of(request),
        product=service,
        limit=ORDER_CAP,
    )
    return render(
        request,
        "courier_orders.html.j2",
        courier=courier,
        service=service,
        days=days,
        orders=orders,
        cap=ORDER_CAP,
    )
