"""Storage: the store roles and `Store` (base.py), and its backends (sqlite/, postgres/)."""

from __future__ import annotations

from gateway.errors import ConfigError
from gateway.store.roles import *  # noqa: F403
from gateway.store.roles import DEFAULT_CACHE_MB, Store
from gateway.store.roles import __all__ as _base_all

__all__ = [*_base_all, "open_store"]


def open_store(url: str, *, cache_mb: int = DEFAULT_CACHE_MB) -> Store:
    """The store a ``store.url`` names: ``sqlite:///relative.db``, ``sqlite:////abs.db``, or
    ``postgresql://user@host:5432/db`` (``postgres://`` too; any libpq URL). `cache_mb` is
    each SQLite connection's page cache (PostgreSQL's is the server's own)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres") and sep:  # libpq's defaults fill in the rest
        from gateway.store.postgres import PostgresStore

        return PostgresStore(url)
    if scheme == "sqlite" and sep and rest.startswith("/") and len(rest) > 1:
        from gateway.store.sqlite import SQLiteStore

        return SQLiteStore(rest[1:], cache_mb=cache_mb)
    raise ConfigError(
        [
            f"store.url: unsupported store URL {url!r}"
            " (use sqlite:///path/to/kabarin.db or postgresql://user@host/db)"
        ]
    )
