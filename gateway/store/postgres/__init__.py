"""The PostgreSQL store: several Kabarin replicas share one database (see store.py)."""

from gateway.store.postgres.notify import Channel
from gateway.store.postgres.store import PostgresStore

__all__ = ["Channel", "PostgresStore"]
