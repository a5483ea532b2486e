"""The statements of the insights role on SQLite (`gateway.store.sqlite.insights`): beside
sql.py, which has no room left for them."""

from __future__ import annotations

from gateway.store.facts import COLUMNS, upsert_assignments

__all__ = [
    "COUNT_OLD_ORDERS",
    "EVENTS_FROM",
    "GET",
    "HISTORY_ALL_COUNT",
    "HISTORY_COUNT",
    "HISTORY_NTH",
    "HISTORY_NTH_TO",
    "KNOWN",
    "PRUNE_ORDERS",
    "UPSERT",
    "counts",
    "hours",
    "nth_in_hour",
    "orders_of",
]

UPSERT = (
    f"INSERT INTO order_facts ({', '.join(COLUMNS)})"
    f" SELECT {', '.join(f'value ->> {i}' for i in range(len(COLUMNS)))}"
    " FROM json_each(?) WHERE true"
    f" ON CONFLICT (shop, order_id) DO UPDATE SET {upsert_assignments('order_facts', 'min')}"
)
"""One JSON array of rows per batch; the merge rule of `gateway.store.facts`."""
GET = f"SELECT {', '.join(COLUMNS)} FROM order_facts WHERE order_id = ? AND shop = ?"
KNOWN = (
    "SELECT count(*) FROM json_each(?) AS k JOIN order_facts AS f"
    " ON f.shop = k.value ->> 0 AND f.order_id = k.value ->> 1"
)
"""How many of a JSON array of [shop, order id] are stored."""
EVENTS_FROM = "SELECT seq, body FROM events WHERE seq > ? ORDER BY seq LIMIT ?"

_SCOPE = "courier = :courier AND product = :product AND transit IS NOT NULL"
HISTORY_COUNT = (
    "SELECT count(*) FROM order_facts INDEXED BY order_facts_transit_to"
    f" WHERE shop = :shop AND {_SCOPE} AND destination = :destination"
)
HISTORY_NTH_TO = (
    "SELECT transit FROM order_facts INDEXED BY order_facts_transit_to"
    f" WHERE shop = :shop AND {_SCOPE} AND destination = :destination"
    " ORDER BY transit LIMIT 1 OFFSET :k"
)
HISTORY_ALL_COUNT = (
    "SELECT count(*) FROM order_facts INDEXED BY order_facts_transit"
    f" WHERE shop = :shop AND {_SCOPE}"
)
HISTORY_NTH = (
    "SELECT transit FROM order_facts INDEXED BY order_facts_transit"
    f" WHERE shop = :shop AND {_SCOPE} ORDER BY transit LIMIT 1 OFFSET :k"
)


_DAY_US = 86_400_000_000


_SHOPS = "shop IN (SELECT value FROM json_each(:shops))"


def _group(by_destination: bool) -> str:
    return "courier, product" + (", destination" if by_destination else "")


def counts(by_destination: bool, shop: bool) -> str:
    """The rows of `gateway.store.facts.Tally.add`: a pass over the counts index."""
    group = _group(by_destination)
    return (
        f"SELECT {group}, count(*), count(delivered_at), count(returned_at), count(problem_at),"
        " count(stuck_at), count(CASE WHEN delivered_at IS NOT NULL THEN est_max_days END),"
        f" count(CASE WHEN delivered_at <= shipped_at + est_max_days * {_DAY_US} THEN 1 END)"
        " FROM order_facts INDEXED BY order_facts_counts WHERE shipped_at >= :since"
        + (f" AND {_SHOPS}" if shop else "")
        + f" GROUP BY {group}"
    )


def hours(column: str, by_destination: bool, shop: bool) -> str:
    """The rows of `gateway.store.facts.Tally.add_hours`: `column`'s histogram by hour."""
    group = _group(by_destination)
    return (
        f"SELECT {group}, {column}_hour, count(*)"
        f" FROM order_facts INDEXED BY order_facts_{column}_all"
        f" WHERE {column} IS NOT NULL AND shipped_at >= :since"
        + (f" AND {_SHOPS}" if shop else "")
        + f" GROUP BY {group}, {column}_hour"
    )


def nth_in_hour(column: str, by_destination: bool, shop: bool) -> str:
    """The value of rank :k among the window's values of `column` in hour :hour."""
    where = f"courier = :courier AND product = :product AND {column}_hour = :hour"
    if by_destination:
        where += " AND destination = :destination"
    if shop:
        where += f" AND {_SHOPS}"
    return (
        f"SELECT {column} FROM order_facts INDEXED BY order_facts_{column}_all WHERE {where}"
        f" AND {column} IS NOT NULL AND shipped_at >= :since ORDER BY {column} LIMIT 1 OFFSET :k"
    )


def orders_of(where: str) -> str:
    return (
        f"SELECT {', '.join(COLUMNS)} FROM order_facts INDEXED BY order_facts_counts"
        f" WHERE {where} ORDER BY shipped_at DESC LIMIT ?"
    )


FACTS_LATEST = (
    "max(coalesce(created_at, 0), coalesce(shipped_at, 0), coalesce(delivered_at, 0),"
    " coalesce(returned_at, 0), coalesce(problem_at, 0), coalesce(stuck_at, 0))"
)
"""An order's latest stage time (0: none), as the ``order_facts_latest`` index has it
(schema migration 20: SQLite uses that index only for these very words)."""
_OLD_ORDERS = f"FROM order_facts WHERE {FACTS_LATEST} < :orders"
PRUNE_ORDERS = f"DELETE FROM order_facts WHERE rowid IN (SELECT rowid {_OLD_ORDERS} LIMIT :limit)"
"""Retention's ``orders`` step (`retention.orders`)."""
COUNT_OLD_ORDERS = f"SELECT count(*) {_OLD_ORDERS}"
