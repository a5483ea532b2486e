"""Signed tracking links: ``<public_url>/t/<token>``, the token a compact signed value of
(shop, order id, expiry), never a database id.

The token is unpadded base64url of ``version | expiry | len(shop) | shop | order id | mac``:
one version byte (1), the expiry as 5 bytes of Unix seconds (big-endian), the shop id
(empty for ``default``, which keeps a one-shop deployment's links shorter) after its length
byte, the order id's UTF-8 bytes, then the first 16 bytes (128 bits) of HMAC-SHA256 keyed
with ``tracking_page.secret`` over everything before it. An order id of 13 characters gives a
token of 48 characters.

`LinkSigner.verify` checks the signature first, in constant time, and only then the expiry:
a token that is not Kabarin's (`Tampered`) says nothing about any order, and an expired one
(`Expired`) is known to be genuine.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from gateway.events import DEFAULT_SHOP

if TYPE_CHECKING:
    from gateway.config import Config

__all__ = [
    "MAC_BYTES",
    "Expired",
    "LinkSigner",
    "Tampered",
    "TrackingLink",
    "signer_for",
    "staff_link",
]

VERSION = 1
MAC_BYTES = 16
"""HMAC-SHA256 truncated to 128 bits: enough against forgery, half the link's length."""
_EXPIRY_BYTES = 5
_HEAD = 1 + _EXPIRY_BYTES + 1


class Tampered(ValueError):
    """Not a token Kabarin signed with the current secret (or not a token at all)."""


class Expired(ValueError):
    """A genuine token whose time is up."""

    def __init__(self, link: TrackingLink) -> None:
        super().__init__("the link has expired")
        self.link = link


@dataclass(frozen=True, slots=True)
class TrackingLink:
    """What a token names: one order of one shop, until `expires`."""

    shop: str
    order_id: str
    expires: datetime


class LinkSigner:
    """Makes and checks tokens with one secret; `public_url` is where ``/t/`` is reached."""

    def __init__(self, secret: str, public_url: str, ttl: float) -> None:
        self._key = secret.encode()
        self.public_url = public_url.rstrip("/")
        self.ttl = ttl

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LinkSigner) and (self._key, self.public_url, self.ttl) == (
            other._key,
            other.public_url,
            other.ttl,
        )

    def __hash__(self) -> int:
        return hash((self.public_url, self.ttl))

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:MAC_BYTES]

    def sign(self, shop: str, order_id: str, expires: datetime) -> str:
        """The token of `order_id` of `shop`, valid until `expires` (whole seconds)."""
        shop_bytes = b"" if shop == DEFAULT_SHOP else shop.encode()
        if len(shop_bytes) > 255:
            raise ValueError("a shop id of more than 255 bytes")
        seconds = max(0, int(expires.timestamp()))
        payload = (
            bytes([VERSION])
            + seconds.to_bytes(_EXPIRY_BYTES, "big")
            + bytes([len(shop_bytes)])
            + shop_bytes
            + order_id.encode()
        )
        raw = payload + self._mac(payload)
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")

    def url(self, shop: str, order_id: str, *, made_at: datetime) -> str:
        """The page's address for a link made at `made_at`: it works for `ttl` after."""
        token = self.sign(shop, order_id, made_at + timedelta(seconds=self.ttl))
        return f"{self.public_url}/t/{token}"

    def verify(self, token: str, *, now: datetime) -> TrackingLink:
        """What `token` names; `Tampered` unless Kabarin signed it, `Expired` past its time."""
        if not token or len(token) > 1024 or not token.isascii():
            raise Tampered("not a token")
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise Tampered("not a token") from None
        if len(raw) < _HEAD + MAC_BYTES + 1:
            raise Tampered("not a token")
        payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not hmac.compare_digest(self._mac(payload), mac) or payload[0] != VERSION:
            raise Tampered("not signed by this Kabarin")
        # Canonical form only: another spelling of the same bytes is not the same link.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
            raise Tampered("not a token")
        seconds = int.from_bytes(payload[1 : 1 + _EXPIRY_BYTES], "big")
        shop_len = payload[_HEAD - 1]
        try:
            shop = payload[_HEAD : _HEAD + shop_len].decode() or DEFAULT_SHOP
            order_id = payload[_HEAD + shop_len :].decode()
        except UnicodeDecodeError:
            raise Tampered("not a token") from None
        if not order_id:
            raise Tampered("not a token")
        link = TrackingLink(
            shop=shop, order_id=order_id, expires=datetime.fromtimestamp(seconds, UTC)
        )
        if now >= link.expires:
            raise Expired(link)
        return link


def signer_for(config: Config) -> LinkSigner | None:
    """The link signer of `config`'s ``tracking_page``; ``None`` when the page is off."""
    page = config.tracking_page
    if not page.enabled or page.secret is None or page.public_url is None:
        return None
    return LinkSigner(page.secret, page.public_url, float(page.link_ttl))


def staff_link(config: Config, shop: str, order_id: str, *, now: datetime) -> str | None:
    """The tracking page of `order_id` of `shop` as staff see it (the admin API's and the
    dashboard's order), working for ``link_ttl`` from `now`; ``None`` when the page is off."""
    signer = signer_for(config)
    return None if signer is None else signer.url(shop, order_id, made_at=now)
