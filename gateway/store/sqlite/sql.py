"""Every statement the SQLite store runs, by name: the package's SQL lives here and only here.

Why one place: the statements are what the schema and its indexes serve. Read together they
show which index a query leans on and what a column change would break, and tuning one (claim,
retention) touches no Python. The role modules (ingest.py, queue.py, reads.py) bind parameters
and turn rows into structs; they hold no SQL of their own. The versioned DDL stays in
schema.py, because a shipped migration is history and never edited.

Times are integer microseconds since the Unix epoch, UTC (see rows.py). Statements whose
filter depends on the query are built by the functions at the end, from fixed fragments (the
admin's list filters come from `gateway.store.queries`, shared with PostgreSQL), with every value
bound as a parameter.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import partial
from typing import Any

from gateway.delivery.model import DeliveryFilter
from gateway.events import TERMINAL_STATUSES
from gateway.store.lanes import SUPERSEDED
from gateway.store.queries import Dialect, select
from gateway.store.roles import EventQuery, PushQuery
from gateway.store.sqlite.rows import to_us

# -- connections and transactions (store.py, writer.py, schema.py) ----------------------------
JOURNAL_WAL = "PRAGMA journal_mode=WAL"
SYNCHRONOUS_FULL = "PRAGMA synchronous=FULL"
BUSY_TIMEOUT = "PRAGMA busy_timeout=10000"


def cache_size(mb: int) -> str:
    """A connection's page cache of `mb` MiB (`store.cache_mb`): what each may keep resident."""
    return f"PRAGMA cache_size={-1024 * int(mb)}"  # negative: in KiB, not pages


BEGIN = "BEGIN IMMEDIATE"
COMMIT = "COMMIT"
ROLLBACK = "ROLLBACK"
SAVEPOINT = "SAVEPOINT job"
RELEASE = "RELEASE job"
ROLLBACK_TO = "ROLLBACK TO job"

CREATE_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY,"
    " applied_at INTEGER NOT NULL)"
)
APPLIED_VERSIONS = "SELECT version FROM schema_version"
RECORD_VERSION = "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)"

HEARTBEAT = (
    "INSERT INTO heartbeat (id, at) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)
CAN_READ = "SELECT 1 FROM schema_version"

# -- the push log's own file (store.py): attached to readers as `log` -------------------------
ATTACH_LOG = "ATTACH DATABASE ? AS log"
"""Readers see both files; the main file has no ``pushes`` table, so an unqualified
``pushes`` names the log's."""
DETACH_LOG = "DETACH DATABASE log"
MAIN_HAS_PUSHES = "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'pushes'"
MOVE_PUSHES = (
    "INSERT OR IGNORE INTO log.pushes (seq, id, source, method, items, received_at,"
    " content_type, body, state, error, processed_at, accepted, duplicates)"
    " SELECT seq, id, source, method, items, received_at, content_type, body, state, error,"
    " processed_at, accepted, duplicates FROM main.pushes"
)
"""A store from before the log had its own file: its entries go across, seq kept."""
DROP_MAIN_PUSHES = "DROP TABLE main.pushes"

# -- the push log and the intake (ingest.py) ---------------------------------------------------
PUSH_COLUMNS = (
    "seq, id, source, method, items, received_at, content_type, body, state, error,"
    " processed_at, accepted, duplicates, origin, shop"
)
APPEND_PUSH = (
    "INSERT INTO pushes"
    " (id, source, method, items, received_at, content_type, body, origin, shop, state)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending')"
)
PENDING_PUSHES = f"SELECT {PUSH_COLUMNS} FROM pushes WHERE state = 'pending' ORDER BY seq LIMIT ?"
COUNT_PENDING_PUSHES = "SELECT count(*) FROM pushes WHERE state = 'pending'"
LAST_EVENT_SEQ = "SELECT max(seq) FROM events"
EVENTS_AFTER_SEQ = "SELECT id FROM events WHERE seq > ?"
INSERT_EVENTS = (
    "INSERT OR IGNORE INTO events"
    " (id, order_id, status, method, occurred_at, received_at, body, push_id, shop)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " value -> 6, value ->> 7, value ->> 8 FROM json_each(?)"
)
"""One JSON array of rows per batch: one statement however many events."""
INSERT_DELIVERIES = (
    "INSERT OR IGNORE INTO deliveries (id, event_id, route, sink, order_id, occurred_at,"
    " ordering, template, stage, timed, shop, state, next_attempt_at, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " value ->> 6, value ->> 7, value ->> 8, value ->> 9, value ->> 10, 'pending', ?2, ?2, ?2"
    " FROM json_each(?1)"
)
UPSERT_CONTACT = (
    "INSERT INTO contacts (order_id, name, phone, email, updated_at, shop)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (order_id, shop) DO UPDATE SET"
    " name = CASE WHEN registered_at IS NULL THEN coalesce(excluded.name, name)"
    "  ELSE coalesce(name, excluded.name) END,"
    " phone = CASE WHEN registered_at IS NULL THEN coalesce(excluded.phone, phone)"
    "  ELSE coalesce(phone, excluded.phone) END,"
    " email = CASE WHEN registered_at IS NULL THEN coalesce(excluded.email, email)"
    "  ELSE coalesce(email, excluded.email) END,"
    " updated_at = excluded.updated_at"
)
"""What a push or a pulled answer says about the customer: it updates a contact it gave
before, and only fills the gaps of one the shop registered (registered wins)."""
MARK_PUSH = (
    "UPDATE pushes SET state = ?, error = ?, processed_at = ?, accepted = ?, duplicates = ?"
    " WHERE id = ? AND state = 'pending'"
)
"""An entry another intake recorded meanwhile keeps its record."""
UPDATE_REJECTED = "UPDATE rejected SET reason = ? WHERE id = ?"
INSERT_REJECTED = (
    "INSERT INTO rejected (received_at, reason, body, content_type, origin, shop)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)

# -- the delivery queue (queue.py) -------------------------------------------------------------
DELIVERY_COLUMNS = (
    "id, event_id, route, sink, order_id, occurred_at, ordering, template, state, attempts, "
    "next_attempt_at, created_at, updated_at, lease_owner, lease_until, last_error, delivered_at,"
    " waiting, fallback_of, started_at, shop"
)
DELIVERY_COLUMNS_SHOWN = DELIVERY_COLUMNS.replace(
    " waiting",
    " coalesce((SELECT 'sink switched off (' || disabled_reason || '): enable it with POST"
    " /admin/v1/sinks/' || sink_state.sink || '/enable' FROM sink_state"
    " WHERE sink_state.sink = deliveries.sink AND disabled_reason IS NOT NULL"
    " AND deliveries.state = 'pending'), waiting)",
)
"""The columns as shown to people: a pending delivery of a switched-off sink says so, even
before the dispatcher has looked at it (a disabled sink's deliveries are never claimed)."""

UNKNOWN_OUTCOMES = (
    "SELECT id, started_at FROM deliveries"
    " WHERE state = 'in_flight' AND lease_until <= ?1 AND started_at IS NOT NULL"
)
"""Customer sends that started and whose lease ran out with no outcome recorded (the process
died, or stopped without waiting for them): never leased again (`END_UNKNOWN`). Read through
the due index's in-flight rows, a handful."""
END_UNKNOWN = (
    "UPDATE deliveries SET state = 'dead', attempts = attempts + 1, last_error = ?2,"
    " lease_owner = NULL, lease_until = NULL, waiting = NULL, started_at = NULL,"
    " updated_at = ?1 WHERE id IN (SELECT value FROM json_each(?3)) AND state = 'in_flight'"
    f" RETURNING {DELIVERY_COLUMNS}"
)
CLAIM_PLAN = (
    "WITH due AS ("
    " SELECT sink, order_id, shop, next_attempt_at AS at FROM deliveries"
    "  WHERE state = 'pending' AND next_attempt_at <= ?1 AND sink NOT IN (SELECT sink"
    "   FROM sink_state WHERE disabled_reason IS NOT NULL)"
    " UNION ALL"
    " SELECT sink, order_id, shop, lease_until FROM deliveries"
    "  WHERE state = 'in_flight' AND lease_until <= ?1 AND sink NOT IN (SELECT sink"
    "   FROM sink_state WHERE disabled_reason IS NOT NULL)"
    " ORDER BY at LIMIT ?2),"
    " lanes AS (SELECT DISTINCT sink, order_id, shop FROM due),"
    " lane AS ("
    " SELECT d.id, d.sink, d.order_id, d.shop, d.state, d.occurred_at, d.seq, d.next_attempt_at,"
    "  d.lease_until, d.ordering, d.stage, d.timed,"
    "  coalesce(d.state = 'in_flight' AND d.lease_until > ?1, 0) AS live,"
    "  coalesce(sum(d.state = 'delivered') OVER (PARTITION BY d.sink, d.order_id, d.shop"
    "   ORDER BY d.stage, d.timed, d.occurred_at, d.seq"
    "   ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING), 0) AS outranked,"
    "  max(coalesce(d.state = 'in_flight' AND d.lease_until > ?1, 0))"
    "   OVER (PARTITION BY d.sink, d.order_id, d.shop) AS busy"
    " FROM lanes JOIN deliveries AS d ON d.order_id = lanes.order_id AND d.sink = lanes.sink"
    "  AND d.shop = lanes.shop"
    " WHERE d.state IN ('pending', 'in_flight', 'delivered')),"
    " waiting AS ("
    " SELECT id, seq, state, next_attempt_at, lease_until, busy, ordering,"
    "  row_number() OVER (PARTITION BY sink, order_id, shop ORDER BY seq) AS oldest,"
    "  row_number() OVER (PARTITION BY sink, order_id, shop"
    "   ORDER BY stage DESC, timed DESC, occurred_at DESC, seq DESC) AS best,"
    "  first_value(ordering) OVER (PARTITION BY sink, order_id, shop ORDER BY seq DESC)"
    "   AS lane_ordering"
    " FROM lane WHERE state != 'delivered' AND NOT live"
    "  AND NOT (ordering = 'latest' AND outranked > 0))"
    " SELECT id, 0 AS take, NULL AS at, seq FROM lane"
    "  WHERE state != 'delivered' AND NOT live AND ordering = 'latest' AND outranked > 0"
    " UNION ALL"
    " SELECT id, 0, NULL, seq FROM waiting"
    "  WHERE NOT busy AND lane_ordering = 'latest' AND ordering = 'latest' AND best > 1"
    " UNION ALL"
    " SELECT id, 1, CASE WHEN state = 'pending' THEN next_attempt_at ELSE lease_until END, seq"
    "  FROM waiting WHERE NOT busy"
    "  AND CASE WHEN lane_ordering = 'latest' THEN best ELSE oldest END = 1"
    "  AND CASE WHEN state = 'pending' THEN next_attempt_at <= ?1"
    "   ELSE coalesce(lease_until <= ?1, 1) END"
    " ORDER BY take, at, seq"
)
"""The whole claim decision in one statement (``?1`` now, ``?2`` how many due rows to look
at): rows ``(id, take, due, seq)``, the ones to supersede (``take = 0``) first, then the ones
to lease in the order they fell due. Only lanes with a due row are read, through the due and
lane indexes, so its cost follows the batch, not the backlog. The rules are those of
`gateway.store.lanes.plan_claims`, as windows over each lane: a ``latest`` row ranked (by
stage, timed, occurred_at, seq) below a ``delivered`` one is stale; a live lease makes the
lane busy; of the rest, a ``latest`` lane (its newest row's ordering) keeps its best-ranked
row and supersedes its other ``latest`` rows, an ``all`` lane takes its oldest row (by seq),
once due."""
SUPERSEDE = (
    "UPDATE deliveries SET state = 'superseded', lease_owner = NULL, lease_until = NULL,"
    f" waiting = NULL, last_error = '{SUPERSEDED}',"
    " updated_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
    f" RETURNING {DELIVERY_COLUMNS}"
)
LEASE = (
    "UPDATE deliveries SET state = 'in_flight', lease_owner = ?1, lease_until = ?2,"
    f" updated_at = ?3 WHERE id IN (SELECT value FROM json_each(?4)) RETURNING {DELIVERY_COLUMNS}"
)
RENEW = (
    "UPDATE deliveries SET lease_until = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
    " AND state = 'in_flight' AND lease_owner = ?3 RETURNING id"
)
"""A worker keeps the deliveries it is still sending (`DeliveryQueue.renew`)."""
START = (
    "UPDATE deliveries SET started_at = ?1 WHERE id IN (SELECT value FROM json_each(?2))"
    " AND state = 'in_flight' AND lease_owner = ?3 AND lease_until > ?1 RETURNING id"
)
"""A customer send is about to leave (`DeliveryQueue.start`): only under a live lease."""
CLAIMED_EVENTS = (
    "SELECT id, body FROM events WHERE id IN (SELECT value FROM json_each(?1))"
    " UNION ALL SELECT id, body FROM digest_runs WHERE id IN (SELECT value FROM json_each(?1))"
)
"""A digest's deliveries name its stand-in event in ``digest_runs`` (`gateway.digests`)."""
CLAIMED_CONTACTS = (
    "SELECT order_id, name, phone, email, language, shop FROM contacts"
    " WHERE (order_id, shop) IN (SELECT value ->> 0, value ->> 1 FROM json_each(?))"
)
"""``?`` a JSON array of [order id, shop]."""
FINISH = (
    "UPDATE deliveries SET state = ?1, attempts = attempts + ?2,"
    " next_attempt_at = coalesce(?3, next_attempt_at),"
    " last_error = CASE WHEN ?1 = 'delivered' THEN NULL"
    "  ELSE coalesce(?4, last_error) END, waiting = ?8,"
    " delivered_at = CASE WHEN ?1 = 'delivered' THEN ?5 ELSE delivered_at END,"
    " lease_owner = CASE WHEN ?1 = 'in_flight' THEN lease_owner END,"
    " lease_until = CASE WHEN ?1 = 'in_flight' THEN lease_until END,"
    " started_at = CASE WHEN ?1 = 'in_flight' THEN started_at END,"
    " updated_at = ?5"
    " WHERE id = ?6 AND state = 'in_flight' AND lease_owner = ?7"
)
"""Only the lease holder may finish: a lost lease updates nothing."""
INSERT_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, error)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
FINISH_MANY = (
    "UPDATE deliveries SET state = f.value ->> 1, attempts = attempts + (f.value ->> 2),"
    " next_attempt_at = coalesce(f.value ->> 3, next_attempt_at),"
    " last_error = CASE WHEN f.value ->> 1 = 'delivered' THEN NULL"
    "  ELSE coalesce(f.value ->> 4, last_error) END, waiting = f.value ->> 6,"
    " delivered_at = CASE WHEN f.value ->> 1 = 'delivered' THEN f.value ->> 5"
    "  ELSE delivered_at END,"
    " lease_owner = CASE WHEN f.value ->> 1 = 'in_flight' THEN lease_owner END,"
    " lease_until = CASE WHEN f.value ->> 1 = 'in_flight' THEN lease_until END,"
    " started_at = CASE WHEN f.value ->> 1 = 'in_flight' THEN started_at END,"
    " updated_at = f.value ->> 5"
    " FROM json_each(?1) AS f"
    " WHERE deliveries.id = f.value ->> 0 AND +deliveries.state = 'in_flight'"
    " AND +deliveries.lease_owner = ?2"
    " RETURNING deliveries.id"
)
"""`FINISH` for a batch: one JSON array of ``[id, state, counted, next_attempt_at, error,
now, waiting]`` rows (ids distinct); returns the ids whose lease was still held. The unary
``+`` keeps the planner off the state index: walking every in-flight row and reading the
whole array for each is quadratic in the batch, looking each id up is not."""
INSERT_ATTEMPTS = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, error)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5"
    " FROM json_each(?)"
)
REPLAY_SET = (
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?,"
    " updated_at = ?, lease_owner = NULL, lease_until = NULL, waiting = NULL,"
    " started_at = NULL"
)
REPLAY_ONE = REPLAY_SET + " WHERE id = ? AND state IN ('dead', 'skipped', 'superseded')"
NEXT_DUE = (
    "SELECT min(t) FROM ("
    " SELECT min(next_attempt_at) AS t FROM deliveries WHERE state = 'pending'"
    " UNION ALL"
    " SELECT min(lease_until) FROM deliveries WHERE state = 'in_flight')"
)
SINK_COUNTS = (
    "SELECT sink, sum(state IN ('pending', 'in_flight')), sum(state = 'dead')"
    " FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY sink"
)
SHOP_SINK_COUNTS = (
    "SELECT sink, sum(state IN ('pending', 'in_flight')), sum(state = 'dead'), shop"
    " FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY sink, shop"
)
DISABLE_SINK = (
    "INSERT INTO sink_state (sink, disabled_reason, disabled_at) VALUES (?, ?, ?)"
    " ON CONFLICT (sink) DO UPDATE SET disabled_reason = excluded.disabled_reason,"
    " disabled_at = excluded.disabled_at"
)
ENABLE_SINK = (
    "UPDATE sink_state SET disabled_reason = NULL, disabled_at = NULL"
    " WHERE sink = ? AND disabled_reason IS NOT NULL"
)
DISABLED_SINKS = "SELECT sink, disabled_reason FROM sink_state WHERE disabled_reason IS NOT NULL"
RELEASE_SINK = (
    "UPDATE deliveries SET next_attempt_at = ?2, waiting = NULL, updated_at = ?2"
    " WHERE sink = ?1 AND state = 'pending' AND (next_attempt_at > ?2 OR waiting IS NOT NULL)"
)

# -- grouped routes' groups (ingest.py, queue.py, reads.py: `gateway.delivery.grouping`) -------
GROUP_STATES = (
    "SELECT id, open_message, last_closed_at FROM groups"
    " WHERE id IN (SELECT value FROM json_each(?))"
)
INSERT_GROUP_MESSAGES = (
    "INSERT OR IGNORE INTO deliveries (id, event_id, route, sink, order_id, occurred_at,"
    " ordering, template, stage, timed, state, next_attempt_at, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5,"
    " 'all', value ->> 6, 0, 0, 'pending', value ->> 7, ?2, ?2 FROM json_each(?1)"
)
"""A group's new message: a delivery on the group's lane (``order_id`` is the group's id),
due when `gateway.delivery.grouping.message_due` said."""
OPEN_GROUPS = (
    "INSERT INTO groups (id, route, sink, key, open_message, created_at, updated_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4, ?2, ?2"
    " FROM json_each(?1) WHERE true ON CONFLICT (id) DO UPDATE SET"
    " open_message = excluded.open_message, updated_at = excluded.updated_at"
)
INSERT_GROUP_EVENTS = (
    "INSERT OR IGNORE INTO group_events (message_id, group_id, event_id)"
    " SELECT value ->> 0, value ->> 1, value ->> 2 FROM json_each(?)"
)
CLOSE_GROUPS = (
    "UPDATE groups SET open_message = NULL, last_closed_at = ?1, updated_at = ?1"
    " WHERE open_message IN (SELECT value FROM json_each(?2))"
)
"""Messages claimed for the first time take no more events: the next event opens the next."""
MESSAGE_EVENTS = (
    "SELECT m.message_id, coalesce(g.key, '{}'), e.body FROM group_events AS m"
    " JOIN events AS e ON e.id = m.event_id LEFT JOIN groups AS g ON g.id = m.group_id"
    " WHERE m.message_id IN (SELECT value FROM json_each(?)) ORDER BY m.message_id, m.seq"
)
GROUP_SOURCE = "SELECT coalesce(fallback_of, id), order_id FROM deliveries WHERE id = ?"
"""The message whose events a delivery carries: its own, or (a fallback) the one it replaces."""
WAITING_GROUPS = (
    "SELECT g.id, g.route, g.sink, g.key, g.open_message, d.next_attempt_at,"
    " (SELECT count(*) FROM group_events AS m WHERE m.message_id = g.open_message)"
    " FROM groups AS g JOIN deliveries AS d ON d.id = g.open_message"
    " WHERE g.open_message IS NOT NULL ORDER BY d.next_attempt_at, g.id"
)

# -- admin reads (reads.py) --------------------------------------------------------------------
GET_PUSH = f"SELECT {PUSH_COLUMNS} FROM pushes WHERE id = ?"
GET_EVENT = "SELECT body FROM events WHERE id = ?"
GET_CONTACT = (
    "SELECT order_id, name, phone, email, language, shop FROM contacts"
    " WHERE order_id = ? AND shop = ?"
)
REJECTED_COLUMNS = "id, received_at, reason, body, content_type, origin, shop"
GET_REJECTED = f"SELECT {REJECTED_COLUMNS} FROM rejected WHERE id = ?"
DELETE_REJECTED = "DELETE FROM rejected WHERE id = ?"
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries WHERE id = ?"
ATTEMPTS_OF = (
    "SELECT delivery_id, started_at, duration_ms, outcome, status_code, error"
    " FROM attempts WHERE delivery_id = ? ORDER BY id"
)


# -- contacts the shop registers, and fallback deliveries (contacts.py, queue.py) --------------
REGISTER_CONTACTS = (
    "INSERT INTO contacts (order_id, name, phone, email, language, shop, updated_at,"
    " registered_at) SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4,"
    " value ->> 5, ?2, ?2 FROM json_each(?1) WHERE true"
    " ON CONFLICT (order_id, shop) DO UPDATE SET name = coalesce(excluded.name, name),"
    " phone = coalesce(excluded.phone, phone), email = coalesce(excluded.email, email),"
    " language = coalesce(excluded.language, language), updated_at = excluded.updated_at,"
    " registered_at = excluded.registered_at"
)
"""One JSON array of rows; a field the shop leaves empty keeps what a push said. (``WHERE
true`` keeps SQLite from reading ``ON CONFLICT`` as part of the SELECT's join.)"""
DELETE_CONTACT = "DELETE FROM contacts WHERE order_id = ? AND shop = ?"
INSERT_FALLBACK = (
    "INSERT OR IGNORE INTO deliveries (id, event_id, route, sink, order_id, occurred_at,"
    " ordering, template, stage, timed, state, next_attempt_at, created_at, updated_at,"
    " fallback_of, shop)"
    " SELECT ?1, event_id, ?2, ?3, order_id, occurred_at, ?4, ?5, stage, timed, 'pending',"
    " ?6, ?6, ?6, id, shop"
    " FROM deliveries WHERE id = ?7 AND fallback_of IS NULL"
)
"""The fallback of a delivery that ended dead or skipped, due now; never a fallback's
fallback, and at most one per delivery (unique index on ``fallback_of``)."""


# -- statements whose filter depends on the query (the admin's lists: gateway.store.queries) ----
_DIALECT = Dialect(mark="?", time=to_us, awb="(body ->> '$.awb')")
list_rejected = partial(_DIALECT.list_rejected, f"SELECT {REJECTED_COLUMNS} FROM rejected")
count_rejected = partial(_DIALECT.count_rejected, "SELECT count(*) FROM rejected")


def _marks(count: int) -> str:
    return ", ".join("?" for _ in range(count))


def pushes_taken(count: int) -> str:
    """Which of `count` push ids are no longer ``pending`` (another intake finished them)."""
    return f"SELECT id FROM pushes WHERE id IN ({_marks(count)}) AND state != 'pending'"


def events_by_id(count: int) -> str:
    return f"SELECT id, body, push_id FROM events WHERE id IN ({_marks(count)})"


def requeue_pushes(state: str, since: int | None, ids: Sequence[str]) -> tuple[str, list[Any]]:
    where = ["state = ?"]
    params: list[Any] = [state]
    if since is not None:
        where.append("received_at >= ?")
        params.append(since)
    if ids:
        where.append(f"id IN ({_marks(len(ids))})")
        params.extend(ids)
    head = "UPDATE pushes SET state = 'pending', error = NULL, processed_at = NULL"
    return select(head, where), params


def list_pushes(query: PushQuery) -> tuple[str, list[Any]]:
    return _DIALECT.list_pushes(f"SELECT {PUSH_COLUMNS} FROM pushes", query)


def list_events(query: EventQuery) -> tuple[str, list[Any]]:
    return _DIALECT.list_events("SELECT seq, body FROM events", query)


def list_deliveries(query: DeliveryFilter) -> tuple[str, list[Any]]:
    return _DIALECT.list_deliveries(f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries", query)


def replay(query: DeliveryFilter, now: datetime) -> tuple[str, list[Any]]:
    return _DIALECT.replay(REPLAY_SET, query, now)


# -- moving a store (copying.py) ----------------------------------------------------------------
# Table and column names come from `gateway.store.moving.TABLES`, never from input.
def copy_out(table: str, key: str, columns: Sequence[str]) -> str:
    """A page of `table` past ``?1`` (NULL: from the start), at most ``?2`` rows, key first."""
    return (
        f"SELECT {key}, {', '.join(columns)} FROM {table}"
        f" WHERE ?1 IS NULL OR {key} > ?1 ORDER BY {key} LIMIT ?2"
    )


def copy_in(table: str, columns: Sequence[str]) -> str:
    """Insert a row unless one with its id (a unique column) is there already."""
    marks = ", ".join("?" * len(columns))
    return f"INSERT OR IGNORE INTO {table} ({', '.join(columns)}) VALUES ({marks})"


COPY_IN_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, error)"
    " SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE NOT EXISTS (SELECT 1 FROM attempts"
    " WHERE delivery_id = ?1 AND started_at = ?2 AND outcome = ?4)"
)
"""Attempts have no id of their own: one is there already when its delivery has one started at
the same moment with the same outcome."""


# -- retention (prune.py) ----------------------------------------------------------------------
# Rows go oldest first. Each table is scanned in its insertion order (seq or id) only up to the
# first row young enough to stay (`*_YOUNG`, the "bound"), so a prune needs no index on a time
# column and reads little more than what it removes; a row inserted out of arrival order just
# waits until the bound passes it. Cut-offs are bound as NULL for "kept for ever": a comparison
# with NULL is never true.
PUSHES_YOUNG = "SELECT seq FROM pushes WHERE received_at >= ? ORDER BY seq LIMIT 1"
EVENTS_YOUNG = "SELECT seq FROM events WHERE received_at >= ? ORDER BY seq LIMIT 1"
DELIVERIES_YOUNG = "SELECT seq FROM deliveries WHERE created_at >= ? ORDER BY seq LIMIT 1"
"""A delivery changed before a cut-off was created before it, too."""
REJECTED_YOUNG = "SELECT id FROM rejected WHERE received_at >= ? ORDER BY id LIMIT 1"

_FINISHED_DELIVERIES = (
    "FROM deliveries WHERE seq < :bound AND ("
    " (state IN ('delivered', 'superseded', 'skipped') AND updated_at < :delivered)"
    " OR (state = 'dead' AND updated_at < :dead))"
)
_KEPT_DELIVERY = (
    "(d.state IN ('pending', 'in_flight')"
    " OR (d.state = 'dead' AND (:dead IS NULL OR d.updated_at >= :dead)))"
)
_OLD_EVENTS = (
    "FROM events e WHERE seq < :bound AND received_at < :events AND NOT EXISTS ("
    " SELECT 1 FROM deliveries d WHERE d.order_id = e.order_id AND d.event_id = e.id"
    f" AND {_KEPT_DELIVERY}) AND NOT EXISTS (SELECT 1 FROM group_events AS m"
    f" JOIN deliveries AS d ON d.id = m.message_id WHERE m.event_id = e.id AND {_KEPT_DELIVERY})"
)
"""An event goes only once nothing of it is still to send or to look at (a dead delivery
within its window), its own or a grouped message it is in; the deliveries' lane index finds
them by order, the group events' index by event."""
_OLD_PUSHES = "FROM pushes WHERE seq < :bound AND state = 'processed' AND received_at < :pushes"
_OLD_REJECTED = "FROM rejected WHERE id < :bound AND received_at < :rejected"

PRUNABLE_DELIVERIES = f"SELECT id {_FINISHED_DELIVERIES} ORDER BY seq LIMIT :limit"
PRUNABLE_EVENTS = f"SELECT id, order_id {_OLD_EVENTS} ORDER BY seq LIMIT :limit"
DELIVERIES_OF_EVENTS = (
    "SELECT d.id FROM json_each(?) AS j JOIN deliveries AS d"
    " ON d.order_id = j.value ->> 1 AND d.event_id = j.value ->> 0"
)
"""``?`` a JSON array of [event id, order id]."""
PRUNE_ATTEMPTS = "DELETE FROM attempts WHERE delivery_id IN (SELECT value FROM json_each(?))"
PRUNE_DELIVERIES = "DELETE FROM deliveries WHERE id IN (SELECT value FROM json_each(?))"
PRUNE_GROUP_EVENTS = "DELETE FROM group_events WHERE message_id IN (SELECT value FROM json_each(?))"
PRUNE_IDLE_GROUPS = (
    "DELETE FROM groups WHERE open_message IS NULL AND last_closed_at < ?1 AND NOT EXISTS ("
    " SELECT 1 FROM deliveries AS d WHERE d.order_id = groups.id"
    " AND d.state IN ('pending', 'in_flight', 'dead'))"
)
"""Groups quiet since before the cut-off, with no message left to send or to look at: the
next event of one starts it afresh, as a first (a key per order leaves no row per order)."""
PRUNE_EVENTS = "DELETE FROM events WHERE id IN (SELECT value FROM json_each(?))"
PRUNE_PUSHES = (
    f"DELETE FROM pushes WHERE seq IN (SELECT seq {_OLD_PUSHES} ORDER BY seq LIMIT :limit)"
)
PRUNE_REJECTED = (
    f"DELETE FROM rejected WHERE id IN (SELECT id {_OLD_REJECTED} ORDER BY id LIMIT :limit)"
)
COUNT_PRUNABLE = (
    f"WITH ev AS (SELECT id, order_id {_OLD_EVENTS.replace(':bound', ':events_bound')}),"
    f" dl AS (SELECT id {_FINISHED_DELIVERIES}"
    "  UNION SELECT d.id FROM ev JOIN deliveries AS d"
    "  ON d.order_id = ev.order_id AND d.event_id = ev.id)"
    " SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM dl),"
    " (SELECT count(*) FROM attempts WHERE delivery_id IN (SELECT id FROM dl)),"
    f" (SELECT count(*) {_OLD_PUSHES.replace(':bound', ':pushes_bound')}),"
    f" (SELECT count(*) {_OLD_REJECTED.replace(':bound', ':rejected_bound')})"
)
"""What pruning every step until none is left removes: the deliveries of the events that go
count once, whether their own window or their event's takes them."""


# -- the pull tracker's orders (tracking.py) ---------------------------------------------------
_FINAL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATUSES))
TRACKING_COLUMNS = (
    "order_id, kind, last_status, last_update, closed, last_pulled_at, next_pull_at, gone,"
    " stuck_status, stuck_since, last_asked_at, shop"
)
TRACKING_CURSOR = "SELECT event_seq, contacts_at FROM tracking_cursor WHERE id = 1"
SET_TRACKING_CURSOR = "UPDATE tracking_cursor SET event_seq = ?, contacts_at = ? WHERE id = 1"
LAST_CONTACT_AT = "SELECT max(updated_at) FROM contacts"
TRACKING_FROM_EVENTS = (
    "INSERT INTO tracking (order_id, shop, kind, last_status, last_update, closed, added_at)"
    " SELECT order_id, shop, coalesce(body ->> '$.kind', 'express'), status, occurred_at,"
    f" status IN ({_FINAL}), ?3"
    " FROM events WHERE seq > ?1 AND seq <= ?2 AND status != 'stuck' ORDER BY seq"
    " ON CONFLICT (order_id, shop) DO UPDATE SET kind = excluded.kind,"
    " closed = closed OR excluded.closed,"
    " last_status = CASE WHEN last_update IS NULL OR excluded.last_update >= last_update"
    "  THEN excluded.last_status ELSE last_status END,"
    " last_update = max(coalesce(last_update, excluded.last_update), excluded.last_update)"
)
"""Events past the cursor (``?1`` < seq <= ``?2``, ``?3`` now): the newest status by
``occurred_at`` wins, a final status closes the order for good."""
TRACKING_FROM_CONTACTS = (
    "INSERT INTO tracking (order_id, shop, added_at)"
    " SELECT order_id, shop, ?2 FROM contacts WHERE updated_at > ?1"
    " ON CONFLICT (order_id, shop) DO NOTHING"
)
TRACK_ORDER = (
    "INSERT INTO tracking (order_id, kind, added_at, shop) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (order_id, shop) DO NOTHING"
)
CLAIM_PULLS = (
    "UPDATE tracking SET lease_until = :lease WHERE (order_id, shop) IN ("
    " SELECT order_id, shop FROM tracking"
    "  WHERE closed = 0 AND gone IS NULL AND coalesce(lease_until, 0) <= :now"
    "  AND (((:pulled_before IS NULL OR :catch_up_shops IS NOT NULL)"
    "        AND coalesce(last_update, 0) < :stale_before"
    "        AND coalesce(next_pull_at, 0) <= :now)"
    "    OR (coalesce(last_pulled_at, 0) < :pulled_before AND (:catch_up_shops IS NULL"
    "        OR shop IN (SELECT value FROM json_each(:catch_up_shops)))))"
    "  AND (:asked_before IS NULL OR coalesce(last_asked_at, 0) < :asked_before)"
    "  ORDER BY last_asked_at NULLS FIRST, coalesce(last_update, 0), order_id, shop"
    "  LIMIT :limit)"
    f" RETURNING {TRACKING_COLUMNS}"
)
"""The lease is the claim: an order whose ``lease_until`` is in the future is another
worker's (PostgreSQL: the same with ``FOR UPDATE SKIP LOCKED`` in the subquery)."""
FINISH_PULL = (
    "UPDATE tracking SET lease_until = NULL, next_pull_at = :next,"
    " last_pulled_at = CASE WHEN :answered THEN :now ELSE last_pulled_at END,"
    " last_asked_at = CASE WHEN :asked THEN :now ELSE last_asked_at END,"
    " gone = coalesce(:gone, gone) WHERE order_id = :order_id AND shop = :shop"
)
CLAIM_STUCK = (
    "UPDATE tracking SET stuck_status = last_status, stuck_since = last_update"
    " WHERE (order_id, shop) IN ("
    " SELECT t.order_id, t.shop FROM tracking AS t JOIN json_each(?1) AS j ON j.key = t.last_status"
    "  WHERE t.closed = 0 AND t.gone IS NULL AND t.last_update < ?2 - j.value"
    "  AND (t.stuck_since IS NULL OR t.stuck_since != t.last_update"
    "       OR t.stuck_status != t.last_status)"
    "  ORDER BY t.last_update LIMIT ?3)"
    f" RETURNING {TRACKING_COLUMNS}"
)
"""``?1`` a JSON object status → microseconds, ``?2`` now, ``?3`` how many."""
KNOWN_STATUSES = (
    "SELECT DISTINCT status, CASE WHEN status = 'problem' THEN body ->> '$.reason' END"
    " FROM events WHERE order_id = ? AND shop = ? AND status != 'stuck'"
)
LAST_PUSH_AT = "SELECT received_at FROM pushes WHERE source = 'push' ORDER BY seq DESC LIMIT 1"
LAST_SHOP_PUSH_AT = (
    "SELECT received_at FROM pushes WHERE source = 'push' AND shop = ? ORDER BY seq DESC LIMIT 1"
)
GET_TRACKING = f"SELECT {TRACKING_COLUMNS} FROM tracking WHERE order_id = ? AND shop = ?"
TRACKING_COUNTS = (
    "SELECT count(*), coalesce(sum(stuck_since = last_update AND stuck_status = last_status), 0)"
    " FROM tracking WHERE closed = 0 AND gone IS NULL"
)
OLDEST_DUE_PULL = (
    "SELECT min(max(coalesce(last_update, 0) + :stale, coalesce(next_pull_at, 0), added_at))"
    " FROM tracking WHERE closed = 0 AND gone IS NULL"
    " AND coalesce(last_update, 0) < :now - :stale AND coalesce(next_pull_at, 0) <= :now"
)
"""When the order due longest on the regular schedule became due (`CLAIM_PULLS`' regular
pass; ``:stale`` is ``stale_after`` in microseconds)."""

# -- the dashboard's sessions ---------------------------------------------------------------
CREATE_SESSION = (
    "INSERT INTO sessions (key, csrf, created_at, used_at, flash, token_mac)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
EXPIRE_SESSIONS = "DELETE FROM sessions WHERE used_at < ?"
GET_SESSION = "SELECT key, csrf, created_at, used_at, flash, token_mac FROM sessions WHERE key = ?"
UPDATE_SESSION = "UPDATE sessions SET used_at = ?, flash = ? WHERE key = ?"
DELETE_SESSION = "DELETE FROM sessions WHERE key = ?"


# -- digests (digests.py) ----------------------------------------------------------------------
DIGEST_SNAPSHOT = "BEGIN DEFERRED"
_DIGEST_WINDOW = "FROM events WHERE received_at >= ?1 AND received_at < ?2"
DIGEST_BY_STATUS = f"SELECT status, count(*) {_DIGEST_WINDOW} GROUP BY status"
DIGEST_BY_COURIER = (
    "SELECT coalesce(nullif(body ->> '$.details.service', ''),"
    f" nullif(body ->> '$.raw.service', ''), '') AS courier, count(*) {_DIGEST_WINDOW}"
    " GROUP BY courier ORDER BY count(*) DESC, courier"
)
DIGEST_STUCK = (
    "SELECT order_id, body ->> '$.awb', body ->> '$.raw_status', received_at,"
    f" body ->> '$.reason' {_DIGEST_WINDOW} AND status = 'stuck' ORDER BY received_at DESC LIMIT ?3"
)
DIGEST_STUCK_TOTAL = f"SELECT count(*) {_DIGEST_WINDOW} AND status = 'stuck'"
DIGEST_TROUBLES = (
    f"SELECT status, body ->> '$.reason' AS reason, count(*) {_DIGEST_WINDOW}"
    " AND status IN (SELECT value FROM json_each(?4))"
    " GROUP BY status, reason ORDER BY count(*) DESC, status, reason LIMIT ?3"
)
DIGEST_DEAD = (
    "SELECT sink, count(*) FROM deliveries WHERE state = 'dead'"
    " AND updated_at >= ?1 AND updated_at < ?2 GROUP BY sink ORDER BY sink"
)
LAST_DIGEST = "SELECT last_period FROM digests WHERE name = ?"
CLAIM_DIGEST_PERIOD = (
    "INSERT INTO digests (name, last_period, updated_at) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (name) DO UPDATE SET last_period = excluded.last_period,"
    " updated_at = excluded.updated_at WHERE excluded.last_period > digests.last_period"
    " RETURNING name"
)
"""Claims the period only past the one recorded: a second claim of it returns no row."""
INSERT_DIGEST_RUN = (
    "INSERT INTO digest_runs (id, digest, order_id, period, created_at, body)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
FORGET_DIGEST_RUNS = (
    "DELETE FROM digest_runs WHERE id IN (SELECT r.id FROM digest_runs AS r"
    " WHERE r.digest = ?1 AND r.created_at < ?2 AND NOT EXISTS (SELECT 1 FROM deliveries AS d"
    "  WHERE d.order_id = r.order_id AND d.event_id = r.id) LIMIT 100)"
)
"""Old runs none of whose deliveries is left (retention removed them); the lane index finds
the deliveries by order."""
