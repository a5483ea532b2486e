"""``kabarin deliveries`` (list them, dead letters first among the reasons to) and ``kabarin
replay`` (one, or the dead ones the filters name)."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from gateway import operations
from gateway.cli.arguments import Subparsers, command, positive, shop, since
from gateway.cli.running import list_shops, opened_store, operating
from gateway.config import Config, load_config
from gateway.delivery.model import Delivery, DeliveryFilter
from gateway.errors import NotReplayable, UnknownSink
from gateway.units import clipped, how_many

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = command(sub, "deliveries", "list deliveries (e.g. dead letters), newest first")
    p.add_argument(
        "--state", choices=["pending", "in_flight", "delivered", "dead", "skipped", "superseded"]
    )
    p.add_argument("--sink")
    p.add_argument("--order-id")
    p.add_argument("--since", type=since, help="ISO time or a duration ago, e.g. 2h")
    shop(p, "only this shop's deliveries")
    p.add_argument("--limit", type=positive, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_deliveries)

    p = command(sub, "replay", "put dead deliveries back to pending with a fresh retry schedule")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--delivery", metavar="ID", help="one delivery (dead, skipped or superseded)"
    )
    which.add_argument("--dead", action="store_true", help="every dead delivery matching filters")
    p.add_argument("--sink")
    p.add_argument("--order-id")
    p.add_argument("--since", type=since, help="ISO time or a duration ago, e.g. 2h")
    shop(p, "only this shop's dead deliveries (with --dead)")
    p.set_defaults(func=_replay)


def _unknown_sink(exc: UnknownSink) -> str:
    """A ``--sink`` that matches nothing because it is not configured (a typo, usually)."""
    known = ", ".join(exc.configured) or "none"
    return f"no sink named {exc.sink!r} has deliveries; configured sinks: {known}"


def _deliveries(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    items = asyncio.run(_list_deliveries(config, args))
    if args.json:
        for d in items:
            sys.stdout.buffer.write(msgspec.json.encode(d) + b"\n")
        return 0
    try:
        operations.sink_filter_matched(config, args.sink, len(items))
    except UnknownSink as exc:
        print(_unknown_sink(exc), file=sys.stderr)
        return 1
    if not items:
        print("no deliveries match")
        return 0
    print(f"{'ID':<28} {'STATE':<10} {'SINK':<14} {'ORDER':<20} {'TRIES':>5}  LAST ERROR / WAITING")
    for d in items:
        note = clipped(d.last_error or "", 60)
        if d.waiting and d.state == "pending":
            note = f"waiting: {d.waiting}"
        print(f"{d.id:<28} {d.state:<10} {d.sink:<14} {d.order_id:<20} {d.attempts:>5}  {note}")
    return 0


async def _list_deliveries(config: Config, args: argparse.Namespace) -> list[Delivery]:
    async with opened_store(config.store.url, cache_mb=config.store.cache_mb) as store:
        return await store.list_deliveries(
            DeliveryFilter(
                state=args.state,
                sink=args.sink,
                order_id=args.order_id,
                since=args.since,
                limit=args.limit,
                shops=list_shops(config, args.shop),
            )
        )


def _replay(args: argparse.Namespace) -> int:
    return asyncio.run(_run_replay(load_config(args.config), args))


async def _run_replay(config: Config, args: argparse.Namespace) -> int:
    async with operating(config) as rt:
        if args.delivery:
            try:
                await operations.replay_delivery(rt, args.delivery)
            except NotReplayable as exc:
                print(exc, file=sys.stderr)
                return 1
            print(f"replayed 1 delivery ({args.delivery})")
            return 0
        try:
            count = await operations.replay_dead(
                rt,
                sink=args.sink,
                order_id=args.order_id,
                since=args.since,
                shops=list_shops(config, args.shop),
            )
        except UnknownSink as exc:
            print(_unknown_sink(exc), file=sys.stderr)
            return 1
    print(f"replayed {how_many(count, 'dead delivery', 'dead deliveries')}")
    return 0
