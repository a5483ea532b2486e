"""Sink kinds, found once per process through the ``kabarin.sinks`` entry-point group.

Built-in kinds are registered in Kabarin's own ``pyproject.toml`` exactly like a third-party
package registers its own, so there is one way in::

    [project.entry-points."kabarin.sinks"]
    sms-acme = "kabarin_acme.sink:AcmeSink"

The entry point's name is the ``type:`` of a sink block, and must be its config struct's tag.
Two kinds with the same name: the built-in one wins (a plugin cannot replace ``webhook``
by accident); between two third-party ones, the first found wins. Either way it is logged.

A kind written before `Sink.writes_to_customer` existed, and so without it, is given
``writes_to_customer = False`` when loaded: its sends are at least once and in its own
``language``, as they always were. A kind without `check` (`sinks.base.Checkable`) is fine:
``kabarin check`` renders its templates and asks nothing more of it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import Any, cast

from sinks.base import Sink, SinkConfig, SinkDeps

__all__ = ["GROUP", "build_sinks", "kind_of", "load_sink_types"]

log = logging.getLogger("kabarin.sinks")

GROUP = "kabarin.sinks"
_BUILT_IN_PACKAGE = "sinks"


@functools.cache
def load_sink_types() -> Mapping[str, type[Sink]]:
    """Every installed sink kind by its ``type`` name (loaded on the first call only)."""
    found: dict[str, tuple[EntryPoint, type[Sink]]] = {}
    for ep in entry_points(group=GROUP):
        try:
            kind: type[Sink] = ep.load()
        except Exception as exc:  # one broken plugin must not take the built-in sinks down
            log.error("sink kind %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
            continue
        struct = getattr(getattr(kind, "config_type", None), "__struct_config__", None)
        if struct is None or struct.tag != ep.name:
            log.error(
                "sink kind %r (%s) ignored: its config_type must be a SinkConfig with tag=%r",
                ep.name,
                ep.value,
                ep.name,
            )
            continue
        if ep.name in found:
            first = found[ep.name][0]
            take = _is_built_in(ep) and not _is_built_in(first)
            kept, dropped = (ep, first) if take else (first, ep)
            log.warning(
                "two sink kinds named %r: using %s, ignoring %s", ep.name, kept.value, dropped.value
            )
            if not take:
                continue
        if not hasattr(kind, "writes_to_customer"):
            log.info("sink kind %r (%s) does not say writes_to_customer: False", ep.name, ep.value)
            cast(Any, kind).writes_to_customer = False
        found[ep.name] = (ep, kind)
    return MappingProxyType({name: kind for name, (_, kind) in sorted(found.items())})


def _is_built_in(ep: EntryPoint) -> bool:
    return ep.module.split(".", 1)[0] == _BUILT_IN_PACKAGE


def kind_of(config: SinkConfig) -> str:
    """A sink block's ``type``."""
    return str(type(config).__struct_config__.tag)


def build_sinks(configs: Mapping[str, SinkConfig], deps: SinkDeps) -> dict[str, Sink]:
    """One sink object per configured block, all sharing `deps`."""
    kinds = load_sink_types()
    return {
        name: kinds[kind_of(config)].build(name, config, deps) for name, config in configs.items()
    }
