"""`gateway.redaction`: what never reaches a log line, an attempt row or an error message."""

from __future__ import annotations

import io
import json
import logging
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from gateway.cli import main
from gateway.config import parse_config
from gateway.redaction import (
    LogRedaction,
    Redactor,
    install_log_redaction,
    is_secret_key,
    mask_config,
    mask_email,
    mask_phone,
    mask_url,
    redact_text,
    secret_values,
    url_secrets,
    use_log_secrets,
)
from gateway.runtime import open_runtime

_WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK = "https://hooks.slack.com/services/T0AAA/B0BBB/abcdefSECRET123"
EXAMPLE_CONFIG = Path(__file__).resolve().parents[1] / "config.example.yaml"


def test_given_secrets_are_masked_in_every_usual_encoding() -> None:
    r = Redactor(["tok-1234567", SLACK])
    assert r.redact("token tok-1234567 sent") == "token *** sent"
    assert r.redact(f"url={quote(SLACK, safe='')}") == "url=https://hooks.slack.com/***"
    echoed = json.dumps({"url": SLACK}).replace("/", "\\/")  # PHP-style JSON
    assert "abcdefSECRET123" not in r.redact(echoed)
    assert r.redact(f"posting to {SLACK} failed") == "posting to https://hooks.slack.com/*** failed"
    assert redact_text("token tok-1234567 sent", ["tok-1234567"]) == "token *** sent"


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
        ("https://a.b/c?page=1&X-Api-Key=zz9", "https://a.b/c?page=1&X-Api-Key=***"),
        ("https://a.b/c?sig=0a1b2c&v=1", "https://a.b/c?sig=***&v=1"),
        ("https://a.b/cb?code=4/0AX4Xf", "https://a.b/cb?code=***"),
        ("https://a.b/c?access_token=ya29.a0", "https://a.b/c?access_token=***"),
        (SLACK, "https://hooks.slack.com/services/***"),
        ("hooks.slack.com\\/services\\/T0\\/B0\\/xyz", "hooks.slack.com\\/services\\/***"),
        (
            "https://hooks.slack.com/workflows/T0/A0/123/abc",
            "https://hooks.slack.com/workflows/***",
        ),
        ("bot xoxb-1234-5678-abcdEFGH", "bot xoxb-***"),
        ('{"Authorization": "Token abc.def"}', '{"Authorization": "Token ***"}'),
        ("curl -H 'authorization=s3cr3t'", "curl -H 'authorization=***'"),
        ("sent Bearer abcdef123 to peer", "sent Bearer *** to peer"),
        ("bearer abcdefghijklmnopqrst.", "bearer ***"),  # 16+ letters: a token
        ("bearer AbCdEfGhIj", "bearer ***"),  # mixed case
        ("Bearer secret1.", "Bearer ***"),  # a digit
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_***"),
    ],
)
def test_credential_shapes_are_masked_without_being_given(text: str, expected: str) -> None:
    assert Redactor([]).redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HP 081234567890", "HP 0812*****890"),
        ("HP 0812-3456-7890.", "HP 0812-****-*890."),
        ("HP 0812 3456 7890", "HP 0812 **** *890"),
        ("HP 0812.3456.7890", "HP 0812.****.*890"),
        ("wa +62 812 3456 7890", "wa +62 812 **** *890"),
        ("wa +62 812-3456-7890", "wa +62 812-****-*890"),
        ("wa +62 (812) 3456.7890", "wa +62 (812) ****.*890"),
        ("+6281234567890", "+62812*****890"),
        ("6281234567890", "62812*****890"),
        ("62 812 3456 7890", "62 812 **** *890"),
        ('"phone":"085712345678"', '"phone":"0857*****678"'),
        ("kantor (021) 555-1234", "kantor (021) 5**-*234"),
        ("0812345678", "0812***678"),
        ("081234567", "0812**567"),
        (
            "hubungi 081298765432 atau 0857-1234-5678 ya",
            "hubungi 0812*****432 atau 0857-****-*678 ya",
        ),
    ],
)
def test_indonesian_phone_numbers_in_free_text(text: str, expected: str) -> None:
    assert Redactor([]).redact(text) == expected


@pytest.mark.parametrize(
    ("phone", "expected"),
    [
        ("081234567890", "0812*****890"),
        ("+6281234567890", "+62812*****890"),
        ("+62 812-3456-7890", "+62 812-****-*890"),
        ("+1 415 555 0100", "+* *** *** *100"),  # not Indonesian: only the last 3 digits stay
        ("+65 8123 4567", "+** **** *567"),
        ("12345", "***45"),
        ("", ""),
    ],
)
def test_mask_phone(phone: str, expected: str) -> None:
    assert mask_phone(phone) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("budi@example.com", "b***@example.com"),
        ("email Budi.Santoso+toko@mail.co.id, ok", "email B***@mail.co.id, ok"),
        ('{"email":"siti_r@toko.id"}', '{"email":"s***@toko.id"}'),
        ("x@y.io", "x***@y.io"),
    ],
)
def test_emails_in_free_text_keep_their_first_letter_and_domain(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("To=%2B6281234567890&From=KABARIN", "To=%2B62812*****890&From=KABARIN"),
        ("?to=%2B6281234567890", "?to=%2B62812*****890"),
        ("Body=hubungi+081234567890+ya", "Body=hubungi+0812*****890+ya"),
        ("msg=wa+%2B62+812-3456-7890", "msg=wa+%2B62+812-****-*890"),
        ("email=budi.santoso%40example.com&x=1", "email=b***%40example.com&x=1"),
        ("email%3Dbudi%2Btoko%40mail.co.id", "email%3Db***%40mail.co.id"),
        ("Body=HP+0812+3456+7890", "Body=HP+0812+****+*890"),
        ('"text":"Halo\\n081234567890"', '"text":"Halo\\n0812*****890"'),
        ('"to":"\\u002b6281234567890"', '"to":"\\u002b62812*****890"'),
        ("HP%20%280812%29%203456%207890", "HP%20%280812%29%20****%20*890"),
        ("%E2%9C%85%20pesanan%20OID-1001%20100%25", "%E2%9C%85%20pesanan%20OID-1001%20100%25"),
    ],
)
def test_phones_and_emails_are_masked_in_every_encoding(text: str, expected: str) -> None:
    assert redact_text(text) == expected
    assert redact_text(expected) == expected  # masking twice changes nothing


@pytest.mark.parametrize(
    "text",
    [
        "Message-ID: <dlv_01HZX3K9Q2.kabarin@toko.example>",
        "In-Reply-To: <a1.b2@mail.toko.example>",
        "References: <dlv_1.kabarin@toko.example> <dlv_2.kabarin@toko.example>",
        '{"message_id": "<dlv_9.kabarin@toko.example>"}'.replace("_id", "-ID"),
    ],
)
def test_a_message_id_is_not_masked_as_an_address(text: str) -> None:
    assert redact_text(text) == text
    assert redact_text(f"To: budi@example.com\n{text}") == f"To: b***@example.com\n{text}"


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("budi@example.com", "b***@example.com"),
        ("Budi.Santoso+toko@mail.co.id", "B***@mail.co.id"),
        ("root@localhost", "r***@localhost"),  # not an address `redact_text` would see
        ("not an email", "***"),
        ("", "***"),
    ],
)
def test_mask_email(email: str, expected: str) -> None:
    assert mask_email(email) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://kabarin:pa55@db:5432/k", "postgresql://kabarin:***@db:5432/k"),
        ("sqlite:///./k.db", "sqlite:///./k.db"),
        ("sqlite:////var/lib/kabarin/kabarin.db", "sqlite:////var/lib/kabarin/kabarin.db"),
        (
            "https://erp.example.com/h?token=abc&page=2",
            "https://erp.example.com/h?token=***&page=2",
        ),
        (SLACK, "https://hooks.slack.com/services/***"),
    ],
)
def test_mask_url(url: str, expected: str) -> None:
    assert mask_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://toko:pw-r4h4s1a@erp.example.com/h?token=qt-5678&page=1",
            ["pw-r4h4s1a", "dG9rbzpwdy1yNGg0czFh", "qt-5678"],
        ),
        (SLACK, ["/services/T0AAA/B0BBB/abcdefSECRET123", "abcdefSECRET123"]),
        ("https://erp.example.com/hooks/kiriminaja", []),
        ("https://[bad", []),
    ],
)
def test_url_secrets(url: str, expected: list[str]) -> None:
    assert url_secrets(url) == expected


@pytest.mark.parametrize(
    "name",
    [
        "token",
        "secret",
        "webhook_url",
        "api_key",
        "apiKey",
        "X-Api-Key",
        "Authorization",
        "Proxy-Authorization",
        "access_token",
        "smtp_password",
        "passwd",
        "client_credentials",
        "X-Hub-Signature",
        "Cookie",
        "sig",
        "code",
    ],
)
def test_secret_key_names(name: str) -> None:
    assert is_secret_key(name)


@pytest.mark.parametrize(
    "name",
    ["url", "type", "headers", "language", "X-Shop", "timeout", "page", "phone", "country_code"],
)
def test_ordinary_key_names(name: str) -> None:
    assert not is_secret_key(name)


NESTED: dict[str, Any] = {
    "erp": {
        "type": "webhook",
        "url": "https://toko:pw-r4h4s1a@erp.example.com/h?token=qt-5678&page=1",
        "secret": ["whsec_c2VjcmV0LWtleS1ieXRlcw==", "whsec_b2xkLXNlY3JldC1rZXk="],
        "headers": {"Authorization": "Bearer tk-abcdef", "X-Shop": "toko-a"},
        "timeout": 5.0,
    },
    "ops": {"type": "slack", "webhook_url": SLACK, "language": "id"},
    "wa": {"type": "whatsapp", "provider": {"api_key": "fonnte-kkk", "sender": "081234567890"}},
}


def test_secret_values_of_a_nested_config() -> None:
    found = secret_values(NESTED)
    for value in (
        "pw-r4h4s1a",
        "qt-5678",
        "whsec_c2VjcmV0LWtleS1ieXRlcw==",
        "c2VjcmV0LWtleS1ieXRlcw==",
        "whsec_b2xkLXNlY3JldC1rZXk=",
        "Bearer tk-abcdef",
        "tk-abcdef",
        SLACK,
        "abcdefSECRET123",
        "fonnte-kkk",
    ):
        assert value in found, value
    for value in ("toko-a", "webhook", "id", "081234567890", "1"):
        assert value not in found, value


def test_mask_config_of_a_nested_config() -> None:
    assert mask_config(NESTED) == {
        "erp": {
            "type": "webhook",
            "url": "https://toko:***@erp.example.com/h?token=***&page=1",
            "secret": ["***", "***"],
            "headers": {"Authorization": "***", "X-Shop": "toko-a"},
            "timeout": 5.0,
        },
        "ops": {"type": "slack", "webhook_url": "***", "language": "id"},
        "wa": {"type": "whatsapp", "provider": {"api_key": "***", "sender": "0812*****890"}},
    }


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
        "sends your API key as the push's bearer token.",  # a word after "bearer", not a token
        "the bearer token, then the body; Bearer TOKEN as a placeholder",
        "GET /admin/v1/events?order_id=OID-1&limit=50&cursor=20",
        "a @mention and user@localhost",
    ],
)
def test_ordinary_shipment_text_is_left_alone(text: str) -> None:
    assert Redactor(["unrelated-secret"]).redact(text) == text


def test_redacting_twice_changes_nothing_more() -> None:
    r = Redactor([SLACK, "tok-1234567"])
    text = f"{SLACK} tok-1234567 https://u:p@h/ Bearer abc 081234567890 budi@example.com ?key=k1"
    once = r.redact(text)
    assert r.redact(once) == once


def test_repr_does_not_show_the_secrets() -> None:
    assert "tok-1234567" not in repr(Redactor(["tok-1234567"]))


def _logger_to(stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger(f"test.redaction.{id(stream)}")
    logger.propagate = False
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger.handlers = [handler]
    return logger


def test_the_log_filter_masks_secrets_and_phones_in_a_records_args_and_traceback() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream)
    install_log_redaction(logger)
    use_log_secrets(Redactor(["tok-1234567"]), logger)
    try:
        raise RuntimeError("peer echoed tok-1234567 for 081234567890")
    except RuntimeError:
        logger.exception("library says %s to %s", "tok-1234567", "+62 812-3456-7890")
    logged = stream.getvalue()
    assert "library says *** to +62 812-****-*890" in logged
    assert "RuntimeError: peer echoed *** for 0812*****890" in logged  # the traceback too
    assert "tok-1234567" not in logged and "3456" not in logged


def test_installing_twice_adds_one_filter_and_without_secrets_patterns_still_apply() -> None:
    stream = io.StringIO()
    logger = _logger_to(stream)
    install_log_redaction(logger)
    install_log_redaction(logger)
    (handler,) = logger.handlers
    assert sum(isinstance(f, LogRedaction) for f in handler.filters) == 1
    logger.warning("to %s at %s", "budi@example.com", "https://u:pw-1@h.example.com/")
    masked = "to b***@example.com at https://u:***@h.example.com/"
    assert stream.getvalue() == f"{logger.name}: {masked}\n"


def test_kabarin_installs_the_log_filter_on_every_handler(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check", "--config", str(EXAMPLE_CONFIG)]) == 0
    assert "OK" in capsys.readouterr().out
    logging.getLogger("some.library").warning("calling %s", "081234567890")
    assert "calling 0812*****890" in caplog.text
    assert "081234567890" not in caplog.text


async def test_opening_the_runtime_tells_the_log_filter_the_configurations_secrets(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks:
  erp: {{type: webhook, url: "https://erp.example.com/h", secret: "{_WHSEC}",
         headers: {{X-Erp-Token: s3ss10n-v4lue}}}}
"""
    )
    install_log_redaction()  # as `kabarin` does, here on pytest's handlers
    async with AsyncExitStack() as stack:
        await open_runtime(config, stack, dispatcher=False)
        logging.getLogger("some.library").warning("t0ken-for-pushes and %s", "s3ss10n-v4lue")
    assert "*** and ***" in caplog.text
    assert "t0ken-for-pushes" not in caplog.text and "s3ss10n-v4lue" not in caplog.text
