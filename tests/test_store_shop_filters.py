"""The admin lists' shop filters, on every backend: pushes, events, deliveries and rejected
bodies of the shops asked for only (an empty list of shops matches nothing), and a replay by
filter that stays within them."""

from __future__ import annotations

from datetime import timedelta

from gateway.delivery.model import DeliveryFilter
from gateway.store import EventQuery, NewPush, PushQuery, RejectedRequest, Store

from .conftest import ingest
from .test_store_shops import PUSH, T0, shipped, to_erp


async def _two_shops(store: Store) -> None:
    a, b = shipped("toko-a"), shipped("toko-b")
    await ingest(store, events=[a, b], deliveries=[to_erp(a), to_erp(b)], now=T0)
    for shop in ("toko-a", "toko-b"):
        await store.append_push(
            NewPush(id=f"psh_{shop}", source="push", shop=shop, received_at=T0, body=PUSH)
        )
        await store.reject(RejectedRequest(received_at=T0, reason="x", body=b"{", shop=shop))


async def test_each_list_keeps_the_shops_asked_for(store: Store) -> None:
    await _two_shops(store)
    only_b = ("toko-b",)
    pushes = await store.list_pushes(PushQuery(shops=only_b))
    assert [p.shop for p in pushes] == ["toko-b"]
    events = await store.list_events(EventQuery(shops=only_b))
    assert [s.event.shop for s in events.items] == ["toko-b"]
    deliveries = await store.list_deliveries(DeliveryFilter(shops=only_b))
    assert [d.shop for d in deliveries] == ["toko-b"]
    assert [r.shop for r in await store.list_rejected(shops=only_b)] == ["toko-b"]
    assert await store.count_rejected(shops=only_b) == 1
    assert await store.count_rejected() == 2
    both = ("toko-a", "toko-b")
    assert len(await store.list_deliveries(DeliveryFilter(shops=both))) == 2
    assert len((await store.list_events(EventQuery(shops=both))).items) == 2
    # No shop at all (a token whose shops are all gone from the file) sees nothing.
    assert await store.list_pushes(PushQuery(shops=())) == []
    assert (await store.list_events(EventQuery(shops=()))).items == []
    assert await store.list_deliveries(DeliveryFilter(shops=())) == []
    assert await store.list_rejected(shops=()) == []
    assert await store.count_rejected(shops=()) == 0


async def test_a_replay_by_filter_stays_within_its_shops(store: Store) -> None:
    a, b = shipped("toko-a"), shipped("toko-b")
    await ingest(store, events=[a, b], deliveries=[to_erp(a), to_erp(b)], now=T0)
    now = T0 + timedelta(seconds=1)
    claimed = await store.claim(worker="w", now=now, limit=10, lease_seconds=30)
    for claim in claimed.claims:
        await store.finish(claim.delivery.id, worker="w", attempt=None, state="dead", now=now)
    dead = await store.list_deliveries(DeliveryFilter(state="dead"))
    assert {d.shop for d in dead} == {"toko-a", "toko-b"}
    assert await store.replay(DeliveryFilter(shops=("toko-a",)), now=now) == 1
    (pending,) = await store.list_deliveries(DeliveryFilter(state="pending"))
    assert pending.shop == "toko-a"
