"""The operator's dashboard under ``/ui``: server-rendered pages over the same runtime and
operator actions (`gateway.operations`) as the admin API, one module per page group.

`ui_router()` gives the routes and the `Console` state that `gateway.app` registers.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Router
from litestar.exceptions import NotFoundException
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from gateway.ui import configuration, couriers, deliveries, orders, overview, pushes, sign_in
from gateway.ui.render import PREFIX, Console, CsrfRefused, csrf_refused, not_found
from gateway.ui.session import SignInRequired, saving_sessions

__all__ = ["Console", "ui_router"]


def ui_router() -> tuple[Router, Console]:
    """The dashboard's routes (pages, actions, its static files) and its state for the app."""
    handlers: list[ControllerRouterHandler] = [
        sign_in.login_page,
        sign_in.login,
        sign_in.logout,
        overview.overview,
        overview.enable_sink,
        orders.orders,
        orders.order,
        couriers.couriers,
        couriers.courier_orders,
        deliveries.deliveries,
        deliveries.replay_confirm,
        deliveries.replay_dead,
        deliveries.delivery,
        deliveries.replay_one,
        pushes.pushes,
        pushes.reprocess,
        pushes.push,
        pushes.rejected,
        pushes.replay_rejected_body,
        configuration.configuration,
        configuration.reload_config,
        configuration.try_page,
        configuration.try_push,
        create_static_files_router(
            "/static",
            [Path(__file__).with_name("static")],
            include_in_schema=False,
            send_as_attachment=False,
        ),
    ]
    router = Router(
        path=PREFIX,
        route_handlers=handlers,
        include_in_schema=False,
        middleware=[saving_sessions],
        exception_handlers={
            SignInRequired: sign_in.to_sign_in,
            CsrfRefused: csrf_refused,
            NotFoundException: not_found,
        },
    )
    return router, Console()
