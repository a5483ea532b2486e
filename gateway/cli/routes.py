"""``kabarin routes test``: stored events through a configuration's routes and templates,
sending nothing, compared with the configuration in use if asked."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gateway.cli.arguments import Subparsers, shop, since
from gateway.cli.running import (
    existing_store,
    list_shops,
    opened_store,
    print_invalid,
    validated,
)
from gateway.errors import ConfigError, KabarinError
from gateway.redaction import mask_url

if TYPE_CHECKING:
    from gateway.backtest import History

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("routes", help="try a configuration's routes before using it")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    help_ = "run stored events through a configuration's routes and templates, sending nothing"
    p = actions.add_parser("test", help=help_, description=help_)
    p.add_argument("--config", "-c", required=True, help="the configuration to test")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--since",
        type=since,
        default="7d",
        help="events received since an ISO time or a duration ago (default: 7d)",
    )
    p.add_argument("--store", metavar="URL", help="the store to read (default: the config's)")
    p.add_argument(
        "--diff", action="store_true", help="compare with the configuration in use (--against)"
    )
    p.add_argument(
        "--against",
        metavar="FILE",
        help="the configuration in use (implies --diff; default: $KABARIN_CONFIG, ./config.yaml)",
    )
    p.add_argument("--samples", type=int, default=3, help="messages shown per route and sink")
    shop(p, "only the events of this shop")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=_routes_test)


def _routes_test(args: argparse.Namespace) -> int:
    from gateway.backtest import History, format_report
    from gateway.redaction import Redactor, use_log_secrets
    from gateway.runtime import collect_secrets
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks

    config = validated(args.config)
    current = None
    against = args.against
    if args.diff or against is not None:
        if against is None:
            against = os.environ.get("KABARIN_CONFIG") or (
                "config.yaml" if Path("config.yaml").exists() else None
            )
        if against is None:
            raise KabarinError(
                "--diff compares with the configuration in use, and there is none: no --against"
                " FILE, $KABARIN_CONFIG is not set and ./config.yaml does not exist"
            )
        try:
            current = validated(against)
        except ConfigError as exc:
            print_invalid(against, exc)
            return 1
    url = args.store or config.store.url
    # An SQLite file that is not there would be created empty, and test nothing.
    existing_store("--store" if args.store else None, url)
    sinks = build_sinks(config.sinks, SinkDeps())
    redactor = Redactor(collect_secrets(config, sinks))
    use_log_secrets(redactor)
    history = History(
        config,
        sinks,
        redactor,
        samples=max(0, args.samples),
        current=current,
    )
    asyncio.run(_read_history(url, args.since, history, list_shops(config, args.shop)))
    report = history.report(
        config=args.config, store=mask_url(url), since=args.since, against=against
    )
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    else:
        print(format_report(report))
    return 2 if report.template_errors else 0


async def _read_history(
    url: str, since: datetime, history: History, shops: tuple[str, ...] | None
) -> None:
    async with opened_store(url) as store:
        await history.read(store, since, shops)
