"""Signing in to the dashboard with an admin token (``admin.token`` or a scoped one), and out:
the same count of wrong tokens per client as the admin API's."""

from __future__ import annotations

import logging
import time
from typing import Any
from urllib.parse import urlencode

from litestar import Request, Response, get, post
from litestar.datastructures import Cookie, State
from litestar.response import Redirect

from gateway.access import SignInLimiter, client_key
from gateway.ui.render import PREFIX, posted_form, render, runtime_of
from gateway.ui.session import COOKIE, LIFETIME, end_session, open_session, signed_in

__all__ = ["login", "login_page", "logout", "to_sign_in"]

log = logging.getLogger("kabarin")

_OFF = "The dashboard is off: set admin.token in the configuration."

_TOO_MANY = "Too many wrong tokens from this address: try again later."


@get("/login", sync_to_thread=False)
def login_page(request: Request[Any, Any, State]) -> Response[str]:
    if not runtime_of(request).shops.admin_on:
        # Said before anyone types a token that could not work anyway.
        return render(request, "login.html.j2", status_code=403, off=True, error=_OFF, next="")
    return render(request, "login.html.j2", error=None, next=_safe_next(request))


@post("/login", status_code=303)
async def login(request: Request[Any, Any, State]) -> Response[Any]:
    form = await request.form()
    token = form.get("token")
    target = _safe_next(request, form.get("next"))
    rt = runtime_of(request)
    if not rt.shops.admin_on:
        return render(request, "login.html.j2", status_code=403, off=True, next=target, error=_OFF)
    # The same count of wrong tokens per client as the admin API's (`gateway.access`).
    limiter: SignInLimiter = request.app.state.sign_ins
    client = client_key(request.client.host if request.client else None)
    wait = limiter.retry_after(client, time.monotonic())
    if wait is not None:
        response = render(request, "login.html.j2", status_code=429, next=target, error=_TOO_MANY)
        response.headers["Retry-After"] = str(wait)
        return response
    # A scoped token (`admin.tokens`) is a right token too: its session sees its shops.
    scope = rt.shops.admin_scope(token.strip()) if isinstance(token, str) else None
    if scope is None or not isinstance(token, str):
        limiter.failed(client, time.monotonic())
        log.warning("dashboard: a sign-in with a wrong admin token")
        return render(
            request, "login.html.j2", status_code=401, next=target, error="Wrong admin token."
        )
    limiter.succeeded(client)
    await end_session(rt.store, request.cookies.get(COOKIE))
    session_id, _ = await open_session(rt.store, token.strip(), scope)
    cookie = Cookie(
        key=COOKIE,
        value=session_id,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        # `auto`: Secure when the request came over https (as a trusted proxy says, see
        # `gateway.access`); `always` for a proxy Kabarin does not trust to say so.
        secure=rt.config.admin.secure_cookie == "always" or request.url.scheme == "https",
        max_age=int(LIFETIME),
    )
    return Redirect(target, status_code=303, cookies=[cookie])


def _safe_next(request: Request[Any, Any, Any], value: object = None) -> str:
    """Where to go after sign-in: a dashboard path only, never another site."""
    target = value if isinstance(value, str) else request.query_params.get("next", "")
    if target.startswith(f"{PREFIX}/") and not target.startswith("//") and "\\" not in target:
        return target
    return f"{PREFIX}/"


def to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    if request.method != "GET":
        target = f"{PREFIX}/"
    return Redirect(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303)


@post("/logout", guards=[signed_in], status_code=303)
async def logout(request: Request[Any, Any, State]) -> Response[Any]:
    await posted_form(request)
    rt = runtime_of(request)
    await end_session(rt.store, request.cookies.get(COOKIE))
    response: Redirect = Redirect(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response
