"""Sample events: what `kabarin check` renders every template with (`gateway.check`).

Each push source brings its own (`gateway.sources.base.PushSource`): `sample_events`, realistic
events with every detail filled, and `minimal_events`, the event of each method's shortest form;
`sample_contact` is the customer they go to, `sample_estimate` the parcel's delivery estimate
(``estimate`` in a template: `gateway.insights.estimates`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from gateway.events import Contact, Event
from gateway.insights.estimates import Estimate
from gateway.sources.base import PushSource
from gateway.sources.registry import load_sources

__all__ = ["minimal_events", "sample_contact", "sample_estimate", "sample_events"]


def sample_events(sources: Iterable[PushSource] | None = None) -> list[Event]:
    """Each source's realistic events, every detail filled (`PushSource.sample_events`):
    those of `sources`, else of every installed source."""
    return [e for source in _sources(sources) for e in source.sample_events()]


def minimal_events(sources: Iterable[PushSource] | None = None) -> list[tuple[Event, str]]:
    """The event of each method's shortest form, from each of `sources` (else every installed
    one), with a label naming it: what a template meets when a source sends nothing beyond
    what it guarantees."""
    return [pair for source in _sources(sources) for pair in source.minimal_events()]


def _sources(sources: Iterable[PushSource] | None) -> Iterable[PushSource]:
    return load_sources().values() if sources is None else sources


def sample_contact(event: Event) -> Contact:
    """The customer of a sample order: every field set (name, phone, email)."""
    return Contact(
        order_id=event.order_id, name="Siti Rahayu", phone="+6281229917190", email="siti@toko.id"
    )


def sample_estimate(event: Event) -> Estimate:
    """A sample order's delivery estimate: from the shop's history of 42 deliveries, arriving
    two to three days after the event."""
    return Estimate(
        earliest=event.occurred_at + timedelta(days=2),
        latest=event.occurred_at + timedelta(days=3),
        basis="history",
        samples=42,
        destination="Kota Yogyakarta",
    )
