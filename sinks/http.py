"""What every HTTP sink shares: the client, one POST, and one status → outcome table.

`classify` is the only place that decides what an HTTP answer means (like Alertmanager's
``notify/util.go``):

=====================================  ==========================================
2xx                                    `Delivered`
408, 409, 425, 429, 5xx                `Retry` (``after`` from ``Retry-After``)
410 Gone                               `Permanent` with ``disable_sink=True``
other 4xx                              `Permanent`
3xx (redirects are not followed)       `Permanent`: point the sink at the final URL
anything else                          `Retry`
=====================================  ==========================================

Connection errors and timeouts are `Retry` too (`network_failure`). Every reason names the
status and a short excerpt of the peer's body, passed through the sink's `Redactor` first,
because peers like to echo the URL or credentials they were called with.

`make_http_client` builds the one `httpx.AsyncClient` the sinks share. Underneath it runs
httpx-aiohttp's transport, chosen by measurement (`bench/deliver.py`, the README's
Performance section): several times httpx's own connection pool and faster than the curl_cffi
transport. Pass ``transport="httpx"`` (or any `httpx.AsyncBaseTransport`) to swap it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from email.utils import parsedate_to_datetime
from typing import Literal

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

from gateway import __version__
from gateway.redaction import Redactor, redact_text
from sinks.base import Delivered, Permanent, Retry, SendResult

__all__ = [
    "DEFAULT_TIMEOUT",
    "USER_AGENT",
    "classify",
    "make_http_client",
    "network_failure",
    "parse_retry_after",
    "post",
]

USER_AGENT = f"Kabarin/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per attempt; a sink with its own ``timeout`` option passes it to `post`."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=50)

_RETRY_STATUSES = frozenset({408, 409, 425, 429})
_BODY_READ_LIMIT = 64 * 1024
"""Read at most this much of an answer: enough for any error message, and a body read to its
end lets the connection go back to the pool."""
_SNIPPET_LENGTH = 200


def make_http_client(
    *,
    transport: Literal["aiohttp", "httpx"] | httpx.AsyncBaseTransport = "aiohttp",
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
    user_agent: str = USER_AGENT,
) -> httpx.AsyncClient:
    """The shared client: aiohttp transport by default, no redirects, ``Kabarin/<version>``."""
    if transport == "aiohttp":
        chosen: httpx.AsyncBaseTransport = _AiohttpErrors(AiohttpTransport(limits=limits))
    elif transport == "httpx":
        chosen = httpx.AsyncHTTPTransport(limits=limits)
    elif isinstance(transport, httpx.AsyncBaseTransport):
        chosen = transport
    else:
        raise ValueError(f"unknown transport {transport!r}")
    return httpx.AsyncClient(
        transport=chosen,
        timeout=timeout,
        follow_redirects=False,
        headers={"user-agent": user_agent},
    )


async def post(
    client: httpx.AsyncClient,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    redactor: Redactor,
    request_timeout: float | None = None,
    gone: Collection[bytes] = (),
) -> SendResult:
    """POST `content` and classify the answer; network errors become `Retry`, never raise.

    `gone` lists whole bodies that, with a 4xx, mean the destination no longer exists
    (Slack's ``no_service``): the sink is then disabled as for a 410.
    """
    body = b""
    try:
        async with client.stream(
            "POST",
            url,
            content=content,
            headers=headers,
            timeout=httpx.USE_CLIENT_DEFAULT if request_timeout is None else request_timeout,
        ) as response:
            # Once the status line arrived it decides; the body only explains.
            with contextlib.suppress(httpx.RequestError):
                body = await _read_some(response.aiter_bytes(), _BODY_READ_LIMIT)
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        return network_failure(exc, redactor)
    result = classify(response.status_code, response.headers, body, redactor=redactor)
    if isinstance(result, Permanent) and body.strip() in gone:
        return Permanent(reason=result.reason, status_code=result.status_code, disable_sink=True)
    return result


def network_failure(exc: Exception, redactor: Redactor) -> SendResult:
    """The outcome of a request that got no HTTP answer."""
    detail = redactor.redact(str(exc)) or "no detail"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Permanent(reason=f"cannot send: {detail}")
    if isinstance(exc, httpx.TimeoutException):
        return Retry(reason=f"timed out ({type(exc).__name__}): {detail}")
    return Retry(reason=f"network error ({type(exc).__name__}): {detail}")


def classify(
    status_code: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | str = b"",
    *,
    redactor: Redactor | None = None,
) -> SendResult:
    """What an HTTP answer means for the delivery (see the table in the module docstring)."""
    if 200 <= status_code < 300:
        return Delivered(status_code=status_code)
    found = httpx.Headers(headers or {})
    reason = f"HTTP {status_code} {httpx.codes.get_reason_phrase(status_code)}".rstrip()
    snippet = _snippet(body, redactor.redact if redactor else redact_text)
    if snippet:
        reason = f"{reason}: {snippet}"
    if status_code in _RETRY_STATUSES or 500 <= status_code < 600:
        return Retry(
            reason=reason,
            after=parse_retry_after(found.get("retry-after")),
            status_code=status_code,
        )
    if status_code == 410:
        return Permanent(reason=reason, status_code=status_code, disable_sink=True)
    if 400 <= status_code < 500:
        return Permanent(reason=reason, status_code=status_code)
    if 300 <= status_code < 400:
        return Permanent(
            reason=f"{reason} (redirects are not followed: configure the final URL)",
            status_code=status_code,
        )
    return Retry(reason=reason, status_code=status_code)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delay-seconds or an HTTP date.

    ``None`` when absent or unreadable; a date in the past gives ``0``.
    """
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


_CONTROLS = {c: "\ufffd" for c in [*range(0x20), *range(0x7F, 0xA0)]}
"""Control characters left after whitespace is collapsed (NUL, ESC, ...): an excerpt goes to
logs, terminals and the store, none of which should get them raw."""


def _snippet(body: bytes | str, redact: Callable[[str], str]) -> str:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    # Collapse whitespace before redacting, and redact before cutting: a secret cut in half
    # would no longer be recognised.
    text = " ".join(text.split()).translate(_CONTROLS)
    text = redact(text[: _SNIPPET_LENGTH * 8])
    return text if len(text) <= _SNIPPET_LENGTH else text[: _SNIPPET_LENGTH - 1] + "…"


async def _read_some(chunks: AsyncIterator[bytes], limit: int) -> bytes:
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) >= limit:
            break
    return bytes(body[:limit])


class _AiohttpErrors(httpx.AsyncBaseTransport):
    """Translates the aiohttp errors httpx-aiohttp lets through into httpx's own, so callers
    catch one exception tree whatever the transport."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TimeoutException as exc:
            # httpx-aiohttp maps every aiohttp connection error, a refused connection included,
            # to ConnectTimeout: only a real timeout may stay one.
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientConnectionError) and not isinstance(
                cause, TimeoutError
            ):
                raise httpx.ConnectError(str(exc) or type(cause).__name__) from cause
            raise
        except httpx.HTTPError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc) from exc
        if isinstance(response.stream, httpx.AsyncByteStream):
            response.stream = _TranslatedStream(response.stream)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _TranslatedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except httpx.HTTPError:
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        # The body was read or abandoned: nothing is lost if closing fails.
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            await self._inner.aclose()


def _translate(exc: BaseException) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(message)
    return httpx.NetworkError(message)


class _OriginOnlyUrls(logging.Filter):
    """httpx logs every request's full URL at INFO; webhook URLs carry tokens (Slack's path is
    the credential). Keep only scheme, host and port in those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, httpx.URL) for a in record.args):
            record.args = tuple(_origin(a) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


def _origin(url: httpx.URL) -> str:
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}/…"


logging.getLogger("httpx").addFilter(_OriginOnlyUrls())
