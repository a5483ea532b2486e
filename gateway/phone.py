"""Customers' phone numbers in E.164, the form every WhatsApp and SMS provider expects.

Shops store numbers the way their customers typed them: ``0812-3456-7890``, ``6281234567890``,
``+62 812 3456 7890``. `normalize_phone` reads any of them (Indonesia is the region assumed for
a number without a country code) with the ``phonenumbers`` library, whose metadata knows which
lengths and prefixes really exist, and gives ``+6281234567890``. `contact_phone` is how every
contact keeps its number, whoever gave it (a push, a pull, the shop's lookup): in that form when
it is a valid number, so the admin API shows the number the sinks will use.
"""

from __future__ import annotations

import phonenumbers

from gateway.units import how_many

__all__ = ["DEFAULT_REGION", "InvalidPhone", "contact_phone", "normalize_phone"]

DEFAULT_REGION = "ID"


_PARSE_ERRORS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "is too short",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
    phonenumbers.NumberParseException.TOO_LONG: "is too long",
}


class InvalidPhone(ValueError):
    """Not a phone number that can receive a message; the text says why, without the number."""


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """`raw` in E.164 (``+6281234567890``); `InvalidPhone` when it is not a valid number."""
    text = raw.strip()
    if not text:
        raise InvalidPhone("the phone number is empty")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = _PARSE_ERRORS.get(exc.error_type, "is not a phone number")
        raise InvalidPhone(f"the phone number {why}") from None
    if not phonenumbers.is_valid_number(parsed):
        digits = sum(c.isdigit() for c in text)
        raise InvalidPhone(
            f"the phone number ({how_many(digits, 'digit')}) is not a valid number"
            f" for country code +{parsed.country_code}"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def contact_phone(raw: str) -> str:
    """A received number as a contact keeps it: in E.164 when it is valid, else as it came (a
    sink that would write to it refuses it then, saying why: `sinks.base.customer_phone`)."""
    try:
        return normalize_phone(raw)
    except InvalidPhone:
        return raw
