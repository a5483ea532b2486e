"""Shared fixtures. `store` runs each contract test against every backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.store import Store, open_store

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
    await opened.open()
    yield opened
    await opened.close()
