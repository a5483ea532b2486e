"""The push log: the list, one push a page of items at a time, failed ones put back to the
intake, and the rejected bodies with their replay."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, QueryParameter

from gateway import operations
from gateway.admin import RejectedId
from gateway.store.roles import PushQuery, PushState
from gateway.ui.labels import translate
from gateway.ui.render import (
    PREFIX,
    back,
    language_of,
    order_url,
    posted_form,
    render,
    runtime_of,
    sees,
    session_of,
    shops_of,
)
from gateway.ui.session import signed_in, whole_deployment_ui

__all__ = ["PUSH_STATES", "push", "pushes", "rejected", "replay_rejected_body", "reprocess"]

PUSH_STATES: tuple[PushState, ...] = ("pending", "processed", "failed")


@get("/pushes", guards=[signed_in])
async def pushes(request: Request[Any, Any, State]) -> Response[str]:
    rt = runtime_of(request)
    state = request.query_params.get("state")
    chosen: PushState | None = next((s for s in PUSH_STATES if s == state), None)
    shops = shops_of(request)
    items = await rt.store.list_pushes(PushQuery(state=chosen, limit=100, shops=shops))
    rejected = await rt.store.list_rejected(limit=50, shops=shops)
    return render(
        request, "pushes.html.j2", items=items, state=chosen, states=PUSH_STATES, rejected=rejected
    )


@post("/pushes/reprocess", guards=[signed_in, whole_deployment_ui], status_code=303)
async def reprocess(request: Request[Any, Any, State]) -> Response[Any]:
    form = await posted_form(request)
    ids = [form["id"]] if form.get("id") else []
    count = await operations.requeue_failed(runtime_of(request), ids=ids)
    target = f"{PREFIX}/pushes/{ids[0]}" if ids else f"{PREFIX}/pushes"
    lang = language_of(request)[0]
    notice = translate("{n} pushes put back to the intake.", lang, n=count)
    return back(target, session_of(request), notice)


_PUSH_PAGE = 100
"""Package items (with their events) on one page of a push: a push at the size limit holds
tens of thousands."""


@get("/pushes/{push_id:str}", guards=[signed_in])
async def push(
    request: Request[Any, Any, State],
    push_id: FromPath[str],
    cursor: Annotated[int | None, QueryParameter(ge=1, le=2**63 - 1)] = None,
) -> Response[str]:
    rt = runtime_of(request)
    found = await rt.store.get_push(push_id)
    if found is None or not sees(request, found.shop):
        raise NotFoundException(push_id)
    start = cursor or 0
    page = await operations.push_page(rt, found, start=start, limit=_PUSH_PAGE)
    return render(
        request,
        "push.html.j2",
        item=found,
        body=operations.shown_body(found),
        body_bytes=len(found.body),
        page=page,
        start=start,
        items_json=msgspec.json.format(
            msgspec.json.encode([i.item for i in page.items]), indent=2
        ).decode(),
        order_url=order_url,
    )


@get("/rejected/{rejected_id:int}", guards=[signed_in])
async def rejected(request: Request[Any, Any, State], rejected_id: RejectedId) -> Response[str]:
    rt = runtime_of(request)
    found = await rt.store.get_rejected(rejected_id)
    if found is None or not sees(request, found.shop):
        raise NotFoundException(str(rejected_id))
    body = found.body.decode("utf-8", errors="replace")
    return render(request, "rejected.html.j2", item=found, body=body)


@post("/rejected/{rejected_id:int}/replay", guards=[signed_in], status_code=303)
async def replay_rejected_body(
    request: Request[Any, Any, State], rejected_id: RejectedId
) -> Response[Any]:
    await posted_form(request)
    rt = runtime_of(request)
    found = await rt.store.get_rejected(rejected_id)
    if found is None or not sees(request, found.shop):
        raise NotFoundException(str(rejected_id))
    result = await operations.replay_rejected(rt, found)
    lang = language_of(request)[0]
    if result.outcome == "accepted":
        target = f"{PREFIX}/pushes/{result.answer['push_id']}"
        return back(target, session_of(request), translate("Accepted: it is a push now.", lang))
    if result.outcome == "rejected":
        reason = str(result.answer.get("detail", ""))
        notice = translate("Still not a push: {reason}", lang, reason=reason)
    else:
        notice = translate("The store is unavailable; try again.", lang)
    return back(f"{PREFIX}/rejected/{rejected_id}", session_of(request), notice)
