"""How a ``kabarin`` command gets what it works on: its configuration (checked as `kabarin
check` checks it, or only loaded), the store alone, or a runtime for the operator actions of
`gateway.operations`."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.config import Config
from gateway.errors import ConfigError, KabarinError
from gateway.redaction import mask_url

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from gateway.store import Store

__all__ = [
    "existing_store",
    "list_shops",
    "one_shop",
    "opened_store",
    "operating",
    "print_invalid",
    "validated",
]


def validated(path: str) -> Config:
    """The file, refused (`ConfigError`) on any problem `kabarin check` would name."""
    from gateway.check import validate_file

    return validate_file(path)


def print_invalid(path: str, exc: ConfigError) -> None:
    print(f"{path}: invalid configuration", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


@asynccontextmanager
async def opened_store(url: str, *, cache_mb: int | None = None) -> AsyncIterator[Store]:
    """The store at `url`, open (migrated to the current schema) until the block ends."""
    from gateway.store import open_store

    store = open_store(url) if cache_mb is None else open_store(url, cache_mb=cache_mb)
    await store.open(now=datetime.now(UTC))
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def operating(config: Config) -> AsyncIterator[Runtime]:
    """A runtime with no stages running (no intake, no dispatcher), for the operator actions;
    the servers' stages notice their work as they notice another replica's."""
    from gateway.runtime import open_runtime

    async with AsyncExitStack() as stack:
        yield await open_runtime(config, stack, dispatcher=False)


def existing_store(option: str | None, url: str) -> None:
    """Refuse a store URL (of `option`, when given) that names no store: an unsupported one,
    or an SQLite file that does not exist (opening it would create an empty store)."""
    from gateway.config import StoreConfig
    from gateway.units import FieldError

    where = f"{option}: " if option else ""
    try:
        store = StoreConfig(url=url)
        path = None if store.is_postgres else store.sqlite_path
    except FieldError as exc:
        raise KabarinError(f"{where}{exc}") from None
    if path is not None and not path.is_file():
        raise KabarinError(f"{where}no store at {mask_url(url)}: {path} does not exist")


def list_shops(config: Config, shop: str | None) -> tuple[str, ...] | None:
    """The shops a listing or a replay keeps: ``--shop``'s (checked against the file), else
    every shop (``None``)."""
    from gateway import operations
    from gateway.errors import UnknownShop
    from gateway.shops import Shops

    shops = Shops.from_config(config)
    try:
        return operations.list_shops(shops, operations.EVERY_SHOP, shop)
    except UnknownShop as exc:
        raise KabarinError(f"--shop: {exc} (configured: {', '.join(shops.ids)})") from None


def one_shop(config: Config, shop: str | None) -> str:
    """The shop of contacts and tracked orders (kept per shop): ``--shop``'s, required when
    the file lists several shops."""
    from gateway import operations
    from gateway.errors import ShopRequired, UnknownShop
    from gateway.shops import Shops

    shops = Shops.from_config(config)
    try:
        return operations.one_shop(shops, operations.EVERY_SHOP, shop)
    except ShopRequired as exc:
        raise KabarinError(f"--shop: {exc}") from None
    except UnknownShop as exc:
        raise KabarinError(f"--shop: {exc} (configured: {', '.join(shops.ids)})") from None
