"""Group commit: one thread owns SQLite's write connection and commits many jobs at once.

Callers submit a job (a function of the connection) and await its result. The thread takes
everything queued, runs each job inside its own SAVEPOINT within ONE transaction, commits once
(one fsync with ``synchronous=FULL``), then answers every caller. A failing job fails only its
caller; a failing COMMIT fails the whole group, and nothing of it is kept. An optional `check`
runs before each group: when it raises `StoreError`, the group fails with it and nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

from gateway.errors import StoreError, StoreRefused
from gateway.store.sqlite import sql

__all__ = ["Writer"]

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
Queued = tuple[Job, "asyncio.Future[Any]", asyncio.AbstractEventLoop]

log = logging.getLogger("kabarin.store")

_STOP = object()


class Writer:
    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        max_group: int = 512,
        check: Callable[[], None] | None = None,
        name: str = "kabarin-sqlite-writer",
    ) -> None:
        self._conn = conn
        self._max_group = max_group
        self._check = check
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._failure: BaseException | None = None
        self.commits = 0
        """Transactions committed: far fewer than jobs when callers overlap."""

    def start(self) -> None:
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive() and self._failure is None

    async def submit(self, job: Callable[[sqlite3.Connection], T]) -> T:
        if not self.alive:
            raise StoreError(f"the SQLite writer is not running: {self._failure or 'closed'}")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put((job, future, loop))
        if not self._thread.is_alive() or self._failure is not None:  # it stopped meanwhile
            self._fail_queued(StoreError("the SQLite writer is closed"))
        return await future

    def stop(self) -> None:
        """Finish everything queued, then stop the thread. A job submitted while it stops is
        either committed or answered with `StoreError`, never left waiting."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        self._fail_queued(StoreError("the SQLite writer is closed"))

    def _run(self) -> None:
        try:
            while True:
                item = self._queue.get()
                if item is _STOP:
                    return
                group = [item]
                stop = False
                while len(group) < self._max_group:
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        stop = True
                        break
                    group.append(more)
                self._commit(group)
                if stop:
                    return
        except BaseException as exc:  # never die silently: later calls say why
            self._failure = exc
            log.critical("the SQLite writer stopped: %s", exc, exc_info=True)
            self._fail_queued(exc)

    def _commit(self, group: list[Queued]) -> None:
        conn = self._conn
        results: list[tuple[bool, Any]] = []
        if self._check is not None:
            try:
                self._check()
            except StoreError as exc:
                for _job, future, loop in group:
                    _answer(loop, future, False, exc)
                return
        try:
            conn.execute(sql.BEGIN)
        except sqlite3.Error as exc:
            error = StoreError(f"cannot start a transaction: {exc}")
            for _job, future, loop in group:
                _answer(loop, future, False, error)
            return
        try:
            for job, _future, _loop in group:
                conn.execute(sql.SAVEPOINT)
                try:
                    results.append((True, job(conn)))
                    conn.execute(sql.RELEASE)
                except Exception as exc:
                    conn.execute(sql.ROLLBACK_TO)
                    conn.execute(sql.RELEASE)
                    if isinstance(exc, StoreError):
                        pass
                    elif _refused(exc):  # what this job's rows met
                        exc = StoreRefused(f"{type(exc).__name__}: {exc}")
                    else:  # locked, I/O, disk full, a damaged file, no memory
                        exc = StoreError(f"{type(exc).__name__}: {exc}")
                    results.append((False, exc))
        except sqlite3.Error as exc:  # the transaction itself broke: none of the group is kept
            with contextlib.suppress(sqlite3.Error):
                conn.execute(sql.ROLLBACK)
            error = StoreError(f"transaction failed: {exc}")
            for _job, future, loop in group:
                _answer(loop, future, False, error)
            return
        try:
            conn.execute(sql.COMMIT)
            self.commits += 1
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(sql.ROLLBACK)
            error = StoreError(f"commit failed: {exc}")
            results = [(False, error)] * len(group)
        for (ok, value), (_job, future, loop) in zip(results, group, strict=True):
            _answer(loop, future, ok, value)

    def _fail_queued(self, exc: BaseException) -> None:
        error = (
            exc if isinstance(exc, StoreError) else StoreError(f"the SQLite writer stopped: {exc}")
        )
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not _STOP:
                _job, future, loop = item
                _answer(loop, future, False, error)


def _refused(exc: BaseException) -> bool:
    """Whether a job's error is about its rows (a constraint, a value SQLite cannot hold, or
    one the code cannot encode), not the database failing: the same rows fail again."""
    if isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError):
        return True
    return not isinstance(exc, sqlite3.Error | MemoryError)


def _answer(
    loop: asyncio.AbstractEventLoop, future: asyncio.Future[Any], ok: bool, value: Any
) -> None:
    def settle() -> None:
        if future.done():
            return
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)

    with suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
        loop.call_soon_threadsafe(settle)
