"""KiriminAja as a push source (`gateway.sources.base.PushSource`), registered as ``kiriminaja``
in the ``kabarin.sources`` entry points: its envelope check, normaliser, samples, method names,
the paged reading of a logged push, and its tracking API for the pull tracker."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, get_args

from gateway.events import Event, EventKind
from gateway.sources.base import DecodedPush, Normalised
from gateway.sources.kiriminaja import samples
from gateway.sources.kiriminaja.entries import decode_pull_entry
from gateway.sources.kiriminaja.normalise import KNOWN_METHODS, NAME, method_name, normalise
from gateway.sources.kiriminaja.part import push_part
from gateway.sources.kiriminaja.push import Push, decode_push
from gateway.sources.kiriminaja.tracking import TrackingClient

if TYPE_CHECKING:
    import httpx

    from gateway.shops import Shop
    from gateway.store.roles import LoggedPush

__all__ = ["KiriminAjaSource"]


class KiriminAjaSource:
    """KiriminAja's pushes, at ``receiver.path``."""

    name = NAME
    methods = KNOWN_METHODS
    kinds = frozenset(get_args(EventKind))

    def decode(self, body: bytes) -> Push:
        return decode_push(body)

    def normalise(
        self, push: DecodedPush, *, received_at: datetime, tz: tzinfo, shop: str
    ) -> Normalised:
        if not isinstance(push, Push):
            raise TypeError(f"not a KiriminAja push: {type(push).__name__}")
        return normalise(push, received_at=received_at, tz=tz, shop=shop)

    def method_name(self, method: str) -> str:
        return method_name(method)

    def sample_events(self) -> list[Event]:
        return samples.sample_events()

    def minimal_events(self) -> list[tuple[Event, str]]:
        return samples.minimal_events()

    def decode_part(self, body: bytes, start: int, stop: int) -> tuple[Push, int]:
        part = push_part(body, start, stop)
        return part.push, part.total

    def tracking_client(self, shop: Shop, http: httpx.AsyncClient) -> TrackingClient:
        return TrackingClient(shop.kiriminaja, api_key=shop.api_key, http=http)

    def decode_pulled(self, entry: LoggedPush, tz: tzinfo) -> Normalised:
        return decode_pull_entry(entry, tz)
