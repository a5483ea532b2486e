"""The `Store` contract, run against every backend (see conftest.BACKENDS)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Attempt,
    DeliveryFilter,
    DeliveryState,
    GroupRef,
    NewDelivery,
    Ordering,
    Outcome,
)
from gateway.events import Contact, Event, Status
from gateway.intake import new_push_id
from gateway.routing import group_id
from gateway.store import (
    PRUNE_STEPS,
    Cutoffs,
    EventQuery,
    Finished,
    NewPush,
    Pruned,
    PullClaim,
    PushOutcome,
    PushQuery,
    RejectedRequest,
    Store,
    open_store,
)
from gateway.store.digests import DigestRun

from .conftest import ingest, store_url

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def event(
    order_id: str,
    status: Status = Status.SHIPPED,
    *,
    minute: int = 0,
    id_: str | None = None,
    received: datetime = T0,
) -> Event:
    return Event(
        id=id_ or f"evt-{order_id}-{status.value}-{minute}",
        source="push",
        method="shipped_packages",
        kind="express",
        status=status,
        order_id=order_id,
        occurred_at=T0 + timedelta(minutes=minute),
        received_at=received,
        details={"service": "jne"},
        raw={"order_id": order_id},
    )


def delivery(e: Event, sink: str = "erp", ordering: Ordering = "all") -> NewDelivery:
    return NewDelivery(
        id=f"dlv-{e.id}-{sink}", event_id=e.id, route="r", sink=sink, ordering=ordering
    )


async def put(store: Store, *events: Event, sink: str = "erp", ordering: Ordering = "all") -> None:
    await ingest(store, events=events, deliveries=[delivery(e, sink, ordering) for e in events])


async def claim_ids(
    store: Store,
    *,
    now: datetime | None = None,
    worker: str = "w1",
    limit: int = 100,
    lease: float = 30,
) -> list[str]:
    claims = await store.claim(
        worker=worker, now=now or datetime.now(UTC), limit=limit, lease_seconds=lease
    )
    return [c.delivery.id for c in claims.claims]


async def deliver(store: Store, delivery_id: str, worker: str = "w1") -> None:
    assert await store.finish(
        delivery_id, worker=worker, attempt=None, state="delivered", now=datetime.now(UTC)
    )


async def state_of(store: Store, delivery_id: str) -> str:
    found = await store.get_delivery(delivery_id)
    assert found is not None
    return found[0].state


# -- ingest -----------------------------------------------------------------------------------


async def test_ingest_dedupes_across_and_within_batches(store: Store) -> None:
    a, b = event("A"), event("B")
    first = await ingest(store, events=[a, b, a], deliveries=[delivery(a)])
    assert (first.accepted, first.duplicates, first.deliveries) == (2, 1, 1)
    again = await ingest(store, events=[a, b], deliveries=[delivery(a), delivery(b)])
    assert (again.accepted, again.duplicates, again.deliveries) == (0, 2, 0)
    page = await store.list_events(EventQuery())
    assert sorted(s.event.order_id for s in page.items) == ["A", "B"]


async def test_deliveries_only_for_new_events(store: Store) -> None:
    a, b = event("A"), event("B")
    await ingest(store, events=[a])
    result = await ingest(store, events=[a, b], deliveries=[delivery(a), delivery(b)])
    assert (result.accepted, result.deliveries) == (1, 1)
    assert [d.event_id for d in await store.list_deliveries(DeliveryFilter())] == [b.id]


async def test_event_round_trips_exactly(store: Store) -> None:
    e = event("RT")
    await ingest(store, events=[e])
    assert await store.get_event(e.id) == e
    assert await store.get_event("nope") is None


async def test_contacts_upsert_keeps_known_values(store: Store) -> None:
    await ingest(
        store, events=[event("C")], contacts=[Contact(order_id="C", name="Budi", phone="0812")]
    )
    await ingest(
        store,
        events=[event("C", minute=1)],
        contacts=[Contact(order_id="C", name=None, phone="0813", email="b@x.id")],
    )
    assert await store.get_contact("C") == Contact(
        order_id="C", name="Budi", phone="0813", email="b@x.id"
    )
    assert await store.get_contact("nobody") is None


async def test_concurrent_appends_share_commits(store: Store) -> None:
    before = getattr(store, "commits", None)
    await asyncio.gather(*(store.append_push(new_push(f"G{i}")) for i in range(200)))
    assert await store.count_pending_pushes() == 200
    if before is not None:
        assert store.commits - before < 100  # type: ignore[attr-defined]


# -- the push log --------------------------------------------------------------------------


def new_push(order_id: str, *, method: str = "shipped_packages", at: datetime = T0) -> NewPush:
    body = json.dumps(
        {"method": method, "data": [{"order_id": order_id, "shipped_at": "2024-05-05 10:00:00"}]}
    ).encode()
    return NewPush(
        id=new_push_id(at) + order_id,
        source="push",
        received_at=at,
        body=body,
        content_type="application/json",
        method=method,
        items=1,
    )


async def test_the_log_keeps_a_push_exactly_and_in_order(store: Store) -> None:
    first, second = new_push("P1"), new_push("P2", at=T0 + timedelta(seconds=1))
    await store.append_push(first)
    await store.append_push(second)
    pending = await store.pending_pushes(limit=10)
    assert [p.id for p in pending] == [first.id, second.id]
    got = pending[0]
    assert (got.body, got.content_type, got.received_at, got.state) == (
        first.body,
        "application/json",
        T0,
        "pending",
    )
    assert (got.source, got.method, got.items) == ("push", "shipped_packages", 1)
    assert [p.id for p in await store.pending_pushes(limit=1)] == [first.id]
    assert await store.get_push(first.id) == got
    assert await store.get_push("psh_nope") is None


async def test_record_intake_marks_pushes_and_stores_events_once(store: Store) -> None:
    p1, p2, p3 = new_push("P1"), new_push("P2"), new_push("P3")
    for p in (p1, p2, p3):
        await store.append_push(p)
    a, b = event("A"), event("B")
    results = await store.record_intake(
        [
            PushOutcome(push_id=p1.id, events=[a], deliveries=[delivery(a)]),
            PushOutcome(push_id=p2.id, error="ValueError: broken"),
            PushOutcome(push_id=p3.id, events=[a, b], deliveries=[delivery(a), delivery(b)]),
        ],
        now=T0,
    )
    assert [(r.accepted, r.duplicates, r.deliveries) for r in results] == [
        (1, 0, 1),
        (0, 0, 0),
        (1, 1, 1),
    ]
    assert results[2].new_event_ids == (b.id,)
    assert await store.pending_pushes(limit=10) == []
    assert await store.count_pending_pushes() == 0
    done = {p.id: p for p in await store.list_pushes(PushQuery())}
    assert (done[p1.id].state, done[p1.id].accepted, done[p1.id].duplicates) == ("processed", 1, 0)
    assert (done[p2.id].state, done[p2.id].error) == ("failed", "ValueError: broken")
    assert (done[p3.id].state, done[p3.id].accepted, done[p3.id].duplicates) == ("processed", 1, 1)
    assert done[p1.id].processed_at == T0
    assert [p.id for p in await store.list_pushes(PushQuery(state="failed"))] == [p2.id]
    found = await store.events_by_id([a.id, b.id, "evt_nope"])
    assert {k: v[1] for k, v in found.items()} == {a.id: p1.id, b.id: p3.id}
    assert sorted(d.event_id for d in await store.list_deliveries(DeliveryFilter())) == sorted(
        [a.id, b.id]
    )


async def test_an_entry_another_intake_finished_is_not_stored_again(store: Store) -> None:
    p = new_push("P1")
    await store.append_push(p)
    a = event("A")
    (first,) = await store.record_intake([PushOutcome(push_id=p.id, events=[a])], now=T0)
    (second,) = await store.record_intake(
        [PushOutcome(push_id=p.id, events=[a, event("B")])], now=T0
    )
    assert (first.accepted, second.accepted, second.duplicates) == (1, 0, 0)
    assert (await store.get_push(p.id)).accepted == 1  # type: ignore[union-attr]
    assert await store.get_event(event("B").id) is None


async def test_requeue_puts_failed_pushes_back(store: Store) -> None:
    old, new = new_push("P1"), new_push("P2", at=T0 + timedelta(hours=2))
    for p in (old, new):
        await store.append_push(p)
    await store.record_intake(
        [PushOutcome(push_id=old.id, error="x"), PushOutcome(push_id=new.id, error="y")], now=T0
    )
    assert await store.requeue_pushes(state="failed", since=T0 + timedelta(hours=1)) == 1
    assert [p.id for p in await store.pending_pushes(limit=10)] == [new.id]
    assert await store.requeue_pushes(state="failed", ids=[old.id]) == 1
    assert (await store.get_push(old.id)).error is None  # type: ignore[union-attr]
    assert await store.requeue_pushes(state="failed") == 0


async def test_everything_survives_a_reopen(backend: str, tmp_path: Path) -> None:
    first = open_store(store_url(backend, tmp_path))
    await first.open(now=T0)
    await put(first, event("D1"), event("D2"))
    await first.close()
    second = open_store(store_url(backend, tmp_path))
    await second.open(now=T0)  # migrations again: idempotent
    try:
        page = await second.list_events(EventQuery())
        assert sorted(s.event.order_id for s in page.items) == ["D1", "D2"]
        assert len(await second.list_deliveries(DeliveryFilter())) == 2
    finally:
        await second.close()


async def test_rejected_requests_are_kept(store: Store) -> None:
    await store.reject(
        RejectedRequest(
            received_at=T0, reason="bad", body=b"\xffnot json", content_type="text/plain"
        )
    )
    assert await store.count_rejected() == 1
    (kept,) = await store.list_rejected()
    assert (kept.body, kept.reason, kept.content_type) == (b"\xffnot json", "bad", "text/plain")


async def test_list_events_filters_and_pages_newest_first(store: Store) -> None:
    for i in range(5):
        await ingest(store, events=[event(f"L{i}", received=T0 + timedelta(hours=i))])
    await ingest(store, events=[event("L9", Status.CANCELED, received=T0)])
    page = await store.list_events(EventQuery(limit=2))
    assert [s.event.order_id for s in page.items] == ["L9", "L4"]
    page = await store.list_events(EventQuery(limit=10, before_seq=page.next_cursor))
    assert [s.event.order_id for s in page.items] == ["L3", "L2", "L1", "L0"]
    assert page.next_cursor is None
    canceled = await store.list_events(EventQuery(status=Status.CANCELED))
    assert [s.event.order_id for s in canceled.items] == ["L9"]
    by_order = await store.list_events(EventQuery(order_id="L2"))
    assert [s.event.order_id for s in by_order.items] == ["L2"]
    since = await store.list_events(EventQuery(since=T0 + timedelta(hours=3)))
    assert [s.event.order_id for s in since.items] == ["L4", "L3"]


async def test_list_events_by_awb_finds_the_events_carrying_it(store: Store) -> None:
    carrying = msgspec.structs.replace(event("A1"), awb="JNE0001")
    later = msgspec.structs.replace(event("A1", Status.DELIVERED, minute=5), awb="JNE0001")
    other = msgspec.structs.replace(event("A2"), awb="JNE0002", shop="toko-b")
    for e in (carrying, later, other, event("A3")):
        await ingest(store, events=[e])
    found = await store.list_events(EventQuery(awb="JNE0001", limit=10))
    assert [s.event.id for s in found.items] == [later.id, carrying.id]
    other_shop = await store.list_events(EventQuery(awb="JNE0002", shops=("toko-b",)))
    assert [s.event.order_id for s in other_shop.items] == ["A2"]
    assert not (await store.list_events(EventQuery(awb="JNE0002", shops=("default",)))).items
    assert not (await store.list_events(EventQuery(awb="jne0001"))).items


# -- claiming ---------------------------------------------------------------------------------


async def test_claim_leases_and_expired_leases_are_reclaimed(store: Store) -> None:
    await put(store, event("A"))
    now = datetime.now(UTC)
    (claimed,) = await claim_ids(store, now=now, lease=30)
    assert await claim_ids(store, now=now + timedelta(seconds=10), worker="w2") == []
    assert await claim_ids(store, now=now + timedelta(seconds=31), worker="w2") == [claimed]
    # the first worker lost its lease: its finish changes nothing
    assert not await store.finish(
        claimed, worker="w1", attempt=None, state="delivered", now=datetime.now(UTC)
    )
    assert await store.finish(
        claimed, worker="w2", attempt=None, state="delivered", now=datetime.now(UTC)
    )
    assert await state_of(store, claimed) == "delivered"


async def test_claim_gives_each_lane_one_delivery_at_a_time(store: Store) -> None:
    await put(store, event("A", minute=1), event("A", Status.DELIVERED, minute=2), event("B"))
    first = await claim_ids(store)
    assert len(first) == 2  # one for A, one for B
    assert await claim_ids(store) == []  # A's next waits for the one in flight


async def test_ordering_all_goes_in_arrival_order_and_head_of_line(store: Store) -> None:
    shipped, delivered = event("A", minute=1), event("A", Status.DELIVERED, minute=2)
    await put(store, delivered)
    await put(store, shipped)  # arrives later but happened earlier: it still goes, second
    (head,) = await claim_ids(store)
    assert head == delivery(delivered).id
    retry_at = datetime.now(UTC) + timedelta(hours=1)
    assert await store.finish(
        head,
        worker="w1",
        attempt=None,
        state="pending",
        now=datetime.now(UTC),
        next_attempt_at=retry_at,
        error="503",
    )
    assert await claim_ids(store) == []  # the later one waits behind the failed head
    assert await claim_ids(store, now=retry_at) == [head]
    await deliver(store, head)
    assert await claim_ids(store, now=retry_at) == [delivery(shipped).id]
    assert await state_of(store, delivery(shipped).id) == "in_flight"


async def test_a_dead_head_unblocks_the_lane(store: Store) -> None:
    first, second = event("A", minute=1), event("A", Status.DELIVERED, minute=2)
    await put(store, first, second)
    (head,) = await claim_ids(store)
    await store.finish(
        head, worker="w1", attempt=None, state="dead", now=datetime.now(UTC), error="400"
    )
    assert await claim_ids(store) == [delivery(second).id]


async def test_ordering_latest_supersedes_older_pending(store: Store) -> None:
    old, new = event("A", minute=1), event("A", Status.DELIVERED, minute=2)
    await put(store, new, old, ordering="latest")
    claimed = await store.claim(worker="w1", now=datetime.now(UTC), limit=10, lease_seconds=30)
    assert [c.delivery.id for c in claimed.claims] == [delivery(new).id]
    assert [d.id for d in claimed.superseded] == [delivery(old).id]
    assert claimed.superseded[0].state == "superseded"
    assert await state_of(store, delivery(old).id) == "superseded"


async def test_a_late_older_status_is_sent_under_all_and_superseded_under_latest(
    store: Store,
) -> None:
    for ordering, order in (("all", "A"), ("latest", "B")):
        newer = event(order, Status.DELIVERED, minute=5)
        await put(store, newer, ordering=ordering)  # type: ignore[arg-type]
        (claimed,) = await claim_ids(store)
        await deliver(store, claimed)
        late = event(order, minute=1)
        await put(store, late, ordering=ordering)  # type: ignore[arg-type]
        if ordering == "all":  # every status reaches the ERP, exactly once
            assert await claim_ids(store) == [delivery(late).id]
            await deliver(store, late_id := delivery(late).id)
            assert await state_of(store, late_id) == "delivered"
            continue
        assert await claim_ids(store) == []
        assert await state_of(store, delivery(late).id) == "superseded"
        found = await store.get_delivery(delivery(late).id)
        assert found is not None and found[0].last_error is not None
        assert found[0].last_error.startswith("superseded (ordering: latest)")


def timeless(order_id: str, status: Status, at: datetime) -> Event:
    """An update whose push carried no time (processed_packages): dated by its arrival."""
    return msgspec.structs.replace(
        event(order_id, status, id_=f"evt-{order_id}-{status.value}-arrived"),
        occurred_at=at,
        received_at=at,
    )


async def test_the_inv_2001_pushes_all_reach_an_all_sink_and_latest_ranks_by_stage(
    store: Store,
) -> None:
    # processed carries no time (dated 17:11:03 on arrival); shipped says 17:11:00; finished
    # comes a second later. `all` sends all three in arrival order; `latest` ranks shipped
    # above processed though its time is earlier, and delivered above both.
    wib = T0.replace(hour=10, minute=11)
    for ordering, order in (("all", "INV-A"), ("latest", "INV-L")):
        processed = timeless(order, Status.PROCESSED, wib + timedelta(seconds=3))
        shipped = msgspec.structs.replace(
            event(order, Status.SHIPPED), occurred_at=wib, received_at=wib + timedelta(seconds=4)
        )
        await put(store, processed, ordering=ordering)  # type: ignore[arg-type]
        await put(store, shipped, ordering=ordering)  # type: ignore[arg-type]
        if ordering == "all":
            assert await claim_ids(store) == [delivery(processed).id]
            await deliver(store, delivery(processed).id)
            assert await claim_ids(store) == [delivery(shipped).id]
            await deliver(store, delivery(shipped).id)
        else:
            assert await claim_ids(store) == [delivery(shipped, ordering="latest").id]
            await deliver(store, delivery(shipped).id)
            assert await state_of(store, delivery(processed).id) == "superseded"
        finished = msgspec.structs.replace(
            event(order, Status.DELIVERED),
            occurred_at=wib + timedelta(seconds=1),
            received_at=wib + timedelta(seconds=5),
        )
        await put(store, finished, ordering=ordering)  # type: ignore[arg-type]
        assert await claim_ids(store) == [delivery(finished).id]
        await deliver(store, delivery(finished).id)
    sent = await store.list_deliveries(DeliveryFilter(order_id="INV-A"))
    assert {d.state for d in sent} == {"delivered"} and len(sent) == 3


async def test_an_arrival_time_never_outranks_a_courier_time_in_one_stage(store: Store) -> None:
    # in_transit and problem share a stage: the problem's courier time (minute 9) wins over
    # the in_transit dated on its arrival, later (minute 20), whichever came first.
    problem = event("A", Status.PROBLEM, minute=9)
    moving = timeless("A", Status.IN_TRANSIT, T0 + timedelta(minutes=20))
    await put(store, moving, problem, ordering="latest")
    assert await claim_ids(store) == [delivery(problem).id]
    assert await state_of(store, delivery(moving).id) == "superseded"
    # Within a stage two courier times compare as times: the later one wins.
    later = event("A", Status.IN_TRANSIT, minute=30)
    await deliver(store, delivery(problem).id)
    await put(store, later, ordering="latest")
    assert await claim_ids(store) == [delivery(later).id]


async def test_a_started_send_whose_lease_ran_out_ends_dead_until_replayed(store: Store) -> None:
    await put(store, event("A"), event("B"), ordering="latest", sink="sms")
    now = datetime.now(UTC)
    a, b = (delivery(event(o), "sms").id for o in "AB")
    assert sorted(await claim_ids(store, now=now, lease=30)) == sorted([a, b])
    assert await store.start([a], worker="w2", now=now) == set()  # not its lease
    assert await store.start([a], worker="w1", now=now) == {a}
    found = await store.get_delivery(a)
    assert found is not None and found[0].started_at == now
    assert await store.finish(
        a, worker="w1", attempt=None, state="in_flight", now=now, count_attempt=False
    )  # an intermediate try keeps the mark
    # The worker dies; both leases run out. B never started: it is simply claimed again.
    later = now + timedelta(seconds=31)
    claimed = await store.claim(worker="w2", now=later, limit=10, lease_seconds=30)
    assert [c.delivery.id for c in claimed.claims] == [b]
    assert [d.id for d in claimed.unknown] == [a]
    found = await store.get_delivery(a)
    assert found is not None
    dead, attempts = found
    assert (dead.state, dead.attempts, dead.started_at) == ("dead", 1, None)
    assert dead.last_error == OUTCOME_UNKNOWN and "replay" in dead.last_error
    assert [(x.outcome, x.started_at) for x in attempts] == [("unknown", now)]
    assert await claim_ids(store, now=later + timedelta(seconds=10), worker="w3") == []
    # A person replays it: sent again.
    assert await store.replay_one(a, now=later)
    assert await claim_ids(store, now=later, worker="w3") == [a]


async def test_an_outcome_clears_the_start_mark(store: Store) -> None:
    await put(store, event("A"), ordering="latest", sink="sms")
    now = datetime.now(UTC)
    (a,) = await claim_ids(store, now=now, lease=30)
    assert await store.start([a], worker="w1", now=now + timedelta(seconds=31)) == set()
    assert await store.start([a], worker="w1", now=now) == {a}
    retry_at = now + timedelta(seconds=5)
    assert await store.finish(
        a, worker="w1", attempt=None, state="pending", now=now, next_attempt_at=retry_at
    )
    found = await store.get_delivery(a)
    assert found is not None and found[0].started_at is None
    assert await claim_ids(store, now=retry_at + timedelta(minutes=5)) == [a]


async def test_disabled_sink_is_not_claimed_until_enabled(store: Store) -> None:
    await put(store, event("A"), sink="erp")
    await put(store, event("B"), sink="slack")
    await store.disable_sink("erp", reason="410 Gone", now=T0)
    assert await store.disabled_sinks() == {"erp": "410 Gone"}
    assert await claim_ids(store) == [delivery(event("B"), "slack").id]
    assert await store.enable_sink("erp")
    assert not await store.enable_sink("erp")
    assert await claim_ids(store) == [delivery(event("A")).id]


async def test_claim_returns_event_and_contact(store: Store) -> None:
    e = event("A")
    await ingest(
        store, events=[e], deliveries=[delivery(e)], contacts=[Contact(order_id="A", phone="0812")]
    )
    (claim,) = (
        await store.claim(worker="w", now=datetime.now(UTC), limit=5, lease_seconds=5)
    ).claims
    assert claim.event == e
    assert claim.contact == Contact(order_id="A", phone="0812")
    assert claim.delivery.state == "in_flight" and claim.delivery.lease_owner == "w"


# -- finishing, replay ------------------------------------------------------------------------


async def test_finish_records_attempts_and_counts(store: Store) -> None:
    await put(store, event("A"))
    (d,) = await claim_ids(store)
    now = datetime.now(UTC)
    attempt = Attempt(
        delivery_id=d,
        started_at=now,
        duration_ms=12.5,
        outcome="retry",
        status_code=503,
        error="HTTP 503",
    )
    await store.finish(
        d,
        worker="w1",
        attempt=attempt,
        state="pending",
        now=datetime.now(UTC),
        next_attempt_at=now,
        error="HTTP 503",
    )
    (d2,) = await claim_ids(store)
    await store.finish(
        d2,
        worker="w1",
        attempt=None,
        state="pending",
        now=datetime.now(UTC),
        next_attempt_at=now,
        count_attempt=False,
    )
    found = await store.get_delivery(d)
    assert found is not None
    row, attempts = found
    assert row.attempts == 1  # the put-back did not count
    assert row.last_error == "HTTP 503"
    assert attempts == [attempt]


async def test_renewing_keeps_a_lease_from_running_out(store: Store) -> None:
    await put(store, event("A"), event("B"), event("C"))
    now = datetime.now(UTC)
    a, b, c = await claim_ids(store, now=now, lease=10)
    assert await store.finish(c, worker="w1", attempt=None, state="delivered", now=now)
    later = now + timedelta(seconds=8)
    # w1 still holds a and b; c is finished; nothing of w1's is w2's to renew
    assert await store.renew([a, b, c], worker="w1", now=later, lease_seconds=10) == {a, b}
    assert await store.renew([a, b], worker="w2", now=later, lease_seconds=10) == set()
    assert await store.renew([], worker="w1", now=later, lease_seconds=10) == set()
    # past the first lease, inside the renewed one: nobody else may take them
    assert await claim_ids(store, now=now + timedelta(seconds=15), worker="w2") == []
    # a lease that runs out unrenewed goes to another worker, and is no longer w1's
    assert sorted(await claim_ids(store, now=now + timedelta(seconds=19), worker="w2")) == sorted(
        [a, b]
    )
    assert await store.renew([a], worker="w1", now=later, lease_seconds=10) == set()
    found = await store.get_delivery(a)
    assert found is not None and found[0].lease_owner == "w2"


async def test_an_error_text_with_control_characters_is_recorded(store: Store) -> None:
    # An error quotes what a peer answered, which may hold anything, NUL included (which
    # PostgreSQL's text refuses): the outcome must still be recorded, or the send repeats.
    await put(store, event("A"))
    (d,) = await claim_ids(store)
    now = datetime.now(UTC)
    text = "HTTP 500: bad\x00answer\x07"
    attempt = Attempt(
        delivery_id=d,
        started_at=now,
        duration_ms=1,
        outcome="permanent",
        status_code=500,
        error=text,
    )
    await store.finish(d, worker="w1", attempt=attempt, state="dead", now=now, error=text)
    found = await store.get_delivery(d)
    assert found is not None
    row, attempts = found
    assert row.state == "dead"
    assert row.last_error is not None and row.last_error.startswith("HTTP 500: bad")
    assert row.last_error.endswith("answer\x07")
    assert [a.error for a in attempts] == [row.last_error]


async def test_finish_records_the_callers_time(store: Store) -> None:
    await put(store, event("A"), event("B"))
    first, second = await claim_ids(store)
    later = T0 + timedelta(days=2, microseconds=7)
    assert await store.finish(first, worker="w1", attempt=None, state="delivered", now=later)
    assert await store.finish(
        second, worker="w1", attempt=None, state="pending", now=later + timedelta(hours=1)
    )
    delivered = await store.get_delivery(first)
    put_back = await store.get_delivery(second)
    assert delivered is not None and put_back is not None
    assert delivered[0].updated_at == later and delivered[0].delivered_at == later
    assert put_back[0].updated_at == later + timedelta(hours=1)
    assert put_back[0].delivered_at is None


async def test_replay_dead_by_filter_and_one(store: Store) -> None:
    await put(store, event("A"), event("B"), sink="erp")
    await put(store, event("C"), sink="slack")
    for d in await claim_ids(store):
        await store.finish(
            d, worker="w1", attempt=None, state="dead", now=datetime.now(UTC), error="400"
        )
    now = datetime.now(UTC)
    assert await store.replay(DeliveryFilter(sink="erp"), now=now) == 2
    assert {d.state for d in await store.list_deliveries(DeliveryFilter(sink="erp"))} == {"pending"}
    slack = delivery(event("C"), "slack").id
    assert await store.replay_one(slack, now=now)
    assert not await store.replay_one(slack, now=now)  # already pending
    found = await store.get_delivery(slack)
    assert found is not None and found[0].attempts == 0 and found[0].state == "pending"


async def test_list_deliveries_filters_and_cursor(store: Store) -> None:
    await put(store, event("A"), event("B"), event("C"))
    newest_first = [d.order_id for d in await store.list_deliveries(DeliveryFilter())]
    assert newest_first == ["C", "B", "A"]
    page = await store.list_deliveries(DeliveryFilter(limit=1))
    rest = await store.list_deliveries(DeliveryFilter(before=page[0].id))
    assert [d.order_id for d in rest] == ["B", "A"]
    assert [d.order_id for d in await store.list_deliveries(DeliveryFilter(order_id="B"))] == ["B"]
    assert await store.list_deliveries(DeliveryFilter(state="dead")) == []


async def test_next_due_and_sink_counts(store: Store) -> None:
    assert await store.next_due() is None
    await put(store, event("A"), event("B"))
    due = await store.next_due()
    assert due is not None and due <= datetime.now(UTC)
    (first, second) = await claim_ids(store)
    later = datetime.now(UTC) + timedelta(minutes=5)
    await store.finish(
        first,
        worker="w1",
        attempt=None,
        state="pending",
        now=datetime.now(UTC),
        next_attempt_at=later,
    )
    await store.finish(second, worker="w1", attempt=None, state="dead", now=datetime.now(UTC))
    assert await store.next_due() == later
    (counts,) = await store.sink_counts()
    assert (counts.sink, counts.pending, counts.dead) == ("erp", 1, 1)
    (per_shop,) = await store.sink_counts(by_shop=True)
    assert (per_shop.sink, per_shop.shop, per_shop.pending, per_shop.dead) == (
        "erp",
        "default",
        1,
        1,
    )


async def test_ping(store: Store) -> None:
    await store.ping(now=datetime.now(UTC))


def test_unsupported_store_urls_are_config_errors() -> None:
    from gateway.errors import ConfigError

    for url in ("mysql://x", "sqlite://", "kabarin.db"):
        with pytest.raises(ConfigError):
            open_store(url)


def test_an_unknown_store_scheme_is_refused_naming_the_known_ones() -> None:
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        open_store("mysql://kabarin@db/kabarin")
    (message,) = refused.value.problems
    assert "unknown scheme 'mysql'" in message
    assert "known schemes: sqlite, postgresql, postgres" in message


async def test_finish_in_flight_records_a_try_and_keeps_the_lease(store: Store) -> None:
    await put(store, event("A"))
    (d,) = await claim_ids(store)
    attempt = Attempt(
        delivery_id=d,
        started_at=datetime.now(UTC),
        duration_ms=1,
        outcome="retry",
        error="connection refused",
    )
    assert await store.finish(
        d,
        worker="w1",
        attempt=attempt,
        state="in_flight",
        now=datetime.now(UTC),
        count_attempt=False,
    )
    assert await claim_ids(store, worker="w2") == []  # still leased to w1
    await deliver(store, d)
    found = await store.get_delivery(d)
    assert found is not None
    assert found[0].state == "delivered" and len(found[1]) == 1


# -- contacts the shop registers, fallback deliveries ------------------------------------------


@pytest.mark.parametrize(
    ("pushed_before", "registered", "pushed_after", "expected"),
    [
        # registered fields win over the push, whichever came first
        (
            Contact(order_id="R", name="Budi", phone="+62811"),
            Contact(order_id="R", phone="+62812", email="b@toko.id", language="en"),
            None,
            Contact(order_id="R", name="Budi", phone="+62812", email="b@toko.id", language="en"),
        ),
        (
            None,
            Contact(order_id="R", phone="+62812"),
            Contact(order_id="R", name="Budi", phone="+62899", email="x@y.id"),
            Contact(order_id="R", name="Budi", phone="+62812", email="x@y.id"),
        ),
        # without a registration, the latest push decides
        (
            Contact(order_id="R", name="Budi", phone="+62811"),
            None,
            Contact(order_id="R", phone="+62813"),
            Contact(order_id="R", name="Budi", phone="+62813"),
        ),
        (None, Contact(order_id="R", name="Siti"), None, Contact(order_id="R", name="Siti")),
    ],
)
async def test_contact_resolution_registered_over_pushed(
    store: Store,
    pushed_before: Contact | None,
    registered: Contact | None,
    pushed_after: Contact | None,
    expected: Contact,
) -> None:
    if pushed_before is not None:
        await ingest(store, events=[event("R")], contacts=[pushed_before])
    if registered is not None:
        assert await store.register_contacts([registered], now=T0) == 1
    if pushed_after is not None:
        await ingest(store, events=[event("R", minute=1)], contacts=[pushed_after])
    assert await store.get_contact("R") == expected


async def test_registered_contacts_reach_the_claim_and_can_be_deleted(store: Store) -> None:
    e = event("K")
    await ingest(store, events=[e], deliveries=[delivery(e)], contacts=[Contact(order_id="K")])
    many = [Contact(order_id="K", phone="+62812", language="en")] + [
        Contact(order_id=f"K{i}", email=f"k{i}@toko.id") for i in range(50)
    ]
    assert await store.register_contacts(many, now=T0) == 51
    assert await store.get_contact("K7") == Contact(order_id="K7", email="k7@toko.id")
    (claim,) = (
        await store.claim(worker="w", now=datetime.now(UTC), limit=5, lease_seconds=5)
    ).claims
    assert claim.contact is not None and claim.contact.phone == "+62812"
    assert await store.delete_contact("K")
    assert not await store.delete_contact("K")
    assert await store.get_contact("K") is None


async def test_a_fallback_is_created_once_with_the_first_final_state(store: Store) -> None:
    e = event("F")
    await put(store, e, sink="wa", ordering="latest")
    first = f"dlv-{e.id}-wa"
    fallback = NewDelivery(
        id="dlv-fallback", event_id=e.id, route="r", sink="sms", ordering="latest", template=None
    )
    now = datetime.now(UTC)
    assert await claim_ids(store, now=now) == [first]
    assert await store.finish(
        first, worker="w1", attempt=None, state="dead", now=now, error="131026", fallback=fallback
    )
    got = await store.get_delivery("dlv-fallback")
    assert got is not None
    second, _ = got
    assert (second.sink, second.state, second.fallback_of) == ("sms", "pending", first)
    assert (second.event_id, second.order_id, second.occurred_at) == (e.id, "F", e.occurred_at)
    assert second.next_attempt_at == now
    shown = await store.list_deliveries(DeliveryFilter(order_id="F"))
    assert {d.id: d.fallback_of for d in shown} == {first: None, "dlv-fallback": first}

    # Replayed and dead again: no second fallback. A fallback gets none of its own.
    assert await store.replay_one(first, now=now)
    assert set(await claim_ids(store, now=now)) == {first, "dlv-fallback"}
    other = msgspec.structs.replace(fallback, id="dlv-fallback-2")
    for delivery_id in (first, "dlv-fallback"):
        assert await store.finish(
            delivery_id, worker="w1", attempt=None, state="skipped", now=now, fallback=other
        )
    assert len(await store.list_deliveries(DeliveryFilter(order_id="F"))) == 2


async def test_no_fallback_for_delivered_or_a_lost_lease(store: Store) -> None:
    a, b = event("G1"), event("G2")
    await put(store, a, b, sink="wa")
    now = datetime.now(UTC)
    await claim_ids(store, now=now, worker="w1")
    fb = NewDelivery(id="dlv-g-fb", event_id=a.id, route="r", sink="sms", ordering="all")
    assert await store.finish(
        f"dlv-{a.id}-wa", worker="w1", attempt=None, state="delivered", now=now, fallback=fb
    )
    assert not await store.finish(
        f"dlv-{b.id}-wa", worker="w2", attempt=None, state="dead", now=now, fallback=fb
    )
    assert await store.get_delivery("dlv-g-fb") is None


# -- batches: many claims and outcomes at once ------------------------------------------------


async def test_claim_takes_one_per_lane_up_to_the_limit(store: Store) -> None:
    # Two lanes of three under ``all`` and one of three under ``latest``, all due.
    lanes = {o: [event(o, minute=m) for m in range(3)] for o in "ABC"}
    await put(store, *lanes["A"], *lanes["B"])
    await put(store, *lanes["C"], ordering="latest")
    heads = {delivery(lanes["A"][0]).id, delivery(lanes["B"][0]).id}
    heads.add(delivery(lanes["C"][2], ordering="latest").id)
    first = await claim_ids(store, limit=2)
    assert len(first) == 2 and set(first) <= heads
    rest = await claim_ids(store, worker="w2")
    assert sorted(first + rest) == sorted(heads)
    for old in lanes["C"][:2]:
        assert await state_of(store, delivery(old, ordering="latest").id) == "superseded"


async def test_a_disabled_sinks_backlog_does_not_hide_other_sinks(store: Store) -> None:
    await put(store, *(event(f"E{i}") for i in range(10)), sink="erp")
    await store.disable_sink("erp", reason="410 Gone", now=T0)
    await put(store, event("S"), sink="slack")
    assert await claim_ids(store, limit=1) == [delivery(event("S"), "slack").id]


async def test_finish_many_commits_each_outcome_and_reports_lost_leases(store: Store) -> None:
    await put(store, event("A"), event("B"), event("C"))
    now = datetime.now(UTC)
    a, b, c = (delivery(event(o)).id for o in "ABC")
    assert sorted(await claim_ids(store, now=now, lease=30)) == sorted([a, b, c])
    later = now + timedelta(seconds=31)  # the leases ran out: w2 takes all three
    assert sorted(await claim_ids(store, now=later, worker="w2")) == sorted([a, b, c])
    assert await store.finish_many(
        [Finished(delivery_id=b, attempt=None, state="delivered", now=later)], worker="w2"
    ) == [True]
    retry_at = later + timedelta(minutes=5)
    attempt = Attempt(
        delivery_id=a, started_at=later, duration_ms=3, outcome="retry", error="HTTP 503"
    )
    kept = await store.finish_many(
        [
            Finished(
                delivery_id=a,
                attempt=attempt,
                state="pending",
                now=later,
                next_attempt_at=retry_at,
                error="HTTP 503",
            ),
            Finished(delivery_id=b, attempt=None, state="dead", now=later),  # no longer leased
            Finished(
                delivery_id=c,
                attempt=None,
                state="pending",
                now=later,
                next_attempt_at=later,
                count_attempt=False,
                waiting="circuit open",
            ),
        ],
        worker="w2",
    )
    assert kept == [True, False, True]
    found = await store.get_delivery(a)
    assert found is not None
    assert found[0].state == "pending" and found[0].attempts == 1
    assert found[0].next_attempt_at == retry_at and found[0].last_error == "HTTP 503"
    assert found[1] == [attempt]
    assert await state_of(store, b) == "delivered"
    found = await store.get_delivery(c)
    assert found is not None
    assert found[0].attempts == 0 and found[0].waiting == "circuit open"
    assert await store.finish_many([], worker="w2") == []
    with pytest.raises(ValueError):
        await store.finish_many(
            [Finished(delivery_id=a, attempt=None, state="dead", now=later)] * 2, worker="w2"
        )


async def test_finish_many_creates_the_fallback_of_a_dead_delivery(store: Store) -> None:
    e = event("G")
    await put(store, e)
    first = delivery(e).id
    fallback = NewDelivery(id="dlv-fb-many", event_id=e.id, route="r", sink="sms", ordering="all")
    now = datetime.now(UTC)
    assert await claim_ids(store, now=now) == [first]
    done = Finished(delivery_id=first, attempt=None, state="dead", now=now, fallback=fallback)
    assert await store.finish_many([done], worker="w1") == [True]
    got = await store.get_delivery("dlv-fb-many")
    assert got is not None
    assert (got[0].sink, got[0].state, got[0].fallback_of) == ("sms", "pending", first)


# -- retention -------------------------------------------------------------------------------

NOW = T0 + timedelta(days=100)
"""Retention's "now" in these tests: T0 is 100 days old."""

WINDOWS = Cutoffs(
    pushes=NOW - timedelta(days=90),
    events=NOW - timedelta(days=90),
    delivered=NOW - timedelta(days=30),
    dead=NOW - timedelta(days=90),
    rejected=NOW - timedelta(days=30),
)


async def _finished(
    store: Store, e: Event, state: DeliveryState, *, at: datetime, claimed: datetime = T0
) -> str:
    """Store `e` with one delivery, claim it and finish it as `state` at `at`, one attempt."""
    d = delivery(e)
    await ingest(store, events=[e], deliveries=[d], now=claimed)
    assert await claim_ids(store, now=claimed) == [d.id]
    outcome: Outcome = "delivered" if state == "delivered" else "permanent"
    attempt = Attempt(delivery_id=d.id, started_at=at, duration_ms=1.0, outcome=outcome)
    assert await store.finish(d.id, worker="w1", attempt=attempt, state=state, now=at)
    return d.id


async def retention_scene(store: Store) -> dict[str, str]:
    """Rows on both sides of every window (see WINDOWS); name → id."""
    ids: dict[str, str] = {}
    # Old events: one whose delivery was delivered long ago, one long dead, one with none.
    ids["done"] = await _finished(store, event("R-DONE"), "delivered", at=T0)
    ids["dead_old"] = await _finished(store, event("R-DEADOLD"), "dead", at=T0 + timedelta(days=1))
    await ingest(store, events=[event("R-NONE")], now=T0)
    ids["dead_young"] = await _finished(
        store, event("R-DEADYOUNG"), "dead", at=NOW - timedelta(days=10)
    )
    # A young event whose delivery is past the delivered window: the delivery goes alone.
    young = NOW - timedelta(days=60)
    ids["young_delivered"] = await _finished(
        store, event("R-YOUNG", received=young), "delivered", at=young, claimed=young
    )
    # Old events with a delivery in flight, and pending (stored last: no claim takes it).
    fly = event("R-FLY")
    await ingest(store, events=[fly], deliveries=[delivery(fly)], now=T0)
    ids["in_flight"] = delivery(fly).id
    assert await claim_ids(store, now=NOW) == [ids["in_flight"]]
    waiting = event("R-PENDING")
    await ingest(store, events=[waiting], deliveries=[delivery(waiting)], now=T0)
    ids["pending"] = delivery(waiting).id
    # The push log: processed, failed and pending entries, old and young.
    for name, state, at in (
        ("push_old", "processed", T0),
        ("push_failed", "failed", T0),
        ("push_pending", "pending", T0),
        ("push_young", "processed", NOW - timedelta(days=1)),
    ):
        push = new_push(name, at=at)
        ids[name] = push.id
        await store.append_push(push)
        if state != "pending":
            error = "boom" if state == "failed" else None
            await store.record_intake([PushOutcome(push_id=push.id, error=error)], now=at)
    for at in (T0, NOW - timedelta(days=1)):
        await store.reject(RejectedRequest(received_at=at, reason="bad", body=b"x"))
    return ids


async def prune_all(store: Store, cutoffs: Cutoffs, *, limit: int) -> Pruned:
    total = Pruned()
    for step in PRUNE_STEPS:
        while True:
            removed = await store.prune(step, cutoffs, limit=limit)
            total += removed
            if removed.of(step) < limit:
                break
    return total


async def test_retention_prunes_what_it_should_and_nothing_else(store: Store) -> None:
    ids = await retention_scene(store)
    expected = Pruned(pushes=1, events=3, deliveries=3, attempts=3, rejected=1)
    assert await store.count_prunable(WINDOWS) == expected
    assert await prune_all(store, WINDOWS, limit=2) == expected
    assert await store.count_prunable(WINDOWS) == Pruned()

    for gone in ("evt-R-DONE-shipped-0", "evt-R-DEADOLD-shipped-0", "evt-R-NONE-shipped-0"):
        assert await store.get_event(gone) is None
    for kept in ("R-PENDING", "R-FLY", "R-DEADYOUNG", "R-YOUNG"):
        assert await store.get_event(f"evt-{kept}-shipped-0") is not None
    for gone in ("done", "dead_old", "young_delivered"):
        assert await store.get_delivery(ids[gone]) is None
    assert await state_of(store, ids["pending"]) == "pending"
    assert await state_of(store, ids["in_flight"]) == "in_flight"
    found = await store.get_delivery(ids["dead_young"])
    assert found is not None
    assert (found[0].state, len(found[1])) == ("dead", 1)
    assert await store.get_push(ids["push_old"]) is None
    for kept in ("push_failed", "push_pending", "push_young"):
        assert await store.get_push(ids[kept]) is not None
    assert [r.received_at for r in await store.list_rejected()] == [NOW - timedelta(days=1)]


async def test_a_dead_delivery_keeps_its_event_until_the_dead_window_passes(
    store: Store,
) -> None:
    dead_at = NOW - timedelta(days=10)
    await _finished(store, event("R-D"), "dead", at=dead_at)
    only_events = Cutoffs(events=NOW - timedelta(days=90), dead=NOW - timedelta(days=90))
    assert await prune_all(store, only_events, limit=10) == Pruned()
    forever = Cutoffs(events=NOW - timedelta(days=90))  # dead kept for ever: so is the event
    assert await prune_all(store, forever, limit=10) == Pruned()
    later = Cutoffs(events=NOW, dead=dead_at + timedelta(seconds=1))
    assert await store.count_prunable(later) == Pruned(events=1, deliveries=1, attempts=1)
    assert await prune_all(store, later, limit=10) == Pruned(events=1, deliveries=1, attempts=1)


async def test_retention_prunes_order_facts_by_their_latest_stage(store: Store) -> None:
    cut = T0 + timedelta(minutes=30)
    events = [
        event("F-OLD", minute=0),
        event("F-OLD", Status.DELIVERED, minute=10),
        event("F-OLD2", minute=1),
        event("F-OLD3", Status.RETURNED, minute=2),
        event("F-LATE", minute=0),  # shipped long ago, delivered after the cut-off
        event("F-LATE", Status.DELIVERED, minute=40),
        event("F-YOUNG", minute=50),
        event("F-CANCELLED", Status.CANCELED, minute=55),  # no stage time at all
    ]
    await ingest(store, events=events, now=T0)
    cutoffs = Cutoffs(orders=cut)
    assert await store.count_prunable(cutoffs) == Pruned(orders=4)
    assert await store.prune("orders", cutoffs, limit=3) == Pruned(orders=3)
    assert await prune_all(store, cutoffs, limit=3) == Pruned(orders=1)
    assert await store.count_prunable(cutoffs) == Pruned()
    for gone in ("F-OLD", "F-OLD2", "F-OLD3", "F-CANCELLED"):
        assert await store.order_facts(gone) is None
    for kept in ("F-LATE", "F-YOUNG"):
        assert await store.order_facts(kept) is not None
    assert await store.get_event("evt-F-OLD-delivered-10") is not None  # events: their window
    assert await prune_all(store, Cutoffs(), limit=3) == Pruned()


async def test_no_cutoffs_prune_nothing(store: Store) -> None:
    await retention_scene(store)
    assert await store.count_prunable(Cutoffs()) == Pruned()
    assert await prune_all(store, Cutoffs(), limit=5) == Pruned()


async def test_prune_removes_at_most_limit_rows_of_its_table(store: Store) -> None:
    for i in range(7):
        await store.reject(RejectedRequest(received_at=T0, reason="bad", body=str(i).encode()))
    assert await store.prune("rejected", WINDOWS, limit=3) == Pruned(rejected=3)
    assert await store.prune("rejected", WINDOWS, limit=3) == Pruned(rejected=3)
    assert await store.prune("rejected", WINDOWS, limit=3) == Pruned(rejected=1)
    assert await store.count_rejected() == 0


async def test_size_bytes_counts_what_is_stored(store: Store) -> None:
    before = await store.size_bytes()
    assert before > 0
    await ingest(store, events=[event(f"S{i}", id_=f"evt-size-{i}") for i in range(200)])
    assert await store.size_bytes() > before


# -- the pull tracker's orders (TrackingStore) -------------------------------------------------


async def test_tracking_follows_open_orders_from_events_contacts_and_track_orders(
    store: Store,
) -> None:
    await ingest(store, events=[event("O-OLD", minute=0), event("O-NEW", minute=30)])
    await ingest(store, events=[event("O-DONE"), event("O-DONE", Status.DELIVERED, minute=5)])
    await ingest(store, contacts=[Contact(order_id="O-CONTACT", name="Ani")])
    assert await store.track_orders([("O-ADDED", "instant"), ("O-OLD", "express")], now=T0) == 1
    now = T0 + timedelta(hours=1)
    claim = PullClaim(now=now, limit=10, lease_seconds=60, stale_before=T0 + timedelta(minutes=10))
    claimed = await store.claim_pulls(claim)
    # Without any event first (by order id), then oldest last update; O-NEW is not stale yet.
    assert [o.order_id for o in claimed] == ["O-ADDED", "O-CONTACT", "O-OLD"]
    old = claimed[2]
    assert (old.last_status, old.last_update, old.kind) == (Status.SHIPPED, T0, "express")
    assert claimed[0].kind == "instant" and claimed[0].last_status is None
    # Leased: not handed out again until the lease runs out.
    assert await store.claim_pulls(claim) == []
    later = msgspec.structs.replace(claim, now=now + timedelta(seconds=61))
    assert len(await store.claim_pulls(later)) == 3
    done = await store.get_tracking("O-DONE")
    assert done is not None and done.closed and done.last_status is Status.DELIVERED
    assert (await store.tracking_counts()).open == 4


async def test_a_refused_order_stays_open_until_it_is_returned(store: Store) -> None:
    claim = PullClaim(now=T0, limit=10, lease_seconds=0, stale_before=T0 + timedelta(days=1))
    await ingest(store, events=[event("O-R"), event("O-R", Status.REJECTED, minute=5)])
    assert [o.order_id for o in await store.claim_pulls(claim)] == ["O-R"]
    refused = await store.get_tracking("O-R")
    assert refused is not None and refused.last_status is Status.REJECTED
    assert not refused.closed  # it goes back to the shop: followed until it is returned
    await ingest(store, events=[event("O-R", Status.RETURNED, minute=9)])
    assert await store.claim_pulls(claim) == []
    back = await store.get_tracking("O-R")
    assert back is not None and back.closed and back.last_status is Status.RETURNED


async def test_a_finished_pull_waits_for_its_next_pull_and_gone_orders_never_come_back(
    store: Store,
) -> None:
    await ingest(store, events=[event("O-1"), event("O-2")])
    now = T0 + timedelta(hours=1)
    claim = PullClaim(now=now, limit=10, lease_seconds=60, stale_before=now)
    assert len(await store.claim_pulls(claim)) == 2
    await store.finish_pull("O-1", now=now, next_pull_at=now + timedelta(hours=2))
    await store.finish_pull("O-2", now=now, next_pull_at=now, gone="KiriminAja: not found")
    soon = msgspec.structs.replace(claim, now=now + timedelta(hours=1))
    assert await store.claim_pulls(soon) == []
    due = msgspec.structs.replace(claim, now=now + timedelta(hours=2))
    (again,) = await store.claim_pulls(due)
    assert again.order_id == "O-1" and again.last_pulled_at == now
    gone = await store.get_tracking("O-2")
    assert gone is not None and gone.gone == "KiriminAja: not found"
    # A catch-up pass takes every open order not pulled since, whatever its schedule.
    await store.finish_pull("O-1", now=now, next_pull_at=now + timedelta(days=9))
    catch_up = PullClaim(
        now=now + timedelta(minutes=1), limit=10, lease_seconds=60, pulled_before=now
    )
    assert await store.claim_pulls(catch_up) == []
    catch_up = msgspec.structs.replace(catch_up, pulled_before=now + timedelta(seconds=1))
    assert [o.order_id for o in await store.claim_pulls(catch_up)] == ["O-1"]


async def test_claims_take_the_least_recently_asked_first_and_a_pass_asks_each_once(
    store: Store,
) -> None:
    await ingest(store, events=[event(f"O-{i}", minute=i) for i in range(3)])  # O-0 oldest
    assert await store.track_orders([("O-ADDED", "instant")], now=T0) == 1
    start = T0 + timedelta(hours=1)
    claim = PullClaim(now=start, limit=10, lease_seconds=60, stale_before=start)
    first = await store.claim_pulls(msgspec.structs.replace(claim, asked_before=start))
    # Never asked: without any event first, then oldest last update.
    assert [o.order_id for o in first] == ["O-ADDED", "O-0", "O-1", "O-2"]
    assert all(o.last_asked_at is None for o in first)
    second = start + timedelta(seconds=1)
    await store.finish_pull("O-0", now=second, next_pull_at=second)  # due again at once
    await store.finish_pull("O-1", now=second, next_pull_at=second, answered=False)  # try later
    # handed back unasked (a try later ended the pass before it)
    await store.finish_pull("O-2", now=second, next_pull_at=second, answered=False, asked=False)
    await store.finish_pull("O-ADDED", now=start + timedelta(seconds=2), next_pull_at=second)

    # The same pass (asked before it began) takes only what it has not asked yet.
    later = msgspec.structs.replace(claim, now=start + timedelta(minutes=5), asked_before=start)
    (rest,) = await store.claim_pulls(later)
    assert rest.order_id == "O-2" and rest.last_asked_at is None
    await store.finish_pull("O-2", now=later.now, next_pull_at=later.now)

    # The next pass: least recently asked first, whatever their updates.
    asked = {o: await store.get_tracking(o) for o in ("O-0", "O-1", "O-ADDED")}
    assert {o: t.last_asked_at for o, t in asked.items() if t} == {
        "O-0": second,
        "O-1": second,
        "O-ADDED": start + timedelta(seconds=2),
    }
    assert asked["O-1"] is not None and asked["O-1"].last_pulled_at is None  # not answered
    after = start + timedelta(minutes=10)
    next_pass = msgspec.structs.replace(claim, now=after, stale_before=after, asked_before=after)
    assert [o.order_id for o in await store.claim_pulls(next_pass)] == [
        "O-0",
        "O-1",
        "O-ADDED",
        "O-2",
    ]


async def test_the_oldest_due_pull_is_when_the_longest_waiting_order_became_due(
    store: Store,
) -> None:
    hour = 3600.0
    await ingest(store, events=[event("O-1"), event("O-2", minute=30)], now=T0)
    done = [event("O-DONE"), event("O-DONE", Status.DELIVERED, minute=1)]
    await ingest(store, events=done, now=T0)
    assert await store.oldest_due_pull(now=T0 + timedelta(minutes=59), stale_after=hour) is None
    now = T0 + timedelta(hours=2)
    assert await store.oldest_due_pull(now=now, stale_after=hour) == T0 + timedelta(hours=1)
    # Asked about: due again at its next pull; O-2 is the one waiting now.
    await store.finish_pull("O-1", now=now, next_pull_at=now + timedelta(hours=1))
    assert await store.oldest_due_pull(now=now, stale_after=hour) == T0 + timedelta(minutes=90)
    await store.finish_pull("O-2", now=now, next_pull_at=now, gone="KiriminAja: not found")
    assert await store.oldest_due_pull(now=now, stale_after=hour) is None
    # An order tracked later than its update became due when it was first tracked.
    added = now + timedelta(minutes=10)
    assert await store.track_orders([("O-ADDED", "express")], now=added) == 1
    later = now + timedelta(hours=2)
    assert await store.oldest_due_pull(now=later, stale_after=hour) == added


async def test_concurrent_claims_never_hand_out_one_order_twice(store: Store) -> None:
    await ingest(store, events=[event(f"O-{i}", minute=i) for i in range(20)])
    now = T0 + timedelta(hours=1)
    claim = PullClaim(now=now, limit=3, lease_seconds=60, stale_before=now)
    batches = await asyncio.gather(*(store.claim_pulls(claim) for _ in range(10)))
    taken = [o.order_id for batch in batches for o in batch]
    assert sorted(taken) == sorted(f"O-{i}" for i in range(20))


async def test_claim_stuck_marks_each_wait_once_until_the_order_moves(store: Store) -> None:
    await ingest(store, events=[event("O-1"), event("O-2", Status.PROCESSED)])
    after = {Status.SHIPPED: 3600.0}
    assert await store.claim_stuck(after, now=T0 + timedelta(minutes=59), limit=10) == []
    now = T0 + timedelta(hours=2)
    (stuck,) = await store.claim_stuck(after, now=now, limit=10)
    assert (stuck.order_id, stuck.stuck_status, stuck.stuck_since) == ("O-1", Status.SHIPPED, T0)
    assert await store.claim_stuck(after, now=now + timedelta(days=1), limit=10) == []
    assert (await store.tracking_counts()).stuck == 1
    await ingest(store, events=[event("O-1", minute=180)])  # it moves
    assert await store.claim_stuck(after, now=now + timedelta(minutes=61), limit=10) == []
    (again,) = await store.claim_stuck(after, now=now + timedelta(hours=3), limit=10)
    assert again.stuck_since == T0 + timedelta(minutes=180)


async def test_known_statuses_and_the_last_push(store: Store) -> None:
    problem = msgspec.structs.replace(
        event("O-1", Status.PROBLEM, minute=1), reason="alamat tidak ditemukan"
    )
    stuck = msgspec.structs.replace(event("O-1", Status.STUCK, minute=2), source="pull")
    await ingest(store, events=[event("O-1"), problem, stuck])
    assert await store.known_statuses("O-1") == {
        (Status.SHIPPED, None),
        (Status.PROBLEM, "alamat tidak ditemukan"),
    }
    assert await store.known_statuses("O-none") == set()
    assert await store.last_push_at() is None
    await store.append_push(new_push("O-1", at=T0))
    await store.append_push(new_push("O-2", at=T0 + timedelta(seconds=5)))
    pulled = msgspec.structs.replace(new_push("O-3", at=T0 + timedelta(seconds=9)), source="pull")
    await store.append_push(pulled)
    assert await store.last_push_at() == T0 + timedelta(seconds=5)


# -- grouped routes' groups (GroupStore; gateway.delivery.grouping) ------------------------------

WAIT, INTERVAL = 30.0, 300.0


def grouped(e: Event, key: dict[str, str | None] | None = None, sink: str = "ops") -> NewDelivery:
    """`e`'s delivery on a grouped route: waits 30 s, then at most one message per 5 min."""
    key = {"status": e.status.value} if key is None else key
    return NewDelivery(
        id=f"dlv-{e.id}-{sink}",
        event_id=e.id,
        route="cancellations",
        sink=sink,
        ordering="all",
        group=GroupRef(
            id=group_id("cancellations", sink, key), key=key, wait=WAIT, interval=INTERVAL
        ),
    )


async def put_grouped(store: Store, *events: Event, at: datetime, sink: str = "ops") -> None:
    await ingest(store, events=events, deliveries=[grouped(e, sink=sink) for e in events], now=at)


async def claim_groups(
    store: Store, at: datetime, worker: str = "w1"
) -> list[tuple[str, list[str]]]:
    """What a claim at `at` leases: (delivery id, its events' order ids) per claim."""
    claimed = await store.claim(worker=worker, now=at, limit=100, lease_seconds=30)
    out = []
    for c in claimed.claims:
        assert c.group is not None, "only grouped messages are waiting in these tests"
        assert c.event == c.group.events[0]
        out.append((c.delivery.id, [e.order_id for e in c.group.events]))
    return out


def canceled(order_id: str) -> Event:
    return event(order_id, Status.CANCELED)


async def test_a_groups_events_wait_together_until_the_first_message_is_due(store: Store) -> None:
    await put_grouped(store, canceled("G1"), canceled("G2"), at=T0)
    await put_grouped(store, canceled("G3"), at=T0 + timedelta(seconds=10))
    (waiting,) = await store.waiting_groups()
    first = grouped(canceled("G1"))
    assert first.group is not None
    assert (waiting.id, waiting.route, waiting.sink) == (first.group.id, "cancellations", "ops")
    assert (waiting.key, waiting.message_id, waiting.events) == (
        {"status": "canceled"},
        first.id,
        3,
    )
    assert waiting.due_at == T0 + timedelta(seconds=WAIT)
    assert await store.next_due() == T0 + timedelta(seconds=WAIT)
    assert await claim_groups(store, T0 + timedelta(seconds=29)) == []

    assert await claim_groups(store, T0 + timedelta(seconds=30)) == [(first.id, ["G1", "G2", "G3"])]
    assert await store.waiting_groups() == []
    found = await store.get_delivery(first.id)
    assert found is not None
    assert (found[0].order_id, found[0].event_id, found[0].route) == (
        first.group.id,
        canceled("G1").id,
        "cancellations",
    )
    group = await store.group_of(first.id)
    assert group is not None
    assert (group.key, [e.order_id for e in group.events], group.count) == (
        {"status": "canceled"},
        ["G1", "G2", "G3"],
        3,
    )
    assert await store.group_of("no-such-delivery") is None


async def test_events_after_the_claim_go_in_the_next_message_an_interval_later(
    store: Store,
) -> None:
    await put_grouped(store, canceled("G1"), at=T0)
    sent = T0 + timedelta(seconds=WAIT)
    (message,) = await claim_groups(store, sent)
    await put_grouped(store, canceled("G2"), at=sent + timedelta(seconds=1))
    await put_grouped(store, canceled("G3"), at=sent + timedelta(seconds=100))
    (waiting,) = await store.waiting_groups()
    assert (waiting.events, waiting.due_at) == (2, sent + timedelta(seconds=INTERVAL))
    await deliver(store, message[0])
    assert await claim_groups(store, sent + timedelta(seconds=INTERVAL - 1)) == []
    assert await claim_groups(store, sent + timedelta(seconds=INTERVAL)) == [
        (grouped(canceled("G2")).id, ["G2", "G3"])
    ]


async def test_a_quiet_group_starts_over_with_wait(store: Store) -> None:
    await put_grouped(store, canceled("G1"), at=T0)
    sent = T0 + timedelta(seconds=WAIT)
    (message,) = await claim_groups(store, sent)
    await deliver(store, message[0])
    later = sent + timedelta(seconds=INTERVAL + 60)
    await put_grouped(store, canceled("G2"), at=later)
    (waiting,) = await store.waiting_groups()
    assert waiting.due_at == later + timedelta(seconds=WAIT)


async def test_keys_and_sinks_make_separate_groups_and_plain_deliveries_stay_single(
    store: Store,
) -> None:
    a, b, c = canceled("K1"), event("K2", Status.RETURNED), canceled("K3")
    plain = event("K4")
    await ingest(
        store,
        events=[a, b, c, plain],
        deliveries=[grouped(a), grouped(b), grouped(c), grouped(c, sink="mail"), delivery(plain)],
        now=T0,
    )
    assert sorted((g.sink, g.key["status"], g.events) for g in await store.waiting_groups()) == [
        ("mail", "canceled", 1),
        ("ops", "canceled", 2),
        ("ops", "returned", 1),
    ]
    now = T0 + timedelta(seconds=WAIT)
    claimed = await store.claim(worker="w1", now=now, limit=100, lease_seconds=30)
    by_delivery = {
        c.delivery.id: None if c.group is None else [e.order_id for e in c.group.events]
        for c in claimed.claims
    }
    assert by_delivery == {
        grouped(a).id: ["K1", "K3"],
        grouped(b).id: ["K2"],
        grouped(c, sink="mail").id: ["K3"],
        delivery(plain).id: None,
    }


async def test_a_retried_or_replayed_message_carries_the_same_events(store: Store) -> None:
    await put_grouped(store, canceled("G1"), canceled("G2"), at=T0)
    sent = T0 + timedelta(seconds=WAIT)
    ((message, orders),) = await claim_groups(store, sent)
    assert orders == ["G1", "G2"]
    retry_at = sent + timedelta(seconds=5)
    assert await store.finish(
        message, worker="w1", attempt=None, state="pending", now=sent, next_attempt_at=retry_at
    )
    await put_grouped(store, canceled("G3"), at=sent + timedelta(seconds=1))  # the next message
    assert await claim_groups(store, retry_at) == [(message, ["G1", "G2"])]
    assert await store.finish(message, worker="w1", attempt=None, state="dead", now=retry_at)
    assert await store.replay_one(message, now=retry_at)
    assert await claim_groups(store, retry_at) == [(message, ["G1", "G2"])]
    await deliver(store, message)
    # the next message waited for its turn on the group's lane, and for the interval
    assert await claim_groups(store, sent + timedelta(seconds=INTERVAL)) == [
        (grouped(canceled("G3")).id, ["G3"])
    ]


async def test_a_waiting_group_survives_a_reopen(
    store: Store, backend: str, tmp_path: Path
) -> None:
    await put_grouped(store, canceled("G1"), canceled("G2"), at=T0)
    await store.close()
    again = open_store(store_url(backend, tmp_path))
    await again.open(now=T0)
    try:
        (waiting,) = await again.waiting_groups()
        assert waiting.events == 2
        first = grouped(canceled("G1")).id
        assert await claim_groups(again, T0 + timedelta(seconds=WAIT)) == [(first, ["G1", "G2"])]
        # a message whose lease ran out (the process died while sending) goes again, once,
        # with the same id and the same events
        later = T0 + timedelta(seconds=WAIT + 31)
        assert await claim_groups(again, later, worker="w2") == [(first, ["G1", "G2"])]
    finally:
        await again.close()


async def test_retention_keeps_the_events_of_a_message_still_to_send(store: Store) -> None:
    old = [event(f"G{i}", Status.CANCELED, received=T0) for i in range(3)]
    await ingest(store, events=old, deliveries=[grouped(e) for e in old], now=T0)
    cutoffs = Cutoffs(events=NOW, delivered=NOW, dead=NOW)
    assert await prune_all(store, cutoffs, limit=10) == Pruned()
    message = grouped(old[0]).id
    assert await claim_groups(store, NOW) == [(message, ["G0", "G1", "G2"])]
    assert await store.finish(message, worker="w1", attempt=None, state="delivered", now=NOW)
    removed = await prune_all(
        store, Cutoffs(events=NOW, delivered=NOW + timedelta(days=1)), limit=10
    )
    assert (removed.events, removed.deliveries) == (3, 1)
    assert await store.group_of(message) is None
    # the quiet group went with it: its next event waits as a first one does
    await put_grouped(store, canceled("G9"), at=NOW + timedelta(seconds=1))
    (waiting,) = await store.waiting_groups()
    assert waiting.due_at == NOW + timedelta(seconds=1 + WAIT)


async def test_concurrent_intakes_and_claims_put_each_event_in_exactly_one_message(
    store: Store, backend: str, tmp_path: Path
) -> None:
    """Two stores on one database (replicas; two processes on one SQLite file): one records
    events into one group while the other claims and delivers its messages."""
    other = open_store(store_url(backend, tmp_path))
    await other.open(now=T0)
    sent: list[str] = []
    orders = [f"C{i:03d}" for i in range(60)]

    async def intake() -> None:
        for i, order in enumerate(orders):
            await put_grouped(store, canceled(order), at=T0 + timedelta(milliseconds=i))

    async def claims(done: asyncio.Event) -> None:
        # every message due at once: a claim far in the future closes whatever is collecting
        at = T0 + timedelta(days=1)
        while True:
            finished = done.is_set()
            claimed = await other.claim(worker="w2", now=at, limit=10, lease_seconds=30)
            for c in claimed.claims:
                assert c.group is not None
                sent.extend(e.order_id for e in c.group.events)
                assert await other.finish(
                    c.delivery.id, worker="w2", attempt=None, state="delivered", now=at
                )
            if finished and not claimed.claims and not await other.waiting_groups():
                return
            at += timedelta(seconds=INTERVAL)
            await asyncio.sleep(0)

    try:
        done = asyncio.Event()
        claimer = asyncio.create_task(claims(done))
        await intake()
        done.set()
        await asyncio.wait_for(claimer, 60)
    finally:
        await other.close()
    assert sorted(sent) == orders, "every event in exactly one message"


# -- digests ----------------------------------------------------------------------------------


def trouble(
    order_id: str, status: Status, reason: str | None, *, at: datetime, **details: object
) -> Event:
    return Event(
        id=f"evt-{order_id}-{status.value}-{reason}",
        source="push",
        method="x",
        kind="express",
        status=status,
        raw_status="shipped" if status is Status.STUCK else None,
        order_id=order_id,
        awb=f"AWB-{order_id}",
        occurred_at=at,
        received_at=at,
        reason=reason,
        details=dict(details),
        raw={"service": "sicepat"} if not details else {},
    )


async def test_window_counts_by_status_courier_stuck_troubles_and_dead(store: Store) -> None:
    from gateway.store.digests import ReasonCount

    inside = T0 + timedelta(hours=1)
    events = [
        trouble("W1", Status.DELIVERED, None, at=inside, service="jne"),
        trouble("W2", Status.DELIVERED, None, at=inside, service="jne"),
        trouble("W3", Status.PROBLEM, "alamat tidak ditemukan", at=inside, service="jne"),
        trouble("W4", Status.PROBLEM, "alamat tidak ditemukan", at=inside),  # raw service
        trouble("W5", Status.RETURNED, "ditolak penerima", at=inside, service=""),
        trouble("W6", Status.STUCK, "no news", at=inside + timedelta(minutes=5), service="jne"),
        trouble("W7", Status.STUCK, None, at=inside + timedelta(minutes=9), service="jne"),
        # outside the window: before it, and at its end (the end is not in it)
        trouble("W8", Status.DELIVERED, None, at=T0 - timedelta(seconds=1), service="jne"),
        trouble("W9", Status.DELIVERED, None, at=T0 + timedelta(hours=2), service="jne"),
    ]
    await ingest(
        store, events=events, deliveries=[delivery(events[0]), delivery(events[2])], now=inside
    )
    ids = await claim_ids(store, now=inside)
    assert len(ids) == 2
    for i in ids:
        assert await store.finish(i, worker="w1", attempt=None, state="dead", now=inside)

    counts = await store.window_counts(start=T0, end=T0 + timedelta(hours=2), limit=1)

    assert counts.by_status == {
        Status.DELIVERED: 2,
        Status.PROBLEM: 2,
        Status.RETURNED: 1,
        Status.STUCK: 2,
    }
    assert counts.events == 7
    # details.service first, the raw item's `service` where the details have none
    assert counts.by_courier == {"jne": 5, "sicepat": 1, "": 1}
    assert counts.stuck_total == 2
    assert [(p.order_id, p.awb, p.stuck_in) for p in counts.stuck] == [("W7", "AWB-W7", "shipped")]
    assert counts.troubles == [
        ReasonCount(status=Status.PROBLEM, reason="alamat tidak ditemukan", count=2)
    ]
    assert counts.dead == {"erp": 2}
    empty = await store.window_counts(start=T0 + timedelta(days=1), end=T0 + timedelta(days=2))
    assert (empty.by_status, empty.dead, empty.stuck) == ({}, {}, [])


def digest_run(
    name: str, period: datetime | None, *, nonce: str = ""
) -> tuple[DigestRun, list[NewDelivery]]:
    from gateway.digests.message import DigestParts, digest_event

    parts = DigestParts(subject="s", text="t", html="<p>h</p>", blocks=[], payload={"n": 1})
    ev = digest_event(name=name, period=period, now=T0, parts=parts, nonce=nonce)
    deliveries = [
        NewDelivery(
            id=f"dlv-{ev.id}-{s}", event_id=ev.id, route=f"digest:{name}", sink=s, ordering="all"
        )
        for s in ("ops", "mail")
    ]
    return DigestRun(digest=name, period=period, event=ev), deliveries


async def test_a_digest_period_is_claimed_once_with_its_deliveries(store: Store) -> None:
    from gateway.digests.message import digest_of

    assert await store.last_digest("pagi") is None
    period = T0 + timedelta(days=1)
    # the first sight only records where the digest starts
    assert await store.record_digest("pagi", period=T0, run=None, deliveries=(), now=T0)
    assert await store.last_digest("pagi") == T0
    run, deliveries = digest_run("pagi", period)
    assert await store.record_digest(
        "pagi",
        period=period,
        run=run,
        deliveries=deliveries,
        now=period,
    )
    # a second claim of the period (another replica, a restart) keeps nothing
    again, more = digest_run("pagi", period, nonce="x")
    assert not await store.record_digest(
        "pagi",
        period=period,
        run=again,
        deliveries=more,
        now=period,
    )
    assert not await store.record_digest("pagi", period=T0, run=None, deliveries=(), now=period)
    assert await store.last_digest("pagi") == period
    assert len(await store.list_deliveries(DeliveryFilter())) == 2

    # the dispatcher claims them like any delivery, with the stand-in event
    claimed = await store.claim(worker="w1", now=period, limit=10, lease_seconds=30)
    assert sorted(c.delivery.sink for c in claimed.claims) == ["mail", "ops"]
    for c in claimed.claims:
        parts = digest_of(c.event)
        assert parts is not None and parts.payload == {"n": 1}
        assert c.delivery.order_id == "digest:pagi" and c.contact is None
    # and it is no shipment event: listings and counts never see it
    assert (await store.list_events(EventQuery())).items == []
    assert (await store.window_counts(start=T0, end=period + timedelta(days=1))).events == 0


async def test_concurrent_claims_of_one_period_keep_one(store: Store) -> None:
    period = T0 + timedelta(hours=1)
    runs = [digest_run("jam", period, nonce=str(i)) for i in range(4)]
    results = await asyncio.gather(
        *(
            store.record_digest("jam", period=period, run=r, deliveries=d, now=period)
            for r, d in runs
        )
    )
    assert sorted(results) == [False, False, False, True]
    assert len(await store.list_deliveries(DeliveryFilter())) == 2


async def test_a_digest_sent_by_hand_takes_no_period(store: Store) -> None:
    period = T0 + timedelta(hours=1)
    assert await store.record_digest("pagi", period=period, run=None, deliveries=(), now=T0)
    for nonce in ("a", "b"):
        run, deliveries = digest_run("pagi", None, nonce=nonce)
        assert await store.record_digest(
            "pagi",
            period=None,
            run=run,
            deliveries=deliveries,
            now=T0,
        )
    assert await store.last_digest("pagi") == period
    assert len(await store.list_deliveries(DeliveryFilter())) == 4


async def test_old_digest_runs_go_once_their_deliveries_are_gone(store: Store) -> None:
    old, _ = digest_run("pagi", T0)
    assert await store.record_digest("pagi", period=T0, run=old, deliveries=[], now=T0)
    kept, kept_deliveries = digest_run("pagi", T0 + timedelta(hours=1))
    assert await store.record_digest(
        "pagi",
        period=T0 + timedelta(hours=1),
        run=kept,
        deliveries=kept_deliveries,
        now=T0,
    )
    later = T0 + timedelta(days=100)
    new, _ = digest_run("pagi", later)
    assert await store.record_digest(
        "pagi",
        period=later,
        run=new,
        deliveries=[],
        now=later,
        forget_before=later,
    )
    # the one whose deliveries are still there stays, so a replay finds its event
    ids = await claim_ids(store, now=later)
    assert sorted(ids) == sorted(d.id for d in kept_deliveries)
