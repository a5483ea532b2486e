"""The insights admin API: ``GET /admin/v1/insights/couriers`` (courier scorecards, see
`gateway.insights.scorecards`), guarded as the rest of the admin API (`gateway.admin`)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Literal

import msgspec
from litestar import Controller, get
from litestar.datastructures import State
from litestar.di import NamedDependency, Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import QueryParameter

from gateway.access import admin_guard, admin_viewer
from gateway.errors import ErrorBody, UnknownShop
from gateway.insights.scorecards import Scorecard, parse_since, scorecards
from gateway.operations import list_shops
from gateway.shops import AdminScope

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["CourierScorecards", "InsightsController"]

Viewer = NamedDependency[AdminScope]
SinceWindow = Annotated[
    str,
    QueryParameter(
        min_length=1,
        max_length=40,
        description="The window: orders shipped since then. A duration back from now (`30d`,"
        " `12h`, `2w`) or an ISO 8601 time; one without a zone is in `receiver.timezone`.",
    ),
]
ShopParam = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        description="A shop id: only its orders. Unknown: 400; outside a scoped token's shops:"
        " 404. Left out: every shop the token sees.",
    ),
]
By = Annotated[
    Literal["destination"] | None,
    QueryParameter(description="`destination`: one row per destination city too."),
]


class CourierScorecards(msgspec.Struct, frozen=True, kw_only=True):
    since: datetime
    """The window's start: orders shipped since then count."""
    couriers: list[Scorecard]
    """One row per courier and product (and destination city with ``by=destination``), most
    shipments first."""


_ERRORS = {
    400: ResponseSpec(ErrorBody, description="A parameter is invalid; `detail` names it."),
    401: ResponseSpec(ErrorBody, description="Missing or wrong admin token."),
    404: ResponseSpec(ErrorBody, description="`shop` is outside this scoped token's shops."),
}


class InsightsController(Controller):
    path = "/admin/v1/insights"
    guards = [admin_guard]
    dependencies = {"viewer": Provide(admin_viewer, sync_to_thread=False)}
    tags = ["admin"]
    security = [{"BearerToken": []}]

    @get(
        "/couriers",
        summary="Courier scorecards: shipments, transit and pickup times, return, problem and"
        " on-time rates per courier and product",
        responses=_ERRORS,
    )
    async def couriers(
        self,
        state: State,
        viewer: Viewer,
        since: SinceWindow = "30d",
        shop: ShopParam = None,
        by: By = None,
    ) -> CourierScorecards:
        rt: Runtime = state.runtime
        try:
            start = parse_since(since, datetime.now(UTC), rt.config.receiver.tz)
        except (ValueError, OverflowError) as exc:
            raise ValidationException(str(exc)) from None
        try:
            shops = list_shops(rt.shops, viewer, shop)
        except UnknownShop as exc:
            if exc.hidden:
                raise NotFoundException(str(exc)) from None
            raise ValidationException(f"shop: {exc}") from None
        cards = await scorecards(
            rt.store, since=start, shops=shops, by_destination=by == "destination"
        )
        return CourierScorecards(since=start, couriers=cards)
