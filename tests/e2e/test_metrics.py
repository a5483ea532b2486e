"""`/metrics` of the real `kabarin serve`: gauges read from the store whatever runs here."""

from __future__ import annotations

from collections.abc import Callable

from .conftest import KabarinProcess


def gauge(server: KabarinProcess, name: str) -> float:
    text = server.client.get("/metrics").text
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(f"{name} ")]
    assert len(values) == 1, text
    return float(values[0])


def test_the_backlog_shows_pushes_waiting_when_this_process_runs_no_intake(
    make_server: Callable[..., KabarinProcess],
) -> None:
    server = make_server("intake:\n  enabled: false\n", start=False)
    text = server.config_path.read_text()
    server.config_path.write_text(text.replace("receiver:\n", "receiver:\n  max_backlog: 2\n", 1))
    server.start()
    assert gauge(server, "kabarin_intake_backlog") == 0
    for n in range(2):
        push = {"method": "shipped_packages", "data": [{"order_id": f"W{n}"}]}
        assert server.push(push, wait=False).status_code == 200
    late = server.push({"method": "shipped_packages", "data": [{"order_id": "W2"}]}, wait=False)
    assert late.status_code == 503 and late.json()["error"] == "backlog_full"
    assert gauge(server, "kabarin_intake_backlog") == 2
