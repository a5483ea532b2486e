"""The dashboard's pages and actions under ``/ui``: server-rendered HTML over the same runtime,
store methods and admin helpers as the admin API.

Every page needs a session (`gateway.ui.session.signed_in`); every POST action checks the
session's CSRF token first and changes nothing without it. What a page counts is bounded (the
last 24 hours, a few thousand rows at most): enough for a small shop, never a full scan.
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import msgspec
from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie, State
from litestar.enums import MediaType
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import FromPath, FromQuery, QueryParameter
from litestar.response import Redirect
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from gateway.access import SignInLimiter, client_key
from gateway.admin import RejectedId
from gateway.delivery.model import Delivery, DeliveryFilter, DeliveryState
from gateway.dryrun import Simulated, simulate
from gateway.errors import ConfigError, KabarinError, PushError
from gateway.events import Event
from gateway.operations import push_page, replay_rejected, shown_body, sink_statuses, with_waiting
from gateway.sources.registry import DEFAULT_SOURCE, get_source
from gateway.store.roles import EventQuery, PushQuery, PushState
from gateway.ui.chart import count_per_hour, hour_buckets, hourly_svg
from gateway.ui.labels import LANGUAGES, Language, translate
from gateway.ui.session import (
    COOKIE,
    LIFETIME,
    Session,
    SignInRequired,
    end_session,
    open_session,
    saving_sessions,
    signed_in,
)
from gateway.units import parse_duration

if TYPE_CHECKING:
    from gateway.reload import ReloadResult

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["Console", "ui_router"]

log = logging.getLogger("kabarin")

PREFIX = "/ui"
LANG_COOKIE = "kabarin_lang"
DELIVERY_STATES: tuple[DeliveryState, ...] = (
    "pending",
    "in_flight",
    "delivered",
    "dead",
    "skipped",
    "superseded",
)
PUSH_STATES: tuple[PushState, ...] = ("pending", "processed", "failed")
_COUNT_CAP = 1000
"""Deliveries counted per state on the overview; more shows as ``1000+``."""
_SCAN_EVENTS = 2000
"""Recent events looked through for an AWB (the store has no AWB index to ask)."""
_SINCE_CHOICES = ("1h", "6h", "24h", "7d", "30d")

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


# -- rendering ---------------------------------------------------------------------------------


def _language(request: Request[Any, Any, Any]) -> tuple[Language, bool]:
    """The page's language, and whether the query asked for it (then it is remembered)."""
    asked = request.query_params.get("lang")
    for lang in LANGUAGES:
        if asked == lang:
            return lang, True
    for lang in LANGUAGES:
        if request.cookies.get(LANG_COOKIE) == lang:
            return lang, False
    return "en", False


def _rt(request: Request[Any, Any, Any]) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _console(request: Request[Any, Any, Any]) -> Console:
    console: Console = request.app.state.ui
    return console


def _session(request: Request[Any, Any, Any]) -> Session:
    session: Session = request.state.ui_session
    return session


def render(
    request: Request[Any, Any, Any],
    template: str,
    *,
    status_code: int = 200,
    **context: Any,
) -> Response[str]:
    lang, asked = _language(request)
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    tz = runtime.timezone if runtime is not None else UTC
    session: Session | None = request.state.get("ui_session")

    def t(label: str, **values: object) -> str:
        return translate(label, lang, **values)

    def local(moment: datetime | None) -> str:
        if moment is None:
            return "-"
        return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")

    def with_lang(target: str) -> str:
        query = dict(request.query_params)
        query["lang"] = target
        return f"{request.url.path}?{urlencode(query)}"

    html = _env.get_template(template).render(
        t=t,
        lang=lang,
        local=local,
        with_lang=with_lang,
        path=request.url.path,
        prefix=PREFIX,
        csrf=session.csrf if session is not None else "",
        signed_in=session is not None,
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


async def _form(request: Request[Any, Any, Any]) -> dict[str, str]:
    """The posted form, after checking its CSRF token against the session's. A field holding a
    NUL character is a 400, as such a query or path value is (`gateway.app`)."""
    form = await request.form()
    values = {k: v for k, v in form.items() if isinstance(v, str)}
    if not _session(request).csrf_ok(values.get("csrf")):
        raise _CsrfRefused()
    for name, value in values.items():
        if "\x00" in value:
            raise ValidationException(f"{name}: a NUL character (U+0000) is not allowed")
    return values


class _CsrfRefused(Exception):
    pass


def _back(target: str, session: Session, notice: str | None = None) -> Redirect:
    """After an action: back to a page (POST, redirect, GET), with what the action did."""
    session.flash = notice
    return Redirect(target, status_code=303)


# -- sign-in -----------------------------------------------------------------------------------


_OFF = "The dashboard is off: set admin.token in the configuration."
_TOO_MANY = "Too many wrong tokens from this address: try again later."


@get("/login", sync_to_thread=False)
def login_page(request: Request[Any, Any, State]) -> Response[str]:
    if _rt(request).admin_token is None:
        # Said before anyone types a token that could not work anyway.
        return render(request, "login.html.j2", status_code=403, off=True, error=_OFF, next="")
    return render(request, "login.html.j2", error=None, next=_safe_next(request))


@post("/login", status_code=303)
async def login(request: Request[Any, Any, State]) -> Response[Any]:
    form = await request.form()
    token = form.get("token")
    target = _safe_next(request, form.get("next"))
    rt = _rt(request)
    if rt.admin_token is None:
        return render(request, "login.html.j2", status_code=403, off=True, next=target, error=_OFF)
    # The same count of wrong tokens per client as the admin API's (`gateway.access`).
    limiter: SignInLimiter = request.app.state.sign_ins
    client = client_key(request.client.host if request.client else None)
    wait = limiter.retry_after(client, time.monotonic())
    if wait is not None:
        response = render(request, "login.html.j2", status_code=429, next=target, error=_TOO_MANY)
        response.headers["Retry-After"] = str(wait)
        return response
    if not isinstance(token, str) or not hmac.compare_digest(
        token.strip().encode(), rt.admin_token
    ):
        limiter.failed(client, time.monotonic())
        log.warning("dashboard: a sign-in with a wrong admin token")
        return render(
            request, "login.html.j2", status_code=401, next=target, error="Wrong admin token."
        )
    limiter.succeeded(client)
    await end_session(rt.store, rt.admin_token, request.cookies.get(COOKIE))
    session_id, _ = await open_session(rt.store, rt.admin_token)
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


def _to_sign_in(request: Request[Any, Any, Any], _: Exception) -> Response[Any]:
    target = request.url.path
    if request.url.query:
        target += f"?{request.url.query}"
    if request.method != "GET":
        target = f"{PREFIX}/"
    return Redirect(f"{PREFIX}/login?{urlencode({'next': target})}", status_code=303)


def _csrf_refused(request: Request[Any, Any, Any], _: Exception) -> Response[str]:
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


def _not_found(request: Request[Any, Any, Any], exc: Exception) -> Response[str]:
    detail = getattr(exc, "detail", "")
    return render(request, "message.html.j2", status_code=404, title="Not found", text=detail)


@post("/logout", guards=[signed_in], status_code=303)
async def logout(request: Request[Any, Any, State]) -> Response[Any]:
    await _form(request)
    rt = _rt(request)
    if rt.admin_token is not None:
        await end_session(rt.store, rt.admin_token, request.cookies.get(COOKIE))
    response: Redirect = Redirect(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(COOKIE, path=PREFIX)
    return response


# -- overview ----------------------------------------------------------------------------------


@get("/", guards=[signed_in])
async def overview(request: Request[Any, Any, State]) -> Response[str]:
    rt = _rt(request)
    now = datetime.now(UTC)
    buckets = hour_buckets(now, 24)
    since = buckets[0]
    pushes = await rt.store.list_pushes(PushQuery(since=since, limit=10 * _COUNT_CAP))
    events = await _events_since(rt, since, limit=10 * _COUNT_CAP)
    chart = hourly_svg(
        buckets,
        [
            (
                translate("pushes", _language(request)[0]),
                "pushes",
                count_per_hour([p.received_at for p in pushes], buckets),
            ),
            (
                translate("events", _language(request)[0]),
                "events",
                count_per_hour([e.received_at for e in events], buckets),
            ),
        ],
        rt.timezone,
    )
    by_state: dict[str, str] = {}
    for state in DELIVERY_STATES:
        found = await rt.store.list_deliveries(DeliveryFilter(state=state, limit=_COUNT_CAP + 1))
        by_state[state] = f"{_COUNT_CAP}+" if len(found) > _COUNT_CAP else str(len(found))
    return render(
        request,
        "overview.html.j2",
        chart=chart,
        push_total=len(pushes),
        event_total=len(events),
        by_state=by_state,
        backlog=await rt.store.count_pending_pushes(),
        rejected=await rt.store.count_rejected(),
        sinks=await sink_statuses(rt),
    )


async def _events_since(rt: Runtime, since: datetime, *, limit: int) -> list[Event]:
    out: list[Event] = []
    cursor: int | None = None
    while len(out) < limit:
        page = await rt.store.list_events(EventQuery(since=since, limit=500, before_seq=cursor))
        out.extend(s.event for s in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    return out[:limit]


@post("/sinks/{name:str}/enable", guards=[signed_in], status_code=303)
async def enable_sink(request: Request[Any, Any, State], name: FromPath[str]) -> Response[Any]:
    await _form(request)
    rt = _rt(request)
    if name not in rt.config.sinks:
        raise NotFoundException(f"no sink {name!r} in the configuration")
    await rt.store.enable_sink(name)
    rt.wake_dispatcher()
    return _back(
        f"{PREFIX}/", _session(request), f"{translate('Enable', _language(request)[0])}: {name}"
    )


# -- orders ------------------------------------------------------------------------------------


@get("/orders", guards=[signed_in])
async def orders(request: Request[Any, Any, State], q: FromQuery[str] = "") -> Response[Any]:
    rt = _rt(request)
    query = q.strip()
    if query:
        page = await rt.store.list_events(EventQuery(order_id=query, limit=1))
        if page.items:
            return Redirect(_order_url(query), status_code=303)
        scanned = await _events_since(rt, datetime.min.replace(tzinfo=UTC), limit=_SCAN_EVENTS)
        for event in scanned:
            if event.awb is not None and event.awb.casefold() == query.casefold():
                return Redirect(_order_url(event.order_id), status_code=303)
    recent = await rt.store.list_events(EventQuery(limit=200))
    seen: dict[str, Event] = {}
    awbs: dict[str, str] = {}
    for stored in recent.items:  # newest first: the latest status, and the latest AWB known
        seen.setdefault(stored.event.order_id, stored.event)
        if stored.event.awb:
            awbs.setdefault(stored.event.order_id, stored.event.awb)
    shown = list(seen.values())[:50]
    for event in shown:
        if event.order_id not in awbs:  # given by a push older than the events looked through
            own = await rt.store.list_events(EventQuery(order_id=event.order_id, limit=100))
            awb = next((s.event.awb for s in own.items if s.event.awb), None)
            if awb is not None:
                awbs[event.order_id] = awb
    return render(request, "orders.html.j2", q=query, missing=bool(query), recent=shown, awbs=awbs)


def _order_url(order_id: str) -> str:
    return f"{PREFIX}/orders/view?{urlencode({'id': order_id})}"


@get("/orders/view", guards=[signed_in])
async def order(request: Request[Any, Any, State], order_id: FromQuery[str] = "") -> Response[str]:
    order_id = request.query_params.get("id", order_id)
    rt = _rt(request)
    page = await rt.store.list_events(EventQuery(order_id=order_id, limit=500))
    if not page.items:
        raise NotFoundException(order_id)
    events = sorted((s.event for s in page.items), key=lambda e: (e.occurred_at, e.received_at))
    deliveries = await with_waiting(
        rt, await rt.store.list_deliveries(DeliveryFilter(order_id=order_id, limit=500))
    )
    attempts = {}
    for d in deliveries[:100]:
        found = await rt.store.get_delivery(d.id)
        attempts[d.id] = found[1] if found else []
    by_event: dict[str, list[Delivery]] = {}
    for d in sorted(deliveries, key=lambda d: d.created_at):
        by_event.setdefault(d.event_id, []).append(d)
    contact = await rt.store.get_contact(order_id)
    return render(
        request,
        "order.html.j2",
        order_id=order_id,
        awbs=sorted({e.awb for e in events if e.awb}),
        events=events,
        by_event=by_event,
        attempts=attempts,
        contact=contact,
        mask=rt.redactor.redact,
    )


# -- deliveries --------------------------------------------------------------------------------


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
        self, rt: Runtime, *, limit: int, state: DeliveryState | None = None
    ) -> list[Delivery]:
        """Newest first. The store has no route filter: a route narrows a bounded page here."""
        fetch = limit if self.route is None else limit * 10
        found = await rt.store.list_deliveries(
            DeliveryFilter(
                state=state or self.state, sink=self.sink, since=self.since_time(), limit=fetch
            )
        )
        if self.route is not None:
            found = [d for d in found if d.route == self.route]
        return found[:limit]


@get("/deliveries", guards=[signed_in])
async def deliveries(request: Request[Any, Any, State]) -> Response[str]:
    rt = _rt(request)
    query = _DeliveryQuery.of(request.query_params)
    found = await with_waiting(rt, await query.find(rt, limit=200))
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


@get("/deliveries/replay", guards=[signed_in])
async def replay_confirm(request: Request[Any, Any, State]) -> Response[str]:
    rt = _rt(request)
    query = _DeliveryQuery.of(request.query_params)
    dead = await query.find(rt, limit=10 * _COUNT_CAP, state="dead")
    if not dead and _unknown_sink(rt, query.sink):
        return _no_such_sink(request, rt, query)
    return render(request, "replay.html.j2", query=query, count=len(dead))


@post("/deliveries/replay", guards=[signed_in], status_code=303)
async def replay_dead(request: Request[Any, Any, State]) -> Response[Any]:
    form = await _form(request)
    rt = _rt(request)
    query = _DeliveryQuery.of(form)
    now = datetime.now(UTC)
    if query.route is None:
        count = await rt.store.replay(
            DeliveryFilter(state="dead", sink=query.sink, since=query.since_time()), now=now
        )
    else:
        count = 0
        for d in await query.find(rt, limit=10 * _COUNT_CAP, state="dead"):
            count += await rt.store.replay_one(d.id, now=now)
    if count == 0 and _unknown_sink(rt, query.sink):
        return _no_such_sink(request, rt, query)
    rt.wake_dispatcher()
    lang = _language(request)[0]
    target = f"{PREFIX}/deliveries?{query.query()}"
    return _back(target, _session(request), translate("{n} deliveries replayed.", lang, n=count))


def _unknown_sink(rt: Runtime, sink: str | None) -> bool:
    return sink is not None and sink not in rt.config.sinks


def _no_such_sink(
    request: Request[Any, Any, Any], rt: Runtime, query: _DeliveryQuery
) -> Response[str]:
    """As ``POST /admin/v1/deliveries/replay`` and ``kabarin replay --sink``: a sink filter that
    matched nothing because no such sink is configured is a typo, and said to be one (400)."""
    lang = _language(request)[0]
    known = ", ".join(sorted(rt.config.sinks)) or "-"
    text = translate(
        "No sink named {sink} is configured (configured sinks: {known}).",
        lang,
        sink=repr(query.sink),
        known=known,
    )
    return render(request, "message.html.j2", status_code=400, title="No such sink", text=text)


@get("/deliveries/{delivery_id:str}", guards=[signed_in])
async def delivery(request: Request[Any, Any, State], delivery_id: FromPath[str]) -> Response[str]:
    rt = _rt(request)
    found = await rt.store.get_delivery(delivery_id)
    if found is None:
        raise NotFoundException(delivery_id)
    item, attempts = found
    item = (await with_waiting(rt, [item]))[0]
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
        contact = await rt.store.get_contact(item.order_id)
        try:
            message = rt.templates.message(sink, item, event=event, contact=contact)
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
        order_url=_order_url(item.order_id),
        fallback=fallback,
    )


@post("/deliveries/{delivery_id:str}/replay", guards=[signed_in], status_code=303)
async def replay_one(
    request: Request[Any, Any, State], delivery_id: FromPath[str]
) -> Response[Any]:
    await _form(request)
    rt = _rt(request)
    done = await rt.store.replay_one(delivery_id, now=datetime.now(UTC))
    if done:
        rt.wake_dispatcher()
    lang = _language(request)[0]
    notice = "Delivery replayed." if done else "This delivery cannot be replayed now."
    return _back(f"{PREFIX}/deliveries/{delivery_id}", _session(request), translate(notice, lang))


# -- pushes ------------------------------------------------------------------------------------


@get("/pushes", guards=[signed_in])
async def pushes(request: Request[Any, Any, State]) -> Response[str]:
    rt = _rt(request)
    state = request.query_params.get("state")
    chosen: PushState | None = next((s for s in PUSH_STATES if s == state), None)
    items = await rt.store.list_pushes(PushQuery(state=chosen, limit=100))
    rejected = await rt.store.list_rejected(limit=50)
    return render(
        request, "pushes.html.j2", items=items, state=chosen, states=PUSH_STATES, rejected=rejected
    )


@post("/pushes/reprocess", guards=[signed_in], status_code=303)
async def reprocess(request: Request[Any, Any, State]) -> Response[Any]:
    form = await _form(request)
    rt = _rt(request)
    ids = [form["id"]] if form.get("id") else []
    count = await rt.store.requeue_pushes(state="failed", ids=ids)
    rt.backlog.pending += count
    rt.wake_intake()
    target = f"{PREFIX}/pushes/{ids[0]}" if ids else f"{PREFIX}/pushes"
    lang = _language(request)[0]
    notice = translate("{n} pushes put back to the intake.", lang, n=count)
    return _back(target, _session(request), notice)


_PUSH_PAGE = 100
"""Package items (with their events) on one page of a push: a push at the size limit holds
tens of thousands."""


@get("/pushes/{push_id:str}", guards=[signed_in])
async def push(
    request: Request[Any, Any, State],
    push_id: FromPath[str],
    cursor: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None,
) -> Response[str]:
    rt = _rt(request)
    found = await rt.store.get_push(push_id)
    if found is None:
        raise NotFoundException(push_id)
    start = cursor or 0
    page = await push_page(rt, found, start=start, limit=_PUSH_PAGE)
    return render(
        request,
        "push.html.j2",
        item=found,
        body=shown_body(found),
        body_bytes=len(found.body),
        page=page,
        start=start,
        items_json=msgspec.json.format(
            msgspec.json.encode([i.item for i in page.items]), indent=2
        ).decode(),
        order_url=_order_url,
    )


@get("/rejected/{rejected_id:int}", guards=[signed_in])
async def rejected(request: Request[Any, Any, State], rejected_id: RejectedId) -> Response[str]:
    rt = _rt(request)
    found = await rt.store.get_rejected(rejected_id)
    if found is None:
        raise NotFoundException(str(rejected_id))
    body = found.body.decode("utf-8", errors="replace")
    return render(request, "rejected.html.j2", item=found, body=body)


@post("/rejected/{rejected_id:int}/replay", guards=[signed_in], status_code=303)
async def replay_rejected_body(
    request: Request[Any, Any, State], rejected_id: RejectedId
) -> Response[Any]:
    await _form(request)
    rt = _rt(request)
    found = await rt.store.get_rejected(rejected_id)
    if found is None:
        raise NotFoundException(str(rejected_id))
    result = await replay_rejected(rt, found)
    lang = _language(request)[0]
    if result.outcome == "accepted":
        target = f"{PREFIX}/pushes/{result.answer['push_id']}"
        return _back(target, _session(request), translate("Accepted: it is a push now.", lang))
    if result.outcome == "rejected":
        reason = str(result.answer.get("detail", ""))
        notice = translate("Still not a push: {reason}", lang, reason=reason)
    else:
        notice = translate("The store is unavailable; try again.", lang)
    return _back(f"{PREFIX}/rejected/{rejected_id}", _session(request), notice)


# -- configuration -----------------------------------------------------------------------------


@get("/config", guards=[signed_in])
async def configuration(request: Request[Any, Any, State]) -> Response[str]:
    from gateway.check import validate_file  # what `kabarin check` runs

    rt = _rt(request)
    path = rt.config_path
    text: str | None = None
    problems: list[str] = []
    if path is not None:
        try:
            # bytes that are not UTF-8 are shown as U+FFFD; `validate_file` names the problem
            text = rt.redactor.redact(path.read_text(encoding="utf-8", errors="replace"))
        except OSError as exc:
            problems = [f"{path}: {exc.strerror or exc}"]
        else:
            try:
                validate_file(str(path))
            except ConfigError as exc:
                problems = [rt.redactor.redact(p) for p in exc.problems]
    return render(
        request,
        "config.html.j2",
        config_path=path,
        loaded_at=rt.loaded_at,
        last_reload=_console(request).last_reload,
        text=text,
        problems=problems,
    )


@post("/config/reload", guards=[signed_in], status_code=303)
async def reload_config(request: Request[Any, Any, State]) -> Response[Any]:
    """The dashboard's reload button: what SIGHUP and ``POST /admin/v1/reload`` do."""
    from gateway.reload import reload

    await _form(request)
    result = await reload(_rt(request), now=datetime.now(UTC))
    _console(request).last_reload = result
    lang = _language(request)[0]
    notice = translate("Reloaded" if result.ok else "Reload refused", lang)
    return _back(f"{PREFIX}/config", _session(request), notice)


# -- try a push --------------------------------------------------------------------------------


@get("/try", guards=[signed_in])
async def try_page(request: Request[Any, Any, State]) -> Response[str]:
    sources = _rt(request).config.sources
    return render(request, "try.html.j2", body="", result=None, error=None, sources=sources)


@post("/try", guards=[signed_in])
async def try_push(request: Request[Any, Any, State]) -> Response[str]:
    form = await _form(request)
    rt = _rt(request)
    body = form.get("body", "")
    source = form.get("source") or DEFAULT_SOURCE
    result: Simulated | None = None
    error: str | None = None
    try:
        if source != DEFAULT_SOURCE and source not in rt.config.sources:
            raise PushError(f"no push source {source!r} is configured")
        result = simulate(
            body.encode(),
            source=get_source(source),
            router=rt.router,
            templates=rt.templates,
            sinks=rt.sinks,
            timezone=rt.timezone,
        )
    except PushError as exc:
        error = str(exc)
    return render(
        request,
        "try.html.j2",
        body=body,
        result=result,
        error=error,
        mask=rt.redactor.redact,
        sources=rt.config.sources,
        source=source,
    )


# -- the router --------------------------------------------------------------------------------


def ui_router() -> tuple[Router, Console]:
    """The dashboard's routes (pages, actions, its static files) and its state for the app."""
    handlers: list[ControllerRouterHandler] = [
        login_page,
        login,
        logout,
        overview,
        enable_sink,
        orders,
        order,
        deliveries,
        replay_confirm,
        replay_dead,
        delivery,
        replay_one,
        pushes,
        reprocess,
        push,
        rejected,
        replay_rejected_body,
        configuration,
        reload_config,
        try_page,
        try_push,
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
            SignInRequired: _to_sign_in,
            _CsrfRefused: _csrf_refused,
            NotFoundException: _not_found,
        },
    )
    return router, Console()
