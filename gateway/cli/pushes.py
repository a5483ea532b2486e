"""``kabarin reprocess``: failed pushes through the intake again (after a fix), with the verdict
on each."""

from __future__ import annotations

import argparse
import asyncio
import sys

from gateway import operations
from gateway.cli.arguments import Subparsers, command, shop, since, wait
from gateway.cli.running import list_shops, operating, validated
from gateway.config import Config
from gateway.units import how_many

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = command(sub, "reprocess", "run failed pushes through the intake again (after a fix)")
    p.add_argument(
        "--failed",
        action="store_true",
        help="every failed push (the default; --since and --id narrow it)",
    )
    p.add_argument("--since", type=since, help="ISO time or a duration ago, e.g. 2h")
    p.add_argument("--id", action="append", default=[], help="only this push (repeatable)")
    shop(p, "only this shop's pushes")
    p.add_argument(
        "--wait",
        type=wait,
        default="1m",
        help="how long to wait for pushes another process's intake has taken (default: 1m)",
    )
    p.set_defaults(func=_reprocess)


def _reprocess(args: argparse.Namespace) -> int:
    return asyncio.run(_run_reprocess(validated(args.config), args))


async def _run_reprocess(config: Config, args: argparse.Namespace) -> int:
    def waiting(held: int) -> None:
        print(
            f"waiting up to {args.wait:g}s for {how_many(held, 'push', 'pushes')}"
            " another process's intake has taken",
            file=sys.stderr,
        )

    shops = list_shops(config, args.shop)
    async with operating(config) as rt:
        done = await operations.reprocess_failed(
            rt, since=args.since, ids=args.id, wait=args.wait, on_held=waiting, shops=shops
        )
    if not done.ids:
        print("no failed pushes match")
        return 0
    pending = (
        f", {len(done.held)} still pending (another process's intake has them)" if done.held else ""
    )
    print(
        f"{how_many(len(done.ids), 'failed push', 'failed pushes')} reprocessed:"
        f" {done.processed} processed, {len(done.failed)} failed{pending}"
    )
    for push_id, error in done.failed.items():
        print(f"  {push_id}  {error}", file=sys.stderr)
    for push_id in done.held:
        print(f"  {push_id}  still pending", file=sys.stderr)
    return 1 if done.failed or done.held else 0
