"""News of new work from every replica: ``LISTEN`` on a connection of its own.

A commit that adds pushes or deliveries notifies a channel (`sql.NOTIFY`, with the schema as
payload, so deployments sharing a database ignore each other's news). `Listener` keeps one
connection listening to both channels, calls back on each notice for its schema, and connects
again (with backoff) when the connection is lost, then calls every callback once, for what may
have been committed meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Literal

import psycopg

from gateway.store.postgres import sql
from gateway.tasks import cancelled

__all__ = ["Channel", "Listener"]

log = logging.getLogger("kabarin.store")

Channel = Literal["pushes", "deliveries"]
"""What `PostgresStore.on_notify` reports: new pending pushes, or deliveries to claim."""

_CHANNELS: dict[str, Channel] = {
    sql.PUSHES_CHANNEL: "pushes",
    sql.DELIVERIES_CHANNEL: "deliveries",
}


class Listener:
    """Calls back, for each channel, when any replica commits news to the schema."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._callbacks: dict[Channel, list[Callable[[], None]]] = {
            "pushes": [],
            "deliveries": [],
        }
        self._schema: str | None = None
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    @property
    def wanted(self) -> bool:
        """Someone asked to be called back."""
        return any(self._callbacks.values())

    def add(self, channel: Channel, callback: Callable[[], None]) -> None:
        self._callbacks[channel].append(callback)

    def start(self, schema: str) -> None:
        """Listen for the news of `schema` (once; later calls change nothing)."""
        if self._task is None:
            self._schema = schema
            self._task = asyncio.create_task(self._listen(), name="kabarin-pg-listen")

    async def listening(self) -> None:
        """Return once the connection listens: nothing committed afterwards is missed."""
        await self._listening.wait()

    async def stop(self) -> None:
        await cancelled(self._task)
        self._task = None

    async def _listen(self) -> None:
        backoff = 0.5
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(self.url, autocommit=True) as conn:
                    await conn.execute(sql.LISTEN_PUSHES)
                    await conn.execute(sql.LISTEN_DELIVERIES)
                    if self._listening.is_set() or backoff > 0.5:
                        self._fire(*self._callbacks)  # news may have been missed meanwhile
                    self._listening.set()
                    backoff = 0.5
                    async for note in conn.notifies():
                        channel = _CHANNELS.get(note.channel)
                        if channel is not None and note.payload == self._schema:
                            self._fire(channel)
            except psycopg.Error as exc:
                log.warning("PostgreSQL notifications lost, listening again: %s", exc)
            self._listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def _fire(self, *channels: Channel) -> None:
        for channel in channels:
            for callback in self._callbacks[channel]:
                try:
                    callback()
                except Exception:
                    log.exception("a %s notification callback failed", channel)
