"""The dispatcher on the real SQLite store, with scripted sinks that record what they were sent."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Self
from zoneinfo import ZoneInfo

import pytest

from gateway import metrics
from gateway.config import DispatcherConfig, RetryPolicyConfig
from gateway.delivery.model import (
    OUTCOME_UNKNOWN,
    Attempt,
    Delivery,
    DeliveryFilter,
    NewDelivery,
    Ordering,
)
from gateway.dispatcher import Dispatcher, utcnow
from gateway.errors import StoreError
from gateway.events import Event, Status, event_id
from gateway.redaction import Redactor
from gateway.reload import close_when_idle
from gateway.store import open_store
from gateway.store.roles import Finished, NewPush, Store
from gateway.templating import Templates, encode_parts
from gateway.units import Duration, parse_rate_limit
from sinks.base import (
    Delivered,
    Message,
    Permanent,
    Retry,
    RetryConfig,
    SendResult,
    SinkConfig,
    SinkDeps,
    Skipped,
)
from tests.conftest import ingest
from tests.waiting import eventually

SECRET = "erp-pass-s3cr3t-7788"
PHONE = "081234567890"
FAST = ["50ms", "50ms"]

Script = SendResult | BaseException


class FakeConfig(SinkConfig, tag="fake", kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class FakeSink:
    """Answers from `script` in turn (then `default`), records every message and the most
    sends it ever had in flight at once."""

    config_type: ClassVar[type[SinkConfig]] = FakeConfig
    default_ordering: ClassVar[Ordering] = "all"
    writes_to_customer: ClassVar[bool] = False
    parts: ClassVar[tuple[str, ...]] = ("text",)
    default_templates: ClassVar[dict[str, dict[str, str]]] = {
        "text": {
            "id": "{{ event.status | status_label }}: pesanan {{ event.order_id }}",
            "en": "{{ event.status | status_label }}: order {{ event.order_id }}",
        }
    }

    def __init__(
        self,
        name: str = "fake",
        config: FakeConfig | None = None,
        *,
        script: Sequence[Script] = (),
        default: Script | None = None,
        delay: float = 0.0,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.config = config or FakeConfig()
        self.script = list(script)
        self.default = default if default is not None else Delivered(status_code=200)
        self.delay = delay
        self.gate = gate
        self.messages: list[Message] = []
        self.sent_at: list[float] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.closed = False

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        return cls(name, config)

    async def send(self, message: Message) -> SendResult:
        self.messages.append(message)
        self.sent_at.append(time.monotonic())
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = self.script.pop(0) if self.script else self.default
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.in_flight -= 1

    def preview(self, message: Message) -> str:
        return message.text

    def secrets(self) -> list[str]:
        return [SECRET]

    async def aclose(self) -> None:
        self.closed = True

    @property
    def texts(self) -> list[str]:
        return [m.text for m in self.messages]


class MailLikeSink(FakeSink):
    """A kind with a part no built-in template gives, like the email sink's subject."""

    parts: ClassVar[tuple[str, ...]] = ("subject", "text")


# -- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/k.db")
    await opened.open(now=datetime.now(UTC))
    try:
        yield opened
    finally:
        await opened.close()


def dispatcher(
    store: Store,
    *sinks: FakeSink,
    schedule: Sequence[str] = FAST,
    batch: int = 100,
    poll: float = 0.5,
    lease: float = 60,
    clock: Clock | None = None,
) -> Dispatcher:
    from gateway.units import parse_duration

    return Dispatcher(
        store=store,
        sinks={s.name: s for s in sinks},
        templates=Templates(timezone=ZoneInfo("Asia/Jakarta")),
        retry=RetryPolicyConfig(schedule=[parse_duration(s) for s in schedule], jitter=0),
        config=DispatcherConfig(
            batch=batch,
            poll_interval=Duration(poll),
            lease=Duration(lease),
            shutdown_timeout=Duration(2),
        ),
        redactor=Redactor([SECRET]),
        worker_id="test-worker",
        clock=clock or utcnow,
        timer=clock.monotonic if clock is not None else time.monotonic,
        sleep=clock.sleep if clock is not None else asyncio.sleep,
    )


class Clock:
    """A hand-driven clock for the dispatcher, its breakers and rate limiters: `sleep` records
    the wait and moves time on instead of waiting."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        await asyncio.sleep(0)


def config(**fields: Any) -> FakeConfig:
    if "rate_limit" in fields:
        fields["rate_limit"] = parse_rate_limit(fields["rate_limit"])
    if "schedule" in fields:
        fields["retry"] = RetryConfig(schedule=[Duration(s) for s in fields.pop("schedule")])
    return FakeConfig(**fields)


_BASE = datetime(2024, 5, 5, 9, 30, tzinfo=UTC)


async def add(
    store: Store,
    order_id: str = "OID-1",
    *,
    sink: str = "fake",
    status: Status = Status.SHIPPED,
    minutes: int = 0,
    template: str | None = None,
    ordering: Ordering = "all",
    shop: str = "default",
) -> str:
    """Store one event of `shop`'s order `order_id` and its delivery to `sink`; the delivery
    id."""
    occurred = _BASE + timedelta(minutes=minutes)
    eid = event_id("test", order_id, status, occurred.isoformat() + shop)
    event = Event(
        id=eid,
        shop=shop,
        source="push",
        method="shipped_packages",
        kind="express",
        status=status,
        order_id=order_id,
        awb="JP1234567890",
        occurred_at=occurred,
        received_at=datetime.now(UTC),
    )
    did = f"dlv_{eid[4:]}_{sink}"
    delivery = NewDelivery(
        id=did, event_id=eid, route="all", sink=sink, ordering=ordering, template=template
    )
    await ingest(store, events=[event], deliveries=[delivery])
    return did


async def delivery(store: Store, did: str) -> tuple[Delivery, list[Attempt]]:
    found = await store.get_delivery(did)
    assert found is not None
    return found


async def state_is(store: Store, did: str, state: str) -> bool:
    return (await delivery(store, did))[0].state == state


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# -- the happy path ---------------------------------------------------------------------------


async def test_a_due_delivery_is_rendered_sent_and_recorded_once(store: Store) -> None:
    sink = FakeSink()
    did = await add(store, "OID-HAPPY")
    before = sample("kabarin_deliveries_total", sink="fake", outcome="delivered", shop="default")

    assert await dispatcher(store, sink).run_once() == 1

    (message,) = sink.messages
    assert message.text == "Dikirim: pesanan OID-HAPPY"
    assert message.delivery_id == did and message.route == "all" and message.attempt == 1
    stored, attempts = await delivery(store, did)
    assert stored.state == "delivered" and stored.delivered_at is not None
    (attempt,) = attempts
    assert attempt.outcome == "delivered" and attempt.status_code == 200
    assert attempt.duration_ms >= 0 and attempt.error is None
    assert (
        sample("kabarin_deliveries_total", sink="fake", outcome="delivered", shop="default")
        == before + 1
    )
    assert sample("kabarin_delivery_latency_seconds_count", sink="fake", shop="default") >= 1
    assert await dispatcher(store, sink).run_once() == 0


async def test_the_store_records_the_dispatchers_time(store: Store) -> None:
    # The store reads no clock: what it writes on finish is the dispatcher's (injected) time.
    clock = Clock()
    clock.now += timedelta(days=3)
    did = await add(store, "OID-CLOCK")
    assert await dispatcher(store, FakeSink(), clock=clock).run_once() == 1
    stored, _ = await delivery(store, did)
    assert stored.state == "delivered"
    assert stored.delivered_at == clock.now and stored.updated_at == clock.now


async def test_wake_sends_at_once_without_waiting_for_the_poll(store: Store) -> None:
    sink = FakeSink()
    d = dispatcher(store, sink, poll=30)
    await d.start()
    await asyncio.sleep(0.05)  # the loop has looked, found nothing, and sleeps
    did = await add(store)
    d.wake()
    # the poll is 30 s: only the wake can have sent it this soon
    await eventually(lambda: state_is(store, did, "delivered"), within=5)
    await d.stop()


# -- retries ---------------------------------------------------------------------------------


async def test_failures_are_retried_on_the_schedule_until_delivered(store: Store) -> None:
    sink = FakeSink(
        script=[
            Retry(reason="HTTP 503 Service Unavailable", status_code=503),
            Retry(reason="HTTP 500 Internal Server Error", status_code=500),
        ]
    )
    did = await add(store)
    d = dispatcher(store, sink, poll=0.05)
    await d.start()
    await eventually(lambda: state_is(store, did, "delivered"))
    await d.stop()
    stored, attempts = await delivery(store, did)
    assert [a.outcome for a in attempts] == ["retry", "retry", "delivered"]
    assert [a.status_code for a in attempts] == [503, 500, 200]
    assert [m.attempt for m in sink.messages] == [1, 2, 3]
    assert stored.attempts == 3


async def test_exhausted_schedule_is_a_dead_letter_with_the_error(store: Store) -> None:
    sink = FakeSink(default=Retry(reason="HTTP 503 Service Unavailable", status_code=503))
    did = await add(store)
    d = dispatcher(store, sink, poll=0.05)
    await d.start()
    await eventually(lambda: state_is(store, did, "dead"))
    await d.stop()
    stored, attempts = await delivery(store, did)
    assert len(sink.messages) == 3 == len(attempts)
    assert stored.last_error == "gave up after 3 attempts: HTTP 503 Service Unavailable"


async def test_a_permanent_refusal_is_dead_at_once(store: Store) -> None:
    sink = FakeSink(
        script=[Permanent(reason="HTTP 400 Bad Request: no such shop", status_code=400)]
    )
    did = await add(store)
    await dispatcher(store, sink).run_once()
    stored, (attempt,) = await delivery(store, did)
    assert stored.state == "dead"
    assert stored.last_error == "HTTP 400 Bad Request: no such shop"
    assert attempt.outcome == "permanent" and attempt.status_code == 400


async def test_410_gone_disables_the_sink_and_says_how_to_enable_it(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink(script=[Permanent(reason="HTTP 410 Gone", status_code=410, disable_sink=True)])
    first = await add(store, "OID-1")
    d = dispatcher(store, sink)
    with caplog.at_level(logging.ERROR, logger="kabarin.dispatcher"):
        await d.run_once()
    assert "410" in (await store.disabled_sinks())["fake"]
    assert any("enable" in r.getMessage() and "fake" in r.getMessage() for r in caplog.records)
    stored, (attempt,) = await delivery(store, first)
    assert stored.state == "pending" and stored.attempts == 0  # it waits, its attempt unused
    assert stored.waiting is not None and "/sinks/fake/enable" in stored.waiting
    assert attempt.status_code == 410

    later = await add(store, "OID-2")
    assert await d.run_once() == 0
    assert len(sink.messages) == 1
    unclaimed, _ = await delivery(store, later)
    assert unclaimed.state == "pending"
    assert unclaimed.waiting == (
        "sink switched off (HTTP 410 Gone): enable it with POST /admin/v1/sinks/fake/enable"
    )
    assert [d.waiting for d in await store.list_deliveries(DeliveryFilter())] == [
        unclaimed.waiting,
        unclaimed.waiting,
    ]
    assert await store.enable_sink("fake")
    assert await d.run_once() == 2
    assert await state_is(store, first, "delivered")
    assert await state_is(store, later, "delivered")
    assert (await delivery(store, first))[0].waiting is None


async def test_retry_after_sets_the_next_attempt(store: Store) -> None:
    sink = FakeSink(script=[Retry(reason="HTTP 429 Too Many Requests", after=30, status_code=429)])
    did = await add(store)
    clock = Clock()
    await dispatcher(store, sink, clock=clock).run_once()
    stored, (attempt,) = await delivery(store, did)
    assert stored.state == "pending" and stored.attempts == 1
    assert stored.next_attempt_at == clock.now + timedelta(seconds=30)
    assert attempt.status_code == 429


async def test_connection_blips_are_retried_in_process_each_try_recorded(store: Store) -> None:
    blip = Retry(reason="network error (ConnectError): connection refused", unsent=True)
    sink = FakeSink(script=[blip, blip])
    did = await add(store)
    await dispatcher(store, sink).run_once()
    stored, attempts = await delivery(store, did)
    assert stored.state == "delivered"
    assert [a.outcome for a in attempts] == ["retry", "retry", "delivered"]
    assert attempts[0].error == blip.reason and attempts[0].status_code is None
    assert stored.attempts == 1  # one go on the durable schedule


async def test_blips_that_persist_fall_back_to_the_durable_schedule(store: Store) -> None:
    sink = FakeSink(default=Retry(reason="timed out connecting (ConnectTimeout)", unsent=True))
    did = await add(store)
    await dispatcher(store, sink, schedule=["1h"]).run_once()
    stored, attempts = await delivery(store, did)
    assert len(sink.messages) == 3 == len(attempts)
    assert stored.state == "pending" and stored.attempts == 1


@pytest.mark.parametrize(
    "failure",
    [
        Retry(reason="timed out: no answer within 3 s (the sink's timeout)"),
        Retry(reason="network error (ReadError): [Errno 104] Connection reset by peer"),
    ],
    ids=["no-answer", "reset-after-sending"],
)
async def test_a_failure_after_sending_is_not_retried_in_process(
    store: Store, failure: Retry
) -> None:
    sink = FakeSink(script=[failure])
    did = await add(store)
    await dispatcher(store, sink, schedule=["1h"]).run_once()
    stored, attempts = await delivery(store, did)
    assert len(sink.messages) == 1 == len(attempts)
    assert stored.state == "pending" and attempts[0].error == failure.reason


async def test_http_errors_are_not_retried_in_process(store: Store) -> None:
    sink = FakeSink(script=[Retry(reason="HTTP 503", status_code=503)])
    did = await add(store)
    await dispatcher(store, sink, schedule=["1h"]).run_once()
    assert len(sink.messages) == 1
    assert await state_is(store, did, "pending")


async def test_a_secret_in_a_sink_exception_is_redacted(store: Store) -> None:
    sink = FakeSink(
        script=[RuntimeError(f"POST https://erp:{SECRET}@erp.example.com failed for {PHONE}")]
    )
    did = await add(store)
    await dispatcher(store, sink, schedule=["1h"]).run_once()
    stored, (attempt,) = await delivery(store, did)
    assert stored.state == "pending"
    assert attempt.outcome == "error" and attempt.error is not None
    assert SECRET not in attempt.error and PHONE not in attempt.error
    assert "RuntimeError" in attempt.error and "***" in attempt.error
    assert stored.last_error is not None and SECRET not in stored.last_error


# -- per-sink controls --------------------------------------------------------------------------


async def test_an_open_circuit_hands_deliveries_back_without_using_attempts(
    store: Store,
) -> None:
    sink = FakeSink(config=config(concurrency=1), default=Retry(reason="HTTP 502", status_code=502))
    for i in range(5):
        await add(store, f"OID-{i}")
    clock = Clock()
    d = dispatcher(store, sink, schedule=["1h"], clock=clock)
    assert await d.run_once() == 5
    assert d.circuit_state("fake") == "open"
    assert sample("kabarin_sink_circuit_state", sink="fake") == 2

    held = await add(store, "OID-HELD")
    clock.now += timedelta(seconds=10)
    assert await d.run_once() == 1
    assert len(sink.messages) == 5
    stored, attempts = await delivery(store, held)
    assert stored.state == "pending" and stored.attempts == 0 and attempts == []
    reopens = clock.now + timedelta(seconds=20)
    assert stored.next_attempt_at == reopens
    assert stored.waiting == f"circuit open until {reopens:%H:%M:%S} UTC"

    clock.now = reopens  # the probe goes through, and what it carried is no longer waiting
    sink.default = Delivered(status_code=200)
    assert await d.run_once() >= 1
    stored, _ = await delivery(store, held)
    assert stored.state == "delivered" and stored.waiting is None
    assert d.circuit_state("fake") == "closed"


async def test_a_replayed_delivery_shows_it_waits_for_the_circuit(store: Store) -> None:
    sink = FakeSink(
        config=config(concurrency=1),
        script=[Permanent(reason="HTTP 400 Bad Request", status_code=400)],
        default=Retry(reason="HTTP 502", status_code=502),
    )
    dead = await add(store, "OID-DEAD")
    clock = Clock()  # the next whole second: after the real time `dead` was dated by
    d = dispatcher(store, sink, schedule=["1h"], clock=clock)
    await d.run_once()
    assert await state_is(store, dead, "dead")
    later = [await add(store, f"OID-{i}") for i in range(5)]
    # `add` dates them by the real clock, which may have passed the fake one meanwhile (in a
    # test begun late in a second): then they were not due yet. Time goes on to their dates.
    dated = [(await delivery(store, did))[0].next_attempt_at for did in later]
    clock.now = max(clock.now, *dated)
    assert await d.run_once() == 5
    assert d.circuit_state("fake") == "open"

    assert await store.replay_one(dead, now=clock.now)
    assert await d.run_once() == 1
    stored, _ = await delivery(store, dead)
    assert stored.state == "pending" and stored.attempts == 0
    until = clock.now + timedelta(seconds=30)
    assert stored.waiting == f"circuit open until {until:%H:%M:%S} UTC"


async def test_a_delivered_delivery_keeps_no_old_error(store: Store) -> None:
    sink = FakeSink(script=[Retry(reason="HTTP 503 Service Unavailable", status_code=503)])
    did = await add(store)
    d = dispatcher(store, sink, poll=0.05)
    await d.run_once()
    assert (await delivery(store, did))[0].last_error == "HTTP 503 Service Unavailable"
    await d.start()
    await eventually(lambda: state_is(store, did, "delivered"))
    await d.stop()
    stored, attempts = await delivery(store, did)
    assert stored.last_error is None
    assert attempts[0].error == "HTTP 503 Service Unavailable"  # the history keeps it


async def test_rate_limit_spaces_sends(store: Store) -> None:
    sink = FakeSink(config=config(rate_limit="20/s"))
    for i in range(5):
        await add(store, f"OID-{i}")
    clock = Clock()
    assert await dispatcher(store, sink, clock=clock).run_once() == 5
    assert len(sink.messages) == 5
    # the first goes at once; the others wait for the slots booked 50 ms apart
    assert sorted(clock.slept) == pytest.approx([0.05, 0.1, 0.15, 0.2])


async def test_a_slot_far_away_hands_the_delivery_back_for_later(store: Store) -> None:
    sink = FakeSink(config=config(rate_limit="1/m"))
    first, second = await add(store, "OID-1"), await add(store, "OID-2")
    clock = Clock()
    await dispatcher(store, sink, clock=clock).run_once()
    assert len(sink.messages) == 1
    stored_1, _ = await delivery(store, first)
    stored_2, _ = await delivery(store, second)
    assert {stored_1.state, stored_2.state} == {"delivered", "pending"}
    later = stored_2 if stored_2.state == "pending" else stored_1
    assert later.attempts == 0
    assert later.next_attempt_at == clock.now + timedelta(seconds=60)
    assert later.waiting is not None and later.waiting.startswith("rate limit")


async def test_concurrency_limit_holds(store: Store) -> None:
    sink = FakeSink(config=config(concurrency=2), delay=0.03)
    for i in range(8):
        await add(store, f"OID-{i}")
    assert await dispatcher(store, sink).run_once() == 8
    assert len(sink.messages) == 8
    assert sink.max_in_flight == 2


async def test_sinks_do_not_share_their_limits(store: Store) -> None:
    slow = FakeSink("slow", config=config(concurrency=1), delay=0.2)
    fast = FakeSink("fast", config=config(concurrency=4), delay=0.01)
    for i in range(4):  # distinct events: a repeated event gets no new deliveries
        await add(store, f"SLOW-{i}", sink="slow")
        await add(store, f"FAST-{i}", sink="fast")
    d = dispatcher(store, slow, fast)
    task = asyncio.create_task(d.run_once())
    await eventually(lambda: len(fast.messages) == 4, within=0.5)
    assert len(slow.messages) <= 2
    assert await task == 8


async def test_one_order_under_all_is_sent_whole_in_arrival_order(store: Store) -> None:
    # The ERP owns its state machine: a status that happened earlier but arrived later still
    # reaches it, after the one before it (it sorts by occurred_at itself).
    sink = FakeSink()
    newer = await add(store, "OID-7", status=Status.DELIVERED, minutes=10)
    older = await add(store, "OID-7", status=Status.SHIPPED, minutes=0)
    d = dispatcher(store, sink, poll=0.05)
    await d.start()
    await eventually(lambda: state_is(store, older, "delivered"))
    await d.stop()
    assert await state_is(store, newer, "delivered")
    assert sink.texts == ["Terkirim: pesanan OID-7", "Dikirim: pesanan OID-7"]


# -- what must not crash ------------------------------------------------------------------------


async def test_a_skipped_send_finishes_skipped_with_its_reason(store: Store) -> None:
    sink = FakeSink(script=[Skipped(reason="no customer phone for the order")])
    did = await add(store, "OID-SKIP")
    before = sample("kabarin_deliveries_total", sink="fake", outcome="skipped", shop="default")

    assert await dispatcher(store, sink).run_once() == 1

    stored, (attempt,) = await delivery(store, did)
    assert stored.state == "skipped" and stored.attempts == 1
    assert stored.last_error == "no customer phone for the order"
    assert attempt.outcome == "skipped" and attempt.status_code is None
    assert attempt.error == "no customer phone for the order"
    assert (
        sample("kabarin_deliveries_total", sink="fake", outcome="skipped", shop="default")
        == before + 1
    )
    assert await dispatcher(store, sink).run_once() == 0  # finished: not claimed again


async def test_skips_leave_the_circuit_breaker_alone(store: Store) -> None:
    sink = FakeSink(config=config(concurrency=1), default=Skipped(reason="no recipient"))
    for i in range(7):  # more than the breaker's 5 failures
        await add(store, f"OID-{i}")
    d = dispatcher(store, sink)
    assert await d.run_once() == 7
    assert len(sink.messages) == 7 and d.circuit_state("fake") == "closed"


async def test_sends_that_got_no_answer_open_the_circuit_and_refusals_do_not(
    store: Store,
) -> None:
    unanswered = Permanent(reason="timed out: the request was sent", unanswered=True)
    refused = Permanent(reason="HTTP 400 Bad Request", status_code=400)
    for answer, state in ((refused, "closed"), (unanswered, "open")):
        sink = FakeSink(config=config(concurrency=1), default=answer)
        for i in range(5):  # the breaker's 5 failures
            await add(store, f"OID-{state}-{i}")
        d = dispatcher(store, sink)
        assert await d.run_once() == 5
        assert d.circuit_state("fake") == state, answer


async def test_the_sink_gets_every_part_it_declares(store: Store) -> None:
    sink = MailLikeSink(config=FakeConfig(template={"subject": "Pesanan {{ event.order_id }}"}))
    route_template = encode_parts({"text": "Halo {{ event.status }}", "html": "<b>x</b>"})
    did = await add(store, "OID-PARTS", template=route_template)
    await dispatcher(store, sink).run_once()
    (message,) = sink.messages
    # the route's text, the block's subject; the html the route gives is not a declared part
    assert message.parts == {"subject": "Pesanan OID-PARTS", "text": "Halo shipped"}
    assert (await delivery(store, did))[0].state == "delivered"


async def test_a_declared_part_with_no_template_is_a_dead_letter(store: Store) -> None:
    sink = MailLikeSink()
    did = await add(store)
    await dispatcher(store, sink).run_once()
    stored, (attempt,) = await delivery(store, did)
    assert sink.messages == [] and stored.state == "dead" and attempt.outcome == "error"
    assert stored.last_error == "template error: no `subject` template: sink 'fake' needs one"


async def test_a_template_error_is_a_dead_letter_not_a_crash(store: Store) -> None:
    sink = FakeSink()
    did = await add(store, template="Halo {{ nope }}")
    await dispatcher(store, sink).run_once()
    stored, (attempt,) = await delivery(store, did)
    assert sink.messages == []
    assert stored.state == "dead"
    assert stored.last_error is not None and "template" in stored.last_error
    assert attempt.outcome == "error"


async def test_a_sink_missing_from_the_configuration_keeps_its_deliveries(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    did = await add(store, sink="removed")
    before = datetime.now(UTC)
    with caplog.at_level(logging.WARNING, logger="kabarin.dispatcher"):
        assert await dispatcher(store, FakeSink()).run_once() == 1
    stored, attempts = await delivery(store, did)
    assert stored.state == "pending" and stored.attempts == 0 and attempts == []
    assert (stored.next_attempt_at - before).total_seconds() >= 60
    assert any("removed" in r.getMessage() for r in caplog.records)


async def test_graceful_stop_puts_sends_under_way_back(store: Store) -> None:
    gate = asyncio.Event()  # never opens: the send hangs
    sink = FakeSink(gate=gate)
    did = await add(store)
    d = dispatcher(store, sink, poll=0.05)
    await d.start()
    await eventually(lambda: sink.in_flight == 1)
    await asyncio.wait_for(d.stop(timeout=0.2), timeout=10)  # the hung send is cut off
    stored, attempts = await delivery(store, did)
    assert stored.state == "pending" and stored.attempts == 0 and attempts == []
    assert stored.next_attempt_at <= datetime.now(UTC)


async def test_graceful_stop_lets_a_quick_send_finish(store: Store) -> None:
    sink = FakeSink(delay=0.1)
    did = await add(store)
    d = dispatcher(store, sink, poll=0.05)
    await d.start()
    await eventually(lambda: sink.in_flight == 1)
    await d.stop(timeout=2)
    assert await state_is(store, did, "delivered")


class CustomerConfig(
    FakeConfig, tag="fake-customer", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    timeout: Duration = Duration(10)


class CustomerSink(FakeSink):
    """Writes to the order's customer (like sms, whatsapp): at most once. Notes, on each send,
    whether the store already had the send's start when the request left."""

    writes_to_customer: ClassVar[bool] = True

    def __init__(self, store: Store, *, timeout: float = 10, **kwargs: Any) -> None:
        super().__init__("sms", CustomerConfig(timeout=Duration(timeout)), **kwargs)
        self.store = store
        self.marked: list[datetime | None] = []

    async def send(self, message: Message) -> SendResult:
        found = await self.store.get_delivery(message.delivery_id)
        self.marked.append(found[0].started_at if found else None)
        return await super().send(message)


async def test_a_customer_send_is_marked_started_before_it_leaves(store: Store) -> None:
    sms, erp = CustomerSink(store), FakeSink()
    sms_id, erp_id = await add(store, "OID-S", sink="sms"), await add(store, "OID-E")
    assert await dispatcher(store, sms, erp).run_once() == 2
    assert len(sms.marked) == 1 and sms.marked[0] is not None  # committed before the send
    for did in (sms_id, erp_id):
        stored, _ = await delivery(store, did)
        assert stored.state == "delivered" and stored.started_at is None


async def test_shutdown_waits_for_a_customer_send_until_its_timeout(store: Store) -> None:
    sms = CustomerSink(store, delay=0.5)  # answers well within its timeout
    did = await add(store, sink="sms")
    d = dispatcher(store, sms, poll=0.05)
    await d.start()
    await eventually(lambda: sms.in_flight == 1)
    await d.stop(timeout=0.05)  # the grace is shorter than the provider's answer
    stored, _ = await delivery(store, did)
    assert stored.state == "delivered" and len(sms.messages) == 1


async def test_a_customer_send_still_unanswered_at_shutdown_ends_dead_not_put_back(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()  # never opens: neither provider answers
    sms, erp = CustomerSink(store, timeout=0.2, gate=gate), FakeSink(gate=gate)
    sms_id, erp_id = await add(store, "OID-S", sink="sms"), await add(store, "OID-E")
    before = sample("kabarin_deliveries_total", sink="sms", outcome="dead", shop="default")
    d = dispatcher(store, sms, erp, poll=0.05)
    await d.start()
    await eventually(lambda: sms.in_flight == 1 and erp.in_flight == 1)
    with caplog.at_level(logging.WARNING, logger="kabarin.dispatcher"):
        await asyncio.wait_for(d.stop(timeout=0.05), timeout=10)
    stored, attempts = await delivery(store, sms_id)
    assert (stored.state, stored.attempts, stored.started_at) == ("dead", 1, None)
    assert stored.last_error == OUTCOME_UNKNOWN
    assert [a.outcome for a in attempts] == ["unknown"]
    assert any(sms_id in r.getMessage() and "unknown" in r.getMessage() for r in caplog.records)
    assert (
        sample("kabarin_deliveries_total", sink="sms", outcome="dead", shop="default") == before + 1
    )
    # The machine sink stays at least once: put back, to be sent again.
    machine, _ = await delivery(store, erp_id)
    assert machine.state == "pending" and machine.attempts == 0
    assert await dispatcher(store, sms, FakeSink()).run_once() == 1  # the machine one only
    assert len(sms.messages) == 1


async def test_superseded_deliveries_are_logged_one_line_each_and_counted(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink()
    old = [await add(store, "OID-L", status=s, ordering="latest") for s in (Status.PROCESSED,)]
    old.append(await add(store, "OID-L", status=Status.SHIPPED, minutes=1, ordering="latest"))
    newest = await add(store, "OID-L", status=Status.DELIVERED, minutes=2, ordering="latest")
    before = sample("kabarin_deliveries_superseded_total", sink="fake", shop="default")
    with caplog.at_level(logging.INFO, logger="kabarin.dispatcher"):
        assert await dispatcher(store, sink).run_once() == 1
    assert await state_is(store, newest, "delivered")
    lines = [r.getMessage() for r in caplog.records if "superseded" in r.getMessage()]
    assert sorted(lines) == sorted(
        f"delivery {did} to fake superseded: a status of order OID-L further along went, or "
        "goes, to this sink instead (ordering: latest)"
        for did in old
    )
    assert sample("kabarin_deliveries_superseded_total", sink="fake", shop="default") == before + 2


async def test_a_lost_lease_is_logged_and_left_alone(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sink = FakeSink(delay=0.3)
    did = await add(store)
    d = dispatcher(store, sink, lease=0.1)
    task = asyncio.create_task(d.run_once())
    await eventually(lambda: sink.in_flight == 1)
    await asyncio.sleep(0.15)  # the lease ran out; another worker takes the delivery over
    (taken,) = (
        await store.claim(worker="other", now=datetime.now(UTC), limit=10, lease_seconds=60)
    ).claims
    assert taken.delivery.id == did
    with caplog.at_level(logging.WARNING, logger="kabarin.dispatcher"):
        await task
    assert any("lease lost" in r.getMessage() for r in caplog.records)
    stored, _ = await delivery(store, did)
    assert stored.state == "in_flight" and stored.lease_owner == "other"


async def test_store_gauges_are_refreshed_from_the_store(store: Store) -> None:
    await add(store, "OID-1")
    await add(store, "OID-2")
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_deliveries_pending", sink="fake", shop="default") == 2
    assert sample("kabarin_deliveries_dead", sink="fake", shop="default") == 0


async def test_delivery_metrics_are_per_shop(store: Store) -> None:
    for shop in ("toko-a", "toko-b"):
        await add(store, "OID-1", shop=shop)  # one order id, two shops' orders
    await add(store, "OID-2", shop="toko-b")
    await metrics.refresh_store_gauges(store, sinks=["fake", "idle"], shops=["toko-a", "toko-b"])
    assert sample("kabarin_deliveries_pending", sink="fake", shop="toko-a") == 1
    assert sample("kabarin_deliveries_pending", sink="fake", shop="toko-b") == 2
    # A configured sink and shop without deliveries shows 0 rather than nothing.
    assert (
        metrics.REGISTRY.get_sample_value(
            "kabarin_deliveries_dead", {"sink": "idle", "shop": "toko-a"}
        )
        == 0
    )
    before = {
        shop: sample("kabarin_deliveries_total", sink="fake", outcome="delivered", shop=shop)
        for shop in ("toko-a", "toko-b")
    }
    assert await dispatcher(store, FakeSink()).run_once() == 3
    for shop, sent in (("toko-a", 1), ("toko-b", 2)):
        delivered = sample("kabarin_deliveries_total", sink="fake", outcome="delivered", shop=shop)
        assert delivered == before[shop] + sent
        assert sample("kabarin_delivery_latency_seconds_count", sink="fake", shop=shop) >= sent
    await metrics.refresh_store_gauges(store, sinks=["fake"], shops=["toko-a", "toko-b"])
    assert sample("kabarin_deliveries_pending", sink="fake", shop="toko-b") == 0


async def test_the_intake_backlog_is_read_from_the_store_on_scrape(store: Store) -> None:
    """Where no intake runs in this process, nothing else would set it."""
    metrics.INTAKE_BACKLOG.set(0)
    for n in range(3):
        body = b'{"method": "shipped_packages", "data": [{"order_id": "OID-%d"}]}' % n
        push = NewPush(id=f"psh_{n}", source="push", received_at=datetime.now(UTC), body=body)
        await store.append_push(push)
    await metrics.refresh_store_gauges(store)
    assert sample("kabarin_intake_backlog") == 3


# -- a store that keeps failing ----------------------------------------------------------------


class Turns:
    """The dispatcher's clock, counting its calls: a failing claim makes one per turn."""

    def __init__(self) -> None:
        self.count = 0
        self._called = asyncio.Event()

    def __call__(self) -> datetime:
        self.count += 1
        self._called.set()
        return utcnow()

    async def more(self, n: int) -> None:
        """Return once the loop has turned `n` more times."""
        target = self.count + n
        while self.count < target:
            self._called.clear()
            await self._called.wait()


async def test_a_store_that_keeps_failing_is_logged_once_per_cause_and_its_recovery_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Real faults of the SQLite store: its file deleted, then replaced, then put back."""
    db = tmp_path / "k.db"
    store = open_store(f"sqlite:///{db}")
    await store.open(now=datetime.now(UTC))
    os.link(db, tmp_path / "kept.db")  # the same file, to put back at its path later
    sink = FakeSink()
    d = dispatcher(store, sink, poll=0.01)
    d.clock = turns = Turns()
    try:
        with caplog.at_level(logging.INFO, logger="kabarin.dispatcher"):
            await d.start()
            db.unlink()
            await turns.more(5)
            shutil.copy(tmp_path / "kept.db", tmp_path / "copy.db")
            os.replace(tmp_path / "copy.db", db)
            await turns.more(5)
            db.unlink()
            os.link(tmp_path / "kept.db", db)
            await add(store)
            await eventually(lambda: sink.messages)
            await d.stop()
    finally:
        await store.close()
    logged = [r for r in caplog.records if r.name == "kabarin.dispatcher"]
    failures = [r for r in logged if r.levelno >= logging.ERROR]
    assert [r.getMessage().split(" while in use")[0] for r in failures] == [
        f"dispatcher: could not claim deliveries: the SQLite database file {db} was deleted",
        f"dispatcher: could not claim deliveries: the SQLite database file {db} was replaced "
        "by another file",
    ]
    assert all(r.exc_info is None for r in failures)  # a StoreError says it all
    assert [r.getMessage() for r in logged if "works again" in r.getMessage()] == [
        "dispatcher: the store works again"
    ]


async def test_stop_with_a_failing_store_says_what_it_could_not_put_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "k.db"
    store = open_store(f"sqlite:///{db}")
    await store.open(now=datetime.now(UTC))
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    d = dispatcher(store, sink)
    try:
        await add(store)
        await d.start()
        await eventually(lambda: sink.messages)
        db.unlink()
        with caplog.at_level(logging.WARNING, logger="kabarin.dispatcher"):
            await d.stop(timeout=0)  # no exception: a shutdown goes on
    finally:
        await store.close()
    assert "could not put 1 unfinished deliveries back" in caplog.text
    assert "Traceback" not in caplog.text


# -- outcomes committed in batches ------------------------------------------------------------


class CountingStore:
    """The real store, counting the calls that record outcomes."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.finish_calls = 0
        self.batches: list[int] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def finish(self, *args: Any, **kwargs: Any) -> bool:
        self.finish_calls += 1
        return await self.inner.finish(*args, **kwargs)

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        self.batches.append(len(outcomes))
        return await self.inner.finish_many(outcomes, worker=worker)


class DroppingStore(CountingStore):
    """The real store whose first `drops` outcome commits fail as a dropped connection does."""

    def __init__(self, inner: Store, drops: int) -> None:
        super().__init__(inner)
        self.drops = drops

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        self.batches.append(len(outcomes))
        if self.drops:
            self.drops -= 1
            raise StoreError("OperationalError: server closed the connection unexpectedly")
        return await self.inner.finish_many(outcomes, worker=worker)


async def test_an_outcome_the_store_failed_to_record_is_recorded_on_a_later_try(
    store: Store,
) -> None:
    sink = FakeSink()
    did = await add(store)
    dropping = DroppingStore(store, drops=2)
    d = dispatcher(dropping, sink)
    assert await d.run_once() == 1
    assert await state_is(store, did, "delivered")  # not left in flight to be sent again
    assert len(sink.messages) == 1 and dropping.batches == [1, 1, 1]


async def test_outcomes_finishing_together_are_committed_in_one_batch(store: Store) -> None:
    gate = asyncio.Event()
    sink = FakeSink(config=FakeConfig(concurrency=20), gate=gate)
    ids = [await add(store, f"OID-B{i}") for i in range(20)]
    counting = CountingStore(store)
    d = dispatcher(counting, sink)
    run = asyncio.create_task(d.run_once())
    await eventually(lambda: sink.in_flight == 20)
    gate.set()  # all twenty answers arrive in one turn of the loop
    assert await run == 20
    assert counting.batches == [20] and counting.finish_calls == 0
    for did in ids:
        assert await state_is(store, did, "delivered")


async def test_a_lost_lease_in_a_batch_is_reported_for_that_delivery_only(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    both = {await add(store, "OID-ONE"), await add(store, "OID-TWO")}
    clock = Clock()
    d = dispatcher(store, sink, lease=30, clock=clock)
    run = asyncio.create_task(d.run_once())
    await eventually(lambda: sink.in_flight == 2)
    # Another worker takes one of them over once the lease ran out.
    later = clock.now + timedelta(seconds=31)
    (taken,) = (await store.claim(worker="other", now=later, limit=1, lease_seconds=30)).claims
    lost = taken.delivery.id
    (kept,) = both - {lost}
    gate.set()  # both answers arrive together: one batch of two outcomes
    assert await run == 2
    assert await state_is(store, kept, "delivered")
    assert await state_is(store, lost, "in_flight")  # the other worker still holds it
    assert f"delivery {lost} to fake: lease lost" in caplog.text
    assert f"delivery {kept} to fake: lease lost" not in caplog.text


async def test_a_send_outliving_its_lease_keeps_it_and_no_other_worker_takes_it(
    store: Store,
) -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    did = await add(store)
    d = dispatcher(store, sink, lease=1.2)
    await d.start()
    try:
        await eventually(lambda: sink.in_flight == 1)
        for _ in range(10):  # longer than the lease; renewed every 0.4 s
            await asyncio.sleep(0.15)
            # another worker, ahead of this one's own look at the lease by 0.3 s
            now = datetime.now(UTC) + timedelta(seconds=0.3)
            claimed = await store.claim(worker="other", now=now, limit=10, lease_seconds=60)
            assert claimed.claims == []
        gate.set()
        await eventually(lambda: state_is(store, did, "delivered"))
    finally:
        gate.set()
        await d.stop()
    assert len(sink.messages) == 1


async def test_a_replaced_sink_is_closed_once_its_sends_under_way_end(store: Store) -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    stuck = FakeSink("stuck", gate=asyncio.Event())
    other = FakeSink("other")
    await add(store)
    d = dispatcher(store, sink, stuck, other)
    await d.start()
    try:
        await eventually(lambda: sink.in_flight == 1)
        asked = asyncio.Event()

        async def released(replaced: Any) -> None:
            asked.set()
            await d.released(replaced)

        closing = close_when_idle([sink], released, limit=30)
        assert closing is not None
        await asked.wait()  # the closer looks for sends under way with the sink
        # Another sink's send starts and ends meanwhile: its end wakes the closer, which
        # looks again and must go on waiting.
        await add(store, "OID-3", sink="other")
        d.wake()
        await eventually(lambda: other.messages)
        await d.released(other)
        await asyncio.sleep(0)  # the closer, woken by the same end, has looked again
        assert not sink.closed and not closing.done()  # a send is under way with it
        gate.set()
        async with asyncio.timeout(5):
            await closing
        assert sink.closed and len(sink.messages) == 1
        # one whose send never ends is closed after the limit anyway
        await add(store, "OID-2", sink="stuck")
        d.wake()
        await eventually(lambda: stuck.in_flight == 1)
        closing = close_when_idle([stuck], d.released, limit=0.2)
        assert closing is not None
        async with asyncio.timeout(5):
            await closing
        assert stuck.closed
    finally:
        gate.set()
        await d.stop(timeout=0)


async def test_a_send_outliving_its_lease_is_not_started_again_by_the_same_worker(
    store: Store,
) -> None:
    gate = asyncio.Event()
    sink = FakeSink(gate=gate)
    did = await add(store)
    clock = Clock()  # the next whole second: after the real time `add` dated it by
    d = dispatcher(store, sink, lease=30, clock=clock)
    first = asyncio.create_task(d.run_once())
    await eventually(lambda: sink.in_flight == 1)
    clock.now += timedelta(seconds=31)  # the send is slower than the lease
    second = asyncio.create_task(d.run_once())

    async def handed_back() -> bool:  # to this same worker, with its lease renewed
        stored, _ = await delivery(store, did)
        return stored.lease_until == clock.now + timedelta(seconds=30)

    await eventually(handed_back)
    gate.set()
    async with asyncio.timeout(5):
        assert await first == 1
    assert await second == 0  # the job under way kept it: no second job
    await eventually(lambda: state_is(store, did, "delivered"))
    assert len(sink.messages) == 1
