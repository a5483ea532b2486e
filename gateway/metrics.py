"""Prometheus metrics, in Kabarin's own registry (`REGISTRY`, served at ``/metrics``).

Who updates what: the receiver counts pushes, rejections and events; the dispatcher counts
delivery outcomes, observes latency and sets each sink's circuit state; `refresh_store_gauges`
reads queue depths from the store when ``/metrics`` is scraped.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.kiriminaja.normalise import KNOWN_METHODS, method_name
from gateway.store.base import DeliveryQueue, RetentionStore

__all__ = [
    "CIRCUIT_STATE_VALUES",
    "CONFIG_RELOAD_SUCCESSFUL",
    "CONFIG_RELOAD_SUCCESS_TIME",
    "DELIVERIES",
    "DELIVERIES_DEAD",
    "DELIVERIES_PENDING",
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
    "PULL_LAST_PASS",
    "PUSHES",
    "PUSHES_BY_STATE",
    "PUSH_REJECTIONS",
    "REGISTRY",
    "SINK_CIRCUIT_STATE",
    "STORE_BYTES",
    "method_label",
    "refresh_store_gauges",
    "refresh_store_size",
]

REGISTRY = CollectorRegistry()

PUSHES = Counter(
    "kabarin_pushes_total",
    "Pushes accepted and committed, by push method.",
    ["method"],
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
    "Events stored (repeats not counted), by push method and normalised status.",
    ["method", "status"],
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
    "Delivery outcomes decided by the dispatcher: delivered, retry (scheduled again), dead.",
    ["sink", "outcome"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "kabarin_delivery_latency_seconds",
    "From the event's arrival at Kabarin to its successful delivery, retries included.",
    ["sink"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600),
    registry=REGISTRY,
)
DELIVERIES_PENDING = Gauge(
    "kabarin_deliveries_pending",
    "Deliveries waiting to be sent (pending or in flight), read from the store.",
    ["sink"],
    registry=REGISTRY,
)
DELIVERIES_DEAD = Gauge(
    "kabarin_deliveries_dead",
    "Dead-lettered deliveries, read from the store.",
    ["sink"],
    registry=REGISTRY,
)
SINK_CIRCUIT_STATE = Gauge(
    "kabarin_sink_circuit_state",
    "Circuit breaker of each sink: 0 closed, 1 half-open, 2 open.",
    ["sink"],
    registry=REGISTRY,
)

INTAKE_BACKLOG = Gauge(
    "kabarin_intake_backlog",
    "Push log entries the intake has not taken yet.",
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

STORE_BYTES = Gauge(
    "kabarin_store_bytes",
    "Bytes the store takes (SQLite: the database file and its write-ahead log), read on scrape.",
    registry=REGISTRY,
)
PRUNED = Counter(
    "kabarin_pruned_rows_total",
    "Rows retention removed, by table (pushes, events, deliveries, attempts, rejected).",
    ["table"],
    registry=REGISTRY,
)

PULL_CALLS = Counter(
    "kabarin_pull_calls_total",
    "Tracking API calls of the pull tracker, by outcome (pulled, not_found, try_later).",
    ["outcome"],
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

CIRCUIT_STATE_VALUES = {"closed": 0, "half-open": 1, "open": 2}

_counted_sinks: set[str] = set()


def method_label(method: str) -> str:
    """The ``method`` label: a known method's canonical name, anything else ``other``.

    The method comes from the request body, so using it as it is would let any sender create
    label values without limit.
    """
    name = method_name(method)
    return name if name in KNOWN_METHODS else "other"


async def refresh_store_gauges(store: DeliveryQueue) -> None:
    """Set the pending and dead gauges from `DeliveryQueue.sink_counts` (called on every scrape).

    A sink that no longer has a row is set to 0 rather than keeping its last value.
    """
    counts = await store.sink_counts()
    seen: set[str] = set()
    for row in counts:
        DELIVERIES_PENDING.labels(row.sink).set(row.pending)
        DELIVERIES_DEAD.labels(row.sink).set(row.dead)
        seen.add(row.sink)
    for sink in _counted_sinks - seen:
        DELIVERIES_PENDING.labels(sink).set(0)
        DELIVERIES_DEAD.labels(sink).set(0)
    _counted_sinks.update(seen)


async def refresh_store_size(store: RetentionStore) -> None:
    """Set `STORE_BYTES` from `RetentionStore.size_bytes` (called on every scrape)."""
    STORE_BYTES.set(await store.size_bytes())
