"""`SessionStore`, the dashboard's sign-in sessions, on every backend (see conftest.BACKENDS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.shops import AdminScope, Shops
from gateway.store import SignedInSession, Store
from gateway.ui.session import LIFETIME, end_session, find_session, open_session

T0 = datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
TOKEN = "adm1n-t0ken-for-tests"
SCOPED = "toko-a-0wner-t0ken"
EVERYTHING = AdminScope(None)
TOKO_A = AdminScope(frozenset({"toko-a"}))
SHOPS = Shops({}, {TOKEN: EVERYTHING, SCOPED: TOKO_A})


def session(key: str, used_at: datetime = T0) -> SignedInSession:
    return SignedInSession(
        key=key, csrf=f"csrf-{key}", created_at=T0, used_at=used_at, token_mac=f"mac-{key}"
    )


async def test_a_session_is_kept_updated_and_forgotten(store: Store) -> None:
    await store.create_session(session("k1"), expired_before=T0 - timedelta(hours=12))
    assert await store.get_session("k1") == session("k1")
    assert await store.get_session("k2") is None

    later = T0 + timedelta(minutes=5)
    assert await store.update_session("k1", used_at=later, flash="3 deliveries replayed.")
    kept = await store.get_session("k1")
    assert kept is not None
    assert (kept.used_at, kept.flash, kept.csrf) == (later, "3 deliveries replayed.", "csrf-k1")
    assert not await store.update_session("k2", used_at=later, flash=None)

    assert await store.delete_session("k1")
    assert await store.get_session("k1") is None
    assert not await store.delete_session("k1")


async def test_creating_a_session_forgets_the_expired_ones(store: Store) -> None:
    await store.create_session(session("old", T0), expired_before=T0 - timedelta(days=1))
    await store.create_session(session("recent", T0 + timedelta(hours=1)), expired_before=T0)
    now = T0 + timedelta(hours=13)
    await store.create_session(session("new", now), expired_before=now - timedelta(hours=12))
    assert await store.get_session("old") is None
    assert await store.get_session("recent") is not None
    assert await store.get_session("new") is not None


async def test_a_cookie_finds_its_session_until_sign_out_or_12_hours_unused(
    store: Store,
) -> None:
    cookie, opened = await open_session(store, TOKEN, EVERYTHING, now=T0)
    assert cookie not in opened.key  # the store never holds the cookie itself
    assert await store.get_session(cookie) is None
    kept = await store.get_session(opened.key)
    assert kept is not None and kept.token_mac is not None and TOKEN not in kept.token_mac

    found = await find_session(store, SHOPS, cookie, now=T0 + timedelta(hours=11))
    assert found is not None
    assert (found.csrf, found.scope) == (opened.csrf, EVERYTHING)
    # That use was recorded: 12 hours after it, the session is still alive.
    assert await find_session(store, SHOPS, cookie, now=T0 + timedelta(hours=22)) is not None
    assert await find_session(store, SHOPS, "forged", now=T0) is None

    await end_session(store, cookie)
    assert await find_session(store, SHOPS, cookie, now=T0 + timedelta(hours=22)) is None

    cookie, _ = await open_session(store, TOKEN, EVERYTHING, now=T0)
    too_late = T0 + timedelta(seconds=LIFETIME + 1)
    assert await find_session(store, SHOPS, cookie, now=too_late) is None


async def test_a_session_sees_what_its_token_sees_now(store: Store) -> None:
    cookie, _ = await open_session(store, SCOPED, TOKO_A, now=T0)
    found = await find_session(store, SHOPS, cookie, now=T0)
    assert found is not None and found.scope == TOKO_A
    # The file now gives the token another shop: the session sees that one from now on.
    toko_b = AdminScope(frozenset({"toko-b"}))
    now_b = Shops({}, {TOKEN: EVERYTHING, SCOPED: toko_b})
    found = await find_session(store, now_b, cookie, now=T0)
    assert found is not None and found.scope == toko_b
    # The token is gone (or changed): the session ends, and stays ended.
    assert await find_session(store, Shops({}, {TOKEN: EVERYTHING}), cookie, now=T0) is None
    assert await find_session(store, SHOPS, cookie, now=T0) is None
    # Changing `admin.token` ends the sessions it signed in.
    cookie, _ = await open_session(store, TOKEN, EVERYTHING, now=T0)
    another = Shops({}, {"another-admin-t0ken": EVERYTHING})
    assert await find_session(store, another, cookie, now=T0) is None
