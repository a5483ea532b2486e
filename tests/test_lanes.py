"""The shipment lifecycle `ordering: latest` ranks by: one table in the code, the same in the
docs (docs/delivery.md), and every status in it."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from gateway.events import Event, Status
from gateway.store.lanes import STAGES, rank

PAGE = Path(__file__).resolve().parents[1] / "docs" / "delivery.md"
STAGE_ROW = re.compile(r"^\s*\| (\d) \| (.+) \|$", re.M)
T0 = datetime(2024, 5, 5, 3, 0, tzinfo=UTC)


def test_every_status_but_stuck_has_one_stage() -> None:
    staged = [s for stage in STAGES for s in stage]
    assert len(staged) == len(set(staged))
    assert set(staged) == set(Status) - {Status.STUCK}


def test_the_docs_show_the_stage_table_of_the_code() -> None:
    rows = STAGE_ROW.findall(PAGE.read_text())
    shown = {int(n): set(re.findall(r"`(\w+)`", statuses)) for n, statuses in rows}
    assert shown == {n: {s.value for s in stage} for n, stage in enumerate(STAGES)}


def event(
    status: Status, *, occurred: datetime, received: datetime, raw: str | None = None
) -> Event:
    return Event(
        id="evt-1",
        source="push",
        method="m",
        kind="express",
        status=status,
        raw_status=raw,
        order_id="O",
        occurred_at=occurred,
        received_at=received,
    )


def test_a_time_taken_from_the_arrival_is_not_timed_and_stuck_ranks_in_its_stage() -> None:
    later = T0 + timedelta(seconds=3)
    assert rank(event(Status.PROCESSED, occurred=later, received=later)) == (1, False)
    assert rank(event(Status.SHIPPED, occurred=T0, received=later)) == (3, True)
    stuck = event(Status.STUCK, occurred=later, received=later, raw="in_transit")
    assert rank(stuck) == (4, True)
