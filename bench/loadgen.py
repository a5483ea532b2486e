"""Fallback load generator for machines without wrk: run in its own process by bench/ingest.py.

Prints one line `RESULT {json}` like bench/push.lua does. With TOTAL, stops after that many
pushes (the duration is then only a bound).

    loadgen.py URL PACKAGES PREFIX TOKEN CONNECTIONS SECONDS [TOTAL]
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import aiohttp


def body(n: int, prefix: str, worker: int, counter: int) -> bytes:
    items = ",".join(
        f'{{"order_id":"{prefix}-{worker}-{counter}-{i}","awb":"JX{counter}{i}",'
        f'"shipped_at":"2024-05-05 10:{i % 60:02d}:00","sorting_code":"JOG-JOG1000-JKT2010",'
        f'"service":"jne","service_type":"regular"}}'
        for i in range(1, n + 1)
    )
    return f'{{"method":"shipped_packages","data":[{items}]}}'.encode()


async def main(
    url: str,
    n: int,
    prefix: str,
    token: str,
    connections: int,
    seconds: float,
    total: int | None = None,
) -> None:
    latencies: list[float] = []
    errors = non2xx = sent = 0
    deadline = time.perf_counter() + seconds
    # Several tokens (comma-separated: several shops) are taken in turn.
    headers = [
        {"Authorization": f"Bearer {one}", "Content-Type": "application/json"}
        for one in token.split(",")
    ]
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker(w: int) -> None:
            nonlocal errors, non2xx, sent
            counter = 0
            while time.perf_counter() < deadline:
                if total is not None and sent >= total:
                    return
                sent += 1
                counter += 1
                started = time.perf_counter()
                try:
                    async with session.post(
                        url,
                        data=body(n, prefix, w, counter),
                        headers=headers[(w + counter) % len(headers)],
                    ) as r:
                        await r.read()
                        if r.status >= 300:
                            non2xx += 1
                except aiohttp.ClientError:
                    errors += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()

    def pct(p: float) -> float:
        return (
            latencies[min(len(latencies) - 1, int(len(latencies) * p))] * 1000 if latencies else 0
        )

    print(
        "RESULT "
        + json.dumps(
            {
                "requests": len(latencies),
                "seconds": elapsed,
                "errors": errors,
                "non2xx": non2xx,
                "p50_ms": pct(0.50),
                "p99_ms": pct(0.99),
            }
        )
    )


if __name__ == "__main__":
    url, n, prefix, token, conns, secs = sys.argv[1:7]
    total = int(sys.argv[7]) if len(sys.argv) > 7 else None
    asyncio.run(main(url, int(n), prefix, token, int(conns), float(secs), total))
