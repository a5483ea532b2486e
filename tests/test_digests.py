"""Digests: the schedule (a table, in Indonesia's zones), the configuration, the rendering in
every form, the sinks' handling of a digest message, and the background runner on a real
store with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway.check import validate_file
from gateway.config import parse_config
from gateway.delivery.model import DeliveryFilter
from gateway.digests.message import DigestParts, digest_event, digest_of
from gateway.digests.render import render_digest
from gateway.digests.runner import Digests
from gateway.digests.schedule import Baseline, DigestSchedule, SendNow, WaitUntil
from gateway.digests.summary import Summary
from gateway.errors import ConfigError
from gateway.events import Status
from gateway.store import open_store
from gateway.store.digests import ReasonCount, StuckParcel, WindowCounts
from sinks.base import Message
from sinks.slack import SlackConfig, slack_payload
from sinks.webhook import WebhookConfig, WebhookSink

JKT, MKS, JPR = ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar"), ZoneInfo("Asia/Jayapura")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- the schedule -------------------------------------------------------------------------------

DAILY_8 = {"at": "08:00", "every": None}
HOURLY = {"at": None, "every": 3600.0}

SCHEDULE_TABLE = [
    # zone, schedule, now (UTC), last sent (UTC), decision
    # 08:00 WIB is 01:00 UTC; WITA 00:00 UTC; WIT 23:00 UTC the day before
    (JKT, DAILY_8, "2026-03-02 00:59", "2026-03-01 01:00", WaitUntil(utc("2026-03-02 01:00"))),
    (JKT, DAILY_8, "2026-03-02 01:00", "2026-03-01 01:00", SendNow(utc("2026-03-02 01:00"), 0)),
    (MKS, DAILY_8, "2026-03-02 00:00", "2026-03-01 00:00", SendNow(utc("2026-03-02 00:00"), 0)),
    (JPR, DAILY_8, "2026-03-01 23:30", "2026-02-28 23:00", SendNow(utc("2026-03-01 23:00"), 1800)),
    (JPR, DAILY_8, "2026-03-01 23:30", "2026-03-01 23:00", WaitUntil(utc("2026-03-02 23:00"))),
    # down over three mornings: only the latest is due, once
    (
        JKT,
        DAILY_8,
        "2026-03-05 03:00",
        "2026-03-01 01:00",
        SendNow(utc("2026-03-05 01:00"), 7200, True),
    ),
    (JKT, DAILY_8, "2026-03-05 03:00", "2026-03-05 01:00", WaitUntil(utc("2026-03-06 01:00"))),
    # never seen: a baseline, no send
    (
        JKT,
        DAILY_8,
        "2026-03-02 03:00",
        None,
        Baseline(utc("2026-03-02 01:00"), utc("2026-03-03 01:00")),
    ),
    # every hour, on the local hour (Jakarta is UTC+7: the same minutes)
    (JKT, HOURLY, "2026-03-02 10:59", "2026-03-02 10:00", WaitUntil(utc("2026-03-02 11:00"))),
    (JKT, HOURLY, "2026-03-02 11:20", "2026-03-02 10:00", SendNow(utc("2026-03-02 11:00"), 1200)),
    # the local midnight (17:00 UTC in Jakarta) starts the count again
    (JKT, HOURLY, "2026-03-02 16:30", "2026-03-02 16:00", WaitUntil(utc("2026-03-02 17:00"))),
]


@pytest.mark.parametrize(("zone", "schedule", "now", "last", "expected"), SCHEDULE_TABLE)
def test_the_schedule_decides(
    zone: ZoneInfo, schedule: dict[str, object], now: str, last: str | None, expected: object
) -> None:
    plan = DigestSchedule.of(zone=zone, window=None, **schedule)  # type: ignore[arg-type]
    assert plan.decide(utc(now), None if last is None else utc(last)) == expected


def test_every_that_does_not_divide_the_day_starts_again_at_local_midnight() -> None:
    plan = DigestSchedule.of(zone=MKS, at=None, every=7 * 3600, window=None)
    # WITA is UTC+8: local 21:00 is 13:00 UTC; the next step, 28:00, is past midnight
    assert plan.following(utc("2026-03-02 13:00")) == utc("2026-03-02 16:00")
    assert plan.latest(utc("2026-03-02 15:59")) == utc("2026-03-02 13:00")


def test_a_dst_zone_sends_a_repeated_wall_time_once() -> None:
    plan = DigestSchedule.of(zone=ZoneInfo("Europe/Amsterdam"), at="02:30", every=None, window=None)
    # 2026-10-25 02:30 happens twice in Amsterdam: the first (00:30 UTC) is the period
    assert plan.latest(utc("2026-10-25 02:00")) == utc("2026-10-25 00:30")
    assert plan.decide(utc("2026-10-25 02:00"), utc("2026-10-25 00:30")) == WaitUntil(
        utc("2026-10-26 01:30")
    )


def test_the_window_defaults_to_the_period() -> None:
    assert DigestSchedule.of(zone=JKT, window=None, **DAILY_8).window == timedelta(days=1)  # type: ignore[arg-type]
    assert DigestSchedule.of(zone=JKT, window=None, **HOURLY).window == timedelta(hours=1)  # type: ignore[arg-type]
    assert DigestSchedule.of(zone=JKT, window=600, **HOURLY).window == timedelta(minutes=10)  # type: ignore[arg-type]


# -- configuration ------------------------------------------------------------------------------

BASE = """
receiver: {token: abcdefgh}
sinks:
  ops: {type: console}
  mail: {type: email, host: smtp.example, from: k@toko.example, to: [ops@toko.example]}
  buyer: {type: email, host: smtp.example, from: k@toko.example, to: customer}
"""


def test_a_digest_block_is_read_with_its_defaults() -> None:
    config = parse_config(BASE + "digests:\n  pagi: {at: '08:00', sinks: [ops, mail]}\n")
    pagi = config.digests["pagi"]
    assert (pagi.at, pagi.every, pagi.timezone, pagi.window, pagi.language) == (
        "08:00",
        None,
        None,
        None,
        "id",
    )


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ("{at: '08:00', every: 1h, sinks: [ops]}", "digests.d (line 8): give exactly one of"),
        ("{sinks: [ops]}", "digests.d (line 8): give exactly one of"),
        ("{at: '8am', sinks: [ops]}", "digests.d.at (line 8): expected a time of day as HH:MM"),
        ("{every: 1h, sinks: [nope]}", "digests.d.sinks[0] (line 8): undefined sink 'nope'"),
        ("{every: 1h, sinks: [ops], timezone: Mars/Base}", "unknown time zone `Mars/Base`"),
        ("{every: 1h, sinks: [ops], language: fr}", "digests.d.language (line 8)"),
        ("{every: 1h, sinks: [ops], colour: red}", "digests.d.colour (line 8): unknown key"),
    ],
)
def test_a_bad_digest_block_is_named_with_its_line(block: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(BASE + f"digests:\n  d: {block}\n")
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_check_refuses_a_digest_to_a_sink_that_writes_to_customers(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(BASE + "digests:\n  pagi: {every: 1h, sinks: [ops, buyer]}\n")
    with pytest.raises(ConfigError) as caught:
        validate_file(str(path))
    assert caught.value.problems == [
        "digests.pagi.sinks[1] (line 8): sink 'buyer' writes to customers; a digest is for the"
        " shop's staff (slack, email to staff, webhook)"
    ]


# -- rendering ----------------------------------------------------------------------------------

END = utc("2026-03-02 01:00")


def summary() -> Summary:
    start = END - timedelta(days=1)
    current = WindowCounts(
        start=start,
        end=END,
        by_status={Status.DELIVERED: 5, Status.PROBLEM: 2, Status.STUCK: 1},
        by_courier={"jne": 6, "": 2},
        stuck=[
            StuckParcel(
                order_id="OID-<1>", awb="JNE1", stuck_in="shipped", at=END - timedelta(hours=2)
            )
        ],
        stuck_total=3,
        troubles=[ReasonCount(status=Status.PROBLEM, reason="alamat <b>salah</b>", count=2)],
        dead={"ops-slack": 1},
    )
    previous = WindowCounts(
        start=start - timedelta(days=1), end=start, by_status={Status.DELIVERED: 7}
    )
    return Summary(digest="pagi", current=current, previous=previous)


def test_the_text_says_counts_changes_and_lists_in_indonesian() -> None:
    parts = render_digest(summary(), language="id", zone=JKT, period=END)
    assert parts.subject == "Ringkasan pagi: 01 Mar 2026 08:00 WIB - 02 Mar 2026 08:00 WIB"
    lines = parts.text.splitlines()
    assert "Peristiwa: 8 (+1) dibanding periode sebelumnya" in lines
    assert "  Terkirim: 5 (-2)" in lines and "  Bermasalah: 2 (+2)" in lines
    assert "  JNE: 6" in lines and "  (kurir tidak diketahui): 2" in lines
    assert "Paket tertahan: 3" in lines
    assert "  OID-<1> (resi JNE1): tertahan di Dikirim sejak 02 Mar 2026 06:00 WIB" in lines
    assert "  dan 2 lainnya" in lines
    assert "  Bermasalah: alamat <b>salah</b> x2" in lines
    assert "  ops-slack: 1 (+1)" in lines


def test_english_and_the_other_zones() -> None:
    parts = render_digest(summary(), language="en", zone=JPR, period=END)
    assert parts.subject == "Digest pagi: 01 Mar 2026 10:00 WIT - 02 Mar 2026 10:00 WIT"
    assert "  Delivered: 5 (-2)" in parts.text.splitlines()
    assert "WITA" in render_digest(summary(), language="en", zone=MKS, period=END).subject


def test_the_mail_has_html_tables_with_pushed_values_escaped() -> None:
    parts = render_digest(summary(), language="id", zone=JKT, period=END)
    assert parts.html.count("<table") == 5
    assert "<td>Terkirim</td><td>5</td><td>-2</td>" in parts.html
    assert "alamat &lt;b&gt;salah&lt;/b&gt;" in parts.html and "<b>salah" not in parts.html
    assert "OID-&lt;1&gt;" in parts.html


def test_slack_blocks_escape_mrkdwn_and_stay_within_limits() -> None:
    parts = render_digest(summary(), language="id", zone=JKT, period=END)
    assert parts.blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Ringkasan pagi"},
    }
    texts = [b["text"]["text"] for b in parts.blocks if b["type"] == "section"]
    assert any("OID-&lt;1&gt;" in t for t in texts)
    assert all(len(t) <= 3000 for t in texts) and len(parts.blocks) <= 50


def test_the_webhook_payload_is_documented_data() -> None:
    payload = render_digest(summary(), language="id", zone=JKT, period=END).payload
    assert payload["digest"] == "pagi" and payload["period"] == "2026-03-02T01:00:00+00:00"
    assert payload["events"] == {"count": 8, "previous": 7, "delta": 1}
    assert payload["by_status"]["delivered"] == {"count": 5, "previous": 7, "delta": -2}
    assert payload["by_courier"] == {"jne": 6, "": 2}
    assert payload["stuck"]["count"] == 3 and payload["stuck"]["items"][0]["order_id"] == "OID-<1>"
    assert payload["troubles"] == [
        {"status": "problem", "reason": "alamat <b>salah</b>", "count": 2}
    ]
    assert payload["dead"] == {"count": 1, "previous": 0, "delta": 1, "by_sink": {"ops-slack": 1}}
    msgspec.json.encode(payload)  # plain JSON


# -- what the sinks make of a digest message ------------------------------------------------------


def digest_message() -> Message:
    parts = render_digest(summary(), language="id", zone=JKT, period=END)
    event = digest_event(name="pagi", period=END, now=END, parts=parts)
    assert digest_of(event) == parts
    return Message(
        delivery_id="dlv_1",
        route="digest:pagi",
        event=event,
        contact=None,
        parts={"text": parts.text},
    )


def test_slack_sends_the_digest_blocks() -> None:
    message = digest_message()
    config = msgspec.convert(
        {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T/B/X"}, SlackConfig
    )
    payload = slack_payload(message, config)
    parts = digest_of(message.event)
    assert parts is not None
    assert payload["blocks"] == parts.blocks and payload["text"] == parts.subject


def test_the_webhook_posts_the_digest_payload() -> None:
    message = digest_message()
    config = msgspec.convert(
        {"type": "webhook", "url": "https://erp.example/hook", "secret": "whsec_" + "A" * 43},
        WebhookConfig,
    )
    body = msgspec.json.decode(WebhookSink("erp", config, None).envelope(message, END))
    parts = digest_of(message.event)
    assert parts is not None
    assert body["type"] == "digest" and body["data"] == parts.payload


def test_a_shipment_event_is_no_digest() -> None:
    parts = DigestParts(subject="", text="", html="", blocks=[], payload={})
    event = digest_event(name="x", period=END, now=END, parts=parts)
    assert digest_of(msgspec.structs.replace(event, method="shipped_packages")) is None


# -- the runner, on a real store with a fake clock ----------------------------------------------


async def test_the_runner_baselines_sends_once_and_sends_a_missed_period_once(
    tmp_path: Path,
) -> None:
    config = parse_config(
        BASE
        + f"store: {{url: 'sqlite:///{tmp_path}/k.db'}}\n"
        + "digests:\n  pagi: {at: '08:00', timezone: Asia/Jakarta, sinks: [ops, mail]}\n"
    )
    store = open_store(config.store.url)
    await store.open(now=END)
    now = [utc("2026-03-01 03:00")]
    woken: list[int] = []
    runner = Digests(
        store=store, config=config, clock=lambda: now[0], on_sent=lambda: woken.append(1)
    )
    try:
        assert await runner.run_once() == utc("2026-03-02 01:00")  # first sight: a baseline
        now[0] = utc("2026-03-02 01:00")
        assert await runner.run_once() == utc("2026-03-03 01:00")
        now[0] = utc("2026-03-02 01:00:05")
        await runner.run_once()  # due already sent: nothing more
        sent = await store.list_deliveries(DeliveryFilter())
        assert sorted(d.sink for d in sent) == ["mail", "ops"] and woken == [1]
        # down for three days: at start, the latest period only, once
        now[0] = utc("2026-03-05 02:00")
        await runner.run_once()
        await runner.run_once()
        sent = await store.list_deliveries(DeliveryFilter())
        assert len(sent) == 4 and woken == [1, 1]
        assert await store.last_digest("pagi") == utc("2026-03-05 01:00")
    finally:
        await store.close()
