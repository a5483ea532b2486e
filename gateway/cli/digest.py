"""``kabarin digest preview | send NAME``: a digest (``digests:`` in the configuration) of the
window ending now.

``preview`` prints it (text, or ``--format slack|email|webhook`` as those sinks would get it)
and keeps nothing. ``send`` keeps it and hands it to the dispatcher, which sends it to the
digest's sinks like any delivery (retried, dead-lettered, replayable); it takes no period's
place, so the next scheduled digest goes as planned.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from datetime import UTC, datetime

import msgspec

from gateway.cli.arguments import Subparsers, command
from gateway.cli.running import operating
from gateway.config import Config, load_config
from gateway.digests.message import DigestParts

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("digest", help="preview or send a digest now")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "preview", "print a digest of the window ending now; nothing is sent")
    p.add_argument("name", help="the digest's name under `digests:`")
    p.add_argument(
        "--format",
        choices=["text", "slack", "email", "webhook"],
        default="text",
        help="text (default), Slack's blocks, the mail (subject, text, HTML), or webhook JSON",
    )
    p = command(actions, "send", "send a digest of the window ending now to its sinks")
    p.add_argument("name", help="the digest's name under `digests:`")
    for action in actions.choices.values():
        action.set_defaults(func=_digest)


def _digest(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.name not in config.digests:
        known = ", ".join(sorted(config.digests)) or "none is configured"
        print(f"kabarin: no digest {args.name!r} (known: {known})", file=sys.stderr)
        return 1
    return asyncio.run(_run(config, args))


async def _run(config: Config, args: argparse.Namespace) -> int:
    from gateway.digests.runner import preview, send_now

    now = datetime.now(UTC).replace(microsecond=0)
    async with operating(config) as rt:
        if args.action == "preview":
            print(_shown(await preview(rt.store, config, args.name, now=now), args.format))
            return 0
        run = await send_now(rt.store, config, args.name, now=now)
        sinks = ", ".join(config.digests[args.name].sinks)
        print(f"digest {args.name} handed to {sinks} ({run.event.id}); `kabarin serve` sends it")
        return 0


def _shown(parts: DigestParts, form: str) -> str:
    if form == "slack":
        return _json({"text": parts.subject, "blocks": parts.blocks})
    if form == "webhook":
        return _json({"type": "digest", "data": parts.payload})
    if form == "email":
        return f"Subject: {parts.subject}\n\n{parts.text}\n\n{parts.html}"
    return parts.text


def _json(value: object) -> str:
    return msgspec.json.format(msgspec.json.encode(value), indent=2).decode()
