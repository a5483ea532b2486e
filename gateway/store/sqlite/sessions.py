"""The dashboard's sign-in sessions on SQLite (`SessionStore`)."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from gateway.store.roles import SignedInSession
from gateway.store.sqlite import sql
from gateway.store.sqlite.rows import from_us, to_us

__all__ = ["create", "delete", "get", "update"]


def create(conn: sqlite3.Connection, session: SignedInSession, expired_before: datetime) -> None:
    conn.execute(sql.EXPIRE_SESSIONS, (to_us(expired_before),))
    conn.execute(
        sql.CREATE_SESSION,
        (
            session.key,
            session.csrf,
            to_us(session.created_at),
            to_us(session.used_at),
            session.flash,
            session.token_mac,
        ),
    )


def get(conn: sqlite3.Connection, key: str) -> SignedInSession | None:
    row = conn.execute(sql.GET_SESSION, (key,)).fetchone()
    if row is None:
        return None
    return SignedInSession(
        key=row[0],
        csrf=row[1],
        created_at=from_us(row[2]),
        used_at=from_us(row[3]),
        flash=row[4],
        token_mac=row[5],
    )


def update(conn: sqlite3.Connection, key: str, used_at: datetime, flash: str | None) -> bool:
    return conn.execute(sql.UPDATE_SESSION, (to_us(used_at), flash, key)).rowcount == 1


def delete(conn: sqlite3.Connection, key: str) -> bool:
    return conn.execute(sql.DELETE_SESSION, (key,)).rowcount == 1
