"""The pull tracker's decisions, on a fake clock, a fake tracking API and a real SQLite store."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway import metrics
from gateway.config import PullConfig, parse_config
from gateway.events import Contact, EventKind, Status
from gateway.intake import Intake, new_push_id
from gateway.routing import Router
from gateway.sources.kiriminaja.pull import PullTracker, ShopLine
from gateway.sources.kiriminaja.pulled import Pulled
from gateway.sources.kiriminaja.tracking import NotFound, Refused, TrackingResult, TryLater
from gateway.store import EventQuery, NewPush, PushQuery, Store, open_store
from gateway.store.roles import PushOutcome
from gateway.units import Duration
from tests.waiting import eventually

WIB = ZoneInfo("Asia/Jakarta")
T0 = datetime(2024, 6, 1, 0, 0, tzinfo=UTC)
CONFIG = parse_config(
    """
receiver: {token: t}
sinks: {console: {type: console}}
routes: [{name: all, sinks: [console]}]
"""
)


class FakeClock:
    def __init__(self, now: datetime, *, until: datetime | None = None) -> None:
        self.at = now
        self.until = until
        """A pass still asking past this time fails the test (rather than run for ever)."""
        self.slept: list[float] = []

    def now(self) -> datetime:
        return self.at

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.at += timedelta(seconds=seconds)
        if self.until is not None and self.at > self.until:
            raise AssertionError(f"still asking at {self.at:%H:%M:%S}: the pass did not end")
        await asyncio.sleep(0)

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


class FakeKiriminAja:
    """Answers from a table: an answer dict (``status: true``), a `TryLater` or `Refused`, a
    string (`NotFound` with that reason) or an exception (raised)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.answers: dict[str, dict[str, Any] | TryLater | Refused | str | Exception] = {}
        self.calls: list[tuple[str, datetime]] = []

    async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
        self.calls.append((order_id, self.clock.now()))
        await asyncio.sleep(0)  # another replica may run meanwhile
        answer = self.answers.get(order_id, "not found")
        if isinstance(answer, Exception):
            raise answer
        if isinstance(answer, TryLater | Refused):
            return answer
        if isinstance(answer, str):
            return NotFound(kind=kind, order_id=order_id, reason=answer)
        return Pulled(kind=kind, order_id=order_id, answer=answer)

    def asked(self) -> list[str]:
        return [order for order, _ in self.calls]


def express(
    order_id: str,
    *,
    shipped_at: str = "",
    delivered_at: str = "",
    name: str | None = "Zainal",
    phone: str | None = "6287839087416",
) -> dict[str, Any]:
    return {
        "status": True,
        "text": "ok",
        "status_code": None,
        "details": {
            "order_id": order_id,
            "awb": f"AWB-{order_id}",
            "shipped_at": shipped_at,
            "delivered": bool(delivered_at),
            "delivered_at": delivered_at,
            "refunded": False,
            "refunded_at": "",
            "destination": {"name": name, "phone": phone},
        },
        "histories": [],
    }


def shipped_push(order_id: str, shipped_at: str) -> bytes:
    item = {"order_id": order_id, "shipped_at": shipped_at}
    return json.dumps({"method": "shipped_packages", "data": [item]}).encode()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(f"sqlite:///{tmp_path}/kabarin.db")
    await opened.open(now=T0)
    yield opened
    await opened.close()


def tracker(store: Store, clock: FakeClock, api: FakeKiriminAja, **config: Any) -> PullTracker:
    settings: dict[str, Any] = {"enabled": True, "stale_after": Duration(3600), "rate": 5.0}
    settings.update(config)
    return PullTracker(
        store=store, client=api, config=PullConfig(**settings), timezone=WIB, clock=clock
    )


async def push(store: Store, body: bytes, at: datetime) -> None:
    """A push through the log and the intake, as the receiver and the intake store it."""
    await store.append_push(
        NewPush(id=new_push_id(at), source="push", received_at=at, body=body, items=1)
    )
    await drain(store, at)


async def drain(store: Store, at: datetime) -> None:
    intake = Intake(store=store, router=Router.from_config(CONFIG), timezone=WIB)
    while await intake.run_once(now=at):
        pass


def sample(name: str) -> float:
    return metrics.REGISTRY.get_sample_value(name) or 0.0


async def statuses(store: Store, order_id: str) -> list[tuple[str, str]]:
    page = await store.list_events(EventQuery(order_id=order_id, limit=100))
    return sorted((s.event.status.value, s.event.source) for s in page.items)


# -- which orders, when --------------------------------------------------------------------------


async def test_stale_open_orders_are_asked_about_oldest_first_and_not_again_until_stale(
    store: Store,
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    # WIB times: O-OLD shipped 07:00 WIB (00:00 UTC), O-MID 07:30 WIB; O-NEW an hour later.
    await push(store, shipped_push("O-MID", "2024-06-01 07:30:00"), T0)
    await push(store, shipped_push("O-OLD", "2024-06-01 07:00:00"), T0)
    await push(store, shipped_push("O-NEW", "2024-06-01 09:00:00"), T0)
    for order in ("O-OLD", "O-MID", "O-NEW"):
        api.answers[order] = express(order, shipped_at="2024-06-01 07:00:00")
    clock.advance(2.5 * 3600)  # 02:30 UTC: OLD and MID are older than an hour, NEW is not
    pull = tracker(store, clock, api)

    await pull.run_pass()
    assert api.asked() == ["O-OLD", "O-MID"]
    await drain(store, clock.now())  # the intake takes what the pass learned

    clock.advance(1800)
    await pull.run_pass()
    assert api.asked() == ["O-OLD", "O-MID", "O-NEW"]  # NEW is stale now; the others wait
    await drain(store, clock.now())

    clock.advance(3000)  # an hour after their answers, not yet after NEW's
    await pull.run_pass()
    assert api.asked()[3:] == ["O-OLD", "O-MID"]


async def test_a_final_order_is_never_asked_about(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-05-01 07:00:00"), T0)
    body = {"method": "finished_packages", "data": [{"order_id": "O-1", "finished_at": "x"}]}
    await push(store, json.dumps(body).encode(), T0)
    clock.advance(7 * 86400)
    report = await tracker(store, clock, api).run_pass()
    assert report.pulls == [] and api.calls == []


async def test_orders_registered_without_events_are_asked_about_first(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-05-01 07:00:00"), T0)
    assert await store.track_orders([("O-ADDED", "instant")], now=T0) == 1
    assert await store.track_orders([("O-ADDED", "instant")], now=T0) == 0
    await tracker(store, clock, api).run_pass()
    assert api.asked() == ["O-ADDED", "O-1"]


def instant(order_id: str) -> dict[str, Any]:
    """An instant order's answer that shows no status yet (a driver is being looked for)."""
    return {"status": True, "text": "success", "result": {"order_id": order_id, "date": {}}}


async def test_a_pass_asks_each_due_order_once_least_recently_asked_first(store: Store) -> None:
    """25 open orders whose status never changes, asked about every second at 5 a second: an
    order answered during the pass is due again before the pass ends, and must wait for the
    next pass rather than go before the orders not asked yet (it used to: the oldest ten were
    asked over and over, the instant order and the newer ones never, and the pass never
    ended)."""
    clock = FakeClock(T0, until=T0 + timedelta(minutes=10))
    api = FakeKiriminAja(clock)
    express_orders = [f"O-{i:02}" for i in range(24)]
    for i, order in enumerate(express_orders):  # O-00 the oldest
        shipped_at = f"2024-06-01 07:00:{i:02}"
        await push(store, shipped_push(order, shipped_at), T0)
        api.answers[order] = express(order, shipped_at=shipped_at)
    assert await store.track_orders([("I-1", "instant")], now=T0) == 1
    api.answers["I-1"] = instant("I-1")
    clock.advance(60)
    pull = tracker(store, clock, api, interval=Duration(1), stale_after=Duration(1), rate=5.0)

    await pull.run_pass()  # learns each order's AWB (processed), then nothing new
    first = api.asked()
    assert first == ["I-1", *express_orders]  # never asked first, then the oldest update
    await drain(store, clock.now())

    clock.advance(1)  # the next interval: every order is due again
    report = await pull.run_pass()
    assert api.asked()[len(first) :] == first  # least recently asked first, each once
    assert {r.outcome for r in report.pulls} == {"unchanged"}


async def test_the_oldest_due_order_not_yet_asked_shows_its_age(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(3):
        await push(store, shipped_push(f"O-{i}", "2024-06-01 07:00:00"), T0)  # 00:00 UTC
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at="2024-06-01 07:00:00")
    pull = tracker(store, clock, api, stale_after=Duration(3600))
    clock.advance(1800)
    await pull.refresh_gauges()
    assert sample("kabarin_pull_oldest_due_age_seconds") == 0  # nothing is due yet
    clock.advance(3600)
    await pull.refresh_gauges()
    assert sample("kabarin_pull_oldest_due_age_seconds") == 1800  # due since 01:00
    await pull.run_pass()  # each asked: due again an hour after its answer
    assert sample("kabarin_pull_oldest_due_age_seconds") == 0
    clock.advance(3600 + 60)
    await pull.refresh_gauges()
    (first, asked), *_ = api.calls
    assert first == "O-0"
    due_for = clock.now() - (asked + timedelta(hours=1))
    assert sample("kabarin_pull_oldest_due_age_seconds") == due_for.total_seconds()


async def test_stuck_alerts_keep_their_schedule_while_a_pass_is_under_way(
    store: Store,
) -> None:
    """A pass may take hours at shop scale (or, here, a call that never ends): the stuck
    alerts do not wait for it."""
    clock = FakeClock(T0)
    answering = asyncio.Event()

    class Silent(FakeKiriminAja):
        async def track(self, kind: EventKind, order_id: str) -> TrackingResult:
            self.calls.append((order_id, self.clock.now()))
            await answering.wait()
            return await super().track(kind, order_id)

    api = Silent(clock)
    await push(store, shipped_push("O-1", "2024-06-01 07:00:00"), T0)  # 00:00 UTC
    await push(store, shipped_push("O-2", "2024-06-01 07:00:00"), T0)
    clock.advance(3600)
    pull = tracker(
        store,
        clock,
        api,
        interval=Duration(0.05),
        stale_after=Duration(1800),
        gap=Duration(86400),
        alert_after={"shipped": Duration(7200)},
    )
    await pull.start()
    try:
        await eventually(lambda: api.calls)  # the pass waits for its first answer
        clock.advance(3601)  # now both orders wait in shipped longer than alert_after
        await eventually(lambda: store.count_pending_pushes())  # the alerts, in the log
        await drain(store, clock.now())
        page = await store.list_events(EventQuery(status=Status.STUCK))
        assert sorted(s.event.order_id for s in page.items) == ["O-1", "O-2"]
        assert len(api.calls) == 1  # the pass is still waiting for its first answer
    finally:
        answering.set()
        await pull.stop()


# -- what an answer teaches ----------------------------------------------------------------------


async def test_only_statuses_the_order_lacks_become_events(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-05-31 07:00:00"), T0)
    # The answer gives shipped another time than its push did: still the same status.
    api.answers["O-1"] = express(
        "O-1", shipped_at="2024-05-31 07:05:00", delivered_at="2024-05-31 15:00:00"
    )
    clock.advance(7200)
    report = await tracker(store, clock, api).run_pass()
    (result,) = report.pulls
    assert result.outcome == "changed"
    assert {e.status for e in result.new} == {Status.PROCESSED, Status.DELIVERED}
    await drain(store, clock.now())
    assert await statuses(store, "O-1") == [
        ("delivered", "pull"),
        ("processed", "pull"),
        ("shipped", "push"),
    ]


async def test_an_answer_with_nothing_new_appends_nothing(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-05-31 07:00:00"), T0)
    api.answers["O-1"] = express("O-1", shipped_at="2024-05-31 07:00:00")
    clock.advance(7200)
    pull = tracker(store, clock, api)
    await pull.run_pass()  # learns processed (the AWB)
    await drain(store, clock.now())
    clock.advance(7200)
    (result,) = (await pull.run_pass()).pulls
    assert result.outcome == "unchanged"
    pulled = await store.list_pushes(PushQuery(source="pull"))
    assert len(pulled) == 1


async def test_a_pulled_recipient_fills_a_missing_contact_but_never_replaces_one(
    store: Store,
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-KNOWN", "2024-05-31 07:00:00"), T0)
    await push(store, shipped_push("O-NONE", "2024-05-31 07:00:00"), T0)
    known = Contact(order_id="O-KNOWN", name="Ani", phone="+628111")
    await store.record_intake(
        [PushOutcome(push_id="none", contacts=[known])], now=T0
    )  # an operator's contact, as the intake stores it
    for order in ("O-KNOWN", "O-NONE"):
        api.answers[order] = express(order, delivered_at="2024-05-31 15:00:00", name="Budi")
    clock.advance(7200)
    await tracker(store, clock, api).run_pass()
    await drain(store, clock.now())
    assert await store.get_contact("O-KNOWN") == known
    filled = await store.get_contact("O-NONE")
    assert filled is not None and filled.name == "Budi"


async def test_an_order_kiriminaja_does_not_know_is_never_asked_about_again(
    store: Store,
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-05-31 07:00:00"), T0)
    clock.advance(7200)
    pull = tracker(store, clock, api)
    assert [r.outcome for r in (await pull.run_pass()).pulls] == ["not_found"]
    clock.advance(30 * 86400)
    assert (await pull.run_pass()).pulls == []
    tracked = await store.get_tracking("O-1")
    assert tracked is not None and tracked.gone == "not found"


async def test_try_later_ends_the_pass_and_the_order_waits_an_interval(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(3):
        await push(store, shipped_push(f"O-{i}", f"2024-05-31 0{i}:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at=f"2024-05-31 0{i}:00:00")
    api.answers["O-0"] = TryLater(reason="429", status_code=429)
    clock.advance(7200)
    pull = tracker(store, clock, api, interval=Duration(300))
    await pull.run_pass()
    assert api.asked() == ["O-0"]
    await drain(store, clock.now())
    await pull.run_pass()  # O-1 and O-2 were handed back; O-0 waits its interval
    assert api.asked() == ["O-0", "O-1", "O-2"]
    await drain(store, clock.now())
    clock.advance(301)
    await pull.run_pass()
    assert api.asked()[3:] == ["O-0"]


def refused(order_id: str) -> Refused:
    return Refused(
        kind="express", order_id=order_id, reason="KiriminAja: Order ini bukan milik akun Anda"
    )


async def test_an_order_kiriminaja_refuses_waits_alone_and_the_pass_goes_on(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(13):  # Z0 the oldest
        await push(store, shipped_push(f"Z{i}", f"2024-05-31 07:{i:02}:00"), T0)
        api.answers[f"Z{i}"] = express(f"Z{i}", shipped_at=f"2024-05-31 07:{i:02}:00")
    api.answers["Z0"] = refused("Z0")
    clock.advance(7200)
    pull = tracker(store, clock, api, interval=Duration(2), stale_after=Duration(5))
    report = await pull.run_pass()
    assert api.asked() == [f"Z{i}" for i in range(13)]
    assert report.pulls[0].outcome == "skipped"
    assert {r.outcome for r in report.pulls[1:]} == {"changed"}
    (line,) = [r.getMessage() for r in caplog.records if "Z0" in r.getMessage()]
    assert "Order ini bukan milik akun Anda" in line and "pull.stale_after" in line
    await drain(store, clock.now())

    clock.advance(2)  # the next interval: Z0 waits its stale_after like the answered ones
    assert (await pull.run_pass()).pulls == []
    clock.advance(4)
    await pull.run_pass()
    assert api.asked()[13:] == [f"Z{i}" for i in range(13)]


async def test_orders_refused_in_the_same_words_one_after_another_end_the_pass(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(6):
        await push(store, shipped_push(f"K{i}", f"2024-05-31 07:{i:02}:00"), T0)
        api.answers[f"K{i}"] = Refused(
            kind="express", order_id=f"K{i}", reason="KiriminAja: API key tidak valid"
        )
    clock.advance(700)
    pull = tracker(store, clock, api, gap=Duration(600))
    assert await pull.check_gap()
    report = await pull.run_pass()
    # the account, not three orders: the pass ends, the catch-up is not done
    assert api.asked() == ["K0", "K1", "K2"]
    assert [r.outcome for r in report.pulls] == ["skipped", "skipped", "try_later"]
    assert pull.catch_up_since is not None
    assert any("3 orders in a row refused" in r.getMessage() for r in caplog.records)


async def test_a_refused_order_does_not_hold_up_a_catch_up(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(3):
        await push(store, shipped_push(f"O-{i}", "2024-06-01 07:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at="2024-06-01 07:00:00")
    api.answers["O-1"] = refused("O-1")
    clock.advance(700)
    pull = tracker(store, clock, api, gap=Duration(600))
    assert await pull.check_gap()
    await pull.run_pass()
    assert sorted(api.asked()) == ["O-0", "O-1", "O-2"] and pull.catch_up_since is None


@pytest.mark.parametrize(
    ("answer", "cause"),
    [
        (RecursionError("maximum recursion depth exceeded"), "RecursionError"),
        (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "Unicode"),
    ],
)
async def test_a_client_failure_is_that_orders_alone(
    store: Store, caplog: pytest.LogCaptureFixture, answer: Exception, cause: str
) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(3):
        await push(store, shipped_push(f"O-{i}", f"2024-05-31 0{i}:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at=f"2024-05-31 0{i}:00:00")
    api.answers["O-0"] = answer
    clock.advance(7200)
    report = await tracker(store, clock, api).run_pass()
    assert [r.outcome for r in report.pulls] == ["skipped", "changed", "changed"]
    assert cause in (report.pulls[0].reason or "")
    (line,) = [r.getMessage() for r in caplog.records if "O-0" in r.getMessage()]
    assert cause in line
    tracked = await store.get_tracking("O-0")
    assert tracked is not None and tracked.next_pull_at == T0 + timedelta(hours=3)  # stale_after


async def test_an_answer_that_cannot_become_events_is_that_orders_alone(store: Store) -> None:
    """A lone surrogate that reached the tracker (the client replaces them) fails the event
    id: that order is skipped, not the pass."""
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(2):
        await push(store, shipped_push(f"O-{i}", f"2024-05-31 0{i}:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at=f"2024-05-31 0{i}:00:00")
    api.answers["O-0"] = express("O-0", shipped_at="2024-05-31 00:00:00") | {
        "histories": [
            {"status_code": 500, "status": "rusak \ud800", "created_at": "2024-05-31 09:00:00"}
        ]
    }
    clock.advance(7200)
    report = await tracker(store, clock, api).run_pass()
    assert [r.outcome for r in report.pulls] == ["skipped", "changed"]
    assert "UnicodeEncodeError" in (report.pulls[0].reason or "")


# -- after a gap, and the rate -------------------------------------------------------------------


async def test_after_a_gap_every_open_order_is_asked_about_once(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(3):
        await push(store, shipped_push(f"O-{i}", "2024-06-01 07:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at="2024-06-01 07:00:00")
    clock.advance(700)  # past a 600 s gap, but nothing is an hour stale
    pull = tracker(store, clock, api, gap=Duration(600))
    assert await pull.check_gap()
    report = await pull.run_pass()
    assert report.catch_up and sorted(api.asked()) == ["O-0", "O-1", "O-2"]
    assert pull.catch_up_since is None
    clock.advance(60)
    await pull.run_pass()
    assert len(api.calls) == 3


async def test_no_gap_no_catch_up(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-06-01 07:00:00"), T0)
    clock.advance(500)
    pull = tracker(store, clock, api, gap=Duration(600))
    assert not await pull.check_gap()
    await pull.run_pass()
    assert api.calls == []


async def test_calls_keep_to_the_rate(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(7):
        await push(store, shipped_push(f"O-{i}", "2024-05-01 07:00:00"), T0)
    await tracker(store, clock, api, rate="2/s").run_pass()
    times = [at for _, at in api.calls]
    assert len(times) == 7
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert min(gaps) >= 0.5


async def test_replicas_share_the_orders_without_asking_twice(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    for i in range(9):
        await push(store, shipped_push(f"O-{i}", "2024-05-01 07:00:00"), T0)
        api.answers[f"O-{i}"] = express(f"O-{i}", shipped_at="2024-05-01 07:00:00")
    first, second = tracker(store, clock, api), tracker(store, clock, api)
    await asyncio.gather(first.run_pass(), second.run_pass())
    assert sorted(api.asked()) == [f"O-{i}" for i in range(9)]


# -- stuck parcels -------------------------------------------------------------------------------


async def test_a_stuck_order_raises_one_alert_until_it_moves(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-06-01 07:00:00"), T0)  # 00:00 UTC
    pull = tracker(
        store, clock, api, stale_after=Duration(30 * 86400), alert_after={"shipped": 7200}
    )
    clock.advance(3600)
    assert (await pull.run_pass()).stuck == []
    clock.advance(3601)
    (stuck,) = (await pull.run_pass()).stuck
    assert stuck.order_id == "O-1" and stuck.last_status is Status.SHIPPED
    await drain(store, clock.now())
    page = await store.list_events(EventQuery(order_id="O-1", status=Status.STUCK))
    (event,) = [s.event for s in page.items]
    assert event.details["stuck_in"] == "shipped" and event.details["stuck_for"] == 7201
    assert event.source == "pull" and event.raw_status == "shipped"

    clock.advance(86400)
    assert (await pull.run_pass()).stuck == []  # no second alert while it waits

    # It moves (a new shipped time: the courier scanned it again), then waits again.
    await push(store, shipped_push("O-1", "2024-06-02 12:00:00"), clock.now())
    clock.advance(86400)
    assert [o.order_id for o in (await pull.run_pass()).stuck] == ["O-1"]
    counts = await store.tracking_counts()
    assert (counts.open, counts.stuck) == (1, 1)


async def test_no_stuck_alert_while_the_intake_is_behind(store: Store) -> None:
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-06-01 07:00:00"), T0)
    await store.append_push(
        NewPush(
            id=new_push_id(T0),
            source="push",
            received_at=T0,
            body=shipped_push("O-1", "2024-06-01 08:00:00"),
            items=1,
        )
    )
    clock.advance(86400)
    pull = tracker(store, clock, api, stale_after=Duration(30 * 86400), alert_after={"shipped": 60})
    assert (await pull.run_pass()).stuck == []
    await drain(store, clock.now())
    assert [o.order_id for o in (await pull.run_pass()).stuck] == ["O-1"]


async def test_no_pull_while_pushes_wait_for_the_intake(store: Store) -> None:
    """A push still in the log may carry the status a pull would find: pulling first would
    make a second event of the same update."""
    clock = FakeClock(T0)
    api = FakeKiriminAja(clock)
    await push(store, shipped_push("O-1", "2024-06-01 07:00:00"), T0)
    api.answers["O-1"] = express("O-1", shipped_at="2024-06-01 07:00:00")
    clock.advance(7200)
    now = clock.now()
    await store.append_push(  # arrived, not yet taken by the intake
        NewPush(
            id=new_push_id(now),
            source="push",
            received_at=now,
            body=shipped_push("O-2", "2024-06-01 08:00:00"),
            method="shipped_packages",
            items=1,
        )
    )
    pull = tracker(store, clock, api)
    await pull.run_pass()
    assert api.asked() == []
    await drain(store, clock.now())
    await pull.run_pass()
    assert api.asked()[:1] == ["O-1"]  # once the intake has taken the push, the pass asks


async def shop_push(store: Store, shop: str, order_id: str, shipped_at: str, at: datetime) -> None:
    body = shipped_push(order_id, shipped_at)
    await store.append_push(
        NewPush(id=new_push_id(at), source="push", shop=shop, received_at=at, body=body, items=1)
    )
    await drain(store, at)


def two_shop_tracker(
    store: Store, clock: FakeClock, apis: dict[str, FakeKiriminAja], **config: Any
) -> PullTracker:
    settings: dict[str, Any] = {"enabled": True, "stale_after": Duration(3600), "rate": 5.0}
    settings.update(config)
    lines = {shop: ShopLine(api, 5.0, WIB) for shop, api in apis.items()}
    return PullTracker(
        store=store,
        client=apis["toko-a"],
        config=PullConfig(**settings),
        timezone=WIB,
        clock=clock,
        shops=lines,
    )


async def test_one_shops_refused_account_does_not_stop_the_other_shops_pulls(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T0)
    a, b = FakeKiriminAja(clock), FakeKiriminAja(clock)
    for i in range(4):  # toko-a's orders come first in the pass
        await shop_push(store, "toko-a", f"A{i}", f"2024-06-01 07:0{i}:00", T0)
        a.answers[f"A{i}"] = Refused(
            kind="express", order_id=f"A{i}", reason="KiriminAja: API key tidak valid"
        )
    for i in range(2):
        await shop_push(store, "toko-b", f"B{i}", f"2024-06-01 07:3{i}:00", T0)
        b.answers[f"B{i}"] = express(f"B{i}", shipped_at=f"2024-06-01 07:3{i}:00")
    clock.advance(6 * 3600)  # every order is stale
    pull = two_shop_tracker(store, clock, {"toko-a": a, "toko-b": b})
    report = await pull.run_pass()
    # toko-a's key is refused: three of its orders asked, the fourth not; toko-b's all asked.
    assert a.asked() == ["A0", "A1", "A2"]
    assert b.asked() == ["B0", "B1"]
    assert [(r.shop, r.outcome) for r in report.pulls] == [
        ("toko-a", "skipped"),
        ("toko-a", "skipped"),
        ("toko-a", "try_later"),
        ("toko-b", "changed"),
        ("toko-b", "changed"),
    ]
    assert any("for shop toko-a" in r.getMessage() for r in caplog.records)
    # toko-a's orders wait an interval (not their stale_after), then are asked again.
    clock.advance(float(pull.config.interval) + 1)
    await drain(store, clock.now())  # what toko-b's answers taught, through the intake
    await pull.run_pass()
    assert a.asked()[3:] == ["A0", "A1", "A2"] and b.asked() == ["B0", "B1"]


async def test_a_gap_is_judged_by_each_shops_own_pushes(store: Store) -> None:
    clock = FakeClock(T0)
    a, b = FakeKiriminAja(clock), FakeKiriminAja(clock)
    for i in range(2):
        await shop_push(store, "toko-a", f"A{i}", "2024-06-01 07:00:00", T0)
        a.answers[f"A{i}"] = express(f"A{i}", shipped_at="2024-06-01 07:00:00")
    await shop_push(store, "toko-b", "B0", "2024-06-01 07:10:00", T0 + timedelta(seconds=650))
    b.answers["B0"] = express("B0", shipped_at="2024-06-01 07:10:00")
    clock.advance(700)  # toko-a silent for 700 s (past the 600 s gap), toko-b for 50 s
    pull = two_shop_tracker(store, clock, {"toko-a": a, "toko-b": b}, gap=Duration(600))
    assert await pull.check_gap()
    assert pull.catch_up_shops == {"toko-a"}
    report = await pull.run_pass()
    # toko-b's pushes keep coming: its order is not due, and only toko-a's are caught up.
    assert report.catch_up and sorted(a.asked()) == ["A0", "A1"] and b.asked() == []
    assert pull.catch_up_since is None
