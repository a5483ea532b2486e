"""The dashboard's sign-in sessions on PostgreSQL (`SessionStore`), shared by every replica."""

from __future__ import annotations

from datetime import datetime

from gateway.store.postgres import sql
from gateway.store.postgres.rows import Conn, text
from gateway.store.roles import SignedInSession

__all__ = ["create", "delete", "get", "update"]


async def create(conn: Conn, session: SignedInSession, expired_before: datetime) -> None:
    """(A transaction, the caller's.)"""
    await conn.execute(sql.EXPIRE_SESSIONS, (expired_before,))
    await conn.execute(
        sql.CREATE_SESSION,
        (
            session.key,
            session.csrf,
            session.created_at,
            session.used_at,
            session.flash,
            session.token_mac,
        ),
    )


async def get(conn: Conn, key: str) -> SignedInSession | None:
    row = await (await conn.execute(sql.GET_SESSION, (key,))).fetchone()
    if row is None:
        return None
    return SignedInSession(
        key=row[0], csrf=row[1], created_at=row[2], used_at=row[3], flash=row[4], token_mac=row[5]
    )


async def update(conn: Conn, key: str, used_at: datetime, flash: str | None) -> bool:
    return (await conn.execute(sql.UPDATE_SESSION, (used_at, text(flash), key))).rowcount == 1


async def delete(conn: Conn, key: str) -> bool:
    return (await conn.execute(sql.DELETE_SESSION, (key,))).rowcount == 1
