"""Shared fixtures. `store` runs each contract test against every backend; `ingest` stores
events the way the intake does."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gateway.deliveries import NewDelivery
from gateway.events import Contact, Event
from gateway.ingest import new_push_id
from gateway.store import Store, open_store
from gateway.store.base import IngestResult, IngestStore, PushOutcome

BACKENDS = ["sqlite"]
"""Store backends the contract suite runs against (PostgreSQL joins here)."""


def store_url(backend: str, tmp_path: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/kabarin.db"
    raise AssertionError(f"no such backend {backend}")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def store(backend: str, tmp_path: Path) -> AsyncIterator[Store]:
    opened = open_store(store_url(backend, tmp_path))
    await opened.open(now=datetime.now(UTC))
    yield opened
    await opened.close()


async def ingest(
    store: IngestStore,
    *,
    events: Sequence[Event] = (),
    deliveries: Sequence[NewDelivery] = (),
    contacts: Sequence[Contact] = (),
    now: datetime | None = None,
) -> IngestResult:
    """Store events as the intake does: one log entry's outcome, in one commit."""
    when = now or datetime.now(UTC)
    (result,) = await store.record_intake(
        [
            PushOutcome(
                push_id=new_push_id(when),
                events=events,
                deliveries=deliveries,
                contacts=contacts,
            )
        ],
        now=when,
    )
    return result
