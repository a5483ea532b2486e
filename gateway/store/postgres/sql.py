"""Every statement the PostgreSQL store runs, by name: the package's SQL lives here and only here.

The versioned DDL stays in schema.py (history, never edited). Batches travel as one array
parameter per column, expanded with ``unnest``: one statement however many rows. Parameters
carry explicit casts where a ``NULL`` would otherwise leave PostgreSQL guessing the type.
Statements whose filter depends on the query are built by the functions at the end, from fixed
fragments (the admin's list filters come from `gateway.store.queries`, shared with SQLite), with
every value bound as a parameter.
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

# -- connections, migrations, notifications (store.py, schema.py, writer.py) ---------------------
SET_UTC = "SET TIME ZONE 'UTC'"
CURRENT_SCHEMA = "SELECT current_schema()"
MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('kabarin.migrate.' || current_schema(), 0))"
)
"""Held until the migrating transaction ends: replicas starting together take turns."""
CREATE_SCHEMA_VERSION = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY,"
    " applied_at timestamptz NOT NULL)"
)
APPLIED_VERSIONS = "SELECT version FROM schema_version"
RECORD_VERSION = "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)"
HEARTBEAT = (
    "INSERT INTO heartbeat (id, at) VALUES (1, %s) ON CONFLICT (id) DO UPDATE SET at = excluded.at"
)
CAN_READ = "SELECT 1 FROM schema_version LIMIT 1"

# -- the dashboard's sessions ------------------------------------------------------------------
CREATE_SESSION = (
    "INSERT INTO sessions (key, csrf, created_at, used_at, flash, token_mac)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)
EXPIRE_SESSIONS = "DELETE FROM sessions WHERE used_at < %s"
GET_SESSION = "SELECT key, csrf, created_at, used_at, flash, token_mac FROM sessions WHERE key = %s"
UPDATE_SESSION = "UPDATE sessions SET used_at = %s, flash = %s WHERE key = %s"
DELETE_SESSION = "DELETE FROM sessions WHERE key = %s"

PUSHES_CHANNEL = "kabarin_pushes"
DELIVERIES_CHANNEL = "kabarin_deliveries"
NOTIFY = "SELECT pg_notify(%s, current_schema())"
"""Delivered when the transaction commits, never for one that rolls back. The payload names
the schema, so deployments sharing a database ignore each other's news."""
LISTEN_PUSHES = f"LISTEN {PUSHES_CHANNEL}"
LISTEN_DELIVERIES = f"LISTEN {DELIVERIES_CHANNEL}"

# -- the push log and the intake ---------------------------------------------------------------
PUSH_COLUMNS = (
    "seq, id, source, method, items, received_at, content_type, body, state, error,"
    " processed_at, accepted, duplicates, origin, shop"
)
APPEND_PUSH = (
    "INSERT INTO pushes"
    " (id, source, method, items, received_at, content_type, body, origin, shop, state)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'pending')"
)
CLAIM_PUSHES = (
    "UPDATE pushes SET lease_owner = %(owner)s::text,"
    " lease_until = coalesce(%(now)s::timestamptz, statement_timestamp())"
    "  + %(lease)s::float8 * interval '1 second'"
    " WHERE seq IN (SELECT seq FROM pushes WHERE state = 'pending'"
    "  AND (lease_until IS NULL OR lease_owner = %(owner)s::text"
    "   OR lease_until <= coalesce(%(now)s::timestamptz, statement_timestamp()))"
    "  ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    f" RETURNING {PUSH_COLUMNS}"
)
"""The oldest pending entries nobody else holds, leased to this store: another replica's
intake skips them until the lease ends (the replica died) or they are recorded."""
COUNT_PENDING_PUSHES = "SELECT count(*) FROM pushes WHERE state = 'pending'"
LOCK_PUSHES = "SELECT id, state FROM pushes WHERE id = ANY(%s) ORDER BY seq FOR UPDATE"
"""Waits for another intake recording the same entries, then shows what it decided."""
INSERT_EVENTS = (
    "INSERT INTO events (id, order_id, status, method, occurred_at, received_at, body, push_id,"
    " shop) SELECT i, o, s, m, oa, ra, b::json, p, sh FROM unnest(%s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::timestamptz[], %s::timestamptz[], %s::text[], %s::text[],"
    " %s::text[]) AS r(i, o, s, m, oa, ra, b, p, sh)"
    " ON CONFLICT (id) DO NOTHING RETURNING id"
)
"""Returns the ids it stored: a duplicate, even one another replica is storing right now,
is not among them."""
INSERT_DELIVERIES = (
    "INSERT INTO deliveries (id, event_id, route, sink, order_id, occurred_at, ordering,"
    " template, stage, timed, shop, state, next_attempt_at, created_at, updated_at)"
    " SELECT i, e, r, s, o, oa, ord, t, st, ti, sh, 'pending', n.now, n.now, n.now"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::timestamptz[], %s::text[], %s::text[], %s::integer[], %s::integer[], %s::text[])"
    " WITH ORDINALITY AS d(i, e, r, s, o, oa, ord, t, st, ti, sh, n)"
    " CROSS JOIN (SELECT %s::timestamptz AS now) AS n"
    " ORDER BY d.n ON CONFLICT (id) DO NOTHING"
)
"""In the order given (the events' arrival order): ``seq`` is the order ``ordering: all``
sends them in."""
UPSERT_CONTACT = (
    "INSERT INTO contacts (order_id, name, phone, email, updated_at, shop)"
    " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (order_id, shop) DO UPDATE SET"
    " name = CASE WHEN contacts.registered_at IS NULL"
    "  THEN coalesce(excluded.name, contacts.name) ELSE coalesce(contacts.name, excluded.name) END,"
    " phone = CASE WHEN contacts.registered_at IS NULL"
    "  THEN coalesce(excluded.phone, contacts.phone)"
    "  ELSE coalesce(contacts.phone, excluded.phone) END,"
    " email = CASE WHEN contacts.registered_at IS NULL"
    "  THEN coalesce(excluded.email, contacts.email)"
    "  ELSE coalesce(contacts.email, excluded.email) END,"
    " updated_at = excluded.updated_at"
)
"""What a push or a pulled answer says about the customer: it updates a contact it gave
before, and only fills the gaps of one the shop registered (registered wins)."""
MARK_PUSHES = (
    "UPDATE pushes SET state = u.state, error = u.error, processed_at = %s::timestamptz,"
    " accepted = u.accepted, duplicates = u.duplicates, lease_owner = NULL, lease_until = NULL"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::integer[], %s::integer[])"
    " AS u(id, state, error, accepted, duplicates) WHERE pushes.id = u.id"
)
UPDATE_REJECTED = "UPDATE rejected SET reason = %s WHERE id = %s"
INSERT_REJECTED = (
    "INSERT INTO rejected (received_at, reason, body, content_type, origin, shop)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
)

# -- the delivery queue ------------------------------------------------------------------------
DELIVERY_COLUMNS = (
    "id, event_id, route, sink, order_id, occurred_at, ordering, template, state, attempts,"
    " next_attempt_at, created_at, updated_at, lease_owner, lease_until, last_error,"
    " delivered_at, waiting, fallback_of, started_at, shop"
)
DELIVERY_COLUMNS_SHOWN = DELIVERY_COLUMNS.replace(
    " waiting",
    " coalesce((SELECT 'sink switched off (' || disabled_reason || '): enable it with POST"
    " /admin/v1/sinks/' || sink_state.sink || '/enable' FROM sink_state"
    " WHERE sink_state.sink = deliveries.sink AND disabled_reason IS NOT NULL"
    " AND deliveries.state = 'pending'), waiting)",
)
"""As shown to people: a pending delivery of a switched-off sink says so."""

CLAIM_CANDIDATES = (
    "SELECT sink, order_id, shop FROM deliveries"
    " WHERE ((state = 'pending' AND next_attempt_at <= %(now)s::timestamptz)"
    "  OR (state = 'in_flight' AND lease_until <= %(now)s::timestamptz))"
    " AND sink NOT IN (SELECT sink FROM sink_state WHERE disabled_reason IS NOT NULL)"
    " ORDER BY CASE WHEN state = 'pending' THEN next_attempt_at ELSE lease_until END"
    " LIMIT %(rows)s FOR UPDATE SKIP LOCKED"
)
"""Due rows no other claimer is looking at, oldest due first; their lanes are candidates."""
LOCK_LANES = (
    "SELECT l.sink, l.order_id, l.shop FROM unnest(%s::text[], %s::text[], %s::text[])"
    " AS l(sink, order_id, shop) WHERE pg_try_advisory_xact_lock(hashtextextended("
    "  current_schema() || chr(31) || l.sink || chr(31) || l.order_id || chr(31) || l.shop,"
    " 0))"
)
"""The lanes this transaction now holds, until it ends: a lane another replica is claiming
right now is skipped, so per (sink, order, shop) one claimer decides at a time."""
UNKNOWN_OUTCOMES = (
    "WITH ended AS (UPDATE deliveries SET state = 'dead', attempts = attempts + 1,"
    " last_error = %(reason)s::text, lease_owner = NULL, lease_until = NULL, waiting = NULL,"
    " started_at = NULL, updated_at = %(now)s::timestamptz"
    " FROM (SELECT id AS sid, started_at AS began FROM deliveries WHERE state = 'in_flight'"
    "  AND lease_until <= %(now)s::timestamptz AND started_at IS NOT NULL"
    "  FOR UPDATE SKIP LOCKED) AS s"
    f" WHERE id = s.sid RETURNING s.began, {DELIVERY_COLUMNS}),"
    " tried AS (INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, error)"
    "  SELECT id, began, greatest(0, extract(epoch FROM %(now)s::timestamptz - began) * 1000),"
    "  'unknown', %(reason)s::text FROM ended)"
    " SELECT * FROM ended"
)
"""Customer sends that started and whose lease ran out with no outcome recorded (the process
died, or stopped without waiting for them): ended dead, with an attempt of outcome
``unknown`` from when the send started, never leased again. Rows: the send's start, then
``DELIVERY_COLUMNS``."""
LANES = (
    "SELECT sink, order_id, shop, id, state, occurred_at, seq, next_attempt_at, lease_until,"
    " ordering, stage, timed FROM deliveries WHERE (sink, order_id, shop) IN"
    "  (SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]))"
    " AND state IN ('pending', 'in_flight', 'delivered')"
)
"""Held lanes' rows: after the lane's columns, the shape `gateway.store.lanes.plan_claims`
reads."""
SUPERSEDE = (
    "UPDATE deliveries SET state = 'superseded', lease_owner = NULL, lease_until = NULL,"
    f" waiting = NULL, last_error = '{SUPERSEDED}',"
    " updated_at = %(now)s::timestamptz WHERE id = ANY(%(ids)s::text[]) AND started_at IS NULL"
    " AND (state = 'pending' OR (state = 'in_flight' AND lease_until <= %(now)s::timestamptz))"
    f" RETURNING {DELIVERY_COLUMNS}"
)
_LEASED = ", ".join(f"l.{c.strip()}" for c in DELIVERY_COLUMNS.split(","))
LEASE = (
    "WITH l AS (UPDATE deliveries SET state = 'in_flight', lease_owner = %(worker)s::text,"
    " lease_until = %(until)s::timestamptz, updated_at = %(now)s::timestamptz"
    " WHERE id = ANY(%(ids)s::text[]) AND started_at IS NULL AND (state = 'pending'"
    "  OR (state = 'in_flight' AND lease_until <= %(now)s::timestamptz))"
    f" RETURNING {DELIVERY_COLUMNS})"
    f" SELECT {_LEASED}, coalesce(e.body::text, r.body), c.order_id, c.name, c.phone,"
    " c.email, c.language, c.shop FROM l LEFT JOIN events e ON e.id = l.event_id"
    " LEFT JOIN digest_runs r ON r.id = l.event_id"
    " LEFT JOIN contacts c ON c.order_id = l.order_id AND c.shop = l.shop"
)
"""Lease the chosen deliveries and return each with its event (a digest's stand-in event is in
``digest_runs``, `gateway.digests`) and the order's contact. A
started customer send is never leased again (`UNKNOWN_OUTCOMES` ends it), even one another
replica's claim has not ended yet."""
RENEW = (
    "UPDATE deliveries SET lease_until = %(until)s::timestamptz WHERE id = ANY(%(ids)s::text[])"
    " AND state = 'in_flight' AND lease_owner = %(worker)s::text RETURNING id"
)
"""A worker keeps the deliveries it is still sending (`DeliveryQueue.renew`)."""
START = (
    "UPDATE deliveries SET started_at = %(now)s::timestamptz WHERE id = ANY(%(ids)s::text[])"
    " AND state = 'in_flight' AND lease_owner = %(worker)s::text"
    " AND lease_until > %(now)s::timestamptz RETURNING id"
)
"""A customer send is about to leave (`DeliveryQueue.start`): only under a live lease."""
FINISH = (
    "WITH done AS (UPDATE deliveries SET state = %(state)s::text,"
    " attempts = attempts + %(count)s::integer,"
    " next_attempt_at = coalesce(%(next)s::timestamptz, next_attempt_at),"
    " last_error = CASE WHEN %(state)s::text = 'delivered' THEN NULL"
    "  ELSE coalesce(%(error)s::text, last_error) END, waiting = %(waiting)s::text,"
    " delivered_at = CASE WHEN %(state)s::text = 'delivered' THEN %(now)s::timestamptz"
    "  ELSE delivered_at END,"
    " lease_owner = CASE WHEN %(state)s::text = 'in_flight' THEN lease_owner END,"
    " lease_until = CASE WHEN %(state)s::text = 'in_flight' THEN lease_until END,"
    " started_at = CASE WHEN %(state)s::text = 'in_flight' THEN started_at END,"
    " updated_at = %(now)s::timestamptz"
    " WHERE id = %(id)s::text AND state = 'in_flight' AND lease_owner = %(worker)s::text"
    " RETURNING id, event_id, order_id, occurred_at, fallback_of, stage, timed, shop),"
    " tried AS (INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome,"
    "  status_code, error) SELECT %(a_delivery)s::text, %(a_started)s::timestamptz,"
    "  %(a_ms)s::float8, %(a_outcome)s::text, %(a_code)s::integer, %(a_error)s::text"
    "  FROM done WHERE %(a_delivery)s::text IS NOT NULL),"
    " fallback AS (INSERT INTO deliveries (id, event_id, route, sink, order_id, occurred_at,"
    "  ordering, template, stage, timed, state, next_attempt_at, created_at, updated_at,"
    "  fallback_of, shop)"
    "  SELECT %(f_id)s::text, event_id, %(f_route)s::text, %(f_sink)s::text, order_id,"
    "  occurred_at, %(f_ordering)s::text, %(f_template)s::text, stage, timed, 'pending',"
    "  %(now)s::timestamptz, %(now)s::timestamptz, %(now)s::timestamptz, id, shop FROM done"
    "  WHERE %(f_id)s::text IS NOT NULL AND %(state)s::text IN ('dead', 'skipped')"
    "  AND fallback_of IS NULL"
    "  ON CONFLICT DO NOTHING RETURNING id)"
    " SELECT (SELECT count(*) FROM done),"
    " (SELECT count(pg_notify(%(channel)s::text, current_schema())) FROM fallback)"
)
"""Only the lease holder may finish (a lost lease updates nothing, and records no attempt).
A fallback (for ``dead`` or ``skipped``) is created in the same statement: never a fallback's
fallback, at most one per delivery (the unique index on ``fallback_of``)."""
REPLAY_SET = (
    "UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = %s::timestamptz,"
    " updated_at = %s::timestamptz, lease_owner = NULL, lease_until = NULL, waiting = NULL,"
    " started_at = NULL"
)
REPLAY_ONE = REPLAY_SET + " WHERE id = %s AND state IN ('dead', 'skipped', 'superseded')"
NEXT_DUE = (
    "SELECT least((SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'),"
    " (SELECT min(lease_until) FROM deliveries WHERE state = 'in_flight'))"
)
SINK_COUNTS = (
    "SELECT sink, count(*) FILTER (WHERE state IN ('pending', 'in_flight')),"
    " count(*) FILTER (WHERE state = 'dead')"
    " FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead') GROUP BY sink ORDER BY sink"
)
SHOP_SINK_COUNTS = (
    "SELECT sink, count(*) FILTER (WHERE state IN ('pending', 'in_flight')),"
    " count(*) FILTER (WHERE state = 'dead'), shop"
    " FROM deliveries WHERE state IN ('pending', 'in_flight', 'dead')"
    " GROUP BY sink, shop ORDER BY sink, shop"
)
DISABLE_SINK = (
    "INSERT INTO sink_state (sink, disabled_reason, disabled_at) VALUES (%s, %s, %s)"
    " ON CONFLICT (sink) DO UPDATE SET disabled_reason = excluded.disabled_reason,"
    " disabled_at = excluded.disabled_at"
)
ENABLE_SINK = (
    "UPDATE sink_state SET disabled_reason = NULL, disabled_at = NULL"
    " WHERE sink = %s AND disabled_reason IS NOT NULL"
)
DISABLED_SINKS = "SELECT sink, disabled_reason FROM sink_state WHERE disabled_reason IS NOT NULL"
RELEASE_SINK = (
    "UPDATE deliveries SET next_attempt_at = %(now)s::timestamptz, waiting = NULL,"
    " updated_at = %(now)s::timestamptz WHERE sink = %(sink)s::text AND state = 'pending'"
    " AND (next_attempt_at > %(now)s::timestamptz OR waiting IS NOT NULL)"
)

# -- grouped routes' groups (groups.py: `gateway.delivery.grouping`) --------------------------
LOCK_GROUPS = (
    "INSERT INTO groups (id, route, sink, key, created_at, updated_at)"
    " SELECT i, r, s, k, n.now, n.now FROM unnest(%s::text[], %s::text[], %s::text[],"
    " %s::text[]) AS g(i, r, s, k) CROSS JOIN (SELECT %s::timestamptz AS now) AS n ORDER BY i"
    " ON CONFLICT (id) DO UPDATE SET updated_at = excluded.updated_at"
    " RETURNING id, open_message, last_closed_at"
)
"""Each group's row, created if new, locked until the intake commits, in id order (so two
intakes, and a claim closing groups, never wait for each other in a circle); a row another
transaction holds is returned as that one committed it."""
INSERT_GROUP_MESSAGES = (
    "INSERT INTO deliveries (id, event_id, route, sink, order_id, occurred_at, ordering,"
    " template, stage, timed, state, next_attempt_at, created_at, updated_at)"
    " SELECT i, e, r, s, o, oa, 'all', t, 0, 0, 'pending', due, n.now, n.now"
    " FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[],"
    " %s::timestamptz[], %s::text[], %s::timestamptz[]) AS d(i, e, r, s, o, oa, t, due)"
    " CROSS JOIN (SELECT %s::timestamptz AS now) AS n ON CONFLICT (id) DO NOTHING"
)
"""A group's new message: a delivery on the group's lane (``order_id`` is the group's id),
due when `gateway.delivery.grouping.message_due` said."""
OPEN_GROUPS = (
    "UPDATE groups SET open_message = u.m FROM unnest(%s::text[], %s::text[]) AS u(g, m)"
    " WHERE groups.id = u.g"
)
INSERT_GROUP_EVENTS = (
    "INSERT INTO group_events (message_id, group_id, event_id)"
    " SELECT m, g, e FROM unnest(%s::text[], %s::text[], %s::text[]) WITH ORDINALITY"
    " AS r(m, g, e, n) ORDER BY n ON CONFLICT DO NOTHING"
)
CLOSE_GROUPS = (
    "UPDATE groups SET open_message = NULL, last_closed_at = %(now)s::timestamptz,"
    " updated_at = %(now)s::timestamptz WHERE id IN (SELECT id FROM groups"
    " WHERE open_message = ANY(%(ids)s::text[]) ORDER BY id FOR UPDATE)"
)
"""Messages claimed for the first time take no more events (the next event opens the next).
Locking the groups waits for an intake putting an event in one of them to commit: the
message's events are read after this, so that event is among them."""
MESSAGE_EVENTS = (
    "SELECT m.message_id, coalesce(g.key, '{}'), e.body::text FROM group_events AS m"
    " JOIN events AS e ON e.id = m.event_id LEFT JOIN groups AS g ON g.id = m.group_id"
    " WHERE m.message_id = ANY(%s::text[]) ORDER BY m.message_id, m.seq"
)
GROUP_SOURCE = "SELECT coalesce(fallback_of, id), order_id FROM deliveries WHERE id = %s"
"""The message whose events a delivery carries: its own, or (a fallback) the one it replaces."""
WAITING_GROUPS = (
    "SELECT g.id, g.route, g.sink, g.key, g.open_message, d.next_attempt_at,"
    " (SELECT count(*) FROM group_events AS m WHERE m.message_id = g.open_message)"
    " FROM groups AS g JOIN deliveries AS d ON d.id = g.open_message"
    " WHERE g.open_message IS NOT NULL ORDER BY d.next_attempt_at, g.id"
)

# -- contacts the shop registers ---------------------------------------------------------------
REGISTER_CONTACTS = (
    "INSERT INTO contacts (order_id, name, phone, email, language, shop, updated_at,"
    " registered_at) SELECT o, n, p, e, l, sh, r.now, r.now FROM unnest(%s::text[], %s::text[],"
    " %s::text[], %s::text[], %s::text[], %s::text[]) AS c(o, n, p, e, l, sh)"
    " CROSS JOIN (SELECT %s::timestamptz AS now) r"
    " ON CONFLICT (order_id, shop) DO UPDATE SET name = coalesce(excluded.name, contacts.name),"
    " phone = coalesce(excluded.phone, contacts.phone),"
    " email = coalesce(excluded.email, contacts.email),"
    " language = coalesce(excluded.language, contacts.language),"
    " updated_at = excluded.updated_at, registered_at = excluded.registered_at"
)
"""A field the shop leaves empty keeps what a push said; one row per order."""
DELETE_CONTACT = "DELETE FROM contacts WHERE order_id = %s AND shop = %s"

# -- admin reads -------------------------------------------------------------------------------
GET_PUSH = f"SELECT {PUSH_COLUMNS} FROM pushes WHERE id = %s"
GET_EVENT = "SELECT body::text FROM events WHERE id = %s"
EVENTS_BY_ID = "SELECT id, body::text, push_id FROM events WHERE id = ANY(%s::text[])"
GET_CONTACT = (
    "SELECT order_id, name, phone, email, language, shop FROM contacts"
    " WHERE order_id = %s AND shop = %s"
)
REJECTED_COLUMNS = "id, received_at, reason, body, content_type, origin, shop"
GET_REJECTED = f"SELECT {REJECTED_COLUMNS} FROM rejected WHERE id = %s"
DELETE_REJECTED = "DELETE FROM rejected WHERE id = %s"
GET_DELIVERY = f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries WHERE id = %s"
ATTEMPTS_OF = (
    "SELECT delivery_id, started_at, duration_ms, outcome, status_code, error"
    " FROM attempts WHERE delivery_id = %s ORDER BY id"
)


# -- retention ---------------------------------------------------------------------------------
# Each prune is one statement, so one short commit: it picks the step's oldest rows with
# SKIP LOCKED (two replicas pruning at once take different rows) and deletes what belongs to
# them in data-modifying CTEs. A cut-off bound as NULL keeps that kind for ever: a comparison
# with NULL is never true.
_FINISHED_DELIVERIES = (
    "FROM deliveries WHERE"
    " (state IN ('delivered', 'superseded', 'skipped') AND updated_at < %(delivered)s::timestamptz)"
    " OR (state = 'dead' AND updated_at < %(dead)s::timestamptz)"
)
_KEPT_DELIVERY = (
    "(d.state IN ('pending', 'in_flight') OR (d.state = 'dead'"
    " AND (%(dead)s::timestamptz IS NULL OR d.updated_at >= %(dead)s::timestamptz)))"
)
_OLD_EVENTS = (
    "FROM events e WHERE received_at < %(events)s::timestamptz AND NOT EXISTS ("
    " SELECT 1 FROM deliveries d WHERE d.order_id = e.order_id AND d.event_id = e.id"
    f" AND {_KEPT_DELIVERY}) AND NOT EXISTS (SELECT 1 FROM group_events AS m"
    f" JOIN deliveries AS d ON d.id = m.message_id WHERE m.event_id = e.id AND {_KEPT_DELIVERY})"
)
"""An event goes only once nothing of it is still to send or to look at (a dead delivery
within its window), its own or a grouped message it is in; the deliveries' lane index finds
them by order, the group events' index by event."""
_OLD_PUSHES = "FROM pushes WHERE state = 'processed' AND received_at < %(pushes)s::timestamptz"
_OLD_REJECTED = "FROM rejected WHERE received_at < %(rejected)s::timestamptz"
PRUNE_DELIVERIES = (
    f"WITH d AS (SELECT id {_FINISHED_DELIVERIES} ORDER BY seq LIMIT %(limit)s"
    "  FOR UPDATE SKIP LOCKED),"
    " a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM d) RETURNING 1),"
    " m AS (DELETE FROM group_events WHERE message_id IN (SELECT id FROM d)),"
    " q AS (DELETE FROM groups WHERE open_message IS NULL"
    "  AND last_closed_at < %(delivered)s::timestamptz AND NOT EXISTS (SELECT 1"
    "  FROM deliveries AS o WHERE o.order_id = groups.id"
    "  AND o.state IN ('pending', 'in_flight', 'dead'))),"
    " x AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM d) RETURNING 1)"
    " SELECT 0, (SELECT count(*) FROM x), (SELECT count(*) FROM a)"
)
"""With a grouped message go its list of events, and groups quiet since before the cut-off
with no message left to send or to look at: the next event of one starts it afresh, as a
first (a key per order leaves no row per order)."""
PRUNE_EVENTS = (
    f"WITH e AS (SELECT id, order_id {_OLD_EVENTS} ORDER BY seq LIMIT %(limit)s"
    "  FOR UPDATE SKIP LOCKED),"
    " dl AS (SELECT d.id FROM e JOIN deliveries d"
    "  ON d.order_id = e.order_id AND d.event_id = e.id),"
    " a AS (DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM dl) RETURNING 1),"
    " x AS (DELETE FROM deliveries WHERE id IN (SELECT id FROM dl) RETURNING 1),"
    " y AS (DELETE FROM events WHERE id IN (SELECT id FROM e) RETURNING 1)"
    " SELECT (SELECT count(*) FROM y), (SELECT count(*) FROM x), (SELECT count(*) FROM a)"
)
"""Rows: (events, deliveries, attempts) removed."""
PRUNE_PUSHES = (
    "WITH p AS (DELETE FROM pushes WHERE seq IN"
    f" (SELECT seq {_OLD_PUSHES} ORDER BY seq LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING 1) SELECT count(*) FROM p"
)
PRUNE_REJECTED = (
    "WITH r AS (DELETE FROM rejected WHERE id IN"
    f" (SELECT id {_OLD_REJECTED} ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    " RETURNING 1) SELECT count(*) FROM r"
)
COUNT_PRUNABLE = (
    f"WITH ev AS (SELECT id, order_id {_OLD_EVENTS}),"
    f" dl AS (SELECT id {_FINISHED_DELIVERIES}"
    "  UNION SELECT d.id FROM ev JOIN deliveries AS d"
    "  ON d.order_id = ev.order_id AND d.event_id = ev.id)"
    " SELECT (SELECT count(*) FROM ev), (SELECT count(*) FROM dl),"
    " (SELECT count(*) FROM attempts WHERE delivery_id IN (SELECT id FROM dl)),"
    f" (SELECT count(*) {_OLD_PUSHES}), (SELECT count(*) {_OLD_REJECTED})"
)
"""What pruning every step until none is left removes: the deliveries of the events that go
count once, whether their own window or their event's takes them."""
SIZE_BYTES = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
    " JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
)
"""The schema's tables with their indexes and TOAST: what this store takes on the server."""


# -- the pull tracker's orders -----------------------------------------------------------------
# The commit that stores events or contacts updates ``tracking`` too (`TRACK_EVENTS`,
# `TRACK_CONTACTS`): a cursor on ``events.seq`` would miss an event whose transaction commits
# after one that took a higher seq, which replicas committing side by side do all the time.
TRACKING_COLUMNS = (
    "order_id, kind, last_status, last_update, closed, last_pulled_at, next_pull_at, gone,"
    " stuck_status, stuck_since, last_asked_at, shop"
)
TRACK_EVENTS = (
    "INSERT INTO tracking (order_id, kind, last_status, last_update, closed, added_at, shop)"
    " SELECT o, k, s, u, c, %s::timestamptz, sh FROM unnest(%s::text[], %s::text[],"
    " %s::text[], %s::timestamptz[], %s::boolean[], %s::text[]) AS t(o, k, s, u, c, sh)"
    " ON CONFLICT (order_id, shop) DO UPDATE SET kind = excluded.kind,"
    " closed = tracking.closed OR excluded.closed,"
    " last_status = CASE WHEN tracking.last_update IS NULL"
    "  OR excluded.last_update >= tracking.last_update"
    "  THEN excluded.last_status ELSE tracking.last_status END,"
    " last_update = greatest(tracking.last_update, excluded.last_update)"
)
"""One row per order (the newest of the batch's new events, ``stuck`` aside, and whether
one of them is final): the newest status by ``occurred_at`` wins, a final status closes the
order for good."""
_FINAL = ", ".join(f"'{s.value}'" for s in sorted(TERMINAL_STATUSES))
TRACK_COPIED_EVENTS = (
    "INSERT INTO tracking (order_id, shop, kind, last_status, last_update, closed, added_at)"
    " SELECT DISTINCT ON (order_id, shop) order_id, shop, coalesce(body ->> 'kind', 'express'),"
    f" status, occurred_at, bool_or(status IN ({_FINAL})) OVER (PARTITION BY order_id, shop),"
    " statement_timestamp()"
    " FROM events WHERE id = ANY(%s::text[]) AND status <> 'stuck'"
    " ORDER BY order_id, shop, occurred_at DESC, seq DESC"
    " ON CONFLICT (order_id, shop) DO UPDATE SET kind = excluded.kind,"
    " closed = tracking.closed OR excluded.closed,"
    " last_status = CASE WHEN tracking.last_update IS NULL"
    "  OR excluded.last_update >= tracking.last_update"
    "  THEN excluded.last_status ELSE tracking.last_status END,"
    " last_update = greatest(tracking.last_update, excluded.last_update)"
)
"""`TRACK_EVENTS` for events `kabarin store migrate` copied in (by id), read from the rows."""
TRACK_CONTACTS = (
    "INSERT INTO tracking (order_id, shop, added_at)"
    " SELECT o, sh, %s::timestamptz FROM unnest(%s::text[], %s::text[]) AS c(o, sh)"
    " ON CONFLICT (order_id, shop) DO NOTHING"
)
TRACK_ORDERS = (
    "INSERT INTO tracking (order_id, kind, added_at, shop)"
    " SELECT o, k, %s::timestamptz, %s::text FROM unnest(%s::text[], %s::text[]) AS t(o, k)"
    " ON CONFLICT (order_id, shop) DO NOTHING"
)
CLAIM_PULLS = (
    "UPDATE tracking SET lease_until = %(lease)s::timestamptz WHERE (order_id, shop) IN ("
    " SELECT order_id, shop FROM tracking"
    "  WHERE NOT closed AND gone IS NULL"
    "  AND coalesce(lease_until, '-infinity') <= %(now)s::timestamptz"
    "  AND (((%(pulled_before)s::timestamptz IS NULL"
    "         OR %(catch_up_shops)s::text[] IS NOT NULL)"
    "        AND coalesce(last_update, '-infinity') < %(stale_before)s::timestamptz"
    "        AND coalesce(next_pull_at, '-infinity') <= %(now)s::timestamptz)"
    "    OR (coalesce(last_pulled_at, '-infinity') < %(pulled_before)s::timestamptz"
    "        AND (%(catch_up_shops)s::text[] IS NULL"
    "             OR shop = ANY(%(catch_up_shops)s::text[]))))"
    "  AND (%(asked_before)s::timestamptz IS NULL"
    "       OR coalesce(last_asked_at, '-infinity') < %(asked_before)s::timestamptz)"
    "  ORDER BY last_asked_at NULLS FIRST, last_update NULLS FIRST, order_id, shop"
    "  LIMIT %(limit)s FOR UPDATE SKIP LOCKED)"
    f" RETURNING {TRACKING_COLUMNS}"
)
"""The lease is the claim: an order whose ``lease_until`` is in the future, or that another
replica is claiming right now, is not taken."""
FINISH_PULL = (
    "UPDATE tracking SET lease_until = NULL, next_pull_at = %(next)s::timestamptz,"
    " last_pulled_at = CASE WHEN %(answered)s::boolean THEN %(now)s::timestamptz"
    "  ELSE last_pulled_at END,"
    " last_asked_at = CASE WHEN %(asked)s::boolean THEN %(now)s::timestamptz"
    "  ELSE last_asked_at END,"
    " gone = coalesce(%(gone)s::text, gone)"
    " WHERE order_id = %(order_id)s AND shop = %(shop)s"
)
CLAIM_STUCK = (
    "UPDATE tracking SET stuck_status = last_status, stuck_since = last_update"
    " WHERE (order_id, shop) IN ("
    " SELECT t.order_id, t.shop FROM tracking AS t"
    "  JOIN unnest(%s::text[], %s::float8[]) AS j(status, seconds) ON j.status = t.last_status"
    "  WHERE NOT t.closed AND t.gone IS NULL"
    "  AND t.last_update < %s::timestamptz - j.seconds * interval '1 second'"
    "  AND (t.stuck_since IS NULL OR t.stuck_since <> t.last_update"
    "       OR t.stuck_status <> t.last_status)"
    "  ORDER BY t.last_update LIMIT %s FOR UPDATE OF t SKIP LOCKED)"
    f" RETURNING {TRACKING_COLUMNS}"
)
KNOWN_STATUSES = (
    "SELECT DISTINCT status, CASE WHEN status = 'problem' THEN body ->> 'reason' END"
    " FROM events WHERE order_id = %s AND shop = %s AND status <> 'stuck'"
)
LAST_PUSH_AT = "SELECT received_at FROM pushes WHERE source = 'push' ORDER BY seq DESC LIMIT 1"
LAST_SHOP_PUSH_AT = (
    "SELECT received_at FROM pushes WHERE source = 'push' AND shop = %s ORDER BY seq DESC LIMIT 1"
)
GET_TRACKING = f"SELECT {TRACKING_COLUMNS} FROM tracking WHERE order_id = %s AND shop = %s"
TRACKING_COUNTS = (
    "SELECT count(*),"
    " count(*) FILTER (WHERE stuck_since = last_update AND stuck_status = last_status)"
    " FROM tracking WHERE NOT closed AND gone IS NULL"
)
OLDEST_DUE_PULL = (
    "SELECT min(greatest(last_update + %(stale)s * interval '1 second', next_pull_at, added_at))"
    " FROM tracking WHERE NOT closed AND gone IS NULL"
    " AND coalesce(last_update, '-infinity')"
    "  < %(now)s::timestamptz - %(stale)s * interval '1 second'"
    " AND coalesce(next_pull_at, '-infinity') <= %(now)s::timestamptz"
)
"""When the order due longest on the regular schedule became due (`CLAIM_PULLS`' regular
pass; ``greatest`` passes over NULLs)."""


# -- per-sink rate limit and circuit breaker, shared by every replica (store.py) -----------------
# Times are wall-clock; durations are seconds bound as float8. An upsert creates a sink's row on
# its first use, so no statement depends on another having run first.
TAKE_RATE_SLOT = (
    "INSERT INTO sink_controls AS c (sink, next_slot)"
    " VALUES (%(sink)s, %(now)s + make_interval(secs => %(interval)s::float8))"
    " ON CONFLICT (sink) DO UPDATE"
    " SET next_slot = greatest(c.next_slot, %(now)s) + make_interval(secs => %(interval)s::float8)"
    " WHERE greatest(c.next_slot, %(now)s) - make_interval(secs => %(ahead)s::float8)"
    " <= %(now)s + make_interval(secs => %(max_wait)s::float8)"
    " RETURNING extract(epoch FROM c.next_slot - %(now)s)::float8"
    " - %(interval)s::float8 - %(ahead)s::float8"
)
"""GCRA in one statement: the slot booked is the old ``greatest(next_slot, now)``; no row comes
back when it is more than `max_wait` ahead (after the burst's allowance)."""
DEFER_RATE_SLOT = (
    "INSERT INTO sink_controls AS c (sink, deferred_until)"
    " VALUES (%(sink)s, %(now)s + make_interval(secs => %(interval)s::float8))"
    " ON CONFLICT (sink) DO UPDATE SET deferred_until ="
    " greatest(c.next_slot, c.deferred_until, %(now)s)"
    " + make_interval(secs => %(interval)s::float8)"
    " RETURNING extract(epoch FROM c.deferred_until - %(now)s)::float8 - %(interval)s::float8"
)
CIRCUIT_OPENS_IN = (
    "SELECT extract(epoch FROM open_until - %(now)s)::float8 FROM sink_controls"
    " WHERE sink = %(sink)s AND open_until > %(now)s"
)
CIRCUIT_OF = "SELECT open_until, probe_until FROM sink_controls WHERE sink = %s"
ENSURE_SINK_CONTROLS = "INSERT INTO sink_controls (sink) VALUES (%s) ON CONFLICT (sink) DO NOTHING"
LOCK_CIRCUIT = "SELECT open_until, probe_until FROM sink_controls WHERE sink = %s FOR UPDATE"
TAKE_PROBE = "UPDATE sink_controls SET probe_until = %s WHERE sink = %s"
CIRCUIT_SUCCESS = (
    "UPDATE sink_controls SET failures = 0, open_until = NULL, probe_until = NULL, cooldown = NULL"
    " WHERE sink = %s AND (failures <> 0 OR open_until IS NOT NULL OR probe_until IS NOT NULL)"
)
"""Writes nothing while the circuit is closed with no failures: the common case is a read."""
CIRCUIT_FAILURE = (
    "INSERT INTO sink_controls AS c (sink, failures, open_until)"
    " VALUES (%(sink)s, 1, CASE WHEN %(threshold)s::int = 1"
    " THEN %(now)s + make_interval(secs => %(cooldown)s::float8) END)"
    " ON CONFLICT (sink) DO UPDATE SET"
    " failures = c.failures + 1,"
    " cooldown = CASE WHEN c.open_until <= %(now)s"
    " THEN least(coalesce(c.cooldown, %(cooldown)s::float8) * 2, %(max_cooldown)s::float8)"
    " ELSE c.cooldown END,"
    " open_until = CASE"
    " WHEN c.open_until <= %(now)s THEN %(now)s + make_interval(secs =>"
    " least(coalesce(c.cooldown, %(cooldown)s::float8) * 2, %(max_cooldown)s::float8))"
    " WHEN c.open_until IS NULL AND %(threshold)s::int > 0"
    " AND c.failures + 1 >= %(threshold)s::int"
    " THEN %(now)s + make_interval(secs => coalesce(c.cooldown, %(cooldown)s::float8))"
    " ELSE c.open_until END,"
    " probe_until = CASE WHEN c.open_until <= %(now)s THEN NULL ELSE c.probe_until END"
    " RETURNING open_until"
)
"""A failure while half-open (``open_until`` passed) is the probe's: the circuit re-opens for
twice the cool-down. While closed, the failure that reaches the threshold opens it."""
RELEASE_PROBE = "UPDATE sink_controls SET probe_until = NULL WHERE sink = %s"


# -- moving a store (store.py) ------------------------------------------------------------------
# Table and column names come from `gateway.store.moving.TABLES`, never from input.
def copy_out(table: str, key: str, key_type: str, columns: Sequence[str]) -> str:
    """A page of `table` past the first parameter (NULL: from the start), key first. Event
    bodies come back as their text, exactly as stored."""
    shown = ", ".join(f"{c}::text" if (table, c) == ("events", "body") else c for c in columns)
    return (
        f"SELECT {key}, {shown} FROM {table}"
        f" WHERE %(after)s::{key_type} IS NULL OR {key} > %(after)s::{key_type}"
        f" ORDER BY {key} LIMIT %(limit)s"
    )


def copy_in(table: str, columns: Sequence[str]) -> str:
    """Insert a row unless one with its id (a unique column) is there already."""
    marks = ", ".join("%s::json" if (table, c) == ("events", "body") else "%s" for c in columns)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) ON CONFLICT DO NOTHING"


COPY_IN_ATTEMPT = (
    "INSERT INTO attempts (delivery_id, started_at, duration_ms, outcome, status_code, error)"
    " SELECT v.* FROM (VALUES (%(delivery_id)s::text, %(started_at)s::timestamptz,"
    " %(duration_ms)s::float8, %(outcome)s::text, %(status_code)s::int, %(error)s::text))"
    " AS v (delivery_id, started_at, duration_ms, outcome, status_code, error)"
    " WHERE NOT EXISTS (SELECT 1 FROM attempts a WHERE a.delivery_id = v.delivery_id"
    " AND a.started_at = v.started_at AND a.outcome = v.outcome)"
)
"""Attempts have no id of their own: one is there already when its delivery has one started at
the same moment with the same outcome."""


# -- statements whose filter depends on the query (the admin's lists: gateway.store.queries) ----
_DIALECT = Dialect(mark="%s", time=lambda moment: moment, awb="(body ->> 'awb')")
list_rejected = partial(_DIALECT.list_rejected, f"SELECT {REJECTED_COLUMNS} FROM rejected")
count_rejected = partial(_DIALECT.count_rejected, "SELECT count(*) FROM rejected")


def requeue_pushes(state: str, since: datetime | None, ids: Sequence[str]) -> tuple[str, list[Any]]:
    where = ["state = %s"]
    params: list[Any] = [state]
    if since is not None:
        where.append("received_at >= %s")
        params.append(since)
    if ids:
        where.append("id = ANY(%s::text[])")
        params.append(list(ids))
    head = (
        "UPDATE pushes SET state = 'pending', error = NULL, processed_at = NULL,"
        " lease_owner = NULL, lease_until = NULL"
    )
    return select(head, where), params


def list_pushes(query: PushQuery) -> tuple[str, list[Any]]:
    return _DIALECT.list_pushes(f"SELECT {PUSH_COLUMNS} FROM pushes", query)


def list_events(query: EventQuery) -> tuple[str, list[Any]]:
    return _DIALECT.list_events("SELECT seq, body::text FROM events", query)


def list_deliveries(query: DeliveryFilter) -> tuple[str, list[Any]]:
    return _DIALECT.list_deliveries(f"SELECT {DELIVERY_COLUMNS_SHOWN} FROM deliveries", query)


def replay(query: DeliveryFilter, now: datetime) -> tuple[str, list[Any]]:
    return _DIALECT.replay(REPLAY_SET, query, now)
