"""Per-sink controls shared by every replica (`gateway.store.shared.SinkControlStore`): the
rate limit's next free slot and the circuit breaker, in ``sink_controls`` rows.

Each decision is one atomic statement, or (a half-open circuit's probe) one short transaction
holding the sink's row, so every replica sees one budget and one circuit per sink.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from gateway.store.postgres import sql
from gateway.store.postgres.rows import Conn
from gateway.store.shared import CircuitGate

__all__ = [
    "circuit_admit",
    "circuit_opens_in",
    "circuit_record",
    "circuit_release_probe",
    "defer_rate_slot",
    "take_rate_slot",
]


async def take_rate_slot(
    conn: Conn, sink: str, *, interval: float, burst: int, max_wait: float, now: datetime
) -> float | None:
    params = {
        "sink": sink,
        "now": now,
        "interval": interval,
        "ahead": (burst - 1) * interval,
        "max_wait": max_wait,
    }
    row = await (await conn.execute(sql.TAKE_RATE_SLOT, params)).fetchone()
    return None if row is None else max(0.0, float(row[0]))


async def defer_rate_slot(conn: Conn, sink: str, *, interval: float, now: datetime) -> float:
    params = {"sink": sink, "now": now, "interval": interval}
    row = await (await conn.execute(sql.DEFER_RATE_SLOT, params)).fetchone()
    return 0.0 if row is None else max(0.0, float(row[0]))


async def circuit_opens_in(conn: Conn, sink: str, *, now: datetime) -> float:
    row = await (await conn.execute(sql.CIRCUIT_OPENS_IN, {"sink": sink, "now": now})).fetchone()
    return 0.0 if row is None else max(0.0, float(row[0]))


async def circuit_admit(conn: Conn, sink: str, *, now: datetime, probe_lease: float) -> CircuitGate:
    row = await (await conn.execute(sql.CIRCUIT_OF, (sink,))).fetchone()
    if row is None or row[0] is None:
        return CircuitGate(allowed=True)  # closed: a read, no lock
    async with conn.transaction():
        await conn.execute(sql.ENSURE_SINK_CONTROLS, (sink,))
        row = await (await conn.execute(sql.LOCK_CIRCUIT, (sink,))).fetchone()
        open_until, probe_until = row if row is not None else (None, None)
        if open_until is None:
            return CircuitGate(allowed=True)
        if open_until > now:
            return CircuitGate(allowed=False, opens_in=(open_until - now).total_seconds())
        if probe_until is not None and probe_until > now:
            return CircuitGate(allowed=False)  # another replica's probe is out
        await conn.execute(sql.TAKE_PROBE, (now + timedelta(seconds=probe_lease), sink))
        return CircuitGate(allowed=True, probe=True)


async def circuit_record(
    conn: Conn,
    sink: str,
    *,
    ok: bool,
    now: datetime,
    threshold: int,
    cooldown: float,
    max_cooldown: float,
) -> Literal["closed", "half-open", "open"]:
    if ok:
        await conn.execute(sql.CIRCUIT_SUCCESS, (sink,))
        return "closed"
    params = {
        "sink": sink,
        "now": now,
        "threshold": threshold,
        "cooldown": cooldown,
        "max_cooldown": max_cooldown,
    }
    row = await (await conn.execute(sql.CIRCUIT_FAILURE, params)).fetchone()
    open_until = None if row is None else row[0]
    if open_until is None:
        return "closed"
    return "open" if open_until > now else "half-open"


async def circuit_release_probe(conn: Conn, sink: str) -> None:
    await conn.execute(sql.RELEASE_PROBE, (sink,))
