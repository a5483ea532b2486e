"""``kabarin store prune`` (what the retention windows let go, now) and ``kabarin store
migrate`` (copy a store to another, SQLite and PostgreSQL either way)."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime

from gateway.cli.arguments import Subparsers, command
from gateway.cli.running import existing_store, opened_store
from gateway.config import Config, load_config
from gateway.errors import KabarinError
from gateway.redaction import mask_url

__all__ = ["register"]


def register(sub: Subparsers) -> None:
    p = sub.add_parser("store", help="look after the store")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command(actions, "prune", "remove now what the retention windows let go")
    p.add_argument(
        "--dry-run", action="store_true", help="count what would go per table, remove nothing"
    )
    p.set_defaults(func=_store_prune)
    p = command(actions, "migrate", "copy a store to another (SQLite <-> PostgreSQL); re-runnable")
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the store to read")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to fill")
    p.set_defaults(func=_store_migrate)


def _store_prune(args: argparse.Namespace) -> int:
    return asyncio.run(_run_store_prune(load_config(args.config), args.dry_run))


async def _run_store_prune(config: Config, dry_run: bool) -> int:
    from gateway.retention import Retention

    async with opened_store(config.store.url, cache_mb=config.store.cache_mb) as store:
        retention = Retention.from_config(store, config.retention)
        now = retention.clock()
        if dry_run:
            counts = await store.count_prunable(retention.policy.cutoffs(now))
        else:
            counts = await retention.run_once()
    head = "would remove" if dry_run else "removed"
    print(f"{head} (retention as of {now.isoformat(timespec='seconds')}):")
    for table in ("pushes", "events", "deliveries", "attempts", "rejected", "orders"):
        print(f"  {table:<11} {getattr(counts, table):>9}")
    return 0


def _store_migrate(args: argparse.Namespace) -> int:
    return asyncio.run(_run_store_migrate(args.source, args.target))


async def _run_store_migrate(source_url: str, target_url: str) -> int:
    from gateway.config import StoreConfig
    from gateway.store import open_store
    from gateway.store.moving import Portable, copy_store
    from gateway.units import FieldError

    if source_url == target_url:
        raise KabarinError("--from and --to name the same store")
    existing_store("--from", source_url)
    try:
        StoreConfig(url=target_url)
    except FieldError as exc:
        raise KabarinError(f"--to: {exc}") from None
    now = datetime.now(UTC)
    source, target = open_store(source_url), open_store(target_url)
    if not isinstance(source, Portable) or not isinstance(target, Portable):
        raise KabarinError("only SQLite and PostgreSQL stores can be copied")
    await source.open(now=now)
    try:
        await target.open(now=now)  # migrated to the current schema first
        try:
            counts = await copy_store(source, target)
        finally:
            await target.close()
    finally:
        await source.close()
    print(f"copied {mask_url(source_url)} -> {mask_url(target_url)}:")
    for table, (read, copied) in counts.items():
        print(f"  {table:<11} {copied:>9} copied  ({read - copied} already there)")
    return 0
