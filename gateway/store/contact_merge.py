"""Contacts the shop registers, merged per order before a backend writes them.

`ContactStore.register_contacts` may name one order several times in a call. The result must
be what registering them one after the other would leave: per order, each field the last one
given that is not ``None`` (a field the shop leaves empty keeps what a push said). A backend
writes the merged rows in one statement, which may touch each row only once.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.events import Contact

__all__ = ["merge_contacts"]


def merge_contacts(contacts: Sequence[Contact]) -> list[Contact]:
    """One contact per order, by (order id, shop): later fields that are not ``None`` win."""
    merged: dict[tuple[str, str], Contact] = {}
    for c in contacts:
        key = (c.order_id, c.shop)
        known = merged.get(key)
        merged[key] = c if known is None else _merged(known, c)
    return [merged[k] for k in sorted(merged)]


def _merged(known: Contact, later: Contact) -> Contact:
    return Contact(
        order_id=known.order_id,
        shop=known.shop,
        name=later.name if later.name is not None else known.name,
        phone=later.phone if later.phone is not None else known.phone,
        email=later.email if later.email is not None else known.email,
        language=later.language if later.language is not None else known.language,
    )
