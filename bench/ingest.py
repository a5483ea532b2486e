"""Ingest benchmark: Kabarin's durable push path against a bare Litestar app, in one run.

Both run on the same server (uvicorn, one worker, same settings) on 127.0.0.1 and get the same
load: 64 connections for 10 s per body size, pushes of 10 and of 100 packages, every request with
order ids never sent before (so the duplicate path does not flatter Kabarin). The load comes from
wrk when it is installed, else from bench/loadgen.py in a separate process.

Kabarin runs with SQLite (WAL, synchronous=FULL, group commit) and one route, so each event also
writes a delivery in the same commit; its dispatcher is off so the CPU measured is the request
path's.

    make bench                       # or: .venv/bin/python bench/ingest.py --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

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


def start_kabarin(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    config = workdir / "config.yaml"
    config.write_text(
        f"""
receiver:
  token: {TOKEN}
store:
  url: sqlite:///{workdir / "kabarin.db"}
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


def load(
    url: str, packages: int, prefix: str, connections: int, seconds: float
) -> dict[str, float]:
    if shutil.which("wrk"):
        cmd = [
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
            TOKEN,
        ]
    else:
        cmd = [
            str(BIN / "python"),
            str(HERE / "loadgen.py"),
            url + "/kiriminaja/push",
            str(packages),
            prefix,
            TOKEN,
            str(connections),
            str(seconds),
        ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    result["rps"] = result["requests"] / result["seconds"]
    result["eps"] = result["rps"] * packages
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100])
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="kabarin-bench-"))
    bare_port, kabarin_port = free_port(), free_port()
    bare = start_bare(bare_port)
    kabarin = start_kabarin(kabarin_port, workdir)
    bare_url, kabarin_url = f"http://127.0.0.1:{bare_port}", f"http://127.0.0.1:{kabarin_port}"
    rows = []
    try:
        wait_ready(bare_url + "/kiriminaja/push", bare)
        wait_ready(kabarin_url + "/kiriminaja/push", kabarin)
        tool = "wrk" if shutil.which("wrk") else "bench/loadgen.py"
        print(
            f"load: {tool}, {args.connections} connections, {args.seconds:g} s per run, "
            f"{os.cpu_count()} cores; fresh order ids on every request\n"
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

    db = sqlite3.connect(workdir / "kabarin.db")
    events = db.execute("SELECT count(*) FROM events").fetchone()[0]
    deliveries = db.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    db.close()
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
    print()
    for size, b, k in rows:
        ratio = k["rps"] / b["rps"]
        target = " (target >= 0.80)" if size == 10 else ""
        print(f"ratio kabarin/bare, {size} packages/push: {ratio:.2f}{target}")
    print(f"stored by kabarin (incl. warm-up): {events} events, {deliveries} deliveries")


if __name__ == "__main__":
    main()
