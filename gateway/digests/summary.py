"""A digest's content: the counts of its window and of the window before, and how they changed.

The store counts (`gateway.store.roles.DigestStore.window_counts`, indexed SQL); this module
only puts the two windows side by side, so the rendering (`gateway.digests.render`) and the
tests read one `Summary`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from gateway.events import Status
from gateway.store.digests import WindowCounts
from gateway.store.roles import DigestStore

__all__ = ["Change", "Summary", "summarise"]

LIST_LIMIT = 20
"""Stuck parcels and trouble reasons listed at most (the rest is counted)."""


class Change(msgspec.Struct, frozen=True):
    """One count in the window and in the window before."""

    now: int
    before: int

    @property
    def delta(self) -> int:
        return self.now - self.before


class Summary(msgspec.Struct, frozen=True, kw_only=True):
    """One digest's content."""

    digest: str
    current: WindowCounts
    previous: WindowCounts
    """The window of the same length just before `current`."""

    @property
    def events(self) -> Change:
        return Change(self.current.events, self.previous.events)

    @property
    def dead(self) -> Change:
        return Change(sum(self.current.dead.values()), sum(self.previous.dead.values()))

    def statuses(self) -> list[tuple[Status, Change]]:
        """Every status either window has, in lifecycle order (the enum's), with its change."""
        seen = set(self.current.by_status) | set(self.previous.by_status)
        return [
            (s, Change(self.current.by_status.get(s, 0), self.previous.by_status.get(s, 0)))
            for s in Status
            if s in seen
        ]


async def summarise(
    store: DigestStore, name: str, *, end: datetime, window: timedelta, limit: int = LIST_LIMIT
) -> Summary:
    """The summary of the window ending at `end` (and of the one before it)."""
    current = await store.window_counts(start=end - window, end=end, limit=limit)
    previous = await store.window_counts(start=end - 2 * window, end=end - window, limit=limit)
    return Summary(digest=name, current=current, previous=previous)
