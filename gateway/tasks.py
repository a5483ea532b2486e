"""The background loops' common end: a task cancelled and waited for."""

from __future__ import annotations

import asyncio
from contextlib import suppress
from typing import Any

__all__ = ["cancelled"]


async def cancelled(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and return once it has ended (``None``: nothing runs, nothing to do)."""
    if task is None:
        return
    task.cancel()
    with suppress(asyncio.CancelledError):
        await task
