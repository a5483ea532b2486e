"""Everything one sink's deliveries pass through before a send: retry policy, concurrency slots,
circuit breaker and rate limiter, built once per configured sink.

Numbers come from the sink's block: the breaker opens after ``circuit_breaker.failures`` (5)
consecutive failures, stays open ``circuit_breaker.cooldown`` (30 s), and each failed probe
doubles that up to ``circuit_breaker.max_cooldown`` (5 min). The breaker lives in memory, but the
times it puts on held-back deliveries are in the store, so they also hold after a restart. The
concurrency limit is the sink's ``concurrency`` (default 10); the rate limit its ``rate_limit``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway import metrics
from gateway.config import RetryPolicyConfig
from gateway.delivery.breaker import CircuitBreaker, CircuitState
from gateway.delivery.limiter import RateLimiter
from gateway.delivery.retry import RetryPolicy
from sinks.base import Sink

__all__ = ["SinkControls"]

log = logging.getLogger("kabarin.dispatcher")


@dataclass
class SinkControls:
    """One sink with its retry policy, in-flight slots, breaker and (optional) rate limiter."""

    name: str
    sink: Sink
    policy: RetryPolicy
    slots: asyncio.Semaphore
    breaker: CircuitBreaker
    limiter: RateLimiter | None

    @classmethod
    def build(
        cls,
        name: str,
        sink: Sink,
        retry: RetryPolicyConfig,
        *,
        timer: Callable[[], float] = time.monotonic,
    ) -> SinkControls:
        """Controls from the sink's configuration; its circuit gauge starts at closed (0).

        `timer` (seconds, monotonic) is the breaker's and the rate limiter's clock."""
        gauge = metrics.SINK_CIRCUIT_STATE.labels(name)
        gauge.set(metrics.CIRCUIT_STATE_VALUES["closed"])
        metrics.DELIVERIES_PENDING.labels(name)  # present (at 0) before the first scrape
        metrics.DELIVERIES_DEAD.labels(name)

        def on_change(state: CircuitState) -> None:
            gauge.set(metrics.CIRCUIT_STATE_VALUES[state])
            if state == "open":
                log.warning("sink %s: circuit open after repeated failures; sends paused", name)
            elif state == "closed":
                log.info("sink %s: circuit closed; sending again", name)

        rate = sink.config.rate_limit
        policy = RetryPolicy.from_config(retry, sink.config)
        breaker = sink.config.circuit_breaker
        return cls(
            name=name,
            sink=sink,
            policy=policy,
            slots=asyncio.Semaphore(sink.config.concurrency),
            breaker=CircuitBreaker(
                failure_threshold=breaker.failures,
                cooldown=float(breaker.cooldown),
                max_cooldown=float(breaker.max_cooldown),
                clock=timer,
                on_change=on_change,
            ),
            limiter=RateLimiter.from_rate(rate, clock=timer) if rate is not None else None,
        )
