"""The pull tracker's push log entries (source ``pull``) and their decoder, ``DECODERS["pull"]``.

Two kinds, told apart by the entry's ``method``:

- ``express_tracking`` / ``instant_tracking``: a `PullEntry`, the tracking answer as a `Pulled`
  document (its JSON is a `Pulled` body plus two fields) with what the tracker decided when it
  appended it. ``known`` lists the statuses the order already had then (``problem`` with its
  reason): those make no event, since one update is one notification whichever way it came,
  even when the answer gives it another time than its push did. ``contact`` is false when the
  order already had a contact: the recipient in the answer does not replace what a push or an
  operator said.
- ``stuck``: a `Stuck` document, one alert for an order with no new status for too long; it
  becomes one ``stuck`` event, whose id is made of the order, the status and the time of the
  update it is stuck after, so an alert raised twice for the same wait is stored once.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

import msgspec

from gateway.events import DEFAULT_SHOP, Event, EventKind, Status, event_id
from gateway.sources.base import Normalised
from gateway.sources.kiriminaja.pulled import Pulled, normalise_pulled
from gateway.store.roles import LoggedPush

__all__ = ["STUCK_METHOD", "PullEntry", "Stuck", "decode_pull_entry", "status_key"]

STUCK_METHOD = "stuck"


class PullEntry(Pulled, frozen=True, kw_only=True):
    """A tracking answer as the tracker appended it."""

    known: list[tuple[Status, str | None]] = msgspec.field(default_factory=list)
    """Statuses the order already had: no event for them."""
    contact: bool = True
    """Whether the answer's recipient may become the order's contact."""


class Stuck(msgspec.Struct, frozen=True, kw_only=True):
    """An order with no new status for longer than ``pull.alert_after`` allows."""

    kind: EventKind
    order_id: str
    stuck_in: Status
    since: datetime
    """The time of the order's last update (the one it is stuck after)."""


def status_key(event: Event) -> tuple[Status, str | None]:
    """What makes a status the same one again: the status, and for ``problem`` its reason."""
    return event.status, event.reason if event.status is Status.PROBLEM else None


_decode_entry = msgspec.json.Decoder(PullEntry).decode
_decode_stuck = msgspec.json.Decoder(Stuck).decode


def decode_pull_entry(push: LoggedPush, tz: tzinfo) -> Normalised:
    """The events and contact of one ``pull`` log entry (raises on a body it cannot read)."""
    try:
        if push.method == STUCK_METHOD:
            stuck = stuck_event(_decode_stuck(push.body), push.received_at, push.shop)
            return Normalised([stuck], [])
        entry = _decode_entry(push.body)
    except msgspec.DecodeError as exc:
        raise ValueError(f"not a pull tracker entry: {exc}") from None
    found = normalise_pulled(entry, received_at=push.received_at, tz=tz, shop=push.shop)
    known = set(entry.known)
    events = [e for e in found.events if status_key(e) not in known]
    return Normalised(events, found.contacts if entry.contact else [])


def stuck_event(stuck: Stuck, received_at: datetime, shop: str = DEFAULT_SHOP) -> Event:
    waited = max(0, round((received_at - stuck.since).total_seconds()))
    since = stuck.since.isoformat()
    # The `default` shop's ids stay what they were (see `event_identity`).
    ident = [stuck.order_id, stuck.stuck_in.value, since]
    if shop != DEFAULT_SHOP:
        ident.append(f"shop={shop}")
    return Event(
        id=event_id("kabarin-stuck", *ident),
        shop=shop,
        source="pull",
        method=STUCK_METHOD,
        kind=stuck.kind,
        status=Status.STUCK,
        raw_status=stuck.stuck_in.value,
        order_id=stuck.order_id,
        occurred_at=received_at,
        received_at=received_at,
        reason=f"no new status for {_human(waited)} since {stuck.stuck_in.value}",
        details={"stuck_in": stuck.stuck_in.value, "stuck_for": waited, "stuck_since": since},
    )


def _human(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] * bool(days) + [f"{hours}h"] * bool(hours)
    if not days:
        parts += [f"{minutes}m"] * bool(minutes) + [f"{secs}s"] * (not hours and bool(secs))
    return " ".join(parts) or "0s"
