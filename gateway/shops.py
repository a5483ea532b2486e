"""The shops one Kabarin serves: ids, names, tokens, zones, and which admin tokens see which.

A shop is one KiriminAja account. Its token is that account's API key: KiriminAja sends it as
the bearer token of the account's pushes, and the pull tracker calls the tracking API with it.
A one-shop file (``receiver.token``) has the one shop ``default``; records written before shops
existed belong to it too.

`Shops` is built once per configuration (at start and by every reload) and answers the two
questions asked on every request: which shop a push's bearer token belongs to
(`Shops.by_token`), and which shops an admin token may see (`Shops.admin_scope`). Both take
the same time whatever the number of shops: the presented token is hashed once and looked up
in a dict, then compared in constant time with the one found (`hmac.compare_digest`), so
neither the lookup nor the comparison tells an attacker how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from gateway.config import Config, KiriminAjaConfig
from gateway.config.tracking_page import BrandConfig
from gateway.events import DEFAULT_SHOP

__all__ = ["DEFAULT_SHOP", "AdminScope", "Shop", "Shops", "bearer_value", "token_mac"]


_NO_BRAND = BrandConfig()


@dataclass(frozen=True, slots=True)
class Shop:
    """One shop as the running service uses it (from its ``shops:`` block)."""

    id: str
    name: str
    """What staff and customers see (``shop.name`` in templates); the id when none is set."""
    token: str
    """Its pushes' bearer token, and its KiriminAja API key (unless its ``kiriminaja:`` block
    gives an ``api_key`` of its own)."""
    timezone: ZoneInfo
    """Zone of its naive push times."""
    kiriminaja: KiriminAjaConfig
    """How its tracking calls are made: its own block, else the top-level one."""
    pull_rate: float
    """The pull tracker's tracking calls per second about its orders at most."""
    brand: BrandConfig = _NO_BRAND
    """What its tracking page shows: its ``brand`` over ``tracking_page.brand``, named."""

    @property
    def api_key(self) -> str:
        """The key of KiriminAja API calls about its orders."""
        return self.kiriminaja.api_key or self.token


@dataclass(frozen=True, slots=True)
class AdminScope:
    """What one admin token may see: every shop (and the configuration), or some shops."""

    shops: frozenset[str] | None
    """The ids it sees; ``None``: every shop, and the configuration, reloads and the like."""

    @property
    def everything(self) -> bool:
        return self.shops is None

    def sees(self, shop: str) -> bool:
        """Whether a record of `shop` is visible to this token (404 to it otherwise)."""
        return self.shops is None or shop in self.shops


_ALL = AdminScope(None)


def _digest(token: str | bytes) -> bytes:
    raw = token.encode() if isinstance(token, str) else token
    return hashlib.sha256(raw).digest()


def bearer_value(header: str | None) -> str | None:
    """The token of an ``Authorization`` header: ``Bearer <token>`` or the bare token
    (KiriminAja's plugin accepts both); ``None`` when there is none."""
    if not header:
        return None
    value = header.strip()
    if value[:7].lower() == "bearer ":
        value = value[7:].strip()
    return value or None


class Shops:
    """The configured shops, by id and by token, and the admin tokens' scopes."""

    def __init__(self, shops: Mapping[str, Shop], admin: Mapping[str, AdminScope]) -> None:
        self._shops = dict(shops)
        self._by_digest = {_digest(shop.token): shop for shop in self._shops.values()}
        self._admin = {_digest(token): (token.encode(), scope) for token, scope in admin.items()}

    @classmethod
    def from_config(cls, config: Config) -> Shops:
        """The shops of a loaded configuration (`Config.shops`: the load fills in ``default``
        for a one-shop file) and its admin tokens."""
        top = config.kiriminaja
        one_shop = config.receiver.token is not None
        shops = {
            shop_id: Shop(
                id=shop_id,
                name=block.name or shop_id,
                token=block.token,
                timezone=ZoneInfo(block.timezone) if block.timezone else config.receiver.tz,
                # A one-shop file's `kiriminaja.api_key` is its key, as it always was.
                kiriminaja=block.kiriminaja or (top if one_shop else _no_key(top)),
                pull_rate=block.calls_per_second or config.pull.calls_per_second,
                brand=(block.brand or BrandConfig())
                .over(config.tracking_page.brand)
                .over(BrandConfig(name=block.name or shop_id)),
            )
            for shop_id, block in config.shops.items()
        }
        admin: dict[str, AdminScope] = {}
        if config.admin.token:
            admin[config.admin.token] = _ALL
        for scoped in config.admin.tokens:
            admin[scoped.token] = AdminScope(frozenset(scoped.shops))
        return cls(shops, admin)

    # -- the shops -------------------------------------------------------------------------
    def __iter__(self) -> Iterator[Shop]:
        return iter(self._shops.values())

    def __len__(self) -> int:
        return len(self._shops)

    def __contains__(self, shop_id: object) -> bool:
        return shop_id in self._shops

    @property
    def ids(self) -> list[str]:
        """The configured ids, in the file's order."""
        return list(self._shops)

    def get(self, shop_id: str) -> Shop | None:
        return self._shops.get(shop_id)

    def name_of(self, shop_id: str) -> str:
        """The shop's name; the id itself for a shop no longer configured."""
        shop = self._shops.get(shop_id)
        return shop.name if shop is not None else shop_id

    def timezone_of(self, shop_id: str, default: ZoneInfo) -> ZoneInfo:
        shop = self._shops.get(shop_id)
        return shop.timezone if shop is not None else default

    @property
    def zones(self) -> dict[str, ZoneInfo]:
        """Shop id → the zone of its naive times."""
        return {shop.id: shop.timezone for shop in self._shops.values()}

    # -- tokens ----------------------------------------------------------------------------
    def by_token(self, token: str | None) -> Shop | None:
        """The shop whose token this is, or ``None``: one hash, one dict lookup and one
        constant-time comparison, however many shops there are."""
        if not token:
            return None
        shop = self._by_digest.get(_digest(token))
        if shop is None or not hmac.compare_digest(shop.token.encode(), token.encode()):
            return None
        return shop

    def by_header(self, header: str | None) -> Shop | None:
        """`by_token` of an ``Authorization`` header's token."""
        return self.by_token(bearer_value(header))

    @property
    def admin_on(self) -> bool:
        """Whether any admin token is configured (without one the admin API and the dashboard
        are off)."""
        return bool(self._admin)

    def admin_scope(self, token: str | bytes | None) -> AdminScope | None:
        """What an admin token may see: every shop (``admin.token``), its shops (one of
        ``admin.tokens``), or ``None`` (no admin token: 401)."""
        if not token:
            return None
        found = self._admin.get(_digest(token))
        if found is None:
            return None
        expected, scope = found
        raw = token.encode() if isinstance(token, str) else token
        return scope if hmac.compare_digest(expected, raw) else None

    def admin_scope_by_mac(self, key: bytes, mac: str | None) -> AdminScope | None:
        """The scope of the admin token whose HMAC-SHA256 keyed with `key` is `mac` (how a
        dashboard session records the token it signed in with), or ``None`` when no configured
        token's is (it was changed or removed). Every token is tried, each in constant time."""
        if not mac:
            return None
        found: AdminScope | None = None
        for token, scope in self._admin.values():
            if hmac.compare_digest(token_mac(key, token), mac):
                found = scope
        return found


def token_mac(key: bytes, token: str | bytes) -> str:
    """An admin token's HMAC-SHA256 keyed with `key`, in hex (`Shops.admin_scope_by_mac`)."""
    raw = token.encode() if isinstance(token, str) else token
    return hmac.new(key, raw, hashlib.sha256).hexdigest()


def _no_key(block: KiriminAjaConfig) -> KiriminAjaConfig:
    """The top-level block for a listed shop: its own token is its key, never the top-level
    `api_key` (another account's)."""
    return KiriminAjaConfig(env=block.env, base_url=block.base_url)
