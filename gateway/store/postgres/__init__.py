"""The PostgreSQL store: several Kabarin replicas share one database (see store.py)."""

from gateway.store.postgres.store import Channel, PostgresStore

__all__ = ["Channel", "PostgresStore"]
