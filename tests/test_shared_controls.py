"""Per-sink rate limit and circuit breaker shared through PostgreSQL: two stores on one schema
stand for two replicas, on a fake wall clock (the time is passed in)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from gateway.config import parse_config
from gateway.delivery.controls import SinkControls
from gateway.store.postgres import PostgresStore
from gateway.store.shared import SinkControlStore
from sinks.base import SinkDeps
from sinks.console import ConsoleSink
from tests.conftest import create_pg_schema, drop_pg_schema, pg_url_with_schema, require_pg

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
async def replicas() -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    require_pg()
    schema = create_pg_schema()
    url = pg_url_with_schema(schema)
    a, b = PostgresStore(url), PostgresStore(url)
    await a.open(now=T0)
    await b.open(now=T0)
    yield a, b
    await a.close()
    await b.close()
    drop_pg_schema(schema)


async def test_the_rate_limit_is_one_budget_for_every_replica(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    assert isinstance(a, SinkControlStore)
    take = {"interval": 0.5, "burst": 1, "max_wait": 1.0, "now": T0}
    # 2/s: the slots booked alternately by two replicas are 0.5 s apart, as from one process.
    waits = [await s.take_rate_slot("slack", **take) for s in (a, b, a)]  # type: ignore[arg-type]
    assert waits == [0.0, 0.5, 1.0]
    assert await b.take_rate_slot("slack", **take) is None  # type: ignore[arg-type]
    # Those handed back are spread one interval apart beyond the booked slots, by either.
    defers = [await s.defer_rate_slot("slack", interval=0.5, now=T0) for s in (b, a)]
    assert defers == [1.5, 2.0]
    assert await a.take_rate_slot("other", **take) == 0.0  # type: ignore[arg-type]
    later = T0 + timedelta(seconds=10)
    assert await b.take_rate_slot("slack", **{**take, "now": later}) == 0.0  # type: ignore[arg-type]


async def test_the_burst_lets_that_many_through_at_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    take = {"interval": 1.0, "burst": 3, "max_wait": 0.0, "now": T0}
    got = [await s.take_rate_slot("erp", **take) for s in (a, b, a, b)]  # type: ignore[arg-type]
    assert got == [0.0, 0.0, 0.0, None]


async def test_a_circuit_one_replica_opens_is_open_for_all_and_probes_once(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    fail = {"ok": False, "threshold": 2, "cooldown": 30.0, "max_cooldown": 300.0}
    assert await a.circuit_record("erp", now=T0, **fail) == "closed"  # type: ignore[arg-type]
    assert await b.circuit_record("erp", now=T0, **fail) == "open"  # type: ignore[arg-type]
    assert await a.circuit_opens_in("erp", now=T0) == 30.0
    gate = await a.circuit_admit("erp", now=T0 + timedelta(seconds=10), probe_lease=5)
    assert not gate.allowed and gate.opens_in == 20.0
    # Cooled down: one probe across both replicas, another only once its lease has passed.
    half = T0 + timedelta(seconds=31)
    assert await b.circuit_opens_in("erp", now=half) == 0.0
    assert (await b.circuit_admit("erp", now=half, probe_lease=5)).probe
    assert not (await a.circuit_admit("erp", now=half, probe_lease=5)).allowed
    stale = half + timedelta(seconds=6)
    assert (await a.circuit_admit("erp", now=stale, probe_lease=5)).probe
    # The probe fails: open again for twice the cool-down, for both.
    assert await a.circuit_record("erp", now=stale, **fail) == "open"  # type: ignore[arg-type]
    assert await b.circuit_opens_in("erp", now=stale) == 60.0
    back = stale + timedelta(seconds=61)
    assert (await b.circuit_admit("erp", now=back, probe_lease=5)).probe
    await b.circuit_release_probe("erp")
    assert (await a.circuit_admit("erp", now=back, probe_lease=5)).probe
    ok = {**fail, "ok": True}
    assert await a.circuit_record("erp", now=back, **ok) == "closed"  # type: ignore[arg-type]
    assert (await b.circuit_admit("erp", now=back, probe_lease=5)).allowed
    assert await b.circuit_opens_in("erp", now=back) == 0.0


async def test_sink_controls_use_the_shared_rows_when_the_store_has_them(
    replicas: tuple[PostgresStore, PostgresStore],
) -> None:
    a, b = replicas
    block = {"type": "console", "rate_limit": "2/s", "circuit_breaker": {"failures": 1}}
    config = parse_config(
        msgspec.json.encode({"receiver": {"token": "t0k3n"}, "sinks": {"slack": block}}).decode()
    )
    sink = ConsoleSink.build("slack", config.sinks["slack"], SinkDeps())
    now = [T0]
    on_a, on_b = (
        SinkControls.build("slack", sink, config.retry, shared=s, clock=lambda: now[0])
        for s in (a, b)
    )
    assert [await c.reserve(5.0) for c in (on_a, on_b)] == [0.0, 0.5]
    await on_a.record(ok=False)
    assert on_a.circuit_state == "open"
    # The other replica learns it at its next send, before sending.
    gate = await on_b.admit(probe_lease=5.0)
    assert not gate.allowed and gate.opens_in == 30.0
    assert on_b.circuit_state == "open" and await on_b.opens_in() == 30.0
    # Held in the store, not in either process's memory breaker.
    assert on_b.breaker.state == "closed"
