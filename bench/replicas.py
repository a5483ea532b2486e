"""Replicas: ingest and delivery throughput of one and of three `kabarin serve` processes on
PostgreSQL, beside one process on SQLite, measured in the same run and printed as ratios.

Each setup gets a fresh store (a new schema on PostgreSQL) and 6,000 events: 60 pushes of 100
packages sent round-robin to its replicas by 8 threads, every event routed to one webhook sink
(the aiohttp receiver of bench/deliver.py, its own process). Ingest is events per second from
the first push until no push is pending in the store; delivery is events per second from the
first push until the receiver has had them all. On a 2-core machine three replicas share the
same two cores, so they cannot be faster than one: what this shows is the cost of sharing.

    .venv/bin/python bench/replicas.py [--events 6000] [--pg URL]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

import httpx
import psycopg

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = "bench-token"
ADMIN = "bench-admin-token-local"
PER_PUSH = 100
LOG = ["--log-level", "warning"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_replica(workdir: Path, store: str, receiver: str) -> tuple[subprocess.Popen[bytes], str]:
    workdir.mkdir(parents=True)
    config = workdir / "config.yaml"
    config.write_text(
        f"""
receiver: {{token: {TOKEN}}}
admin: {{token: {ADMIN}}}
store: {{url: "{store}"}}
dispatcher: {{poll_interval: 1s}}
sinks:
  erp:
    type: webhook
    url: {receiver}/hook
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    concurrency: 50
routes:
  - name: everything-to-erp
    sinks: [erp]
"""
    )
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "kabarin"), "serve", "--config", str(config), "--port", str(port), *LOG],
        cwd=workdir,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kabarin exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=0.5).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def received(receiver: str) -> int:
    count: int = httpx.get(f"{receiver}/stats").json()["count"]
    return count


def pending_pushes(url: str) -> int:
    r = httpx.get(
        f"{url}/admin/v1/pushes",
        params={"state": "pending", "limit": 1},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    return len(r.json()["items"])


def measure(name: str, store: str, replicas: int, events: int, receiver: str) -> dict[str, float]:
    base = received(receiver)
    with tempfile.TemporaryDirectory(prefix="kabarin-replicas-") as tmp:
        started = [start_replica(Path(tmp) / f"r{n}", store, receiver) for n in range(replicas)]
        urls = [url for _, url in started]
        tag = secrets.token_hex(3)
        bodies = [
            json.dumps(
                {
                    "method": "shipped_packages",
                    "data": [
                        {"order_id": f"B{tag}-{p}-{i}", "shipped_at": "2026-03-01 10:00:00"}
                        for i in range(PER_PUSH)
                    ],
                }
            ).encode()
            for p in range(events // PER_PUSH)
        ]
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        try:
            with httpx.Client(timeout=30) as client, ThreadPoolExecutor(8) as pool:
                t0 = time.perf_counter()

                def push(n: int) -> None:
                    url = urls[n % len(urls)]
                    r = client.post(f"{url}/kiriminaja/push", content=bodies[n], headers=headers)
                    r.raise_for_status()

                list(pool.map(push, range(len(bodies))))
                while pending_pushes(urls[0]):
                    time.sleep(0.02)
                ingested = time.perf_counter() - t0
                while received(receiver) - base < events:
                    time.sleep(0.05)
                delivered = time.perf_counter() - t0
        finally:
            for proc, _ in started:
                proc.terminate()
            for proc, _ in started:
                proc.wait(30)
    result = {"ingest": events / ingested, "deliver": events / delivered}
    print(
        f"  {name:<22} ingest {result['ingest']:>8,.0f} events/s"
        f"   delivery {result['deliver']:>7,.0f} events/s",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument(
        "--pg", default=os.environ.get("KABARIN_TEST_PG", "postgresql://postgres@127.0.0.1/test")
    )
    args = parser.parse_args()
    events = args.events - args.events % PER_PUSH

    port = free_port()
    receiver_proc = subprocess.Popen(
        [sys.executable, str(HERE / "deliver.py"), "--serve-receiver", str(port)]
    )
    receiver = f"http://127.0.0.1:{port}"
    schemas: list[str] = []
    try:
        for _ in range(100):
            try:
                received(receiver)
                break
            except httpx.TransportError:
                time.sleep(0.1)

        def pg_store() -> str:
            schema = f"kabarin_bench_{secrets.token_hex(4)}"
            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'CREATE SCHEMA "{schema}"')
            schemas.append(schema)
            sep = "&" if "?" in args.pg else "?"
            return f"{args.pg}{sep}options={quote(f'-c search_path={schema}')}"

        print(f"replicas: {events:,} events, {PER_PUSH} packages a push, one webhook sink")
        with tempfile.TemporaryDirectory(prefix="kabarin-sqlite-") as tmp:
            sqlite = measure("SQLite, 1 process", f"sqlite:///{tmp}/k.db", 1, events, receiver)
        one = measure("PostgreSQL, 1 replica", pg_store(), 1, events, receiver)
        three = measure("PostgreSQL, 3 replicas", pg_store(), 3, events, receiver)
        for what in ("ingest", "deliver"):
            print(
                f"  {what:<8} PG 1 / SQLite {one[what] / sqlite[what]:.2f}"
                f"   PG 3 / SQLite {three[what] / sqlite[what]:.2f}"
                f"   PG 3 / PG 1 {three[what] / one[what]:.2f}"
            )
    finally:
        receiver_proc.terminate()
        receiver_proc.wait(10)
        with psycopg.connect(args.pg, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
