"""`DeliveryQueue.finish` and `finish_many` as one `Finished` outcome, for every backend.

`finish` takes an outcome's parts as arguments, `finish_many` a batch of `Finished`; both
backends inherit `Finishing`, which turns the arguments into a `Finished` and checks a batch
once, so a backend writes only how it records one outcome (`_finish_one`) and a batch
(`_finish_batch`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from datetime import datetime

from gateway.delivery.model import Attempt, DeliveryState, NewDelivery
from gateway.store.roles import Finished

__all__ = ["Finishing"]


class Finishing(ABC):
    """The outcome half of `DeliveryQueue`, in terms of `Finished`."""

    async def finish(
        self,
        delivery_id: str,
        *,
        worker: str,
        attempt: Attempt | None,
        state: DeliveryState,
        now: datetime,
        next_attempt_at: datetime | None = None,
        error: str | None = None,
        count_attempt: bool = True,
        waiting: str | None = None,
        fallback: NewDelivery | None = None,
    ) -> bool:
        outcome = Finished(
            delivery_id=delivery_id,
            attempt=attempt,
            state=state,
            now=now,
            next_attempt_at=next_attempt_at,
            error=error,
            count_attempt=count_attempt,
            waiting=waiting,
            fallback=fallback,
        )
        return await self._finish_one(outcome, worker=worker)

    async def finish_many(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        if len({o.delivery_id for o in outcomes}) != len(outcomes):
            raise ValueError("finish_many: a delivery appears more than once")
        if not outcomes:
            return []
        return await self._finish_batch(outcomes, worker=worker)

    @abstractmethod
    async def _finish_one(self, outcome: Finished, *, worker: str) -> bool:
        """Record one outcome (`DeliveryQueue.finish`)."""

    @abstractmethod
    async def _finish_batch(self, outcomes: Sequence[Finished], *, worker: str) -> list[bool]:
        """Record a batch of outcomes, each delivery named once, in one commit."""
