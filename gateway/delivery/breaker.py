"""A circuit breaker per sink: stop hammering a destination that keeps failing.

::

    closed ──N consecutive failures──▶ open ──cool-down──▶ half-open ──probe ok──▶ closed
                                        ▲                      │
                                        └──probe failed (cool-down doubles, capped)

While open, the dispatcher puts claimed deliveries back until `CircuitBreaker.opens_again_in`
has passed, without using up their attempts. Half-open lets one probe send through; its
outcome closes or re-opens the circuit. A failure is an answer that asks for a retry (5xx, 429,
network errors); a permanent refusal (4xx) proves the sink is up and counts as a success.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

__all__ = ["CircuitBreaker", "CircuitState"]

CircuitState = Literal["closed", "half-open", "open"]


class CircuitBreaker:
    """Consecutive-failure breaker with a doubling cool-down.

    Defaults: opens after 5 consecutive failures for 30 s; each failed probe doubles the
    cool-down up to 5 min; a successful probe closes it and resets the cool-down.
    `on_change` is called with the new state on every transition (for the metrics gauge).
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cooldown: float = 30.0,
        max_cooldown: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        if failure_threshold < 0:
            raise ValueError("failure_threshold must be 0 (off) or more")
        self.failure_threshold = failure_threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max(cooldown, max_cooldown)
        self._clock = clock
        self._on_change = on_change
        self._state: CircuitState = "closed"
        self._failures = 0
        self._cooldown = cooldown
        self._open_until = 0.0
        self._probing = False

    @property
    def state(self) -> CircuitState:
        """The current state; an open circuit turns half-open once its cool-down has passed."""
        if self._state == "open" and self._clock() >= self._open_until:
            self._set("half-open")
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    @property
    def cooldown(self) -> float:
        """The cool-down the circuit opens (or opened) for."""
        return self._cooldown

    def allow(self) -> bool:
        """May one send go through now? In half-open state only one probe at a time may."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._probing:
            self._probing = True
            return True
        return False

    def opens_again_in(self) -> float:
        """Seconds until `allow` could say yes: 0 when closed, the rest of the cool-down when
        open, and 0 in half-open state (where the probe's answer is awaited)."""
        if self.state == "open":
            return max(0.0, self._open_until - self._clock())
        return 0.0

    def record_success(self) -> None:
        """The sink answered: close the circuit and reset the cool-down."""
        self._failures = 0
        self._probing = False
        self._cooldown = self.base_cooldown
        if self._state != "closed":
            self._set("closed")

    def record_failure(self) -> None:
        """The sink failed: count it; open (or re-open, doubling the cool-down) when due."""
        self._failures += 1
        if self._state == "half-open" or (self._state == "open" and self._probing):
            self._probing = False
            self._cooldown = min(self._cooldown * 2, self.max_cooldown)
            self._trip()
        elif self._state == "closed" and 0 < self.failure_threshold <= self._failures:
            self._trip()  # a threshold of 0 means the breaker is off

    def release_probe(self) -> None:
        """A probe `allow` let through was not sent after all: let another one through."""
        self._probing = False

    def _trip(self) -> None:
        self._open_until = self._clock() + self._cooldown
        self._set("open")

    def _set(self, state: CircuitState) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.state}, failures={self._failures}, cooldown={self._cooldown:g}s)"
        )
