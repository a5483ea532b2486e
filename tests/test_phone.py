"""Phone numbers as shops store them, normalised to E.164."""

from __future__ import annotations

import pytest

from gateway.phone import InvalidPhone, contact_phone, normalize_phone


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("081234567890", "+6281234567890"),
        ("0812-3456-7890", "+6281234567890"),
        ("0812 3456 7890", "+6281234567890"),
        ("6281234567890", "+6281234567890"),
        ("62 812 3456 7890", "+6281234567890"),
        ("+6281234567890", "+6281234567890"),
        ("+62 812-3456-7890", "+6281234567890"),
        ("+62 (812) 3456.7890", "+6281234567890"),
        ("  0857 1234 5678 ", "+6285712345678"),
        ("(021) 555-1234", "+62215551234"),
        ("+1 650 253 0000", "+16502530000"),
        ("+65 8123 4567", "+6581234567"),
    ],
)
def test_numbers_are_normalised_to_e164(raw: str, e164: str) -> None:
    assert normalize_phone(raw) == e164


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("bukan nomor", "not a phone number"),
        ("0812345", "not a valid number for country code +62"),
        ("0000", "not a valid number"),
        ("+999 1234 5678", "unknown country code"),
        ("+62 812 3456 7890 1234 5678", "too long"),
    ],
)
def test_invalid_numbers_say_why_without_repeating_the_number(raw: str, why: str) -> None:
    with pytest.raises(InvalidPhone) as caught:
        normalize_phone(raw)
    assert why in str(caught.value)
    if raw.strip():
        assert raw.strip() not in str(caught.value)


def test_a_received_number_is_kept_in_e164_and_one_that_is_not_valid_as_it_came() -> None:
    """What a push, a pull or a lookup gives: in the form the sinks send to, so the admin API
    shows that; a number that cannot be one is kept for the sink to refuse, saying why."""
    assert contact_phone("081229917190") == "+6281229917190"
    assert contact_phone("+62 812-2991-7190") == "+6281229917190"
    assert contact_phone("0812") == "0812"
    assert contact_phone("bukan nomor") == "bukan nomor"
