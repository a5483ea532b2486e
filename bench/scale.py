"""Scale benchmark: claiming with a deep backlog, and what a backlog costs in memory.

The SQLite store is filled straight through bulk SQL (one statement per table, rows made by
SQLite itself), first to 10,000 pending deliveries, then to 1,000,000. At each size the real
`Store.claim` takes batches of 200 (the dispatcher's default), each put back afterwards with
`finish_many` so the backlog stays the same size; the median claim time is compared. The
process's resident memory is read before the fill and after the claims at 1,000,000.

    .venv/bin/python bench/scale.py            # or: --pending 1000000 --small 10000
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

from gateway.events import Event, Status
from gateway.store import Finished, Store, open_store

BATCH = 200
CLAIMS = 15
T0 = datetime(2026, 1, 1, tzinfo=UTC)

FILL_EVENTS = """
WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
INSERT INTO events (id, order_id, status, method, occurred_at, received_at, body)
SELECT 'evt-' || i, 'ORD-' || i, 'shipped', 'shipped_packages', ?3, ?3, ?4 FROM n
"""
FILL_DELIVERIES = """
WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < ?2)
INSERT INTO deliveries (id, event_id, route, sink, order_id, occurred_at, ordering, state,
                        next_attempt_at, created_at, updated_at)
SELECT 'dlv-' || i, 'evt-' || i, 'all', 'erp', 'ORD-' || i, ?3, 'all', 'pending', ?3 + i, ?3, ?3
FROM n
"""
"""Every delivery its own order (lane), due one microsecond after the previous one."""


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def fill(path: Path, start: int, stop: int) -> float:
    """Add deliveries start..stop-1 (with their events); seconds it took."""
    body = msgspec.json.encode(
        Event(
            id="evt-0",
            source="push",
            method="shipped_packages",
            kind="express",
            status=Status.SHIPPED,
            order_id="ORD-0",
            awb="JX0",
            occurred_at=T0,
            received_at=T0,
            details={"service": "jne"},
        )
    )
    t0_us = int(T0.timestamp() * 1_000_000)
    began = time.perf_counter()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        step = 250_000
        for lo in range(start, stop, step):
            hi = min(lo + step, stop)
            conn.execute("BEGIN")
            conn.execute(FILL_EVENTS, (lo, hi, t0_us, body))
            conn.execute(FILL_DELIVERIES, (lo, hi, t0_us))
            conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return time.perf_counter() - began


async def claim_times(store: Store, now: datetime) -> list[float]:
    """Seconds per claim of `BATCH`, each batch put back (not due) before the next claim."""
    times = []
    for _ in range(CLAIMS):
        began = time.perf_counter()
        claims = (await store.claim(worker="bench", now=now, limit=BATCH, lease_seconds=60)).claims
        times.append(time.perf_counter() - began)
        assert len(claims) == BATCH, f"claimed {len(claims)} of {BATCH}"
        later = now + timedelta(days=1)
        await store.finish_many(
            [
                Finished(
                    delivery_id=c.delivery.id,
                    attempt=None,
                    state="pending",
                    now=now,
                    next_attempt_at=later,
                    count_attempt=False,
                )
                for c in claims
            ],
            worker="bench",
        )
    return times


async def run(pending: int, small: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kabarin-scale-"))
    path = workdir / "scale.db"
    store = open_store(f"sqlite:///{path}")
    now = datetime.now(UTC)
    await store.open(now=now)
    await store.claim(worker="warm", now=T0, limit=1, lease_seconds=1)  # nothing due yet
    base = rss_mb()
    try:
        filled = fill(path, 0, small)
        at_small = await claim_times(store, now)
        filled += fill(path, small, pending)
        at_large = await claim_times(store, now)
        grown = rss_mb() - base
    finally:
        await store.close()
    size = path.stat().st_size / 2**20
    small_ms = statistics.median(at_small) * 1000
    large_ms = statistics.median(at_large) * 1000
    print(
        f"fill: {pending:,} pending deliveries (and their events) in {filled:.0f} s, {size:.0f} MiB"
    )
    print(f"claim of {BATCH}, median of {CLAIMS}:")
    print(f"  at {small:>9,} pending: {small_ms:7.2f} ms")
    print(f"  at {pending:>9,} pending: {large_ms:7.2f} ms")
    print(f"ratio {pending:,} / {small:,}: {large_ms / small_ms:.2f} (target <= 2)")
    print(f"resident memory grew by {grown:.0f} MB (target < 100 MB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(run(args.pending, args.small))


if __name__ == "__main__":
    main()
