"""The group-commit writer: one failing job fails only its caller; the thread survives."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.errors import StoreError, StoreRefused
from gateway.store.sqlite.writer import Writer


@pytest.fixture
async def writer(tmp_path: Path) -> AsyncIterator[Writer]:
    conn = sqlite3.connect(tmp_path / "w.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    w = Writer(conn)
    w.start()
    yield w
    await asyncio.to_thread(w.stop)
    conn.close()


def insert(value: int) -> object:
    return lambda c: c.execute("INSERT INTO t (v) VALUES (?)", (value,)).rowcount


def count(c: sqlite3.Connection) -> int:
    return int(c.execute("SELECT count(*) FROM t").fetchone()[0])


async def test_a_failing_job_fails_only_its_caller(writer: Writer) -> None:
    await writer.submit(insert(1))  # type: ignore[arg-type]
    results: tuple[object, ...] = await asyncio.gather(
        writer.submit(insert(2)),  # type: ignore[arg-type]
        writer.submit(insert(1)),  # type: ignore[arg-type]  # UNIQUE violation
        writer.submit(insert(3)),  # type: ignore[arg-type]
        return_exceptions=True,
    )
    assert results[0] == 1 and results[2] == 1
    assert isinstance(results[1], StoreError) and "UNIQUE" in str(results[1])
    assert await writer.submit(count) == 3


async def test_a_job_that_breaks_the_transaction_fails_its_group_and_the_writer_lives_on(
    writer: Writer,
) -> None:
    def breaks(c: sqlite3.Connection) -> None:
        c.execute("ROLLBACK")  # leaves no transaction for the savepoint to release

    results = await asyncio.gather(
        writer.submit(insert(10)),  # type: ignore[arg-type]
        writer.submit(breaks),
        return_exceptions=True,
    )
    assert all(isinstance(r, StoreError) for r in results[1:])
    assert writer.alive
    assert await writer.submit(insert(11)) == 1  # type: ignore[arg-type]
    assert await writer.submit(count) in (1, 2)


async def test_jobs_queued_together_share_a_commit(writer: Writer) -> None:
    before = writer.commits
    await asyncio.gather(*(writer.submit(insert(100 + i)) for i in range(200)))  # type: ignore[arg-type]
    assert writer.commits - before < 200


async def test_a_failing_check_fails_the_group_before_any_job_runs(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    problem: list[str] = ["the database file was deleted"]

    def check() -> None:
        if problem:
            raise StoreError(problem[0])

    w = Writer(conn, check=check)
    w.start()
    try:
        with pytest.raises(StoreError, match="deleted"):
            await w.submit(insert(1))  # type: ignore[arg-type]
        problem.clear()
        assert w.alive
        assert await w.submit(count) == 0  # the refused job never ran
        assert await w.submit(insert(2)) == 1  # type: ignore[arg-type]
    finally:
        await asyncio.to_thread(w.stop)
        conn.close()


async def test_a_job_submitted_while_the_writer_stops_is_answered(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "s.db", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (v INTEGER UNIQUE)")
    w = Writer(conn)
    w.start()
    await asyncio.to_thread(w.stop)
    assert not w.alive
    with pytest.raises(StoreError, match="closed"):
        await w.submit(insert(1))  # type: ignore[arg-type]

    # The caller checked before the stop and queued its job after it: answered, not stranded.
    class Late(Writer):
        @property
        def alive(self) -> bool:
            return True

    late = Late(conn)
    late.start()
    await asyncio.to_thread(late.stop)
    with pytest.raises(StoreError, match="closed"):
        await asyncio.wait_for(late.submit(insert(2)), 5)  # type: ignore[arg-type]
    conn.close()


async def test_a_job_refused_for_its_rows_is_told_apart_from_a_failing_database(
    writer: Writer,
) -> None:
    assert await writer.submit(insert(500)) == 1  # type: ignore[arg-type]
    with pytest.raises(StoreRefused, match="IntegrityError"):
        await writer.submit(insert(500))  # type: ignore[arg-type]

    for failure in (
        sqlite3.OperationalError("database is locked"),
        sqlite3.DatabaseError("database disk image is malformed"),
    ):

        def failing(c: sqlite3.Connection, failure: Exception = failure) -> None:
            raise failure

        with pytest.raises(StoreError) as info:
            await writer.submit(failing)
        assert not isinstance(info.value, StoreRefused)  # the database, not the rows
