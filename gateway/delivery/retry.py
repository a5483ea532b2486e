"""When to try a failed delivery again: the durable retry schedule as a decision object.

`RetryPolicy.decide` looks at how many attempts a delivery has used and what the sink answered,
and returns `RetryAt` (put it back as pending until then) or `GiveUp` (dead letter). It sends
nothing and stores nothing, so the schedule is tested apart from the dispatcher, like
procrastinate's ``get_retry_decision``.

The default schedule follows Svix: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, each spread by
±20 %: eight attempts over about 28 hours. A peer's ``Retry-After`` lengthens the step it falls
on (up to `MAX_RETRY_AFTER`), never shortens it, and grants no extra attempts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gateway.config import RetryPolicyConfig
from sinks.base import Permanent, Retry, SinkConfig

__all__ = ["MAX_RETRY_AFTER", "GiveUp", "RetryAt", "RetryDecision", "RetryPolicy"]

MAX_RETRY_AFTER = 86400.0
"""A peer asking for more than a day is capped at a day: the delivery stays on the schedule."""


@dataclass(frozen=True, slots=True)
class RetryAt:
    """Try again at `when` (`delay` seconds after the decision)."""

    when: datetime
    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Stop trying: the delivery is dead, for `reason`."""

    reason: str


RetryDecision = RetryAt | GiveUp


class RetryPolicy:
    """A schedule of waits between attempts, with jitter and ``Retry-After``.

    ``schedule[i]`` is the wait after attempt ``i + 1``; after ``len(schedule) + 1`` attempts
    the delivery is given up.
    """

    def __init__(
        self,
        schedule: Sequence[float],
        *,
        jitter: float = 0.2,
        max_retry_after: float = MAX_RETRY_AFTER,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if not 0 <= jitter < 1:
            raise ValueError("jitter must be between 0 and 1")
        self.schedule = tuple(float(step) for step in schedule)
        self.jitter = jitter
        self.max_retry_after = max_retry_after
        self._rand = rand

    @classmethod
    def from_config(cls, config: RetryPolicyConfig, sink: SinkConfig | None = None) -> RetryPolicy:
        """The global policy, with the sink's own ``retry.schedule`` if it has one."""
        schedule: Sequence[float] = config.schedule
        if sink is not None and sink.retry is not None and sink.retry.schedule is not None:
            schedule = sink.retry.schedule
        return cls(schedule, jitter=config.jitter)

    @property
    def max_attempts(self) -> int:
        """Attempts a delivery gets before it is dead."""
        return len(self.schedule) + 1

    def decide(
        self, attempts_so_far: int, result: Retry | Permanent, now: datetime
    ) -> RetryDecision:
        """What to do after attempt number `attempts_so_far` (1 for the first) failed."""
        if isinstance(result, Permanent):
            return GiveUp(result.reason)
        if attempts_so_far >= self.max_attempts:
            plural = "s" if attempts_so_far != 1 else ""
            return GiveUp(f"gave up after {attempts_so_far} attempt{plural}: {result.reason}")
        step = self.schedule[max(attempts_so_far, 1) - 1]
        delay = step * (1 + self.jitter * (2 * self._rand() - 1))
        if result.after is not None:
            # A peer's Retry-After may lengthen a wait, never shorten the schedule: one that
            # always says 0 would use every attempt up in milliseconds.
            delay = max(delay, min(result.after, self.max_retry_after))
        return RetryAt(when=now + timedelta(seconds=delay), delay=delay)
