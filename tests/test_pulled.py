"""Tracking answers → the events a push would have made (`gateway.sources.kiriminaja.pulled`)."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.events import Contact, Event, Status
from gateway.intake import decode_logged
from gateway.sources.kiriminaja import decode_push, normalise
from gateway.sources.kiriminaja.entries import decode_pull_entry
from gateway.sources.kiriminaja.pulled import (
    Pulled,
    decode_pulled,
    instant_states,
    normalise_pulled,
)
from gateway.store.roles import LoggedPush

FIXTURES = Path(__file__).parent / "fixtures" / "tracking"
WIB = ZoneInfo("Asia/Jakarta")
RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fixture(name: str) -> dict[str, Any]:
    answer: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return answer


def pulled(kind: str, answer: dict[str, Any], received: datetime = RECEIVED) -> list[Event]:
    document = Pulled(
        kind="instant" if kind == "instant" else "express", order_id="X", answer=answer
    )
    return normalise_pulled(document, received_at=received, tz=WIB).events


def pushed(body: dict[str, Any]) -> Event:
    (event,) = normalise(
        decode_push(json.dumps(body).encode()), received_at=RECEIVED, tz=WIB
    ).events
    return event


def logged(body: bytes) -> LoggedPush:
    return LoggedPush(
        seq=1,
        id="psh_1",
        source="pull",
        received_at=RECEIVED,
        body=body,
        content_type="application/json",
        method="express_tracking",
        items=1,
        state="pending",
    )


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=WIB).astimezone(UTC)


# -- express ---------------------------------------------------------------------------------


def test_documented_express_answer() -> None:
    events = pulled("express", fixture("express.json"))
    assert [(e.method, e.status, e.occurred_at) for e in events] == [
        ("processed_packages", Status.PROCESSED, at("2021-07-07 14:40:42")),
        ("shipped_packages", Status.SHIPPED, at("2021-07-13 17:44:04")),
        ("finished_packages", Status.DELIVERED, at("2021-10-17 16:53:00")),
    ]
    for event in events:
        assert event.source == "pull" and event.kind == "express"
        assert event.order_id == "OID-8793949106" and event.awb == "DEVEL-000000004"
        assert event.received_at == RECEIVED
        assert event.details["service"] == "jne" and event.details["shipping_cost"] == 10000
    assert events[2].details["package_status"] == 200
    # The answer's images are the delivered event's proof of delivery, and only its.
    base = "https://s3-ap-southeast-1.amazonaws.com/pod.paket.id/"
    assert events[2].details["proof_of_delivery"] == {
        "photo": base + "1626253243482P||1411922100004643.jpeg",
        "signature": base + "1626253255242S||1411922100004643.jpeg",
    }
    assert all("proof_of_delivery" not in e.details for e in events[:2])


def test_express_ids_match_the_short_pushes_of_the_same_updates() -> None:
    processed, shipped, delivered = pulled("express", fixture("express.json"))
    order = "OID-8793949106"
    data: dict[str, Any] = {"order_id": order, "awb": "DEVEL-000000004", "sorting_code": "JOG"}
    assert processed.id == pushed({"method": "processed_packages", "data": [data]}).id
    data = {"order_id": order, "shipped_at": "2021-07-13 17:44:04"}
    assert shipped.id == pushed({"method": "shipped_packages", "data": [data]}).id
    data = {"order_id": order, "finished_at": "2021-10-17 16:53:00"}
    assert delivered.id == pushed({"method": "finished_packages", "data": [data]}).id
    # ... and differ from a push of the same status at another time.
    data = {"order_id": order, "shipped_at": "2021-07-13 18:00:00"}
    assert shipped.id != pushed({"method": "shipped_packages", "data": [data]}).id


def test_ids_are_deterministic_whenever_the_answer_is_pulled() -> None:
    first = pulled("express", fixture("express.json"))
    again = pulled("express", fixture("express.json"), received=datetime(2025, 1, 1, tzinfo=UTC))
    assert [e.id for e in first] == [e.id for e in again]
    assert len({e.id for e in first}) == len(first)


def test_the_recipient_becomes_a_contact() -> None:
    document = Pulled(kind="express", order_id="OID-8793949106", answer=fixture("express.json"))
    contacts = normalise_pulled(document, received_at=RECEIVED, tz=WIB).contacts
    assert contacts == [
        Contact(order_id="OID-8793949106", name="Zainal Arifin", phone="+6287839087416")
    ]


def one_entry(code: int) -> dict[str, Any]:
    return {
        "status": True,
        "status_code": code,
        "details": {"order_id": "OID-1", "awb": None},
        "histories": [
            {"created_at": "2024-05-05 10:00:00", "status": "catatan", "status_code": code}
        ],
    }


@pytest.mark.parametrize(
    ("code", "status", "method"),
    [
        (105, Status.PROCESSED, "processed_packages"),
        (106, Status.SHIPPED, "shipped_packages"),
        (200, Status.DELIVERED, "finished_packages"),
        (300, Status.CANCELED, "canceled_packages"),
        (302, Status.CANCELED, "canceled_packages"),
        (301, Status.REJECTED, "rejected_packages"),
        (310, Status.REJECTED, "rejected_packages"),
        (311, Status.REJECTED, "rejected_packages"),
        (400, Status.RETURNED, "returned_packages"),
        (401, Status.RETURNING, "returned_packages"),
        (402, Status.RETURNING, "returned_packages"),
        (403, Status.RETURNING, "returned_packages"),
        (303, Status.PROBLEM, "problem_packages"),
        (333, Status.PROBLEM, "problem_packages"),
        (405, Status.PROBLEM, "problem_packages"),
        (406, Status.PROBLEM, "problem_packages"),
        (500, Status.PROBLEM, "problem_packages"),
        (555, Status.PROBLEM, "problem_packages"),
        (701, Status.PROBLEM, "problem_packages"),
        (704, Status.PROBLEM, "problem_packages"),
        (901, Status.PROBLEM, "problem_packages"),
        (905, Status.PROBLEM, "problem_packages"),
    ],
)
def test_status_codes(code: int, status: Status, method: str) -> None:
    (event,) = pulled("express", one_entry(code))
    assert (event.status, event.method) == (status, method)
    assert event.occurred_at == at("2024-05-05 10:00:00")
    assert event.details["package_status"] == code
    expected_reason = (
        "catatan" if status in (Status.CANCELED, Status.REJECTED, Status.PROBLEM) else None
    )
    assert event.reason == expected_reason


@pytest.mark.parametrize("code", [100, 101, 102, 103, 104, 107, 110, 152, 210, 211, 350, 404, 999])
def test_codes_no_push_is_sent_for_make_no_event(code: int) -> None:
    assert pulled("express", one_entry(code)) == []


def test_a_status_is_one_event_at_its_earliest_time_and_problems_one_per_reason() -> None:
    answer = one_entry(500)
    answer["histories"] = [  # newest first, as KiriminAja lists them
        {
            "created_at": "2024-05-07 09:00:00",
            "status": "Penerima tidak di tempat",
            "status_code": 500,
        },
        {"created_at": "2024-05-06 09:00:00", "status": "Alamat tidak lengkap", "status_code": 500},
        {
            "created_at": "2024-05-05 18:00:00",
            "status": "Retur menuju pengirim",
            "status_code": 401,
        },
        {"created_at": "2024-05-05 09:00:00", "status": "Alamat tidak lengkap", "status_code": 500},
        {"created_at": "2024-05-05 08:00:00", "status": "Retur diminta", "status_code": 403},
    ]
    events = pulled("express", answer)
    assert [(e.status, e.reason, e.occurred_at) for e in events] == [
        (Status.RETURNING, None, at("2024-05-05 08:00:00")),
        (Status.PROBLEM, "Alamat tidak lengkap", at("2024-05-05 09:00:00")),
        (Status.PROBLEM, "Penerima tidak di tempat", at("2024-05-07 09:00:00")),
    ]


def test_the_top_level_code_counts_when_no_entry_has_its_status() -> None:
    answer = {"status": True, "text": "Dibatalkan sistem", "status_code": 300, "histories": []}
    (event,) = pulled("express", answer)
    assert (event.status, event.reason, event.order_id) == (
        Status.CANCELED,
        "Dibatalkan sistem",
        "X",
    )
    assert event.occurred_at == RECEIVED  # no time in the answer
    (later,) = pulled("express", answer, received=datetime(2025, 1, 1, tzinfo=UTC))
    assert later.id == event.id


def test_refunded_is_returned_at_its_time() -> None:
    answer = fixture("express.json")
    answer["details"].update(delivered=False, delivered_at="", refunded=True)
    answer["details"]["refunded_at"] = "2021-07-20 08:00:00"
    answer["status_code"] = 400
    answer["histories"] = answer["histories"][1:]  # without the 200 entry
    statuses = [(e.status, e.occurred_at) for e in pulled("express", answer)]
    assert statuses[-1] == (Status.RETURNED, at("2021-07-20 08:00:00"))
    assert Status.DELIVERED not in [s for s, _ in statuses]


# -- instant ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dates", "description", "states"),
    [
        ({}, None, []),
        ({"allocated_at": "T1"}, None, [("picked_up", "T1")]),
        (
            {"allocated_at": "T1", "finished_at": "T2"},
            None,
            [("picked_up", "T1"), ("delivered", "T2")],
        ),
        ({"canceled_at": "T3"}, None, [("cancel", "T3")]),
        ({"canceled_at": "T3"}, "Dibatalkan oleh pengirim", [("cancel", "T3")]),
        ({}, "Driver not found", [("no_driver", None)]),
        ({"canceled_at": "T3"}, "Tidak ada driver tersedia", [("no_driver", "T3")]),
        ({"created_at": "T0", "finished_at": None, "canceled_at": ""}, None, []),
    ],
)
def test_instant_states(
    dates: dict[str, Any], description: str | None, states: list[tuple[str, str | None]]
) -> None:
    assert instant_states({"date": dates, "cancel_description": description}) == states


def test_documented_instant_answer_has_no_state_yet_but_a_contact() -> None:
    document = Pulled(kind="instant", order_id="NBL2-1705636897084", answer=fixture("instant.json"))
    got = normalise_pulled(document, received_at=RECEIVED, tz=WIB)
    assert got.events == []
    assert got.contacts == [
        Contact(order_id="NBL2-1705636897084", name="Arfian", phone="+6281280045616")
    ]


def finished_instant() -> dict[str, Any]:
    answer = copy.deepcopy(fixture("instant.json"))
    answer["result"]["date"].update(
        allocated_at="2024-01-19T04:05:00.000000Z", finished_at="2024-01-19T04:40:12.000000Z"
    )
    return answer


def test_instant_answer_becomes_the_instant_updates() -> None:
    events = pulled("instant", finished_instant())
    assert [(e.status, e.raw_status, e.occurred_at) for e in events] == [
        (Status.PICKED_UP, "picked_up", datetime(2024, 1, 19, 4, 5, tzinfo=UTC)),
        (Status.DELIVERED, "delivered", datetime(2024, 1, 19, 4, 40, 12, tzinfo=UTC)),
    ]
    for event in events:
        assert event.kind == "instant" and event.method == "update_instant_packages"
        assert event.order_id == "NBL2-1705636897084" and event.awb == "GK-11-3120092"
        assert event.details["service"] == "gosend" and event.details["shipping_price"] == 34000
    item = {
        "order_id": "NBL2-1705636897084",
        "awb": "GK-11-3120092",
        "status": "delivered",
        "date": "2024-01-19T04:40:12.000000Z",
    }
    assert events[1].id == pushed({"method": "update_instant_packages", "data": item}).id


def test_instant_cancel_carries_its_description() -> None:
    answer = copy.deepcopy(fixture("instant.json"))
    answer["result"]["date"]["canceled_at"] = "2024-01-19T04:10:00.000000Z"
    answer["result"]["cancel_description"] = "Dibatalkan oleh pengirim"
    (event,) = pulled("instant", answer)
    assert (event.status, event.raw_status, event.reason) == (
        Status.CANCELED,
        "cancel",
        "Dibatalkan oleh pengirim",
    )


# -- the log entry ---------------------------------------------------------------------------


def test_the_pull_decoder_reads_the_envelope() -> None:
    document = Pulled(kind="instant", order_id="NBL2-1705636897084", answer=finished_instant())
    assert json.loads(document.encode()) == {
        "kind": "instant",
        "order_id": "NBL2-1705636897084",
        "answer": finished_instant(),
    }
    assert document.method == "instant_tracking"
    got = decode_logged(logged(document.encode()), WIB)
    assert got == decode_pull_entry(logged(document.encode()), WIB)  # a bare `Pulled` body
    assert got == normalise_pulled(document, received_at=RECEIVED, tz=WIB)
    assert [e.status for e in got.events] == [Status.PICKED_UP, Status.DELIVERED]


@pytest.mark.parametrize(
    "body",
    [b"not json", b'{"kind": "express"}', b'{"kind": "air", "order_id": "X", "answer": {}}'],
)
def test_a_body_that_is_not_a_pulled_answer_fails_the_entry(body: bytes) -> None:
    with pytest.raises(ValueError, match="not a pulled tracking answer"):
        decode_pulled(logged(body), WIB)
