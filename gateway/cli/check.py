"""``kabarin check`` (the configuration, its routes and templates, and what the sinks' own checks
say, such as what SMS texts cost) and
``kabarin simulate`` (what a push would do, sending and storing nothing)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.check import sink_checks
from gateway.cli.arguments import Subparsers, command
from gateway.cli.running import existing_store, validated
from gateway.config import Config
from gateway.errors import KabarinError, PushError
from gateway.redaction import mask_url
from gateway.units import how_many

if TYPE_CHECKING:
    from gateway.dryrun import Simulated

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = command(sub, "check", "validate the configuration, routes and templates")
    p.set_defaults(func=_check)

    p = command(sub, "simulate", "show what a push would do, without sending or storing anything")
    p.add_argument("push", type=Path, help="a push body (JSON file), or - for standard input")
    p.add_argument(
        "--source", default="kiriminaja", help="the push source it comes to (its sources: key)"
    )
    p.set_defaults(func=_simulate)


def _check(args: argparse.Namespace) -> int:
    config = validated(args.config)
    kinds = ", ".join(
        f"{name} ({type(c).__struct_config__.tag})" for name, c in config.sinks.items()
    )
    print(f"{args.config}: OK")
    print(
        f"  receiver  POST {config.receiver.path} (token set, times in {config.receiver.timezone})"
    )
    print(f"  store     {mask_url(config.store.url)}")
    print(f"  admin     {'on' if config.admin.token else 'off (no admin.token)'}")
    print(f"  sinks     {len(config.sinks)}: {kinds or '-'}")
    print(f"  routes    {len(config.routes)}: {', '.join(r.name for r in config.routes) or '-'}")
    page = config.tracking_page
    if page.enabled:
        print(f"  tracking  page on: {page.public_url}/t/<token>, links work {_ttl(page.link_ttl)}")
    for kind, line in sink_checks(config):
        print(f"  {kind:<9} {line}")
    return 0


def _ttl(seconds: float) -> str:
    """``60 days``, ``12 hours`` or ``90 seconds``: the largest unit it is a whole number of."""
    for unit, size in (("day", 86400), ("hour", 3600)):
        if seconds >= size and seconds % size == 0:
            return how_many(int(seconds // size), unit)
    return how_many(round(seconds), "second")


def _simulate(args: argparse.Namespace) -> int:
    from gateway.routing import Router
    from gateway.sources.registry import DEFAULT_SOURCE, get_source
    from gateway.templating import Templates
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks

    config = validated(args.config)
    if args.source != DEFAULT_SOURCE and args.source not in config.sources:
        known = ", ".join([DEFAULT_SOURCE, *config.sources])
        print(f"--source: no push source {args.source!r} is configured ({known})", file=sys.stderr)
        return 2
    try:
        body = sys.stdin.buffer.read() if str(args.push) == "-" else args.push.read_bytes()
    except OSError as exc:
        print(f"{args.push}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(
            _simulated(
                config,
                body,
                source=get_source(args.source),
                router=Router.from_config(config),
                templates=Templates.for_config(config),
                sinks=build_sinks(config.sinks, SinkDeps()),
                timezone=config.receiver.tz,
            )
        )
    except PushError as exc:
        print(f"not a push (Kabarin would answer 400): {exc}", file=sys.stderr)
        return 1
    print(f"push {result.method}: {how_many(len(result.events), 'event')}")
    for item in result.events:
        event = item.event
        print()
        print(
            f"event {event.id}  {event.status.value}  order {event.order_id}"
            f"  awb {event.awb or '-'}  {event.kind}  at {event.occurred_at.isoformat()}"
        )
        if not item.routes:
            print("  matches no route: stored and counted, sent nowhere")
        for delivery in item.deliveries:
            print(
                f"  route {delivery.route} -> sink {delivery.sink} (ordering {delivery.ordering})"
            )
            if delivery.error is not None:
                print(f"    template error: {delivery.error}")
                continue
            for line in (delivery.preview or "").splitlines() or [""]:
                print(f"    | {line}")
    return 0


async def _simulated(config: Config, body: bytes, **given: Any) -> Simulated:
    """`simulate`'s answer, with the delivery estimates of the configured store when there is
    one to read (none: templates see no estimate, as for an order the store does not know)."""
    from gateway.dryrun import simulate
    from gateway.insights.estimates import estimate_for
    from gateway.store import open_store

    try:
        existing_store(None, config.store.url)  # not an SQLite file it would create
        store = open_store(config.store.url, cache_mb=config.store.cache_mb)
        await store.open(now=datetime.now(UTC))
    except KabarinError:
        return await simulate(body, **given)
    try:
        return await simulate(
            body,
            **given,
            estimates=lambda order_id, shop: estimate_for(store, order_id, shop=shop),
        )
    finally:
        await store.close()
