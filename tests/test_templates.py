"""Templates: the sandbox, the filters, resolution, and `check_templates` at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from gateway.check import check_templates, validate_file
from gateway.config import Config, parse_config
from gateway.delivery.model import NewDelivery
from gateway.errors import TemplateError
from gateway.events import Contact, Event, Status
from gateway.routing import Router
from gateway.sources.kiriminaja import decode_push
from gateway.sources.kiriminaja.normalise import normalise
from gateway.templating import (
    Templates,
    decode_parts,
    encode_parts,
    message_language,
    sample_events,
)
from sinks.base import Language, Sink, SinkConfig, SinkDeps
from sinks.console import ConsoleSink
from sinks.registry import build_sinks
from tests.test_shops import PUSH, TWO_SHOPS, two_shops

JAKARTA = ZoneInfo("Asia/Jakarta")
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def event(**changes: Any) -> Event:
    """Finished express order X, delivered at 2022-05-05 00:00:00 Jakarta time."""
    at = datetime(2022, 5, 4, 17, 0, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": "evt_5d0c1b2a39484756a1b2c3d4",
        "source": "push",
        "method": "finished_packages",
        "kind": "express",
        "status": Status.DELIVERED,
        "order_id": "OID-40592020",
        "awb": "JP1234567890",
        "occurred_at": at,
        "received_at": at,
        "details": {"service": "jne", "shipping_price": 34000},
    }
    fields.update(changes)
    return Event(**fields)


def render(
    source: str,
    *,
    e: Event | None = None,
    contact: Contact | None = None,
    language: str = "id",
    tz: str = "Asia/Jakarta",
    route: str = "r",
) -> str:
    return Templates(timezone=ZoneInfo(tz)).render(
        source, event=e or event(), contact=contact, route=route, language=language
    )


def render_error(source: str, **kwargs: Any) -> str:
    with pytest.raises(TemplateError) as info:
        render(source, **kwargs)
    return str(info.value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "Rp0"),
        (34000, "Rp34.000"),
        (1500000, "Rp1.500.000"),
        (None, "-"),
        ("34000", "Rp34.000"),
        (" 1500000 ", "Rp1.500.000"),
        (34000.0, "Rp34.000"),
        (1500000.5, "Rp1.500.000,50"),
        (-2500, "-Rp2.500"),
        ("gratis", "gratis"),
    ],
)
def test_rupiah(value: Any, text: str) -> None:
    assert render("{{ event.details.v | rupiah }}", e=event(details={"v": value})) == text


@pytest.mark.parametrize(
    ("tz", "language", "text"),
    [
        ("Asia/Jakarta", "id", "05 Mei 2022 00:00 WIB"),
        ("Asia/Jakarta", "en", "05 May 2022 00:00 WIB"),
        ("Asia/Pontianak", "id", "05 Mei 2022 00:00 WIB"),
        ("Asia/Makassar", "id", "05 Mei 2022 01:00 WITA"),
        ("Asia/Jayapura", "en", "05 May 2022 02:00 WIT"),
        ("Europe/London", "en", "04 May 2022 18:00 BST"),
        ("UTC", "id", "04 Mei 2022 17:00 UTC"),
    ],
)
def test_localtime_in_the_receivers_zone(tz: str, language: str, text: str) -> None:
    assert render("{{ event.occurred_at | localtime }}", tz=tz, language=language) == text


def test_localtime_with_a_format_strings_and_none() -> None:
    e = event(details={"cancel_date": "2024-01-10T08:18:05.000000Z", "none": None, "x": "soon"})
    assert render("{{ event.occurred_at | localtime('%A, %d %B %Y %H.%M %Z') }}") == (
        "Kamis, 05 Mei 2022 00.00 WIB"
    )
    assert render("{{ event.occurred_at | localtime('%a %d/%m %H:%M %Z %%') }}", language="en") == (
        "Thu 05/05 00:00 WIB %"
    )
    assert render("{{ event.details.cancel_date | localtime }}", e=e) == "10 Jan 2024 15:18 WIB"
    assert render("{{ event.details.none | localtime }}", e=e) == "-"
    assert render("{{ event.details.x | localtime }}", e=e) == "soon"
    naive = event(occurred_at=datetime(2022, 8, 17, 10, 0))
    assert render("{{ event.occurred_at | localtime }}", e=naive) == "17 Agu 2022 10:00 WIB"


LABELS = {
    Status.PROCESSED: ("Diproses", "Processed"),
    Status.VALIDATED: ("Divalidasi", "Validated"),
    Status.SHIPPED: ("Dikirim", "Shipped"),
    Status.PICKED_UP: ("Diambil kurir", "Picked up"),
    Status.IN_TRANSIT: ("Dalam perjalanan", "In transit"),
    Status.DELIVERED: ("Terkirim", "Delivered"),
    Status.CANCELED: ("Dibatalkan", "Canceled"),
    Status.REJECTED: ("Ditolak", "Rejected"),
    Status.PROBLEM: ("Bermasalah", "Problem"),
    Status.NO_DRIVER: ("Driver tidak ditemukan", "No driver"),
    Status.RETURNING: ("Dalam pengembalian", "Returning"),
    Status.RETURNED: ("Dikembalikan", "Returned"),
    Status.STUCK: ("Tertahan", "Stuck"),
    Status.UNKNOWN: ("Tidak diketahui", "Unknown"),
}


def test_every_status_has_a_label_table_entry() -> None:
    assert set(LABELS) == set(Status)


@pytest.mark.parametrize("status", list(Status))
def test_status_label_in_both_languages(status: Status) -> None:
    id_label, en_label = LABELS[status]
    e = event(status=status)
    assert render("{{ event.status | status_label }}", e=e, language="id") == id_label
    assert render("{{ event.status | status_label }}", e=e, language="en") == en_label
    assert render("{{ event.status | status_label('en') }}", e=e, language="id") == en_label
    assert render("{{ event.details.s | status_label }}", e=event(details={"s": status.value})) == (
        id_label
    )


def test_an_unknown_status_text_is_shown_as_is() -> None:
    assert render("{{ event.details.s | status_label }}", e=event(details={"s": "lost"})) == "lost"


def test_the_context_event_contact_route_and_language() -> None:
    source = (
        "{{ route }}|{{ language }}|{{ event.status }}|{{ event.details.service }}"
        "|{{ event.awb }}|{{ contact.name }}|{{ contact.order_id }}"
    )
    contact = Contact(order_id="OID-40592020", name="Siti", phone="+6281229917190")
    assert render(source, contact=contact, route="ke-pelanggan", language="en") == (
        "ke-pelanggan|en|delivered|jne|JP1234567890|Siti|OID-40592020"
    )


def test_no_contact_is_falsy_with_none_fields_and_none_renders_empty() -> None:
    source = (
        "[{{ contact.name }}][{{ contact.phone }}][{{ event.awb }}]"
        "{% if contact %}ada{% else %}{{ contact.name or 'Pelanggan' }}{% endif %}"
        "{{ ' kosong' if contact.email is none }}"
    )
    assert render(source, e=event(awb=None)) == "[][][]Pelanggan kosong"


def test_details_keys_win_over_dict_methods_and_nested_dicts_work() -> None:
    e = event(details={"items": 3, "driver": {"name": "Budi"}})
    assert render("{{ event.details.items }} {{ event.details.driver.name }}", e=e) == "3 Budi"


def test_no_autoescape_messages_are_text() -> None:
    e = event(reason="<b>Alamat & nomor</b> salah")
    assert render("{{ event.reason }}", e=e) == "<b>Alamat & nomor</b> salah"


def test_a_typo_is_a_template_error_with_its_line() -> None:
    assert render_error("Pesanan {{ event.order_id }}\nResi {{ event.awbb }}") == (
        "line 2: 'Event object' has no attribute 'awbb'"
    )
    assert render_error("{{ event.details.ongkir | rupiah }}") == (
        "line 1: 'dict object' has no attribute 'ongkir'"
    )
    assert render_error("a\n\n{{ evnt.order_id }}") == "line 3: 'evnt' is undefined"
    assert render_error("{{ event.order_id | rupia }}") == "line 1: No filter named 'rupia'."
    assert render_error("ok\n{% if event.awb %}no end") == (
        "line 2: Unexpected end of template. Jinja was looking for the following tags: "
        "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'."
    )


@pytest.mark.parametrize(
    "source",
    [
        "{{ event.__class__.__mro__ }}",
        "{{ event.details.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ event.details.update({'service': 'hacked'}) }}",
        "{{ event.details.pop('service') }}",
    ],
)
def test_the_sandbox_blocks_internals_and_mutation(source: str) -> None:
    e = event()
    message = render_error(source, e=e)
    assert message.startswith("line 1: access to attribute '") and message.endswith(
        "object is unsafe."
    )
    assert e.details == {"service": "jne", "shipping_price": 34000}


def test_compiled_templates_are_cached_by_source() -> None:
    templates = Templates(timezone=JAKARTA)
    assert templates.compile("{{ route }}") is templates.compile("{{ route }}")
    assert templates.compile("{{ route }}") is not templates.compile("{{ route }} ")


def config(yaml_routes: str = "", sinks: str = "", base_dir: Path | None = None) -> Config:
    text = (
        "receiver: {token: t0ken}\nsinks:\n"
        + (sinks or "  console: {type: console}\n")
        + "routes:\n"
        + (yaml_routes or "  - name: all\n    sinks: [console]\n")
    )
    return parse_config(text, base_dir=base_dir, env={})


def built(cfg: Config) -> dict[str, Sink]:
    return build_sinks(cfg.sinks, SinkDeps())


def test_sources_prefer_route_then_sink_then_the_kinds_default_in_its_language() -> None:
    templates = Templates(timezone=JAKARTA)
    sinks = built(
        config(
            sinks=(
                "  id: {type: console}\n  en: {type: console, language: en}\n"
                "  own: {type: console, template: 'Halo {{ event.order_id }}'}\n"
            ),
            yaml_routes="  - name: all\n    sinks: [id, en, own]\n",
        )
    )
    defaults = sinks["id"].default_templates["text"]
    assert templates.sources({"text": "X"}, sinks["own"]) == {"text": "X"}
    assert templates.sources({}, sinks["own"]) == {"text": "Halo {{ event.order_id }}"}
    assert templates.sources({}, sinks["id"]) == {"text": defaults["id"]}
    assert templates.sources({}, sinks["en"]) == {"text": defaults["en"]}
    assert render(templates.sources({}, sinks["en"])["text"], language="en") == (
        "Delivered: order OID-40592020 (AWB JP1234567890), 05 May 2022 00:00 WIB"
    )


def test_a_customer_message_is_written_in_the_customers_registered_language() -> None:
    templates = Templates(timezone=JAKARTA)
    sinks = built(
        config(
            sinks=(
                "  sms: {type: sms, provider: zenziva, userkey: u, passkey: p, language: id}\n"
                "  staff: {type: console, language: id}\n"
                "  shop-mail: {type: email, host: h, from: a@b.id, to: [c@b.id], tls: none}\n"
                "  cust-mail: {type: email, host: h, from: a@b.id, to: customer, tls: none}\n"
            ),
            yaml_routes="  - name: all\n    sinks: [sms, staff, shop-mail, cust-mail]\n",
        )
    )
    english = Contact(order_id="OID-40592020", phone="081234567890", language="en")
    unknown = Contact(order_id="OID-40592020", phone="081234567890", language="fr")
    assert message_language(sinks["sms"], english) == "en"
    assert message_language(sinks["cust-mail"], english) == "en"
    assert message_language(sinks["staff"], english) == "id"  # the shop's staff, not the customer
    assert message_language(sinks["shop-mail"], english) == "id"
    assert message_language(sinks["sms"], unknown) == "id"
    assert message_language(sinks["sms"], None) == "id"
    delivery = NewDelivery(id="dlv_1", event_id="evt_1", route="all", sink="sms", ordering="latest")
    text = templates.message(sinks["sms"], delivery, event=event(), contact=english).text
    assert "Delivered" in text and "Terkirim" not in text


def test_a_file_template_renders_from_the_route(tmp_path: Path) -> None:
    (tmp_path / "pelanggan.j2").write_text(
        "Halo {{ contact.name or 'Kak' }},\npaket {{ event.order_id }} "
        "{{ event.status | status_label | lower }} {{ event.occurred_at | localtime }}.\n",
        encoding="utf-8",
    )
    cfg = config(
        "  - name: pelanggan\n    sinks: [console]\n    template:\n"
        "      console: {file: pelanggan.j2}\n",
        base_dir=tmp_path,
    )
    delivery = Router.from_config(cfg).deliveries(event())[0]
    templates = Templates(timezone=cfg.receiver.tz)
    sink = built(cfg)["console"]
    text = templates.message(sink, delivery, event=event(), contact=None).text
    assert text == "Halo Kak,\npaket OID-40592020 terkirim 05 Mei 2022 00:00 WIB."


def test_sample_events_one_per_status_with_every_detail() -> None:
    samples = sample_events()
    assert [e.status for e in samples] == list(Status)
    assert {e.kind for e in samples} == {"express", "instant"}
    assert len({e.id for e in samples}) == len(samples)
    for e in samples:
        assert e.awb and e.reason and e.occurred_at.tzinfo is not None
        assert {"service", "shipping_price", "tracking_url", "driver"} <= set(e.details)
    assert sample_events() == samples


def check(cfg: Config, sinks: Mapping[str, Sink] | None = None) -> list[str]:
    return check_templates(cfg, Router.from_config(cfg), built(cfg) if sinks is None else sinks)


def test_check_passes_every_builtin_template_in_both_languages() -> None:
    sinks = (
        "  console-id: {type: console}\n  console-en: {type: console, language: en}\n"
        f"  erp: {{type: webhook, url: 'https://erp.example.com/h', secret: {WHSEC}}}\n"
        "  ops-id: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}\n"
        "  ops-en: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/y',"
        " language: en}\n"
    )
    routes = "  - name: all\n    sinks: [console-id, console-en, erp, ops-id, ops-en]\n"
    assert check(config(routes, sinks)) == []


def test_check_reports_a_route_template_typo_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "erp.j2").write_text("{{ event.order_id }}\n{% for %}", encoding="utf-8")
    sinks = (
        "  console: {type: console, template: '{{ event.detail.service }}'}\n"
        f"  erp: {{type: webhook, url: 'https://erp.example.com/h', secret: {WHSEC}}}\n"
    )
    routes = """
  - name: fine
    sinks: [console]
  - name: staff
    match: {status: canceled}
    when: event.details.shiping_price > 50000
    sinks: [console, erp]
    template:
      console: "Batal {{ event.order_id }}\\n{{ contact.name.upper() }}"
      erp: {file: erp.j2}
"""
    assert check(config(routes, sinks, base_dir=tmp_path)) == [
        "sinks.console.template (line 3): line 1: 'Event object' has no attribute 'detail' "
        "(sample processed express event)",
        "routes[1].template.console (line 14): line 2: 'None' has no attribute 'upper' "
        "(sample canceled express event with no contact)",
        "routes[1].template.erp (line 15): line 2: "
        "Expected an expression, got 'end of statement block'",
        "routes[1].when (line 11): fails on every sample event: 'dict object' has no attribute "
        "'shiping_price'",
    ]


SLACK = "  ops-slack: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}\n"


def test_check_renders_against_the_minimal_pushes_a_route_can_receive() -> None:
    routes = """\
  - name: cancel-alerts
    match: {status: canceled}
    sinks: [ops-slack]
    template:
      ops-slack: "Batal {{ event.order_id }} ({{ event.details.shipping_price | rupiah }})"
"""
    assert check(config(routes, SLACK)) == [
        "routes[0].template.ops-slack (line 9): route cancel-alerts, sink ops-slack: "
        "`event.details.shipping_price` is missing for status canceled (minimal "
        "canceled_packages push); guard it with `| default(...)` or "
        "`{% if event.details.shipping_price is defined %}`"
    ]


def test_a_fallback_sinks_route_template_is_checked_against_the_routes_events() -> None:
    sinks = SLACK + (
        "  ops-slack-2: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/y'}\n"
    )
    routes = """\
  - name: cancel-alerts
    match: {status: canceled}
    sinks: [ops-slack]
    fallback: {ops-slack: ops-slack-2}
    template:
      ops-slack-2: "Batal {{ event.order_id }} ({{ event.details.shipping_price | rupiah }})"
"""
    assert check(config(routes, sinks)) == [
        "routes[0].template.ops-slack-2 (line 11): route cancel-alerts, sink ops-slack-2: "
        "`event.details.shipping_price` is missing for status canceled (minimal "
        "canceled_packages push); guard it with `| default(...)` or "
        "`{% if event.details.shipping_price is defined %}`"
    ]


def test_a_sink_template_is_checked_against_the_events_of_the_routes_using_it() -> None:
    sinks = (
        "  ops-slack: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x',"
        " template: '{{ event.awb }} {{ event.details.sorting_code }}'}\n"
    )
    routes = "  - name: processed\n    match: {status: processed}\n    sinks: [ops-slack]\n"
    assert check(config(routes, sinks)) == []  # a processed push always carries sorting_code
    everything = "  - name: all\n    sinks: [ops-slack]\n"
    assert check(config(everything, sinks)) == [
        "sinks.ops-slack.template (line 3): route all, sink ops-slack: "
        "`event.details.sorting_code` is missing for status validated (minimal "
        "validated_packages push), and for status shipped, canceled, delivered, rejected, "
        "problem, returning, returned, picked_up, in_transit, no_driver, unknown; "
        "guard it with `| default(...)` or "
        "`{% if event.details.sorting_code is defined %}`"
    ]


def test_guarded_templates_and_a_guarding_when_pass() -> None:
    routes = """\
  - name: cancel-alerts
    match: {status: canceled}
    sinks: [ops-slack]
    template:
      ops-slack: "{{ event.details.shipping_price | default(0) | rupiah }}"
  - name: costly
    match: {status: canceled}
    when: event.details.shipping_price is defined and event.details.shipping_price > 50000
    sinks: [ops-slack]
    template:
      ops-slack: "{{ event.details.shipping_price | rupiah }}"
"""
    assert check(config(routes, SLACK)) == []


def test_a_when_that_fails_on_a_missing_key_is_reported() -> None:
    routes = """\
  - name: costly
    match: {status: canceled}
    when: event.details.shipping_price > 50000
    sinks: [ops-slack]
"""
    assert check(config(routes, SLACK)) == [
        "routes[0].when (line 7): route costly: `event.details.shipping_price` is missing "
        "for status canceled (minimal canceled_packages push); guard it with "
        "`| default(...)` or `event.details.shipping_price is defined and ...`"
    ]


INSTANT_NOT_GOSEND = """\
  - name: costly
    match:
      kind: instant
      status: [canceled, rejected]
      details.service: {not: gosend}
      awb: {regex: "GK-.*"}
    when: %s
    sinks: [ops-slack]
    template:
      ops-slack: "Batal {{ event.order_id }} ({{ event.details.shipping_price | rupiah }})"
"""


def test_a_when_is_judged_only_on_events_its_match_lets_through() -> None:
    # No sample passes this match as it is (every instant sample is a gosend one): the full
    # samples changed to pass it are the ones judged, never those of other statuses.
    when = "event.details.shipping_price > 50000"
    assert check(config(INSTANT_NOT_GOSEND % when, SLACK)) == []
    assert check(config(INSTANT_NOT_GOSEND % "event.details.shiping_price > 50000", SLACK)) == [
        "routes[0].when (line 11): fails on every sample event: 'dict object' has no attribute "
        "'shiping_price'"
    ]
    partly = "event.status == 'rejected' or event.details.note"
    assert check(config(INSTANT_NOT_GOSEND % partly, SLACK)) == [
        "routes[0].when (line 11): route costly: `event.details.note` is missing for status "
        "canceled (sample canceled instant event made to pass the match); guard it with "
        "`| default(...)` or `event.details.note is defined and ...`"
    ]


DOCS = Path(__file__).resolve().parents[1] / "docs"


def docs_yaml(start: str) -> str:
    """The YAML example of docs/ that starts with `start`."""
    text = "".join(p.read_text(encoding="utf-8") for p in sorted(DOCS.rglob("*.md")))
    blocks: list[str] = re.findall(r"```yaml\n(.*?)```", text, re.S)
    found = [b for b in blocks if b.startswith(start)]
    assert len(found) == 1, start
    return found[0]


def test_the_docs_routes_example_passes_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Routes section's example, with the `erp` and `ops-slack` blocks it sends to, as
    the docs give them."""
    routes = docs_yaml("routes:\n  - name: costly-instant-cancellations\n")
    blocks = [docs_yaml(f"sinks:\n  {name}:\n") for name in ("erp", "ops-slack")]
    sinks = "sinks:\n" + "".join(block.split("\n", 1)[1] for block in blocks)
    monkeypatch.setenv("ERP_WEBHOOK_SECRET", WHSEC)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T000/B000/x")
    path = tmp_path / "config.yaml"
    path.write_text(
        f"receiver: {{token: t0ken}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        + sinks
        + routes,
        encoding="utf-8",
    )
    validate_file(str(path))  # raises ConfigError with every problem


# -- message parts ----------------------------------------------------------------------------


class TwoPartConfig(
    SinkConfig, tag="two-part", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    pass


class TwoPartSink(ConsoleSink):
    """A kind that sends a subject beside its text and ships a built-in text only (the email
    sink's shape)."""

    config_type: ClassVar[type[SinkConfig]] = TwoPartConfig
    parts: ClassVar[tuple[str, ...]] = ("subject", "text")
    default_templates: ClassVar[dict[str, dict[str, str]]] = {
        "text": {"id": "Pesanan {{ event.order_id }}", "en": "Order {{ event.order_id }}"}
    }


def two_part(template: str | dict[str, str] | None = None, language: Language = "id") -> Sink:
    config = TwoPartConfig(template=template, language=language)
    return TwoPartSink("mail", config)  # type: ignore[arg-type]


def test_encoded_parts_round_trip_and_a_text_part_is_stored_as_before() -> None:
    assert encode_parts({}) is None and decode_parts(None) == {}
    assert encode_parts({"text": "Halo {{ x }}"}) == "Halo {{ x }}"
    assert decode_parts("Halo {{ x }}") == {"text": "Halo {{ x }}"}
    parts = {"text": "{{ a }}", "subject": '{"b": "{{ c }}"}'}
    stored = encode_parts(parts)
    assert stored is not None and stored.startswith("{#parts#}")
    assert decode_parts(stored) == parts
    # a text template that looks like JSON is still one text template
    assert decode_parts('{"text": "x"}') == {"text": '{"text": "x"}'}


def test_each_kind_gets_the_parts_it_declares() -> None:
    templates = Templates(timezone=JAKARTA)
    cfg = config(
        "  - name: all\n    sinks: [console, erp, ops]\n",
        "  console: {type: console}\n"
        f"  erp: {{type: webhook, url: 'https://erp.example.com/h', secret: {WHSEC}}}\n"
        "  ops: {type: slack, webhook_url: 'https://hooks.slack.com/services/T/B/x'}\n",
    )
    sinks = built(cfg)
    got = {
        d.sink: templates.message(sinks[d.sink], d, event=event(), contact=None).parts
        for d in Router.from_config(cfg).deliveries(event())
    }
    assert got["erp"] == {}  # the webhook sends the event itself
    assert got["console"] == {
        "text": "Terkirim: pesanan OID-40592020 (resi JP1234567890), 05 Mei 2022 00:00 WIB"
    }
    assert set(got["ops"]) == {"text"} and got["ops"]["text"].startswith("*Terkirim*")


def test_a_part_comes_from_the_route_then_the_block_then_the_kind() -> None:
    templates = Templates(timezone=JAKARTA)
    sink = two_part({"subject": "Paket {{ event.order_id }}", "text": "blok"}, language="en")
    assert templates.sources({"text": "rute"}, sink) == {
        "subject": "Paket {{ event.order_id }}",
        "text": "rute",
    }
    sink = two_part({"subject": "S"}, language="en")
    assert templates.sources({}, sink) == {"subject": "S", "text": "Order {{ event.order_id }}"}
    with pytest.raises(TemplateError, match=r"no `subject` template: sink 'mail' needs one"):
        templates.sources({}, two_part())


def test_a_route_and_a_sink_block_may_give_several_parts() -> None:
    cfg = config(
        "  - name: all\n    sinks: [console]\n    template:\n"
        "      console: {text: 'Rute {{ event.order_id }}', subject: 'Subjek'}\n",
        "  console: {type: console, template: {text: 'Blok', subject: 'Blok subjek'}}\n",
    )
    (delivery,) = Router.from_config(cfg).deliveries(event())
    assert decode_parts(delivery.template) == {
        "text": "Rute {{ event.order_id }}",
        "subject": "Subjek",
    }
    assert cfg.sinks["console"].template_parts == {"text": "Blok", "subject": "Blok subjek"}
    sink = built(cfg)["console"]
    message = Templates(timezone=JAKARTA).message(sink, delivery, event=event(), contact=None)
    assert message.parts == {"text": "Rute OID-40592020"}  # console sends no subject
    assert message.text == "Rute OID-40592020"


def test_a_part_that_fails_to_render_names_itself() -> None:
    templates = Templates(timezone=JAKARTA)
    sink = two_part({"subject": "{{ nope }}"})
    with pytest.raises(TemplateError, match=r"^subject part, line 1: 'nope' is undefined"):
        templates.render_parts(
            templates.sources({}, sink), event=event(), contact=None, route="r", language="id"
        )


def test_check_checks_every_part_and_names_a_missing_one() -> None:
    cfg = config(
        "  - name: all\n    sinks: [console]\n    template:\n"
        "      console: {text: 'ok', subject: '{{ event.nope }}'}\n",
    )
    assert check(cfg) == [
        "routes[0].template.console.subject (line 8): line 1: 'Event object' has no attribute "
        "'nope' (sample processed express event)"
    ]
    sinks = {"mail": two_part()}
    cfg = config("  - name: all\n    sinks: [mail]\n", "  mail: {type: console}\n")
    assert check(cfg, sinks) == [
        "sinks.mail (line 3) (built-in subject template): no `subject` template: "
        "sink 'mail' needs one"
    ]


def test_times_are_written_in_the_shops_zone_and_shops_follow_a_reload() -> None:
    templates = Templates.for_config(two_shops())
    source = "{{ shop.name }}: {{ event.occurred_at | localtime('%H:%M %Z') }}"
    seen = []
    for shop in ("toko-a", "toko-b"):
        (e,) = normalise(decode_push(PUSH), received_at=datetime.now(UTC), tz=UTC, shop=shop).events
        seen.append(templates.render(source, event=e, contact=None, route="r", language="id"))
    # toko-a keeps receiver.timezone (WIB); toko-b's own zone is Asia/Makassar (WITA).
    assert seen == ["Toko A: 22:00 WIB", "toko-b: 23:00 WITA"]
    # A reload that renames a shop or moves its zone builds new templates; one that does not
    # keeps the running ones (and what they compiled).
    renamed = Templates.for_config(
        parse_config(TWO_SHOPS.replace("name: Toko A", "name: Toko A Baru"), env={})
    )
    assert not renamed.same_setup(templates)
    assert Templates.for_config(two_shops()).same_setup(templates)
