"""The push endpoints: authenticate, check size and envelope, append to the push log, answer.

There is one endpoint per push source (`gateway.sources`): KiriminAja's at ``receiver.path``,
each other configured source's at its ``sources.<name>.path``. They authenticate alike; the path
only says which source's envelope check (`PushSource.decode`) judges the body, and the log
entry records that source for the intake.

Nothing here normalises, routes or calls a sink: the 200 goes out once the raw push is committed
to the log (`IngestStore.append_push`), and the intake (`gateway.intake`) takes it from there.
When more pushes wait than ``receiver.max_backlog``, it answers 503 with Retry-After instead of
letting the log grow without bound. The envelope check and the append are `accept_push`, which
replaying a rejected body (admin API, dashboard, ``kabarin rejected replay``) runs too, so both
answer alike.

The endpoint is a plain ASGI handler mounted in the Litestar app rather than a ``@post``
handler: it is the one hot path, and Litestar's request machinery costs about as much as the
whole durable ingest (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec
from litestar import asgi
from litestar.handlers import ASGIRouteHandler
from litestar.types import Receive, Scope, Send

from gateway import metrics
from gateway.access import AmbiguousCredentials
from gateway.errors import PushError, StoreError, error_answer
from gateway.events import DEFAULT_SHOP
from gateway.intake import new_push_id
from gateway.shops import Shop, Shops
from gateway.sources.registry import get_source
from gateway.store.roles import NewPush, RejectedRequest

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = [
    "BACKLOG_RETRY_AFTER",
    "PushAccepted",
    "accept_push",
    "http_protocol",
    "make_receiver",
    "push_shop",
]

BACKLOG_RETRY_AFTER = 30
"""Seconds a push refused for a full backlog is asked to wait (``Retry-After``)."""


log = logging.getLogger("kabarin.receiver")


class PushAccepted(msgspec.Struct, frozen=True):
    push_id: str
    """The push log entry: ``GET /admin/v1/pushes/{push_id}`` shows what became of it."""
    items: int
    """Packages in the push."""


_encode = msgspec.json.Encoder().encode


async def accept_push(
    rt: Runtime,
    body: bytes,
    content_type: str | None,
    *,
    source: str,
    rejected_id: int | None = None,
    now: datetime | None = None,
    shop: str = DEFAULT_SHOP,
) -> tuple[int, bytes]:
    """Check an authenticated body's envelope with push source `source`'s decoder and append it
    to the push log as `shop`'s (the shop its token named); the status and JSON answer. The 200
    means the body is on disk: the intake makes events of it afterwards.

    `rejected_id` replays a kept rejected body: if it is still not a push, that row gets the
    new reason instead of a second row being added.
    """
    started = time.perf_counter()
    received_at = now or datetime.now(UTC)
    problem: PushError | None = None
    try:
        decoder = get_source(source)
        push = decoder.decode(body)
    except LookupError as exc:  # a kept body of a source since uninstalled
        problem = PushError(str(exc.args[0]))
    except PushError as exc:
        problem = exc
    if problem is not None:
        metrics.PUSH_REJECTIONS.labels("invalid").inc()
        try:
            await rt.store.reject(
                RejectedRequest(
                    received_at=received_at,
                    reason=str(problem),
                    body=body,
                    content_type=content_type,
                    replaces=rejected_id,
                    origin=source,
                )
            )
        except StoreError as failure:
            rt.receiver_trouble.failed("could not keep a rejected push", failure, "answering 503")
            return error_answer(
                503, "store_unavailable", "could not store the request; send it again"
            )
        return error_answer(400, "invalid_push", problem.reason, problem.path)

    entry = NewPush(
        id=new_push_id(received_at),
        shop=shop,
        source="push",
        received_at=received_at,
        body=body,
        content_type=content_type,
        method=push.method,
        items=len(push.items),
        origin=source,
    )
    try:
        await rt.store.append_push(entry)
    except StoreError as failure:
        rt.receiver_trouble.failed("could not append a push to the log", failure, "answering 503")
        return error_answer(503, "store_unavailable", "could not store the push; send it again")
    rt.receiver_trouble.recovered()
    rt.backlog.pending += 1
    rt.wake_intake()
    metrics.PUSHES.labels(metrics.method_label(push.method, decoder), shop).inc()
    log.debug(
        "push %s %r: %d items logged in %.1f ms",
        entry.id,
        push.method,
        entry.items,
        (time.perf_counter() - started) * 1000,
    )
    return 200, _encode(PushAccepted(entry.id, entry.items))


def push_shop(shops: Shops, header: str | None, path_shop: str | None) -> Shop | None:
    """The shop a push is from: the one whose token the ``Authorization`` header carries
    (``Bearer <token>`` or the bare token, compared in constant time whatever the number of
    shops); on ``<receiver.path>/<shop id>`` only that shop's token is accepted. ``None``: 401.
    """
    shop = shops.by_header(header)
    if shop is None or (path_shop is not None and shop.id != path_shop):
        return None
    return shop


_JSON_HEADERS = [(b"content-type", b"application/json")]


async def _respond(
    send: Send,
    status: int,
    body: bytes,
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode()), *(extra or ())]
    if close:  # the rest of a half-sent body would be read as the next request
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _ClientGone(Exception):
    """The sender disconnected before its body was complete: nothing to keep or answer."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it grows past `limit`; `_ClientGone` if the sender left
    halfway (a truncated body is not theirs to be judged by, nor kept as rejected).

    The caller bounds it in time: uvicorn has no body timeout of its own.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk: bytes = message.get("body", b"")  # type: ignore[assignment]
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def http_protocol(read_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol with the timers it lacks, for `kabarin serve`.

    uvicorn times out a connection only once it has answered on it: one that never sends a
    request, or stops halfway through its headers, would hold a file descriptor for ever. Here
    the keep-alive timer also runs from the moment the connection opens, and a request's headers
    must be complete within `read_timeout` (its body is bounded by the receiver itself).
    """
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class TimedHttpToolsProtocol(HttpToolsProtocol):
        _headers_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self.timeout_keep_alive_task = self.loop.call_later(
                self.timeout_keep_alive, self.timeout_keep_alive_handler
            )

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_headers_timer()
            super().connection_lost(exc)

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._stop_headers_timer()
            self._headers_timer = self.loop.call_later(read_timeout, self._headers_too_slow)

        def on_headers_complete(self) -> None:
            self._stop_headers_timer()
            super().on_headers_complete()

        def _stop_headers_timer(self) -> None:
            if self._headers_timer is not None:
                self._headers_timer.cancel()
                self._headers_timer = None

        def _headers_too_slow(self) -> None:
            self._headers_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return TimedHttpToolsProtocol


def make_receiver(path: str, max_body_bytes: int, source: str) -> ASGIRouteHandler:
    """The ``POST`` handler at `path`, where push source `source` sends its pushes, and at
    ``path/<shop id>`` (only that shop's token is accepted there)."""
    too_large = error_answer(
        413, "body_too_large", "the body is larger than receiver.max_body_bytes"
    )
    too_slow = error_answer(
        408, "request_timeout", "the body took longer than receiver.read_timeout"
    )
    not_allowed = error_answer(405, "method_not_allowed", "pushes are POSTed")
    not_found = error_answer(404, "not_found", "push to receiver.path or receiver.path/<shop id>")
    only_post = [(b"allow", b"POST")]
    ambiguous = error_answer(400, "bad_request", str(AmbiguousCredentials()))
    backlogged = error_answer(
        503, "backlog_full", "too many pushes wait to be processed; send it again later"
    )
    retry_later = [(b"retry-after", str(BACKLOG_RETRY_AFTER).encode())]

    # Mounted, so `<path>/<shop id>` reaches it too (the rest of the path is in scope["path"]):
    # shops added by a reload need no new route.
    @asgi(path, is_mount=True, copy_scope=False, name=f"push:{source}")
    async def receive_push(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":  # type: ignore[typeddict-item]
            await _respond(send, *not_allowed, extra=only_post)
            return
        authorization = content_type = None
        length = 0
        authorizations = 0
        for name, value in scope["headers"]:
            if name == b"authorization":
                authorization = value.decode("latin-1")
                authorizations += 1
            elif name == b"content-length":
                length = int(value) if value.isdigit() else 0
            elif name == b"content-type":
                content_type = value.decode("latin-1")
        rt: Runtime = scope["app"].state.runtime
        if authorizations > 1:  # which one a proxy before us checked is anybody's guess
            metrics.PUSH_REJECTIONS.labels("unauthorized").inc()
            await _respond(send, *ambiguous)
            return
        rest = scope["path"].strip("/")
        if "/" in rest:
            await _respond(send, *not_found)
            return
        shop = push_shop(rt.shops, authorization, rest or None)
        if shop is None:
            metrics.PUSH_REJECTIONS.labels("unauthorized").inc()
            await _respond(
                send, *error_answer(401, "unauthorized", "missing or wrong bearer token")
            )
            return
        if await rt.backlog.over(rt.config.receiver.max_backlog, rt.store):
            metrics.PUSH_REJECTIONS.labels("backlog_full").inc()
            await _respond(send, *backlogged, extra=retry_later, close=True)
            return
        rt.backlog.requests += 1
        try:
            await _receive_body(rt, receive, send, length, content_type, shop.id)
        finally:
            rt.backlog.requests -= 1

    async def _receive_body(
        rt: Runtime,
        receive: Receive,
        send: Send,
        length: int,
        content_type: str | None,
        shop: str,
    ) -> None:
        try:
            async with asyncio.timeout(rt.config.receiver.read_timeout):
                body = (
                    None if length > max_body_bytes else await _read_body(receive, max_body_bytes)
                )
        except TimeoutError:
            metrics.PUSH_REJECTIONS.labels("timeout").inc()
            await _respond(send, *too_slow, close=True)
            return
        except _ClientGone:
            metrics.PUSH_REJECTIONS.labels("disconnected").inc()
            return
        if body is None:
            metrics.PUSH_REJECTIONS.labels("too_large").inc()
            await _respond(send, *too_large)
            return
        await _respond(send, *await accept_push(rt, body, content_type, source=source, shop=shop))

    return receive_push
