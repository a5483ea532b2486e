"""Everything one sink's deliveries pass through before a send: retry policy, concurrency slots,
circuit breaker and rate limiter, built once per configured sink.

Numbers come from the sink's block: the breaker opens after ``circuit_breaker.failures`` (5)
consecutive failures, stays open ``circuit_breaker.cooldown`` (30 s), and each failed probe
doubles that up to ``circuit_breaker.max_cooldown`` (5 min). The concurrency limit is the sink's
``concurrency`` (default 10, per process); the rate limit its ``rate_limit``.

Where the breaker and the limiter live depends on the store. With one process (SQLite) they are
in memory (`CircuitBreaker`, `RateLimiter` on the monotonic `timer`); the times they put on
held-back deliveries are in the store, so those hold after a restart. With a store several
replicas share (a `SinkControlStore`: PostgreSQL) they are rows every replica updates atomically,
on the wall `clock`: the sink's rate is for all replicas together and its circuit is one circuit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from gateway import metrics
from gateway.config import RetryPolicyConfig
from gateway.delivery.breaker import CircuitBreaker, CircuitState
from gateway.delivery.limiter import RateLimiter
from gateway.delivery.retry import RetryPolicy
from gateway.store.shared import CircuitGate, SinkControlStore
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
    """In memory; with `shared`, only the circuit state last seen in the store."""
    limiter: RateLimiter | None
    shared: SinkControlStore | None = None
    """The store holding this sink's breaker and rate-limit rows for every replica."""
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    on_change: Callable[[CircuitState], None] | None = None
    seen: CircuitState = field(default="closed", init=False)
    """The shared circuit's state as this process last saw it (for the gauge and the UI)."""

    @classmethod
    def build(
        cls,
        name: str,
        sink: Sink,
        retry: RetryPolicyConfig,
        *,
        timer: Callable[[], float] = time.monotonic,
        shared: SinkControlStore | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> SinkControls:
        """Controls from the sink's configuration; its circuit gauge starts at closed (0).

        `timer` (seconds, monotonic) is the in-memory breaker's and rate limiter's clock;
        `clock` (wall, UTC) the shared ones' when `shared` is given."""
        gauge = metrics.SINK_CIRCUIT_STATE.labels(name)
        gauge.set(metrics.CIRCUIT_STATE_VALUES["closed"])

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
            shared=shared,
            clock=clock,
            on_change=on_change,
        )

    # -- what the dispatcher asks, answered in memory or by the shared rows ----------------
    @property
    def circuit_state(self) -> CircuitState:
        """As last seen (shared), or as it is now (in memory)."""
        return self.seen if self.shared is not None else self.breaker.state

    async def opens_in(self) -> float:
        """Seconds until the circuit lets a send through (0: closed or half-open)."""
        if self.shared is None:
            return self.breaker.opens_again_in() if self.breaker.state == "open" else 0.0
        if self.seen == "closed":
            return 0.0  # a read saved per send: `admit` reads the shared row before a send
        wait = await self.shared.circuit_opens_in(self.name, now=self.clock())
        if wait > 0:
            self._see("open")
        return wait

    async def admit(self, probe_lease: float) -> CircuitGate:
        """May one send go through now (see `SinkControlStore.circuit_admit`)?"""
        if self.shared is None:
            if self.breaker.allow():
                return CircuitGate(allowed=True, probe=self.breaker.state == "half-open")
            return CircuitGate(allowed=False, opens_in=self.breaker.opens_again_in())
        gate = await self.shared.circuit_admit(self.name, now=self.clock(), probe_lease=probe_lease)
        if gate.probe or gate.opens_in > 0:
            self._see("half-open" if gate.probe else "open")
        return gate

    async def record(self, *, ok: bool) -> None:
        """The sink answered (`ok`: it is up) or failed."""
        if self.shared is None:
            if ok:
                self.breaker.record_success()
            else:
                self.breaker.record_failure()
            return
        breaker = self.breaker
        state = await self.shared.circuit_record(
            self.name,
            ok=ok,
            now=self.clock(),
            threshold=breaker.failure_threshold,
            cooldown=breaker.base_cooldown,
            max_cooldown=breaker.max_cooldown,
        )
        self._see(state)

    async def release_probe(self) -> None:
        if self.shared is None:
            self.breaker.release_probe()
        else:
            await self.shared.circuit_release_probe(self.name)

    async def reserve(self, max_wait: float) -> float | None:
        """Book the next rate-limit slot if at most `max_wait` s away: the seconds to wait;
        ``None`` when it is further (nothing booked). 0 for a sink without a rate limit."""
        limiter = self.limiter
        if limiter is None:
            return 0.0
        if self.shared is None:
            return limiter.reserve(max_wait)
        return await self.shared.take_rate_slot(
            self.name,
            interval=limiter.interval,
            burst=limiter.burst,
            max_wait=max_wait,
            now=self.clock(),
        )

    async def defer(self) -> float:
        """Seconds from now at which a send that found no slot should come back."""
        limiter = self.limiter
        if limiter is None:
            return 0.0
        if self.shared is None:
            return limiter.defer()
        return await self.shared.defer_rate_slot(
            self.name, interval=limiter.interval, now=self.clock()
        )

    def _see(self, state: CircuitState) -> None:
        if state != self.seen:
            self.seen = state
            if self.on_change is not None:
                self.on_change(state)
