"""The floor under bench/ingest.py: how fast SQLite alone stores Kabarin's rows on this machine.

One thread, no HTTP, no Python work per row beyond building the JSON parameter: pushes of 10
events plus 10 deliveries, 50 pushes per commit, with Kabarin's own schema, pragmas and statements.

    .venv/bin/python bench/store_floor.py [--pushes 12000]
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path

import msgspec

from gateway.store.rows import INSERT_DELIVERIES, INSERT_EVENTS
from gateway.store.schema import MIGRATIONS

BODY = {
    "id": "evt",
    "source": "push",
    "method": "shipped_packages",
    "kind": "express",
    "status": "shipped",
    "order_id": "O",
    "occurred_at": "2024-05-05T03:00:00Z",
    "received_at": "2024-05-05T03:00:00Z",
    "details": {"service": "jne", "sorting_code": "JOG"},
    "raw": {"order_id": "O", "awb": "A", "shipped_at": "2024-05-05 10:00:00", "service": "jne"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=12_000)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    args = parser.parse_args()
    encode = msgspec.json.Encoder().encode
    conn = sqlite3.connect(Path(tempfile.mkdtemp()) / "floor.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={args.synchronous}")
    conn.execute("PRAGMA cache_size=-65536")
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            conn.execute(statement)
    commit_time = 0.0
    started = time.perf_counter()
    for group in range(0, args.pushes, 50):
        conn.execute("BEGIN IMMEDIATE")
        for push in range(group, group + 50):
            events, deliveries = [], []
            for i in range(10):
                key = hashlib.blake2b(f"{push}-{i}".encode(), digest_size=12).hexdigest()
                order = f"O-{push}-{i}"
                events.append((f"evt_{key}", order, "shipped", "shipped_packages", 1, 2, BODY))
                deliveries.append((f"dlv_{key}", f"evt_{key}", "all", "erp", order, 1, "all", None))
            conn.execute(INSERT_EVENTS, (encode(events),))
            conn.execute(INSERT_DELIVERIES, (encode(deliveries), 5))
        before = time.perf_counter()
        conn.execute("COMMIT")
        commit_time += time.perf_counter() - before
    elapsed = time.perf_counter() - started
    print(
        f"SQLite alone, synchronous={args.synchronous}: {args.pushes / elapsed:,.0f} pushes/s "
        f"({args.pushes * 10 / elapsed:,.0f} events/s, each with a delivery); "
        f"COMMIT {commit_time / elapsed:.0%} of the time"
    )


if __name__ == "__main__":
    main()
