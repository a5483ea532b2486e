"""Which shops an operator's view covers: the shop a front was asked for, checked against the
configuration and the asking admin token's scope (`gateway.shops.AdminScope`), or every shop the
token sees. The admin API, the dashboard and ``kabarin`` ask here, so a shop is judged the same
way by all three.

A scoped token's shops are its whole world: a shop outside them, configured or not, is
`UnknownShop` with ``hidden`` (a 404, like another shop's record), never a hint that it exists.
"""

from __future__ import annotations

from gateway.errors import ShopRequired, UnknownShop
from gateway.shops import AdminScope, Shops

__all__ = ["EVERY_SHOP", "list_shops", "one_shop", "visible_shop"]

EVERY_SHOP = AdminScope(None)
"""The scope of ``admin.token`` and of ``kabarin`` (run by whoever holds the configuration)."""


def visible_shop(shops: Shops, scope: AdminScope, shop: str) -> str:
    """`shop` when it is configured and `scope` sees it; `UnknownShop` otherwise."""
    if not scope.sees(shop):
        raise UnknownShop(shop, hidden=True)
    if shop not in shops:
        raise UnknownShop(shop)
    return shop


def list_shops(shops: Shops, scope: AdminScope, shop: str | None) -> tuple[str, ...] | None:
    """The shops a list keeps: the one asked for (`visible_shop`), else every shop `scope`
    sees (``None``: every shop, no filter)."""
    if shop is not None:
        return (visible_shop(shops, scope, shop),)
    return None if scope.shops is None else tuple(sorted(scope.shops))


def one_shop(shops: Shops, scope: AdminScope, shop: str | None) -> str:
    """The shop of a contact or an order (kept per shop and order id): the one asked for, else
    the only configured shop `scope` sees; `ShopRequired` when it sees several."""
    if shop is not None:
        return visible_shop(shops, scope, shop)
    seen = [known for known in shops.ids if scope.sees(known)]
    if len(seen) == 1:
        return seen[0]
    raise ShopRequired(seen)
