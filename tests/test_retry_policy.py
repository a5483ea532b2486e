"""The durable retry schedule: a decision object, tested apart from any sending."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from gateway.config import DEFAULT_RETRY_SCHEDULE, RetryPolicyConfig, parse_config
from gateway.delivery.retry import MAX_RETRY_AFTER, GiveUp, RetryAt, RetryPolicy
from sinks.base import Permanent, Retry

NOW = datetime(2024, 5, 5, 9, 30, tzinfo=UTC)
SVIX: list[float] = [5, 300, 1800, 7200, 18000, 36000, 36000]


def no_jitter(schedule: Sequence[float]) -> RetryPolicy:
    return RetryPolicy(schedule, jitter=0)


def test_default_schedule_is_svix_like_and_gives_eight_attempts() -> None:
    policy = RetryPolicy.from_config(RetryPolicyConfig())
    assert list(policy.schedule) == SVIX
    assert [float(s) for s in DEFAULT_RETRY_SCHEDULE] == SVIX
    assert policy.max_attempts == 8
    assert policy.jitter == 0.2


@pytest.mark.parametrize(("attempts", "wait"), list(enumerate(SVIX, start=1)))
def test_each_failed_attempt_waits_its_step(attempts: int, wait: float) -> None:
    decision = no_jitter(SVIX).decide(attempts, Retry(reason="HTTP 503"), NOW)
    assert decision == RetryAt(when=NOW + timedelta(seconds=wait), delay=wait)


def test_after_the_last_step_it_gives_up_with_the_reason() -> None:
    decision = no_jitter(SVIX).decide(8, Retry(reason="HTTP 503 Service Unavailable"), NOW)
    assert isinstance(decision, GiveUp)
    assert decision.reason == "gave up after 8 attempts: HTTP 503 Service Unavailable"


def test_an_empty_schedule_means_a_single_attempt() -> None:
    assert isinstance(no_jitter([]).decide(1, Retry(reason="x"), NOW), GiveUp)


def test_permanent_is_given_up_at_once() -> None:
    decision = no_jitter(SVIX).decide(1, Permanent(reason="HTTP 400 Bad Request"), NOW)
    assert decision == GiveUp("HTTP 400 Bad Request")


@pytest.mark.parametrize("rand", [0.0, 0.25, 0.5, 0.999])
def test_jitter_spreads_each_wait_by_twenty_percent(rand: float) -> None:
    policy = RetryPolicy([300], jitter=0.2, rand=lambda: rand)
    decision = policy.decide(1, Retry(reason="x"), NOW)
    assert isinstance(decision, RetryAt)
    assert 240 <= decision.delay <= 360
    assert decision.when == NOW + timedelta(seconds=decision.delay)


def test_jitter_really_varies() -> None:
    policy = RetryPolicy([300], jitter=0.2)
    delays = {policy.decide(1, Retry(reason="x"), NOW).delay for _ in range(50)}  # type: ignore[union-attr]
    assert len(delays) > 10
    assert all(240 <= d <= 360 for d in delays)


def test_retry_after_lengthens_a_wait_and_never_shortens_the_schedule() -> None:
    policy = no_jitter(SVIX)
    decision = policy.decide(1, Retry(reason="HTTP 429", after=42, status_code=429), NOW)
    assert decision == RetryAt(when=NOW + timedelta(seconds=42), delay=42)  # step: 5 s
    decision = policy.decide(3, Retry(reason="HTTP 429", after=42, status_code=429), NOW)
    assert decision == RetryAt(when=NOW + timedelta(seconds=1800), delay=1800)  # step: 30 min


def test_retry_after_zero_negative_or_past_keeps_the_schedule() -> None:
    # a peer that always says "now" must not use up every attempt in milliseconds
    for after in (0.0, -5.0):
        decision = no_jitter(SVIX).decide(1, Retry(reason="x", after=after), NOW)
        assert decision == RetryAt(when=NOW + timedelta(seconds=5), delay=5.0)


def test_retry_after_is_capped_at_a_day() -> None:
    decision = no_jitter(SVIX).decide(1, Retry(reason="x", after=30 * 86400), NOW)
    assert decision == RetryAt(when=NOW + timedelta(days=1), delay=MAX_RETRY_AFTER)


def test_retry_after_grants_no_extra_attempts() -> None:
    decision = no_jitter([1, 1]).decide(3, Retry(reason="x", after=1), NOW)
    assert isinstance(decision, GiveUp)


def test_a_sinks_schedule_overrides_the_global_one() -> None:
    config = parse_config(
        """
receiver: {token: t0k3n-abc}
retry: {schedule: [1s, 2s], jitter: 0.1}
sinks:
  fast: {type: console, retry: {schedule: [50ms, 50ms, 50ms]}}
  plain: {type: console}
"""
    )
    fast = RetryPolicy.from_config(config.retry, config.sinks["fast"])
    plain = RetryPolicy.from_config(config.retry, config.sinks["plain"])
    assert fast.schedule == (0.05, 0.05, 0.05) and fast.jitter == 0.1
    assert plain.schedule == (1.0, 2.0)


def test_jitter_must_be_a_fraction() -> None:
    with pytest.raises(ValueError):
        RetryPolicy([1], jitter=1.5)
