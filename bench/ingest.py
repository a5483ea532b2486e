"""Ingest benchmarks, each against a ceiling measured in the same run.

1. Edge: pushes of 10 packages accepted per second by Kabarin against the bare Litestar app of
   bench/bare_app.py decoding the same push into a msgspec struct (target >= 0.8). Both run on
   uvicorn, one worker, on 127.0.0.1, and get the same load: 64 connections for 10 s, every
   request with order ids never sent before (bench/push.lua), so the duplicate path does not
   flatter Kabarin. Kabarin's intake runs meanwhile (it shares the process and the GIL).
2. Sustained: a burst of 20,000 pushes of 10 packages (200,000 events) sent by 64 connections as
   fast as they are accepted; the time until the last event and its delivery are committed
   (no push pending in the store), against bench/store_floor.py: SQLite alone writing the same
   rows in the same order (target >= 0.8). Then the server's resident memory (VmRSS) once the
   burst is committed, and again after a second burst of the same size: the steady state, set
   mostly by `store.cache_mb` (SQLite's page cache per connection; `--cache-mb` sets it).
3. Shops: the edge's run (10 packages a push) against a Kabarin serving 20 shops, the pushes
   spread over their 20 tokens, and against one serving one shop, under the same load
   (target >= 0.9): telling shops apart by token costs one hash and one lookup per push.

Kabarin runs with SQLite (WAL, synchronous=FULL, group commit) and one route, so each event
also gets a delivery in the intake's commit; its dispatcher is off. The load comes from wrk
(`apt-get install -y wrk`); without it, from bench/loadgen.py in a separate process, which takes
CPU from the server on a small machine: the ratios are then lower than they should be.

    make bench       # or: .venv/bin/python bench/ingest.py [--part edge|sustained|shops]
                     #     [--sizes 10 100]
                     #     [--cache-mb 16]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from store_floor import floor

from gateway.store.roles import DEFAULT_CACHE_MB

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            httpx.post(url, content=b"{}", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start_bare(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            str(BIN / "python"),
            "-m",
            "uvicorn",
            "bare_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--no-server-header",
        ],
        cwd=HERE,
    )


def shop_tokens(shops: int) -> list[str]:
    """The push tokens of a bench Kabarin serving `shops` shops (`TOKEN` for one)."""
    return [TOKEN] if shops == 1 else [f"{TOKEN}-{i:02d}" for i in range(shops)]


def start_kabarin(
    port: int, workdir: Path, cache_mb: int, shops: int = 1
) -> subprocess.Popen[bytes]:
    config = workdir / "config.yaml"
    # The pushes a run sends outgrow the default max_backlog (50,000) on a fast machine, and a
    # 503 answered at once would count as throughput: this measures acceptance, not backpressure.
    who = "receiver:\n  max_backlog: 10000000\n"
    if shops == 1:
        who += f"  token: {TOKEN}\n"
    else:
        who += "shops:\n" + "".join(
            f"  toko-{i:02d}: {{name: Toko {i}, token: {token}}}\n"
            for i, token in enumerate(shop_tokens(shops))
        )
    config.write_text(
        who
        + f"""
store:
  url: sqlite:///{workdir / "kabarin.db"}
  cache_mb: {cache_mb}
dispatcher:
  enabled: false
sinks:
  erp:
    type: webhook
    url: http://127.0.0.1:9/never-called
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
routes:
  - name: everything-to-erp
    sinks: [erp]
"""
    )
    return subprocess.Popen(
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


def load_command(
    url: str,
    packages: int,
    prefix: str,
    connections: int,
    seconds: float,
    total: int | None,
    token: str = TOKEN,
) -> list[str]:
    extra = [] if total is None else [str(total)]
    if shutil.which("wrk"):
        return [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            "-s",
            str(HERE / "push.lua"),
            url,
            "--",
            str(packages),
            prefix,
            token,
            *extra,
        ]
    return [
        str(BIN / "python"),
        str(HERE / "loadgen.py"),
        url + "/kiriminaja/push",
        str(packages),
        prefix,
        token,
        str(connections),
        str(seconds),
        *extra,
    ]


def parse_result(out: str) -> dict[str, float]:
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    return result


def load(
    url: str, packages: int, prefix: str, connections: int, seconds: float, token: str = TOKEN
) -> dict[str, float]:
    cmd = load_command(url, packages, prefix, connections, seconds, None, token)
    result = parse_result(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
    result["rps"] = result["requests"] / result["seconds"]
    result["eps"] = result["rps"] * packages
    return result


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"no VmRSS for process {pid}")


def edge(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="kabarin-bench-"))
    bare_port, kabarin_port = free_port(), free_port()
    bare = start_bare(bare_port)
    kabarin = start_kabarin(kabarin_port, workdir, args.cache_mb)
    bare_url, kabarin_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{kabarin_port}"
    rows = []
    try:
        wait_ready(bare_url + "/kiriminaja/push", bare)
        wait_ready(kabarin_url + "/kiriminaja/push", kabarin)
        print(
            f"1. edge: {args.connections} connections, {args.seconds:g} s per run, "
            f"{os.cpu_count()} cores; fresh order ids on every request; the intake running"
        )
        for size in args.sizes:
            load(bare_url, size, "warm", args.connections, 2)  # warm both up
            load(kabarin_url, size, f"warm{size}", args.connections, 2)
            b = load(bare_url, size, f"b{size}", args.connections, args.seconds)
            k = load(kabarin_url, size, f"k{size}", args.connections, args.seconds)
            rows.append((size, b, k))
    finally:
        for proc in (bare, kabarin):
            proc.terminate()
            proc.wait(30)
    shutil.rmtree(workdir, ignore_errors=True)

    print(
        f"{'packages/push':>13} {'app':<8} {'req/s':>9} {'events/s':>10} {'p50 ms':>8} "
        f"{'p99 ms':>8} {'errors':>7}"
    )
    for size, b, k in rows:
        for name, r in (("bare", b), ("kabarin", k)):
            errs = int(r["errors"] + r["non2xx"])
            print(
                f"{size:>13} {name:<8} {r['rps']:>9.0f} {r['eps']:>10.0f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {errs:>7}"
            )
    for size, b, k in rows:
        target = " (target >= 0.80)" if size == 10 else ""
        print(f"ratio kabarin/bare, {size} packages/push: {k['rps'] / b['rps']:.2f}{target}")


def burst(
    url: str, db: sqlite3.Connection, prefix: str, args: argparse.Namespace
) -> tuple[float, float, str]:
    """Send `args.pushes` pushes of fresh order ids; when the last was accepted and when the
    last was committed (no push pending), from the start, and the load generator's output."""
    (before,) = db.execute("SELECT count(*) FROM pushes").fetchone()
    cmd = load_command(url, 10, prefix, args.burst_connections, 600, args.pushes)
    started = time.perf_counter()
    gen = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    accepted_at = None
    while True:
        time.sleep(0.05)
        pushes, pending = db.execute(
            "SELECT count(*), count(*) FILTER (WHERE state = 'pending') FROM pushes"
        ).fetchone()
        if accepted_at is None and pushes - before >= args.pushes:
            accepted_at = time.perf_counter()
            if cmd[0] == "wrk":  # bench/loadgen.py stops by itself after the total
                gen.send_signal(signal.SIGINT)  # wrk's threads stopped; it waits for -d
        if accepted_at is not None and pending == 0:
            break
        if gen.poll() not in (None, 0) or time.perf_counter() - started > 600:
            raise SystemExit(f"the burst did not finish: {pushes} pushes, {pending} pending")
    done_at = time.perf_counter()
    out, _ = gen.communicate(timeout=30)
    return accepted_at - started, done_at - started, out


def sustained(args: argparse.Namespace) -> None:
    print(
        f"\n2. sustained: {args.pushes:,} pushes of 10 packages, {args.burst_connections} "
        "connections, until the last event and its delivery are committed"
    )
    floor_eps = floor(args.pushes, cache_mb=args.cache_mb)
    workdir = Path(tempfile.mkdtemp(prefix="kabarin-bench-"))
    port = free_port()
    kabarin = start_kabarin(port, workdir, args.cache_mb)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/kiriminaja/push", kabarin)
        idle = rss_mb(kabarin.pid)
        db = sqlite3.connect(f"file:{workdir / 'kabarin.db'}?mode=ro", uri=True)
        db.execute("ATTACH DATABASE ? AS log", (f"file:{workdir / 'kabarin.pushes.db'}?mode=ro",))
        accepted, elapsed, out = burst(url, db, "s", args)
        events, deliveries = db.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM deliveries)"
        ).fetchone()
        after_one = rss_mb(kabarin.pid)
        burst(url, db, "t", args)  # the same again, on a store twice the size: steady or not
        after_two = rss_mb(kabarin.pid)
        db.close()
    finally:
        kabarin.terminate()
        kabarin.wait(30)
    shutil.rmtree(workdir, ignore_errors=True)
    result = parse_result(out)
    eps = events / elapsed
    print(
        f"kabarin: {args.pushes:,} pushes accepted in {accepted:.1f} s "
        f"(p99 {result['p99_ms']:.0f} ms, {int(result['errors'] + result['non2xx'])} errors), "
        f"{events:,} events and {deliveries:,} deliveries committed after {elapsed:.1f} s: "
        f"{eps:,.0f} events/s"
    )
    print(f"SQLite alone (bench/store_floor.py, same rows): {floor_eps:,.0f} events/s")
    print(f"ratio kabarin/SQLite alone: {eps / floor_eps:.2f} (target >= 0.80)")
    print(
        f"resident memory (VmRSS), store.cache_mb {args.cache_mb}: {idle:.0f} MB idle, "
        f"{after_one:.0f} MB after the burst, {after_two:.0f} MB after a second one"
    )


def shops(args: argparse.Namespace) -> None:
    print(
        f"\n3. shops: {args.shops} shops against one, 10 packages a push, "
        f"{args.connections} connections, {args.seconds:g} s per run, the pushes spread over "
        "the shops' tokens"
    )
    results: dict[int, list[dict[str, float]]] = {1: [], args.shops: []}
    for run in range(args.shop_runs):  # alternated: a drift of the machine hits both alike
        for count in results:
            workdir = Path(tempfile.mkdtemp(prefix="kabarin-bench-"))
            port = free_port()
            kabarin = start_kabarin(port, workdir, args.cache_mb, shops=count)
            url = f"http://127.0.0.1:{port}"
            tokens = ",".join(shop_tokens(count))
            try:
                wait_ready(url + "/kiriminaja/push", kabarin)
                load(url, 10, f"warm{count}r{run}", args.connections, 2, tokens)
                result = load(url, 10, f"s{count}r{run}", args.connections, args.seconds, tokens)
                results[count].append(result)
            finally:
                kabarin.terminate()
                kabarin.wait(30)
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{'shops':>5} {'req/s':>9} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    best = {}
    for count, runs in results.items():
        for r in runs:
            errs = int(r["errors"] + r["non2xx"])
            print(
                f"{count:>5} {r['rps']:>9.0f} {r['eps']:>10.0f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {errs:>7}"
            )
        best[count] = max(r["rps"] for r in runs)
    print(
        f"ratio {args.shops} shops/one shop (best of {args.shop_runs}): "
        f"{best[args.shops] / best[1]:.2f} (target >= 0.90)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["edge", "sustained", "shops", "all"], default="all")
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10])
    parser.add_argument("--pushes", type=int, default=20_000)
    parser.add_argument("--burst-connections", type=int, default=64)
    parser.add_argument("--cache-mb", type=int, default=DEFAULT_CACHE_MB, help="store.cache_mb")
    parser.add_argument("--shops", type=int, default=20, help="shops of part 3")
    parser.add_argument("--shop-runs", type=int, default=2, help="runs of each in part 3")
    args = parser.parse_args()
    if shutil.which("wrk"):
        print("load: wrk")
    else:
        print(
            "load: bench/loadgen.py (wrk is not installed: `apt-get install -y wrk`; a Python "
            "load generator takes CPU from the server, so the ratios are lower than with wrk)"
        )
    if args.part in ("edge", "all"):
        edge(args)
    if args.part in ("sustained", "all"):
        sustained(args)
    if args.part in ("shops", "all"):
        shops(args)


if __name__ == "__main__":
    main()
