"""``kabarin contacts import``: the customers of orders from a CSV file, as the shop registers
them."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from gateway import operations
from gateway.cli.arguments import Subparsers, command, shop
from gateway.cli.running import one_shop, operating
from gateway.config import Config, load_config
from gateway.units import how_many

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("contacts", help="the customers of orders, as the shop registers them")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "import", "register contacts from a CSV file (they win over pushes)")
    p.add_argument("file", type=Path, help="header row: order_id,name,phone,email,language")
    shop(p, "the shop whose orders they are (required when the file lists several)")
    p.set_defaults(func=_contacts_import)


def _contacts_import(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"{args.file}: cannot read: {reason}", file=sys.stderr)
        return 1
    done = asyncio.run(_import(config, text, one_shop(config, args.shop)))
    count = done.imported
    print(f"{args.file}: imported {how_many(count, 'contact')}")
    if done.problems:
        rows = len(done.problems)
        print(f"{rows} row{'' if rows == 1 else 's'} not imported:", file=sys.stderr)
        for problem in done.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


async def _import(config: Config, text: str, shop: str) -> operations.ContactImport:
    async with operating(config) as rt:
        return await operations.import_contacts(rt, text, shop=shop)
