"""The push log in front: a 200 is a durable append, the intake makes the events afterwards."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Callable
from typing import Any

from .conftest import KABARIN, KabarinProcess


def shipped(prefix: str, n: int) -> dict[str, Any]:
    return {
        "method": "shipped_packages",
        "data": [
            {"order_id": f"{prefix}-{i}", "shipped_at": "2024-05-05 10:00:00"} for i in range(n)
        ],
    }


HELD = "intake:\n  enabled: false\n"
"""The intake held: pushes stay pending in the log (a deployment whose worker runs apart)."""


def test_pushes_pending_at_a_kill_9_all_become_events(
    make_server: Callable[..., KabarinProcess],
) -> None:
    held = make_server(HELD)
    ids = []
    for i in range(20):
        r = held.push(shipped(f"K{i}", 10), wait=False)
        assert r.status_code == 200, r.text
        assert r.json()["items"] == 10
        ids.append(r.json()["push_id"])
    pending = held.admin("GET", "/pushes", params={"state": "pending", "limit": 500}).json()
    assert {p["id"] for p in pending["items"]} == set(ids)
    held.kill9()

    server = make_server()  # the same database, the intake running
    for push_id in ids:
        assert server.processed(push_id)["accepted"] == 10
    assert len(server.events(limit=500)) == 200


def test_backpressure_refuses_past_max_backlog_and_loses_nothing(
    make_server: Callable[..., KabarinProcess],
) -> None:
    held = make_server(HELD, start=False)
    text = held.config_path.read_text()
    held.config_path.write_text(text.replace("receiver:\n", "receiver:\n  max_backlog: 5\n", 1))
    held.start()
    accepted = [held.push(shipped(f"B{i}", 2), wait=False) for i in range(5)]
    assert [r.status_code for r in accepted] == [200] * 5
    refused = held.push(shipped("B-late", 2), wait=False)
    assert refused.status_code == 503
    assert refused.json()["error"] == "backlog_full"
    assert refused.headers["retry-after"] == "30"
    held.terminate()

    server = make_server()
    for r in accepted:
        assert server.processed(r.json()["push_id"])["accepted"] == 2
    assert sorted(e["order_id"] for e in server.events()) == sorted(
        f"B{i}-{j}" for i in range(5) for j in range(2)
    )
    assert server.push(shipped("B-late", 2)).status_code == 200  # room again


def test_a_failed_push_is_kept_and_reprocess_makes_its_events(
    make_server: Callable[..., KabarinProcess],
) -> None:
    server = make_server()
    r = server.push(shipped("F", 3))
    push_id = r.json()["push_id"]
    # As if the code that normalised it had raised: the push is kept as failed, not lost.
    server.terminate()
    db = sqlite3.connect(server.workdir / "kabarin.db")
    db.execute("ATTACH DATABASE ? AS log", [str(server.workdir / "kabarin.pushes.db")])
    with db:
        db.execute("DELETE FROM events")
        db.execute(
            "UPDATE pushes SET state = 'failed', error = 'KeyError: x', accepted = NULL"
            " WHERE id = ?",
            (push_id,),
        )
    db.close()
    server.start()
    failed = server.admin("GET", "/pushes", params={"state": "failed"}).json()["items"]
    assert [(p["id"], p["error"]) for p in failed] == [(push_id, "KeyError: x")]
    detail = server.admin("GET", f"/pushes/{push_id}").json()
    assert detail["events"] == [] and '"order_id": "F-0"' in detail["body"]

    done = subprocess.run(
        [str(KABARIN), "reprocess", "--failed", "--config", str(server.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=server.workdir,
    )
    assert done.returncode == 0, done.stderr
    assert "1 failed push reprocessed: 1 processed, 0 failed" in done.stdout
    entry = server.admin("GET", f"/pushes/{push_id}").json()
    assert (entry["push"]["state"], entry["push"]["accepted"]) == ("processed", 3)
    assert sorted(e["outcome"] for e in entry["events"]) == ["produced"] * 3
    assert len(server.events()) == 3


def test_a_repeated_push_names_the_events_it_repeats(server: KabarinProcess) -> None:
    first = server.push(shipped("R", 2)).json()["push_id"]
    second = server.push(shipped("R", 2)).json()["push_id"]
    detail = server.admin("GET", f"/pushes/{second}").json()
    assert (detail["push"]["accepted"], detail["push"]["duplicates"]) == (0, 2)
    assert {(e["outcome"], e["push_id"]) for e in detail["events"]} == {("repeated", first)}
    assert server.admin("GET", "/pushes/psh_nope").status_code == 404
    assert server.admin("GET", "/pushes", params={"state": "nope"}).status_code == 400


def test_a_serve_without_intake_sees_the_backlog_shrink(
    make_server: Callable[..., KabarinProcess],
) -> None:
    """The backlog a receiver counts must follow a worker's intake in another process."""
    held = make_server(HELD, start=False)
    text = held.config_path.read_text()
    held.config_path.write_text(text.replace("receiver:\n", "receiver:\n  max_backlog: 2\n", 1))
    held.start()
    first = [held.push(shipped(f"W{i}", 1), wait=False) for i in range(2)]
    assert held.push(shipped("W-late", 1), wait=False).status_code == 503
    worker = subprocess.Popen(
        [str(KABARIN), "worker", "--config", str(held.config_path)],
        cwd=held.workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for r in first:
            assert held.processed(r.json()["push_id"])["accepted"] == 1
        held.wait_for(lambda: held.push(shipped("W-late", 1), wait=False).status_code == 200)
    finally:
        worker.terminate()
        worker.wait(20)
