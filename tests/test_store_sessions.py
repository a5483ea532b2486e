"""`SessionStore`, the dashboard's sign-in sessions, on every backend (see conftest.BACKENDS)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateway.store import SignedInSession, Store
from gateway.ui.session import LIFETIME, end_session, find_session, open_session

T0 = datetime(2024, 3, 1, 8, 0, 0, 123456, tzinfo=UTC)
TOKEN = b"adm1n-t0ken-for-tests"


def session(key: str, used_at: datetime = T0) -> SignedInSession:
    return SignedInSession(key=key, csrf=f"csrf-{key}", created_at=T0, used_at=used_at)


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
    cookie, opened = await open_session(store, TOKEN, now=T0)
    assert cookie not in opened.key  # the store never holds the cookie itself
    assert await store.get_session(cookie) is None

    found = await find_session(store, TOKEN, cookie, now=T0 + timedelta(hours=11))
    assert found is not None
    assert found.csrf == opened.csrf
    # That use was recorded: 12 hours after it, the session is still alive.
    assert await find_session(store, TOKEN, cookie, now=T0 + timedelta(hours=22)) is not None
    assert await find_session(store, b"another-admin-token", cookie, now=T0) is None
    assert await find_session(store, TOKEN, "forged", now=T0) is None

    await end_session(store, TOKEN, cookie)
    assert await find_session(store, TOKEN, cookie, now=T0 + timedelta(hours=22)) is None

    cookie, _ = await open_session(store, TOKEN, now=T0)
    too_late = T0 + timedelta(seconds=LIFETIME + 1)
    assert await find_session(store, TOKEN, cookie, now=too_late) is None
