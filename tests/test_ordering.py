"""The dispatcher's in-process ordering lanes (`gateway.delivery.ordering.OrderLanes`)."""

from __future__ import annotations

import asyncio

from gateway.delivery.ordering import OrderLanes


async def test_one_orders_deliveries_to_one_sink_go_one_after_the_other() -> None:
    lanes = OrderLanes()
    ran: list[str] = []
    first_in = asyncio.Event()

    async def send(name: str, shop: str) -> None:
        async with lanes.hold("wa", shop, "OID-7"):
            ran.append(f"{name} starts")
            first_in.set()
            await asyncio.sleep(0.01)
            ran.append(f"{name} ends")

    first = asyncio.create_task(send("first", "toko-a"))
    await first_in.wait()
    await asyncio.gather(first, send("second", "toko-a"))
    assert ran == ["first starts", "first ends", "second starts", "second ends"]
    assert len(lanes) == 0


async def test_two_shops_orders_with_one_id_do_not_wait_for_each_other() -> None:
    lanes = OrderLanes()
    release = asyncio.Event()
    b_sent = asyncio.Event()

    async def a_held() -> None:
        async with lanes.hold("wa", "toko-a", "OID-7"):
            await release.wait()

    async def b_sends() -> None:
        async with lanes.hold("wa", "toko-b", "OID-7"):
            b_sent.set()

    holding = asyncio.create_task(a_held())
    await asyncio.sleep(0)
    # Toko B's order OID-7 goes while Toko A's (another order, the same id) holds its lane.
    await asyncio.wait_for(b_sends(), timeout=5)
    assert b_sent.is_set() and not holding.done()
    release.set()
    await holding
    assert len(lanes) == 0
