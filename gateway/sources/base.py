"""What a push source is: the protocol every source implements, built in or a plugin.

A source is a service that POSTs shipment updates to Kabarin (KiriminAja is the first). At its
path, the receiver authenticates the request and hands the body to the source's `decode`, the
envelope check: a push goes to the log (recording the source's name), anything else is answered
400 and kept as rejected. The intake later asks the same source to `normalise` the logged body
into `Event`s. Everything after that is the same for every source: routes, sinks, the store.

A source's events are its own to shape (their ``method`` and ``kind`` are its words), but their
``status`` is one of `gateway.events.Status`, and their ids come from `event_identity` with the
source's `name` as namespace, so that two sources never share an id.

Optional: `Paged` reads a range of a logged body's items alone (the push detail pages of the
admin API and the dashboard), and `Tracked` gives the pull tracker a client of the source's
tracking API and reads what the tracker logged.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import msgspec

from gateway.events import Contact, Event

if TYPE_CHECKING:
    import httpx

    from gateway.shops import Shop
    from gateway.sources.kiriminaja.pull import Tracker
    from gateway.store.roles import LoggedPush

__all__ = ["DecodedPush", "Normalised", "Paged", "PushSource", "Tracked"]


class Normalised(msgspec.Struct, frozen=True):
    """What one push (or one log entry) yields: its events, and the recipients it names."""

    events: list[Event]
    contacts: list[Contact]


class DecodedPush(Protocol):
    """A body a source's `decode` accepted."""

    @property
    def method(self) -> str:
        """What kind of update it is, in the source's words: logged, listed, counted."""
        ...

    @property
    def items(self) -> Sequence[Any]:
        """One entry per package (each becomes one event, usually)."""
        ...


@runtime_checkable
class PushSource(Protocol):
    """A push source (see the module doc). Registered under the ``kabarin.sources`` entry
    point group by its `name`; the registry builds it once, with no arguments."""

    name: str
    """Its entry point's name: its key under ``sources:``, what the push log records, and the
    namespace of its events' ids."""
    methods: frozenset[str]
    """The canonical method names counted by name in the metrics' ``method`` label (a bounded
    set: any other method is counted as ``other``)."""
    kinds: frozenset[str]
    """Every value its events' ``kind`` takes (a route matching another is refused)."""

    def decode(self, body: bytes) -> DecodedPush:
        """The envelope check: the decoded push, or `gateway.errors.PushError` (answered 400,
        the body kept as rejected). Lenient inside the items: a dropped update is worse than
        an odd one."""
        ...

    def normalise(
        self, push: DecodedPush, *, received_at: datetime, tz: tzinfo, shop: str
    ) -> Normalised:
        """The events (and contacts) of a push `decode` accepted, for `shop` (the shop whose
        token sent it: `Event.shop`, and part of each event's identity unless it is
        ``default``, see `gateway.events.event_identity`). `tz` is the zone of naive times.
        Should not raise: an exception marks the log entry failed, for ``kabarin reprocess``
        after a fix."""
        ...

    def method_name(self, method: str) -> str:
        """The canonical name of a method as pushed (the metrics compare it to `methods`)."""
        ...

    def sample_events(self) -> list[Event]:
        """Realistic events, every detail filled, that ``kabarin check`` renders every
        template with (one per status the source reports, at least)."""
        ...

    def minimal_events(self) -> list[tuple[Event, str]]:
        """The event of each method's shortest form, each with a label naming it: what a
        template meets when the source sends nothing beyond what it guarantees."""
        ...


@runtime_checkable
class Paged(Protocol):
    """A source that reads a range of a logged body's items without decoding the others."""

    def decode_part(self, body: bytes, start: int, stop: int) -> tuple[DecodedPush, int]:
        """Items ``[start, stop)`` of a body `decode` accepted (as a push `normalise` takes),
        and how many items the whole body holds."""
        ...


@runtime_checkable
class Tracked(Protocol):
    """A source with a tracking API the pull tracker asks when pushes were missed."""

    def tracking_client(self, shop: Shop, http: httpx.AsyncClient) -> Tracker:
        """A client of the tracking API for one shop's orders (its key, its settings), on the
        shared HTTP client. The pull tracker reads
        its answers as KiriminAja's (`gateway.sources.kiriminaja.tracking.TrackingResult`)."""
        ...

    def decode_pulled(self, entry: LoggedPush, tz: tzinfo) -> Normalised:
        """The events and contact of a log entry the pull tracker appended (source ``pull``)."""
        ...
