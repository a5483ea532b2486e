"""`kabarin routes test`: stored events run through another configuration, nothing sent or kept."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from gateway.delivery.model import DeliveryFilter
from gateway.events import Contact, Event, Status
from gateway.store import open_store
from gateway.store.roles import NewPush, PushOutcome

KABARIN = Path(sys.executable).with_name("kabarin")
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SLACK_URL = "https://hooks.slack.com/services/T0/B0/s3cr3tSlackPath"
NOW = datetime.now(UTC)

SINKS = f"""
receiver: {{token: t0ken}}
store: {{url: "sqlite:///{{db}}"}}
sinks:
  console: {{type: console}}
  erp: {{type: webhook, url: "https://erp.example.com/hooks", secret: {WHSEC}}}
  ops: {{type: slack, webhook_url: "{SLACK_URL}"}}
"""
NEW = """
routes:
  - name: cancellations
    match: {status: [canceled, rejected]}
    sinks: [ops, console]
  - name: everything-to-erp
    sinks: [erp]
"""
CURRENT = """
routes:
  - name: cancellations
    match: {status: canceled}
    sinks: [ops]
  - name: delivered-to-erp
    match: {status: delivered}
    sinks: [erp]
"""
# Passes `kabarin check` (every sample event with a weight has a positive one), fails on a real
# push that says its weight is 0.
PER_GRAM = """
routes:
  - name: cancellations
    match: {status: canceled}
    sinks: [ops]
    template:
      ops: "{{ event.order_id }}{% if event.details.weight is defined %}\
 {{ event.details.shipping_price // event.details.weight }}/g{% endif %}"
"""


def event(order_id: str, status: Status, ago: timedelta, **fields: Any) -> Event:
    at = NOW - ago
    return Event(
        id=f"evt_{order_id}_{status.value}",
        source="push",
        method="update_instant_packages",
        kind="instant",
        status=status,
        order_id=order_id,
        occurred_at=at,
        received_at=at,
        **fields,
    )


EVENTS = [
    event("OID-1", Status.SHIPPED, timedelta(hours=1)),
    event("OID-1", Status.DELIVERED, timedelta(hours=2)),
    event("OID-2", Status.CANCELED, timedelta(hours=3), reason="Hubungi 081234567890"),
    event("OID-3", Status.CANCELED, timedelta(days=10)),
    event("OID-4", Status.REJECTED, timedelta(hours=1, minutes=5)),
]


async def _store_events(db: Path, events: list[Event], contacts: Sequence[Contact] = ()) -> None:
    await _store_events_at(f"sqlite:///{db}", events, contacts)


async def _store_events_at(url: str, events: list[Event], contacts: Sequence[Contact] = ()) -> None:
    store = open_store(url)
    await store.open(now=datetime.now(UTC))
    try:
        await store.append_push(
            NewPush(id="psh_history", source="push", received_at=NOW, body=b"{}")
        )
        await store.record_intake(
            [PushOutcome(push_id="psh_history", events=events, contacts=contacts)], now=NOW
        )
    finally:
        await store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "kabarin.db"
    asyncio.run(_store_events(path, EVENTS))
    return path


def write(tmp_path: Path, name: str, routes: str, db: Path) -> str:
    path = tmp_path / name
    path.write_text(SINKS.replace("{db}", str(db)) + routes)
    return str(path)


def run_json(capsys: pytest.CaptureFixture[str], *args: str, code: int = 0) -> dict[str, Any]:
    assert main(["routes", "test", "--json", *args]) == code
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def counts(report: dict[str, Any]) -> dict[tuple[str, str], int]:
    return {(p["route"], p["sink"]): p["deliveries"] for p in report["pairs"]}


def test_counts_deliveries_per_route_and_sink_over_the_last_7_days(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_json(capsys, "--config", write(tmp_path, "new.yaml", NEW, db))
    assert report["events"] == 4  # OID-3's cancellation is 10 days old
    assert counts(report) == {
        ("cancellations", "ops"): 2,
        ("cancellations", "console"): 2,
        ("everything-to-erp", "erp"): 4,
    }
    assert report["unrouted"] == 0
    assert report["template_errors"] == 0
    assert report["diff"] is None


def test_since_chooses_the_events(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, "new.yaml", NEW, db)
    month = run_json(capsys, "--config", config, "--since", "30d")
    assert month["events"] == 5
    assert counts(month) == {
        ("cancellations", "ops"): 3,
        ("cancellations", "console"): 3,
        ("everything-to-erp", "erp"): 5,
    }
    recent = run_json(capsys, "--config", config, "--since", "90m")
    assert recent["events"] == 2  # OID-1 shipped and OID-4 rejected
    assert counts(recent)["cancellations", "ops"] == 1
    moment = (NOW - timedelta(hours=2, minutes=30)).isoformat()
    assert run_json(capsys, "--config", config, "--since", moment)["events"] == 3


def test_more_events_than_one_page_are_all_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "big.db"
    many = [event(f"OID-{i}", Status.SHIPPED, timedelta(minutes=i)) for i in range(1203)]
    asyncio.run(_store_events(db, many))
    report = run_json(capsys, "--config", write(tmp_path, "new.yaml", NEW, db))
    assert report["events"] == 1203
    assert counts(report)["everything-to-erp", "erp"] == 1203


ESTIMATED = """
routes:
  - name: on-its-way
    match: {status: shipped}
    sinks: [console]
    template:
      console: "{{ event.order_id }}: {% if estimate %}{{ estimate.basis }} {{ estimate.samples }}\
 by {{ estimate.latest.strftime('%d %H:%M') }}{% else %}none{% endif %}"
"""


def test_a_template_reading_estimate_gets_the_one_the_dispatcher_would_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 20 jne REG deliveries of 48 h each: history enough for an estimate of OPEN, shipped an
    # hour ago and not delivered: latest = shipped + 48 h.
    jne = {"details": {"service": "jne", "service_type": "REG"}}
    history = [
        e
        for i in range(20)
        for e in (
            event(f"DONE-{i}", Status.SHIPPED, timedelta(days=5, minutes=i), **jne),
            event(f"DONE-{i}", Status.DELIVERED, timedelta(days=3, minutes=i), **jne),
        )
    ]
    db = tmp_path / "history.db"
    asyncio.run(
        _store_events(db, [*history, event("OPEN", Status.SHIPPED, timedelta(hours=1), **jne)])
    )
    report = run_json(
        capsys, "--config", write(tmp_path, "new.yaml", ESTIMATED, db), "--samples", "2"
    )
    shown = [s["message"].splitlines()[-1] for s in report["pairs"][0]["samples"]]
    latest = (NOW - timedelta(hours=1) + timedelta(hours=48)).strftime("%d %H:%M")
    assert shown[0] == f"OPEN: history 20 by {latest}"
    assert shown[1].startswith("DONE-") and shown[1].endswith(": none")  # delivered: none
    assert report["template_errors"] == 0

    # `kabarin simulate` of a push about OPEN: the estimate the store gives it.
    push = tmp_path / "push.json"
    push.write_text('{"method": "shipped_packages", "data": [{"order_id": "OPEN"}]}')
    assert main(["simulate", "--config", str(tmp_path / "new.yaml"), str(push)]) == 0
    assert f"| OPEN: history 20 by {latest}" in capsys.readouterr().out


def test_diff_against_the_configuration_in_use(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write(tmp_path, "new.yaml", NEW, db)
    current = write(tmp_path, "current.yaml", CURRENT, db)
    report = run_json(capsys, "--config", new, "--diff", "--against", current)
    diff = report["diff"]
    assert diff["against"] == current
    changes = {(c["route"], c["sink"]): c for c in diff["pairs"]}
    assert changes == {
        ("cancellations", "ops"): {
            "route": "cancellations",
            "sink": "ops",
            "before": 1,
            "after": 2,
            "gained": 1,
            "lost": 0,
        },
        ("cancellations", "console"): {
            "route": "cancellations",
            "sink": "console",
            "before": 0,
            "after": 2,
            "gained": 2,
            "lost": 0,
        },
        ("everything-to-erp", "erp"): {
            "route": "everything-to-erp",
            "sink": "erp",
            "before": 0,
            "after": 4,
            "gained": 4,
            "lost": 0,
        },
        ("delivered-to-erp", "erp"): {
            "route": "delivered-to-erp",
            "sink": "erp",
            "before": 1,
            "after": 0,
            "gained": 0,
            "lost": 1,
        },
    }
    assert diff["events_changed"] == 4

    # The other way round, from $KABARIN_CONFIG: what was gained is lost.
    os.environ["KABARIN_CONFIG"] = new
    try:
        back = run_json(capsys, "--config", current, "--diff")["diff"]
    finally:
        del os.environ["KABARIN_CONFIG"]
    assert back["against"] == new
    lost = {(c["route"], c["sink"]): (c["gained"], c["lost"]) for c in back["pairs"]}
    assert lost[("cancellations", "console")] == (0, 2)
    assert lost[("delivered-to-erp", "erp")] == (1, 0)


def test_the_same_configuration_changes_nothing(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    new = write(tmp_path, "new.yaml", NEW, db)
    assert main(["routes", "test", "--config", new, "--against", new]) == 0
    out = capsys.readouterr().out
    assert "no (route, sink) gains or loses a delivery" in out
    assert "events that change destination: 0 of 4" in out


def test_diff_without_a_configuration_in_use_says_so(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    new = write(tmp_path, "new.yaml", NEW, db)
    monkeypatch.delenv("KABARIN_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)  # no ./config.yaml here
    assert main(["routes", "test", "--config", new, "--diff"]) == 1
    err = capsys.readouterr().err
    assert "no --against FILE, $KABARIN_CONFIG is not set and ./config.yaml does not exist" in err


def test_a_template_error_is_counted_reported_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "kabarin.db"
    priced = {"weight": 1000, "shipping_price": 34000}
    weightless = {**priced, "weight": 0}
    asyncio.run(
        _store_events(
            db,
            [
                event("OID-1", Status.CANCELED, timedelta(hours=1), details=priced),
                event("OID-2", Status.CANCELED, timedelta(hours=2), details=weightless),
                event("OID-3", Status.CANCELED, timedelta(hours=3), details=weightless),
            ],
        )
    )
    config = write(tmp_path, "new.yaml", PER_GRAM, db)
    report = run_json(capsys, "--config", config, code=2)
    (pair,) = report["pairs"]
    assert (pair["deliveries"], pair["template_errors"]) == (3, 2)
    assert report["template_errors"] == 2
    # The newest stored (the last inserted) is read first: OID-3 is the first to fail.
    first = pair["first_error"]
    assert first.startswith("event evt_OID-3_canceled (order OID-3, canceled): ")
    assert "line 1" in first and "division" in first
    assert [s["order_id"] for s in pair["samples"]] == ["OID-1"]

    assert main(["routes", "test", "--config", config]) == 2
    out = capsys.readouterr().out
    assert "template errors: 2" in out
    assert "route cancellations -> sink ops: 2, first:" in out


def test_samples_are_masked_and_limited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "kabarin.db"
    cancellations = [
        event(f"OID-{i}", Status.CANCELED, timedelta(hours=i), reason="Hubungi 081234567890")
        for i in range(1, 6)
    ]
    contacts = [Contact(order_id="OID-5", name="Sari", phone="081298765432")]
    asyncio.run(_store_events(db, cancellations, contacts))
    routes = NEW.replace("sinks: [ops, console]", "sinks: [ops]")
    report = run_json(capsys, "--config", write(tmp_path, "new.yaml", routes, db), "--samples", "2")
    pair = next(p for p in report["pairs"] if p["sink"] == "ops")
    assert [s["order_id"] for s in pair["samples"]] == ["OID-5", "OID-4"]  # newest stored first
    text = json.dumps(report)
    assert "081234567890" not in text and "081298765432" not in text
    assert "0812*****890" in text  # masked, not dropped
    assert "s3cr3tSlackPath" not in text
    assert "Sari" in pair["samples"][0]["message"]  # the order's contact is in the context


def test_nothing_is_sent_or_stored(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = run_json(capsys, "--config", write(tmp_path, "new.yaml", NEW, db))
    assert counts(report)["everything-to-erp", "erp"] == 4

    async def deliveries() -> int:
        store = open_store(f"sqlite:///{db}")
        await store.open(now=datetime.now(UTC))
        try:
            return len(await store.list_deliveries(DeliveryFilter(limit=500)))
        finally:
            await store.close()

    assert asyncio.run(deliveries()) == 0


def test_store_option_and_a_missing_store(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = write(tmp_path, "new.yaml", NEW, tmp_path / "absent.db")
    assert main(["routes", "test", "--config", elsewhere]) == 1
    err = capsys.readouterr().err
    assert f"no store at sqlite:///{tmp_path}/absent.db" in err
    assert not (tmp_path / "absent.db").exists()
    report = run_json(capsys, "--config", elsewhere, "--store", f"sqlite:///{db}")
    assert report["events"] == 4


def test_invalid_configurations_exit_1_with_check_messages(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = write(tmp_path, "bad.yaml", NEW.replace("[ops, console]", "[ops, pager]"), db)
    assert main(["routes", "test", "--config", bad]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{bad}: invalid configuration"
    assert err[1].startswith("  routes[0].sinks[1] (line ") and "undefined sink 'pager'" in err[1]

    good = write(tmp_path, "new.yaml", NEW, db)
    assert main(["routes", "test", "--config", good, "--against", bad]) == 1
    assert capsys.readouterr().err.splitlines()[0] == f"{bad}: invalid configuration"


def test_through_the_real_command(tmp_path: Path, db: Path) -> None:
    new = write(tmp_path, "new.yaml", NEW, db)
    current = write(tmp_path, "current.yaml", CURRENT, db)
    r = subprocess.run(
        [str(KABARIN), "routes", "test", "--config", new, "--diff", "--against", current],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith(f"{new}: 4 stored event(s) received since ")
    table = lines[lines.index("ROUTE              SINK     DELIVERIES  TEMPLATE ERRORS") :]
    assert table[1:4] == [
        "cancellations      ops               2                0",
        "cancellations      console           2                0",
        "everything-to-erp  erp               4                0",
    ]
    assert "events that change destination: 4 of 4" in lines
    assert "081234567890" not in r.stdout  # OID-2's reason, in its sample, is masked


def test_a_postgresql_store_from_the_config_or_store_option(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(_store_events_at(pg_url, EVENTS))
    on_pg = tmp_path / "pg.yaml"
    on_pg.write_text(SINKS.replace('"sqlite:///{db}"', f'"{pg_url}"') + NEW)
    report = run_json(capsys, "--config", str(on_pg))
    assert report["events"] == 4
    assert counts(report)["everything-to-erp", "erp"] == 4
    assert report["store"].startswith("postgresql://")

    on_sqlite = write(tmp_path, "new.yaml", NEW, tmp_path / "absent.db")
    report = run_json(capsys, "--config", on_sqlite, "--store", pg_url)
    assert report["events"] == 4
    assert not (tmp_path / "absent.db").exists()


def test_an_unsupported_store_option_names_the_option(
    tmp_path: Path, db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write(tmp_path, "new.yaml", NEW, db)
    assert main(["routes", "test", "--config", config, "--store", "mysql://x/db"]) == 1
    assert capsys.readouterr().err.startswith("kabarin: --store: unsupported store 'mysql' (use")
