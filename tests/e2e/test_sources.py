"""A third-party push source end to end: the ``parcelku`` distribution installed on the server's
``PYTHONPATH``, its pushes POSTed to its own path, normalised by it, routed by its kind and
delivered to the shop's ERP webhook; KiriminAja's path works beside it."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests import plugin_source

from .conftest import FIXTURES, PUSH_TOKEN, KabarinProcess, Peer

SECRET = "whsec_" + base64.b64encode(b"kabarin-e2e-signing-key-32bytes!").decode()


def test_a_third_party_sources_pushes_are_routed_and_delivered(
    make_server: Callable[..., KabarinProcess],
    peer: Peer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    site = plugin_source.install(tmp_path / "site")
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    )
    server = make_server(
        f"""
sources:
  parcelku: {{path: {plugin_source.PATH}}}
sinks:
  erp:
    type: webhook
    url: {peer.url}/erp
    secret: {SECRET}
  same-day-erp:
    type: webhook
    url: {peer.url}/same-day
    secret: {SECRET}
routes:
  - name: same-day
    match: {{kind: same_day}}
    sinks: [same-day-erp]
    stop: true
  - name: everything
    sinks: [erp]
"""
    )
    body = plugin_source.push("PK-42", "delivered")
    headers = {"Authorization": f"Bearer {PUSH_TOKEN}", "Content-Type": "application/json"}
    r = httpx.post(f"{server.url}{plugin_source.PATH}", content=body, headers=headers)
    assert r.status_code == 200, r.text
    server.processed(r.json()["push_id"])
    assert server.push((FIXTURES / "shipped_packages.json").read_bytes()).status_code == 200

    server.wait_for(
        lambda: len(peer.requests("/same-day")) == 1 and len(peer.requests("/erp")) == 1
    )
    (delivered,) = peer.bodies("/same-day")
    event = delivered.get("data", delivered)
    assert (event["order_id"], event["status"], event["kind"], event["method"]) == (
        "PK-42",
        "delivered",
        "same_day",
        "shipment.updated",
    )
    (kiriminaja,) = peer.bodies("/erp")
    assert json.dumps(kiriminaja).count("shipped_packages")  # KiriminAja's path, beside it
    # Not a Parcelku push at its path: 400, as at KiriminAja's.
    r = httpx.post(f"{server.url}{plugin_source.PATH}", content=b"{}", headers=headers)
    assert r.status_code == 400
