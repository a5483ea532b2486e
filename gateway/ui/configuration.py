"""The configuration in use (its file, masked, with what `kabarin check` says of it), reloading
it, and trying a push against it without storing or sending anything."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Request, Response, get, post
from litestar.datastructures import State

from gateway.dryrun import Simulated, simulate
from gateway.errors import ConfigError, PushError
from gateway.insights.estimates import estimate_for
from gateway.sources.registry import DEFAULT_SOURCE, get_source
from gateway.ui.labels import translate
from gateway.ui.render import (
    PREFIX,
    back,
    console_of,
    language_of,
    posted_form,
    render,
    runtime_of,
    session_of,
)
from gateway.ui.session import signed_in, whole_deployment_ui

__all__ = ["configuration", "reload_config", "try_page", "try_push"]


@get("/config", guards=[signed_in, whole_deployment_ui])
async def configuration(request: Request[Any, Any, State]) -> Response[str]:
    from gateway.check import validate_file  # what `kabarin check` runs

    rt = runtime_of(request)
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
        last_reload=console_of(request).last_reload,
        text=text,
        problems=problems,
    )


@post("/config/reload", guards=[signed_in, whole_deployment_ui], status_code=303)
async def reload_config(request: Request[Any, Any, State]) -> Response[Any]:
    """The dashboard's reload button: what SIGHUP and ``POST /admin/v1/reload`` do."""
    from gateway.reload import reload

    await posted_form(request)
    result = await reload(runtime_of(request), now=datetime.now(UTC))
    console_of(request).last_reload = result
    lang = language_of(request)[0]
    notice = translate("Reloaded" if result.ok else "Reload refused", lang)
    return back(f"{PREFIX}/config", session_of(request), notice)


@get("/try", guards=[signed_in, whole_deployment_ui])
async def try_page(request: Request[Any, Any, State]) -> Response[str]:
    sources = runtime_of(request).config.sources
    return render(request, "try.html.j2", body="", result=None, error=None, sources=sources)


@post("/try", guards=[signed_in, whole_deployment_ui])
async def try_push(request: Request[Any, Any, State]) -> Response[str]:
    form = await posted_form(request)
    rt = runtime_of(request)
    body = form.get("body", "")
    source = form.get("source") or DEFAULT_SOURCE
    result: Simulated | None = None
    error: str | None = None
    try:
        if source != DEFAULT_SOURCE and source not in rt.config.sources:
            raise PushError(f"no push source {source!r} is configured")
        result = await simulate(
            body.encode(),
            source=get_source(source),
            router=rt.router,
            templates=rt.templates,
            sinks=rt.sinks,
            timezone=rt.timezone,
            estimates=lambda order_id, shop: estimate_for(rt.store, order_id, shop=shop),
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
