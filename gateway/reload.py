"""Reloading the configuration file without a restart (SIGHUP, the admin API, the dashboard).

A reload reads the file again and checks it exactly as `kabarin check` does. An invalid file is
refused with the same messages, and the configuration in use keeps running. A valid one replaces
the routes, the templates and the sinks for what happens next: events that arrive after it are
routed by the new routes, deliveries already created keep their route and sink, and a send in
flight finishes on the sink it started with. A sink whose block did not change is kept as it is
(with its circuit breaker and rate limiter). Deliveries of a sink that is back in the file are
released at once instead of waiting out the missing-sink delay.

Settings the process cannot change while it runs (where the store is, the push path and body
limit, the server's keep-alive, which stages run and how) are reported as needing a restart when
they differ, and keep their running values until then.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from contextlib import suppress
from datetime import datetime

import msgspec

from gateway import metrics
from gateway.check import validate_file
from gateway.config import Config
from gateway.errors import ConfigError
from gateway.redaction import Redactor
from gateway.routing import Router
from gateway.runtime import Runtime, collect_secrets
from gateway.templating import Templates
from gateway.units import how_many
from sinks.base import Sink
from sinks.registry import build_sinks

__all__ = ["LIVE_SECTIONS", "RESTART_RECEIVER_KEYS", "ReloadResult", "reload"]

log = logging.getLogger("kabarin.reload")

LIVE_SECTIONS = frozenset(
    {"receiver", "shops", "admin", "retry", "sinks", "routes", "tracking_page"}
)
"""Top-level sections a reload applies; any other that differs needs a restart."""
RESTART_RECEIVER_KEYS = ("path", "max_body_bytes", "keep_alive", "timezone")
"""Receiver keys fixed when the server starts: the listening ones, and the zone of naive times,
which every stage (event ids, quiet hours, pulled times) must read the same way."""
_NOT_SETTINGS = frozenset({"base_dir", "secrets", "locations", "targets"})

_lock = asyncio.Lock()


class ReloadResult(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    """The file was valid and is in use now."""
    at: datetime
    problems: list[str] = msgspec.field(default_factory=list)
    """Why it was refused: `kabarin check`'s messages."""
    restart_needed: list[str] = msgspec.field(default_factory=list)
    """Settings that differ in the file but keep their running values until a restart."""
    sinks_added: list[str] = msgspec.field(default_factory=list)
    sinks_changed: list[str] = msgspec.field(default_factory=list)
    sinks_removed: list[str] = msgspec.field(default_factory=list)
    sections_changed: list[str] = msgspec.field(default_factory=list)
    """The other sections applied that differ from the running ones (`LIVE_SECTIONS` but
    ``sinks``, named above one by one): ``routes``, ``tracking_page``..."""
    routes: int = 0


def split_restart_only(running: Config, loaded: Config) -> tuple[Config, list[str]]:
    """`loaded`, with the settings a running process cannot change kept at `running`'s values,
    and the names of those that differ."""
    restart: list[str] = []
    kept: dict[str, object] = {}
    for name in Config.__struct_fields__:
        if name in LIVE_SECTIONS or name in _NOT_SETTINGS:
            continue
        if getattr(running, name) != getattr(loaded, name):
            restart.append(name)
            kept[name] = getattr(running, name)
    receiver_kept: dict[str, object] = {}
    for key in RESTART_RECEIVER_KEYS:
        if getattr(running.receiver, key) != getattr(loaded.receiver, key):
            restart.append(f"receiver.{key}")
            receiver_kept[key] = getattr(running.receiver, key)
    receiver = msgspec.structs.replace(loaded.receiver, **receiver_kept)
    return msgspec.structs.replace(loaded, receiver=receiver, **kept), restart


async def reload(rt: Runtime, *, now: datetime) -> ReloadResult:
    """Read `rt.config_path` again and apply it (see the module doc); never raises for a bad
    file. Concurrent reloads run one after the other."""
    async with _lock:
        result = await _reload(rt, now)
    metrics.CONFIG_RELOAD_SUCCESSFUL.set(1 if result.ok else 0)
    if result.ok:
        metrics.CONFIG_RELOAD_SUCCESS_TIME.set(now.timestamp())
    return result


async def _reload(rt: Runtime, now: datetime) -> ReloadResult:
    if rt.config_path is None:
        problems = ["this process was not started from a configuration file"]
        log.error("configuration reload refused: %s", problems[0])
        return ReloadResult(ok=False, at=now, problems=problems)
    try:
        loaded = await asyncio.to_thread(validate_file, str(rt.config_path))
    except ConfigError as exc:
        problems = [rt.redactor.redact(p) for p in exc.problems]
        log.error(
            "configuration reload refused, %s stays in use: %s\n  %s",
            rt.config_path,
            how_many(len(problems), "problem"),
            "\n  ".join(problems),
        )
        return ReloadResult(ok=False, at=now, problems=problems)

    config, restart = split_restart_only(rt.config, loaded)
    router = Router.from_config(config)
    sinks, fresh = _sinks(rt, config)
    retired = [s for name, s in rt.sinks.items() if sinks.get(name) is not s]
    templates = Templates.for_config(config)
    if templates.same_setup(rt.templates):
        templates = rt.templates  # and its compiled templates with it
    redactor = Redactor(collect_secrets(config, sinks))
    old = set(rt.sinks)
    changed = [
        name
        for name in sorted(LIVE_SECTIONS - {"sinks"})
        if getattr(rt.config, name) != getattr(config, name)
    ]
    rt.apply(
        config=config,
        router=router,
        sinks=sinks,
        templates=templates,
        redactor=redactor,
        now=now,
    )
    for name in fresh:
        # Deliveries put back while the sink was missing (or off the old block) go now.
        await rt.store.release_sink(name, now=now)
    rt.wake_dispatcher()
    released = rt.dispatcher.released if rt.dispatcher is not None else None
    close_when_idle(retired, released, limit=float(config.dispatcher.lease))
    result = ReloadResult(
        ok=True,
        at=now,
        restart_needed=restart,
        sinks_added=sorted(set(sinks) - old),
        sinks_changed=sorted(set(fresh) & old),
        sinks_removed=sorted(old - set(sinks)),
        sections_changed=changed,
        routes=len(config.routes),
    )
    log.info(
        "configuration reloaded from %s: %s, %s (added %s, changed %s, removed %s);"
        " sections changed: %s%s",
        rt.config_path,
        how_many(result.routes, "route"),
        how_many(len(sinks), "sink"),
        _names(result.sinks_added),
        _names(result.sinks_changed),
        _names(result.sinks_removed),
        _names(changed),
        f"; a restart is needed to apply {', '.join(restart)}" if restart else "",
    )
    return result


def _sinks(rt: Runtime, config: Config) -> tuple[dict[str, Sink], set[str]]:
    """The reloaded configuration's sinks: the running object where the block is unchanged, a
    new one otherwise; and the names of the new ones."""
    fresh_configs = {
        name: block for name, block in config.sinks.items() if rt.config.sinks.get(name) != block
    }
    fresh = build_sinks(fresh_configs, rt.sink_deps)
    sinks = {name: fresh.get(name) or rt.sinks[name] for name in config.sinks}
    return sinks, set(fresh)


def close_when_idle(
    sinks: Iterable[Sink],
    released: Callable[[Sink], Awaitable[None]] | None,
    *,
    limit: float,
) -> asyncio.Task[None] | None:
    """Close replaced sinks once no send under way uses them (sends in flight finish on the
    sink they started with), or after `limit` seconds whatever they are doing."""
    retired = list(sinks)
    if not retired:
        return None

    async def close() -> None:
        if released is not None:
            with suppress(TimeoutError):
                async with asyncio.timeout(limit):
                    for sink in retired:
                        await released(sink)
        for sink in retired:
            try:
                await sink.aclose()
            except Exception:
                log.exception("closing a replaced sink failed")

    task = asyncio.get_running_loop().create_task(close(), name="kabarin-close-replaced-sinks")
    _closing.add(task)
    task.add_done_callback(_closing.discard)
    return task


_closing: set[asyncio.Task[None]] = set()


def _names(names: list[str]) -> str:
    return ", ".join(names) if names else "none"
