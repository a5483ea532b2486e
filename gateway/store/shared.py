"""What a store shared by several Kabarin processes offers beyond the roles in base.py.

A store one process owns (SQLite) has none of this: its process wakes its own stages and keeps
each sink's rate limit and circuit breaker in memory. A store several replicas share
(PostgreSQL) tells every replica about new work (`Notifier`) and keeps the per-sink controls in
rows every replica updates atomically (`SinkControlStore`), so a sink limited to 1/s gets 1/s in
all, not 1/s from each, and a circuit one replica opened is open for every one. Callers check
with ``isinstance`` and fall back to the in-process behaviour.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

__all__ = ["CircuitGate", "Notifier", "SinkControlStore"]


@runtime_checkable
class Notifier(Protocol):
    """Calls back on every process sharing the store when any of them commits new work."""

    async def on_notify(
        self, channel: Literal["pushes", "deliveries"], callback: Callable[[], None]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class CircuitGate:
    """What a sink's shared circuit says about one send, decided atomically."""

    allowed: bool
    probe: bool = False
    """The send is the half-open circuit's one probe (its outcome closes or re-opens it)."""
    opens_in: float = 0.0
    """Seconds until the circuit lets a send through again (0 while a probe is out)."""


@runtime_checkable
class SinkControlStore(Protocol):
    """Per-sink rate limit (a spacing limiter: the next free slot) and circuit breaker, in rows
    shared by every process. Each method is one atomic statement; `now` is wall-clock UTC."""

    async def take_rate_slot(
        self, sink: str, *, interval: float, burst: int, max_wait: float, now: datetime
    ) -> float | None:
        """Book the sink's next slot if it is at most `max_wait` s away: the seconds to wait
        for it; ``None`` (nothing booked) when it is further away."""
        ...

    async def defer_rate_slot(self, sink: str, *, interval: float, now: datetime) -> float:
        """Seconds from now at which a send that could not be booked should come back;
        successive calls (from any process) are spread one interval apart."""
        ...

    async def circuit_opens_in(self, sink: str, *, now: datetime) -> float:
        """Seconds until the sink's circuit lets a send through (0: closed or half-open)."""
        ...

    async def circuit_admit(self, sink: str, *, now: datetime, probe_lease: float) -> CircuitGate:
        """May one send go through now? Half-open lets one probe out at a time across every
        process; a probe not answered within `probe_lease` s (its process died) lets another."""
        ...

    async def circuit_record(
        self,
        sink: str,
        *,
        ok: bool,
        now: datetime,
        threshold: int,
        cooldown: float,
        max_cooldown: float,
    ) -> Literal["closed", "half-open", "open"]:
        """A send's outcome: success closes the circuit; failures count, and open it at
        `threshold` (0: never) or re-open it after a failed probe with the cool-down doubled
        (at most `max_cooldown`). The state after it."""
        ...

    async def circuit_release_probe(self, sink: str) -> None:
        """A probe `circuit_admit` let through was not sent after all: let another one out."""
        ...
