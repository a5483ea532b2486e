"""Storage: the store roles and `Store` (roles.py; the pull tracker's role in tracking.py), and
its backends (sqlite/, postgres/).

`open_store` finds a backend by the URL's scheme in `BACKENDS`; a backend's package is
imported only when a URL names it (psycopg stays unloaded for a SQLite store).
"""

from __future__ import annotations

from collections.abc import Callable

from gateway.errors import ConfigError
from gateway.store.roles import *  # noqa: F403
from gateway.store.roles import DEFAULT_CACHE_MB, Store
from gateway.store.roles import __all__ as _base_all
from gateway.store.tracking import *  # noqa: F403
from gateway.store.tracking import __all__ as _tracking_all

__all__ = [*_base_all, *_tracking_all, "BACKENDS", "Opener", "open_store"]

Opener = Callable[[str, str, int], Store]
"""Opens a backend from (the whole URL, what follows ``scheme://``, ``store.cache_mb``);
raises `ValueError`, saying what is wrong, when the rest of the URL names no store of it."""

_EXAMPLES = "sqlite:///path/to/kabarin.db or postgresql://user@host/db"


def _postgres(url: str, rest: str, cache_mb: int) -> Store:
    from gateway.store.postgres import PostgresStore

    return PostgresStore(url)  # libpq's defaults fill in the rest; it checks it at open


def _sqlite(url: str, rest: str, cache_mb: int) -> Store:
    if not rest.startswith("/") or len(rest) < 2:
        raise ValueError("name the SQLite file (sqlite:///relative.db, sqlite:////absolute.db)")
    from gateway.store.sqlite import SQLiteStore

    return SQLiteStore(rest[1:], cache_mb=cache_mb)


BACKENDS: dict[str, Opener] = {
    "sqlite": _sqlite,
    "postgresql": _postgres,
    "postgres": _postgres,
}
"""Each URL scheme `open_store` knows, and how it opens that backend."""


def open_store(url: str, *, cache_mb: int = DEFAULT_CACHE_MB) -> Store:
    """The store a ``store.url`` names: ``sqlite:///relative.db``, ``sqlite:////abs.db``, or
    ``postgresql://user@host:5432/db`` (``postgres://`` too; any libpq URL). `cache_mb` is
    each SQLite connection's page cache (PostgreSQL's is the server's own).

    Raises `ConfigError` for a URL no backend opens; an unknown scheme's names the known."""
    scheme, sep, rest = url.partition("://")
    opener = BACKENDS.get(scheme) if sep else None
    if opener is None:
        known = ", ".join(BACKENDS)
        problem = f"unknown scheme {scheme!r}" if sep else "not a URL"
        problem += f" (known schemes: {known}; use {_EXAMPLES})"
    else:
        try:
            return opener(url, rest, cache_mb)
        except ValueError as exc:
            problem = str(exc)
    raise ConfigError([f"store.url: unsupported store URL {url!r}: {problem}"])
