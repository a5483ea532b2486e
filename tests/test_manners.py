"""Quiet hours and staleness as pure decisions, on a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway.delivery.quiet import QuietHours
from gateway.delivery.staleness import stale_reason
from gateway.events import Event, Status
from sinks.base import QuietHoursConfig

WIB = ZoneInfo("Asia/Jakarta")
NIGHT = QuietHours(time(21, 0), time(7, 0), WIB)


def wib(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=WIB)


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (wib(5, 20, 59), None),
        (wib(5, 21, 0), wib(6, 7, 0)),  # the start is inside
        (wib(5, 23, 30), wib(6, 7, 0)),
        (wib(6, 0, 0), wib(6, 7, 0)),  # past midnight: the same night's end
        (wib(6, 6, 59), wib(6, 7, 0)),
        (wib(6, 7, 0), None),  # the end is outside
        (wib(6, 12, 0), None),
    ],
)
def test_window_across_midnight(now: datetime, until: datetime | None) -> None:
    got = NIGHT.until(now.astimezone(UTC))  # the dispatcher's clock is UTC
    assert got == (None if until is None else until.astimezone(UTC))
    if got is not None:
        assert got.tzinfo is UTC


def test_window_within_one_day() -> None:
    lunch = QuietHours(time(12, 0), time(13, 0), WIB)
    assert lunch.until(wib(5, 11, 59)) is None
    assert lunch.until(wib(5, 12, 30)) == wib(5, 13, 0)
    assert lunch.until(wib(5, 13, 0)) is None
    assert lunch.until(wib(5, 23, 0)) is None


def test_window_in_the_recipients_zone() -> None:
    # 21:00-07:00 in WITA (UTC+8) starts an hour earlier than in WIB.
    config = QuietHoursConfig(start="21:00", end="07:00", timezone="Asia/Makassar")
    wita = QuietHours.from_config(config, WIB)
    assert wita.until(wib(5, 20, 30)) == datetime(
        2024, 5, 6, 7, 0, tzinfo=ZoneInfo("Asia/Makassar")
    )
    assert QuietHours.from_config(QuietHoursConfig(start="21:00", end="07:00"), WIB) == NIGHT
    assert "waits until 2024-05-06 07:00 WIB" in NIGHT.describe(wib(6, 7, 0))


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        ({"start": "9pm", "end": "07:00"}, "HH:MM"),
        ({"start": "21:00", "end": "24:00"}, "HH:MM"),
        ({"start": "07:00", "end": "07:00"}, "must differ"),
        ({"start": "21:00", "end": "07:00", "timezone": "Asia/Nowhere"}, "unknown time zone"),
    ],
)
def test_invalid_windows(block: dict[str, str], problem: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=problem):
        msgspec.convert(block, QuietHoursConfig)


def _event(occurred_at: datetime) -> Event:
    return Event(
        id="evt_1",
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id="OID-1",
        occurred_at=occurred_at,
        received_at=occurred_at,
    )


def test_staleness() -> None:
    now = datetime(2024, 5, 7, 10, 0, tzinfo=UTC)
    twelve_hours = 12 * 3600.0
    assert stale_reason(_event(now - timedelta(hours=11)), now, twelve_hours) is None
    assert stale_reason(_event(now - timedelta(hours=12)), now, twelve_hours) is None
    reason = stale_reason(_event(now - timedelta(days=2)), now, twelve_hours)
    assert reason == "stale: the event is 2d old, more than max_age 12h"
    assert stale_reason(_event(now - timedelta(hours=13)), now, twelve_hours) == (
        "stale: the event is 13h old, more than max_age 12h"
    )
    assert stale_reason(_event(now - timedelta(days=30)), now, None) is None
