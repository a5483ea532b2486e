"""The customer's tracking page: ``GET /t/{token}``, and the lookup ``GET /t`` / ``POST /t``.

No sign-in: a link's signature is the customer's key to one order (`links`). A token that is
not Kabarin's is 404, the same page as a genuine token of an order the store does not have
(so nothing tells whether an order exists); a genuine expired one is 410 with a friendly page.
With ``tracking_page.enabled`` off, every ``/t`` answer is that 404.

The page reads the store (the order's events, its contact) and never writes to it. It is one
server-rendered HTML document with its style and script inline, allowed by hash in its
``Content-Security-Policy``; its ``ETag`` is its content's hash, so a repeat view is a 304.
``HEAD`` on ``/t/{token}`` and ``/t`` answers as ``GET`` does, without the body.

The lookup (``POST /t`` with ``awb`` and ``phone_last4``) redirects (303) to the order's page
when an order with that AWB has a contact whose phone ends with those four digits; otherwise
it answers one generic "no parcel matches". Each such answer counts against the client in the
lookup limiter (a `gateway.access.SignInLimiter` of its own): after `MAX_FAILURES` within
`WINDOW` seconds, its lookups (``POST /t`` only; not the form or the pages) are 429 with
``Retry-After``, whatever they ask. A match does not clear the count (one known parcel must not
buy a guesser more tries).

The only secret is four digits, and a guesser may hold many addresses (an IPv6 /56 is 256
clients), so misses are also counted by the AWB (in capitals), in a limiter of their own
(`AWB_LOOKUPS`): after `MAX_FAILURES` misses of one AWB within `AWB_WINDOW` seconds, from
whichever clients, a lookup of that AWB is the same generic miss (200) even with the right
digits, so a guesser learns nothing. Only an AWB that names an order is counted (a made-up one
takes no room in the bounded count, so it cannot push a real one out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response, post, route
from litestar.datastructures import State
from litestar.enums import HttpMethod, MediaType
from litestar.params import FromPath
from litestar.response import Redirect

from gateway.access import MAX_FAILURES, WINDOW, SignInLimiter, client_key
from gateway.insights.estimates import estimate_for
from gateway.store.roles import EventQuery
from gateway.tracking_page.assets import SCRIPT, policy, style
from gateway.tracking_page.labels import Language, pick_language, words
from gateway.tracking_page.links import Expired, LinkSigner, Tampered, TrackingLink, signer_for
from gateway.tracking_page.view import Brand, build_view

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["AWB_LOOKUPS", "AWB_WINDOW", "LOOKUPS", "MAX_FAILURES", "WINDOW", "handlers"]

log = logging.getLogger("kabarin")

LOOKUPS = "tracking_lookups"
"""The app state key of the lookup limiter (by client)."""
AWB_LOOKUPS = "tracking_lookups_by_awb"
"""The app state key of the lookup limiter by AWB."""
AWB_WINDOW = 86400.0
"""Seconds a miss counts against its AWB."""
_EVENTS = 200
"""An order's events shown at most (newest first)."""
_GATE = "tracking_page_gate"
_ORDERS_PER_AWB = 5
"""Orders one AWB may name (a reused AWB) that a lookup checks."""

_env = Environment(
    loader=PackageLoader("gateway.tracking_page", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _runtime(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _language(request: Request[Any, Any, Any], registered: str | None = None) -> Language:
    return pick_language(request.query_params.get("lang"), registered)


def _base(signer: LinkSigner) -> str:
    """The path under which customers reach ``/t`` (``public_url``'s own path)."""
    return urlsplit(signer.public_url).path.rstrip("/")


def _html(
    request: Request[Any, Any, Any],
    template: str,
    *,
    language: Language,
    brand: Brand,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    etag: bool = False,
    **context: Any,
) -> Response[bytes]:
    css, css_hash = style(brand.color)
    body = (
        _env.get_template(template)
        .render(
            lang=language,
            w=words(language),
            brand=brand,
            style=css,
            script=SCRIPT,
            asked_lang=request.query_params.get("lang") in ("id", "en"),
            **context,
        )
        .encode()
    )
    out = {
        "Content-Security-Policy": policy(css_hash, brand.logo_url),
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
        "X-Robots-Tag": "noindex",
        "Cache-Control": "no-store",
        **(headers or {}),
    }
    if etag:
        tag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        out["ETag"] = tag
        out["Cache-Control"] = "private, no-cache"
        asked = request.headers.get("if-none-match", "")
        if tag in (t.strip().removeprefix("W/") for t in asked.split(",")):
            return Response(b"", status_code=304, headers=out)
    if request.method == HttpMethod.HEAD:  # the GET answer's status and headers, no body
        out["Content-Length"] = str(len(body))
        body = b""
    return Response(body, status_code=status_code, media_type=MediaType.HTML, headers=out)


def _not_found(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The one 404: in the default brand (``tracking_page.brand``, else Kabarin's), never a
    shop's, so it tells nothing of which shop or order a link was about."""
    language = _language(request)
    w = words(language)
    return _html(
        request,
        "message.html.j2",
        language=language,
        brand=Brand.of(_runtime(request).config.tracking_page.brand, "Kabarin"),
        status_code=404,
        title=w["Page not found"],
        text=w[
            "This link is not valid. Check that it was copied whole, or find the parcel by its AWB."
        ],
        base=_base_of(request),
    )


def _base_of(request: Request[Any, Any, Any]) -> str | None:
    """`_base`, or ``None`` with the page off (then no link to the lookup either)."""
    signer = signer_for(_runtime(request).config)
    return _base(signer) if signer is not None else None


def _brand(rt: Runtime, shop_id: str) -> Brand | None:
    shop = rt.shops.get(shop_id)
    return None if shop is None else Brand.of(shop.brand, shop.name)


_READ = [HttpMethod.GET, HttpMethod.HEAD]
"""A page's methods: ``HEAD`` (link checkers, chat apps' previews) answers as ``GET`` does,
without the body (`_html`)."""


@route("/t/{token:str}", http_method=_READ, include_in_schema=False)
async def tracking_page(request: Request[Any, Any, State], token: FromPath[str]) -> Response[bytes]:
    rt = _runtime(request)
    signer = signer_for(rt.config)
    if signer is None:
        return _not_found(request)
    try:
        link = signer.verify(token, now=datetime.now(UTC))
    except Tampered:
        return _not_found(request)
    except Expired as exc:
        brand = _brand(rt, exc.link.shop)
        if brand is None:
            return _not_found(request)
        language = _language(request)
        w = words(language)
        return _html(
            request,
            "message.html.j2",
            language=language,
            brand=brand,
            status_code=410,
            title=w["This link has expired"],
            text=w[
                "Links in our messages work for a while only."
                " Find the parcel by its AWB, or ask the shop."
            ],
            base=_base(signer),
        )
    brand = _brand(rt, link.shop)
    if brand is None:
        return _not_found(request)
    async with _one_at_a_time(request):
        return await _order_page(request, rt, signer, link, brand)


@asynccontextmanager
async def _one_at_a_time(request: Request[Any, Any, Any]) -> AsyncIterator[None]:
    """One page is read and rendered at a time: a burst of views queues here (costing the event
    loop nothing while it waits), so a push arriving meanwhile waits for one page at most."""
    gate: asyncio.Semaphore | None = request.app.state.get(_GATE)
    if gate is None:
        gate = request.app.state[_GATE] = asyncio.Semaphore(1)
    async with gate:
        yield


async def _order_page(
    request: Request[Any, Any, Any],
    rt: Runtime,
    signer: LinkSigner,
    link: TrackingLink,
    brand: Brand,
) -> Response[bytes]:
    page = await rt.store.list_events(
        EventQuery(order_id=link.order_id, shops=(link.shop,), limit=_EVENTS)
    )
    events = [stored.event for stored in page.items]
    if not events:
        return _not_found(request)
    contact = await rt.store.get_contact(link.order_id, shop=link.shop)
    language = _language(request, contact.language if contact is not None else None)
    view = build_view(
        events,
        contact=contact,
        language=language,
        timezone=rt.shops.timezone_of(link.shop, rt.timezone),
        # Shipped and not yet delivered or returned, with a basis, and its latest date not yet
        # past: else no estimate block.
        estimate=await estimate_for(rt.store, link.order_id, shop=link.shop),
        now=datetime.now(UTC),  # an estimate already past is left out
    )
    return _html(
        request,
        "order.html.j2",
        language=language,
        brand=brand,
        view=view,
        base=_base(signer),
        etag=True,
    )


@route("/t", http_method=_READ, include_in_schema=False)
async def lookup_form(request: Request[Any, Any, State]) -> Response[bytes]:
    signer = signer_for(_runtime(request).config)
    if signer is None:
        return _not_found(request)
    return _lookup_page(request, signer)


def _lookup_page(
    request: Request[Any, Any, Any],
    signer: LinkSigner,
    *,
    notice: str | None = None,
    awb: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response[bytes]:
    rt = _runtime(request)
    # Not yet any shop's: one shop's brand, else the default brand.
    shops = list(rt.shops)
    if len(shops) == 1:
        brand = Brand.of(shops[0].brand, shops[0].name)
    else:
        brand = Brand.of(rt.config.tracking_page.brand, "Kabarin")
    return _html(
        request,
        "lookup.html.j2",
        language=_language(request),
        brand=brand,
        status_code=status_code,
        headers=headers,
        notice=notice,
        awb=awb,
        base=_base(signer),
    )


@post("/t", include_in_schema=False, status_code=200)
async def lookup(request: Request[Any, Any, State]) -> Response[Any]:
    rt = _runtime(request)
    signer = signer_for(rt.config)
    if signer is None:
        return _not_found(request)
    w = words(_language(request))
    limiter: SignInLimiter = request.app.state[LOOKUPS]
    client = client_key(request.client.host if request.client else None)
    now = time.monotonic()
    wait = limiter.retry_after(client, now)
    if wait is not None:
        return _lookup_page(
            request,
            signer,
            notice=w["Too many tries from this address: try again later."],
            status_code=429,
            headers={"Retry-After": str(wait)},
        )
    form = await request.form()
    awb = form.get("awb")
    last4 = form.get("phone_last4")
    awb = awb.strip() if isinstance(awb, str) else ""
    last4 = last4.strip() if isinstance(last4, str) else ""
    by_awb: SignInLimiter = request.app.state[AWB_LOOKUPS]
    key = awb.upper()
    orders = [] if by_awb.retry_after(key, now) is not None else await _orders(rt, awb)
    found = await _match(rt, orders, last4)
    if found is None:
        limiter.failed(client, now)
        if orders:  # an AWB that names an order, not yet refused
            by_awb.failed(key, now)
        return _lookup_page(request, signer, notice=w["No parcel matches."], awb=awb[:64])
    shop, order_id = found
    token = signer.sign(shop, order_id, datetime.now(UTC) + timedelta(seconds=signer.ttl))
    lang = request.query_params.get("lang")
    query = f"?lang={lang}" if lang in ("id", "en") else ""
    return Redirect(f"{_base(signer)}/t/{token}{query}", status_code=303)


async def _orders(rt: Runtime, awb: str) -> list[tuple[str, str]]:
    """The (shop, order id) of the orders with AWB `awb` (as typed, or in capitals), at most
    `_ORDERS_PER_AWB`; none for a malformed AWB."""
    if not awb or len(awb) > 64 or "\x00" in awb:
        return []
    shops = tuple(rt.shops.ids)
    orders: dict[tuple[str, str], None] = {}
    for spelling in dict.fromkeys((awb, awb.upper())):
        page = await rt.store.list_events(EventQuery(awb=spelling, shops=shops, limit=20))
        for stored in page.items:
            orders.setdefault((stored.event.shop, stored.event.order_id), None)
    return list(orders)[:_ORDERS_PER_AWB]


async def _match(rt: Runtime, orders: list[tuple[str, str]], last4: str) -> tuple[str, str] | None:
    """The one of `orders` whose contact's phone ends with `last4`; ``None`` for anything
    else, a malformed `last4` included."""
    if len(last4) != 4 or not last4.isdigit():
        return None
    for shop, order_id in orders:
        contact = await rt.store.get_contact(order_id, shop=shop)
        digits = "".join(c for c in (contact.phone or "") if c.isdigit()) if contact else ""
        if len(digits) >= 4 and hmac.compare_digest(digits[-4:], last4):
            return shop, order_id
    return None


def handlers() -> list[Any]:
    """The page's route handlers, for `gateway.app`."""
    return [tracking_page, lookup_form, lookup]
