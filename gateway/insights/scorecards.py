"""Courier scorecards: how each courier and product did for the shop's orders shipped in a
window, from the orders' stored facts (`gateway.store.facts`).

One row per courier and product (and destination city, `by_destination`):

    courier, service        KiriminAja's ``service`` (``jne``) and the product (``REG``)
    shipments               orders shipped in the window
    delivered, returned     of those, delivered; gone back to the shop (returning or returned)
    problems, stuck         with a problem (or no driver); with a stuck alert (no news too long)
    transit_hours           p50 and p90 of shipped → delivered, exact nearest-rank, in hours
    pickup_hours            p50 and p90 of created (AWB issued) → shipped
    return_rate             returned / shipments
    problem_rate            problems / shipments
    on_time_rate            of the delivered orders KiriminAja gave an estimate for (``2-3``
                            days), those delivered by its latest day (shipped + 3 days)

Rates and hours are ``None`` when there is nothing to divide or rank.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

import msgspec

from gateway.store.facts import CourierFigures, InsightsStore
from gateway.units import parse_duration

__all__ = [
    "CSV_COLUMNS",
    "Percentiles",
    "Scorecard",
    "as_csv",
    "as_table",
    "flat",
    "parse_since",
    "scorecard",
    "scorecards",
]

DEFAULT_SINCE = "30d"


class Percentiles(msgspec.Struct, frozen=True):
    p50: float | None
    p90: float | None


class Scorecard(msgspec.Struct, frozen=True, kw_only=True):
    """One courier and product's figures (see the module doc)."""

    courier: str | None
    service: str | None
    destination: str | msgspec.UnsetType | None = msgspec.UNSET
    """Only with ``by=destination``: the destination city (``None``: not known)."""
    shipments: int
    delivered: int
    returned: int
    problems: int
    stuck: int
    transit_hours: Percentiles
    pickup_hours: Percentiles
    return_rate: float | None
    problem_rate: float | None
    on_time_rate: float | None


def parse_since(value: str | None, now: datetime, zone: tzinfo = UTC) -> datetime:
    """``30d``, ``12h``, ``2w`` (weeks) or an ISO 8601 time → the window's start; a
    `ValueError` says what is wrong. A time without a zone is in `zone` (``receiver.timezone``:
    ``2026-12-01`` is that day's midnight where the shop is)."""
    text = (value or DEFAULT_SINCE).strip()
    if text.endswith("w") and text[:-1].isdigit():
        text = f"{int(text[:-1]) * 7}d"
    try:
        return now - timedelta(seconds=float(parse_duration(text)))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"since: expected a duration like `30d`, `12h`, `2w` or an ISO 8601 time, got {value!r}"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _hours(seconds: int | None) -> float | None:
    return None if seconds is None else round(seconds / 3600, 1)


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(part / whole, 4)


def scorecard(figures: CourierFigures) -> Scorecard:
    return Scorecard(
        courier=figures.courier or None,
        service=figures.product or None,
        destination=msgspec.UNSET if figures.destination is None else figures.destination or None,
        shipments=figures.shipments,
        delivered=figures.delivered,
        returned=figures.returned,
        problems=figures.problems,
        stuck=figures.stuck,
        transit_hours=Percentiles(_hours(figures.transit_p50), _hours(figures.transit_p90)),
        pickup_hours=Percentiles(_hours(figures.pickup_p50), _hours(figures.pickup_p90)),
        return_rate=_rate(figures.returned, figures.shipments),
        problem_rate=_rate(figures.problems, figures.shipments),
        on_time_rate=_rate(figures.on_time, figures.promised),
    )


async def scorecards(
    store: InsightsStore,
    *,
    since: datetime,
    shops: Sequence[str] | None = None,
    by_destination: bool = False,
) -> list[Scorecard]:
    """The scorecards of the orders shipped since `since` (of `shops`; ``None``: every shop),
    most shipments first."""
    rows = await store.courier_figures(since=since, shops=shops, by_destination=by_destination)
    cards = [scorecard(r) for r in rows]
    return sorted(cards, key=lambda c: (-c.shipments, c.courier or "", c.service or ""))


CSV_COLUMNS = (
    "courier",
    "service",
    "destination",
    "shipments",
    "delivered",
    "returned",
    "problems",
    "stuck",
    "transit_p50_hours",
    "transit_p90_hours",
    "pickup_p50_hours",
    "pickup_p90_hours",
    "return_rate",
    "problem_rate",
    "on_time_rate",
)


def flat(card: Scorecard) -> dict[str, Any]:
    """One figure per key, as the CSV's columns name them."""
    return {
        "courier": card.courier,
        "service": card.service,
        "destination": card.destination or None,
        "shipments": card.shipments,
        "delivered": card.delivered,
        "returned": card.returned,
        "problems": card.problems,
        "stuck": card.stuck,
        "transit_p50_hours": card.transit_hours.p50,
        "transit_p90_hours": card.transit_hours.p90,
        "pickup_p50_hours": card.pickup_hours.p50,
        "pickup_p90_hours": card.pickup_hours.p90,
        "return_rate": card.return_rate,
        "problem_rate": card.problem_rate,
        "on_time_rate": card.on_time_rate,
    }


def as_csv(cards: Sequence[Scorecard], *, by_destination: bool = False) -> str:
    """The scorecards as CSV, one column per figure (empty: none)."""
    columns = [c for c in CSV_COLUMNS if by_destination or c != "destination"]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for card in cards:
        row = flat(card)
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return out.getvalue()


def as_table(cards: Sequence[Scorecard], *, by_destination: bool = False) -> str:
    """The scorecards as an aligned text table (``-``: none)."""
    head = ["courier", "service"] + (["destination"] if by_destination else [])
    head += ["ship", "deliv", "ret", "prob", "stuck", "transit p50/p90 h", "pickup p50/p90 h"]
    head += ["return", "problem", "on time"]
    rows = [head]
    for c in cards:
        row = [c.courier or "-", c.service or "-"]
        row += [c.destination or "-"] if by_destination else []
        row += [str(n) for n in (c.shipments, c.delivered, c.returned, c.problems, c.stuck)]
        row += [_pair(c.transit_hours), _pair(c.pickup_hours)]
        row += [_percent(r) for r in (c.return_rate, c.problem_rate, c.on_time_rate)]
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join(
        "  ".join(
            v.ljust(w) if i < 2 else v.rjust(w)
            for i, (v, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in rows
    )


def _pair(p: Percentiles) -> str:
    return f"{_num(p.p50)} / {_num(p.p90)}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"
