"""``kabarin pull`` (ask KiriminAja's tracking API now), ``kabarin track add`` (follow orders no
push has named) and ``kabarin register-callback`` (tell KiriminAja where to push)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway.cli.arguments import Subparsers, command, http_url, shop
from gateway.cli.running import one_shop, opened_store, operating, validated
from gateway.config import Config
from gateway.errors import KabarinError
from gateway.units import how_many

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = command(sub, "pull", "ask KiriminAja's tracking API about orders now and show what changed")
    p.add_argument("order_id", nargs="*", metavar="ORDER_ID")
    p.add_argument("--stale", action="store_true", help="one pass of the tracker over stale orders")
    p.add_argument("--instant", action="store_true", help="orders not seen yet are instant ones")
    shop(p, "the shop whose orders they are, asked with its key (required with several)")
    p.set_defaults(func=_pull)

    p = sub.add_parser("track", help="orders the pull tracker follows")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "add", "follow orders no push has named yet")
    p.add_argument("order_id", nargs="+", metavar="ORDER_ID")
    p.add_argument("--instant", action="store_true", help="instant orders (default: express)")
    shop(p, "the shop whose orders they are (required when the file lists several)")
    p.set_defaults(func=_track_add)

    p = command(
        sub, "register-callback", "tell KiriminAja where to push (POST /api/mitra/set_callback)"
    )
    p.add_argument(
        "--url", required=True, type=http_url, help="the full URL of Kabarin's push endpoint"
    )
    shop(p, "the shop (KiriminAja account) whose callback it is, told with its key")
    p.set_defaults(func=_register_callback)


def _pull(args: argparse.Namespace) -> int:
    if not args.order_id and not args.stale:
        raise KabarinError("name orders to pull, or --stale for one pass over stale orders")
    return asyncio.run(_run_pull(validated(args.config), args))


async def _run_pull(config: Config, args: argparse.Namespace) -> int:
    """Ask, append what is new to the push log, and run it through the intake here and now
    (event ids are deterministic: a server's intake taking it too stores nothing twice)."""
    from gateway.runtime import build_intake, build_tracker

    # Orders are a shop's, asked about with its key: `--shop` names it among several (a pass
    # over stale orders takes every shop's, each with its own key).
    chosen = one_shop(config, args.shop) if args.order_id else None
    async with operating(config) as rt:
        tracker = build_tracker(rt)
        results = []
        for order_id in args.order_id:
            assert chosen is not None
            known = await rt.store.get_tracking(order_id, shop=chosen)
            kind = known.kind if known else "instant" if args.instant else "express"
            results.append(await tracker.pull(order_id, kind, shop=chosen))
        if args.stale:
            results.extend((await tracker.run_pass()).pulls)
        await build_intake(rt).drain()
        for r in results:
            if r.outcome == "changed":
                print(f"{r.order_id}: new {', '.join(e.status.value for e in r.new)}")
            elif r.outcome == "unchanged":
                print(f"{r.order_id}: nothing new")
            else:
                print(f"{r.order_id}: {r.outcome.replace('_', ' ')}: {r.reason}")
        if args.stale and not results:
            print("no stale open orders")
        return 1 if any(r.outcome in ("try_later", "skipped") for r in results) else 0


def _track_add(args: argparse.Namespace) -> int:
    return asyncio.run(_run_track_add(validated(args.config), args))


async def _run_track_add(config: Config, args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from gateway.events import EventKind

    kind: EventKind = "instant" if args.instant else "express"
    orders = [(o, kind) for o in dict.fromkeys(args.order_id)]
    chosen = one_shop(config, args.shop)
    async with opened_store(config.store.url, cache_mb=config.store.cache_mb) as store:
        added = await store.track_orders(orders, now=datetime.now(UTC), shop=chosen)
    print(f"{how_many(added, 'order')} added, {len(orders) - added} already followed")
    if not config.pull.enabled:
        print(
            "warning: the pull tracker is off in this configuration (pull.enabled is not true):"
            " nothing will ask KiriminAja about these orders until it is on",
            file=sys.stderr,
        )
    return 0


def _register_callback(args: argparse.Namespace) -> int:
    config = validated(args.config)
    return asyncio.run(_run_register_callback(config, args.url, one_shop(config, args.shop)))


async def _run_register_callback(config: Config, url: str, shop_id: str) -> int:
    from gateway.shops import Shops
    from gateway.sources.kiriminaja.tracking import TrackingClient
    from sinks.http import make_http_client

    shop = Shops.from_config(config).get(shop_id)
    assert shop is not None  # `one_shop` checked it
    async with make_http_client() as http:
        client = TrackingClient(shop.kiriminaja, api_key=shop.api_key, http=http)
        accepted, answer = await client.set_callback(url)
    print(answer, file=sys.stdout if accepted else sys.stderr)
    return 0 if accepted else 1
