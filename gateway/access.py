"""Who may use the admin tokens: wrong guesses are limited per client, a request must say
once which credential it brings, and a token sees what its scope allows.

The admin API (bearer, `admin_guard`) and the dashboard's sign-in (form) both check an admin
token (``admin.token``, or a scoped one of ``admin.tokens``: both are right tokens) through
`SignInLimiter`: after `MAX_FAILURES` wrong tokens from one client within `WINDOW` seconds,
that client gets 429 with ``Retry-After`` until the oldest of them is `WINDOW` old, whatever it
sends, the right token included (else the answer would tell a guesser when it hit). Another
client, even one holding the right token, is not affected.

A client is the peer address of the connection, as uvicorn gives it: behind a proxy that
``kabarin serve`` trusts (uvicorn's ``FORWARDED_ALLOW_IPS``, by default the loopback
addresses), the address the proxy names in ``X-Forwarded-For``. An IPv6 client counts by its
/64 network, which one host usually holds whole. The counts live in the process (each replica
counts its own), bounded to `MAX_CLIENTS` clients: past that the least recently seen is
forgotten.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import (
    ClientException,
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler

from gateway.shops import AdminScope, bearer_value

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.runtime import Runtime

__all__ = [
    "MAX_CLIENTS",
    "MAX_FAILURES",
    "WINDOW",
    "AmbiguousCredentials",
    "SignInLimiter",
    "admin_guard",
    "admin_viewer",
    "client_key",
    "only_authorization",
    "published_tokens",
    "whole_deployment",
]

MAX_FAILURES = 10
"""Wrong admin tokens one client may send within `WINDOW`."""
WINDOW = 600.0
"""Seconds a wrong token counts against its client."""
MAX_CLIENTS = 10_000
"""Clients whose failures are remembered at once (a bound on memory, not a limit on use)."""


class AmbiguousCredentials(ValueError):
    """A request with more than one ``Authorization`` header: which one counts is anybody's
    guess (a proxy may keep the first, Kabarin the last), so neither does."""

    def __init__(self) -> None:
        super().__init__("more than one Authorization header: send exactly one")


def only_authorization(headers: Iterable[tuple[bytes, bytes]]) -> str | None:
    """The request's one ``Authorization`` value (None without one); `AmbiguousCredentials`
    when it has several. `headers` as ASGI gives them: lower-case names, in order."""
    found = [value for name, value in headers if name == b"authorization"]
    if len(found) > 1:
        raise AmbiguousCredentials
    return found[0].decode("latin-1") if found else None


def client_key(host: str | None) -> str:
    """What failures are counted by: the address, an IPv6 one by its /64 network."""
    if not host:
        return "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class SignInLimiter:
    """Wrong admin tokens per client within a sliding window (see the module's docstring).

    Times are `time.monotonic` seconds, given by the caller."""

    def __init__(
        self,
        *,
        max_failures: int = MAX_FAILURES,
        window: float = WINDOW,
        max_clients: int = MAX_CLIENTS,
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._failures)

    def retry_after(self, client: str, now: float) -> int | None:
        """Whole seconds until `client` may try again; None when it may now."""
        times = self._failures.get(client)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._failures[client]
            return None
        if len(times) < self.max_failures:
            return None
        return max(1, math.ceil(times[0] + self.window - now))

    def failed(self, client: str, now: float) -> None:
        """Count a wrong token from `client`."""
        times = self._failures.pop(client, None)
        if times is None:
            times = deque(maxlen=self.max_failures)
            while len(self._failures) >= self.max_clients:
                self._failures.popitem(last=False)
        times.append(now)
        self._failures[client] = times  # now the most recently seen

    def succeeded(self, client: str) -> None:
        """The right token: earlier slips of this client no longer count."""
        self._failures.pop(client, None)


def admin_guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """An admin bearer token, once, from a client not refused for too many wrong ones; its
    scope is kept for the handler (`admin_viewer`)."""
    rt: Runtime = connection.app.state.runtime
    if not rt.shops.admin_on:
        raise NotAuthorizedException("the admin API is off: set `admin.token` in the configuration")
    try:
        header = only_authorization(connection.scope["headers"])
    except AmbiguousCredentials as exc:
        raise ClientException(str(exc)) from None
    limiter: SignInLimiter = connection.app.state.sign_ins
    client = client_key(connection.client.host if connection.client else None)
    now = time.monotonic()
    wait = limiter.retry_after(client, now)
    if wait is not None:
        raise TooManyRequestsException(
            f"too many wrong admin tokens from this address: try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    if header is None:
        raise NotAuthorizedException("missing or wrong admin bearer token")
    scheme, _sep, _value = header.partition(" ")
    scope = rt.shops.admin_scope(bearer_value(header)) if scheme.lower() == "bearer" else None
    if scope is None:
        limiter.failed(client, now)
        raise NotAuthorizedException("missing or wrong admin bearer token")
    limiter.succeeded(client)
    connection.state.admin_scope = scope


def whole_deployment(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard after `admin_guard`: what acts on the whole deployment (a reload, a sink's switch,
    replays across shops) is ``admin.token``'s alone; a scoped token is refused (403)."""
    scope: AdminScope = connection.state.admin_scope
    if not scope.everything:
        raise PermissionDeniedException(
            "this admin token sees only some shops: this needs `admin.token`"
        )


def admin_viewer(request: Request[Any, Any, Any]) -> AdminScope:
    """The dependency that hands a handler the scope `admin_guard` found."""
    scope: AdminScope = request.state.admin_scope
    return scope


PUBLISHED = {
    "receiver.token": ("dev-kiriminaja-token", "KIRIMINAJA_TOKEN"),
    "admin.token": ("dev-admin-token-local", "KABARIN_ADMIN_TOKEN"),
}
"""The example configuration's tokens (its ``${VAR:-default}`` defaults), by key: anyone who
has read the README knows them."""


def published_tokens(config: Config, host: str) -> list[str]:
    """Why `kabarin serve --host host` must not start on `config`: each token that is the
    example's published default, when `host` reaches beyond this machine."""
    if _loopback(host):
        return []
    values = {"receiver.token": config.receiver.token, "admin.token": config.admin.token}
    return [
        f"{key} is the example's published {token!r}: set {variable} in the environment"
        f" before listening on {host} (beyond this machine)"
        for key, (token, variable) in PUBLISHED.items()
        if values[key] == token
    ]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name: it may well resolve beyond this machine
