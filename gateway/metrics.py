"""Prometheus metrics, in Kabarin's own registry (`REGISTRY`, served at ``/metrics``).

Who updates what: the receiver counts pushes, rejections and events; the dispatcher counts
delivery outcomes, observes latency and sets each sink's circuit state; `refresh_store_gauges`
reads queue depths (the deliveries' and the intake's backlog) and the sinks switched off from
the store when ``/metrics`` is scraped, and `refresh_store_ready` pings it then, as ``/readyz``
does. The alerting rules in ``deploy/prometheus/`` name only these metrics (a test checks).

The ``shop`` label is a shop id the configuration named: a push's is the shop whose token it
carried, an event's and a delivery's the shop of the push they came from, so no sender can add
values. A shop removed from the file keeps its series while its deliveries remain.

`StoreTrouble` is how the loops that poll the store (dispatcher, intake, retention, pull
tracker) report a store that keeps failing: one log line per cause, and one when it recovers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.errors import StoreError
from gateway.events import DEFAULT_SHOP
from gateway.sources.base import PushSource
from gateway.store.roles import DeliveryQueue, IngestStore, RetentionStore

__all__ = [
    "CIRCUIT_STATE_VALUES",
    "CONFIG_RELOAD_SUCCESSFUL",
    "CONFIG_RELOAD_SUCCESS_TIME",
    "DELIVERIES",
    "DELIVERIES_DEAD",
    "DELIVERIES_PENDING",
    "DELIVERIES_SUPERSEDED",
    "DELIVERY_LATENCY",
    "EVENTS",
    "EVENTS_DUPLICATE",
    "EVENTS_UNROUTED",
    "INTAKE_BACKLOG",
    "INTAKE_LAG",
    "ORDERS_OPEN",
    "ORDERS_STUCK",
    "PRUNED",
    "PULL_CALLS",
    "PULL_FAILURES",
    "PULL_LAST_PASS",
    "PULL_OLDEST_DUE_AGE",
    "PUSHES",
    "PUSHES_BY_STATE",
    "PUSH_REJECTIONS",
    "REGISTRY",
    "SINK_CIRCUIT_STATE",
    "SINK_DISABLED",
    "STORE_BYTES",
    "STORE_READY",
    "StoreTrouble",
    "method_label",
    "refresh_store_gauges",
    "refresh_store_ready",
    "refresh_store_size",
]

REGISTRY = CollectorRegistry()

PUSHES = Counter(
    "kabarin_pushes_total",
    "Pushes accepted and committed, by push method and shop (configured ids only).",
    ["method", "shop"],
    registry=REGISTRY,
)
PUSH_REJECTIONS = Counter(
    "kabarin_push_rejections_total",
    "Push requests refused (unauthorized, too_large, invalid, store_unavailable).",
    ["reason"],
    registry=REGISTRY,
)
EVENTS = Counter(
    "kabarin_events_total",
    "Events stored (repeats not counted), by push method, normalised status and shop.",
    ["method", "status", "shop"],
    registry=REGISTRY,
)
EVENTS_DUPLICATE = Counter(
    "kabarin_events_duplicate_total",
    "Events received again that were already stored.",
    registry=REGISTRY,
)
EVENTS_UNROUTED = Counter(
    "kabarin_events_unrouted_total",
    "Events that matched no route.",
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "kabarin_deliveries_total",
    "Delivery outcomes decided by the dispatcher: delivered, retry (scheduled again), dead;"
    " by sink and shop.",
    ["sink", "outcome", "shop"],
    registry=REGISTRY,
)
DELIVERIES_SUPERSEDED = Counter(
    "kabarin_deliveries_superseded_total",
    "Deliveries a claim marked superseded (ordering: latest: a status further along went,"
    " or goes, to the sink instead).",
    ["sink", "shop"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "kabarin_delivery_latency_seconds",
    "From the event's arrival at Kabarin to its successful delivery, retries included.",
    ["sink", "shop"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600),
    registry=REGISTRY,
)
DELIVERIES_PENDING = Gauge(
    "kabarin_deliveries_pending",
    "Deliveries waiting to be sent (pending or in flight), by sink and shop, read from the store.",
    ["sink", "shop"],
    registry=REGISTRY,
)
DELIVERIES_DEAD = Gauge(
    "kabarin_deliveries_dead",
    "Dead-lettered deliveries, by sink and shop, read from the store.",
    ["sink", "shop"],
    registry=REGISTRY,
)
SINK_CIRCUIT_STATE = Gauge(
    "kabarin_sink_circuit_state",
    "Circuit breaker of each sink: 0 closed, 1 half-open, 2 open.",
    ["sink"],
    registry=REGISTRY,
)
SINK_DISABLED = Gauge(
    "kabarin_sink_disabled",
    "1 while a sink is switched off (by an operator, or after its destination answered 410"
    " Gone) until it is enabled again; read from the store.",
    ["sink"],
    registry=REGISTRY,
)

INTAKE_BACKLOG = Gauge(
    "kabarin_intake_backlog",
    "Push log entries the intake has not taken yet, read from the store.",
    registry=REGISTRY,
)
INTAKE_LAG = Gauge(
    "kabarin_intake_lag_seconds",
    "Age of the oldest entry in the intake's last batch when it was stored.",
    registry=REGISTRY,
)
PUSHES_BY_STATE = Counter(
    "kabarin_intake_pushes_total",
    "Push log entries the intake finished, by the state it left them in (processed, failed).",
    ["state"],
    registry=REGISTRY,
)

CONFIG_RELOAD_SUCCESSFUL = Gauge(
    "kabarin_config_last_reload_successful",
    "Whether the last configuration reload succeeded (1) or was refused (0).",
    registry=REGISTRY,
)
CONFIG_RELOAD_SUCCESS_TIME = Gauge(
    "kabarin_config_last_reload_success_timestamp_seconds",
    "When the configuration in use was loaded (start-up or the last good reload).",
    registry=REGISTRY,
)

STORE_READY = Gauge(
    "kabarin_store_ready",
    "Whether the store can commit (1) or not (0), as /readyz answers: checked on every scrape.",
    registry=REGISTRY,
)
STORE_BYTES = Gauge(
    "kabarin_store_bytes",
    "Bytes the store takes (SQLite: the database file and its write-ahead log), read on scrape.",
    registry=REGISTRY,
)
PRUNED = Counter(
    "kabarin_pruned_rows_total",
    "Rows retention removed, by table (pushes, events, deliveries, attempts, rejected,"
    " orders: order facts).",
    ["table"],
    registry=REGISTRY,
)

PULL_CALLS = Counter(
    "kabarin_pull_calls_total",
    "Tracking API calls of the pull tracker, by outcome (pulled, not_found, refused, try_later).",
    ["outcome"],
    registry=REGISTRY,
)
PULL_FAILURES = Counter(
    "kabarin_pull_failures_total",
    "Turns of the pull tracker (a pass, or the look for stuck orders) that failed: the store"
    " failing, or a bug; the log says which.",
    registry=REGISTRY,
)
ORDERS_OPEN = Gauge(
    "kabarin_orders_open",
    "Orders the pull tracker follows: no final status yet, and known to KiriminAja.",
    registry=REGISTRY,
)
ORDERS_STUCK = Gauge(
    "kabarin_orders_stuck",
    "Open orders with a stuck alert raised for their current status.",
    registry=REGISTRY,
)
PULL_LAST_PASS = Gauge(
    "kabarin_pull_last_pass_timestamp_seconds",
    "When the pull tracker last finished a pass.",
    registry=REGISTRY,
)
PULL_OLDEST_DUE_AGE = Gauge(
    "kabarin_pull_oldest_due_age_seconds",
    "How long the open order waiting longest for its regular pull has been due without being"
    " asked about (0 when none is due): it grows when the tracker cannot keep up.",
    registry=REGISTRY,
)

CIRCUIT_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}

_counted_sinks: set[str] = set()
_counted_queues: set[tuple[str, str]] = set()
"""(sink, shop) pairs the pending and dead gauges were set for."""


def method_label(method: str, source: PushSource) -> str:
    """The ``method`` label: a method `source` knows by its canonical name, anything else
    ``other``.

    The method comes from the request body, so using it as it is would let any sender create
    label values without limit: each source names its own, a bounded set (`PushSource.methods`).
    """
    name = source.method_name(method)
    return name if name in source.methods else "other"


class _Queues(DeliveryQueue, IngestStore, Protocol):
    """What the scrape reads of the store: the delivery queue and the push log."""


class _Pingable(Protocol):
    async def ping(self, *, now: datetime) -> None: ...


async def refresh_store_gauges(
    store: _Queues, *, sinks: Iterable[str] = (), shops: Iterable[str] = ()
) -> None:
    """Set the pending and dead gauges from `DeliveryQueue.sink_counts` (per sink and shop),
    the switched-off gauge from `DeliveryQueue.disabled_sinks`, and the intake's backlog from
    the push log (called on every scrape): a process that runs no intake (``intake.enabled:
    false``) still takes pushes in and shows how many wait. The switch is the store's, so
    every replica shows a sink another one switched off.

    Every configured sink and shop pair (`sinks`, `shops`) is shown, at 0 when it has no row;
    a pair that no longer has a row is set to 0 rather than keeping its last value.
    """
    INTAKE_BACKLOG.set(await store.count_pending_pushes())
    counts = await store.sink_counts(by_shop=True)
    disabled = await store.disabled_sinks()
    configured = list(sinks)
    seen: set[str] = set(disabled) | set(configured)
    queues = {(sink, shop) for sink in configured for shop in shops}
    zero = queues | _counted_queues
    for row in counts:
        pair = (row.sink, row.shop or DEFAULT_SHOP)
        DELIVERIES_PENDING.labels(*pair).set(row.pending)
        DELIVERIES_DEAD.labels(*pair).set(row.dead)
        seen.add(row.sink)
        queues.add(pair)
        zero.discard(pair)
    for pair in zero:
        DELIVERIES_PENDING.labels(*pair).set(0)
        DELIVERIES_DEAD.labels(*pair).set(0)
    for sink in seen:
        SINK_DISABLED.labels(sink).set(1 if sink in disabled else 0)
    for sink in _counted_sinks - seen:
        SINK_DISABLED.labels(sink).set(0)
    _counted_sinks.update(seen)
    _counted_queues.update(queues)


async def refresh_store_ready(store: _Pingable, *, now: datetime) -> StoreError | None:
    """Ping the store (a one-row commit, see `Store.ping`) and set `STORE_READY`: ``/readyz``
    answers from it, and each scrape calls it so that an alert sees a store that stopped
    committing without anything probing ``/readyz``. Returns the failure, if any."""
    try:
        await store.ping(now=now)
    except StoreError as exc:
        STORE_READY.set(0)
        return exc
    STORE_READY.set(1)
    return None


async def refresh_store_size(store: RetentionStore) -> None:
    """Set `STORE_BYTES` from `RetentionStore.size_bytes` (called on every scrape)."""
    STORE_BYTES.set(await store.size_bytes())


class StoreTrouble:
    """A store failure a loop meets on every turn (a deleted database file fails each claim
    until a restart): each cause logged once while the store keeps failing, however the
    causes alternate (a read and a write of one broken file fail with different words); logged
    once more when the store works again.

    A `StoreError` is logged without its traceback (its text is the cause); anything else
    with it, the first time, since it is a bug rather than the store's state.
    """

    def __init__(self, log: logging.Logger, stage: str) -> None:
        self._log = log
        self._stage = stage
        self._causes: set[str] = set()

    @property
    def failing(self) -> bool:
        """Whether the last store call reported here failed."""
        return bool(self._causes)

    def failed(self, doing: str, exc: BaseException, then: str) -> None:
        """`doing` (``could not claim deliveries``) failed with `exc`; `then` says what the
        loop does next (``trying again every 1s``)."""
        known = isinstance(exc, StoreError)
        cause = str(exc) if known else f"{type(exc).__name__}: {exc}"
        if cause in self._causes:
            self._log.debug("%s: %s: %s (again)", self._stage, doing, cause)
            return
        self._causes.add(cause)
        self._log.error(
            "%s: %s: %s; %s (not logged again until the store works)",
            self._stage,
            doing,
            cause,
            then,
            exc_info=None if known else exc,
        )

    def recovered(self) -> None:
        """The store answered: say so once, if it was failing."""
        if self._causes:
            self._causes.clear()
            self._log.warning("%s: the store works again", self._stage)
