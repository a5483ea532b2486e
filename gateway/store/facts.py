"""What an order knows (`OrderFacts`) and the insights role (`InsightsStore`).

One row per (shop, order) in ``order_facts``: the courier (KiriminAja's ``service``, e.g.
``jne``), the product (``service_type``, else ``service_name``, e.g. ``REG``), the destination
city, KiriminAja's own estimate (the tracking API's ``estimation``, e.g. ``2-3`` days) and the
time of each stage. The intake fills it in the same commit as the events it stores, and a
migration rebuilds it from the events of a store that had none. The merge rule is here, once,
for both backends:

- a stage's time is the earliest any event of that stage had;
- courier, product, destination and estimation: the latest non-empty value wins (latest in
  arrival order: the order events are stored in).

Stages, by event status:

    created    processed, validated
    shipped    shipped, picked_up, in_transit
    delivered  delivered
    returned   returning, returned        (the parcel went back to the shop)
    problem    problem, no_driver         (the first problem)
    stuck      stuck                      (the pull tracker's alert: no news for too long)

``transit`` (shipped → delivered) and ``pickup`` (created → shipped) are whole seconds,
computed by the database from the stored times and indexed for the percentiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, Protocol

import msgspec

from gateway.events import DEFAULT_SHOP, Event, Status

__all__ = [
    "BUCKET",
    "COLUMNS",
    "MIN_SAMPLES",
    "STAGES",
    "TEXTS",
    "CourierFigures",
    "InsightsStore",
    "OrderFacts",
    "Tally",
    "TransitHistory",
    "copied_events",
    "estimation_days",
    "facts_from_row",
    "facts_of",
    "fold",
    "locate",
    "merge",
    "nearest_rank",
    "upsert_assignments",
]

STAGES = ("created_at", "shipped_at", "delivered_at", "returned_at", "problem_at", "stuck_at")
"""The stage columns: the earliest time wins."""
TEXTS = ("courier", "product", "destination", "estimation", "est_min_days", "est_max_days")
"""The columns where the latest non-empty value wins (the estimate's days go with its text)."""

MIN_SAMPLES = 20
"""Deliveries to one destination city before its own history is used for an estimate, and
deliveries of a courier and product before history is used at all."""

_STAGE_OF: dict[Status, str] = {
    Status.PROCESSED: "created_at",
    Status.VALIDATED: "created_at",
    Status.SHIPPED: "shipped_at",
    Status.PICKED_UP: "shipped_at",
    Status.IN_TRANSIT: "shipped_at",
    Status.DELIVERED: "delivered_at",
    Status.RETURNING: "returned_at",
    Status.RETURNED: "returned_at",
    Status.PROBLEM: "problem_at",
    Status.NO_DRIVER: "problem_at",
    Status.STUCK: "stuck_at",
}


class OrderFacts(msgspec.Struct, frozen=True, kw_only=True):
    """What is known of one order. Empty text is stored as ``""`` (unknown)."""

    shop: str = DEFAULT_SHOP
    order_id: str
    courier: str = ""
    product: str = ""
    destination: str = ""
    estimation: str | None = None
    """KiriminAja's estimate as it wrote it, e.g. ``2-3`` (days); only one that reads as days."""
    est_min_days: int | None = None
    est_max_days: int | None = None
    created_at: datetime | None = None
    shipped_at: datetime | None = None
    delivered_at: datetime | None = None
    returned_at: datetime | None = None
    problem_at: datetime | None = None
    stuck_at: datetime | None = None


class TransitHistory(msgspec.Struct, frozen=True, kw_only=True):
    """Nearest-rank percentiles of the transit times (seconds) of a shop's deliveries."""

    samples: int
    p50: int | None = None
    p90: int | None = None
    destination: str = ""
    """The destination city they are about; ``""``: every destination."""


class CourierFigures(msgspec.Struct, frozen=True, kw_only=True):
    """A courier and product's raw figures over a window (`InsightsStore.courier_figures`)."""

    courier: str
    product: str
    destination: str | None = None
    shipments: int
    delivered: int
    returned: int
    problems: int
    stuck: int
    promised: int
    """Delivered orders that had KiriminAja's estimate."""
    on_time: int
    """Of those, delivered by the estimate's latest day (shipped + its upper bound in days)."""
    transit_p50: int | None = None
    transit_p90: int | None = None
    pickup_p50: int | None = None
    pickup_p90: int | None = None


_DAYS = re.compile(r"^\s*(\d{1,3})\s*(?:-\s*(\d{1,3}))?\s*(?:hari|days?|d)?\s*$", re.I)


def estimation_days(text: object) -> tuple[int, int] | None:
    """KiriminAja's ``estimation`` (``2-3``, ``1``, ``3-4 hari``) as (earliest, latest) days;
    ``None`` for ``-``, empty, or anything else."""
    if not isinstance(text, str) or (found := _DAYS.match(text)) is None:
        return None
    low = int(found.group(1))
    high = int(found.group(2)) if found.group(2) else low
    return (min(low, high), max(low, high))


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


def facts_of(event: Event) -> OrderFacts:
    """What one event says about its order."""
    details, raw = event.details, event.raw
    courier = _text(details.get("courier")) or _text(details.get("service"))
    courier = courier or _text(raw.get("service"))
    product = _text(details.get("service_type")) or _text(details.get("service_name"))
    estimation = _text(details.get("estimation"))
    days = estimation_days(estimation)
    stage = _STAGE_OF.get(event.status)
    return OrderFacts(
        shop=event.shop,
        order_id=event.order_id,
        courier=courier.lower(),
        product=product,
        destination=_text(details.get("destination_city")),
        estimation=estimation if days else None,
        est_min_days=days[0] if days else None,
        est_max_days=days[1] if days else None,
        **({stage: event.occurred_at} if stage else {}),
    )


COLUMNS = (
    "shop",
    "order_id",
    "courier",
    "product",
    "destination",
    "estimation",
    "est_min_days",
    "est_max_days",
    *STAGES,
)
"""The stored columns of ``order_facts``, in the order the backends write and read them."""


def facts_from_row(row: Sequence[Any], time: Callable[[Any], datetime | None]) -> OrderFacts:
    """A row of `COLUMNS`, its times read by `time`."""
    return OrderFacts(
        shop=row[0],
        order_id=row[1],
        courier=row[2],
        product=row[3],
        destination=row[4],
        estimation=row[5],
        est_min_days=row[6],
        est_max_days=row[7],
        created_at=time(row[8]),
        shipped_at=time(row[9]),
        delivered_at=time(row[10]),
        returned_at=time(row[11]),
        problem_at=time(row[12]),
        stuck_at=time(row[13]),
    )


_decode_event = msgspec.json.Decoder(Event).decode


def copied_events(rows: Sequence[Sequence[Any]], body: int) -> list[Event]:
    """The events of ``events`` rows being copied between stores (`gateway.store.moving`),
    their body at index `body` (JSON text, bytes, or the JSON already read)."""
    out = []
    for row in rows:
        value = row[body]
        if not isinstance(value, str | bytes):
            value = msgspec.json.encode(value)
        out.append(_decode_event(value))
    return out


def merge(old: OrderFacts, new: OrderFacts) -> OrderFacts:
    """`new` (arrived later) over `old`: earliest stage times, latest non-empty texts."""
    changes: dict[str, object] = {}
    for column in STAGES:
        a, b = getattr(old, column), getattr(new, column)
        if b is not None and (a is None or b < a):
            changes[column] = b
    for column in ("courier", "product", "destination"):
        if getattr(new, column):
            changes[column] = getattr(new, column)
    if new.estimation:
        changes.update(
            estimation=new.estimation, est_min_days=new.est_min_days, est_max_days=new.est_max_days
        )
    return msgspec.structs.replace(old, **changes) if changes else old


def fold(events: Iterable[Event]) -> list[OrderFacts]:
    """One `OrderFacts` per (shop, order) of `events`, merged in the order given (arrival)."""
    found: dict[tuple[str, str], OrderFacts] = {}
    for event in events:
        key = (event.shop, event.order_id)
        facts = facts_of(event)
        found[key] = merge(found[key], facts) if key in found else facts
    return list(found.values())


def upsert_assignments(table: str, least: str) -> str:
    """The ``DO UPDATE SET`` of the merge rule, for a backend whose two-argument minimum is
    `least` (``min`` on SQLite, which is NULL when either is; ``LEAST`` on PostgreSQL, which
    skips NULLs): the same rule as `merge`."""
    parts = [
        f"{c} = coalesce({least}({table}.{c}, excluded.{c}), {table}.{c}, excluded.{c})"
        for c in STAGES
    ]
    parts += [
        f"{c} = coalesce(nullif(excluded.{c}, ''), {table}.{c})"
        for c in ("courier", "product", "destination")
    ]
    parts += [
        f"{c} = CASE WHEN excluded.estimation IS NULL THEN {table}.{c} ELSE excluded.{c} END"
        for c in ("estimation", "est_min_days", "est_max_days")
    ]
    return ", ".join(parts)


def nearest_rank(n: int, percent: int) -> int:
    """The 0-based offset of the `percent`-th nearest-rank percentile of `n` sorted values:
    the smallest value with at least `percent`% of the values at or below it."""
    return max(0, -(-n * percent // 100) - 1)


BUCKET = 3600
"""Seconds per bucket of the histograms the scorecards rank in (`Tally`): an hour, as the
``transit_hour`` and ``pickup_hour`` columns count."""

Key = tuple[str, ...]
"""A scorecard row's key: (courier, product) or (courier, product, destination)."""


class Tally:
    """A scorecard's figures as three passes over the window's rows give them, each over an
    index in the order it groups by (no sort): the counts per key (``GROUP BY key``), and the
    histograms of transit and pickup times by hour (``GROUP BY key, transit_hour``).

    The exact nearest-rank percentile is then one indexed read: `locate` names the hour that
    holds rank k and its rank within that hour, and the backend reads that one value with
    ``ORDER BY transit LIMIT 1 OFFSET r`` among the hour's entries of the index."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.counts: dict[Key, list[int]] = {}
        self.histograms: dict[Key, tuple[dict[int, int], dict[int, int]]] = {}

    def add(self, row: Sequence[Any]) -> None:
        """A row: key..., then the seven counts of `CourierFigures` (shipments to on_time)."""
        key: Key = tuple(row[: self.width])
        self.counts[key] = list(row[self.width :])
        self.histograms.setdefault(key, ({}, {}))

    def add_hours(self, which: int, row: Sequence[Any]) -> None:
        """A row of histogram `which` (0: transit, 1: pickup): key..., hour, how many."""
        key: Key = tuple(row[: self.width])
        histogram = self.histograms.setdefault(key, ({}, {}))[which]
        hour = row[self.width]
        histogram[hour] = histogram.get(hour, 0) + row[self.width + 1]

    def figures(self, key: Key, percentiles: dict[str, int | None]) -> CourierFigures:
        shipments, delivered, returned, problems, stuck, promised, on_time = self.counts[key]
        names = dict(zip(("courier", "product", "destination"), key, strict=False))
        return CourierFigures(
            courier=names["courier"],
            product=names["product"],
            destination=names.get("destination"),
            shipments=shipments,
            delivered=delivered,
            returned=returned,
            problems=problems,
            stuck=stuck,
            promised=promised,
            on_time=on_time,
            **percentiles,
        )


def locate(histogram: dict[int, int], percent: int) -> tuple[int, int] | None:
    """The bucket holding the `percent`-th nearest-rank value of a histogram (bucket →
    count), and that value's 0-based rank among the bucket's values; ``None`` when empty."""
    k = nearest_rank(sum(histogram.values()), percent)
    seen = 0
    for bucket in sorted(histogram):
        if k < seen + histogram[bucket]:
            return bucket, k - seen
        seen += histogram[bucket]
    return None


class InsightsStore(Protocol):
    """Order facts and what is read from them: scorecards and transit histories."""

    async def order_facts(self, order_id: str, *, shop: str = DEFAULT_SHOP) -> OrderFacts | None:
        """The facts of one shop's order; ``None`` when no event named it."""

    async def transit_history(
        self, *, shop: str, courier: str, product: str, destination: str = ""
    ) -> TransitHistory:
        """The p50 and p90 transit seconds of the shop's delivered orders of that courier and
        product: of those to `destination` when it is given and has at least `MIN_SAMPLES`
        deliveries, else of every destination."""

    async def courier_figures(
        self,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        by_destination: bool = False,
    ) -> list[CourierFigures]:
        """One row per courier and product (and destination city with `by_destination`) of
        the orders shipped since `since`, of `shops` (``None``: every shop)."""

    async def courier_orders(
        self,
        courier: str,
        *,
        since: datetime,
        shops: Sequence[str] | None = None,
        product: str | None = None,
        limit: int = 200,
    ) -> list[OrderFacts]:
        """The orders of a courier shipped since `since`, newest first, at most `limit`."""
