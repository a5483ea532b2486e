"""The customers of orders as the shop registers them: one put, one forgotten, a CSV file of
them imported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.contacts import read_contacts_csv, registered_contact
from gateway.events import Contact

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
) -> Contact:
    """Register an order's customer (it wins over what pushes say; a field left out keeps
    what is known); the contact as the sinks now see it. `InvalidContact` names every wrong
    field."""
    contact = registered_contact(order_id, name=name, phone=phone, email=email, language=language)
    await rt.store.register_contacts([contact], now=datetime.now(UTC))
    return await rt.store.get_contact(order_id) or contact


async def delete_contact(rt: Runtime, order_id: str) -> bool:
    """Forget an order's customer, whoever gave it; False when none was kept."""
    return await rt.store.delete_contact(order_id)


@dataclass(frozen=True)
class ContactImport:
    imported: int
    problems: list[str]
    """One line per row not imported (``line 7: phone: ...``), or one for a wrong header."""


async def import_contacts(rt: Runtime, text: str) -> ContactImport:
    """Register the valid rows of a CSV file (header ``order_id,name,phone,email,language``)
    in one commit; the rows that are not valid are named, not imported."""
    contacts, problems = read_contacts_csv(text)
    imported = await rt.store.register_contacts(contacts, now=datetime.now(UTC)) if contacts else 0
    return ContactImport(imported=imported, problems=problems)
