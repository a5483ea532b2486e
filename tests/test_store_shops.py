"""The `Store` contract for several shops, on every backend: two shops' orders of one id are
two orders (events, contacts, lanes, tracking), and a store written before shops opens with
its rows in the shop ``default``."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import msgspec
import psycopg

from gateway.delivery.model import NewDelivery
from gateway.events import Contact, Event, Status, event_identity
from gateway.sources.kiriminaja import decode_push
from gateway.sources.kiriminaja.normalise import normalise
from gateway.store import NewPush, PullClaim, RejectedRequest, Store, open_store
from gateway.store.postgres.schema import MIGRATIONS as PG_MIGRATIONS
from gateway.store.sqlite.rows import to_us
from gateway.store.sqlite.schema import LOG_MIGRATIONS, MIGRATIONS, migrate

from .conftest import ingest, store_url

T0 = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)
PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "OID-1", "awb": "JNE1",\
 "shipped_at": "2024-03-01 15:00:00"}]}'


def shipped(shop: str, order_id: str = "OID-1", minute: int = 0) -> Event:
    return Event(
        id=event_identity(
            namespace="kiriminaja",
            method="shipped_packages",
            order_id=order_id,
            status=Status.SHIPPED,
            raw_status=None,
            occurred_at=T0 + timedelta(minutes=minute),
            awb=None,
            reason=None,
            shop=shop,
        ),
        shop=shop,
        source="push",
        method="shipped_packages",
        kind="express",
        status=Status.SHIPPED,
        order_id=order_id,
        occurred_at=T0 + timedelta(minutes=minute),
        received_at=T0,
    )


def to_erp(e: Event) -> NewDelivery:
    return NewDelivery(id=f"dlv-{e.id}", event_id=e.id, route="r", sink="erp", ordering="all")


async def test_two_shops_orders_of_one_id_are_two_orders(store: Store) -> None:
    a, b = shipped("toko-a"), shipped("toko-b")
    assert a.id != b.id
    result = await ingest(
        store,
        events=[a, b],
        deliveries=[to_erp(a), to_erp(b)],
        contacts=[
            Contact(order_id="OID-1", shop="toko-a", name="Ani"),
            Contact(order_id="OID-1", shop="toko-b", name="Budi"),
        ],
        now=T0,
    )
    assert (result.accepted, result.duplicates) == (2, 0)
    assert (await store.get_event(a.id)) == a
    assert (await store.get_event(b.id)) == b
    assert (await store.get_contact("OID-1", shop="toko-a")) == Contact(
        order_id="OID-1", shop="toko-a", name="Ani"
    )
    found = await store.get_contact("OID-1", shop="toko-b")
    assert found is not None and found.name == "Budi"
    assert await store.get_contact("OID-1") is None  # the shop `default` has no such order
    assert await store.delete_contact("OID-1", shop="toko-a")
    assert await store.get_contact("OID-1", shop="toko-a") is None
    assert await store.get_contact("OID-1", shop="toko-b") is not None

    # One lane per (shop, order, sink): both go at once, each with its own shop's contact.
    claimed = await store.claim(
        worker="w", now=T0 + timedelta(seconds=1), limit=10, lease_seconds=30
    )
    by_shop = {c.delivery.shop: c for c in claimed.claims}
    assert set(by_shop) == {"toko-a", "toko-b"}
    assert by_shop["toko-a"].contact is None
    contact_b = by_shop["toko-b"].contact
    assert contact_b is not None and contact_b.name == "Budi"
    assert by_shop["toko-b"].event == b


async def test_a_lane_is_one_shops_order(store: Store) -> None:
    first, second = shipped("toko-a"), shipped("toko-a", minute=5)
    other = shipped("toko-b", minute=5)
    await ingest(
        store,
        events=[first, second, other],
        deliveries=[to_erp(first), to_erp(second), to_erp(other)],
        now=T0,
    )
    claimed = await store.claim(
        worker="w", now=T0 + timedelta(seconds=1), limit=10, lease_seconds=30
    )
    # toko-a's two deliveries wait one behind the other; toko-b's is its own lane.
    assert sorted(c.delivery.event_id for c in claimed.claims) == sorted([first.id, other.id])


async def test_tracked_orders_are_kept_per_shop(store: Store) -> None:
    await ingest(store, events=[shipped("toko-a")], now=T0)
    assert await store.track_orders([("OID-1", "express")], now=T0, shop="toko-b") == 1
    stale = T0 + timedelta(hours=1)
    claim = PullClaim(now=T0 + timedelta(days=1), limit=10, lease_seconds=30, stale_before=stale)
    claimed = await store.claim_pulls(claim)
    assert sorted((o.shop, o.order_id) for o in claimed) == [
        ("toko-a", "OID-1"),
        ("toko-b", "OID-1"),
    ]
    assert await store.known_statuses("OID-1", shop="toko-a") == {(Status.SHIPPED, None)}
    assert await store.known_statuses("OID-1", shop="toko-b") == set()
    later = T0 + timedelta(days=2)
    await store.finish_pull("OID-1", shop="toko-b", now=later, next_pull_at=later, gone="unknown")
    tracked_b = await store.get_tracking("OID-1", shop="toko-b")
    tracked_a = await store.get_tracking("OID-1", shop="toko-a")
    assert tracked_b is not None and tracked_b.gone == "unknown"
    assert tracked_a is not None and tracked_a.gone is None
    assert tracked_a.last_status is Status.SHIPPED


async def test_the_push_log_and_rejected_bodies_keep_their_shop(store: Store) -> None:
    push = NewPush(id="psh_1", source="push", shop="toko-b", received_at=T0, body=PUSH, items=1)
    await store.append_push(push)
    logged = await store.get_push("psh_1")
    assert logged is not None and logged.shop == "toko-b"
    (pending,) = await store.pending_pushes(limit=10)
    assert pending.shop == "toko-b"
    await store.reject(RejectedRequest(received_at=T0, reason="x", body=b"{", shop="toko-b"))
    (kept,) = await store.list_rejected()
    assert kept.shop == "toko-b"


async def test_each_shops_newest_push_and_a_catch_up_of_some_shops(store: Store) -> None:
    for n, (shop, at) in enumerate([("toko-a", T0), ("toko-b", T0 + timedelta(hours=5))]):
        push = NewPush(id=f"psh_{n}", source="push", shop=shop, received_at=at, body=PUSH, items=1)
        await store.append_push(push)
    assert await store.last_push_at() == T0 + timedelta(hours=5)
    assert await store.last_push_at(shop="toko-a") == T0
    assert await store.last_push_at(shop="toko-c") is None
    await ingest(store, events=[shipped("toko-a"), shipped("toko-b")], now=T0)
    now = T0 + timedelta(hours=6)
    # Both orders were pulled an hour ago and are not due on the regular schedule.
    for shop in ("toko-a", "toko-b"):
        await store.finish_pull("OID-1", shop=shop, now=now - timedelta(hours=1), next_pull_at=now)
    regular = PullClaim(now=now, limit=10, lease_seconds=30, stale_before=T0)
    catch_up = msgspec.structs.replace(
        regular, pulled_before=now, catch_up_shops=frozenset({"toko-a"})
    )
    # Only toko-a's pushes stopped: its orders are caught up, toko-b's keep their schedule.
    assert [(o.shop, o.order_id) for o in await store.claim_pulls(catch_up)] == [
        ("toko-a", "OID-1")
    ]


# -- a store written before shops ---------------------------------------------------------------
def _old_event() -> Event:
    """The event a one-shop Kabarin made of `PUSH` before shops existed (its id then)."""
    (event,) = normalise(decode_push(PUSH), received_at=T0, tz=_jakarta()).events
    # The id main computed for it before shops existed (`event_identity` without a shop).
    assert event.id == "evt_c000754edea31b37ef3dd17d"
    return event


def _jakarta() -> ZoneInfo:
    return ZoneInfo("Asia/Jakarta")


def _body_before_shops(event: Event) -> bytes:
    """The stored JSON of an event written before shops: no ``shop`` key."""
    fields = msgspec.to_builtins(event)
    del fields["shop"]
    return msgspec.json.encode(fields)


def _write_old_sqlite(path: Path, event: Event) -> None:
    main = sqlite3.connect(path, isolation_level=None)
    migrate(main, now=0, migrations=[m for m in MIGRATIONS if m[0] < 13])
    main.execute(
        "INSERT INTO events (id, order_id, status, method, occurred_at, received_at, body,"
        " push_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.order_id,
            event.status.value,
            event.method,
            to_us(event.occurred_at),
            to_us(event.received_at),
            _body_before_shops(event),
            "psh_old",
        ),
    )
    main.execute(
        "INSERT INTO contacts (order_id, name, updated_at) VALUES (?, ?, ?)",
        (event.order_id, "Ani", to_us(T0)),
    )
    main.close()
    log = sqlite3.connect(path.with_name("kabarin.pushes.db"), isolation_level=None)
    migrate(log, now=0, migrations=[m for m in LOG_MIGRATIONS if m[0] < 2])
    log.execute(
        "INSERT INTO pushes (id, source, method, items, received_at, body, state)"
        " VALUES ('psh_old', 'push', 'shipped_packages', 1, ?, ?, 'processed')",
        (to_us(T0), PUSH),
    )
    log.close()


def _write_old_postgres(url: str, event: Event) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL)"
        )
        for version, ddl in PG_MIGRATIONS:
            if version < 8:
                conn.execute(ddl)
                conn.execute("INSERT INTO schema_version VALUES (%s, now())", (version,))
        conn.execute(
            "INSERT INTO events (id, order_id, status, method, occurred_at, received_at, body,"
            " push_id) VALUES (%s, %s, %s, %s, %s, %s, %s::json, 'psh_old')",
            (
                event.id,
                event.order_id,
                event.status.value,
                event.method,
                event.occurred_at,
                event.received_at,
                _body_before_shops(event).decode(),
            ),
        )
        conn.execute(
            "INSERT INTO contacts (order_id, name, updated_at) VALUES (%s, 'Ani', %s)",
            (event.order_id, T0),
        )
        # PostgreSQL's intake keeps the tracked orders in the commit that stores the events.
        conn.execute(
            "INSERT INTO tracking (order_id, kind, last_status, last_update, added_at)"
            " VALUES (%s, 'express', 'shipped', %s, %s)",
            (event.order_id, event.occurred_at, T0),
        )
        conn.execute(
            "INSERT INTO pushes (id, source, method, items, received_at, body, state)"
            " VALUES ('psh_old', 'push', 'shipped_packages', 1, %s, %s, 'processed')",
            (T0, PUSH),
        )


async def test_a_store_from_before_shops_opens_with_its_rows_in_default(
    backend: str, tmp_path: Path
) -> None:
    old = _old_event()
    url = store_url(backend, tmp_path)
    if backend == "sqlite":
        _write_old_sqlite(tmp_path / "kabarin.db", old)
    else:
        _write_old_postgres(url, old)
    store = open_store(url)
    await store.open(now=T0)
    try:
        assert await store.get_event(old.id) == old  # shop `default`
        contact = await store.get_contact(old.order_id)
        assert contact is not None and (contact.shop, contact.name) == ("default", "Ani")
        logged = await store.get_push("psh_old")
        assert logged is not None and logged.shop == "default"
        # The same push again, from the one shop: the same id, so a duplicate.
        (again,) = normalise(decode_push(PUSH), received_at=T0, tz=_jakarta()).events
        result = await ingest(store, events=[again], now=T0 + timedelta(hours=1))
        assert (result.accepted, result.duplicates) == (0, 1)
        # Another shop's push of the same order is its own event.
        (other,) = normalise(decode_push(PUSH), received_at=T0, tz=_jakarta(), shop="b").events
        assert (await ingest(store, events=[other], now=T0)).accepted == 1
        tracked = await store.claim_pulls(
            PullClaim(
                now=T0 + timedelta(days=3),
                limit=10,
                lease_seconds=5,
                stale_before=T0 + timedelta(days=2),
            )
        )
        assert sorted(o.shop for o in tracked) == ["b", "default"]
    finally:
        await store.close()
