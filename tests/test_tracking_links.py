"""Tracking page links: signed tokens (tampering, expiry, compactness), the ``tracking_page``
configuration and its checks, ``shops.<id>.brand``, and ``tracking_url`` in templates."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.config import parse_config
from gateway.delivery.model import NewDelivery
from gateway.errors import ConfigError
from gateway.events import Contact, Event, Status
from gateway.shops import Shops
from gateway.templating import Templates
from gateway.tracking_page import Expired, LinkSigner, Tampered
from sinks.base import SinkDeps
from sinks.registry import build_sinks

SECRET = "s" * 32
NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
SIGNER = LinkSigner(SECRET, "https://lacak.toko.example/", 60 * 86400)

PAGE = """
receiver: {token: t0ken}
tracking_page:
  enabled: true
  secret: ${TRACKING_SECRET}
  public_url: https://lacak.toko.example
  link_ttl: 60d
  brand:
    {name: Toko Sari, color: "#0a7f5a", logo_url: https://toko.example/logo.png,
     whatsapp: "+6281299990000"}
"""


def test_a_token_names_its_shop_order_and_expiry_and_is_compact() -> None:
    token = SIGNER.sign("default", "ORD-2026-0001", NOW + timedelta(days=60))
    assert len(token) == 48 and "=" not in token
    link = SIGNER.verify(token, now=NOW)
    assert (link.shop, link.order_id) == ("default", "ORD-2026-0001")
    assert link.expires == NOW + timedelta(days=60)
    other = SIGNER.verify(SIGNER.sign("toko-b", "Ünï 7", NOW + timedelta(days=1)), now=NOW)
    assert (other.shop, other.order_id) == ("toko-b", "Ünï 7")


def test_a_url_is_under_public_url_and_works_for_link_ttl() -> None:
    url = SIGNER.url("default", "A-1", made_at=NOW)
    assert url.startswith("https://lacak.toko.example/t/")
    token = url.rsplit("/", 1)[1]
    assert SIGNER.verify(token, now=NOW + timedelta(days=59)).order_id == "A-1"
    with pytest.raises(Expired) as info:
        SIGNER.verify(token, now=NOW + timedelta(days=60))
    assert info.value.link.order_id == "A-1"


def _flip(token: str, index: int) -> str:
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[index] ^= 0x01
    return base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()


@pytest.mark.parametrize("index", [0, 1, 5, 6, 8, -1, -16])
def test_any_changed_byte_is_tampered(index: int) -> None:
    token = SIGNER.sign("default", "ORD-1", NOW + timedelta(days=1))
    with pytest.raises(Tampered):
        SIGNER.verify(_flip(token, index), now=NOW)


def test_an_expired_token_with_a_bad_signature_is_tampered_not_expired() -> None:
    token = SIGNER.sign("default", "ORD-1", NOW - timedelta(days=1))
    with pytest.raises(Expired):
        SIGNER.verify(token, now=NOW)
    with pytest.raises(Tampered):
        SIGNER.verify(_flip(token, 3), now=NOW)


@pytest.mark.parametrize(
    "token", ["", "x", "!!!!", "a" * 2000, "ąąą", "AAAAAAAAAAAAAAAAAAAAAAAAAAAA"]
)
def test_garbage_is_tampered(token: str) -> None:
    with pytest.raises(Tampered):
        SIGNER.verify(token, now=NOW)


def test_another_secret_does_not_verify() -> None:
    token = SIGNER.sign("default", "ORD-1", NOW + timedelta(days=1))
    with pytest.raises(Tampered):
        LinkSigner("t" * 32, "https://x.example", 60).verify(token, now=NOW)


def test_the_section_reads_and_its_secret_is_masked() -> None:
    config = parse_config(PAGE, env={"TRACKING_SECRET": SECRET})
    page = config.tracking_page
    assert page.enabled and float(page.link_ttl) == 60 * 86400
    assert page.brand.name == "Toko Sari" and page.brand.wa_number == "6281299990000"
    assert SECRET in config.secrets


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("${TRACKING_SECRET}", "short"), "tracking_page.secret (line 5): must be at least 32"),
        (("public_url: https://lacak.toko.example", "public_url: lacak"), "absolute http"),
        (("link_ttl: 60d", "link_ttl: 0s"), "tracking_page.link_ttl (line 7): must be positive"),
        (("#0a7f5a", "green"), "tracking_page.brand.color (line 9): must be a colour"),
        (
            ("  public_url: https://lacak.toko.example\n", ""),
            "public_url (line 3): required when the page is enabled",
        ),
        (('"+6281299990000"', "call us"), "whatsapp"),
    ],
)
def test_the_section_is_checked(change: tuple[str, str], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(PAGE.replace(*change), env={"TRACKING_SECRET": SECRET})
    assert any(problem in p for p in info.value.problems), info.value.problems


def test_a_shops_brand_overrides_the_default_key_by_key() -> None:
    text = f"""
shops:
  toko-a: {{token: key-a, name: Toko A, brand: {{color: "#123"}}}}
  toko-b: {{token: key-b, brand: {{name: Butik B, whatsapp: "+62 812 1111 2222"}}}}
  toko-c: {{token: key-c}}
tracking_page:
  enabled: true
  secret: {SECRET}
  public_url: https://lacak.example
  brand: {{color: "#0a7f5a", whatsapp: "+6281299990000"}}
"""
    shops = Shops.from_config(parse_config(text, env={}))
    brands = {s.id: s.brand for s in shops}
    assert (brands["toko-a"].name, brands["toko-a"].color) == ("Toko A", "#123")
    assert brands["toko-a"].wa_number == "6281299990000"
    assert (brands["toko-b"].name, brands["toko-b"].wa_number) == ("Butik B", "6281211112222")
    assert (brands["toko-c"].name, brands["toko-c"].color) == ("toko-c", "#0a7f5a")


def _event(received: datetime) -> Event:
    return Event(
        id="evt_1",
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id="ORD-9",
        awb="JNE1",
        occurred_at=received,
        received_at=received,
    )


def test_templates_get_tracking_url_only_when_the_page_is_enabled() -> None:
    config = parse_config(PAGE, env={"TRACKING_SECRET": SECRET})
    templates = Templates.for_config(config)
    text = templates.render(
        "{{ tracking_url }}", event=_event(NOW), contact=None, route="r", language="id"
    )
    token = text.removeprefix("https://lacak.toko.example/t/")
    link = SIGNER.verify(token, now=NOW)
    assert link.order_id == "ORD-9" and link.expires == NOW + timedelta(days=60)
    off = Templates.for_config(parse_config("receiver: {token: t0ken}\n", env={}))
    assert (
        off.render("{{ tracking_url }}", event=_event(NOW), contact=None, route="r", language="id")
        == ""
    )
    assert not templates.same_setup(off)


CUSTOMER_SINKS = """
sinks:
  wa: {type: whatsapp, provider: fonnte, token: f0nnte}
  sms: {type: sms, provider: zenziva, userkey: u, passkey: p}
  mail:
    type: email
    host: smtp.example
    from: toko@example.id
    to: customer
routes:
  - {name: tell, match: {}, sinks: [wa, sms, mail]}
"""


@pytest.mark.parametrize("enabled", [True, False])
def test_the_default_customer_texts_end_with_the_link_when_the_page_is_on(enabled: bool) -> None:
    # and the console's, a way to see a link locally
    blocks = CUSTOMER_SINKS.replace("[wa, sms, mail]", "[wa, sms, mail, console]")
    text = PAGE + blocks.replace("sinks:\n", "sinks:\n  console: {type: console}\n")
    if not enabled:
        text = text.replace("  enabled: true\n", "  enabled: false\n")
    config = parse_config(text, env={"TRACKING_SECRET": SECRET})
    templates = Templates.for_config(config)
    sinks = build_sinks(config.sinks, SinkDeps(http=None))
    event = _event(NOW)
    url = templates.tracking_url(event)
    assert (url is not None) is enabled
    for name, sink in sinks.items():
        delivery = NewDelivery(id="d1", event_id=event.id, route="tell", sink=name, ordering="all")
        for language in ("id", "en"):
            contact = Contact(order_id="ORD-9", name="Sari", language=language)
            parts = templates.message(sink, delivery, event=event, contact=contact).parts
            for part in ("text", "html") if name == "mail" else ("text",):
                if enabled:
                    assert f"{url}" in parts[part], (name, language, part)
                    if name == "console":
                        assert parts[part].endswith(f": {url}"), (language, parts[part])
                else:
                    assert "/t/" not in parts[part], (name, language, part)


def test_kabarin_check_says_the_page_is_on_and_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    on = (
        PAGE.replace("${TRACKING_SECRET}", SECRET)
        + f"store: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
    )
    for text, line in (
        (on, "  tracking  page on: https://lacak.toko.example/t/<token>, links work 60 days"),
        (on.replace("link_ttl: 60d", "link_ttl: 36h"), "links work 36 hours"),
        (on.replace("enabled: true", "enabled: false"), None),
    ):
        config.write_text(text)
        assert main(["check", "--config", str(config)]) == 0
        out = capsys.readouterr().out
        if line is None:
            assert "tracking" not in out
        else:
            assert line in out and SECRET not in out
