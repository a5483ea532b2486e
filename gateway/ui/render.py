"""How a dashboard page is rendered (its language, the local time, the CSRF token, the notice
an action left) and how an action answers: its posted form checked against the session's CSRF
token first, then back to a page with what it did.

Every page needs a session (`gateway.ui.session.signed_in`); every POST action checks the
session's CSRF token first and changes nothing without it. What a page counts is bounded (the
last 24 hours, a few thousand rows at most): enough for a small shop, never a full scan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.response import Redirect

from gateway.errors import UnknownShop
from gateway.operations.shops import list_shops
from gateway.ui.labels import LANGUAGES, Language, translate
from gateway.ui.session import Session
from gateway.units import local_time

if TYPE_CHECKING:
    from gateway.reload import ReloadResult
    from gateway.runtime import Runtime

__all__ = [
    "PREFIX",
    "Console",
    "CsrfRefused",
    "back",
    "console_of",
    "csrf_refused",
    "language_of",
    "not_found",
    "order_url",
    "posted_form",
    "render",
    "runtime_of",
    "sees",
    "session_of",
    "shops_of",
]

log = logging.getLogger("kabarin")

PREFIX = "/ui"

LANG_COOKIE = "kabarin_lang"


_env = Environment(
    loader=PackageLoader("gateway.ui", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class Console:
    """The dashboard's own state, kept on ``app.state.ui``."""

    last_reload: ReloadResult | None = None
    """The last reload asked for from the dashboard, shown on the configuration page."""


def language_of(request: Request[Any, Any, Any]) -> tuple[Language, bool]:
    """The page's language, and whether the query asked for it (then it is remembered)."""
    asked = request.query_params.get("lang")
    for lang in LANGUAGES:
        if asked == lang:
            return lang, True
    for lang in LANGUAGES:
        if request.cookies.get(LANG_COOKIE) == lang:
            return lang, False
    return "en", False


def runtime_of(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def console_of(request: Request[Any, Any, Any]) -> Console:
    console: Console = request.app.state.ui
    return console


def session_of(request: Request[Any, Any, Any]) -> Session:
    session: Session = request.state.ui_session
    return session


def shops_of(request: Request[Any, Any, Any]) -> tuple[str, ...] | None:
    """The shops a page's lists keep: its ``shop`` query parameter (checked against the
    configuration and the session's scope, as the admin API checks it: one the session does not
    see is a 404 page), else every shop the session sees (``None``: every shop)."""
    try:
        return list_shops(
            runtime_of(request).shops,
            session_of(request).scope,
            request.query_params.get("shop") or None,
        )
    except UnknownShop as exc:
        raise NotFoundException(str(exc)) from None


def sees(request: Request[Any, Any, Any], shop: str) -> bool:
    """Whether the session's token sees a record of `shop` (another shop's is a 404 page)."""
    return session_of(request).scope.sees(shop)


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response[str]:
    lang, asked = language_of(request)
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    tz = runtime.timezone if runtime is not None else UTC
    session: Session | None = request.state.get("ui_session")

    def t(label: str, **values: object) -> str:
        return translate(label, lang, **values)

    def local(moment: datetime | None) -> str:
        return local_time(moment, tz)

    def local_date(moment: datetime | None) -> str:
        return "-" if moment is None else moment.astimezone(tz).strftime("%Y-%m-%d")

    # Several shops the session sees: lists get a shop filter and rows name their shop.
    seen = (
        [s for s in runtime.shops if session.scope.sees(s.id)]
        if runtime is not None and session is not None
        else []
    )

    def shop_name(shop_id: str) -> str:
        return runtime.shops.name_of(shop_id) if runtime is not None else shop_id

    def with_lang(target: str) -> str:
        query = dict(request.query_params)
        query["lang"] = target
        return f"{request.url.path}?{urlencode(query)}"

    html = _env.get_template(template).render(
        t=t,
        lang=lang,
        local=local,
        local_date=local_date,
        with_lang=with_lang,
        path=request.url.path,
        prefix=PREFIX,
        csrf=session.csrf if session is not None else "",
        signed_in=session is not None,
        everything=session is None or session.scope.everything,
        shop_choices=[(s.id, s.name) for s in seen] if len(seen) > 1 else [],
        shop_chosen=request.query_params.get("shop", ""),
        shop_name=shop_name,
        flash=session.take_flash() if session is not None else None,
        **context,
    )
    cookies = []
    if asked:
        cookies.append(
            Cookie(
                key=LANG_COOKIE,
                value=lang,
                path=PREFIX,
                max_age=365 * 86400,
                samesite="strict",
                httponly=True,
            )
        )
    return Response(
        html,
        status_code=status_code,
        media_type=MediaType.HTML,
        cookies=cookies,
        headers={"Cache-Control": "no-store", "X-Frame-Options": "DENY"},
    )


async def posted_form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The posted form, after checking its CSRF token against the session's. A field holding a
    NUL character is a 400, as such a query or path value is (`gateway.app`)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not session_of(request).csrf_ok(values.get("csrf")):
        raise CsrfRefused()
    for name, value in values.items():
        if "\x00" in value:
            raise ValidationException(f"{name}: a NUL character (U+0000) is not allowed")
    return values


class CsrfRefused(Exception):
    pass


def back(target: str, session: Session, notice: str | None = None) -> Redirect:
    """After an action: back to a page (POST, redirect, GET), with what the action did."""
    session.flash = notice
    return Redirect(target, status_code=303)


def csrf_refused(request: Request[Any, Any, Any], _: Exception) -> Response[str]:
    log.warning(
        "dashboard: refused a %s %s without a valid CSRF token", request.method, request.url.path
    )
    return render(
        request,
        "message.html.j2",
        status_code=403,
        title="Refused",
        text="This form has expired or did not come from this dashboard. Nothing was changed.",
    )


def not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    detail = getattr(exc, "detail", "")
    return render(request, "message.html.j2", status_code=404, title="Not found", text=detail)


def order_url(order_id: str) -> str:
    return f"{PREFIX}/orders/view?{urlencode({'id': order_id})}"
