"""The sinks as an operator sees them (queue, circuit, switch), switching one back on, and the
one rule for a sink name the configuration does not have."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from gateway.errors import UnknownSink

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.runtime import Runtime

__all__ = [
    "SinkStatus",
    "enable_sink",
    "require_sink",
    "sink_filter_matched",
    "sink_statuses",
]


class SinkStatus(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    type: str
    pending: int
    dead: int
    disabled: str | None
    """Why the sink is switched off (e.g. the peer answered 410 Gone), if it is."""
    circuit: str


async def sink_statuses(rt: Runtime) -> list[SinkStatus]:
    counts = {c.sink: c for c in await rt.store.sink_counts()}
    disabled = await rt.store.disabled_sinks()
    items = []
    for name, config in rt.config.sinks.items():
        c = counts.get(name)
        items.append(
            SinkStatus(
                name=name,
                type=str(type(config).__struct_config__.tag),
                pending=c.pending if c else 0,
                dead=c.dead if c else 0,
                disabled=disabled.get(name),
                circuit=rt.circuit_state(name),
            )
        )
    return items


def require_sink(config: Config, name: str) -> None:
    """`UnknownSink` unless the configuration has a sink named `name`."""
    if name not in config.sinks:
        raise UnknownSink(name, config.sinks)


def sink_filter_matched(config: Config, sink: str | None, matched: int) -> None:
    """A sink filter that matched nothing because no such sink is configured is a typo, not
    "nothing there": `UnknownSink`. One that matched something is never refused (a sink taken
    out of the file may still have deliveries)."""
    if matched == 0 and sink is not None:
        require_sink(config, sink)


async def enable_sink(rt: Runtime, name: str) -> SinkStatus:
    """Switch a sink that was switched off (a 410 Gone, say) back on, and wake the dispatcher
    for its waiting deliveries; `UnknownSink` if it is not configured."""
    require_sink(rt.config, name)
    await rt.store.enable_sink(name)
    rt.wake_dispatcher()
    return next(s for s in await sink_statuses(rt) if s.name == name)
