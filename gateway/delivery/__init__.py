"""The stages a delivery goes through on its way to a sink, each its own small object.

- `retry`: `RetryPolicy` decides when to try again (`RetryAt`) or to give up (`GiveUp`).
- `breaker`: `CircuitBreaker` stops sending to a sink that keeps failing.
- `limiter`: `RateLimiter` spaces sends to a sink's ``rate_limit``.
- `attempts`: one send, timed and recorded, with quick retries for connection blips.
- `model`: the records they work on: `Delivery`, `Attempt`, `Claim`, `NewDelivery`, `Group`.
- `grouping`: when a grouped route's next message goes (`message_due`, `plan_groups`).
- `preparation`: before a send: staleness, quiet hours, the contact, the message parts.
- `sending`: breaker, sink slot and rate limit, the send, and what its answer means.
- `recording`: outcomes and customer-send starts, committed in batches.
- `shutdown`: what a worker's unfinished jobs come to when it stops.

`gateway.dispatcher.Dispatcher` wires them together.
"""
