"""Per-sink controls: the circuit breaker and rate limiter on a hand-driven clock, and how the
dispatcher sets them up from a sink's configuration."""

from __future__ import annotations

import msgspec
import pytest

from gateway.config import parse_config
from gateway.delivery.breaker import CircuitBreaker, CircuitState
from gateway.delivery.controls import SinkControls
from gateway.delivery.limiter import RateLimiter
from gateway.units import parse_rate_limit
from sinks.base import SinkDeps
from sinks.console import ConsoleSink


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_breaker(clock: Clock, changes: list[CircuitState] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        failure_threshold=5,
        cooldown=30,
        max_cooldown=300,
        clock=clock,
        on_change=changes.append if changes is not None else None,
    )


def test_opens_after_five_consecutive_failures() -> None:
    clock, changes = Clock(), list[CircuitState]()
    breaker = make_breaker(clock, changes)
    for _ in range(4):
        breaker.record_failure()
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.opens_again_in() == 30
    assert changes == ["open"]


def test_a_success_resets_the_count() -> None:
    breaker = make_breaker(Clock())
    for _ in range(4):
        breaker.record_failure()
    breaker.record_success()
    for _ in range(4):
        breaker.record_failure()
    assert breaker.state == "closed"


def test_half_open_after_the_cooldown_lets_one_probe_through() -> None:
    clock, changes = Clock(), list[CircuitState]()
    breaker = make_breaker(clock, changes)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 29.9
    assert not breaker.allow()
    assert breaker.opens_again_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.state == "half-open"
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # nobody else while it is out
    assert breaker.opens_again_in() == 0
    breaker.record_success()
    assert str(breaker.state) == "closed" and breaker.allow()
    assert changes == ["open", "half-open", "closed"]


def test_a_failed_probe_reopens_with_a_doubled_cooldown_up_to_five_minutes() -> None:
    clock = Clock()
    breaker = make_breaker(clock)
    for _ in range(5):
        breaker.record_failure()
    cooldowns = []
    for _ in range(6):
        clock.now += breaker.opens_again_in()
        assert breaker.allow()
        breaker.record_failure()
        assert breaker.state == "open"
        cooldowns.append(breaker.opens_again_in())
    assert cooldowns == [60, 120, 240, 300, 300, 300]
    clock.now += 300
    assert breaker.allow()
    breaker.record_success()
    for _ in range(5):
        breaker.record_failure()
    assert breaker.opens_again_in() == 30  # success reset the cool-down


def test_an_unsent_probe_can_be_handed_back() -> None:
    clock = Clock()
    breaker = make_breaker(clock)
    for _ in range(5):
        breaker.record_failure()
    clock.now += 30
    assert breaker.allow()
    breaker.release_probe()
    assert breaker.allow()


def test_late_failures_from_before_the_trip_do_not_extend_it() -> None:
    clock = Clock()
    breaker = make_breaker(clock)
    for _ in range(7):  # two sends that were already under way fail after it opened
        breaker.record_failure()
    assert breaker.opens_again_in() == 30


def test_threshold_cannot_be_negative() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=-1)


# -- rate limiter ---------------------------------------------------------------------------


def test_one_per_second_spaces_sends_a_second_apart() -> None:
    clock = Clock()
    limiter = RateLimiter.from_rate(parse_rate_limit("1/s"), clock=clock)
    assert [limiter.reserve(10) for _ in range(4)] == [0, 1, 2, 3]
    clock.now += 10  # idle time does not bank a burst
    assert limiter.reserve(10) == 0
    assert limiter.reserve(10) == 1


def test_thirty_a_minute_is_one_every_two_seconds() -> None:
    limiter = RateLimiter.from_rate(parse_rate_limit("30/m"), clock=Clock())
    assert limiter.interval == 2
    assert [limiter.reserve(10) for _ in range(3)] == [0, 2, 4]


def test_a_slot_too_far_away_books_nothing() -> None:
    clock = Clock()
    limiter = RateLimiter(1.0, clock=clock)
    assert [limiter.reserve(2) for _ in range(3)] == [0, 1, 2]
    assert limiter.reserve(2) is None
    assert limiter.wait_time() == 3
    clock.now += 1
    assert limiter.reserve(2) == 2


def test_deferred_sends_come_back_one_interval_apart() -> None:
    limiter = RateLimiter(1.0, clock=Clock())
    limiter.reserve(5)
    limiter.reserve(5)
    assert [limiter.defer() for _ in range(3)] == [2, 3, 4]


def test_burst() -> None:
    limiter = RateLimiter(1.0, burst=3, clock=Clock())
    assert [limiter.reserve(10) for _ in range(5)] == [0, 0, 0, 1, 2]


def test_limiter_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        RateLimiter(0)
    with pytest.raises(ValueError):
        RateLimiter(1, burst=0)


# -- how the dispatcher configures them per sink ---------------------------------------------


def _controls(block: dict[str, object], clock: Clock | None = None) -> SinkControls:
    config = parse_config(
        msgspec.json.encode(
            {"receiver": {"token": "t0k3n"}, "sinks": {"c": {"type": "console", **block}}}
        ).decode()
    )
    sink = ConsoleSink.build("c", config.sinks["c"], SinkDeps())
    if clock is None:
        return SinkControls.build("c", sink, config.retry)
    return SinkControls.build("c", sink, config.retry, timer=clock)


def test_the_breaker_and_limiter_run_on_the_timer_they_are_given() -> None:
    clock = Clock()
    controls = _controls(
        {"rate_limit": "1/s", "circuit_breaker": {"failures": 1, "cooldown": "30s"}}, clock
    )
    controls.breaker.record_failure()
    clock.now += 29
    assert controls.breaker.state == "open" and controls.breaker.opens_again_in() == 1
    clock.now += 1
    assert str(controls.breaker.state) == "half-open"
    assert controls.limiter is not None
    assert [controls.limiter.reserve(5) for _ in range(2)] == [0, 1]
    clock.now += 1
    assert controls.limiter.reserve(5) == 1


def test_the_breaker_takes_the_sinks_circuit_breaker_block() -> None:
    default = _controls({}).breaker
    assert (default.failure_threshold, default.base_cooldown, default.max_cooldown) == (5, 30, 300)
    custom = _controls(
        {"circuit_breaker": {"failures": 2, "cooldown": "500ms", "max_cooldown": "10s"}}
    ).breaker
    assert (custom.failure_threshold, custom.base_cooldown, custom.max_cooldown) == (2, 0.5, 10)


def test_a_breaker_with_failures_0_never_opens() -> None:
    breaker = _controls({"circuit_breaker": {"failures": 0}}).breaker
    for _ in range(100):
        breaker.record_failure()
    assert breaker.state == "closed"
    assert breaker.allow()


def test_the_rate_limit_takes_the_sinks_rate_limit() -> None:
    controls = _controls({"rate_limit": "2/s"})
    assert controls.limiter is not None and controls.limiter.interval == 0.5
    assert _controls({}).limiter is None
