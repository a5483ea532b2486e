"""Store faults against the real `kabarin serve`: readiness follows what a commit can do now.

Each fault here is produced for real, not mocked: a deleted or replaced database file, a full
disk (a tiny tmpfs, which needs the right to mount: skipped without it), and a database file the
server may not write.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

import pytest

from gateway.store import open_store

from .conftest import KABARIN, KabarinProcess, free_port, write_config

PUSH = {"method": "shipped_packages", "data": [{"order_id": "OID-1", "shipped_at": "2024-05-05"}]}


def push(server: KabarinProcess, order_id: str) -> int:
    body = {**PUSH, "data": [{"order_id": order_id, "shipped_at": "2024-05-05 10:00:00"}]}
    return server.push(body).status_code


def test_a_deleted_database_file_makes_it_unready_and_refuses_pushes(
    make_server: Callable[..., KabarinProcess], tmp_path: Path
) -> None:
    server = make_server()
    assert push(server, "before") == 200
    (tmp_path / "kabarin.db").unlink()

    r = server.client.get("/readyz")
    assert r.status_code == 503
    assert r.json()["status"] == "unavailable"
    assert "deleted" in r.json()["detail"]
    r = server.push({**PUSH, "data": [{"order_id": "after"}]})
    assert r.status_code == 503
    assert r.json()["error"] == "store_unavailable"
    errors = [line for line in server.output().splitlines() if " ERROR " in line]
    assert any("kabarin.db" in line and "deleted" in line for line in errors), server.output()


def errors_of(server: KabarinProcess, logger: str) -> list[str]:
    return [line for line in server.output().splitlines() if f" ERROR   {logger}:" in line]


def dispatcher_errors(server: KabarinProcess) -> list[str]:
    return errors_of(server, "kabarin.dispatcher")


def said_again(server: KabarinProcess, logger: str) -> list[str]:
    """A failure logged before, said again (at DEBUG)."""
    lines = server.output().splitlines()
    return [line for line in lines if f" DEBUG   {logger}:" in line and "(again)" in line]


def test_a_store_failure_that_repeats_is_logged_once_and_shutdown_still_ends_cleanly(
    make_server: Callable[..., KabarinProcess], tmp_path: Path
) -> None:
    server = make_server(start=False)  # polls every 200ms: each turn's claim fails the same way
    server.serve_args = ["--log-level", "debug"]  # where a failure said again is logged
    server.start()
    assert push(server, "before") == 200
    (tmp_path / "kabarin.db").unlink()
    server.wait_for(lambda: bool(dispatcher_errors(server)))
    # five more turns of the dispatcher's loop, each failing the same way
    server.wait_for(lambda: len(said_again(server, "kabarin.dispatcher")) >= 5)
    assert [push(server, f"after-{i}") for i in range(3)] == [503] * 3

    assert server.terminate() in (0, -15)  # uvicorn re-raises SIGTERM after a clean stop
    output = server.output()
    (line,) = dispatcher_errors(server)
    assert "could not claim deliveries" in line and "was deleted" in line, output
    (refused,) = errors_of(server, "kabarin.receiver")  # three pushes refused, one line
    assert "could not append a push" in refused and "was deleted" in refused, output
    assert "Traceback" not in output  # a store failure is its cause, not a bug
    assert "Application shutdown complete" in output


def test_a_replaced_database_file_makes_it_unready(
    make_server: Callable[..., KabarinProcess], tmp_path: Path
) -> None:
    server = make_server()
    assert push(server, "before") == 200
    db = tmp_path / "kabarin.db"
    shutil.copy(db, tmp_path / "copy.db")
    os.replace(tmp_path / "copy.db", db)  # what a restore from a backup does

    r = server.client.get("/readyz")
    assert r.status_code == 503
    assert "replaced" in r.json()["detail"]
    assert push(server, "after") == 503


def unable(reason: str) -> NoReturn:
    """Skip where the machine cannot make the fault (no root), except in CI (``CI=true``), which
    runs as root: there a fault test that did not run is a failure."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "kabarin-test", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        unable(f"cannot mount a tmpfs to fill: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        with contextlib.suppress(OSError):  # ENOSPC: the disk is full
            while True:
                os.write(fd, b"\0" * 4096)
    finally:
        os.close(fd)
    return filler


def test_a_full_disk_makes_it_unready_and_it_recovers_when_space_is_freed(
    tmp_path: Path, small_disk: Path
) -> None:
    config = write_config(tmp_path / "config.yaml", store=f"sqlite:///{small_disk}/kabarin.db")
    server = KabarinProcess(config, tmp_path)
    try:
        server.start()
        assert push(server, "before") == 200
        filler = fill(small_disk)

        r = server.client.get("/readyz")
        assert r.status_code == 503
        assert "full" in r.json()["detail"]
        assert push(server, "while-full") == 503

        filler.unlink()
        assert server.client.get("/readyz").json() == {"status": "ready"}
        assert push(server, "after") == 200
        assert {e["order_id"] for e in server.events()} == {"before", "after"}
    finally:
        server.stop()


@pytest.fixture
def read_only_database(tmp_path: Path) -> Iterator[Path]:
    """A complete Kabarin database that this user's processes may read but not write.

    Root ignores file permissions, so as root the file is made immutable (`chattr +i`), which
    refuses root's writes too; otherwise a plain `chmod 0444` does it.
    """
    db = tmp_path / "kabarin.db"

    async def create() -> None:
        store = open_store(f"sqlite:///{db}")
        await store.open(now=datetime.now(UTC))
        await store.close()

    asyncio.run(create())
    if os.geteuid() != 0:
        db.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        yield db
        return
    done = subprocess.run(["chattr", "+i", str(db)], capture_output=True, check=False)
    if done.returncode != 0:
        unable(f"cannot make the file immutable: {done.stderr.decode().strip()}")
    try:
        yield db
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=False)


def test_serve_refuses_a_database_it_cannot_write(tmp_path: Path, read_only_database: Path) -> None:
    # SQLite opens a file it may not write read-only, without an error: the fault to refuse.
    config = write_config(tmp_path / "config.yaml", store=f"sqlite:///{read_only_database}")
    try:
        done = subprocess.run(
            [str(KABARIN), "serve", "--config", str(config), "--port", str(free_port())],
            cwd=tmp_path,
            capture_output=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"kabarin serve kept running on a read-only database: {exc.stderr!r}")
    stderr = done.stderr.decode()
    assert done.returncode == 1, stderr
    assert "Started server process" not in stderr
    assert "Traceback" not in stderr
    problem = [line for line in stderr.splitlines() if line.startswith("kabarin: ")]
    assert len(problem) == 1, stderr
    assert str(read_only_database) in problem[0] and "readonly" in problem[0]
