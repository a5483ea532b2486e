"""The ``tracking_page:`` section (the customer's tracking page, `gateway.tracking_page`) and the
brand a shop shows on it (``tracking_page.brand``, overridden per shop by ``shops.<id>.brand``).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import msgspec

from gateway.units import Duration, FieldError

__all__ = ["DEFAULT_COLOR", "MIN_SECRET", "BrandConfig", "TrackingPageConfig"]

MIN_SECRET = 32
"""Characters ``tracking_page.secret`` needs at least."""
DEFAULT_COLOR = "#0a7f5a"
"""The page's colour when no brand gives one."""
_COLOR = re.compile(r"#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})")
_WHATSAPP = re.compile(r"\+?[0-9][0-9 -]{6,20}")


class BrandConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What the tracking page shows of the shop. Each key left out is the default brand's
    (``tracking_page.brand``), and there the built-in one."""

    name: str | None = None
    """The shop's name on the page; ``None``: the shop's ``name`` (else its id)."""
    color: str | None = None
    """The page's colour, ``#rrggbb`` or ``#rgb``; ``None``: ``#0a7f5a``."""
    logo_url: str | None = None
    """An https:// (or http://) image shown at the top of the page; the page's only image
    from elsewhere (its address is allowed by the page's Content-Security-Policy)."""
    whatsapp: str | None = None
    """The shop's WhatsApp number (``+6281299990000``): the page's "chat with the shop" link
    (``https://wa.me/<number>``); ``None``: no link."""

    def __post_init__(self) -> None:
        if self.name is not None and not self.name.strip():
            raise FieldError("name", "must not be empty (leave it out for the shop's name)")
        if self.color is not None and not _COLOR.fullmatch(self.color):
            raise FieldError("color", "must be a colour like #0a7f5a (or #0a5)")
        if self.logo_url is not None:
            parts = urlsplit(self.logo_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise FieldError("logo_url", "must be an absolute http:// or https:// URL")
        if self.whatsapp is not None and not _WHATSAPP.fullmatch(self.whatsapp.strip()):
            raise FieldError("whatsapp", "must be a phone number with its country code")

    def over(self, default: BrandConfig) -> BrandConfig:
        """This brand, each key it leaves out taken from `default`."""
        return BrandConfig(
            name=self.name or default.name,
            color=self.color or default.color,
            logo_url=self.logo_url or default.logo_url,
            whatsapp=self.whatsapp or default.whatsapp,
        )

    @property
    def wa_number(self) -> str | None:
        """`whatsapp` as wa.me wants it: digits only."""
        if self.whatsapp is None:
            return None
        return "".join(c for c in self.whatsapp if c.isdigit())


class TrackingPageConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The customer's tracking page: a signed link (``tracking_url`` in templates) to a light
    page under ``/t/`` showing one order's timeline, in the shop's brand."""

    enabled: bool = False
    """Serve ``/t/`` and give templates ``tracking_url``; ``false``: ``/t/`` is 404 and
    ``tracking_url`` is ``None``."""
    secret: str | None = None
    """Signs the links (HMAC-SHA256), at least 32 characters; changing it ends every link
    given so far. Required when `enabled`."""
    public_url: str | None = None
    """How customers reach this Kabarin's ``/t/`` (``https://lacak.toko.example``, behind the
    shop's proxy): links are ``<public_url>/t/<token>``. Required when `enabled`."""
    link_ttl: Duration = Duration(60 * 86400)
    """How long a link works, from the event its message is about reaching Kabarin; after
    that the page says the link has expired (410)."""
    brand: BrandConfig = msgspec.field(default_factory=BrandConfig)
    """The page's brand for every shop (``shops.<id>.brand`` overrides it key by key)."""

    def __post_init__(self) -> None:
        if self.secret is not None and len(self.secret) < MIN_SECRET:
            raise FieldError(
                "secret", f"must be at least {MIN_SECRET} characters (it has {len(self.secret)})"
            )
        if self.enabled and self.secret is None:
            raise FieldError("secret", "required when the page is enabled")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise FieldError("public_url", "must be an absolute http:// or https:// URL")
            if parts.query or parts.fragment:
                raise FieldError("public_url", "must not have a query or a fragment")
        elif self.enabled:
            raise FieldError("public_url", "required when the page is enabled")
        if self.link_ttl <= 0:
            raise FieldError("link_ttl", "must be positive")
