"""Routes: every matcher kind, `when`, `stop`, fan-out, deliveries, and config errors with paths."""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateway.config import InvalidConfig, RouteConfig, parse_config
from gateway.delivery.model import Delivery, NewDelivery
from gateway.errors import ConfigError
from gateway.events import Event, Status
from gateway.routing import Router, delivery_id

WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SINKS = f"""
receiver: {{token: t0ken}}
sinks:
  console: {{type: console}}
  erp: {{type: webhook, url: "https://erp.example.com/hooks", secret: {WHSEC}}}
  ops: {{type: slack, webhook_url: "https://hooks.slack.com/services/T0/B0/x", ordering: all}}
routes:
"""


def router(routes: str, base_dir: Path | None = None) -> Router:
    return Router.from_config(parse_config(SINKS + routes, base_dir=base_dir, env={}))


def config_problems(routes: str, base_dir: Path | None = None) -> list[str]:
    """The load's problems, then the router's, as `kabarin check` lists them."""
    try:
        config, problems = parse_config(SINKS + routes, base_dir=base_dir, env={}), []
    except InvalidConfig as exc:
        config, problems = exc.partial, exc.problems
    with pytest.raises(ConfigError) as info:
        Router.from_config(config)
    return problems + info.value.problems


def event(**changes: Any) -> Event:
    """An instant GoSend order canceled by the shop."""
    at = datetime(2024, 1, 10, 8, 18, 5, tzinfo=UTC)
    fields: dict[str, Any] = {
        "id": "evt_9f1c2a7d5e3b4c6a8d0e1f2a",
        "source": "push",
        "method": "update_instant_packages",
        "kind": "instant",
        "status": Status.CANCELED,
        "raw_status": "cancel",
        "order_id": "NBL2-1704870212382",
        "awb": "GK-11-3114100",
        "occurred_at": at,
        "received_at": at,
        "details": {
            "service": "gosend",
            "shipping_price": 34000,
            "tracking_url": "http://gjk.io/abcd",
            "driver": {"name": "Budi", "phone": "081229917190"},
        },
    }
    fields.update(changes)
    return Event(**fields)


def fired(routes: str, e: Event) -> list[str]:
    return [r.name for r in router(routes).match(e)]


def one_route(match: str, when: str | None = None) -> str:
    return f"  - name: r\n    match: {match}\n    sinks: [console]\n" + (
        f"    when: {when!r}\n" if when else ""
    )


def details(**values: Any) -> dict[str, Any]:
    return {"service": "gosend", "shipping_price": 34000, **values}


MATCHERS = [
    # (match, event changes, fires)
    ("{}", {}, True),
    ("{kind: instant}", {}, True),
    ("{kind: instant}", {"kind": "express"}, False),
    ("{status: canceled}", {}, True),
    ("{status: canceled}", {"status": Status.DELIVERED}, False),
    ("{status: [delivered, canceled]}", {}, True),
    ("{status: [delivered, returned]}", {}, False),
    ("{status: {not: canceled}}", {}, False),
    ("{status: {not: canceled}}", {"status": Status.PROBLEM}, True),
    ("{status: {not: [delivered, returned]}}", {"status": Status.RETURNED}, False),
    ("{status: {not: {regex: 'return.*'}}}", {"status": Status.RETURNING}, False),
    ("{status: [{regex: 're.*'}, canceled]}", {"status": Status.RETURNED}, True),
    ("{status: [{regex: 're.*'}, canceled]}", {"status": Status.DELIVERED}, False),
    ("{awb: {regex: 'GK-\\d+-\\d+'}}", {}, True),
    ("{awb: {regex: 'GK-\\d+'}}", {}, False),  # a full match, not a search
    ("{awb: {regex: '.*'}}", {"awb": None}, False),
    ("{awb: null}", {"awb": None}, True),
    ("{awb: null}", {}, False),
    ("{raw_status: cancel, method: update_instant_packages}", {}, True),
    ("{kind: instant, status: delivered}", {}, False),  # every entry must hold
    ("{details.service: gosend}", {}, True),
    ("{details.service: gosend}", {"details": {"service": "grab"}}, False),
    ("{details.service: gosend}", {"details": {}}, False),
    ("{details.service: {not: gosend}}", {"details": {}}, True),
    ("{details.service: [grab, gosend]}", {}, True),
    ("{details.driver.name: Budi}", {}, True),
    ("{details.driver.name: Budi}", {"details": {"driver": None}}, False),
    ("{details.shipping_price: 34000}", {}, True),
    ("{details.shipping_price: 34000}", {"details": details(shipping_price="34000")}, True),
    ("{details.shipping_price: 34000}", {"details": details(shipping_price=34000.0)}, True),
    ("{details.shipping_price: '34000'}", {}, True),
    ("{details.shipping_price: 35000}", {}, False),
    ("{details.cod: true}", {"details": details(cod=True)}, True),
    ("{details.cod: true}", {"details": details(cod=False)}, False),
]


@pytest.mark.parametrize(("match", "changes", "fires"), MATCHERS)
def test_matcher_table(match: str, changes: dict[str, Any], fires: bool) -> None:
    assert fired(one_route(match), event(**changes)) == (["r"] if fires else [])


@pytest.mark.parametrize(
    ("when", "fires"),
    [
        ("event.details.shipping_price > 30000", True),
        ("event.details.shipping_price > 50000", False),
        ("event.status == 'canceled' and event.kind == 'instant'", True),
        ("event.details.driver.name.startswith('Bu')", True),
        ("event.awb is none", False),
    ],
)
def test_when_true_and_false(when: str, fires: bool) -> None:
    assert fired(one_route("{status: canceled}", when), event()) == (["r"] if fires else [])


def test_when_is_only_tried_once_the_match_holds() -> None:
    routes = one_route("{status: delivered}", "event.details.no_such_key > 1")
    assert fired(routes, event()) == []


def test_a_when_that_raises_does_not_match_and_is_logged_once_at_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    r = router(
        one_route("{}", "event.details.weight > 1000") + "  - name: everything\n    sinks: [erp]\n"
    )
    caplog.set_level(logging.DEBUG, logger="kabarin.routing")
    e = event()
    assert [d.route for d in r.deliveries(e)] == ["everything"]
    assert [x.name for x in r.match(e)] == ["everything"]
    assert [(rec.levelname, rec.getMessage()) for rec in caplog.records] == [
        (
            "WARNING",
            "route 'r' does not match event evt_9f1c2a7d5e3b4c6a8d0e1f2a: `when` failed: "
            "UndefinedError: 'dict object' has no attribute 'weight'",
        ),
        (
            "DEBUG",
            "route 'r' does not match event evt_9f1c2a7d5e3b4c6a8d0e1f2a: `when` failed: "
            "UndefinedError: 'dict object' has no attribute 'weight'",
        ),
    ]


def test_when_runs_in_the_sandbox() -> None:
    routes = one_route("{}", "event.__class__.__mro__")
    assert fired(routes, event()) == []


ROUTES_ABC = """
  - name: instant-cancel
    match: {kind: instant, status: canceled}
    sinks: [ops]
    stop: {stop}
  - name: cancellations
    match: {status: [canceled, rejected]}
    sinks: [console]
  - name: everything-to-erp
    sinks: [erp]
"""


def test_every_matching_route_fires_in_order_without_stop() -> None:
    routes = ROUTES_ABC.replace("{stop}", "false")
    assert fired(routes, event()) == ["instant-cancel", "cancellations", "everything-to-erp"]
    assert fired(routes, event(kind="express")) == ["cancellations", "everything-to-erp"]


def test_stop_ends_matching_only_when_its_route_matched() -> None:
    routes = ROUTES_ABC.replace("{stop}", "true")
    assert fired(routes, event()) == ["instant-cancel"]
    assert fired(routes, event(kind="express")) == ["cancellations", "everything-to-erp"]
    assert [d.route for d in router(routes).deliveries(event())] == ["instant-cancel"]


def test_nothing_matches_is_an_empty_result_not_an_error() -> None:
    r = router(one_route("{status: delivered}"))
    assert r.match(event()) == []
    assert r.deliveries(event()) == []


def test_fan_out_to_several_sinks_and_routes_with_ordering_and_templates() -> None:
    r = router(
        """
  - name: staff
    match: {status: canceled}
    sinks: [ops, console, erp, console]
    template:
      console: "Batal: {{ event.order_id }}"
  - name: erp-all
    sinks: [erp]
"""
    )
    e = event()
    got = [(d.route, d.sink, d.ordering, d.template) for d in r.deliveries(e)]
    assert got == [
        ("staff", "ops", "all", None),  # slack's default is latest; the sink says all
        ("staff", "console", "latest", "Batal: {{ event.order_id }}"),
        ("staff", "erp", "all", None),
        ("erp-all", "erp", "all", None),
    ]
    assert {d.event_id for d in r.deliveries(e)} == {e.id}


def test_delivery_ids_are_deterministic_and_distinct() -> None:
    routes = "  - name: a\n    sinks: [console, erp]\n  - name: b\n    sinks: [console]\n"
    first = router(routes).deliveries(event())
    again = router(routes).deliveries(event())
    assert first == again
    expected = hashlib.blake2b(
        b"evt_9f1c2a7d5e3b4c6a8d0e1f2a\x1fa\x1fconsole", digest_size=12
    ).hexdigest()
    assert first[0] == NewDelivery(
        id="dlv_" + expected,
        event_id="evt_9f1c2a7d5e3b4c6a8d0e1f2a",
        route="a",
        sink="console",
        ordering="latest",
    )
    assert [d.id for d in first] == [
        delivery_id("evt_9f1c2a7d5e3b4c6a8d0e1f2a", route, sink)
        for route, sink in [("a", "console"), ("a", "erp"), ("b", "console")]
    ]
    assert len({d.id for d in first}) == 3
    other = router(routes).deliveries(event(id="evt_000000000000000000000000"))
    assert not {d.id for d in other} & {d.id for d in first}


def test_a_template_file_is_read_once_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    file = tmp_path / "templates" / "batal.j2"
    file.write_text("Pesanan {{ event.order_id }} dibatalkan\n", encoding="utf-8")
    r = router(
        "  - name: a\n    sinks: [console]\n    template:\n"
        "      console: {file: templates/batal.j2}\n",
        base_dir=tmp_path,
    )
    file.write_text("changed later", encoding="utf-8")
    assert r.routes[0].templates == {
        "console": {"text": "Pesanan {{ event.order_id }} dibatalkan\n"}
    }
    assert r.deliveries(event())[0].template == "Pesanan {{ event.order_id }} dibatalkan\n"


def test_the_router_reads_no_file_and_asks_no_registry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "batal.j2").write_text("Batal {{ event.order_id }}", encoding="utf-8")
    (tmp_path / "erp.j2").write_text("{{ event.awb }}", encoding="utf-8")
    config = parse_config(
        SINKS + "  - name: a\n    sinks: [console, ops]\n    fallback: {ops: erp}\n    template:\n"
        "      console: {file: batal.j2}\n      erp: {text: {file: erp.j2}}\n",
        base_dir=tmp_path,
        env={},
    )
    # the load read the files and looked up each kind: the router needs neither any more
    (tmp_path / "batal.j2").unlink()
    (tmp_path / "erp.j2").unlink()

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the router must not read files or load sink kinds")

    monkeypatch.setattr(Path, "read_text", refuse)
    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr("sinks.registry.load_sink_types", refuse)
    monkeypatch.setattr("gateway.config.loader.load_sink_types", refuse)
    r = Router.from_config(config)
    got = [(d.sink, d.ordering, d.template) for d in r.deliveries(event())]
    assert got == [("console", "latest", "Batal {{ event.order_id }}"), ("ops", "all", None)]
    at = event().received_at
    dead = Delivery(
        id="dlv_1",
        event_id="evt_1",
        route="a",
        sink="ops",
        order_id="O",
        occurred_at=at,
        ordering="all",
        template=None,
        state="dead",
        attempts=1,
        next_attempt_at=at,
        created_at=at,
        updated_at=at,
    )
    spare = r.fallback(dead)
    assert spare is not None
    assert (spare.sink, spare.ordering, spare.template) == ("erp", "all", "{{ event.awb }}")


def test_config_errors_name_every_problem_with_its_path(tmp_path: Path) -> None:
    problems = config_problems(
        """
  - name: ok
    sinks: [console]
  - name: bad
    match:
      awb: {regex: "GK-(\\\\d+"}
      statuss: canceled
      details: gosend
      status: [canceled, cancelled]
      kind: {not: {regex: "["}}
      method: {equals: x}
    when: "event.status =="
    sinks: [console, erp]
    template:
      erp: {file: missing.j2}
""",
        base_dir=tmp_path,
    )
    fields = (
        "awb, id, kind, method, occurred_at, order_id, raw_status, reason, received_at, "
        "shop, source, status, details.<key>"
    )
    # the template file is read by the load, so its problem comes before the router's
    assert problems == [
        f"routes[1].template.erp (line 22): cannot read template file '{tmp_path / 'missing.j2'}': "
        "No such file or directory",
        "routes[1].match.awb.regex (line 13): bad regex 'GK-(\\\\d+': "
        "missing ), unterminated subpattern at position 3",
        f"routes[1].match.statuss (line 14): unknown event field 'statuss' (fields: {fields})",
        "routes[1].match.details (line 15): match a key of `details`, e.g. `details.service`",
        "routes[1].match.status[1] (line 16): 'cancelled' is never a value of this field (values: "
        "canceled, delivered, in_transit, no_driver, picked_up, problem, processed, "
        "rejected, returned, returning, shipped, stuck, unknown, validated)",
        "routes[1].match.kind.not.regex (line 17): bad regex '[': "
        "unterminated character set at position 0",
        "routes[1].match.method (line 18): expected a value, a list, {not: …} or {regex: …}, "
        "got a mapping with keys equals",
        "routes[1].when (line 19): syntax error: unexpected 'end of template'",
    ]


def test_more_config_errors() -> None:
    problems = config_problems(
        """
  - name: a
    match: {status: [], kind: {not: rocket}, details.: x, details.driver..name: y}
    sinks: [console]
"""
    )
    assert problems[:2] == [
        "routes[0].match.status (line 10): an empty list matches nothing",
        "routes[0].match.kind.not (line 10): 'rocket' is never a value of this field "
        "(values: express, instant)",
    ]
    assert [p.split(":")[0] for p in problems[2:]] == [
        "routes[0].match.details. (line 10)",
        "routes[0].match.details.driver..name (line 10)",
    ]


def test_an_undefined_sink_is_caught_even_past_the_config_check() -> None:
    config = parse_config(SINKS + "  - name: a\n    sinks: [console]\n", env={})
    bad = msgspec.structs.replace(
        config, routes=[RouteConfig(name="a", sinks=["console", "pager"])]
    )
    with pytest.raises(ConfigError) as info:
        Router.from_config(bad)
    # the file's routes[0].sinks has no second entry: the nearest line is the list's own
    assert info.value.problems == ["routes[0].sinks[1] (line 9): undefined sink 'pager'"]


def test_routes_keep_their_config_facts() -> None:
    r = router(ROUTES_ABC.replace("{stop}", "true"))
    assert [(x.index, x.name, x.sinks, x.stop, x.when) for x in r.routes] == [
        (0, "instant-cancel", ("ops",), True, None),
        (1, "cancellations", ("console",), False, None),
        (2, "everything-to-erp", ("erp",), False, None),
    ]
