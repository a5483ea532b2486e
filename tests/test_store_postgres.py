"""What only the PostgreSQL store does: several replicas on one database (the rest of the store
is the contract suite, tests/test_store_contract.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from gateway.delivery.model import DeliveryFilter
from gateway.errors import StoreError
from gateway.events import Status
from gateway.store import PullClaim, PushOutcome, open_store
from gateway.store.postgres import PostgresStore
from gateway.store.postgres.schema import MIGRATIONS

from .conftest import (
    create_pg_schema,
    drop_pg_schema,
    ingest,
    pg_problem,
    pg_unavailable,
    pg_url_with_schema,
    require_pg,
)
from .test_store_contract import T0, claim_ids, delivery, event, grouped, new_push, put

NOW = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh, empty schema: the database several replicas share."""
    require_pg()
    schema = create_pg_schema()
    yield pg_url_with_schema(schema)
    drop_pg_schema(schema)


@pytest.fixture
async def replicas(url: str) -> AsyncIterator[list[PostgresStore]]:
    """Two stores on one schema, as two `kabarin serve` processes would have."""
    stores = [PostgresStore(url), PostgresStore(url)]
    for s in stores:
        await s.open(now=NOW)
    yield stores
    for s in stores:
        await s.close()


def rows(url: str, query: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


# -- the fixture ------------------------------------------------------------------------------


def test_an_unreachable_server_fails_in_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problem = pg_problem("postgresql://postgres@127.0.0.1:1/test")
    assert problem is not None and "unreachable" in problem
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception):
        pg_unavailable(problem)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        pg_unavailable(problem)


def test_open_store_reads_both_url_schemes() -> None:
    for url in ("postgresql://db/k", "postgres://u@db:5432/k"):
        assert isinstance(open_store(url), PostgresStore)


async def test_an_unreachable_server_is_a_store_error() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=1)
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL"):
        await store.open(now=NOW)


# -- migrations ---------------------------------------------------------------------------------


async def test_replicas_starting_together_migrate_once(url: str) -> None:
    stores = [PostgresStore(url) for _ in range(6)]
    try:
        await asyncio.gather(*(s.open(now=NOW) for s in stores))
    finally:
        await asyncio.gather(*(s.close() for s in stores))
    versions = rows(url, "SELECT version FROM schema_version ORDER BY version")
    assert versions == [(v,) for v, _ in MIGRATIONS]


async def test_an_order_closed_as_refused_is_reopened_by_the_upgrade(url: str) -> None:
    # Before migration 4, `rejected` closed an order for the pull tracker.
    store = PostgresStore(url)
    await store.open(now=NOW)
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DELETE FROM schema_version WHERE version = 4")
        conn.execute(
            "INSERT INTO tracking (order_id, last_status, last_update, closed, added_at)"
            " VALUES ('O-R', 'rejected', now(), true, now()),"
            " ('O-D', 'delivered', now(), true, now())"
        )
    store = PostgresStore(url)
    await store.open(now=NOW)
    try:
        refused, done = await store.get_tracking("O-R"), await store.get_tracking("O-D")
        assert refused is not None and not refused.closed
        assert done is not None and done.closed
    finally:
        await store.close()


async def test_the_upgrade_ranks_the_waiting_latest_deliveries_by_stage(url: str) -> None:
    # Before migration 5, `latest` compared times only: a delivered dated before a processed
    # would have been superseded by it. The upgrade fills in the stage of what is stored.
    store = PostgresStore(url)
    await store.open(now=NOW)
    delivered = event("U", Status.DELIVERED, minute=5)
    processed = event("U", Status.PROCESSED, minute=10)
    await put(store, delivered, processed, ordering="latest")
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "ALTER TABLE deliveries DROP COLUMN stage, DROP COLUMN timed, DROP COLUMN started_at"
        )
        conn.execute("DELETE FROM schema_version WHERE version = 5")
    store = PostgresStore(url)
    await store.open(now=NOW)
    try:
        assert await claim_ids(store) == [delivery(delivered).id]
    finally:
        await store.close()


async def test_the_upgrade_dates_the_last_ask_of_orders_asked_before_by_their_last_answer(
    url: str,
) -> None:
    # Before the migration that added last_asked_at only answers were dated (last_pulled_at).
    (version,) = [v for v, ddl in MIGRATIONS if "last_asked_at" in ddl]
    store = PostgresStore(url)
    await store.open(now=NOW)
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP INDEX tracking_asked")
        conn.execute("ALTER TABLE tracking DROP COLUMN last_asked_at")
        conn.execute("DELETE FROM schema_version WHERE version = %s", (version,))
        conn.execute(
            "INSERT INTO tracking (order_id, last_update, added_at, last_pulled_at)"
            " VALUES ('O-ASKED', %(at)s, %(at)s, %(at)s + interval '5 seconds'),"
            " ('O-NEVER', %(at)s, %(at)s, NULL)",
            {"at": NOW},
        )
    store = PostgresStore(url)
    await store.open(now=NOW)
    try:
        asked, never = await store.get_tracking("O-ASKED"), await store.get_tracking("O-NEVER")
        assert asked is not None and asked.last_asked_at == NOW + timedelta(seconds=5)
        assert never is not None and never.last_asked_at is None
    finally:
        await store.close()


async def test_the_upgrade_that_adds_groups_keeps_the_waiting_deliveries(url: str) -> None:
    (version,) = [v for v, ddl in MIGRATIONS if "CREATE TABLE groups" in ddl]
    store = PostgresStore(url)
    await store.open(now=NOW)
    await put(store, event("U-1"))
    await store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE groups, group_events")
        conn.execute("DELETE FROM schema_version WHERE version = %s", (version,))
    store = PostgresStore(url)
    await store.open(now=NOW)
    try:
        cancel = event("U-2", Status.CANCELED)
        await ingest(store, events=[cancel], deliveries=[grouped(cancel)], now=T0)
        assert await store.waiting_groups() != []
        assert sorted(await claim_ids(store)) == sorted(
            [delivery(event("U-1")).id, grouped(cancel).id]
        )
    finally:
        await store.close()


# -- the push log -------------------------------------------------------------------------------


async def test_concurrent_appends_share_transactions(url: str) -> None:
    # Rows one transaction inserted share its id (xmin): count the transactions per method.
    grouped, one_by_one = PostgresStore(url), PostgresStore(url, max_group=1)
    await grouped.open(now=NOW)
    await one_by_one.open(now=NOW)
    transactions = "SELECT count(DISTINCT xmin::text) FROM pushes"
    try:
        await asyncio.gather(*(grouped.append_push(new_push(f"G{i}")) for i in range(200)))
        ((shared,),) = rows(url, transactions)
        await asyncio.gather(*(one_by_one.append_push(new_push(f"S{i}")) for i in range(200)))
        ((total,),) = rows(url, transactions)
    finally:
        await grouped.close()
        await one_by_one.close()
    assert total - shared == 200  # one transaction per append
    assert shared == grouped.commits < 20  # appends that overlapped shared one


async def test_a_failing_append_fails_only_its_caller(replicas: list[PostgresStore]) -> None:
    store = replicas[0]
    first = new_push("DUP")
    await store.append_push(first)
    others = [new_push(f"OK{i}") for i in range(20)]
    results = await asyncio.gather(
        store.append_push(first), *(store.append_push(p) for p in others), return_exceptions=True
    )
    assert isinstance(results[0], StoreError)
    assert results[1:] == [None] * 20
    assert await store.count_pending_pushes() == 21


async def test_an_append_queued_behind_the_stop_is_answered(url: str) -> None:
    store = PostgresStore(url)
    await store.open(now=NOW)
    # close() queues the stop; an append that checked before it is queued behind it
    appends = [asyncio.ensure_future(store.append_push(new_push(f"L{i}"))) for i in range(3)]
    closing = asyncio.ensure_future(store.close())
    late = asyncio.ensure_future(store.append_push(new_push("LATE")))
    results = await asyncio.wait_for(
        asyncio.gather(*appends, late, return_exceptions=True), timeout=10
    )
    await closing
    assert results[:3] == [None] * 3  # queued before the stop: committed
    assert isinstance(results[3], StoreError) and "closed" in str(results[3])


async def test_the_intake_lease_keeps_other_replicas_off_a_batch(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    for i in range(6):
        await a.append_push(new_push(f"L{i}"))
    taken_a, taken_b = await asyncio.gather(
        a.pending_pushes(limit=4, now=NOW), b.pending_pushes(limit=4, now=NOW)
    )
    assert {p.id for p in taken_a}.isdisjoint({p.id for p in taken_b})
    assert len(taken_a) + len(taken_b) == 6
    # Each replica's own batch is handed to it again (a retry), never to the other one...
    assert await a.pending_pushes(limit=10, now=NOW) == taken_a
    assert await b.pending_pushes(limit=10, now=NOW) == taken_b
    # ...until its lease ends: a replica that died has its pushes taken over.
    later = NOW + timedelta(seconds=a.intake_lease_seconds + 1)
    assert {p.id for p in await b.pending_pushes(limit=10, now=later)} == {
        p.id for p in taken_a + taken_b
    }


async def test_an_entry_is_recorded_once_when_two_replicas_race(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    p = new_push("R1")
    await a.append_push(p)
    e = event("R1")
    outcome = PushOutcome(push_id=p.id, events=[e], deliveries=[delivery(e)])
    results = await asyncio.gather(
        a.record_intake([outcome], now=NOW), b.record_intake([outcome], now=NOW)
    )
    assert sorted(r[0].accepted for r in results) == [0, 1]
    assert len(await a.list_deliveries(DeliveryFilter())) == 1


async def test_duplicate_pushes_at_two_replicas_store_their_events_once(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    p1, p2 = new_push("D1"), new_push("D2")
    await a.append_push(p1)
    await b.append_push(p2)
    events = [event(f"D{i}", id_=f"evt-dup-{i}") for i in range(50)]
    deliveries = [delivery(e) for e in events]

    async def record(store: PostgresStore, push_id: str) -> int:
        (result,) = await store.record_intake(
            [PushOutcome(push_id=push_id, events=events, deliveries=deliveries)], now=NOW
        )
        return result.accepted

    accepted = await asyncio.gather(record(a, p1.id), record(b, p2.id))
    assert sum(accepted) == 50
    assert rows(b.url, "SELECT count(*), count(DISTINCT event_id) FROM deliveries") == [(50, 50)]


# -- the delivery queue -------------------------------------------------------------------------


async def test_replicas_claiming_at_once_never_share_a_lane(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    for order in range(20):
        await put(a, *(event(f"O{order}", minute=m) for m in range(3)))
    now = datetime.now(UTC)
    claimed = await asyncio.gather(
        *(claim_ids(s, now=now, worker=f"w{i}", limit=50) for i, s in enumerate([a, b] * 3))
    )
    flat = [d for batch in claimed for d in batch]
    assert len(flat) == len(set(flat)) == 20  # one per lane, each claimed by one worker
    in_flight = rows(
        a.url,
        "SELECT order_id, count(*) FROM deliveries WHERE state = 'in_flight' GROUP BY order_id",
    )
    assert {n for _order, n in in_flight} == {1}


async def test_a_sink_switched_off_on_one_replica_is_off_for_all(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    await put(a, event("S1"), sink="erp")
    await a.disable_sink("erp", reason="410 Gone", now=T0)
    assert await b.disabled_sinks() == {"erp": "410 Gone"}
    assert await claim_ids(b) == []
    assert await b.enable_sink("erp")
    assert await claim_ids(a) == [delivery(event("S1")).id]


# -- notifications ------------------------------------------------------------------------------


async def test_new_work_wakes_every_replica(replicas: list[PostgresStore]) -> None:
    a, b = replicas
    pushes, deliveries = asyncio.Event(), asyncio.Event()
    await b.on_notify("pushes", pushes.set)
    await b.on_notify("deliveries", deliveries.set)
    p = new_push("N1")
    await a.append_push(p)
    async with asyncio.timeout(10):
        await pushes.wait()
    assert not deliveries.is_set()
    e = event("N1")
    await a.record_intake(
        [PushOutcome(push_id=p.id, events=[e], deliveries=[delivery(e)])], now=NOW
    )
    async with asyncio.timeout(10):
        await deliveries.wait()


async def test_another_schema_does_not_wake_a_replica(replicas: list[PostgresStore]) -> None:
    a, _b = replicas
    woken: list[str] = []
    arrived = asyncio.Event()

    def wake() -> None:
        woken.append("pushes")
        arrived.set()

    await a.on_notify("pushes", wake)
    schema = create_pg_schema()
    other = PostgresStore(pg_url_with_schema(schema))
    try:
        await other.open(now=NOW)
        await other.append_push(new_push("X1"))
        # The positive signal: a's own append is notified after the other schema's.
        await a.append_push(new_push("X2"))
        async with asyncio.timeout(10):
            await arrived.wait()
        await asyncio.sleep(0)
    finally:
        await other.close()
        drop_pg_schema(schema)
    assert woken == ["pushes"]


# -- the pull tracker ---------------------------------------------------------------------------


async def test_tracking_follows_events_stored_by_any_replica(
    replicas: list[PostgresStore],
) -> None:
    a, b = replicas
    await put(a, event("T1", minute=5), event("T1", Status.PICKED_UP, minute=1))
    await put(b, event("T2", Status.DELIVERED, minute=1))
    await b.track_orders([("T3", "instant")], now=T0)
    found = await a.get_tracking("T1")
    assert found is not None
    assert (found.last_status, found.last_update) == (Status.SHIPPED, T0 + timedelta(minutes=5))
    later = T0 + timedelta(days=1)
    claim = PullClaim(now=later, limit=10, lease_seconds=60, stale_before=later)
    first, second = await asyncio.gather(a.claim_pulls(claim), b.claim_pulls(claim))
    # T2 is closed (delivered); each open order is leased to one replica only.
    assert sorted(o.order_id for o in first + second) == ["T1", "T3"]
    stuck = await b.claim_stuck({Status.SHIPPED: 3600}, now=later, limit=10)
    assert [o.order_id for o in stuck] == ["T1"]
    assert await a.claim_stuck({Status.SHIPPED: 3600}, now=later, limit=10) == []
    counts = await a.tracking_counts()
    assert (counts.open, counts.stuck) == (2, 1)
