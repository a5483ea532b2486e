"""The Litestar application: `create_app(config)` wires receiver, admin API, health and metrics.

The lifespan opens the process's `Runtime` (store, HTTP client, sinks, intake, dispatcher: see
`gateway.runtime`), keeps it on ``app.state.runtime`` and closes it in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import traceback
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from litestar import Litestar, MediaType, Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import (
    Components,
    OpenAPI,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    PathItem,
    Reference,
    RequestBody,
    Schema,
    SecurityScheme,
)
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from openapi_ui_bundles import swagger_ui
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway import __version__, metrics
from gateway.access import SignInLimiter
from gateway.admin import INT64_MAX, AdminController
from gateway.config import Config
from gateway.errors import ErrorBody, StoreError
from gateway.insights.api import InsightsController
from gateway.receiver import make_receiver
from gateway.redaction import mask_url, redact_text
from gateway.reload import ReloadResult, reload
from gateway.routing import Router
from gateway.runtime import Runtime, open_runtime
from gateway.sources.kiriminaja.push import MAX_ORDER_ID
from gateway.sources.registry import source_paths
from gateway.tracking_page.page import AWB_LOOKUPS, AWB_WINDOW, LOOKUPS
from gateway.tracking_page.page import handlers as tracking_page_handlers
from gateway.ui import ui_router
from gateway.units import how_many

__all__ = ["create_app"]

log = logging.getLogger("kabarin")


@get("/healthz", tags=["health"], summary="The process is up", sync_to_thread=False)
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz", tags=["health"], summary="The store can commit: pushes would be accepted")
async def readyz(state: State) -> Response[dict[str, str]]:
    # ping commits a one-row write, so a full disk, a read-only or a deleted database file
    # answer 503 here exactly when pushes do; the detail says which.
    rt: Runtime = state.runtime
    problem = await metrics.refresh_store_ready(rt.store, now=datetime.now(UTC))
    if problem is not None:
        return Response({"status": "unavailable", "detail": str(problem)}, status_code=503)
    return Response({"status": "ready"})


@get("/metrics", tags=["health"], summary="Prometheus metrics", media_type=MediaType.TEXT)
async def metrics_endpoint(state: State) -> Response[bytes]:
    rt: Runtime = state.runtime
    await metrics.refresh_store_ready(rt.store, now=datetime.now(UTC))
    try:
        await metrics.refresh_store_gauges(rt.store, sinks=rt.sinks, shops=rt.shops.ids)
        await metrics.refresh_store_size(rt.store)
    except StoreError:
        log.warning("metrics: could not read queue depths from the store")
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


_encode = msgspec.json.Encoder().encode


def _refuse_nul(request: Request[Any, Any, State]) -> None:
    """Before every handler: a query or path value holding a NUL character is a 400 naming the
    parameter. No stored value can hold one (PostgreSQL text cannot), so such a value could only
    find nothing on SQLite and fail on PostgreSQL."""
    values = [*request.query_params.multi_items(), *request.path_params.items()]
    for name, value in values:
        if isinstance(value, str) and "\x00" in value:
            raise ValidationException(f"{name}: a NUL character (U+0000) is not allowed")


def _parameter(request: Request[object, object, State], key: str) -> str:
    """A parameter as the request names it (``state``), not as its handler does
    (``push_state``)."""
    handler = request.scope.get("route_handler")
    field = handler.parsed_fn_signature.parameters.get(key) if handler is not None else None
    alias = getattr(field.kwarg_definition, "name", None) if field is not None else None
    return alias if isinstance(alias, str) else key


def _http_error(request: Request[object, object, State], exc: HTTPException) -> Response[bytes]:
    names = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}
    names |= {413: "body_too_large", 415: "unsupported_media_type", 429: "too_many_requests"}
    error = names.get(exc.status_code, "error")
    detail = exc.detail
    if exc.status_code == 413:
        detail = "the request body is larger than receiver.max_body_bytes"
    extra = getattr(exc, "extra", None)
    if exc.status_code == 400 and isinstance(extra, list) and extra:
        problems = []
        for e in extra:
            message = str(e.get("message", e)) if isinstance(e, dict) else str(e)
            key = e.get("key") if isinstance(e, dict) else None
            problems.append(f"{_parameter(request, key)}: {message}" if key else message)
        detail = f"{detail}: " + "; ".join(problems)
    body = _encode(ErrorBody(error, detail))
    headers = exc.headers or {}
    return Response(
        body, status_code=exc.status_code, media_type="application/json", headers=headers
    )


def _internal_error(request: Request[object, object, State], exc: Exception) -> Response[bytes]:
    """A bug: log it with its traceback (secrets masked), answer JSON without the details."""
    runtime: Runtime | None = getattr(request.app.state, "runtime", None)
    redact = runtime.redactor.redact if runtime is not None else redact_text
    trace = "".join(traceback.format_exception(exc)).rstrip()
    log.error(
        "unhandled error answering %s %s\n%s",
        request.method,
        redact(request.url.path),
        redact(trace),
    )
    body = _encode(ErrorBody("internal_error", "an unexpected error; it is in the server's log"))
    return Response(body, status_code=500, media_type="application/json")


def _route_allow(app: ASGIApp) -> ASGIApp:
    """Middleware: an OPTIONS answer's ``Allow`` lists every method of the route. Litestar's
    own lists only those of the handlers registered before the last one of a path (so
    ``/ui/login`` said ``GET, OPTIONS``, without its POST)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return

        async def send_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 204:
                template = scope.get("path_template")
                methods = {
                    m for r in scope["app"].routes if r.path_format == template for m in r.methods
                }
                if methods:
                    headers = [(k, v) for k, v in message["headers"] if k.lower() != b"allow"]
                    headers.append((b"allow", ", ".join(sorted(methods)).encode()))
                    message["headers"] = headers
            await send(message)

        await app(scope, receive, send_allow)

    return middleware


def _reload_on_sighup(rt: Runtime, stack: AsyncExitStack) -> None:
    """SIGHUP reloads the configuration file, as Alertmanager's does."""
    if rt.config_path is None:
        return
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[ReloadResult]] = set()

    def on_hup() -> None:
        log.info("SIGHUP: reloading %s", rt.config_path)
        task = loop.create_task(reload(rt, now=datetime.now(UTC)))
        pending.add(task)
        task.add_done_callback(pending.discard)

    try:
        loop.add_signal_handler(signal.SIGHUP, on_hup)
    except (NotImplementedError, RuntimeError):  # not the main thread (tests), or no signals
        return
    stack.callback(loop.remove_signal_handler, signal.SIGHUP)


def create_app(
    config: Config, *, config_path: str | Path | None = None, address: str | None = None
) -> Litestar:
    """The gateway for one configuration. Raises `ConfigError` if routes or templates are bad.

    `config_path` is the file `config` was read from, shown on the dashboard's configuration page.
    `address` is where the server listens (``http://127.0.0.1:8080``), said in the ready line.
    """
    router = Router.from_config(config)
    dashboard, console = ui_router()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.runtime = await open_runtime(
                config,
                stack,
                router=router,
                dispatcher=config.dispatcher.enabled,
                intake=config.intake.enabled,
                config_path=config_path,
            )
            _reload_on_sighup(app.state.runtime, stack)
            log.info(
                "kabarin %s ready%s: push endpoint %s, store %s, %s, %s",
                __version__,
                f" on {address}" if address else "",
                f"{address or ''}{config.receiver.path}",
                mask_url(config.store.url),
                how_many(len(config.sinks), "sink"),
                how_many(len(config.routes), "route"),
            )
            yield

    app = Litestar(
        route_handlers=[
            *(
                make_receiver(path, config.receiver.max_body_bytes, source)
                for path, source in source_paths(config).items()
            ),
            AdminController,
            InsightsController,
            healthz,
            readyz,
            metrics_endpoint,
            dashboard,
            *tracking_page_handlers(),
            create_static_files_router(
                _DOCS_ASSETS, [swagger_ui.static_path], include_in_schema=False
            ),
        ],
        lifespan=[lifespan],
        before_request=_refuse_nul,
        middleware=[_route_allow],
        # Wrong admin tokens per client, for the admin API and the dashboard's sign-in alike.
        # Failed tracking page lookups per client: the same limit, counted apart; and per AWB
        # (whichever clients), over a day.
        state=State(
            {
                "ui": console,
                "sign_ins": SignInLimiter(),
                LOOKUPS: SignInLimiter(),
                AWB_LOOKUPS: SignInLimiter(window=AWB_WINDOW),
            }
        ),
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
        openapi_config=OpenAPIConfig(
            title="Kabarin",
            version=__version__,
            description="Notification gateway for KiriminAja shipment pushes.",
            path="/schema",
            components=Components(
                security_schemes={
                    "BearerToken": SecurityScheme(type="http", scheme="bearer"),
                }
            ),
            # The docs page loads its scripts from this app, never from a CDN: an operator's
            # browser may have no internet access, and a CDN is one more party to trust.
            render_plugins=[
                _CompletedJson(config.receiver.path),
                SwaggerRenderPlugin(
                    js_url=f"{_DOCS_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{_DOCS_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{_DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon=f"<link rel='icon' href='{_DOCS_ASSETS}/favicon-32x32.png'>",
                    path="/swagger",
                ),
            ],
        ),
        logging_config=None,  # `kabarin` configures logging once, for every component
        debug=False,
    )
    return app


class _CompletedJson(JsonRenderPlugin):
    """``/schema/openapi.json``, with what Litestar cannot infer added when it is first asked
    for (building the document takes longer than the rest of the app's start, so it is not
    built at start-up)."""

    def __init__(self, push_path: str) -> None:
        super().__init__()
        self._push_path = push_path
        self._rendered: bytes | None = None

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._rendered is None:
            openapi = request.app.openapi_schema
            _document_by_hand(openapi, self._push_path)
            self._rendered = self.render_json(request, openapi.to_schema())
        return self._rendered


def _document_by_hand(openapi: OpenAPI, push_path: str) -> None:
    """Add what Litestar cannot infer: the push endpoint (a plain ASGI handler) and readyz's 503.
    Applying it to a document that has it already changes nothing."""
    schemas = openapi.components.schemas
    schemas.setdefault(
        "PushAccepted",
        Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "push_id": Schema(
                    type=OpenAPIType.STRING,
                    description="The push log entry: `GET /admin/v1/pushes/{push_id}`.",
                ),
                "items": Schema(type=OpenAPIType.INTEGER, description="Packages in the push."),
            },
            required=["push_id", "items"],
        ),
    )

    schemas.setdefault(
        "PushPackage",
        Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "order_id": Schema(
                    one_of=[
                        Schema(
                            type=OpenAPIType.STRING,
                            min_length=1,
                            max_length=MAX_ORDER_ID,
                            pattern=r"\S",
                        ),
                        Schema(type=OpenAPIType.NUMBER),
                    ]
                )
            },
            required=["order_id"],
            description="One package; its other fields are kept as they come.",
        ),
    )
    item = Reference("#/components/schemas/PushPackage")
    schemas.setdefault(
        "Push",
        Schema(
            type=OpenAPIType.OBJECT,
            properties={
                "method": Schema(type=OpenAPIType.STRING, description="`shipped_packages`, ..."),
                "data": Schema(one_of=[Schema(type=OpenAPIType.ARRAY, items=item), item]),
            },
            required=["method", "data"],
        ),
    )
    # The checks Litestar cannot see in a handler's signature, so that a request this document
    # calls valid is never refused, nor one it calls invalid accepted (schemathesis checks it).
    contact = schemas.get("ContactBody")
    if contact is not None:
        contact.min_properties = 1  # `{}` registers nothing: 400
        contact.additional_properties = False
    for path, item_ in openapi.paths.items() if openapi.paths else ():
        for operation in _operations(item_):
            for parameter in operation.parameters or ():
                if isinstance(parameter, Parameter) and isinstance(parameter.schema, Schema):
                    _exact_bounds(parameter.schema)
            if path.startswith("/admin/") and operation.responses is not None:
                operation.responses.setdefault("429", _TOO_MANY)

    def answer(description: str, schema: str) -> OpenAPIResponse:
        content = OpenAPIMediaType(schema=Reference(f"#/components/schemas/{schema}"))
        return OpenAPIResponse(description=description, content={"application/json": content})

    openapi.components.security_schemes = {
        **(openapi.components.security_schemes or {}),
        "PushToken": SecurityScheme(
            type="http", scheme="bearer", description="`receiver.token`; the bare token works too"
        ),
    }
    openapi.paths = openapi.paths or {}
    openapi.paths[push_path] = PathItem(
        post=Operation(
            tags=["push"],
            summary="A KiriminAja shipment push",
            operation_id="ReceivePush",
            security=[{"PushToken": []}],
            request_body=RequestBody(
                required=True,
                content={
                    "application/json": OpenAPIMediaType(
                        schema=Reference("#/components/schemas/Push")
                    )
                },
                description='`{"method": "...", "data": [...]}` as KiriminAja sends it.',
            ),
            responses={
                "200": answer("In the push log: its events follow.", "PushAccepted"),
                "400": answer(
                    "Not JSON, or not a push; the body is kept. Or more than one"
                    " `Authorization` header; nothing is stored.",
                    "ErrorBody",
                ),
                "401": answer("Missing or wrong token; nothing is stored.", "ErrorBody"),
                "405": answer("Not a POST (`Allow: POST`).", "ErrorBody"),
                "408": answer(
                    "The body did not arrive within `receiver.read_timeout`.", "ErrorBody"
                ),
                "413": answer("Larger than `receiver.max_body_bytes`.", "ErrorBody"),
                "503": answer(
                    "The store could not commit, or `receiver.max_backlog` pushes wait"
                    " (with `Retry-After`): send it again.",
                    "ErrorBody",
                ),
            },
        )
    )
    ready = openapi.paths["/readyz"].get
    if ready is not None and ready.responses is not None:
        ready.responses["503"] = OpenAPIResponse(
            description="The store cannot be used.",
            content={
                "application/json": OpenAPIMediaType(
                    schema=Schema(
                        type=OpenAPIType.OBJECT,
                        additional_properties=Schema(type=OpenAPIType.STRING),
                    )
                )
            },
        )


_DOCS_ASSETS = "/schema-assets"

_TOO_MANY = OpenAPIResponse(
    description="Too many wrong admin tokens from this address within 10 minutes: try again"
    " after `Retry-After` seconds.",
    content={
        "application/json": OpenAPIMediaType(schema=Reference("#/components/schemas/ErrorBody"))
    },
)


def _operations(item: PathItem) -> list[Operation]:
    methods = (item.get, item.put, item.post, item.delete, item.options, item.head, item.patch)
    return [operation for operation in methods if operation is not None]


def _exact_bounds(schema: Schema) -> None:
    """Litestar writes bounds as floats: ``2**63 - 1`` would read as ``2**63``, and a row id
    just past int64 as within the document's bounds. Integer bounds stay exact here."""
    for name in ("maximum", "minimum"):
        value = getattr(schema, name)
        if isinstance(value, float) and value.is_integer() and abs(value) >= 2**53:
            setattr(schema, name, INT64_MAX if value > 0 else -INT64_MAX - 1)
    for option in schema.one_of or ():
        if isinstance(option, Schema):
            _exact_bounds(option)
