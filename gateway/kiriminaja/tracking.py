"""KiriminAja's tracking API: ask about one order, get a typed answer.

``TrackingClient.track(kind, order_id)`` calls express ``POST /api/mitra/tracking`` with
``{"order_id"}`` or instant ``GET /api/mitra/v4/instant/tracking/{order_id}`` through KiriminAja's
official SDK (``kiriminaja`` on PyPI), which covers both calls and runs them on Kabarin's shared
`httpx.AsyncClient`. Whatever happens comes back as one of three results; nothing raises:

=============================================  =============================================
HTTP 200, ``"status": true``                   `Pulled` (the answer, for the push log)
``"status": false`` saying the order is not    `NotFound`: a final answer for that order
found (``code`` 2, or "not found" in ``text``),
on a 200 or a 404
``"status": false`` otherwise, 429, 5xx,       `TryLater`: ask again later
other 4xx, a body that is not a JSON object,
a network error or timeout
=============================================  =============================================

`TryLater.after` is ``None``: KiriminAja documents no ``Retry-After`` and the SDK keeps no
headers, so the tracker's own schedule decides when to ask again. Reasons never hold the API
key (it travels only in the ``Authorization`` header, and reasons are masked anyway, since a
peer may echo what it was sent).
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
from kiriminaja import AsyncKiriminAja, Env
from kiriminaja.http import HttpError

from gateway.config import KiriminAjaConfig
from gateway.events import EventKind
from gateway.kiriminaja.pulled import Pulled
from gateway.redaction import Redactor

__all__ = ["NotFound", "TrackingClient", "TrackingResult", "TryLater"]


class NotFound(msgspec.Struct, frozen=True, kw_only=True):
    """KiriminAja does not know the order (under this API key): asking again will not help."""

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


TrackingResult = Pulled | NotFound | TryLater

_SNIPPET = 200


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

    def __repr__(self) -> str:
        return "TrackingClient()"

    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        """What KiriminAja knows about one order (or why it could not say)."""
        try:
            if kind == "instant":
                # The SDK puts the id into the path as it is: an id with `/` or `?` would ask
                # about another resource.
                answer = await self._sdk.order.instant.track(quote(order_id, safe=""))
            else:
                answer = await self._sdk.order.express.track(order_id)
        except HttpError as exc:
            return self._http_error(kind, order_id, exc)
        except httpx.TimeoutException:
            return TryLater(reason="KiriminAja did not answer in time")
        except httpx.RequestError as exc:
            return TryLater(reason=self._mask(f"cannot reach KiriminAja: {exc}"))
        except ValueError:  # the SDK's json.loads on a body that is not JSON
            return TryLater(reason="KiriminAja answered with a body that is not JSON")
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
        if answer.get("status") is True:
            return Pulled(kind=kind, order_id=order_id, answer=answer)
        text = self._mask(_snippet(answer.get("text")))
        if _says_not_found(answer):
            return NotFound(kind=kind, order_id=order_id, reason=f"KiriminAja: {text}")
        return TryLater(reason=f"KiriminAja answered status false: {text}")

    def _http_error(self, kind: EventKind, order_id: str, exc: HttpError) -> TrackingResult:
        body = _json_object(exc.body)
        if exc.status_code == 404 and body is not None and _says_not_found(body):
            return NotFound(
                kind=kind,
                order_id=order_id,
                reason=f"KiriminAja: {self._mask(_snippet(body.get('text')))}",
            )
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


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _snippet(value: object) -> str:
    text = value if isinstance(value, str) else "" if value is None else str(value)
    text = " ".join(text.split())
    return text[:_SNIPPET] + ("…" if len(text) > _SNIPPET else "") if text else "(no text)"
