"""Push sources, found once per process through the ``kabarin.sources`` entry-point group.

KiriminAja is registered in Kabarin's own ``pyproject.toml`` exactly like a third-party package
registers its own, so there is one way in::

    [project.entry-points."kabarin.sources"]
    biteship = "kabarin_biteship:BiteshipSource"

The entry point names a class (or a factory) called with no arguments; the object it gives must
be a `PushSource` whose ``name`` is the entry point's name. Two sources with the same name: the
built-in one wins (a plugin cannot replace ``kiriminaja`` by accident); between two third-party
ones, the first found wins. A plugin that cannot be loaded, or gives something else, is logged
and left out: the other sources keep working.

KiriminAja is reached at ``receiver.path``; every other configured source at its own
``sources.<name>.path`` (`source_paths`).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType
from typing import TYPE_CHECKING

from gateway.sources.base import PushSource

if TYPE_CHECKING:
    from gateway.config import Config

__all__ = [
    "DEFAULT_SOURCE",
    "GROUP",
    "configured_sources",
    "get_source",
    "load_sources",
    "source_paths",
]

log = logging.getLogger("kabarin.sources")

GROUP = "kabarin.sources"
DEFAULT_SOURCE = "kiriminaja"
"""The source at ``receiver.path``; what the log entries written before sources existed were."""
_BUILT_IN_PACKAGE = "gateway"


@functools.cache
def load_sources() -> Mapping[str, PushSource]:
    """Every installed source by its name (loaded on the first call only)."""
    found: dict[str, tuple[EntryPoint, PushSource]] = {}
    for ep in entry_points(group=GROUP):
        try:
            source = ep.load()()
        except Exception as exc:  # one broken plugin must not take the others down
            log.error("push source %r (%s) cannot be loaded: %s", ep.name, ep.value, exc)
            continue
        if not isinstance(source, PushSource) or source.name != ep.name:
            log.error(
                "push source %r (%s) ignored: it must build a PushSource named %r",
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
                "two push sources named %r: using %s, ignoring %s",
                ep.name,
                kept.value,
                dropped.value,
            )
            if not take:
                continue
        found[ep.name] = (ep, source)
    return MappingProxyType({name: source for name, (_, source) in sorted(found.items())})


def _is_built_in(ep: EntryPoint) -> bool:
    return ep.module.split(".", 1)[0] == _BUILT_IN_PACKAGE


def get_source(name: str) -> PushSource:
    """The installed source `name`; `LookupError` naming the installed ones when there is none
    (a log entry of a source since uninstalled fails, and waits for ``kabarin reprocess``)."""
    sources = load_sources()
    try:
        return sources[name]
    except KeyError:
        known = ", ".join(sources) or "none"
        raise LookupError(f"no push source {name!r} is installed (installed: {known})") from None


def configured_sources(config: Config) -> list[PushSource]:
    """The sources a configuration receives pushes from: KiriminAja first, then the others."""
    return [get_source(name) for name in (DEFAULT_SOURCE, *config.sources)]


def source_paths(config: Config) -> dict[str, str]:
    """Path → the name of the source POSTed to there: KiriminAja at ``receiver.path``, every
    other configured source at its own ``path``."""
    paths = {config.receiver.path: DEFAULT_SOURCE}
    paths.update({block.path: name for name, block in config.sources.items()})
    return paths
