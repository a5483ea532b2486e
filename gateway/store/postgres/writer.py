"""Group commit of the push log on PostgreSQL: appends that overlap share one transaction.

A single task takes everything queued, inserts it in one transaction and answers every caller
after the commit. The fast path inserts the whole group in one pipelined statement; when it
fails (a duplicate push id, a value the server refuses), the group is run again with each
append in its own savepoint, so a failing append fails only its caller, as on SQLite. The
commit notifies the push channel once, and only when something was kept.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import psycopg
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool

from gateway.errors import StoreError
from gateway.store.postgres import sql
from gateway.store.roles import NewPush

__all__ = ["PushWriter"]


Queued = tuple[NewPush, "asyncio.Future[None]"]


class PushWriter:
    def __init__(
        self, pool: AsyncConnectionPool[psycopg.AsyncConnection[TupleRow]], *, max_group: int = 512
    ) -> None:
        self._pool = pool
        self._max_group = max_group
        self._queue: asyncio.Queue[Queued | None] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.commits = 0
        """Transactions committed: far fewer than appends when callers overlap."""

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="kabarin-pg-push-writer")

    async def append(self, push: NewPush) -> None:
        if self._task is None or self._task.done():
            raise StoreError("the push writer is not running")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((push, future))
        await future

    async def stop(self) -> None:
        """Commit what is queued, then stop."""
        if self._task is None:
            return
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        try:
            await self._groups()
        finally:  # an append queued behind the stop is answered, not left waiting
            while not self._queue.empty():
                if (item := self._queue.get_nowait()) is not None and not item[1].done():
                    item[1].set_exception(StoreError("the push writer is closed"))

    async def _groups(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < self._max_group and not self._queue.empty():
                more = self._queue.get_nowait()
                if more is None:
                    stopping = True
                    break
                group.append(more)
            try:
                results = await self._commit(group)
            except Exception as exc:  # the transaction itself broke: none of the group is kept
                error = exc if isinstance(exc, StoreError) else StoreError(f"commit failed: {exc}")
                results = [error] * len(group)
            for (_push, future), result in zip(group, results, strict=True):
                if future.done():
                    continue
                if result is None:
                    future.set_result(None)
                else:
                    future.set_exception(result)

    async def _commit(self, group: list[Queued]) -> list[StoreError | None]:
        rows = [_row(push) for push, _future in group]
        async with self._pool.connection() as conn:
            try:
                async with conn.transaction():
                    async with conn.cursor() as cur:
                        await cur.executemany(sql.APPEND_PUSH, rows)
                    await conn.execute(sql.NOTIFY, (sql.PUSHES_CHANNEL,))
            except psycopg.DatabaseError:
                if len(group) == 1:
                    raise
                return await self._one_by_one(conn, rows)
        self.commits += 1
        return [None] * len(group)

    async def _one_by_one(
        self, conn: psycopg.AsyncConnection[TupleRow], rows: list[tuple[Any, ...]]
    ) -> list[StoreError | None]:
        results: list[StoreError | None] = []
        async with conn.transaction():
            for row in rows:
                try:
                    async with conn.transaction():  # a savepoint
                        await conn.execute(sql.APPEND_PUSH, row)
                    results.append(None)
                except psycopg.DatabaseError as exc:
                    results.append(StoreError(str(exc)))
            if any(r is None for r in results):
                await conn.execute(sql.NOTIFY, (sql.PUSHES_CHANNEL,))
        self.commits += 1
        return results


def _row(push: NewPush) -> tuple[Any, ...]:
    return (
        push.id,
        push.source,
        push.method,
        push.items,
        push.received_at,
        push.content_type,
        push.body,
        push.origin,
        push.shop,
    )
