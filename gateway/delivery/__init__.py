"""The stages a delivery goes through on its way to a sink, each its own small object.

- `retry`: `RetryPolicy` decides when to try again (`RetryAt`) or to give up (`GiveUp`).
- `breaker`: `CircuitBreaker` stops sending to a sink that keeps failing.
- `limiter`: `RateLimiter` spaces sends to a sink's ``rate_limit``.
- `attempts`: one send, timed and recorded, with quick retries for connection blips.
- `model`: the records they work on: `Delivery`, `Attempt`, `Claim`, `NewDelivery`.

`gateway.dispatcher.Dispatcher` wires them together.
"""
