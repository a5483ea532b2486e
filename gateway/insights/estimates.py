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
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

import msgspec

from gateway.events import DEFAULT_SHOP
from gateway.store.facts import MIN_SAMPLES, InsightsStore, OrderFacts, TransitHistory

__all__ = ["Estimate", "estimate_for", "estimate_from"]

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


async def estimate_for(
    store: InsightsStore, order_id: str, *, shop: str = DEFAULT_SHOP
) -> Estimate | None:
    """The estimate of a shop's order (see the module doc); ``None`` when there is none."""
    facts = await store.order_facts(order_id, shop=shop)
    if facts is None or not _open(facts):
        return None
    history = None
    if facts.courier and facts.product:
        history = await store.transit_history(
            shop=shop, courier=facts.courier, product=facts.product, destination=facts.destination
        )
    return estimate_from(facts, history)
