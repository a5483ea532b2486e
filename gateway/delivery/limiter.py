"""A rate limiter per sink: space sends out to the sink's ``rate_limit`` (``1/s``, ``30/m``).

A spacing limiter (GCRA, the token bucket written as "the next free slot"): each send books the
next slot, ``interval`` seconds after the previous one, with an optional burst. A send whose slot
is near waits for it in-process; one whose slot is far off books nothing and is handed back to
the store instead (`RateLimiter.defer` spreads those one interval apart, so they do not all come
back at the same moment).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.units import RateLimit

__all__ = ["RateLimiter"]


class RateLimiter:
    """At most one send per `interval` seconds, after an initial `burst` of sends."""

    def __init__(
        self, interval: float, *, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.interval = interval
        self.burst = burst
        self._clock = clock
        self._next_slot = 0.0
        """Theoretical time of the next send at the steady rate."""
        self._deferred_until = 0.0

    @classmethod
    def from_rate(
        cls, rate: RateLimit, *, clock: Callable[[], float] = time.monotonic
    ) -> RateLimiter:
        """Strict spacing at the configured rate: ``1/s`` is one send a second, ``30/m`` one
        every 2 s."""
        return cls(rate.interval, clock=clock)

    def wait_time(self) -> float:
        """Seconds until a send would be allowed, booking nothing."""
        now = self._clock()
        allowed_at = max(self._next_slot, now) - (self.burst - 1) * self.interval
        return max(0.0, allowed_at - now)

    def reserve(self, max_wait: float) -> float | None:
        """Book the next slot if it is at most `max_wait` seconds away; the seconds to wait.

        ``None`` (and nothing booked) when the slot is further away than that.
        """
        now = self._clock()
        slot = max(self._next_slot, now)
        wait = max(0.0, slot - (self.burst - 1) * self.interval - now)
        if wait > max_wait:
            return None
        self._next_slot = slot + self.interval
        return wait

    def defer(self) -> float:
        """Seconds from now at which a send that could not be booked should come back.

        Successive calls are spread one interval apart beyond the booked slots.
        """
        now = self._clock()
        start = max(self._next_slot, self._deferred_until, now)
        self._deferred_until = start + self.interval
        return start - now

    def __repr__(self) -> str:
        return f"RateLimiter(interval={self.interval:g}s, burst={self.burst})"
