"""``kabarin rejected list | show | replay``: the bodies the push endpoint refused, kept for a
replay after a fix."""

from __future__ import annotations

import argparse
import asyncio
import sys

import msgspec

from gateway import operations
from gateway.cli.arguments import Subparsers, command, positive, shop
from gateway.cli.running import list_shops, operating
from gateway.config import Config, load_config
from gateway.units import clipped, local_time

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("rejected", help="bodies the push endpoint refused, kept for replay")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "list", "list rejected bodies, newest first")
    p.add_argument("--limit", type=positive, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    shop(p, "only this shop's bodies")
    p = command(actions, "show", "print one rejected body with its reason")
    p.add_argument("id", type=int)
    p = command(actions, "replay", "run a rejected body through the push endpoint again")
    p.add_argument("id", type=int)
    for action in actions.choices.values():
        action.set_defaults(func=_rejected)


def _rejected(args: argparse.Namespace) -> int:
    return asyncio.run(_run_rejected(load_config(args.config), args))


async def _run_rejected(config: Config, args: argparse.Namespace) -> int:
    from gateway.runtime import build_intake

    async with operating(config) as rt:
        if args.action == "list":
            rows = await rt.store.list_rejected(
                limit=args.limit, shops=list_shops(config, args.shop)
            )
            if args.json:
                for r in rows:
                    item = operations.rejected_item(r)
                    sys.stdout.buffer.write(msgspec.json.encode(item) + b"\n")
                return 0
            if not rows:
                print("no rejected bodies")
                return 0
            zone = config.receiver.tz
            print(f"{'ID':>6}  {'RECEIVED':<23}  {'SHOP':<12}  REASON")
            for r in rows:
                when = local_time(r.received_at, zone)
                print(f"{r.id:>6}  {when:<23}  {r.shop:<12}  {clipped(r.reason, 70)}")
            return 0
        found = await rt.store.get_rejected(args.id)
        if found is None:
            print(f"no rejected body {args.id}", file=sys.stderr)
            return 1
        if args.action == "show":
            item = operations.rejected_item(found)
            print(f"id            {item.id}")
            print(f"shop          {item.shop}")
            print(f"received_at   {local_time(item.received_at, config.receiver.tz)}")
            print(f"content_type  {item.content_type or '-'}")
            print(f"reason        {item.reason}")
            print(item.body)
            return 0
        result = await operations.replay_rejected(rt, found)
        answer = msgspec.json.encode(result.answer).decode()
        if result.outcome == "accepted":
            await build_intake(rt).drain()  # its events now, not at the server's next look
            print(f"rejected body {args.id} accepted and removed: {answer}")
            return 0
        print(f"rejected body {args.id} {result.outcome}: {answer}", file=sys.stderr)
        return 1
