"""KiriminAja's tracking API: ask about one order, get a typed answer.

``TrackingClient.track(kind, order_id)`` calls express ``POST /api/mitra/tracking`` with
``{"order_id"}`` or instant ``GET /api/mitra/v4/instant/tracking/{order_id}`` through KiriminAja's
official SDK (``kiriminaja`` on PyPI), which covers both calls and runs them on Kabarin's shared
`httpx.AsyncClient`. Whatever happens comes back as one of four results; nothing raises:

=============================================  =============================================
HTTP 200, ``"status": true``                   `Pulled` (the answer, for the push log)
``"status": false`` saying the order is not    `NotFound`: a final answer for that order
found (``code`` 2, or "not found" in ``text``),
on a 200 or a 404
``"status": false`` with another ``text``, on  `Refused`: about that order only (not its
a 200 or a 4xx other than 401, 403, 408 and    account's, say); the other orders are asked
429; a 200 whose JSON is nested more than      as usual
32 levels deep, or that cannot be read
429, 5xx, other 4xx, a ``"status": false``     `TryLater`: KiriminAja as a whole is limiting,
saying KiriminAja is busy or with no text, a   failing or unreachable: ask again later
body that is not a JSON object, a network
error, or no whole answer within the HTTP
client's timeout
=============================================  =============================================

The timeout bounds the call as a whole: an answer that trickles in byte by byte is given up when
it runs out, as one that does not come at all. A lone UTF-16 surrogate in the answer (``\ud800``,
valid JSON but no text) is read as U+FFFD, so the answer can still be stored and hashed.

`TryLater.after` is ``None``: KiriminAja documents no ``Retry-After`` and the SDK keeps no
headers, so the tracker's own schedule decides when to ask again. Reasons never hold the API
key (it travels only in the ``Authorization`` header, and reasons are masked anyway, since a
peer may echo what it was sent).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from kiriminaja import AsyncKiriminAja, Env
from kiriminaja.http import HttpError

from gateway.config import KiriminAjaConfig
from gateway.events import EventKind
from gateway.redaction import Redactor
from gateway.sources.kiriminaja.pulled import Pulled

__all__ = ["MAX_DEPTH", "NotFound", "Refused", "TrackingClient", "TrackingResult", "TryLater"]


class NotFound(msgspec.Struct, frozen=True, kw_only=True):
    """KiriminAja does not know the order (under this API key): asking again will not help."""

    kind: EventKind
    order_id: str
    reason: str


class Refused(msgspec.Struct, frozen=True, kw_only=True):
    """No usable answer about this one order: KiriminAja refused to tell (``"status": false``
    with a reason), or its answer could not be read. Asking again at once would end the same
    way; the other orders are not concerned."""

    kind: EventKind
    order_id: str
    reason: str


class TryLater(msgspec.Struct, frozen=True, kw_only=True):
    """No answer about the order this time: rate-limited, KiriminAja failing, or unreachable."""

    reason: str
    after: float | None = None
    """Seconds KiriminAja asked to wait; ``None``: the caller's own schedule."""
    status_code: int | None = None
    """The HTTP status, when there was an answer (401 or 403: check ``kiriminaja.api_key``)."""


TrackingResult = Pulled | NotFound | Refused | TryLater

_SNIPPET = 200
MAX_DEPTH = 32
"""Arrays and objects an answer may nest (as for pushes): a deeper one is `Refused`."""
_BUSY = ("sibuk", "busy", "coba lagi", "try again", "maintenance", "too many", "limit")
"""Words of a ``"status": false`` about KiriminAja as a whole rather than about the order."""


class TrackingClient:
    """Tracking calls on the shared HTTP client (it is not closed here)."""

    def __init__(self, config: KiriminAjaConfig, *, api_key: str, http: httpx.AsyncClient) -> None:
        self._sdk = AsyncKiriminAja(
            env=Env(config.env), api_key=api_key, base_url=config.url, async_http_client=http
        )
        self._redactor = Redactor((api_key,))
        self._http = http
        self._base_url = config.url
        self._api_key = api_key
        # httpx times each step (connect, every read) apart: the call as a whole gets the
        # longest of them, or a peer dripping its answer holds the tracker without end.
        limits = (http.timeout.connect, http.timeout.read, http.timeout.write, http.timeout.pool)
        self._deadline = max((t for t in limits if t is not None), default=None)

    def __repr__(self) -> str:
        return "TrackingClient()"

    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        """What KiriminAja knows about one order (or why it could not say)."""
        try:
            async with asyncio.timeout(self._deadline):
                if kind == "instant":
                    # The SDK puts the id into the path as it is: an id with `/` or `?` would
                    # ask about another resource.
                    answer = await self._sdk.order.instant.track(quote(order_id, safe=""))
                else:
                    answer = await self._sdk.order.express.track(order_id)
        except HttpError as exc:
            return self._http_error(kind, order_id, exc)
        except (httpx.TimeoutException, TimeoutError):
            within = f" within {self._deadline:g}s" if self._deadline is not None else " in time"
            return TryLater(reason=f"KiriminAja did not answer{within}")
        except httpx.RequestError as exc:
            return TryLater(reason=self._mask(f"cannot reach KiriminAja: {exc}"))
        except RecursionError:  # the SDK's json.loads on an answer nested thousands deep
            return _too_deep(kind, order_id)
        except ValueError:  # the SDK's json.loads on a body that is not JSON
            return TryLater(reason="KiriminAja answered with a body that is not JSON")
        except Exception as exc:  # whatever else reading this answer raised
            reason = self._mask(f"cannot read KiriminAja's answer: {type(exc).__name__}: {exc}")
            return Refused(kind=kind, order_id=order_id, reason=reason)
        return self._answer(kind, order_id, answer)

    async def set_callback(self, url: str) -> tuple[bool, str]:
        """Ask KiriminAja to push to `url` (``POST /api/mitra/set_callback``; the SDK has no
        such call): whether it accepted, and what it answered."""
        try:
            response = await self._http.post(
                f"{self._base_url}/api/mitra/set_callback",
                json={"url": url},
                headers={"Authorization": f"Bearer {self._api_key}", "Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            return False, self._mask(f"cannot reach KiriminAja: {exc}")
        body = _json_object(response.content)
        text = _snippet(body.get("text") if body is not None else response.text)
        accepted = response.status_code == 200 and body is not None and body.get("status") is True
        return accepted, self._mask(f"KiriminAja answered {response.status_code}: {text}")

    def _answer(self, kind: EventKind, order_id: str, answer: object) -> TrackingResult:
        if not isinstance(answer, dict):
            return TryLater(reason="KiriminAja answered with JSON that is not an object")
        try:
            cleaned: dict[str, Any] = _clean(answer, 1)
        except _TooDeep:
            return _too_deep(kind, order_id)
        if cleaned.get("status") is True:
            return Pulled(kind=kind, order_id=order_id, answer=cleaned)
        return self._status_false(kind, order_id, cleaned)

    def _status_false(
        self, kind: EventKind, order_id: str, answer: dict[str, Any]
    ) -> TrackingResult:
        text = self._mask(_snippet(answer.get("text")))
        if _says_not_found(answer):
            return NotFound(kind=kind, order_id=order_id, reason=f"KiriminAja: {text}")
        if _refuses(answer):
            return Refused(kind=kind, order_id=order_id, reason=f"KiriminAja refused: {text}")
        return TryLater(reason=f"KiriminAja answered status false: {text}")

    def _http_error(self, kind: EventKind, order_id: str, exc: HttpError) -> TrackingResult:
        body = _json_object(exc.body)
        if exc.status_code == 404 and body is not None and _says_not_found(body):
            return NotFound(
                kind=kind,
                order_id=order_id,
                reason=f"KiriminAja: {self._mask(_snippet(body.get('text')))}",
            )
        about_order = exc.status_code < 500 and exc.status_code not in (401, 403, 408, 429)
        if about_order and body is not None and _refuses(body):
            text = self._mask(_snippet(body.get("text")))
            reason = f"KiriminAja refused ({exc.status_code}): {text}"
            return Refused(kind=kind, order_id=order_id, reason=reason)
        text = _snippet(body.get("text") if body is not None else exc.body.decode(errors="replace"))
        what = {429: "rate-limited", 401: "unauthorized (check kiriminaja.api_key)"}.get(
            exc.status_code, exc.reason or "error"
        )
        return TryLater(
            reason=self._mask(f"KiriminAja answered {exc.status_code} {what}: {text}"),
            status_code=exc.status_code,
        )

    def _mask(self, text: str) -> str:
        return self._redactor.redact(text)


def _says_not_found(answer: dict[str, Any]) -> bool:
    if answer.get("status") is not False:
        return False
    text = answer.get("text")
    words = text.lower() if isinstance(text, str) else ""
    return answer.get("code") == 2 or "not found" in words or "tidak ditemukan" in words


def _refuses(answer: dict[str, Any]) -> bool:
    """A ``"status": false`` with a reason that is not about KiriminAja being busy."""
    text = answer.get("text")
    if answer.get("status") is not False or not isinstance(text, str) or not text.strip():
        return False
    words = text.lower()
    return not any(word in words for word in _BUSY)


class _TooDeep(Exception):
    pass


def _too_deep(kind: EventKind, order_id: str) -> Refused:
    reason = f"KiriminAja answered with JSON nested more than {MAX_DEPTH} levels deep"
    return Refused(kind=kind, order_id=order_id, reason=reason)


def _clean(value: Any, depth: int) -> Any:
    """`value` with lone surrogates made U+FFFD; raises `_TooDeep` past `MAX_DEPTH`."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict | list):
        if depth > MAX_DEPTH:
            raise _TooDeep
        if isinstance(value, list):
            return [_clean(v, depth + 1) for v in value]
        return {_text(k): _clean(v, depth + 1) for k, v in value.items()}
    return value


def _text(text: str) -> str:
    try:
        text.encode()
    except UnicodeEncodeError:
        # json.loads joins escaped pairs: what is left of a surrogate is a lone one.
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _snippet(value: object) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = " ".join(text.split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "") if text else "(no text)"
