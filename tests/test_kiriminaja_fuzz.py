"""Random JSON at the decoder: a `PushError` (the documented 400) or events, nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from gateway.errors import PushError
from gateway.sources.kiriminaja import decode_push, normalise

JAKARTA = ZoneInfo("Asia/Jakarta")

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
keys = st.sampled_from(
    [
        "order_id",
        "awb",
        "status",
        "shipped_at",
        "date",
        "returned_at",
        "event_date",
        "reason",
        "driver",
        "detail",
        "shipping_price",
        "service_type",
        "live_track_url",
        "x",
    ]
)
times = st.sampled_from(
    [
        "2022-05-05 00:00:00",
        "2024-01-10T08:21:28.301662Z",
        "",
        "0000-00-00 00:00:00",
        "2024-02-30 10:00:00",
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+12:00",
        "0001-01-01 00:00:00",
        "9999-12-31 23:59:59",
    ]
)
items = st.dictionaries(keys, json_values | times, max_size=8)
methods = st.sampled_from(
    [
        "processed_packages",
        "shipped_packages",
        "returned_packages",
        "update_instant_packages",
        "problem_packages",
        "whatever",
        "",
    ]
) | st.text(max_size=10)
pushes = st.fixed_dictionaries(
    {"method": methods | json_values, "data": st.lists(items | json_values, max_size=5) | items},
    optional={"payment": json_values, "packages": st.lists(items | json_values, max_size=3)},
)


def check(body: bytes) -> None:
    try:
        push = decode_push(body)
    except PushError as exc:
        assert exc.reason
        return
    result = normalise(push, received_at=datetime.now(UTC), tz=JAKARTA)
    assert len(result.events) == len(push.items)
    for event in result.events:
        assert event.occurred_at.tzinfo is not None


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_value(value: Any) -> None:
    check(json.dumps(value).encode())


@settings(max_examples=150, deadline=None)
@given(pushes)
def test_push_shaped_json(value: dict[str, Any]) -> None:
    check(json.dumps(value).encode())


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(body: bytes) -> None:
    check(body)


@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=40))
def test_any_bytes_inside_an_order_id(raw: bytes) -> None:
    check(b'{"method": "shipped_packages", "data": [{"order_id": "A' + raw + b'"}]}')


brackets = st.text(alphabet='[]{}",:1\\ ', max_size=300)


@settings(max_examples=120, deadline=None)
@given(st.integers(min_value=0, max_value=3000), brackets)
def test_any_nesting(depth: int, tail: str) -> None:
    check(f'{{"method": "x", "data": [{{"order_id": 1, "x": {"[" * depth}{tail}'.encode())


def test_the_receiver_never_answers_5xx(tmp_path: Path) -> None:
    config = parse_config(
        f"""
receiver: {{token: fuzz-token}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
sinks: {{console: {{type: console, stream: stderr}}}}
routes: [{{name: all, sinks: [console]}}]
dispatcher: {{enabled: false}}
"""
    )
    headers = {"Authorization": "Bearer fuzz-token"}
    with TestClient(create_app(config)) as client:

        @settings(max_examples=120, deadline=None)
        @given(pushes | json_values)
        def post(value: Any) -> None:
            r = client.post("/kiriminaja/push", content=json.dumps(value), headers=headers)
            assert r.status_code in (200, 400), r.text
            if r.status_code == 400:
                assert r.json()["error"] == "invalid_push"

        post()
