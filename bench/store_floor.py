"""The floor under Kabarin's ingest: how fast SQLite alone stores what a push becomes.

One thread, no HTTP, no Python work per row beyond building the parameters, with Kabarin's own
schema, files, pragmas and statements, in the order Kabarin writes them: the receiver's push
rows (the raw body, committed to the push log's file in groups of `--group`, as concurrent
requests share a commit), then per intake batch of `--batch` pushes one commit to the main file
with the batch's events (10 per push) and their deliveries (one route), and one to the log's
file marking every push processed.

    .venv/bin/python bench/store_floor.py [--pushes 20000]

bench/ingest.py runs `floor()` in the same run as Kabarin and prints the ratio.
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import tempfile
import time
from pathlib import Path

import msgspec

from gateway.store.roles import DEFAULT_CACHE_MB
from gateway.store.sqlite.schema import LOG_MIGRATIONS, migrate
from gateway.store.sqlite.sql import (
    APPEND_PUSH,
    INSERT_DELIVERIES,
    INSERT_EVENTS,
    MARK_PUSH,
    cache_size,
)

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
PACKAGES = 10


def push_body(push: int) -> bytes:
    """A 10-package push like bench/push.lua sends (same size on disk)."""
    items = ",".join(
        f'{{"order_id":"F-{push}-{i}","awb":"JX{push}{i}","shipped_at":"2024-05-05 10:{i:02d}:00",'
        '"sorting_code":"JOG-JOG1000-JKT2010","service":"jne","service_type":"regular"}'
        for i in range(PACKAGES)
    )
    return f'{{"method":"shipped_packages","data":[{items}]}}'.encode()


def floor(
    pushes: int,
    *,
    batch: int = 200,
    group: int = 64,
    synchronous: str = "FULL",
    cache_mb: int = DEFAULT_CACHE_MB,
) -> float:
    """Events (each with its delivery) stored per second by SQLite alone."""
    encode = msgspec.json.Encoder().encode
    folder = Path(tempfile.mkdtemp())
    conn = sqlite3.connect(folder / "floor.db", isolation_level=None)
    log = sqlite3.connect(folder / "floor.pushes.db", isolation_level=None)
    for c in (conn, log):
        c.execute("PRAGMA journal_mode=WAL")
        c.execute(f"PRAGMA synchronous={synchronous}")
        c.execute(cache_size(cache_mb))
    migrate(conn, now=time.time_ns() // 1000)
    migrate(log, now=time.time_ns() // 1000, migrations=LOG_MIGRATIONS)
    bodies = [push_body(p) for p in range(pushes)]
    started = time.perf_counter()
    for first in range(0, pushes, batch):
        numbers = range(first, min(first + batch, pushes))
        ids = [f"psh_{p:022x}" for p in numbers]
        for g in range(0, len(ids), group):  # the receiver: appends share a commit
            log.execute("BEGIN IMMEDIATE")
            for p in numbers[g : g + group]:
                received = time.time_ns() // 1000
                log.execute(
                    APPEND_PUSH,
                    (
                        ids[p - first],
                        "push",
                        "shipped_packages",
                        PACKAGES,
                        received,
                        None,
                        bodies[p],
                        "kiriminaja",
                        "default",
                    ),
                )
            log.execute("COMMIT")
        events, deliveries, marks = [], [], []  # the intake: one commit per batch
        now = time.time_ns() // 1000
        for push_id in ids:
            for i in range(PACKAGES):
                key = hashlib.blake2b(f"{push_id}-{i}".encode(), digest_size=12).hexdigest()
                order = f"O-{push_id}-{i}"
                events.append(
                    (
                        f"evt_{key}",
                        order,
                        "shipped",
                        "shipped_packages",
                        1,
                        2,
                        BODY,
                        push_id,
                        "default",
                    )
                )
                deliveries.append(
                    (
                        f"dlv_{key}",
                        f"evt_{key}",
                        "all",
                        "erp",
                        order,
                        1,
                        "all",
                        None,
                        0,
                        0,
                        "default",
                    )
                )
            marks.append(("processed", None, now, PACKAGES, 0, push_id))
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(INSERT_EVENTS, (encode(events),))
        conn.execute(INSERT_DELIVERIES, (encode(deliveries), now))
        conn.execute("COMMIT")
        log.execute("BEGIN IMMEDIATE")
        log.executemany(MARK_PUSH, marks)
        log.execute("COMMIT")
    elapsed = time.perf_counter() - started
    # INSERT OR IGNORE drops a row that breaks a constraint without a word: count what landed.
    stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    sent = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    if stored != pushes * PACKAGES or sent != stored:
        raise SystemExit(
            f"the floor stored {stored} events and {sent} deliveries, not {pushes * PACKAGES}"
        )
    conn.close()
    log.close()
    return pushes * PACKAGES / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20_000)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL", "OFF"])
    args = parser.parse_args()
    eps = floor(args.pushes, synchronous=args.synchronous)
    print(
        f"SQLite alone, synchronous={args.synchronous}: {eps / PACKAGES:,.0f} pushes/s "
        f"({eps:,.0f} events/s, each with a delivery; push row first, then the intake's commit)"
    )


if __name__ == "__main__":
    main()
