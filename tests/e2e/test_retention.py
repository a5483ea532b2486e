"""`kabarin store prune` against the database of a real `kabarin serve` process."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable

from .conftest import KABARIN, KabarinProcess
from .test_admin import deliveries, shipped

TABLES = ("pushes", "events", "deliveries", "attempts", "rejected", "orders")


def prune(server: KabarinProcess, *flags: str) -> tuple[str, dict[str, int]]:
    done = subprocess.run(
        [str(KABARIN), "store", "prune", "--config", str(server.config_path), *flags],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )
    assert done.returncode == 0, done.stderr
    counts = {m[1]: int(m[2]) for m in re.finditer(r"^  (\w+) +(\d+)$", done.stdout, re.M)}
    assert tuple(counts) == TABLES, done.stdout
    return done.stdout.splitlines()[0], counts


def test_store_prune_dry_run_then_prune(make_server: Callable[..., KabarinProcess]) -> None:
    # One-second windows, so what the server stores is soon old enough; its own pruning runs
    # at start and then only after an hour.
    server = make_server(
        "sinks: {out: {type: console}}\n"
        "routes: [{name: all, sinks: [out]}]\n"
        "retention: {pushes: 1s, events: 1s, delivered: 1s, rejected: 1s, interval: 1h}\n"
    )
    times = ("2024-05-01 08:00:00", "2024-05-01 09:00:00", "2024-05-01 10:00:00")
    assert server.ingest(shipped("PRUNE-1", *times))["accepted"] == 3
    assert server.push(b'{"method": 1}').status_code == 400  # kept as a rejected body
    # The console sink sends the latest: one delivered (one attempt), two superseded.
    server.wait_for(
        lambda: (
            sorted(d["state"] for d in deliveries(server))
            == ["delivered", "superseded", "superseded"]
        )
    )

    # The order's facts too: its stages (2024) are older than `retention.orders`' 365 days.
    expected = {
        "pushes": 1,
        "events": 3,
        "deliveries": 3,
        "attempts": 1,
        "rejected": 1,
        "orders": 1,
    }
    seen: dict[str, int] = {}

    def all_old_enough() -> bool:
        head, counts = prune(server, "--dry-run")
        assert head.startswith("would remove")
        seen.update(counts)
        return counts == expected

    server.wait_for(all_old_enough, timeout=30)
    assert len(server.events(order_id="PRUNE-1")) == 3  # the dry run removed nothing

    head, removed = prune(server)
    assert head.startswith("removed")
    assert removed == seen == expected
    assert server.events(order_id="PRUNE-1") == []
    assert deliveries(server) == []
    assert server.admin("GET", "/rejected").json()["items"] == []
    assert prune(server, "--dry-run")[1] == dict.fromkeys(TABLES, 0)

    # Within the dedupe window a repeat is a duplicate; once its events are pruned, it is new.
    assert server.ingest(shipped("PRUNE-1", *times))["accepted"] == 3

    metrics = server.client.get("/metrics").text
    size = re.search(r"^kabarin_store_bytes (\S+)$", metrics, re.M)
    assert size is not None and float(size[1]) > 0, metrics
