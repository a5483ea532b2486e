"""Shops: the ``shops:`` block and its checks, the registry (which shop a token is, what an
admin token sees), the events' identity per shop, routes by shop and ``shop`` in templates."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from gateway.config import Config, parse_config
from gateway.errors import ConfigError
from gateway.events import DEFAULT_SHOP, Status, event_identity
from gateway.receiver import push_shop
from gateway.routing import Router
from gateway.shops import Shops
from gateway.sources.kiriminaja import decode_push
from gateway.sources.kiriminaja.normalise import normalise
from gateway.templating import Templates

TWO_SHOPS = """
receiver:
  timezone: Asia/Jakarta
shops:
  toko-a:
    name: Toko A
    token: key-of-toko-a
  toko-b:
    token: key-of-toko-b
    timezone: Asia/Makassar
    rate: 2/s
    kiriminaja: {env: sandbox}
admin:
  token: the-admin-token-0123
  tokens:
    - {token: toko-a-owner-token-01, shops: [toko-a]}
kiriminaja:
  api_key: top-level-api-key
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env={})
    return info.value.problems


def two_shops(extra: str = "") -> Config:
    return parse_config(TWO_SHOPS + extra, env={})


def test_a_one_shop_file_is_the_shop_default() -> None:
    config = parse_config("receiver: {token: t0ken}\nkiriminaja: {api_key: k3y}\n", env={})
    assert list(config.shops) == [DEFAULT_SHOP]
    (shop,) = Shops.from_config(config)
    assert (shop.id, shop.name, shop.token, shop.api_key) == ("default", "default", "t0ken", "k3y")
    assert shop.timezone == ZoneInfo("Asia/Jakarta")


def test_shops_are_read_with_their_own_keys_zones_and_rates() -> None:
    config = two_shops()
    shops = Shops.from_config(config)
    assert shops.ids == ["toko-a", "toko-b"]
    a, b = shops.get("toko-a"), shops.get("toko-b")
    assert a is not None and b is not None
    assert (a.name, b.name) == ("Toko A", "toko-b")
    # A listed shop's key is its own token, never the top-level api_key (another account's).
    assert (a.api_key, b.api_key) == ("key-of-toko-a", "key-of-toko-b")
    assert (a.kiriminaja.env, b.kiriminaja.env) == ("production", "sandbox")
    assert (a.pull_rate, b.pull_rate) == (5.0, 2.0)
    assert (a.timezone, b.timezone) == (ZoneInfo("Asia/Jakarta"), ZoneInfo("Asia/Makassar"))
    assert {"key-of-toko-a", "key-of-toko-b", "toko-a-owner-token-01"} <= config.secrets


def test_a_file_has_receiver_token_or_shops_not_both() -> None:
    (line,) = problems(TWO_SHOPS.replace("  timezone: Asia/Jakarta", "  token: t0ken"))
    assert line.startswith("receiver.token (line 3): a file with `shops:`")
    (line,) = problems("receiver: {path: /x}\n")
    assert line.startswith("receiver (line 1): missing `token`") and "shops:" in line
    (line,) = problems("store: {}\n")
    assert "missing required section `receiver`" in line


@pytest.mark.parametrize(
    ("shops", "problem"),
    [
        ("  toko a: {token: k}\n", "shops.toko a (line 3): a shop id is letters, digits"),
        ("  -x: {token: k}\n", "shops.-x (line 3): a shop id is letters, digits"),
        (
            "  a: {token: same}\n  b: {token: same}\n",
            "shops.b.token (line 4): the same token as shop 'a'",
        ),
        ("  a: {token: k, timezone: Mars/Olympus}\n", "unknown time zone `Mars/Olympus`"),
        ("  a: {token: k, rate: fast}\n", "shops.a.rate (line 3)"),
        ("  a: {tokn: k}\n", "shops.a.tokn (line 3): unknown key"),
    ],
)
def test_bad_shops_are_named_at_their_key(shops: str, problem: str) -> None:
    found = problems(f"receiver: {{}}\nshops:\n{shops}")
    assert any(problem in line for line in found), found


def test_scoped_admin_tokens_are_checked() -> None:
    short = TWO_SHOPS.replace("toko-a-owner-token-01", "short")
    assert any("admin.tokens[0].token" in p and "at least 16" in p for p in problems(short))
    unknown = TWO_SHOPS.replace("shops: [toko-a]", "shops: [toko-c]")
    assert problems(unknown) == [
        "admin.tokens[0].shops[0] (line 16): unknown shop 'toko-c' (shops: toko-a, toko-b)"
    ]
    twice = TWO_SHOPS.replace("toko-a-owner-token-01", "the-admin-token-0123")
    assert any("already used by another admin token" in p for p in problems(twice))


def test_a_token_finds_its_shop_and_the_shop_path_only_its_own() -> None:
    shops = Shops.from_config(two_shops())
    found = push_shop(shops, "Bearer key-of-toko-b", None)
    assert found is not None and found.id == "toko-b"
    assert push_shop(shops, "key-of-toko-a", "toko-a") is not None
    assert push_shop(shops, "Bearer key-of-toko-a", "toko-b") is None
    assert push_shop(shops, "Bearer key-of-toko-", None) is None
    assert push_shop(shops, "Bearer the-admin-token-0123", None) is None


def test_admin_tokens_see_every_shop_or_their_own() -> None:
    shops = Shops.from_config(two_shops())
    everything = shops.admin_scope("the-admin-token-0123")
    assert everything is not None and everything.everything
    scoped = shops.admin_scope(b"toko-a-owner-token-01")
    assert scoped is not None and not scoped.everything
    assert scoped.sees("toko-a") and not scoped.sees("toko-b")
    assert shops.admin_scope("key-of-toko-a") is None
    assert shops.admin_scope(None) is None


PUSH = b'{"method": "shipped_packages", "data": [{"order_id": "OID-1", "awb": "JNE1",\
 "shipped_at": "2024-03-01 15:00:00"}]}'


def test_the_same_push_from_two_shops_is_two_events_and_default_keeps_its_ids() -> None:
    received = datetime(2024, 3, 2, tzinfo=UTC)
    jakarta = ZoneInfo("Asia/Jakarta")
    (one,) = normalise(decode_push(PUSH), received_at=received, tz=jakarta).events
    (a,) = normalise(decode_push(PUSH), received_at=received, tz=jakarta, shop="toko-a").events
    (b,) = normalise(decode_push(PUSH), received_at=received, tz=jakarta, shop="toko-b").events
    assert (one.shop, a.shop, b.shop) == ("default", "toko-a", "toko-b")
    assert len({one.id, a.id, b.id}) == 3
    # What a one-shop Kabarin computed before shops existed: a repeat is still a repeat.
    assert one.id == "evt_c000754edea31b37ef3dd17d"
    assert one.id == event_identity(
        namespace="kiriminaja",
        method="shipped_packages",
        order_id="OID-1",
        status=Status.SHIPPED,
        raw_status=None,
        occurred_at=one.occurred_at,
        awb="JNE1",
        reason=None,
    )
    # Each shop's naive times in its own zone.
    (makassar,) = normalise(
        decode_push(PUSH), received_at=received, tz=ZoneInfo("Asia/Makassar"), shop="toko-b"
    ).events
    assert (one.occurred_at - makassar.occurred_at).total_seconds() == 3600


ROUTES = """
sinks:
  erp: {type: console}
routes:
  - name: a-only
    shop: toko-a
    sinks: [erp]
  - name: b-by-match
    match: {shop: [toko-b]}
    sinks: [erp]
"""


def test_routes_match_a_shop_and_an_unknown_one_is_a_config_error() -> None:
    router = Router.from_config(two_shops(ROUTES))
    (a,) = normalise(decode_push(PUSH), received_at=datetime.now(UTC), tz=UTC, shop="toko-a").events
    (b,) = normalise(decode_push(PUSH), received_at=datetime.now(UTC), tz=UTC, shop="toko-b").events
    assert [r.name for r in router.match(a)] == ["a-only"]
    assert [r.name for r in router.match(b)] == ["b-by-match"]
    with pytest.raises(ConfigError) as info:
        Router.from_config(two_shops(ROUTES.replace("shop: toko-a", "shop: [toko-a, toko-x]")))
    (line,) = info.value.problems
    assert line.startswith("routes[0].shop[1] (line 24): 'toko-x' is never a value")


def test_templates_see_the_shops_id_and_name() -> None:
    templates = Templates.for_config(two_shops())
    (a,) = normalise(decode_push(PUSH), received_at=datetime.now(UTC), tz=UTC, shop="toko-a").events
    text = templates.render(
        "{{ shop.name }} ({{ shop.id }}): {{ event.shop }}",
        event=a,
        contact=None,
        route="r",
        language="id",
    )
    assert text == "Toko A (toko-a): toko-a"
