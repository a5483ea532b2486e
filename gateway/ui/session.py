"""Dashboard sign-in: sessions kept in the store behind a random cookie, and their CSRF tokens.

The cookie holds only a random session id (HttpOnly, SameSite=Strict, and Secure as
``admin.secure_cookie`` says): the admin token (``admin.token``, or a scoped one of
``admin.tokens``) is checked once at sign-in and never leaves the server again. The store keeps
each session under a hash of that id, with an HMAC of the token it signed in with keyed with
the id (`SessionStore`); each request finds the token's scope again from the configuration
(`Shops.admin_scope_by_mac`), so:

- a restart keeps everyone signed in, and every replica sharing the store knows every session;
- signing out forgets the session everywhere at once (a signed cookie could not be taken back);
- a copy of the database signs nobody in (it holds no cookie, and no key to test a guessed
  token against);
- changing or removing a token ends every session it signed in, and a scoped token's session
  sees the shops the file gives that token now.

A session ends 12 hours after its last use. A use is written back at most once a minute, and
what an action tells the next page (its flash) is written before the answer leaves
(`saving_sessions`), so the page after the redirect finds it on any replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler

from gateway.shops import AdminScope, Shops, token_mac
from gateway.store.roles import SessionStore, SignedInSession

if TYPE_CHECKING:
    from litestar.types import ASGIApp, Message, Receive, Scope, Send

    from gateway.runtime import Runtime

__all__ = [
    "COOKIE",
    "LIFETIME",
    "Session",
    "SignInRequired",
    "end_session",
    "open_session",
    "saving_sessions",
    "signed_in",
    "whole_deployment_ui",
]

COOKIE = "kabarin_session"
LIFETIME = 12 * 3600.0
"""Seconds a session lasts after its last use."""
_TOUCH_EVERY = timedelta(minutes=1)
"""A use is written back when the last one written is older than this."""


class SignInRequired(NotAuthorizedException):
    """No valid session: the dashboard answers with a redirect to the sign-in page."""


@dataclass
class Session:
    key: str
    csrf: str
    scope: AdminScope
    """What the token it signed in with sees (as the configuration says now)."""
    flash: str | None = None
    """A one-time notice for the next page (what an action did)."""
    used_at: datetime | None = None
    stored_flash: str | None = None
    """The notice as the store has it: when `flash` differs, it is written back."""

    def csrf_ok(self, submitted: object) -> bool:
        return isinstance(submitted, str) and hmac.compare_digest(
            submitted.encode(), self.csrf.encode()
        )

    def take_flash(self) -> str | None:
        notice, self.flash = self.flash, None
        return notice


def _key(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def open_session(
    store: SessionStore, token: str, scope: AdminScope, *, now: datetime | None = None
) -> tuple[str, Session]:
    """A new session (for a sign-in with `token`, a right one whose scope is `scope`): its
    cookie value, and itself."""
    now = now or datetime.now(UTC)
    session_id = secrets.token_urlsafe(32)
    row = SignedInSession(
        key=_key(session_id),
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        used_at=now,
        token_mac=token_mac(session_id.encode(), token),
    )
    await store.create_session(row, expired_before=now - timedelta(seconds=LIFETIME))
    return session_id, Session(key=row.key, csrf=row.csrf, scope=scope, used_at=now)


async def find_session(
    store: SessionStore, shops: Shops, session_id: str | None, *, now: datetime | None = None
) -> Session | None:
    """The live session a cookie names, its use recorded; None for none (or an expired one, or
    one whose token the configuration no longer has)."""
    if not session_id:
        return None
    now = now or datetime.now(UTC)
    key = _key(session_id)
    row = await store.get_session(key)
    if row is None:
        return None
    scope = shops.admin_scope_by_mac(session_id.encode(), row.token_mac)
    if scope is None or (now - row.used_at).total_seconds() > LIFETIME:
        await store.delete_session(key)
        return None
    if now - row.used_at >= _TOUCH_EVERY:
        await store.update_session(key, used_at=now, flash=row.flash)
    return Session(
        key=key, csrf=row.csrf, scope=scope, flash=row.flash, used_at=now, stored_flash=row.flash
    )


async def end_session(store: SessionStore, session_id: str | None) -> None:
    """Sign out: the session is forgotten by every replica."""
    if session_id:
        await store.delete_session(_key(session_id))


async def signed_in(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a page or action of the dashboard needs a live session."""
    rt: Runtime = connection.app.state.runtime
    if not rt.shops.admin_on:
        raise SignInRequired("the dashboard is off")
    session = await find_session(rt.store, rt.shops, connection.cookies.get(COOKIE))
    if session is None:
        raise SignInRequired("sign in first")
    connection.state.ui_session = session


def whole_deployment_ui(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """Guard after `signed_in`: the configuration, a reload, a sink's switch and replays across
    shops are ``admin.token``'s; a scoped token's session is refused (403)."""
    session: Session = connection.state.ui_session
    if not session.scope.everything:
        raise PermissionDeniedException("this admin token sees only some shops")


def saving_sessions(app: ASGIApp) -> ASGIApp:
    """Middleware of the dashboard's routes: a session whose flash changed while answering is
    written back before the answer starts, so the next request (on any replica) sees it."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_after_saving(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("state", {}).get("ui_session")
                if isinstance(session, Session) and session.flash != session.stored_flash:
                    rt: Runtime = scope["app"].state.runtime
                    await rt.store.update_session(
                        session.key,
                        used_at=session.used_at or datetime.now(UTC),
                        flash=session.flash,
                    )
                    session.stored_flash = session.flash
            await send(message)

        await app(scope, receive, send_after_saving)

    return middleware
