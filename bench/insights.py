"""Courier scorecards and delivery estimates on a big store: 1,000,000 orders' facts.

Fills ``order_facts`` with Kabarin's own schema and merge statement (`gateway.store.facts`),
then times, through the store's own calls, what the API, the CLI and the dashboard ask: the
scorecards of every shop over 30 days and over the whole year, one shop's, one shop's by
destination city, and one order's estimate (`estimate_for`, reading its transit history and
with it kept from an earlier estimate). Each figure is the median of
`--repeat` runs after one warm-up run. Target: every scorecard under a second.

The orders: 5 shops, 8 courier/product pairs, 30 destination cities, shipped evenly over the
last 365 days (so 30 days hold about 82,000 of them), 92 % delivered 6 h to 6 days after
shipping, 3 % returned, 5 % with a problem, 1 % stuck. PostgreSQL is analysed after loading
(as autovacuum would do on its own).

    .venv/bin/python bench/insights.py [--orders 1000000] [--backend sqlite|postgres|both]
        [--pg postgresql://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

from gateway.insights.estimates import Estimate, clear_histories, estimate_for
from gateway.insights.scorecards import scorecards
from gateway.store import Store, open_store
from gateway.store.facts import OrderFacts
from gateway.store.postgres import insights as pg_insights
from gateway.store.sqlite import insights as sqlite_insights

NOW = datetime.now(UTC).replace(microsecond=0)
SHOPS = [f"toko-{i}" for i in range(5)]
PAIRS = [
    ("jne", "REG"),
    ("jne", "YES"),
    ("sicepat", "BEST"),
    ("sicepat", "REG"),
    ("jnt", "EZ"),
    ("anteraja", "REG"),
    ("idexpress", "STD"),
    ("gosend", "instant"),
]
CITIES = [f"Kota {i:02d}" for i in range(30)]
CHUNK = 20_000


def orders(count: int, seed: int = 16) -> Iterator[list[OrderFacts]]:
    """The synthetic orders, in chunks."""
    rng = random.Random(seed)
    chunk: list[OrderFacts] = []
    for n in range(count):
        courier, product = PAIRS[n % len(PAIRS)]
        shipped = NOW - timedelta(seconds=rng.randrange(365 * 86400))
        created = shipped - timedelta(seconds=rng.randrange(3600, 48 * 3600))
        roll = rng.random()
        delivered = returned = problem = stuck = None
        if roll < 0.92:
            delivered = shipped + timedelta(seconds=rng.randrange(6 * 3600, 6 * 86400))
        elif roll < 0.95:
            returned = shipped + timedelta(days=rng.randrange(3, 14))
        else:
            problem = shipped + timedelta(hours=rng.randrange(2, 72))
        if rng.random() < 0.01:
            stuck = shipped + timedelta(days=2)
        chunk.append(
            OrderFacts(
                shop=SHOPS[n % len(SHOPS)],
                order_id=f"OID-{n:07d}",
                courier=courier,
                product=product,
                destination=CITIES[rng.randrange(len(CITIES))],
                estimation="2-3" if n % 3 else None,
                est_min_days=2 if n % 3 else None,
                est_max_days=3 if n % 3 else None,
                created_at=created,
                shipped_at=shipped,
                delivered_at=delivered,
                returned_at=returned,
                problem_at=problem,
                stuck_at=stuck,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_sqlite(path: Path, count: int) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for chunk in orders(count):
        conn.execute("BEGIN")
        sqlite_insights.record(conn, chunk)
        conn.execute("COMMIT")
    conn.close()


async def load_postgres(url: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        for chunk in orders(count):
            async with conn.transaction():
                await pg_insights.record(conn, chunk)
        await conn.set_autocommit(True)
        await conn.execute("VACUUM ANALYZE order_facts")


async def timed(run: Callable[[], Awaitable[Any]], repeat: int) -> tuple[float, Any]:
    await run()  # warm-up
    times = []
    result = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = await run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


async def fresh_estimate(store: Store, order_id: str) -> Estimate | None:
    """`estimate_for` reading the transit history from the store, not the 5 minutes' cache."""
    clear_histories()
    return await estimate_for(store, order_id, shop="toko-0")


async def measure(store: Store, repeat: int) -> list[tuple[str, float, str]]:
    since30 = NOW - timedelta(days=30)
    since90 = NOW - timedelta(days=90)
    since365 = NOW - timedelta(days=366)
    listed = await store.courier_orders("jne", since=since30, shops=["toko-0"], product="REG")
    open_order = next(o.order_id for o in listed if o.delivered_at is None and not o.returned_at)
    cases: list[tuple[str, Callable[[], Awaitable[Any]]]] = [
        ("scorecards, every shop, 30 days", lambda: scorecards(store, since=since30)),
        ("scorecards, every shop, 90 days", lambda: scorecards(store, since=since90)),
        ("scorecards, every shop, 365 days", lambda: scorecards(store, since=since365)),
        (
            "scorecards, one shop, 30 days",
            lambda: scorecards(store, since=since30, shops=["toko-1"]),
        ),
        (
            "scorecards, one shop by destination, 30 days",
            lambda: scorecards(store, since=since30, shops=["toko-1"], by_destination=True),
        ),
        (
            "transit history (an estimate's reads)",
            lambda: store.transit_history(
                shop="toko-0", courier="jne", product="REG", destination="Kota 07"
            ),
        ),
        ("estimate_for one order, history read", lambda: fresh_estimate(store, open_order)),
        (
            "estimate_for one order, history kept",
            lambda: estimate_for(store, open_order, shop="toko-0"),
        ),
    ]
    out = []
    for name, run in cases:
        seconds, result = await timed(run, repeat)
        rows = f"{len(result)} rows" if isinstance(result, list) else type(result).__name__
        if hasattr(result, "basis"):
            rows += f" from {result.basis}, {result.samples} samples"
        if isinstance(result, list) and result:
            shipments = sum(c.shipments for c in result)
            rows += f", {shipments:,} shipments"
        out.append((name, seconds, rows))
    return out


async def bench(url: str, repeat: int) -> list[tuple[str, float, str]]:
    store = open_store(url)
    await store.open(now=NOW)
    try:
        return await measure(store, repeat)
    finally:
        await store.close()


def report(backend: str, count: int, load: float, figures: list[tuple[str, float, str]]) -> bool:
    print(f"\n{backend}: {count:,} orders loaded in {load:.0f} s")
    ok = True
    for name, seconds, rows in figures:
        slow = name.startswith("scorecards") and seconds >= 1.0
        ok = ok and not slow
        print(f"  {name:<46} {seconds * 1000:8.1f} ms  ({rows}){'  SLOW' if slow else ''}")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    ok = True
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "kabarin.db"
            url = f"sqlite:///{path}"
            asyncio.run(_create(url))  # the schema, by the store's own migrations
            start = time.perf_counter()
            load_sqlite(path, args.orders)
            load = time.perf_counter() - start
            ok = report("SQLite", args.orders, load, asyncio.run(bench(url, args.repeat))) and ok
    if args.backend in ("postgres", "both"):
        schema = f"kabarin_bench_{secrets.token_hex(4)}"
        with psycopg.connect(args.pg, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        sep = "&" if "?" in args.pg else "?"
        url = f"{args.pg}{sep}options={quote(f'-c search_path={schema}')}"
        try:
            asyncio.run(_create(url))
            start = time.perf_counter()
            asyncio.run(load_postgres(url, args.orders))
            load = time.perf_counter() - start
            ok = (
                report("PostgreSQL", args.orders, load, asyncio.run(bench(url, args.repeat))) and ok
            )
        finally:
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
    return 0 if ok else 1


async def _create(url: str) -> None:
    store = open_store(url)
    await store.open(now=NOW)
    await store.close()


if __name__ == "__main__":
    raise SystemExit(main())
