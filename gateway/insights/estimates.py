"""When a shipped parcel will most likely arrive, from the shop's own history.

For a shipped order that is neither delivered nor returned, `estimate_for` answers
``{earliest, latest, basis}``:

- ``history``: earliest and latest are the shipping time plus the p50 and p90 (exact
  nearest-rank) transit time of the shop's own delivered orders of that courier and product,
  to that destination city when it has at least 20 of them, else to every destination; used
  when there are at least 20 (`gateway.store.facts.MIN_SAMPLES`). ``samples`` says how many,
  ``destination`` which city (``None``: every destination).
- ``kiriminaja``: with fewer, KiriminAja's own estimate from its tracking API (``estimation``,
  e.g. ``2-3`` days): the shipping time plus 2 and 3 days.

``None`` when neither exists, or the order is not shipped, already delivered or returned.

The transit histories are kept for `HISTORY_TTL` seconds (`TransitHistories`): counting a
shop's deliveries of a courier and product is linear in them, and its percentiles hardly move
in minutes, so an estimate uses a history at most 5 minutes old. `clear_histories` forgets them.
"""

from __future__ import annotations

import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from gateway.events import DEFAULT_SHOP
from gateway.store.facts import MIN_SAMPLES, InsightsStore, OrderFacts, TransitHistory

__all__ = [
    "HISTORY_TTL",
    "Estimate",
    "TransitHistories",
    "clear_histories",
    "estimate_for",
    "estimate_from",
]

Basis = Literal["history", "kiriminaja"]


class Estimate(msgspec.Struct, frozen=True, kw_only=True):
    """When a shipped parcel is expected: between `earliest` and `latest`."""

    earliest: datetime
    latest: datetime
    basis: Basis
    """``history`` (the shop's own deliveries) or ``kiriminaja`` (its tracking API's estimate)."""
    samples: int | None = None
    """``history``: how many deliveries the percentiles are of."""
    destination: str | None = None
    """``history``: the destination city they went to (``None``: any destination)."""
    estimation: str | None = None
    """``kiriminaja``: its estimate as it wrote it, e.g. ``2-3`` (days)."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (times as ISO 8601), the fields that apply."""
        out: dict[str, Any] = {
            "earliest": self.earliest.isoformat(),
            "latest": self.latest.isoformat(),
            "basis": self.basis,
        }
        if self.basis == "history":
            out["samples"] = self.samples
            out["destination"] = self.destination
        else:
            out["estimation"] = self.estimation
        return out


def _open(facts: OrderFacts | None) -> bool:
    return (
        facts is not None
        and facts.shipped_at is not None
        and facts.delivered_at is None
        and facts.returned_at is None
    )


def estimate_from(facts: OrderFacts, history: TransitHistory | None) -> Estimate | None:
    """The estimate of an order from its facts and its courier and product's transit history
    (`InsightsStore.transit_history`)."""
    shipped = facts.shipped_at
    if not _open(facts) or shipped is None:
        return None
    if (
        history is not None
        and history.samples >= MIN_SAMPLES
        and history.p50 is not None
        and history.p90 is not None
    ):
        return Estimate(
            earliest=shipped + timedelta(seconds=history.p50),
            latest=shipped + timedelta(seconds=history.p90),
            basis="history",
            samples=history.samples,
            destination=history.destination or None,
        )
    if facts.est_min_days is not None and facts.est_max_days is not None:
        return Estimate(
            earliest=shipped + timedelta(days=facts.est_min_days),
            latest=shipped + timedelta(days=facts.est_max_days),
            basis="kiriminaja",
            estimation=facts.estimation,
        )
    return None


HISTORY_TTL = 300.0
"""Seconds a transit history is used for before it is read again."""
HISTORY_CACHE_SIZE = 4096
"""Transit histories kept per store, the least recently used forgotten first."""

_Key = tuple[str, str, str, str]
"""(shop, courier, product, destination)."""


class TransitHistories:
    """Transit histories read from each store, kept `ttl` seconds (of `clock`, monotonic) and
    at most `size` per store, least recently used forgotten first. Stores are held weakly: a
    closed and collected store's histories go with it."""

    def __init__(
        self,
        *,
        ttl: float = HISTORY_TTL,
        size: int = HISTORY_CACHE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self._clock = clock
        self._stores: weakref.WeakKeyDictionary[
            InsightsStore, OrderedDict[_Key, tuple[float, TransitHistory]]
        ] = weakref.WeakKeyDictionary()

    async def get(
        self, store: InsightsStore, *, shop: str, courier: str, product: str, destination: str
    ) -> TransitHistory:
        """`store.transit_history` of these, read at most `ttl` seconds ago."""
        kept = self._stores.get(store)
        if kept is None:
            kept = self._stores[store] = OrderedDict()
        key = (shop, courier, product, destination)
        now = self._clock()
        cached = kept.get(key)
        if cached is not None and cached[0] > now:
            kept.move_to_end(key)
            return cached[1]
        history = await store.transit_history(
            shop=shop, courier=courier, product=product, destination=destination
        )
        kept[key] = (now + self.ttl, history)
        kept.move_to_end(key)
        while len(kept) > self.size:
            kept.popitem(last=False)
        return history

    def clear(self) -> None:
        """Forget every history: the next estimates read them again."""
        self._stores.clear()


HISTORIES = TransitHistories()
"""The histories `estimate_for` reads through."""


def clear_histories() -> None:
    """Forget the transit histories kept (`HISTORIES`), e.g. after history was changed and
    estimates must show it at once."""
    HISTORIES.clear()


async def estimate_for(
    store: InsightsStore, order_id: str, *, shop: str = DEFAULT_SHOP
) -> Estimate | None:
    """The estimate of a shop's order (see the module doc); ``None`` when there is none. Its
    transit history may be up to `HISTORY_TTL` seconds old (`HISTORIES`)."""
    facts = await store.order_facts(order_id, shop=shop)
    if facts is None or not _open(facts):
        return None
    history = None
    if facts.courier and facts.product:
        history = await HISTORIES.get(
            store,
            shop=shop,
            courier=facts.courier,
            product=facts.product,
            destination=facts.destination,
        )
    return estimate_from(facts, history)
