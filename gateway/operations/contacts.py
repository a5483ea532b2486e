"""The customers of orders as the shop registers them: one put, one forgotten, a CSV file of
them imported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from gateway.contacts import read_contacts_csv, registered_contact
from gateway.events import DEFAULT_SHOP, Contact

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["ContactImport", "delete_contact", "import_contacts", "put_contact"]


async def put_contact(
    rt: Runtime,
    order_id: str,
    *,
    name: str | None = None,
    phone: str | None = None,
    email: str | None = None,
    language: str | None = None,
    shop: str = DEFAULT_SHOP,
) -> Contact:
    """Register an order's customer (it wins over what pushes say; a field left out keeps
    what is known); the contact as the sinks now see it. `InvalidContact` names every wrong
    field."""
    contact = registered_contact(order_id, name=name, phone=phone, email=email, language=language)
    contact = msgspec.structs.replace(contact, shop=shop)
    await rt.store.register_contacts([contact], now=datetime.now(UTC))
    return await rt.store.get_contact(order_id, shop=shop) or contact


async def delete_contact(rt: Runtime, order_id: str, *, shop: str = DEFAULT_SHOP) -> bool:
    """Forget a shop's order's customer, whoever gave it; False when none was kept."""
    return await rt.store.delete_contact(order_id, shop=shop)


@dataclass(frozen=True)
class ContactImport:
    imported: int
    problems: list[str]
    """One line per row not imported (``line 7: phone: ...``), or one for a wrong header."""


async def import_contacts(rt: Runtime, text: str, *, shop: str = DEFAULT_SHOP) -> ContactImport:
    """Register the valid rows of a CSV file (header ``order_id,name,phone,email,language``)
    as `shop`'s in one commit; the rows that are not valid are named, not imported."""
    contacts, problems = read_contacts_csv(text)
    contacts = [msgspec.structs.replace(c, shop=shop) for c in contacts]
    imported = await rt.store.register_contacts(contacts, now=datetime.now(UTC)) if contacts else 0
    return ContactImport(imported=imported, problems=problems)
