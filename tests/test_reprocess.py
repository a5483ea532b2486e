"""`kabarin reprocess`: failed pushes through the intake again, the verdict read back from the
store push by push, a push another process's intake took included."""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest

from gateway.cli import main
from gateway.config import parse_config
from gateway.intake import Intake, new_push_id
from gateway.routing import Router
from gateway.store import NewPush, PushOutcome, Store, open_store
from gateway.store.postgres import PostgresStore
from tests.conftest import (
    store_url,
)

KABARIN = Path(sys.executable).with_name("kabarin")
ROUTES = "sinks: {console: {type: console}}\nroutes: [{name: all, sinks: [console]}]\n"
GOOD = b'{"method": "shipped_packages", "data": [{"order_id": "OID-1"}]}'
BROKEN = b'{"method": "shipped_packages", "data": 5}'
"""A body the code cannot normalise: it fails again however often it is reprocessed."""


def config_file(tmp_path: Path, url: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(f'receiver: {{token: t0ken}}\nstore: {{url: "{url}"}}\n{ROUTES}')
    return str(path)


async def keep_failed(store: Store, *bodies: bytes) -> list[str]:
    """Pushes kept as failed, as the intake keeps those its code raised on (a good body as
    if the code had a bug, fixed since)."""
    ids = []
    for n, body in enumerate(bodies):
        push_id = f"{new_push_id(datetime.now(UTC))}{n}"
        await store.append_push(
            NewPush(id=push_id, source="push", received_at=datetime.now(UTC), body=body)
        )
        ids.append(push_id)
    outcomes = [PushOutcome(push_id=i, error="KeyError: a bug") for i in ids]
    await store.record_intake(outcomes, now=datetime.now(UTC))
    return ids


async def states(url: str, ids: list[str]) -> list[str]:
    store = open_store(url)
    await store.open(now=datetime.now(UTC))
    try:
        return [(await store.get_push(i)).state for i in ids]  # type: ignore[union-attr]
    finally:
        await store.close()


async def with_failed(url: str, *bodies: bytes) -> list[str]:
    store = open_store(url)
    await store.open(now=datetime.now(UTC))
    try:
        return await keep_failed(store, *bodies)
    finally:
        await store.close()


def test_id_alone_reprocesses_that_push_and_failed_is_the_default(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = store_url(backend, tmp_path)
    config = config_file(tmp_path, url)
    good, broken, other = asyncio.run(with_failed(url, GOOD, BROKEN, GOOD))

    assert main(["reprocess", "--config", config, "--id", good]) == 0
    assert "1 failed push reprocessed: 1 processed, 0 failed" in capsys.readouterr().out
    assert asyncio.run(states(url, [good, broken, other])) == ["processed", "failed", "failed"]

    assert main(["reprocess", "--config", config]) == 1  # every failed push
    out, err = capsys.readouterr()
    assert "2 failed pushes reprocessed: 1 processed, 1 failed" in out
    assert f"  {broken}  PushError: " in err
    assert asyncio.run(states(url, [good, broken, other])) == ["processed", "failed", "processed"]


def taken_by(url: str, owner: str) -> None:
    """From now on, a push put back to pending is taken at once by `owner`'s intake (leased
    to it), as a running server's intake may take it before `kabarin reprocess` does."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE FUNCTION taken() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " IF OLD.state = 'failed' AND NEW.state = 'pending' THEN"
            f"  NEW.lease_owner := '{owner}'; NEW.lease_until := now() + interval '1 hour';"
            " END IF; RETURN NEW; END $$"
        )
        conn.execute(
            "CREATE TRIGGER taken BEFORE UPDATE ON pushes FOR EACH ROW EXECUTE FUNCTION taken()"
        )


async def test_a_push_the_servers_intake_took_and_failed_again_is_reported_failed(
    tmp_path: Path, pg_url: str
) -> None:
    server = open_store(pg_url)
    await server.open(now=datetime.now(UTC))
    try:
        assert isinstance(server, PostgresStore)
        (push_id,) = await keep_failed(server, BROKEN)
        taken_by(pg_url, server.owner)
        config = config_file(tmp_path, pg_url)
        reprocess = await asyncio.create_subprocess_exec(
            str(KABARIN), "reprocess", "--failed", "--config", config, "--id", push_id,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert reprocess.stderr is not None
        said = []
        while line := (await reprocess.stderr.readline()).decode():
            said.append(line)
            if "waiting up to 60s for 1 push another process's intake has taken" in line:
                break
        else:
            raise AssertionError(f"it did not wait for the server's intake: {said}")
        # The server's intake, running the code that still fails on this push.
        router = Router.from_config(parse_config("receiver: {token: t0ken}\n" + ROUTES))
        assert await Intake(store=server, router=router, timezone=ZoneInfo("UTC")).drain() == 1
        out, err = await asyncio.wait_for(reprocess.communicate(), 60)
    finally:
        await server.close()
    assert reprocess.returncode == 1, err
    assert "1 failed push reprocessed: 0 processed, 1 failed" in out.decode()
    assert f"  {push_id}  PushError: " in err.decode()


def test_a_push_still_held_by_another_intake_is_reported_pending(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    (push_id,) = asyncio.run(with_failed(pg_url, GOOD))
    taken_by(pg_url, "a-server-that-went-quiet")
    config = config_file(tmp_path, pg_url)
    assert main(["reprocess", "--config", config, "--wait", "0"]) == 1
    out, err = capsys.readouterr()
    assert "1 failed push reprocessed: 0 processed, 0 failed, 1 still pending" in out
    assert f"  {push_id}  still pending" in err
    assert asyncio.run(states(pg_url, [push_id])) == ["pending"]
