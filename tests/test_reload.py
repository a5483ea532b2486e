"""What a reload may apply while the process runs, and what waits for a restart."""

from __future__ import annotations

from gateway.config import parse_config
from gateway.reload import split_restart_only

RUNNING = parse_config("receiver: {token: a, timezone: Asia/Jakarta, max_backlog: 10}\n")


def test_the_zone_of_naive_times_and_the_listening_keys_wait_for_a_restart() -> None:
    loaded = parse_config(
        "receiver: {token: b, timezone: Asia/Makassar, max_backlog: 20, path: /push}\n"
        "store: {url: 'sqlite:///./other.db'}\n"
    )
    config, restart = split_restart_only(RUNNING, loaded)
    assert restart == ["store", "receiver.path", "receiver.timezone"]
    assert (config.receiver.timezone, config.receiver.path) == ("Asia/Jakarta", "/kiriminaja/push")
    assert config.store == RUNNING.store
    # what applies at once
    assert (config.receiver.token, config.receiver.max_backlog) == ("b", 20)


def test_an_unchanged_file_needs_nothing() -> None:
    assert split_restart_only(RUNNING, RUNNING) == (RUNNING, [])
