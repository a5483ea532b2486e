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

Connection errors and timeouts are `Retry` too (`network_failure`); only a failure before the
request could reach the peer (refused, DNS, connect timeout) is marked `Retry.unsent`, which
alone earns the dispatcher's quick in-process retries. A sink that writes to customers passes
``replayable=False``: a failure after the request went out (no or a broken answer) is then
`Permanent`, as the provider may have sent the message and a replay would send it again.
Every reason names the status and a short excerpt of the peer's body, passed through the
sink's `Redactor` first, because peers like to echo the URL or credentials they were called
with.

`exchange` is the one request/answer of every HTTP sink: the sink's timeout bounds the whole
of it (connecting, sending, the status line, the headers and the body), and at most 64 KiB of
the answer is read.

`make_http_client` builds the one `httpx.AsyncClient` the sinks share. Underneath it runs
httpx-aiohttp's transport, chosen by measurement (`bench/deliver.py`,
docs/performance.md): several times httpx's own connection pool and faster than the curl_cffi
transport. Pass ``transport="httpx"`` (or any `httpx.AsyncBaseTransport`) to swap it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping
from dataclasses import dataclass
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
    "Answer",
    "classify",
    "exchange",
    "make_http_client",
    "network_failure",
    "parse_retry_after",
    "post",
    "unreadable",
]

USER_AGENT = f"Kabarin/{__version__}"
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""Per attempt; a sink with its own ``timeout`` option passes it to `post`."""
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=50)

_RETRY_STATUSES = frozenset({408, 409, 425, 429})
_MAX_CONNECT = 5.0
"""Connecting gets half the sink's timeout, at most this: a connect timeout is then told apart
from an answer that never came (only the first is safe to try again at once)."""
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


@dataclass(frozen=True, slots=True)
class Answer:
    """A peer's HTTP answer with at most the first 64 KiB of its body."""

    status_code: int
    headers: httpx.Headers
    body: bytes
    cut: bool = False
    """More followed `body` and was left unread."""
    broken: str | None = None
    """Why the body could not be read to its end (`body` is what arrived), if it could not."""

    @property
    def partial(self) -> str | None:
        """Why `body` may not be the whole answer, as a phrase for a reason; ``None`` if it is."""
        if self.broken is not None:
            return f"its body broke off ({self.broken})"
        if self.cut:
            return f"its body was cut at {_BODY_READ_LIMIT // 1024} KiB"
        return None


async def exchange(
    client: httpx.AsyncClient,
    request: httpx.Request,
    *,
    redactor: Redactor,
    deadline: float | None = None,
    replayable: bool = True,
) -> Answer | SendResult:
    """Send `request` and read its answer, all within `deadline` seconds (``None``: the client's
    read timeout); a failure without an answer is a `SendResult` (`network_failure`), never
    raised.

    Once the status line and headers arrived they decide: a body that breaks off or is late
    only shows in `Answer.broken`.
    """
    deadline = _deadline(client, deadline)
    connect = min(_MAX_CONNECT, deadline / 2)
    phases = httpx.Timeout(deadline, connect=connect, pool=connect)
    request.extensions["timeout"] = phases.as_dict()
    try:
        async with asyncio.timeout(deadline) as scope:
            response = await client.send(request, stream=True)
    except TimeoutError:
        return _late(f"timed out: no answer within {deadline:g} s (the sink's timeout)", replayable)
    except (httpx.RequestError, httpx.InvalidURL) as exc:
        return network_failure(exc, redactor, replayable=replayable)
    body, cut, broken = b"", False, None
    try:
        async with asyncio.timeout_at(scope.when()):
            body, cut = await _read_some(response.aiter_bytes(), _BODY_READ_LIMIT)
    except TimeoutError:
        broken = f"not complete within {deadline:g} s, the sink's timeout"
    except httpx.RequestError as exc:
        broken = redactor.redact(str(exc)) or type(exc).__name__
    finally:
        # Closing an answer read in part drops its connection; nothing is lost if that fails.
        with contextlib.suppress(httpx.HTTPError):
            await response.aclose()
    return Answer(response.status_code, response.headers, body, cut=cut, broken=broken)


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
    """POST `content` and classify the answer (`exchange`); network errors become `Retry`,
    never raise.

    `gone` lists whole bodies that, with a 4xx, mean the destination no longer exists
    (Slack's ``no_service``): the sink is then disabled as for a 410.
    """
    try:
        request = client.build_request("POST", url, content=content, headers=headers)
    except httpx.InvalidURL as exc:
        return network_failure(exc, redactor)
    answer = await exchange(client, request, redactor=redactor, deadline=request_timeout)
    if not isinstance(answer, Answer):
        return answer
    body = answer.body
    result = classify(answer.status_code, answer.headers, body, redactor=redactor)
    if isinstance(result, Permanent) and body.strip() in gone:
        return Permanent(reason=result.reason, status_code=result.status_code, disable_sink=True)
    return result


def network_failure(exc: Exception, redactor: Redactor, *, replayable: bool = True) -> SendResult:
    """The outcome of a request that got no HTTP answer.

    Only a failure to connect is `Retry.unsent`. Any other may come after the peer got the
    request: `Permanent` when `replayable` is false (a customer would get the message twice).
    """
    detail = redactor.redact(str(exc)) or "no detail"
    name = type(exc).__name__
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Permanent(reason=f"cannot send: {detail}")
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return Retry(reason=f"timed out connecting ({name}): {detail}", unsent=True)
    if isinstance(exc, httpx.ConnectError):
        return Retry(reason=f"network error ({name}): {detail}", unsent=True)
    if isinstance(exc, httpx.TimeoutException):
        return _late(f"timed out ({name}): {detail}", replayable)
    return _late(f"network error ({name}): {detail}", replayable)


def _late(what: str, replayable: bool) -> SendResult:
    """A request that went out and got no (whole) answer."""
    if replayable:
        return Retry(reason=what)
    return Permanent(
        reason=f"{what}: the request was sent, so the provider may have sent the message;"
        " not retried, as a replay would send it again",
        unanswered=True,
    )


def unreadable(answer: Answer, provider: str) -> Permanent:
    """A 2xx whose body decides, but could not be read whole and parsed: the provider may
    have sent the message, so it is not sent again."""
    return Permanent(
        reason=f"HTTP {answer.status_code} from {provider}, but {answer.partial} and it could"
        " not be parsed: the provider may have sent the message; not retried, as a replay"
        " would send it again",
        status_code=answer.status_code,
    )


def _deadline(client: httpx.AsyncClient, timeout: float | None) -> float:
    if timeout is not None:
        return timeout
    return client.timeout.read or DEFAULT_TIMEOUT.read or 10.0


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
    if _DIGITS.fullmatch(value):  # not str.isdigit(): it takes "²" and other Unicode digits
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # RFC 9110 dates are GMT
        return None
    current = time.time() if now is None else now
    return max(0.0, moment.timestamp() - current)


_DIGITS = re.compile(r"[0-9]+")

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


async def _read_some(chunks: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """At most `limit` bytes, and whether more followed."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            return bytes(body[:limit]), True
    return bytes(body), False


class _AiohttpErrors(httpx.AsyncBaseTransport):
    """Translates the aiohttp errors httpx-aiohttp lets through, or maps loosely, into httpx's
    own, so callers catch one exception tree whatever the transport, and a failure to connect
    (`httpx.ConnectError`, `httpx.ConnectTimeout`) stays told apart from one after sending."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.HTTPError as exc:
            # httpx-aiohttp maps every aiohttp connection error to ConnectTimeout, a refused
            # connection and a peer hanging up after the request alike: map from the cause.
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientError | TimeoutError):
                raise _translate(cause) from cause
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
        except httpx.HTTPError as exc:
            cause = exc.__cause__
            if isinstance(cause, aiohttp.ClientError | TimeoutError):
                raise _translate(cause) from cause
            raise
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _translate(exc) from exc

    async def aclose(self) -> None:
        # The body was read or abandoned: nothing is lost if closing fails.
        with contextlib.suppress(httpx.HTTPError, aiohttp.ClientError, TimeoutError):
            await self._inner.aclose()


_AIOHTTP_CODE = re.compile(r"\b\d{3}, message=")
"""aiohttp's parser errors read "400, message=...": its own code, not the peer's status."""


def _translate(exc: BaseException) -> httpx.TransportError:
    message = str(exc) or type(exc).__name__
    if isinstance(exc, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(message)
    if isinstance(exc, aiohttp.ClientConnectorError):  # refused, DNS, TLS: nothing was sent
        return httpx.ConnectError(message)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message)
    if isinstance(exc, TimeoutError):
        return httpx.ReadTimeout(message)
    if isinstance(exc, aiohttp.ClientResponseError):  # the status line or headers
        return httpx.RemoteProtocolError(f"the peer's answer was malformed: {_said(exc)}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return httpx.ReadError(f"the peer's answer broke off: {_said(exc)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return httpx.RemoteProtocolError("the peer closed the connection without an answer")
    if isinstance(exc, aiohttp.ClientOSError):  # reset once connected
        return httpx.ReadError(message)
    return httpx.NetworkError(message)


def _said(exc: aiohttp.ClientError) -> str:
    """The parser's own words, without aiohttp's internal status code."""
    inner = exc.__cause__ or exc.__context__
    said = getattr(exc, "message", None) or getattr(inner, "message", None)
    text = str(said) if isinstance(said, str) and said else str(exc)
    return _AIOHTTP_CODE.sub("", text).strip(" '\"") or type(exc).__name__


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
