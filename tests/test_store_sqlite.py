"""What only the SQLite backend does: its file, its heartbeat, its SQL in one place.

The contract every backend keeps is tests/test_store_contract.py; these tests reach into the
SQLite package (the writer connection, the file on disk, the module sources).
"""

from __future__ import annotations

import ast
import os
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import gateway
from gateway.errors import StoreError
from gateway.store import open_store
from gateway.store.sqlite import SQLiteStore
from gateway.store.sqlite.rows import to_us

from .conftest import ingest
from .test_store_contract import event, put

NOW = datetime(2024, 3, 1, 8, 0, tzinfo=UTC)


async def test_ping_commits(tmp_path: Path) -> None:
    # A transaction that writes nothing succeeds where no write can: ping must prove a commit,
    # so it fails where every push would. Here SQLite's authorizer refuses every write.
    def no_writes(action: int, *_: object) -> int:
        refused = (sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE)
        return sqlite3.SQLITE_DENY if action in refused else sqlite3.SQLITE_OK

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


@pytest.mark.parametrize("fault", ["deleted", "replaced"])
async def test_a_database_file_deleted_or_replaced_is_noticed(
    tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "k.db"
    store = open_store(f"sqlite:///{path}")
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
    # runs is a named statement in sql.py.
    strays = []
    for module in sorted(SQLITE_PACKAGE.glob("*.py")):
        if module.name in ("sql.py", "schema.py"):
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
