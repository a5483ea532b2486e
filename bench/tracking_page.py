"""Tracking page benchmark: one page's render time through the real server, and what a burst
of page views does to the push path.

`kabarin serve` (SQLite, one route, dispatcher off, ``tracking_page`` on) is given `--orders`
orders of 5 statuses each (with a contact), then:

1. Page: `--views` sequential ``GET /t/{token}`` over one keep-alive connection, round-robin
   over the orders: p50 and p99 of the time from request to the whole page (target p50 < 20 ms),
   and the same for a repeat view answered 304 (``If-None-Match``).
2. Push path: a push of 10 packages every 20 ms for `--seconds`, its time to the 200 (the
   push is in the log), first alone, then while another process views pages as fast as 8
   connections can: p50 and p99 of each, and their ratio (1.0: the views cost the push path
   nothing). The server is one process: views and pushes share its event loop and core.

    make bench        # or: .venv/bin/python bench/tracking_page.py [--orders 500] [--views 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import multiprocessing
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from multiprocessing.queues import Queue
from pathlib import Path

import httpx

from gateway.tracking_page import LinkSigner

BIN = Path(sys.executable).parent
TOKEN = "bench-token"
ADMIN = "bench-admin-token-0123"
SECRET = "bench-tracking-secret-0123456789abcdef"
STATUSES = (
    ("processed_packages", "date"),
    ("shipped_packages", "shipped_at"),
    ("problem_packages", "date"),
    ("returned_packages", "date"),
    ("finished_packages", "finished_at"),
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "config.yaml"
    config.write_text(
        f"""
receiver: {{token: {TOKEN}}}
store: {{url: "sqlite:///{workdir / "kabarin.db"}"}}
admin: {{token: {ADMIN}}}
dispatcher: {{enabled: false}}
tracking_page:
  enabled: true
  secret: {SECRET}
  public_url: http://127.0.0.1:{port}
  brand: {{name: Toko Bench, color: "#0a7f5a", whatsapp: "+6281299990000"}}
sinks:
  erp:
    type: webhook
    url: http://127.0.0.1:9/never
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
routes:
  - {{name: everything, sinks: [erp]}}
"""
    )
    proc = subprocess.Popen(
        [
            *(str(BIN / "kabarin"), "serve", "--config", str(config)),
            *("--port", str(port), "--log-level", "warning"),
        ],
        cwd=workdir,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"kabarin exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=0.5).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("kabarin did not come up")


def seed(client: httpx.Client, orders: list[str]) -> None:
    """Every order through 5 statuses (5 pushes of all orders), each with a contact; then wait
    until the intake has stored them."""
    base = datetime(2026, 12, 1, 8, 0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    for step, (method, field) in enumerate(STATUSES):
        when = (base + timedelta(hours=6 * step)).strftime("%Y-%m-%d %H:%M:%S")
        data = [
            {"order_id": o, field: when, "awb": f"AWB{o}", "service": "jne", "service_name": "REG"}
            | ({"reason": "Alamat tidak lengkap"} if method == "problem_packages" else {})
            for o in orders
        ]
        for chunk in range(0, len(data), 100):
            body = {"method": method, "data": data[chunk : chunk + 100]}
            r = client.post("/kiriminaja/push", json=body, headers=headers)
            r.raise_for_status()
    admin = {"Authorization": f"Bearer {ADMIN}"}
    for o in orders:
        contact = {"name": "Sari Dewi", "phone": "+6281234567890"}
        client.put(f"/admin/v1/contacts/{o}", json=contact, headers=admin).raise_for_status()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        r = client.get("/admin/v1/pushes", params={"state": "pending", "limit": 1}, headers=admin)
        if not r.json()["items"]:
            return
        time.sleep(0.2)
    raise SystemExit("the intake did not finish")


def ms(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def pages(url: str, links: list[str], views: int) -> tuple[list[float], list[float], int]:
    full: list[float] = []
    repeat: list[float] = []
    size = 0
    with httpx.Client(base_url=url) as client:
        tags: dict[str, str] = {}
        for link in itertools.islice(itertools.cycle(links), views):
            started = time.perf_counter()
            r = client.get(link)
            full.append(time.perf_counter() - started)
            assert r.status_code == 200, r.status_code
            tags[link] = r.headers["etag"]
            size = max(size, len(r.content))
        for link in itertools.islice(itertools.cycle(links), views):
            started = time.perf_counter()
            r = client.get(link, headers={"If-None-Match": tags[link]})
            repeat.append(time.perf_counter() - started)
            assert r.status_code == 304, r.status_code
    return full, repeat, size


def burst(url: str, links: list[str], stop_after: float, counter: Queue[int]) -> None:
    """Another process: 8 connections viewing pages as fast as they are answered."""

    async def viewer(client: httpx.AsyncClient, offset: int) -> int:
        done = 0
        deadline = time.monotonic() + stop_after
        while time.monotonic() < deadline:
            r = await client.get(links[(offset + done) % len(links)])
            assert r.status_code == 200
            done += 1
        return done

    async def main() -> int:
        limits = httpx.Limits(max_connections=8)
        async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
            return sum(await asyncio.gather(*(viewer(client, i * 37) for i in range(8))))

    counter.put(asyncio.run(main()))


def pushes(url: str, seconds: float, prefix: str) -> list[float]:
    """A push of 10 new packages every 20 ms; each one's time to its 200."""
    times: list[float] = []
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=url, headers=headers) as client:
        deadline = time.monotonic() + seconds
        for n in itertools.count():
            if time.monotonic() >= deadline:
                break
            data = [
                {"order_id": f"{prefix}-{n}-{i}", "shipped_at": "2026-12-07 10:00:00"}
                for i in range(10)
            ]
            started = time.perf_counter()
            r = client.post("/kiriminaja/push", json={"method": "shipped_packages", "data": data})
            times.append(time.perf_counter() - started)
            assert r.status_code == 200, r.text
            time.sleep(max(0.0, 0.02 - (time.perf_counter() - started)))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--views", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = start(Path(folder), port)
        try:
            orders = [f"OID-BENCH-{i:05}" for i in range(args.orders)]
            with httpx.Client(base_url=url, timeout=30) as client:
                seed(client, orders)
            signer = LinkSigner(SECRET, url, 86400)
            expires = datetime.now(UTC) + timedelta(days=1)
            links = [f"/t/{signer.sign('default', o, expires)}" for o in orders]
            full, repeat, size = pages(url, links, args.views)
            print(
                f"page: {len(full)} views of {len(orders)} orders (5 statuses each):"
                f" p50 {ms(full, 0.5):.2f} ms, p99 {ms(full, 0.99):.2f} ms"
                f" (target p50 < 20 ms), {size} bytes;"
                f" repeat view 304: p50 {ms(repeat, 0.5):.2f} ms, p99 {ms(repeat, 0.99):.2f} ms"
            )
            alone = pushes(url, args.seconds, "alone")
            counter: Queue[int] = multiprocessing.Queue()
            viewer = multiprocessing.Process(
                target=burst, args=(url, links, args.seconds + 1.0, counter)
            )
            viewer.start()
            time.sleep(0.5)  # the burst is under way
            during = pushes(url, args.seconds, "during")
            rate = counter.get(timeout=60) / (args.seconds + 1.0)
            viewer.join()
            print(
                f"push path: alone p50 {ms(alone, 0.5):.2f} ms, p99 {ms(alone, 0.99):.2f} ms;"
                f" during {rate:.0f} page views/s p50 {ms(during, 0.5):.2f} ms,"
                f" p99 {ms(during, 0.99):.2f} ms;"
                f" p50 ratio {statistics.median(during) / statistics.median(alone):.2f}"
            )
            print(json.dumps({"page_p50_ms": round(ms(full, 0.5), 2)}))
        finally:
            proc.terminate()
            proc.wait(20)


if __name__ == "__main__":
    main()
