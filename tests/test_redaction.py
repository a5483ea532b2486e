"""`Redactor`: what never reaches a log line, an attempt row or an error message."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from gateway.redaction import Redactor

SLACK = "https://hooks.slack.com/services/T0AAA/B0BBB/abcdefSECRET123"


def test_given_secrets_are_masked_in_every_usual_encoding() -> None:
    r = Redactor(["tok-1234567", SLACK])
    assert r.redact("token tok-1234567 sent") == "token *** sent"
    assert r.redact(f"url={quote(SLACK, safe='')}") == "url=https://hooks.slack.com/***"
    echoed = json.dumps({"url": SLACK}).replace("/", "\\/")  # PHP-style JSON
    assert "abcdefSECRET123" not in r.redact(echoed)
    assert r.redact(f"posting to {SLACK} failed") == "posting to https://hooks.slack.com/*** failed"


def test_whsec_secrets_are_masked_with_and_without_their_prefix() -> None:
    r = Redactor(["whsec_c2VjcmV0LWtleS1ieXRlcw=="])
    assert r.redact("key c2VjcmV0LWtleS1ieXRlcw== used") == "key *** used"
    assert r.redact("whsec_c2VjcmV0LWtleS1ieXRlcw==") == "***"


def test_short_values_are_not_treated_as_secrets() -> None:
    assert Redactor(["", "id", "abc"]).redact("id abc") == "id abc"


def test_a_longer_secret_wins_over_a_shorter_one_inside_it() -> None:
    r = Redactor(["abcd", "abcdefgh"])
    assert r.redact("abcdefgh") == "***"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://erp:hunter22@erp.example.com/h", "https://erp:***@erp.example.com/h"),
        ("postgres://app:pw@db:5432/kabarin", "postgres://app:***@db:5432/kabarin"),
        ("Authorization: Bearer eyJhbGciOi.J9.x-y_z", "Authorization: Bearer ***"),
        ("authorization: basic dXNlcjpwYXNz", "authorization: basic ***"),
        ("GET /x?token=abc123&page=2", "GET /x?token=***&page=2"),
        ("https://a.b/c?api_key=zz9#frag", "https://a.b/c?api_key=***#frag"),
        (SLACK, "https://hooks.slack.com/services/***"),
        ("hooks.slack.com\\/services\\/T0\\/B0\\/xyz", "hooks.slack.com\\/services\\/***"),
        ("bot xoxb-1234-5678-abcdEFGH", "bot xoxb-***"),
        ('{"Authorization": "Token abc.def"}', '{"Authorization": "Token ***"}'),
        ("curl -H 'authorization=s3cr3t'", "curl -H 'authorization=***'"),
        ("sent Bearer abcdef123 to peer", "sent Bearer *** to peer"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***"),
    ],
)
def test_credential_shapes_are_masked_without_being_given(text: str, expected: str) -> None:
    assert Redactor([]).redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HP 081234567890", "HP 0*******7890"),
        ("HP 0812-3456-7890.", "HP 0***-****-7890."),
        ("wa +62 812 3456 7890", "wa +62 *** **** 7890"),
        ("+6281234567890", "+62*******7890"),
        ("6281234567890", "62*******7890"),
        ('"phone":"085712345678"', '"phone":"0*******5678"'),
        ("kantor (021) 555-1234", "kantor (0**) ***-1234"),
        ("0812345678", "0*****5678"),
        ("081234567", "0*****567"),
    ],
)
def test_indonesian_phone_numbers_keep_only_their_last_digits(text: str, expected: str) -> None:
    assert Redactor([]).redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "order OID-40592020 awb JP6281234567890",
        "2024-01-10T08:21:28.301662Z",
        "shipped_at 2022-05-05 00:00:00",
        "ongkir Rp34.000 (34000)",
        "webhook-timestamp 1674087231",
        "ratio 0.12345678",
        "GK-11-3114100",
        "evt_0123456789abcdef01234567",
        "invalid token provided, basic information is missing",
        "no authorization needed",
    ],
)
def test_ordinary_shipment_text_is_left_alone(text: str) -> None:
    assert Redactor(["unrelated-secret"]).redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    r = Redactor([SLACK, "tok-1234567"])
    text = f"{SLACK} tok-1234567 https://u:p@h/ Bearer abc 081234567890"
    once = r.redact(text)
    assert r.redact(once) == once


def test_repr_does_not_show_the_secrets() -> None:
    assert "tok-1234567" not in repr(Redactor(["tok-1234567"]))
