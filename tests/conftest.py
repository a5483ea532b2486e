"""Shared fixtures. `store` runs each contract test against every backend; `ingest` stores
events the way the intake does."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn
from urllib.parse import quote

import psycopg
import pytest

from gateway.delivery.model import NewDelivery
from gateway.events import Contact, Event
from gateway.intake import new_push_id
from gateway.store import Store, open_store
from gateway.store.roles import IngestResult, IngestStore, PushOutcome

BACKENDS = ["sqlite", "postgres"]
"""Store backends the contract suite runs against."""

PG_URL = os.environ.get("KABARIN_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
"""The PostgreSQL server the suite uses; each test gets a schema of its own in it."""

TESTS = Path(__file__).resolve().parent

SLOWEST_FIRST = (
    "e2e/test_delivery.py",
    "test_store_contract.py",
    "e2e/test_pull.py",
    "e2e/test_admin.py",
    "e2e/test_replicas.py",
    "test_cli.py",
    "e2e/test_digests.py",
    "e2e/test_ui.py",
    "test_dispatcher.py",
    "e2e/test_access.py",
    "e2e/test_intake.py",
    "e2e/test_grouping.py",
)
"""The modules that take longest (``--durations``), slowest first, run before the others.

``make test`` hands whole modules to its workers (``--dist loadfile``) in collection order
(``--no-loadscope-reorder`` in pyproject.toml: xdist would otherwise start the modules with
the most tests first, and these long ones with few tests came last and ran on alone). A
module missing from this list only runs later; one listed that is not collected changes
nothing."""

_pg_schemas: dict[Path, str] = {}
_pg_checked: list[str | None] = []


def store_url(backend: str, tmp_path: Path) -> str:
    """The test's store: the same one for every call in one test (a reopen finds its data)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path}/kabarin.db"
    if backend == "postgres":
        schema = _pg_schemas.get(tmp_path)
        if schema is None:
            schema = _pg_schemas[tmp_path] = create_pg_schema()
        return pg_url_with_schema(schema)
    raise AssertionError(f"no such backend {backend}")


def create_pg_schema() -> str:
    """A fresh schema with a random name in `PG_URL`'s database (`drop_pg_schema` after)."""
    schema = f"kabarin_test_{secrets.token_hex(6)}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return schema


def drop_pg_schema(schema: str) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def pg_url_with_schema(schema: str) -> str:
    """`PG_URL` with every connection's search_path set to `schema` (libpq `options`)."""
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options={quote(f'-c search_path={schema}')}"


def pg_problem(url: str) -> str | None:
    """Why the PostgreSQL server at `url` cannot be used (``None``: it can)."""
    try:
        psycopg.connect(url, connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL at {url} is unreachable: {exc}"
    return None


def pg_unavailable(problem: str) -> NoReturn:
    """Skip, except in CI (``CI=true``), where a missing server is a failure: the suite must
    run against PostgreSQL there."""
    if os.environ.get("CI") == "true":
        pytest.fail(problem)
    pytest.skip(problem)


def require_pg() -> None:
    if not _pg_checked:
        _pg_checked.append(pg_problem(PG_URL))
    if problem := _pg_checked[0]:
        pg_unavailable(problem)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name = str(request.param)
    if name == "postgres":
        require_pg()
    yield name
    schema = _pg_schemas.pop(tmp_path, None)
    if schema is not None:
        drop_pg_schema(schema)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A PostgreSQL store's URL, in a schema of its own dropped after the test."""
    require_pg()
    schema = create_pg_schema()
    yield pg_url_with_schema(schema)
    drop_pg_schema(schema)


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """`SLOWEST_FIRST`, then the end-to-end modules, then the rest; a module's tests stay
    together and in their order."""
    rank = {name: n for n, name in enumerate(SLOWEST_FIRST)}

    def key(item: pytest.Item) -> tuple[int, bool]:
        name = item.path.relative_to(TESTS).as_posix() if item.path.is_relative_to(TESTS) else ""
        return rank.get(name, len(rank)), not name.startswith("e2e/")

    items.sort(key=key)
