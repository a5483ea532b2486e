"""The stages a delivery goes through on its way to a sink, each its own small object.

- `retry`: `RetryPolicy` decides when to try again (`RetryAt`) or to give up (`GiveUp`).
- `breaker`: `CircuitBreaker` stops sending to a sink that keeps failing.
- `limiter`: `RateLimiter` spaces sends to a sink's ``rate_limit``.
- `attempts`: one send, timed and recorded, with quick retries for connection blips.

`gateway.dispatcher.Dispatcher` wires them together.
"""

from __future__ import annotations

from gateway.delivery.attempts import send_with_quick_retries
from gateway.delivery.breaker import CircuitBreaker, CircuitState
from gateway.delivery.limiter import RateLimiter
from gateway.delivery.retry import GiveUp, RetryAt, RetryDecision, RetryPolicy

__all__ = [
    "CircuitBreaker",
    "CircuitState",
    "GiveUp",
    "RateLimiter",
    "RetryAt",
    "RetryDecision",
    "RetryPolicy",
    "send_with_quick_retries",
]
