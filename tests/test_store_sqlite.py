"""What only the SQLite backend does: its file, its heartbeat, its SQL in one place.

The contract every backend keeps is tests/test_store_contract.py; these tests reach into the
SQLite package (the writer connection, the file on disk, the module sources).
"""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import sqlite3
import threading
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

import gateway
from gateway.config import parse_config
from gateway.delivery.model import DeliveryFilter
from gateway.errors import StoreError
from gateway.events import Status
from gateway.intake import Intake
from gateway.routing import Router
from gateway.runtime import open_runtime
from gateway.store import PushQuery, open_store
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite.rows import to_us
from gateway.store.sqlite.schema import MIGRATIONS, migrate

from .conftest import ingest
from .test_intake import JAKARTA, append
from .test_store_contract import claim_ids, delivery, event, grouped, put

NOW = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


def no_writes(action: int, *_: object) -> int:
    refused = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
    return sqlite3.SQLITE_DENY if action in refused else sqlite3.SQLITE_OK


async def test_ping_commits(tmp_path: Path) -> None:
    # A transaction that writes nothing succeeds where no write can: ping must prove a commit,
    # so it fails where every push would. Here SQLite's authorizer refuses every write.
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        await store.ping(now=NOW)
        await store._write(lambda c: c.set_authorizer(no_writes))
        with pytest.raises(StoreError, match="not authorized"):
            await store.ping(now=NOW)
        with pytest.raises(StoreError):
            await ingest(store, events=[event("A")])
        await store._write(lambda c: c.set_authorizer(None))
        await store.ping(now=NOW)  # the fault cleared: ready again, no reopen
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "k.db") as conn:
        assert conn.execute("SELECT count(*) FROM heartbeat").fetchone() == (1,)


async def test_ping_commits_to_the_push_log_file_too(tmp_path: Path) -> None:
    # The push log has a file and a writer of its own: readiness must fail when appends would.
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        await store._write_log(lambda c: c.set_authorizer(no_writes))
        with pytest.raises(StoreError, match="not authorized"):
            await store.ping(now=NOW)
        await store._write_log(lambda c: c.set_authorizer(None))
        await store.ping(now=NOW)
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "k.pushes.db") as conn:
        assert conn.execute("SELECT at FROM heartbeat").fetchone() == (to_us(NOW),)


@pytest.mark.parametrize("name", ["k.db", "k.pushes.db"])
@pytest.mark.parametrize("fault", ["deleted", "replaced"])
async def test_a_database_file_deleted_or_replaced_is_noticed(
    tmp_path: Path, fault: str, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    path = tmp_path / name
    await store.open(now=NOW)
    try:
        await put(store, event("A"))
        if fault == "deleted":
            path.unlink()
        else:
            shutil.copy(path, tmp_path / "copy.db")
            os.replace(tmp_path / "copy.db", path)
        with pytest.raises(StoreError, match=fault):
            await store.ping(now=NOW)
        with pytest.raises(StoreError, match=fault):
            await put(store, event("B"))
        with pytest.raises(StoreError, match=fault):
            await store.ping(now=NOW)
    finally:
        await store.close()
    lines = [r for r in caplog.records if r.levelname == "ERROR" and fault in r.getMessage()]
    assert len(lines) == 1  # said once, clearly, not on every refused commit
    assert str(path) in lines[0].getMessage()


async def test_a_broken_database_is_a_store_error(tmp_path: Path) -> None:
    (tmp_path / "not-a-db").write_bytes(b"this is not an SQLite file" * 100)
    broken = open_store(f"sqlite:///{tmp_path}/not-a-db")
    with pytest.raises(StoreError):
        await broken.open(now=NOW)
    (tmp_path / "dir.db").mkdir()
    with pytest.raises(StoreError):
        await open_store(f"sqlite:///{tmp_path}/dir.db").open(now=NOW)


async def test_the_heartbeat_and_migrations_record_the_callers_time(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        with sqlite3.connect(tmp_path / "k.db") as conn:
            assert conn.execute("SELECT at FROM heartbeat").fetchone() == (to_us(NOW),)
            applied = {r[0] for r in conn.execute("SELECT applied_at FROM schema_version")}
            assert applied == {to_us(NOW)}
        later = NOW + timedelta(hours=5, microseconds=3)
        await store.ping(now=later)
        with sqlite3.connect(tmp_path / "k.db") as conn:
            assert conn.execute("SELECT at FROM heartbeat").fetchone() == (to_us(later),)
    finally:
        await store.close()


SQLITE_PACKAGE = Path(gateway.__file__).parent / "store" / "sqlite"
SQL_WORDS = ("SELECT ", "INSERT ", "UPDATE ", "DELETE ", "PRAGMA ", "BEGIN", "COMMIT", "ROLLBACK")


def test_the_sqlite_package_keeps_its_sql_in_sql_py() -> None:
    # schema.py holds the shipped migrations' DDL (history, never edited); everything the store
    # runs is a named statement in sql.py (or, for a role it has no room for, <role>_sql.py).
    strays = []
    for module in sorted(SQLITE_PACKAGE.glob("*.py")):
        if module.name in ("sql.py", "schema.py") or module.name.endswith("_sql.py"):
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.lstrip()
                if text.startswith(SQL_WORDS):
                    strays.append(f"{module.name}:{node.lineno}: {node.value[:40]!r}")
    assert strays == []


def test_nothing_above_the_backend_imports_the_sqlite_package() -> None:
    # Rows and integer microseconds stay inside gateway/store/sqlite/; only open_store names it.
    root = Path(gateway.__file__).parent
    allowed = {SQLITE_PACKAGE / "__init__.py", root / "store" / "__init__.py"}
    leaks = []
    for module in sorted(root.rglob("*.py")):
        if module.is_relative_to(SQLITE_PACKAGE) or module in allowed:
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            leaks += [
                f"{module.relative_to(root)}: {n}"
                for n in names
                if n.startswith("gateway.store.sqlite")
            ]
    assert leaks == []


CONFIG = parse_config(
    """
receiver: {token: t}
sinks: {console: {type: console}}
routes: [{name: all, sinks: [console]}]
"""
)


async def test_every_connection_keeps_the_page_cache_the_configuration_gives(
    tmp_path: Path,
) -> None:
    """``store.cache_mb``: both writers and every reader, as `kabarin serve` opens them."""
    config = parse_config(
        f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{tmp_path}/k.db', cache_mb: 5}}\n"
    )
    assert config.store.cache_mb == 5
    pragma = "PRAGMA main.cache_size"
    async with AsyncExitStack() as stack:
        rt = await open_runtime(config, stack, dispatcher=False)
        store = rt.store
        assert isinstance(store, SQLiteStore)
        writers = [
            await store._write(lambda c: c.execute(pragma).fetchone()),
            await store._write_log(lambda c: c.execute(pragma).fetchone()),
        ]
        both = threading.Barrier(2)  # two reads at once: each reader thread opens its own

        def read(c: sqlite3.Connection) -> tuple[int]:
            both.wait(5)
            found: tuple[int] = c.execute(pragma).fetchone()
            return found

        readers = await asyncio.gather(store._read(read), store._read(read))
    assert [*writers, *readers] == [(-5 * 1024,)] * 4


async def test_the_push_log_lives_in_its_own_file(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    try:
        push_id = await append(store, "O-1")
    finally:
        await store.close()
    with sqlite3.connect(tmp_path / "k.pushes.db") as conn:
        assert conn.execute("SELECT id, state FROM pushes").fetchall() == [(push_id, "pending")]
    with sqlite3.connect(tmp_path / "k.db") as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "pushes" not in tables and "events" in tables


async def test_a_crash_between_the_events_commit_and_the_logs_is_a_harmless_repeat(
    tmp_path: Path,
) -> None:
    # The events commit to the main file first, the pushes' new state to the log file after.
    # The log's commit failing (as a crash between the two would leave it) keeps the push
    # pending; taken again, its events are there already: no second delivery, and the push
    # is recorded with its events as duplicates.
    def no_updates(action: int, *_: object) -> int:
        return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_UPDATE else sqlite3.SQLITE_OK

    store = SQLiteStore(tmp_path / "k.db")
    await store.open(now=NOW)
    intake = Intake(store=store, router=Router.from_config(CONFIG), timezone=JAKARTA)
    try:
        push_id = await append(store, "O-1")
        await store._write_log(lambda c: c.set_authorizer(no_updates))
        with pytest.raises(StoreError, match="not authorized"):
            await intake.run_once(now=NOW)
        await store._write_log(lambda c: c.set_authorizer(None))
        assert len(await store.list_deliveries(DeliveryFilter())) == 1
        first = await store.get_push(push_id)
        assert first is not None and first.state == "pending"

        assert await intake.run_once(now=NOW) == 1
        again = await store.get_push(push_id)
        assert again is not None and again.state == "processed"
        assert (again.accepted, again.duplicates) == (0, 1)
        assert len(await store.list_deliveries(DeliveryFilter())) == 1
        assert await store.count_pending_pushes() == 0
    finally:
        await store.close()


async def test_an_order_closed_as_refused_is_reopened_by_the_upgrade(tmp_path: Path) -> None:
    # Before migration 9, `rejected` closed an order for the pull tracker.
    path = tmp_path / "k.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, now=to_us(NOW), migrations=[m for m in MIGRATIONS if m[0] != 9])
        conn.execute(
            "INSERT INTO tracking (order_id, last_status, last_update, closed, added_at)"
            " VALUES ('O-R', 'rejected', ?1, 1, ?1), ('O-D', 'delivered', ?1, 1, ?1)",
            (to_us(NOW),),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)
    try:
        refused, done = await store.get_tracking("O-R"), await store.get_tracking("O-D")
        assert refused is not None and not refused.closed
        assert done is not None and done.closed
    finally:
        await store.close()


async def test_the_upgrade_ranks_the_waiting_latest_deliveries_by_stage(tmp_path: Path) -> None:
    # Before migration 10, `latest` compared times only: a delivered dated before a processed
    # would have been superseded by it. The upgrade fills in the stage of what is stored.
    path = tmp_path / "k.db"
    store = SQLiteStore(path)
    await store.open(now=NOW)
    delivered = event("U", Status.DELIVERED, minute=5)
    processed = event("U", Status.PROCESSED, minute=10)
    await put(store, delivered, processed, ordering="latest")
    await store.close()
    with sqlite3.connect(path, isolation_level=None) as conn:
        for column in ("stage", "timed", "started_at"):
            conn.execute(f"ALTER TABLE deliveries DROP COLUMN {column}")
        conn.execute("DELETE FROM schema_version WHERE version = 10")
    conn.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)
    try:
        assert await claim_ids(store) == [delivery(delivered).id]
    finally:
        await store.close()


async def test_the_upgrade_dates_the_last_ask_of_orders_asked_before_by_their_last_answer(
    tmp_path: Path,
) -> None:
    # Before the migration that added last_asked_at only answers were dated (last_pulled_at).
    path = tmp_path / "k.db"
    before = [m for m in MIGRATIONS if "last_asked_at" not in m[1]]
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, now=to_us(NOW), migrations=before)
        conn.execute(
            "INSERT INTO tracking (order_id, last_update, added_at, last_pulled_at)"
            " VALUES ('O-ASKED', ?1, ?1, ?2), ('O-NEVER', ?1, ?1, NULL)",
            (to_us(NOW), to_us(NOW) + 5_000_000),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)
    try:
        asked, never = await store.get_tracking("O-ASKED"), await store.get_tracking("O-NEVER")
        assert asked is not None and asked.last_asked_at == NOW + timedelta(seconds=5)
        assert never is not None and never.last_asked_at is None
    finally:
        await store.close()


async def test_the_upgrade_that_adds_groups_keeps_the_waiting_deliveries(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    before = [m for m in MIGRATIONS if "CREATE TABLE groups" not in m[1]]
    assert len(before) == len(MIGRATIONS) - 1
    store = SQLiteStore(path)
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, now=to_us(NOW), migrations=before)
    conn.close()
    await store.open(now=NOW)
    try:
        waiting = event("U-1")
        await put(store, waiting)
        cancel = event("U-2", Status.CANCELED)
        await ingest(store, events=[cancel], deliveries=[grouped(cancel)], now=NOW)
        assert await store.waiting_groups() != []
        assert sorted(await claim_ids(store)) == sorted([delivery(waiting).id, grouped(cancel).id])
    finally:
        await store.close()


async def test_the_upgrade_to_digests_counts_the_events_kept_before_it(tmp_path: Path) -> None:
    # The migration that brought digests (found by its content: it is renumbered at merges)
    # indexes the events kept before it, which the window counts then read.
    path = tmp_path / "k.db"
    before = [m for m in MIGRATIONS if "digest_runs" not in m[1]]
    assert len(before) == len(MIGRATIONS) - 1
    old = msgspec.json.encode(event("O-OLD", Status.DELIVERED))
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, now=to_us(NOW), migrations=before)
        conn.execute(
            "INSERT INTO events (id, order_id, status, method, occurred_at, received_at, body)"
            " VALUES ('evt-old', 'O-OLD', 'delivered', 'x', ?1, ?1, ?2)",
            (to_us(NOW), old),
        )
    conn.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)
    try:
        counts = await store.window_counts(start=NOW, end=NOW + timedelta(seconds=1))
        assert counts.by_status == {Status.DELIVERED: 1}
        assert await store.last_digest("pagi") is None
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        plan = conn.execute(
            "EXPLAIN QUERY PLAN SELECT count(*) FROM events WHERE received_at >= 0"
            " AND received_at < 1"
        ).fetchall()
    conn.close()
    assert "events_received" in str(plan)


async def test_a_store_with_the_push_log_in_its_main_file_moves_it_across(
    tmp_path: Path,
) -> None:
    # A store from before the log had its own file: every entry (pending ones for the intake,
    # the others for the admin API and retention) moves across, with its sequence, once.
    path = tmp_path / "k.db"
    with sqlite3.connect(path, isolation_level=None) as conn:
        migrate(conn, now=to_us(NOW))
        for seq, (push_id, state) in enumerate(
            [("psh_old_done", "processed"), ("psh_old_pending", "pending")], start=7
        ):
            body = b'{"method": "shipped_packages", "data": [{"order_id": "O-%d"}]}' % seq
            conn.execute(
                "INSERT INTO pushes (seq, id, source, method, items, received_at, body, state)"
                " VALUES (?, ?, 'push', 'shipped_packages', 1, ?, ?, ?)",
                (seq, push_id, to_us(NOW), body, state),
            )
    conn.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)
    try:
        listed = await store.list_pushes(PushQuery())
        assert [(p.id, p.seq, p.state) for p in listed] == [
            ("psh_old_pending", 8, "pending"),
            ("psh_old_done", 7, "processed"),
        ]
        intake = Intake(store=store, router=Router.from_config(CONFIG), timezone=JAKARTA)
        assert await intake.drain() == 1
        taken = await store.get_push("psh_old_pending")
        assert taken is not None and taken.state == "processed"
        newer = await append(store, "O-new")
    finally:
        await store.close()
    store = SQLiteStore(path)
    await store.open(now=NOW)  # again: nothing more to move, nothing lost
    try:
        listed = await store.list_pushes(PushQuery())
        assert [p.id for p in listed] == [newer, "psh_old_pending", "psh_old_done"]
        assert listed[0].seq > 8  # the log's sequence continues after the moved entries
    finally:
        await store.close()
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'pushes'").fetchone() is None
