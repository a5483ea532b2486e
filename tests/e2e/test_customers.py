"""Telling customers end to end: a WhatsApp that refuses falls back to SMS, with the real
server and local imitations of Meta's Cloud API and Zenziva; no full phone number or email
address in the logs, the attempt rows or the console sink's output."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from tests.test_sink_sms import zenziva, zenziva_block  # noqa: F401 (fixture)
from tests.test_sink_whatsapp import CLOUD_FAILURES, Fake, cloud, cloud_block  # noqa: F401
from tests.waiting import eventually

from .conftest import KabarinProcess

PHONE_DIGITS = "81234567890"


async def test_a_failing_whatsapp_falls_back_to_sms_once_and_masks_the_customer(
    make_server: Callable[..., KabarinProcess],
    cloud: Fake,  # noqa: F811
    zenziva: Fake,  # noqa: F811
) -> None:
    CLOUD_FAILURES["62" + PHONE_DIGITS] = (400, 131026)  # not a WhatsApp user
    sinks = {
        "wa": {"type": "whatsapp", **cloud_block(cloud.url)},
        "sms": {"type": "sms", **zenziva_block(zenziva.url)},
        "console": {
            "type": "console",
            "template": "untuk {{ contact.name }} {{ contact.phone }} {{ contact.email }}",
        },
    }
    routes = [{"name": "tell", "sinks": ["wa", "console"], "fallback": {"wa": "sms"}}]
    server = make_server(f"sinks: {json.dumps(sinks)}\nroutes: {json.dumps(routes)}\n", start=False)
    await asyncio.to_thread(server.start)

    def call(method: str, path: str, **kwargs: Any) -> Any:
        r = server.admin(method, path, **kwargs)
        assert r.status_code < 300, r.text
        return r.json() if r.content else None

    contact = {"name": "Siti", "phone": "0812-3456-7890", "email": "siti@toko.id"}
    await asyncio.to_thread(call, "PUT", "/contacts/OID-77", json=contact)
    push = {
        "method": "shipped_packages",
        "data": [{"order_id": "OID-77", "shipped_at": "2024-05-05 10:00:00"}],
    }
    await asyncio.to_thread(server.ingest, push)

    async def deliveries() -> dict[str, dict[str, Any]]:
        items = await asyncio.to_thread(call, "GET", "/deliveries", params={"order_id": "OID-77"})
        return {d["sink"]: d for d in items["items"]}

    async def fallen_back() -> dict[str, dict[str, Any]] | None:
        found = await deliveries()
        sent = [found.get(sink, {}).get("state") for sink in ("sms", "console")]
        # the console line is written when it is sent
        return found if sent == ["delivered", "delivered"] else None

    found = await eventually(fallen_back, within=15, explain=server.output)

    wa, sms = found["wa"], found["sms"]
    assert wa["state"] == "dead" and "131026" in wa["last_error"]
    assert (sms["fallback_of"], wa["fallback_of"]) == (wa["id"], None)
    assert len(cloud.received) == 1
    assert [body["to"] for _, body in zenziva.received] == ["62" + PHONE_DIGITS]
    assert "Pesanan OID-77" in zenziva.received[0][1]["message"]

    # Replayed and dead again: no second fallback.
    await asyncio.to_thread(call, "POST", f"/deliveries/{wa['id']}/replay")

    async def replay_ended() -> bool:
        wa = (await deliveries())["wa"]
        return wa["state"] == "dead" and wa["attempts"] == 1 and len(cloud.received) == 2

    await eventually(replay_ended, within=15, explain=server.output)
    assert len(await deliveries()) == 3 and len(zenziva.received) == 1

    attempts = []
    for d in found.values():
        detail = await asyncio.to_thread(call, "GET", f"/deliveries/{d['id']}")
        attempts += [a.get("error") or "" for a in detail["attempts"]]
    output = server.output()
    assert "untuk Siti +62812" in output  # the console sink wrote its line, masked
    for text in (output, *attempts):
        assert PHONE_DIGITS not in text and "3456-7890" not in text
        assert "siti@toko.id" not in text
