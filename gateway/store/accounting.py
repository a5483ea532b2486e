"""What an intake batch's commit decides, whatever the backend: `IntakeBatch`.

`IntakeStore.record_intake` takes a batch of normalised log entries. Both backends apply the
same rules to it, stated once here; a backend only speaks SQL around them:

- an entry another intake finished since it was read (``taken``: a replica whose lease ran
  out, ``kabarin reprocess``) is theirs: it is left as it is and counts nothing;
- each event is stored once, owned by the first entry of the batch that carries it; the
  backend inserts the owned events and says which ids were new (`IntakeBatch.deliveries`);
- only an owned event that was new gets deliveries, those of its owning entry, in arrival
  order (their ``seq`` is the order ``ordering: all`` sends them in);
- every entry gets an `IngestResult` and a `PushMark`: ``failed`` with the normaliser's
  error, or ``processed`` with what it added and what it repeated (`IntakeBatch.results`).
"""

from __future__ import annotations

from collections.abc import Sequence, Set
from typing import Literal, NamedTuple

from gateway.delivery.model import NewDelivery
from gateway.events import Contact, Event
from gateway.store.roles import IngestResult, PushOutcome

__all__ = ["IntakeBatch", "PushMark"]


class PushMark(NamedTuple):
    """A log entry's verdict, for the backend to record on the push log."""

    push_id: str
    state: Literal["processed", "failed"]
    error: str | None
    accepted: int | None
    duplicates: int | None


class IntakeBatch:
    """One `record_intake` batch: who owns which event, and what each entry is told."""

    def __init__(self, outcomes: Sequence[PushOutcome], taken: Set[str]) -> None:
        self.outcomes = outcomes
        self.taken = taken
        """Entries another intake finished since they were read."""
        self.mine = [o for o in outcomes if o.push_id not in taken]
        """The entries this intake records, in batch order."""
        self.owner: dict[str, str] = {}
        """Event id -> the first entry of the batch that carries it."""
        self.events: dict[str, Event] = {}
        """Each event of `mine` once, by id, in the order the batch first carries them."""
        for outcome in self.mine:
            for e in outcome.events:
                if e.id not in self.owner:
                    self.owner[e.id] = outcome.push_id
                    self.events[e.id] = e

    def deliveries(self, new: Set[str]) -> list[NewDelivery]:
        """The deliveries to create once the events whose ids are `new` were stored by this
        commit (not duplicates of stored ones): each from the entry that owns its event, in
        arrival order."""
        return [
            d
            for outcome in self.mine
            for d in outcome.deliveries
            if d.event_id in new and self.owner[d.event_id] == outcome.push_id
        ]

    def contacts(self) -> list[Contact]:
        """What the entries said about customers, in batch order: each upsert must see the
        one before (a registered field wins over a pushed one, a later push over an earlier)."""
        return [c for outcome in self.mine for c in outcome.contacts]

    def results(
        self, new: Set[str], created: Sequence[NewDelivery]
    ) -> tuple[list[IngestResult], list[PushMark]]:
        """One result per outcome, in order, and the verdicts of the entries not `taken`,
        given the new event ids and the deliveries `deliveries` chose."""
        counts: dict[str, int] = {}
        for d in created:
            push_id = self.owner[d.event_id]
            counts[push_id] = counts.get(push_id, 0) + 1
        results: list[IngestResult] = []
        marks: list[PushMark] = []
        for outcome in self.outcomes:
            if outcome.push_id in self.taken:
                results.append(IngestResult(accepted=0, duplicates=0))
                continue
            if outcome.error is not None:
                results.append(IngestResult(accepted=0, duplicates=0))
                marks.append(PushMark(outcome.push_id, "failed", outcome.error, None, None))
                continue
            mine = list(
                dict.fromkeys(
                    e.id
                    for e in outcome.events
                    if e.id in new and self.owner[e.id] == outcome.push_id
                )
            )
            result = IngestResult(
                accepted=len(mine),
                duplicates=len(outcome.events) - len(mine),
                deliveries=counts.get(outcome.push_id, 0),
                new_event_ids=tuple(mine),
            )
            results.append(result)
            marks.append(
                PushMark(outcome.push_id, "processed", None, result.accepted, result.duplicates)
            )
        return results, marks
