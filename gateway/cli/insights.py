"""``kabarin insights couriers``: the courier scorecards (`gateway.insights.scorecards`) as a
table, or as CSV with one column per figure."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from gateway.cli.arguments import Subparsers, command, shop
from gateway.cli.running import list_shops, operating
from gateway.config import Config, load_config
from gateway.errors import KabarinError
from gateway.insights.scorecards import Scorecard, as_csv, as_table, parse_since, scorecards
from gateway.units import local_time

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("insights", help="what the stored orders tell about the couriers")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(
        actions,
        "couriers",
        "courier scorecards: shipments, transit and pickup times (p50/p90 hours), return,"
        " problem and on-time rates per courier and product",
    )
    p.add_argument(
        "--since",
        default="30d",
        help="orders shipped since then: a duration back from now (30d, 12h, 2w) or an ISO"
        " time, in receiver.timezone when it names no zone (default: 30d)",
    )
    shop(p, "only this shop's orders")
    p.add_argument("--by-destination", action="store_true", help="one row per destination city too")
    p.add_argument("--csv", action="store_true", help="CSV, one column per figure")
    p.set_defaults(func=_couriers)


def _couriers(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        since = parse_since(args.since, datetime.now(UTC), config.receiver.tz)
    except (ValueError, OverflowError) as exc:
        raise KabarinError(f"--{exc}") from None
    shops = list_shops(config, args.shop)
    cards = _run(config, since, shops, args.by_destination)
    if args.csv:
        print(as_csv(cards, by_destination=args.by_destination), end="")
        return 0
    print(f"orders shipped since {local_time(since, config.receiver.tz)}")
    print(as_table(cards, by_destination=args.by_destination) if cards else "no shipments")
    return 0


def _run(
    config: Config, since: datetime, shops: tuple[str, ...] | None, by_destination: bool
) -> list[Scorecard]:
    async def read() -> list[Scorecard]:
        async with operating(config) as rt:
            return await scorecards(
                rt.store, since=since, shops=shops, by_destination=by_destination
            )

    return asyncio.run(read())
