"""Delivery benchmark: Kabarin's dispatcher against bare client loops, in one run.

A receiver answering 200 runs in its own process on 127.0.0.1. Measured against it:
1. Kabarin's dispatcher (SQLite store, webhook sink with Standard Webhooks signing,
   concurrency 50) draining 20,000 pending deliveries: claim, render, sign, send, record.
2. A bare `aiohttp.ClientSession` loop and a bare `httpx.AsyncClient` loop, 50 concurrent
   workers, POSTing the same kind of body; the faster one is the ceiling.
3. End-to-end latency at light load: `kabarin serve` gets one push every 20 ms; the time from
   the push's 200 to the receiver's arrival of the webhook, p50 and p99.

    make bench                    # or: .venv/bin/python bench/deliver.py --deliveries 20000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
from aiohttp import web

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONCURRENCY = 50


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- the receiver (its own process) ------------------------------------------------------------


def serve_receiver(port: int) -> None:
    arrivals: dict[str, float] = {}
    count = 0

    async def hook(request: web.Request) -> web.Response:
        nonlocal count
        body = await request.read()
        count += 1
        if request.query.get("record"):
            arrivals[json.loads(body)["data"]["order_id"]] = time.time()
        return web.Response(text="ok")

    async def stats(request: web.Request) -> web.Response:
        return web.json_response({"count": count, "arrivals": arrivals})

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def receiver_count(url: str, client: httpx.AsyncClient | None = None) -> int:
    """Requests the receiver has answered. Pass a client when polling: a new one builds an SSL
    context (CA certificates read) each time, a cost the measured process should not pay."""
    if client is None:
        async with httpx.AsyncClient() as fresh:
            return await receiver_count(url, fresh)
    r = await client.get(f"{url}/stats")
    count: int = r.json()["count"]
    return count


# -- 1. Kabarin's dispatcher -------------------------------------------------------------------


async def kabarin_dispatcher(receiver: str, deliveries: int, workdir: Path) -> float:
    from contextlib import AsyncExitStack

    from gateway.config import parse_config
    from gateway.intake import new_push_id
    from gateway.runtime import build_intake, open_runtime
    from gateway.store import NewPush

    config = parse_config(
        f"""
receiver: {{token: bench}}
store: {{url: "sqlite:///{workdir / "deliver.db"}"}}
dispatcher: {{enabled: true, batch: 200}}
sinks:
  erp: {{type: webhook, url: "{receiver}/hook", secret: {SECRET}, concurrency: {CONCURRENCY}}}
routes:
  - {{name: all, sinks: [erp]}}
"""
    )
    async with AsyncExitStack() as stack:
        rt = await open_runtime(config, stack, dispatcher=False)
        for start in range(0, deliveries, 100):  # fill the queue before the clock starts
            body = json.dumps(
                {
                    "method": "shipped_packages",
                    "data": [
                        {
                            "order_id": f"D-{i}",
                            "awb": f"JX{i}",
                            "shipped_at": "2024-05-05 10:00:00",
                            "service": "jne",
                        }
                        for i in range(start, min(start + 100, deliveries))
                    ],
                }
            )
            now = datetime.now(UTC)
            await rt.store.append_push(
                NewPush(id=new_push_id(now), source="push", received_at=now, body=body.encode())
            )
        await build_intake(rt).drain()
        before = await receiver_count(receiver)
        runtime = await open_runtime(config, stack, dispatcher=True)
        started = time.perf_counter()
        # Watch the receiver (a cheap GET in another process), not the store: counting pending
        # rows scans the table, and doing that 20 times a second would slow what is measured.
        async with httpx.AsyncClient() as probe:
            while True:
                if await receiver_count(receiver, probe) - before >= deliveries:
                    break
                await asyncio.sleep(0.2)
        while True:  # the last outcomes are being committed
            if sum(c.pending for c in await runtime.store.sink_counts()) == 0:
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
        sent = await receiver_count(receiver) - before
        if sent < deliveries:
            raise SystemExit(f"only {sent} of {deliveries} deliveries arrived")
        return deliveries / elapsed


# -- 2. bare client loops ----------------------------------------------------------------------


def sample_body() -> bytes:
    data = {
        "id": "evt_0",
        "source": "push",
        "method": "shipped_packages",
        "kind": "express",
        "status": "shipped",
        "order_id": "D-1",
        "awb": "JX1",
        "occurred_at": "2024-05-05T03:00:00Z",
        "received_at": "2024-05-05T03:00:01Z",
        "details": {"service": "jne"},
        "raw": {"order_id": "D-1", "awb": "JX1"},
    }
    return json.dumps(
        {"type": "shipment.shipped", "timestamp": "2024-05-05T03:00:01Z", "data": data}
    ).encode()


HEADERS = {
    "content-type": "application/json",
    "webhook-id": "x",
    "webhook-timestamp": "1",
    "webhook-signature": "v1,abc",
}
"""What a signed webhook carries, for the bare loops."""


async def aiohttp_loop(url: str, requests: int) -> float:
    body = sample_body()
    remaining = requests
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as s:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                async with s.post(url, data=body, headers=HEADERS) as r:
                    await r.read()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started)


async def httpx_loop(url: str, requests: int, *, kabarin_transport: bool = False) -> float:
    """A bare httpx loop: httpx's default transport, or Kabarin's client sending as the sinks
    do (`sinks.http.post`: the same client, transport, streaming read and classification),
    so the dispatcher's ratio to it is the cost of Kabarin alone."""
    from gateway.redaction import Redactor
    from sinks.http import make_http_client, post

    body = sample_body()
    remaining = requests
    limits = httpx.Limits(max_connections=CONCURRENCY)
    client = make_http_client() if kabarin_transport else httpx.AsyncClient(limits=limits)
    redactor = Redactor([SECRET])
    async with client:

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                if kabarin_transport:
                    await post(client, url, content=body, headers=HEADERS, redactor=redactor)
                else:
                    await client.post(url, content=body, headers=HEADERS)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
        return requests / (time.perf_counter() - started)


# -- 3. end-to-end latency ---------------------------------------------------------------------


def latency(receiver: str, workdir: Path, pushes: int) -> tuple[float, float]:
    port = free_port()
    config = workdir / "latency.yaml"
    config.write_text(
        f"""
receiver: {{token: bench}}
store: {{url: "sqlite:///{workdir / "latency.db"}"}}
sinks:
  erp: {{type: webhook, url: "{receiver}/hook?record=1", secret: {SECRET}}}
routes:
  - {{name: all, sinks: [erp]}}
"""
    )
    proc = subprocess.Popen(
        [
            str(BIN / "kabarin"),
            "serve",
            "--config",
            str(config),
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=workdir,
    )
    accepted: dict[str, float] = {}
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(f"{url}/readyz", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer bench"}) as client:
            for i in range(pushes):
                order = f"LAT-{i}"
                r = client.post(
                    "/kiriminaja/push",
                    json={
                        "method": "shipped_packages",
                        "data": [{"order_id": order, "shipped_at": "2024-05-05 10:00:00"}],
                    },
                )
                accepted[order] = time.time()
                assert r.status_code == 200, r.text
                time.sleep(0.02)
        time.sleep(1)
        arrivals = httpx.get(f"{receiver}/stats").json()["arrivals"]
    finally:
        proc.terminate()
        proc.wait(30)
    lat = sorted((arrivals[o] - t) * 1000 for o, t in accepted.items() if o in arrivals)
    if len(lat) < pushes:
        raise SystemExit(f"only {len(lat)} of {pushes} latency probes arrived")
    return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20_000)
    parser.add_argument(
        "--httpx-requests",
        type=int,
        default=5_000,
        help="plain httpx is slow; fewer requests give the same rate",
    )
    parser.add_argument("--latency-pushes", type=int, default=200)
    parser.add_argument("--serve-receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_receiver:
        serve_receiver(args.serve_receiver)
        return

    port = free_port()
    receiver = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen([sys.executable, __file__, "--serve-receiver", str(port)])
    try:
        for _ in range(100):
            try:
                httpx.get(f"{receiver}/stats", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        workdir = Path(tempfile.mkdtemp(prefix="kabarin-deliver-"))
        aio = asyncio.run(aiohttp_loop(f"{receiver}/hook", args.deliveries))
        plain = asyncio.run(httpx_loop(f"{receiver}/hook", args.httpx_requests))
        # The dispatcher's own ceiling is measured just before and just after it, and the two
        # averaged: on a shared machine the rate drifts between runs more than Kabarin costs.
        before = asyncio.run(
            httpx_loop(f"{receiver}/hook", args.deliveries, kabarin_transport=True)
        )
        kabarin = asyncio.run(kabarin_dispatcher(receiver, args.deliveries, workdir))
        after = asyncio.run(httpx_loop(f"{receiver}/hook", args.deliveries, kabarin_transport=True))
        aio = (aio + asyncio.run(aiohttp_loop(f"{receiver}/hook", args.deliveries))) / 2
        over_aiohttp = (before + after) / 2
        p50, p99 = latency(receiver, workdir, args.latency_pushes)
    finally:
        proc.terminate()
        proc.wait(10)

    ceiling = max(aio, plain)
    print(f"concurrency {CONCURRENCY}, receiver answering 200 on 127.0.0.1\n")
    print(f"{'sender':<48} {'requests/s':>10}")
    print(f"{'bare aiohttp.ClientSession loop':<48} {aio:>10.0f}")
    print(f"{'bare httpx.AsyncClient loop':<48} {plain:>10.0f}")
    print(f"{'bare httpx loop over httpx-aiohttp (as the sinks)':<48} {over_aiohttp:>10.0f}")
    print(f"{'  (just before the dispatcher, just after)':<48} {before:>5.0f} {after:>4.0f}")
    print(f"{'kabarin dispatcher (claim, sign, send, record)':<48} {kabarin:>10.0f}")
    print(f"\nratio kabarin / the same client and transport, bare: {kabarin / over_aiohttp:.2f}")
    print("  (target >= 0.8)")
    print(
        f"ratio of that client (httpx over httpx-aiohttp) / bare aiohttp: {over_aiohttp / aio:.2f}"
    )
    print(f"ratio kabarin / faster bare loop: {kabarin / ceiling:.2f}")
    print(
        f"end to end, push accepted -> webhook received, {args.latency_pushes} pushes "
        f"at 50/s: p50 {p50:.1f} ms, p99 {p99:.1f} ms (target p50 < 20 ms)"
    )


if __name__ == "__main__":
    main()
