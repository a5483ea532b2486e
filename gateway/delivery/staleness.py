"""Staleness: a customer message about an event older than the sink's ``max_age`` is not sent.

After an outage nobody wants "your parcel was picked up" two days late. The age is measured
from the event's own time (``occurred_at``) to the moment the message would be sent, so a
delivery that waited out quiet hours or retries is judged when it is finally due.
"""

from __future__ import annotations

from datetime import datetime

from gateway.events import Event

__all__ = ["stale_reason"]


def stale_reason(event: Event, now: datetime, max_age: float | None) -> str | None:
    """Why the message about `event` is too old to send at `now`; ``None`` when it is not
    (or no `max_age` is set)."""
    if max_age is None:
        return None
    age = (now - event.occurred_at).total_seconds()
    if age <= max_age:
        return None
    return f"stale: the event is {_span(age)} old, more than max_age {_span(max_age)}"


def _span(seconds: float) -> str:
    """``12h``, ``2.5d``, ``90s``: the largest unit that keeps the number readable."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("m", 60.0)):
        if seconds >= 2 * size or (unit != "d" and seconds >= size):
            return f"{round(seconds / size, 1):g}{unit}"
    return f"{round(seconds, 1):g}s"
