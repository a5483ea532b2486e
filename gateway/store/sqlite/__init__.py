"""The SQLite backend: one file, WAL, one writer thread with group commit (see store.py)."""

from __future__ import annotations

from gateway.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
