"""A shop's naive times are read in its own zone wherever a push is decoded again: the push
detail page (`gateway.operations.push_page`) finds the events its intake stored."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway import operations
from gateway.config import parse_config
from gateway.intake import Intake
from gateway.runtime import Runtime, open_runtime
from gateway.store import NewPush

PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "OID-1", "awb": "JNE1",\
 "shipped_at": "2024-03-01 15:00:00"}]}'


@pytest.fixture
async def rt(tmp_path: Path) -> AsyncIterator[Runtime]:
    config = parse_config(
        f"""
receiver: {{timezone: Asia/Jakarta}}
shops:
  toko-a: {{token: key-of-toko-a}}
  toko-b: {{token: key-of-toko-b, timezone: Asia/Makassar}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks: {{ops: {{type: console}}}}
routes: [{{name: all, sinks: [ops]}}]
""",
        env={},
    )
    async with AsyncExitStack() as stack:
        yield await open_runtime(config, stack, dispatcher=False)


async def test_a_pushs_detail_reads_its_times_in_its_shops_zone(rt: Runtime) -> None:
    now = datetime.now(UTC)
    push = NewPush(id="psh_b", source="push", shop="toko-b", received_at=now, body=PUSH, items=1)
    await rt.store.append_push(push)
    intake = Intake(store=rt.store, router=rt.router, timezone=rt.timezone, zones=rt.shops.zones)
    while await intake.run_once(now=now):
        pass
    logged = await rt.store.get_push("psh_b")
    assert logged is not None and logged.state == "processed"
    page = await operations.push_page(rt, logged, limit=10)
    # Decoded in WIB, 15:00 would be another moment, so another event than the one stored.
    assert [(e.order_id, e.outcome) for e in page.events] == [("OID-1", "produced")]
    ((stored, _),) = (await rt.store.events_by_id([page.events[0].id])).values()
    assert stored.occurred_at == datetime(2024, 3, 1, 7, 0, tzinfo=UTC)  # 15:00 WITA
