"""The one way the tests wait for something to happen.

A test that sleeps and then looks passes on a slow machine without testing anything, and
fails on a busy one: wait for the thing itself, and to show that something did NOT happen,
first wait for an event that proves the system went past the point where it would have.

`eventually` is async, for tests running in an event loop (where a blocking wait would stop
the very tasks being waited for); a test without one runs it with ``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = ["eventually"]

T = TypeVar("T")


@overload
async def eventually(
    check: Callable[[], Awaitable[T | None]],
    within: float = ...,
    *,
    explain: Callable[[], str] | None = ...,
    ignoring: tuple[type[Exception], ...] = ...,
    every: float = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T | None],
    within: float = ...,
    *,
    explain: Callable[[], str] | None = ...,
    ignoring: tuple[type[Exception], ...] = ...,
    every: float = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    within: float = 10.0,
    *,
    explain: Callable[[], str] | None = None,
    ignoring: tuple[type[Exception], ...] = (),
    every: float = 0.02,
) -> Any:
    """Call `check` (plain or async) until it returns something true, and return that.

    An exception of `ignoring` counts as not yet (a page still loading has no such element).
    Fails after `within` seconds, with what `explain` says (a server's log, say) appended."""
    deadline = time.monotonic() + within
    while True:
        try:
            result = check()
            if inspect.isawaitable(result):
                result = await result
        except ignoring:
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(every)
    message = f"condition not met within {within:g}s"
    raise AssertionError(f"{message}; {explain()}" if explain is not None else message)
