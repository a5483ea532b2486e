"""The running parts of one Kabarin process, built once and shared by every entry point.

`open_runtime` opens the store, the shared HTTP client and the sinks, and starts the stages the
process runs (the intake, the dispatcher; the pull tracker and the digests beside the
intake). On a store several replicas share, new work any of them commits wakes this process's
stages. The web app (`gateway.app`), the admin API, the receiver and the command line all use
a `Runtime`; none of them imports another to get one.
"""

from __future__ import annotations

import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway import metrics
from gateway.config import Config
from gateway.contacts import ContactLookup, ContactResolver
from gateway.digests.runner import Digests
from gateway.dispatcher import Dispatcher
from gateway.insights.estimates import estimate_for
from gateway.intake import Backlog, Intake
from gateway.redaction import Redactor, use_log_secrets
from gateway.retention import Retention
from gateway.routing import Router
from gateway.shops import Shops
from gateway.sources.base import Tracked
from gateway.sources.kiriminaja.pull import PullTracker, ShopLine
from gateway.sources.registry import DEFAULT_SOURCE, get_source
from gateway.store import Store, open_store
from gateway.store.shared import Notifier
from gateway.templating import Templates
from sinks.base import Sink, SinkDeps
from sinks.http import make_http_client
from sinks.registry import build_sinks

__all__ = ["Runtime", "build_intake", "build_tracker", "collect_secrets", "open_runtime"]

log = logging.getLogger("kabarin")


@dataclass
class Runtime:
    """Everything a request handler or a command needs, built once per process."""

    config: Config
    store: Store
    router: Router
    templates: Templates
    sinks: dict[str, Sink]
    dispatcher: Dispatcher | None = None
    intake: Intake | None = None
    retention: Retention | None = None
    tracker: PullTracker | None = None
    """The pull tracker, running beside the intake when ``pull.enabled``."""
    digests: Digests | None = None
    """Sends the configured digests, beside the intake (`gateway.digests`)."""
    redactor: Redactor = field(default_factory=lambda: Redactor(()))
    """Masks the configuration's secrets in what is logged."""
    backlog: Backlog = field(default_factory=Backlog)
    receiver_trouble: metrics.StoreTrouble = field(
        default_factory=lambda: metrics.StoreTrouble(
            logging.getLogger("kabarin.receiver"), "receiver"
        )
    )
    """A store that refuses every push is logged once, not once per push."""
    sink_deps: SinkDeps = field(default_factory=SinkDeps)
    """What every sink is built with (the shared HTTP client, the contacts reader)."""
    config_path: Path | None = None
    """The file the configuration came from: what a reload reads again."""
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When the configuration in use was loaded (at start, or by the last good reload)."""
    shops: Shops = field(init=False)
    """The configured shops: which one a push's token is, their zones and keys."""
    timezone: ZoneInfo = field(init=False)

    def __post_init__(self) -> None:
        self._derive()

    def _derive(self) -> None:
        self.shops = Shops.from_config(self.config)
        self.timezone = self.config.receiver.tz

    def apply(
        self,
        *,
        config: Config,
        router: Router,
        sinks: dict[str, Sink],
        templates: Templates,
        redactor: Redactor,
        now: datetime,
    ) -> None:
        """Use a reloaded configuration from now on, in every stage this process runs."""
        self.config, self.router, self.sinks = config, router, sinks
        self.templates, self.redactor, self.loaded_at = templates, redactor, now
        self._derive()
        use_log_secrets(redactor)
        if self.intake is not None:
            self.intake.reconfigure(router=router, timezone=self.timezone, zones=self.shops.zones)
        if self.dispatcher is not None:
            self.dispatcher.reconfigure(
                sinks=sinks, retry=config.retry, templates=templates, redactor=redactor
            )
        if self.digests is not None:
            self.digests.reconfigure(config)

    async def close_sinks(self) -> None:
        for sink in self.sinks.values():
            await sink.aclose()

    def wake_intake(self) -> None:
        if self.intake is not None:
            self.intake.wake()

    def wake_dispatcher(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def circuit_state(self, sink: str) -> str:
        return self.dispatcher.circuit_state(sink) if self.dispatcher is not None else "n/a"


def collect_secrets(config: Config, sinks: dict[str, Sink]) -> list[str]:
    """Every secret to mask: the configuration's and each built sink's own."""
    found = set(config.secrets)
    for sink in sinks.values():
        found.update(sink.secrets())
    return sorted(found)


def build_intake(runtime: Runtime) -> Intake:
    """An intake over the runtime's store and routes that wakes its dispatcher (if any)."""
    return Intake(
        store=runtime.store,
        router=runtime.router,
        timezone=runtime.timezone,
        batch=runtime.config.intake.batch,
        poll_interval=float(runtime.config.dispatcher.poll_interval),
        on_stored=runtime.wake_dispatcher,
        backlog=runtime.backlog,
        zones=runtime.shops.zones,
    )


def build_tracker(runtime: Runtime) -> PullTracker:
    """A pull tracker over the runtime's store and shared HTTP client that wakes its intake:
    each shop's orders asked about with that shop's key, at its rate."""
    config, http = runtime.config, runtime.sink_deps.http
    if http is None:
        raise RuntimeError("the runtime has no HTTP client")
    source = get_source(DEFAULT_SOURCE)  # the pull tracker reads KiriminAja's tracking answers
    if not isinstance(source, Tracked):
        raise RuntimeError(f"push source {source.name!r} has no tracking API")
    lines = {
        shop.id: ShopLine(
            client=source.tracking_client(shop, http),
            calls_per_second=shop.pull_rate,
            timezone=shop.timezone,
        )
        for shop in runtime.shops
    }
    first = next(iter(lines.values()))
    return PullTracker(
        store=runtime.store,
        client=first.client,
        config=config.pull,
        timezone=runtime.timezone,
        wake_intake=runtime.wake_intake,
        shops=lines,
    )


async def open_runtime(
    config: Config,
    stack: AsyncExitStack,
    *,
    router: Router | None = None,
    dispatcher: bool,
    intake: bool = False,
    config_path: str | Path | None = None,
) -> Runtime:
    """Open the store, the HTTP client, the sinks and the stages asked for.

    Everything opened is registered on `stack`, which closes it in reverse order (the stages
    stop before the store closes).
    """
    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    stack.push_async_callback(store.close)
    client = make_http_client()
    stack.push_async_callback(client.aclose)
    deps = SinkDeps(http=client, contacts=store)
    sinks = build_sinks(config.sinks, deps)
    templates = Templates.for_config(config)
    redactor = Redactor(collect_secrets(config, sinks))
    use_log_secrets(redactor)
    runtime = Runtime(
        config=config,
        store=store,
        router=router or Router.from_config(config),
        templates=templates,
        sinks=sinks,
        redactor=redactor,
        sink_deps=deps,
        config_path=Path(config_path) if config_path is not None else None,
    )
    stack.push_async_callback(runtime.close_sinks)  # the sinks in use then, after a reload too
    if dispatcher:
        looked_up = config.contacts.lookup
        lookup = ContactLookup(looked_up, client) if looked_up is not None else None
        runtime.dispatcher = Dispatcher(
            store=store,
            sinks=sinks,
            templates=templates,
            retry=config.retry,
            config=config.dispatcher,
            redactor=redactor,
            contacts=ContactResolver(lookup),
            # The router in use when a delivery ends: a reload's routes name the fallbacks.
            fallbacks=lambda delivery: runtime.router.fallback(delivery),
            timezone=config.receiver.tz,
            estimates=lambda order_id, shop: estimate_for(store, order_id, shop=shop),
        )
        await runtime.dispatcher.start()
        stack.push_async_callback(
            runtime.dispatcher.stop, float(config.dispatcher.shutdown_timeout)
        )
    metrics.CONFIG_RELOAD_SUCCESSFUL.set(1)
    metrics.CONFIG_RELOAD_SUCCESS_TIME.set(runtime.loaded_at.timestamp())
    await runtime.backlog.recount(store)
    if intake:
        runtime.intake = build_intake(runtime)
        await runtime.intake.start()
        stack.push_async_callback(runtime.intake.stop)
        # Where the intake runs, so one process prunes.
        runtime.retention = Retention.from_config(store, config.retention)
        await runtime.retention.start()
        stack.push_async_callback(runtime.retention.stop)
        # Where the intake runs, so one process of a deployment looks (the store's claim of
        # each period keeps replicas from sending one twice).
        runtime.digests = Digests(store=store, config=config, on_sent=runtime.wake_dispatcher)
        await runtime.digests.start()
        stack.push_async_callback(runtime.digests.stop)
        if config.pull.enabled:
            # Its answers wait in the log for an intake: it runs beside one.
            runtime.tracker = build_tracker(runtime)
            await runtime.tracker.start()
            stack.push_async_callback(runtime.tracker.stop)
    if isinstance(store, Notifier):
        # Work committed by any replica (a push another one took in, deliveries its intake
        # made, a replay) wakes this one's stages at once; their polling stays the fallback.
        await store.on_notify("pushes", runtime.wake_intake)
        await store.on_notify("deliveries", runtime.wake_dispatcher)
    return runtime
