"""Grouped routes: the schedule decision, group keys, the configuration, `kabarin check`'s
refusal, and how the default templates of Slack, email, webhook and console render a group."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from standardwebhooks import Webhook

from gateway.check import validate_file
from gateway.config import parse_config
from gateway.delivery.grouping import GroupState, message_due, plan_groups
from gateway.delivery.model import Group, GroupRef, NewDelivery
from gateway.errors import ConfigError
from gateway.events import Event, Status
from gateway.routing import Router
from gateway.templating import Templates
from sinks.base import Delivered
from sinks.email import EmailConfig, build_mail
from sinks.slack import SlackConfig, slack_payload
from tests.test_sinks_shared import WHSEC_A, build_sink, make_event, make_message

T0 = datetime(2024, 5, 5, 9, 0, tzinfo=UTC)


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# -- the schedule: a pure decision, as a table ---------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last_closed", "due", "why"),
    [
        (0, None, 30, "a group's first message waits `wait` after its first event"),
        (100, 0, 300, "the last message closed 100 s ago: the next goes an interval after it"),
        (299, 0, 300, "a moment before the interval ends: still the interval's turn"),
        (300, 0, 330, "an interval after the last: the group was quiet, it starts over"),
        (1000, 0, 1030, "long quiet: as a first message"),
    ],
)
def test_when_a_groups_new_message_goes(
    now: float, last_closed: float | None, due: float, why: str
) -> None:
    closed = None if last_closed is None else s(last_closed)
    assert message_due(now=s(now), last_closed_at=closed, wait=30, interval=300) == s(due), why


def grouped(event_id: str, group: str = "grp_a", key: str = "canceled") -> NewDelivery:
    return NewDelivery(
        id=f"dlv-{event_id}",
        event_id=event_id,
        route="r",
        sink="ops",
        ordering="all",
        group=GroupRef(id=group, key={"status": key}, wait=30, interval=300),
    )


def test_a_batch_joins_the_collecting_message_or_opens_one_per_group() -> None:
    batch = [grouped("e1"), grouped("e2", "grp_b"), grouped("e3"), grouped("e4", "grp_c")]
    state = {
        "grp_a": GroupState(open_message="dlv-old", last_closed_at=s(-500)),
        "grp_b": GroupState(open_message=None, last_closed_at=s(-100)),
    }
    plan = plan_groups(batch, state, T0)
    assert [(o.delivery.id, o.group.id, o.due) for o in plan.opened] == [
        ("dlv-e2", "grp_b", s(200)),  # active group: an interval after its last message
        ("dlv-e4", "grp_c", s(30)),  # new group: `wait` after its first event
    ]
    assert [tuple(m) for m in plan.members] == [
        ("dlv-old", "grp_a", "e1"),
        ("dlv-e2", "grp_b", "e2"),
        ("dlv-old", "grp_a", "e3"),
        ("dlv-e4", "grp_c", "e4"),
    ]
    assert plan.open_messages == {"grp_b": "dlv-e2", "grp_c": "dlv-e4"}


def test_a_delivery_without_a_group_is_a_mistake() -> None:
    with pytest.raises(ValueError, match="no group"):
        plan_groups(
            [NewDelivery(id="d", event_id="e", route="r", sink="s", ordering="all")], {}, T0
        )


# -- configuration and routing -------------------------------------------------------------------

SINKS = """
sinks:
  ops: {type: console}
  erp: {type: webhook, url: "https://erp.example/hook", secret: "WHSEC"}
  wa: {type: whatsapp, provider: fonnte, token: fonnte-t0ken}
  sms: {type: sms, provider: zenziva, userkey: u, passkey: p}
  pelanggan: {type: email, host: smtp.example, from: "a@toko.example", to: customer}
  gudang: {type: email, host: smtp.example, from: "a@toko.example", to: [g@toko.example]}
""".replace("WHSEC", WHSEC_A)


def config_text(routes: str) -> str:
    return f'receiver: {{token: t0ken}}\nstore: {{url: "sqlite:///k.db"}}\n{SINKS}routes:\n{routes}'


def router(routes: str) -> Router:
    return Router.from_config(parse_config(config_text(routes)))


def event(**changes: Any) -> Event:
    return make_event(**{"status": Status.CANCELED, "reason": "alamat salah", **changes})


def ref_of(delivery: NewDelivery) -> GroupRef:
    assert delivery.group is not None
    return delivery.group


def test_group_keys_read_event_fields_details_and_the_courier() -> None:
    routes = router(
        """
  - name: batal
    match: {status: [canceled, returned]}
    sinks: [ops, erp]
    group: {by: [status, courier, details.service_name], wait: 1m, interval: 10m}
"""
    )
    first, second = routes.deliveries(event()), routes.deliveries(event(order_id="OID-2"))
    assert [d.sink for d in first] == ["ops", "erp"]
    assert all(d.ordering == "all" for d in first)  # never superseded, whatever the sink says
    ref = first[0].group
    assert ref is not None
    assert ref.key == {"status": "canceled", "courier": "jne", "details.service_name": "REG"}
    assert (ref.wait, ref.interval) == (60.0, 600.0)
    assert ref.id.startswith("grp_") and ref == ref_of(second[0])
    assert first[0].group != first[1].group  # one group per sink
    returned = routes.deliveries(event(status=Status.RETURNED))[0].group
    assert returned is not None and returned.id != ref.id
    # the courier until events carry one: details.courier, else KiriminAja's service code
    service = event(details={"service": "sicepat"}, raw={})
    raw_only = event(details={}, raw={"service": "anteraja"})
    assert ref_of(routes.deliveries(service)[0]).key["courier"] == "sicepat"
    assert ref_of(routes.deliveries(raw_only)[0]).key["courier"] == "anteraja"
    ungrouped = router("  - {name: semua, sinks: [ops]}\n").deliveries(event())
    assert ungrouped[0].group is None


def test_group_config_defaults_and_errors_at_their_path() -> None:
    config = parse_config(config_text("  - {name: a, sinks: [ops], group: {}}\n"))
    group = config.routes[0].group
    assert group is not None and (group.by, group.wait, group.interval) == ([], 30.0, 300.0)
    with pytest.raises(ConfigError) as bad:
        parse_config(
            config_text(
                "  - name: a\n    sinks: [ops]\n    group: {by: [status, status], wait: -1s}\n"
            )
        )
    assert any(p.startswith("routes[0].group") for p in bad.value.problems), bad.value.problems
    with pytest.raises(ConfigError) as unknown:
        router("  - name: a\n    sinks: [ops]\n    group:\n      by: [status, colour]\n")
    (problem,) = unknown.value.problems
    assert problem.startswith("routes[0].group.by[1] (line ")
    assert "unknown event field 'colour'" in problem and "courier" in problem


@pytest.mark.parametrize(
    ("sink", "kind"), [("wa", "whatsapp"), ("sms", "sms"), ("pelanggan", "email")]
)
def test_check_refuses_grouping_for_a_sink_that_writes_to_the_customer(
    tmp_path: Path, sink: str, kind: str
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        config_text(f"  - name: batal\n    sinks: [ops, {sink}]\n    group: {{by: [status]}}\n")
    )
    with pytest.raises(ConfigError) as refused:
        validate_file(str(path))
    line = len(config_text("").splitlines()) + 3
    assert refused.value.problems == [
        f"routes[0].group (line {line}): route 'batal' cannot group: sink {sink!r} ({kind})"
        " writes to the customer, who gets their own message; send to it from a route"
        " without `group`"
    ]


def test_check_accepts_grouping_for_staff_and_renders_its_templates_as_a_group(
    tmp_path: Path,
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(
        config_text("  - name: batal\n    sinks: [ops, gudang, erp]\n    group: {by: [status]}\n")
    )
    validate_file(str(path))
    path.write_text(
        config_text(
            "  - name: batal\n    sinks: [ops]\n    group: {by: [status]}\n"
            '    template: {ops: "{% for e in group.events %}{{ e.nope }}{% endfor %}"}\n'
        )
    )
    with pytest.raises(ConfigError) as bad:
        validate_file(str(path))
    (problem,) = bad.value.problems
    assert problem.startswith("routes[0].template.ops (line ")
    assert "a group of sample events" in problem


# -- rendering: the default templates of a group -------------------------------------------------

TEMPLATES = Templates(timezone=UTC)


def group_of(count: int, **changes: Any) -> Group:
    events = [
        event(id=f"evt_{i}", order_id=f"OID-{i:04d}", awb=f"JP{i:06d}", **changes)
        for i in range(count)
    ]
    return Group(key={"status": "canceled", "courier": "jne"}, events=events)


def render(block: dict[str, Any], group: Group, route: str = "batal") -> Any:
    sink = build_sink(block, None)
    message = TEMPLATES.message(
        sink,
        grouped("x"),
        event=group.events[0],
        contact=None,
        group=group,
    )
    return sink, message


def test_slack_lists_the_group_under_its_heading() -> None:
    block = {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/x"}
    _, message = render(block, group_of(3, reason="alamat <salah>"))
    payload = slack_payload(message, SlackConfig(webhook_url=block["webhook_url"]))
    heading = "*3 pembaruan pesanan* (status: Dibatalkan, courier: jne)"
    assert payload["text"] == heading
    assert payload["blocks"] == [
        {"type": "section", "text": {"type": "mrkdwn", "text": heading}},
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "\n".join(
                    f"• *OID-{i:04d}* (JP{i:06d}) Dibatalkan: alamat &lt;salah&gt;"
                    for i in range(3)
                ),
            },
        },
    ]


def test_slack_stays_within_its_limits_and_says_how_many_more() -> None:
    block = {
        "type": "slack",
        "webhook_url": "https://hooks.slack.com/services/T0/B0/x",
        "language": "en",
    }
    _, message = render(block, group_of(5000, reason="r" * 80))
    payload = slack_payload(message, SlackConfig(webhook_url=block["webhook_url"], language="en"))
    blocks = payload["blocks"]
    assert payload["text"].startswith("*5000 order updates*")
    assert len(blocks) == 50
    texts = [b["text"]["text"] for b in blocks]
    assert all(len(t) <= 3000 for t in texts)
    listed = sum(t.count("• ") for t in texts[1:-1])
    assert texts[-1] == f"… and {5000 - listed} more"
    assert 1000 < listed < 5000


def test_email_to_staff_is_a_table_and_a_text_list() -> None:
    block = {
        "type": "email",
        "host": "smtp.example",
        "from": "k@toko.example",
        "to": ["g@toko.example"],
    }
    _, message = render(block, group_of(2))
    assert message.parts["subject"] == "2 pembaruan pesanan: status: Dibatalkan, courier: jne"
    text = message.parts["text"]
    assert text.splitlines()[0] == "2 pembaruan pesanan (status: Dibatalkan, courier: jne):"
    assert (
        "- OID-0001 (resi JP000001): Dibatalkan, 05 Mei 2024 09:30 UTC. Keterangan: alamat salah"
        in text
    )
    html = message.parts["html"]
    assert html.count("<tr>") == 3 and "<th>Pesanan</th>" in html and "<b>OID-0000</b>" in html
    config = build_sink(block, None).config
    assert isinstance(config, EmailConfig)
    mail = build_mail(message, config, ["g@toko.example"], T0)
    assert mail["Message-ID"] == "<dlv-x.kabarin@toko.example>"


async def test_webhook_posts_the_group_as_an_array_in_the_standard_envelope() -> None:
    block = {"type": "webhook", "url": "https://erp.example/hook", "secret": WHSEC_A}
    async with httpx.AsyncClient() as client:
        sink = build_sink(block, client)
        message = TEMPLATES.message(
            sink, grouped("x"), event=group_of(2).events[0], contact=None, group=group_of(2)
        )
        with respx.mock() as routes:
            route = routes.post(block["url"]).mock(return_value=httpx.Response(204))
            assert isinstance(await sink.send(message), Delivered)
    request = route.calls.last.request
    assert request.headers["webhook-id"] == "dlv-x"  # the same on every retry of the message
    payload = Webhook(WHSEC_A).verify(request.content, dict(request.headers))
    assert payload["type"] == "shipment.group"
    assert payload["group"] == {
        "route": "r",
        "key": {"status": "canceled", "courier": "jne"},
        "count": 2,
    }
    assert [e["order_id"] for e in payload["data"]] == ["OID-0000", "OID-0001"]
    assert payload["data"][0]["status"] == "canceled"


def test_console_prints_one_line_per_event() -> None:
    sink, message = render({"type": "console", "language": "en"}, group_of(2))
    assert sink.preview(message).splitlines() == [
        "== s | route r | 2 events",
        "2 order updates (status: Canceled, courier: jne):",
        "- OID-0000: Canceled. Reason: alamat salah",
        "- OID-0001: Canceled. Reason: alamat salah",
    ]


def test_a_single_event_renders_as_before_and_simulate_shows_a_group_of_one() -> None:
    sink = build_sink({"type": "console"}, None)
    plain = NewDelivery(id="d", event_id="e", route="r", sink="s", ordering="all")
    message = TEMPLATES.message(sink, plain, event=event(), contact=None)
    assert message.group is None
    assert message.text.startswith("Dibatalkan: pesanan OID-1001 (resi JP1234567890)")
    assert make_message().group is None
    # `kabarin simulate` and `routes test` render a grouped route's event as its group would
    alone = TEMPLATES.message(sink, grouped("x"), event=event(), contact=None)
    assert alone.group == Group(key={"status": "canceled"}, events=[event()])
    assert alone.text.startswith("1 pembaruan pesanan (status: Dibatalkan):")
