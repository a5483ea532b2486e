"""Dashboard sign-in: server-side sessions behind a random cookie, and their CSRF tokens.

The cookie holds only a random session id (HttpOnly, SameSite=Strict): the admin token is
checked once at sign-in and never leaves the server again. Sessions live in the process, so a
restart signs everyone out, which a small shop's single operator hardly notices.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler

__all__ = ["COOKIE", "Session", "Sessions", "SignInRequired", "signed_in"]

COOKIE = "kabarin_session"
LIFETIME = 12 * 3600.0
"""Seconds a session lasts after its last use."""
_MAX_SESSIONS = 1000
"""Past this, the least recently used sessions are dropped (a bound, not a login limit)."""


class SignInRequired(NotAuthorizedException):
    """No valid session: the dashboard answers with a redirect to the sign-in page."""


@dataclass
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: float = field(default_factory=time.monotonic)
    flash: str | None = None
    """A one-time notice for the next page (what an action did)."""

    def csrf_ok(self, submitted: object) -> bool:
        return isinstance(submitted, str) and hmac.compare_digest(
            submitted.encode(), self.csrf.encode()
        )

    def take_flash(self) -> str | None:
        notice, self.flash = self.flash, None
        return notice


@dataclass
class Sessions:
    _by_id: dict[str, Session] = field(default_factory=dict)

    def create(self) -> tuple[str, Session]:
        self._expire()
        while len(self._by_id) >= _MAX_SESSIONS:
            oldest = min(self._by_id, key=lambda k: self._by_id[k].used)
            del self._by_id[oldest]
        session_id = secrets.token_urlsafe(32)
        session = self._by_id[session_id] = Session()
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._by_id.get(session_id)
        now = time.monotonic()
        if session is None or now - session.used > LIFETIME:
            self._by_id.pop(session_id, None)
            return None
        session.used = now
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            self._by_id.pop(session_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for key in [k for k, s in self._by_id.items() if now - s.used > LIFETIME]:
            del self._by_id[key]


def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a page or action of the dashboard needs a live session."""
    sessions: Sessions = connection.app.state.ui.sessions
    session = sessions.get(connection.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired("sign in first")
    connection.state.ui_session = session
