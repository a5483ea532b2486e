"""Decoding and normalising KiriminAja pushes: every fixture and the messy cases of real pushes."""

from __future__ import annotations

import gzip
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.errors import PushError
from gateway.events import Contact, Event, Status
from gateway.sources.kiriminaja import decode_push, normalise, parse_time
from gateway.sources.kiriminaja.normalise import KNOWN_METHODS
from gateway.sources.kiriminaja.part import push_part
from gateway.sources.kiriminaja.push import MAX_DEPTH, MAX_ORDER_ID

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "push"
JAKARTA = ZoneInfo("Asia/Jakarta")
RECEIVED = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def events_of(body: dict[str, Any] | bytes, tz: ZoneInfo = JAKARTA) -> list[Event]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return normalise(decode_push(raw), received_at=RECEIVED, tz=tz).events


def utc(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> datetime:
    return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=UTC)


# (fixture, [(order_id, status, occurred_at UTC, kind)])
FIXTURE_EXPECTATIONS = {
    "processed_packages": [("X", Status.PROCESSED, RECEIVED, "express")],
    "shipped_packages": [("X", Status.SHIPPED, utc(2022, 5, 4, 17), "express")],
    "canceled_packages": [("X", Status.CANCELED, utc(2022, 5, 4, 17), "express")],
    "finished_packages": [("X", Status.DELIVERED, utc(2022, 5, 4, 17), "express")],
    "returned_packages": [("X", Status.RETURNED, utc(2022, 5, 4, 17), "express")],
    "return_finished_packages": [
        ("OID-40592020", Status.RETURNED, utc(2021, 3, 30, 17), "express"),
        ("OID-40592021", Status.RETURNED, utc(2021, 3, 30, 17), "express"),
    ],
    "update_instant_packages": [
        ("NBL2-1704870212382", Status.CANCELED, utc(2024, 1, 10, 8, 21, 28, 301662), "instant")
    ],
    "complete_processed_packages": [
        ("(order_id", Status.PROCESSED, utc(2025, 1, 9, 6, 2, 3), "express")
    ],
    "complete_instant_shipped_packages": [
        ("BDI-1737442836890", Status.SHIPPED, utc(2025, 1, 21, 7, 1, 6), "instant")
    ],
}


@pytest.mark.parametrize("name", sorted(FIXTURE_EXPECTATIONS))
def test_every_fixture(name: str) -> None:
    body = (FIXTURES / f"{name}.json").read_bytes()
    events = events_of(body)
    got = [(e.order_id, e.status, e.occurred_at, e.kind) for e in events]
    assert got == FIXTURE_EXPECTATIONS[name]
    for event, item in zip(events, _items(json.loads(body)), strict=True):
        assert event.method == json.loads(body)["method"]
        assert event.raw == item
        assert event.received_at == RECEIVED
        assert event.occurred_at.tzinfo is not None
        assert event.id.startswith("evt_")
    assert [e.id for e in events_of(body)] == [e.id for e in events]  # deterministic


def _items(push: dict[str, Any]) -> list[dict[str, Any]]:
    data = push["data"]
    return data if isinstance(data, list) else [data]


def test_fixture_details() -> None:
    (processed,) = events_of((FIXTURES / "processed_packages.json").read_bytes())
    assert processed.awb == "Y"
    assert processed.details == {"sorting_code": "JOG-JOG1000-JKT2010"}
    (canceled,) = events_of((FIXTURES / "canceled_packages.json").read_bytes())
    assert canceled.reason == "3pl rejection"
    (instant,) = events_of((FIXTURES / "update_instant_packages.json").read_bytes())
    assert instant.raw_status == "cancel"
    assert instant.awb == "GK-11-3114100"
    assert instant.details == {
        "service": "gosend",
        "service_name": "instant",
        "service_type": "instant",
        "shipping_price": 34000,
        "tracking_url": "http://gjk.io/abcd",
        "driver": {"name": "string", "phone": "string", "image": "string"},
        "weight": 2000,
    }


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("picked_up", Status.PICKED_UP),
        ("sent", Status.IN_TRANSIT),
        ("no_driver", Status.NO_DRIVER),
        ("delivered", Status.DELIVERED),
        ("cancel", Status.CANCELED),
        ("return", Status.RETURNING),
        ("returned", Status.RETURNED),
        ("teleported", Status.UNKNOWN),
        (None, Status.UNKNOWN),
    ],
)
def test_instant_statuses(status: str | None, expected: Status) -> None:
    body = {"method": "update_instant_packages", "data": {"order_id": "I-1", "status": status}}
    (event,) = events_of(body)
    assert event.status is expected
    assert event.kind == "instant"
    assert event.raw_status == status


@pytest.mark.parametrize(
    ("method", "item", "expected"),
    [
        ("validated_packages", {"shipping_cost": "12000"}, Status.VALIDATED),
        (
            "rejected_packages",
            {"rejected_at": "2024-01-01 10:00:00", "reason": "x"},
            Status.REJECTED,
        ),
        ("problem_packages", {"date": "2024-01-01 10:00:00", "reason": "alamat"}, Status.PROBLEM),
        ("returned_packages", {"returned_at": None}, Status.RETURNING),
        ("returned_packages", {"returned_at": ""}, Status.RETURNING),
        ("returned_packages", {"returned_at": "2024-01-01 10:00:00"}, Status.RETURNED),
        ("shipped_package", {"shipped_at": "2024-01-01 10:00:00"}, Status.SHIPPED),
        ("SHIPPED_PACKAGES", {}, Status.SHIPPED),
        ("cancelled_packages", {}, Status.CANCELED),
        ("teleported_packages", {"beam": True}, Status.UNKNOWN),
    ],
)
def test_methods(method: str, item: dict[str, Any], expected: Status) -> None:
    (event,) = events_of({"method": method, "data": [{"order_id": "M-1", **item}]})
    assert event.status is expected
    assert event.method == method  # the raw method is kept
    assert event.raw == {"order_id": "M-1", **item}


def test_validated_cost_sent_as_string_becomes_a_number() -> None:
    body = {"method": "validated_packages", "data": [{"order_id": "V", "shipping_cost": "12000"}]}
    assert events_of(body)[0].details["shipping_cost"] == 12000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2022-05-05 00:00:00", utc(2022, 5, 4, 17)),
        ("2024-01-10T08:21:28.301662Z", utc(2024, 1, 10, 8, 21, 28, 301662)),
        ("2024-01-10T08:21:28Z", utc(2024, 1, 10, 8, 21, 28)),
        ("2024-01-10T15:21:28+07:00", utc(2024, 1, 10, 8, 21, 28)),
        ("2025-01-09T06:02:03.000000Z", utc(2025, 1, 9, 6, 2, 3)),
        ("2022-05-05", utc(2022, 5, 4, 17)),
        ("", None),
        ("0000-00-00 00:00:00", None),
        ("0000-00-00", None),
        ("soon", None),
        ("0001-01-01 00:00:00", None),  # before year 1 in UTC
        ("9999-12-31T23:59:59-10:00", None),  # after year 9999 in UTC
        ("9999-12-31T23:00:00Z", None),  # past year 9999 in WIB, where it would be shown
        ("0001-01-01T12:00:00Z", None),  # before year 1 west of UTC
        ("9998-12-31 23:00:00", utc(9998, 12, 31, 16)),
        (None, None),
        (1715000000, None),
        ({"date": "x"}, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value, JAKARTA) == expected


def test_naive_times_follow_the_configured_zone() -> None:
    body = {
        "method": "shipped_packages",
        "data": [{"order_id": "Z", "shipped_at": "2022-05-05 00:00:00"}],
    }
    assert events_of(body, ZoneInfo("UTC"))[0].occurred_at == utc(2022, 5, 5)
    assert events_of(body, ZoneInfo("Asia/Makassar"))[0].occurred_at == utc(2022, 5, 4, 16)


def test_missing_or_empty_dates_fall_back_to_received_at() -> None:
    for value in ("", "0000-00-00 00:00:00", None, 12, ["x"]):
        body = {"method": "shipped_packages", "data": [{"order_id": "E", "shipped_at": value}]}
        (event,) = events_of(body)
        assert event.occurred_at == RECEIVED
        assert event.raw["shipped_at"] == value


def test_nulls_extra_fields_and_numbers_as_strings() -> None:
    body = {
        "method": "update_instant_packages",
        "extra_top_level": {"anything": [1, 2]},
        "data": {
            "order_id": 12345,
            "status": "sent",
            "awb": None,
            "driver": None,
            "shipping_price": "34000",
            "insurance_amount": "1500.50",
            "live_track_url": None,
            "detail": {"weight": "1000", "width": None},
            "brand_new_field": {"nested": True},
            "event_date": "2024-01-10T08:21:28Z",
        },
    }
    (event,) = events_of(body)
    assert event.order_id == "12345"
    assert event.awb is None
    assert event.details["shipping_price"] == 34000
    assert event.details["insurance_amount"] == 1500.5
    assert event.details["weight"] == 1000
    assert "driver" not in event.details and "tracking_url" not in event.details
    assert event.raw["brand_new_field"] == {"nested": True}


def test_repeats_and_distinct_updates_in_one_batch() -> None:
    same = {"order_id": "D", "shipped_at": "2024-01-01 10:00:00"}
    later = {"order_id": "D", "shipped_at": "2024-01-02 10:00:00"}
    a, b, c = events_of({"method": "shipped_packages", "data": [same, same, later]})
    assert a.id == b.id != c.id


def test_ids_differ_by_status_and_method_and_problem_reason() -> None:
    def one(method: str, **item: Any) -> str:
        return events_of({"method": method, "data": [{"order_id": "P", **item}]})[0].id

    assert one("shipped_packages", date="2024-01-01 10:00:00") != one(
        "finished_packages", date="2024-01-01 10:00:00"
    )
    assert one("problem_packages", date="2024-01-01 10:00:00", reason="alamat") != one(
        "problem_packages", date="2024-01-01 10:00:00", reason="ditolak"
    )
    assert one("shipped_package") == one("shipped_packages")  # singular or plural


def test_big_batch() -> None:
    body = {
        "method": "shipped_packages",
        "data": [{"order_id": f"B-{i}", "shipped_at": "2024-01-01 10:00:00"} for i in range(500)],
    }
    events = events_of(body)
    assert len(events) == 500 == len({e.id for e in events})


COMPLETE_PROCESSED = {
    "method": "processed_packages",
    "data": [
        {
            "order_id": "OID-9",
            "awb": "JX9",
            "date": "2025-01-09T06:02:03.000000Z",
            "shipped_at": None,
            "finished_at": None,
            "returned_at": None,
            "rejected_at": None,
            "reason": None,
        }
    ],
    "payment": {
        "payment_id": "PID-1",
        "amount": 11200,
        "status_code": 0,
        "qr_content": None,
        "pay_time": None,
    },
    "packages": [
        {
            "awb": "JX9",
            "order_id": "OID-9",
            "service": "jne",
            "service_type": "REG",
            "status": 105,
            "live_tracking_url": None,
            "poly_line": None,
            "origin": {"name": "Toko", "phone": "0812"},
            "destination": {
                "name": "Budi",
                "address": "Jl. Mawar",
                "phone": "081234567890",
                "latitude": None,
            },
            "driver": {"name": None, "phone": None, "image": None},
        }
    ],
}


def test_complete_format_processed() -> None:
    result = normalise(
        decode_push(json.dumps(COMPLETE_PROCESSED).encode()), received_at=RECEIVED, tz=JAKARTA
    )
    (event,) = result.events
    assert event.status is Status.PROCESSED
    assert event.occurred_at == utc(2025, 1, 9, 6, 2, 3)
    assert event.raw_status == "105"
    assert event.details["package_status"] == 105
    assert event.details["payment"]["payment_id"] == "PID-1"
    assert event.details["service"] == "jne"
    assert "driver" not in event.details
    assert result.contacts == [Contact(order_id="OID-9", name="Budi", phone="+6281234567890")]


def _parts(raw: bytes, size: int) -> tuple[list[Any], list[Event], list[Contact]]:
    items: list[Any] = []
    events: list[Event] = []
    contacts: list[Contact] = []
    start = 0
    while True:
        part = push_part(raw, start, start + size)
        found = normalise(part.push, received_at=RECEIVED, tz=JAKARTA)
        items += part.push.items
        events += found.events
        contacts += found.contacts
        start += size
        if start >= part.total:
            return items, events, contacts


@pytest.mark.parametrize("size", [1, 2, 3, 100])
def test_a_push_read_in_parts_yields_what_the_whole_yields(size: int) -> None:
    """The admin API's pages of a push: each item once, in order, with the same events and
    contacts (a complete push's package found by its order, the last of two winning)."""
    package: dict[str, Any] = COMPLETE_PROCESSED["packages"][0]  # type: ignore[index]
    body: dict[str, Any] = {
        "method": "processed_packages",
        "data": [
            {"order_id": f" OID-{i} ", "awb": f"AWB-{i}", "date": f"2025-01-09 0{i}:00:00"}
            for i in range(5)
        ]
        + [{"order_id": 7.0, "date": "2025-01-09 09:00:00"}],
        "payment": {"payment_id": "PID-1"},
        "packages": [
            {**package, "order_id": "OID-3", "service": "sicepat"},
            "not a package",
            {"awb": "no order id"},
            {**package, "order_id": "OID-1", "service": "jne"},
            {**package, "order_id": 7, "service": "anteraja"},
            {**package, "order_id": "OID-3", "service": "jnt"},
        ],
    }
    raw = b"\xef\xbb\xbf" + json.dumps(body).encode()
    whole = normalise(decode_push(raw), received_at=RECEIVED, tz=JAKARTA)
    items, events, contacts = _parts(raw, size)
    assert items == body["data"]
    assert events == whole.events
    assert contacts == whole.contacts
    services = [e.details.get("service") for e in events]
    assert services == [None, "jne", None, "jnt", None, "anteraja"]


def test_a_push_of_one_object_is_one_part() -> None:
    raw = json.dumps({"method": "shipped_packages", "data": {"order_id": "ONE"}}).encode()
    assert _parts(raw, 10)[0] == [{"order_id": "ONE"}]
    assert push_part(raw, 1, 11).push.items == []


def test_complete_format_instant_shipped() -> None:
    body = {
        "method": "shipped_packages",
        "data": [
            {
                "order_id": "BDI-1",
                "awb": "GK-11-1",
                "date": "2025-01-21T07:00:36.000000Z",
                "shipped_at": "2025-01-21T07:01:06.000000Z",
            }
        ],
        "payment": {"payment_id": "PID-2", "amount": 30500},
        "packages": [
            {
                "awb": "GK-11-1",
                "order_id": "BDI-1",
                "service": "gosend",
                "service_type": "instant",
                "status": 106,
                "live_tracking_url": "https://gojek/test",
                "destination": {"name": "Okka", "phone": "081229917190"},
            }
        ],
    }
    result = normalise(decode_push(json.dumps(body).encode()), received_at=RECEIVED, tz=JAKARTA)
    (event,) = result.events
    assert (event.status, event.kind) == (Status.SHIPPED, "instant")
    assert event.occurred_at == utc(2025, 1, 21, 7, 1, 6)
    assert event.details["tracking_url"] == "https://gojek/test"
    assert result.contacts == [Contact(order_id="BDI-1", name="Okka", phone="+6281229917190")]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"", None),
        (b"{not json", None),
        (b"[1, 2]", "$"),
        (b'"a string"', "$"),
        (b'{"data": []}', "$.method"),
        (b'{"method": "x"}', "$.data"),
        (b'{"method": 7, "data": []}', "$.method"),
        (b'{"method": "x", "data": "nope"}', "$.data"),
        (b'{"method": "x", "data": null}', "$.data"),
        (b'{"method": "x", "data": [1]}', "$.data[0]"),
        (b'{"method": "x", "data": [{"order_id": "a"}, {"awb": "b"}]}', "$.data[1].order_id"),
        (b'{"method": "x", "data": [{"order_id": null}]}', "$.data[0].order_id"),
        (b'{"method": "x", "data": [{"order_id": "  "}]}', "$.data[0].order_id"),
        (b'{"method": "x", "data": [{"order_id": true}]}', "$.data[0].order_id"),
        (b'{"method": "x", "data": {"status": "sent"}}', "$.data.order_id"),
    ],
)
def test_not_a_push(body: bytes, path: str | None) -> None:
    with pytest.raises(PushError) as info:
        decode_push(body)
    assert info.value.path == path
    assert info.value.reason


def test_empty_data_list_is_a_push_with_no_events() -> None:
    assert events_of({"method": "shipped_packages", "data": []}) == []


def test_invalid_utf8_inside_a_string_is_not_a_push() -> None:
    with pytest.raises(PushError) as info:
        decode_push(b'{"method":"shipped_packages","data":[{"order_id":"A\xff"}]}')
    assert "UTF-8" in info.value.reason


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (rb'{"method":"shipped_packages","data":[{"order_id":"A\u0000"}]}', "$.data[0].order_id"),
        (rb'{"method":"x","data":{"order_id":"1","a":[1,{"b":"\u0000"}]}}', "$.data.a[1].b"),
        (rb'{"method":"x","data":{"order_id":"1","a":{"k\u0000":1}}}', "$.data.a"),
        (rb'{"method":"x\u0000","data":[]}', "$.method"),
        (rb'{"method":"x","data":[],"payment":{"note":"\u0000"}}', "$.payment.note"),
    ],
)
def test_a_nul_character_in_a_string_is_not_a_push(body: bytes, path: str) -> None:
    # valid JSON, but PostgreSQL cannot store it: accepted, it would never become an event
    with pytest.raises(PushError) as info:
        decode_push(body)
    assert "NUL" in info.value.reason and info.value.path == path


def test_an_escaped_backslash_before_u0000_is_text() -> None:
    body = rb'{"method":"x","data":{"order_id":"1","note":"C:\\u0000"}}'
    assert decode_push(body).items[0]["note"] == "C:\\u0000"


def nested(depth: int) -> bytes:
    """A push whose whole document is `depth` levels deep (the envelope and item count)."""
    inner = "[" * (depth - 3) + "]" * (depth - 3)
    body = f'{{"method": "shipped_packages", "data": [{{"order_id": "N-1", "x": {inner}}}]}}'
    return body.encode()


def test_an_order_id_up_to_the_limit_is_a_push_and_a_longer_one_is_not() -> None:
    def body(order_id: object) -> bytes:
        return json.dumps({"method": "shipped_packages", "data": [{"order_id": order_id}]}).encode()

    assert len(events_of(body("O" * MAX_ORDER_ID))) == 1
    for too_long in ("O" * (MAX_ORDER_ID + 1), 10 ** (MAX_ORDER_ID + 1)):
        with pytest.raises(PushError) as info:
            decode_push(body(too_long))
        assert info.value.path == "$.data[0].order_id"
        assert f"longer than {MAX_ORDER_ID} characters" in info.value.reason


def test_a_byte_order_mark_before_the_json_is_ignored() -> None:
    push = b'\xef\xbb\xbf{"method": "shipped_packages", "data": [{"order_id": "B-1"}]}'
    assert [e.order_id for e in events_of(push)] == ["B-1"]


def test_a_gzip_body_is_named_as_such() -> None:
    with pytest.raises(PushError) as info:
        decode_push(gzip.compress(b'{"method": "shipped_packages", "data": []}'))
    assert "gzip-compressed" in info.value.reason


def test_nesting_up_to_the_limit_is_a_push() -> None:
    assert len(events_of(nested(MAX_DEPTH))) == 1


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1000, 100_000])
def test_nesting_past_the_limit_is_not_a_push(depth: int) -> None:
    with pytest.raises(PushError) as info:
        decode_push(nested(depth))
    assert f"{MAX_DEPTH} levels" in info.value.reason


def test_unclosed_deep_nesting_is_not_a_push() -> None:
    with pytest.raises(PushError):
        decode_push(b'{"method": "x", "data": ' + b"[" * 5000)


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    deep_text = '[{"\\"' * 200  # escaped quotes must not end the string early
    body = {"method": "shipped_packages", "data": [{"order_id": "S-1", "note": deep_text}]}
    (event,) = events_of(body)
    assert event.raw["note"] == deep_text


def test_many_packages_are_not_mistaken_for_nesting() -> None:
    items = [{"order_id": f"B-{i}", "driver": {"name": "x"}} for i in range(200)]
    assert len(events_of({"method": "shipped_packages", "data": items})) == 200


EVENT_PAGE = Path(__file__).resolve().parents[1] / "docs" / "event.md"
EXAMPLE_BODY = re.compile(r"^\| `(\w+)` \| ([^|]+) \| `(\{.*\})` \|$", re.M)


def test_the_docs_example_bodies_give_the_statuses_they_say() -> None:
    rows = EXAMPLE_BODY.findall(EVENT_PAGE.read_text())
    documented = {f.stem for f in FIXTURES.glob("*.json") if not f.stem.startswith("complete_")}
    assert documented <= KNOWN_METHODS  # a file for each method the specification shows ...
    assert {r[0] for r in rows} == KNOWN_METHODS  # ... and a short body for every method
    for method, statuses, body in rows:
        (event,) = events_of(body.encode())
        assert event.method == method
        said = set(re.findall(r"`(\w+)`", statuses)) & {s.value for s in Status}
        if method == "update_instant_packages":
            said = {"picked_up"}
        assert event.status.value in said, (method, event.status, said)


def test_the_docs_method_table_names_each_method_once_with_its_status() -> None:
    head = "| KiriminAja method | status |\n| --- | --- |\n"
    table = EVENT_PAGE.read_text().split(head, 1)[1].split("\n\n")[0]
    rows = [line for line in table.splitlines() if line.startswith("|")]
    assert all(row.count(" | ") == 1 for row in rows), rows  # two columns each
    methods = [row.split("`")[1] for row in rows if row.startswith("| `")]
    assert len(methods) == len(set(methods)), methods
    assert set(methods) | {"return_finished_packages"} >= KNOWN_METHODS
