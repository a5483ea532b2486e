"""One lane per (sink, shop, order): the dispatcher never reorders deliveries of one order to
one sink.

`Store.claim` already hands out at most one delivery per lane at a time, in the right order;
`OrderLanes` keeps that true inside the process too, should a batch ever hold two: they run one
after the other, in the order they entered. The shop is part of the lane, as it is of the
store's: two shops' orders with the same id are two orders, and neither waits for the other.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["OrderLanes"]


class OrderLanes:
    """A FIFO lock per key, created on first use and dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._lanes: dict[tuple[str, str, str], tuple[asyncio.Lock, list[None]]] = {}

    def __len__(self) -> int:
        return len(self._lanes)

    @asynccontextmanager
    async def hold(self, sink: str, shop: str, order_id: str) -> AsyncIterator[None]:
        """Wait for the (sink, shop, order) lane, in arrival order, and hold it for the block."""
        key = (sink, shop, order_id)
        lock, users = self._lanes.setdefault(key, (asyncio.Lock(), []))
        users.append(None)
        try:
            async with lock:
                yield
        finally:
            users.pop()
            if not users:
                del self._lanes[key]
