"""Versioned schema migrations, applied in order at start-up (`schema_version` records them).

Times are integer microseconds since the Unix epoch, UTC. Add a migration by appending to
`MIGRATIONS`; never edit one that has shipped. The DDL lives here rather than in sql.py because
it is history: the statements the store runs against these tables are in sql.py.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping

from gateway.store.sqlite import insights, sql

__all__ = ["AFTER", "LOG_MIGRATIONS", "MIGRATIONS", "migrate", "move_pushes"]

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE events (
            seq          INTEGER PRIMARY KEY AUTOINCREMENT,
            id           TEXT NOT NULL UNIQUE,
            order_id     TEXT NOT NULL,
            status       TEXT NOT NULL,
            method       TEXT NOT NULL,
            occurred_at  INTEGER NOT NULL,
            received_at  INTEGER NOT NULL,
            body         BLOB NOT NULL
        );
        CREATE INDEX events_by_order ON events (order_id);

        CREATE TABLE deliveries (
            seq              INTEGER PRIMARY KEY AUTOINCREMENT,
            id               TEXT NOT NULL UNIQUE,
            event_id         TEXT NOT NULL,
            route            TEXT NOT NULL,
            sink             TEXT NOT NULL,
            order_id         TEXT NOT NULL,
            occurred_at      INTEGER NOT NULL,
            ordering         TEXT NOT NULL,
            template         TEXT,
            state            TEXT NOT NULL,
            attempts         INTEGER NOT NULL DEFAULT 0,
            next_attempt_at  INTEGER NOT NULL,
            lease_owner      TEXT,
            lease_until      INTEGER,
            last_error       TEXT,
            created_at       INTEGER NOT NULL,
            updated_at       INTEGER NOT NULL,
            delivered_at     INTEGER
        );
        CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
        CREATE INDEX deliveries_lane ON deliveries (order_id, sink);

        CREATE TABLE attempts (
            id           INTEGER PRIMARY KEY AUTOINCREMENT,
            delivery_id  TEXT NOT NULL,
            started_at   INTEGER NOT NULL,
            duration_ms  REAL NOT NULL,
            outcome      TEXT NOT NULL,
            status_code  INTEGER,
            error        TEXT
        );
        CREATE INDEX attempts_by_delivery ON attempts (delivery_id, id);

        CREATE TABLE rejected (
            id            INTEGER PRIMARY KEY AUTOINCREMENT,
            received_at   INTEGER NOT NULL,
            reason        TEXT NOT NULL,
            body          BLOB NOT NULL,
            content_type  TEXT
        );

        CREATE TABLE contacts (
            order_id    TEXT PRIMARY KEY,
            name        TEXT,
            phone       TEXT,
            email       TEXT,
            updated_at  INTEGER NOT NULL
        );

        CREATE TABLE sink_state (
            sink             TEXT PRIMARY KEY,
            disabled_reason  TEXT,
            disabled_at      INTEGER
        );
        """,
    ),
    (
        2,
        # One row, rewritten by every readiness check: a commit that really writes, so the
        # check fails wherever a push would (disk full, a read-only file), and stays tiny.
        """
        CREATE TABLE heartbeat (
            id  INTEGER PRIMARY KEY CHECK (id = 1),
            at  INTEGER NOT NULL
        );
        """,
    ),
    (
        3,
        # Why a pending delivery is held back (an open circuit, a switched-off sink): without
        # it a replayed delivery waits out a cool-down with nothing saying so.
        """
        ALTER TABLE deliveries ADD COLUMN waiting TEXT;
        """,
    ),
    (
        4,
        # The push log: every body as it arrived, appended before the 200; the intake turns
        # pending entries into events. events.push_id names the entry that produced an event.
        """
        CREATE TABLE pushes (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            id            TEXT NOT NULL UNIQUE,
            source        TEXT NOT NULL,
            method        TEXT,
            items         INTEGER NOT NULL,
            received_at   INTEGER NOT NULL,
            content_type  TEXT,
            body          BLOB NOT NULL,
            state         TEXT NOT NULL,
            error         TEXT,
            processed_at  INTEGER,
            accepted      INTEGER,
            duplicates    INTEGER
        );
        CREATE INDEX pushes_pending ON pushes (seq) WHERE state = 'pending';
        CREATE INDEX pushes_failed ON pushes (seq) WHERE state = 'failed';
        ALTER TABLE events ADD COLUMN push_id TEXT;
        """,
    ),
    (
        8,
        # Contacts the shop registered (admin API, CSV import) win over what pushes say, field
        # by field, so `registered_at` marks them for the intake's upsert; `language` is the
        # shop's choice for that customer. A fallback delivery names the delivery it replaces;
        # the unique index makes "issued once" hold even when the first is replayed.
        """
        ALTER TABLE contacts ADD COLUMN language TEXT;
        ALTER TABLE contacts ADD COLUMN registered_at INTEGER;
        ALTER TABLE deliveries ADD COLUMN fallback_of TEXT;
        CREATE UNIQUE INDEX deliveries_fallback ON deliveries (fallback_of)
            WHERE fallback_of IS NOT NULL;
        """,
    ),
    (
        5,
        # The pull tracker's orders: what their events say (kept up to date from events.seq
        # and contacts.updated_at past the cursor), and its own schedule, lease and alerts.
        """
        CREATE TABLE tracking (
            order_id        TEXT PRIMARY KEY,
            kind            TEXT NOT NULL DEFAULT 'express',
            last_status     TEXT,
            last_update     INTEGER,
            closed          INTEGER NOT NULL DEFAULT 0,
            added_at        INTEGER NOT NULL,
            last_pulled_at  INTEGER,
            next_pull_at    INTEGER,
            lease_until     INTEGER,
            gone            TEXT,
            stuck_status    TEXT,
            stuck_since     INTEGER
        );
        CREATE INDEX tracking_open ON tracking (last_update) WHERE closed = 0 AND gone IS NULL;
        CREATE TABLE tracking_cursor (
            id           INTEGER PRIMARY KEY CHECK (id = 1),
            event_seq    INTEGER NOT NULL,
            contacts_at  INTEGER NOT NULL
        );
        INSERT INTO tracking_cursor (id, event_seq, contacts_at) VALUES (1, 0, 0);
        """,
    ),
    (
        9,
        # `rejected` is no longer final: a refused parcel is followed until it is returned.
        """
        UPDATE tracking SET closed = 0 WHERE closed = 1 AND last_status = 'rejected';
        """,
    ),
    (
        10,
        # `ordering: latest` ranks by lifecycle stage, then by whether the time is the
        # courier's (`gateway.store.lanes`): both kept per delivery for the claim, and filled
        # in from the events for the lanes that use them (the stage numbers of lanes.STAGES
        # when this shipped). `started_at` marks a customer send under way.
        """
        ALTER TABLE deliveries ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deliveries ADD COLUMN timed INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE deliveries ADD COLUMN started_at INTEGER;
        UPDATE deliveries SET
            stage = coalesce((SELECT CASE
                    CASE WHEN e.status = 'stuck' THEN e.body ->> '$.raw_status' ELSE e.status END
                WHEN 'processed' THEN 1
                WHEN 'validated' THEN 2 WHEN 'no_driver' THEN 2
                WHEN 'shipped' THEN 3 WHEN 'picked_up' THEN 3
                WHEN 'in_transit' THEN 4 WHEN 'problem' THEN 4
                WHEN 'rejected' THEN 5 WHEN 'returning' THEN 5
                WHEN 'delivered' THEN 6 WHEN 'returned' THEN 6 WHEN 'canceled' THEN 6
                ELSE 0 END FROM events AS e WHERE e.id = deliveries.event_id), 0),
            timed = coalesce((SELECT e.status = 'stuck' OR e.occurred_at != e.received_at
                FROM events AS e WHERE e.id = deliveries.event_id), 0)
            WHERE ordering = 'latest' AND state IN ('pending', 'in_flight', 'delivered');
        """,
    ),
    (
        11,
        # The dashboard's sign-in sessions, so that a restart keeps them (`key` is a keyed
        # hash of the cookie, never the cookie).
        """
        CREATE TABLE sessions (
            key         TEXT PRIMARY KEY,
            csrf        TEXT NOT NULL,
            created_at  INTEGER NOT NULL,
            used_at     INTEGER NOT NULL,
            flash       TEXT
        );
        CREATE INDEX sessions_used ON sessions (used_at);
        """,
    ),
    (
        12,
        # When the pull tracker last asked about an order, answered or not: a pass takes the
        # least recently asked first (ordered by last update, an order answered again with no
        # news came back first and starved the others). An order answered before was asked then.
        """
        ALTER TABLE tracking ADD COLUMN last_asked_at INTEGER;
        UPDATE tracking SET last_asked_at = last_pulled_at;
        CREATE INDEX tracking_asked ON tracking (last_asked_at) WHERE closed = 0 AND gone IS NULL;
        """,
    ),
    (
        13,
        # Which push source a rejected body came to (`gateway.sources`), so that its replay is
        # judged by that source's decoder. Every body kept before sources existed was
        # KiriminAja's.
        """
        ALTER TABLE rejected ADD COLUMN origin TEXT NOT NULL DEFAULT 'kiriminaja';
        """,
    ),
    (
        14,
        # Several shops (KiriminAja accounts) in one store: events, deliveries (whose lanes are
        # per shop, order and sink), rejected bodies, contacts and tracked orders carry their
        # shop, and contacts and tracked orders are keyed by (order id, shop). Every row
        # written before belongs to the shop `default` (a one-shop file's). The keyed tables
        # are rebuilt: SQLite cannot change a primary key in place.
        """
        ALTER TABLE events ADD COLUMN shop TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE deliveries ADD COLUMN shop TEXT NOT NULL DEFAULT 'default';
        ALTER TABLE rejected ADD COLUMN shop TEXT NOT NULL DEFAULT 'default';
        DROP INDEX events_by_order;
        CREATE INDEX events_by_order ON events (order_id, shop);
        DROP INDEX deliveries_lane;
        CREATE INDEX deliveries_lane ON deliveries (order_id, sink, shop);
        CREATE TABLE contacts_by_shop (
            order_id       TEXT NOT NULL,
            shop           TEXT NOT NULL DEFAULT 'default',
            name           TEXT,
            phone          TEXT,
            email          TEXT,
            updated_at     INTEGER NOT NULL,
            language       TEXT,
            registered_at  INTEGER,
            PRIMARY KEY (order_id, shop)
        );
        INSERT INTO contacts_by_shop
            (order_id, name, phone, email, updated_at, language, registered_at)
            SELECT order_id, name, phone, email, updated_at, language, registered_at
            FROM contacts;
        DROP TABLE contacts;
        ALTER TABLE contacts_by_shop RENAME TO contacts;
        CREATE TABLE tracking_by_shop (
            order_id        TEXT NOT NULL,
            shop            TEXT NOT NULL DEFAULT 'default',
            kind            TEXT NOT NULL DEFAULT 'express',
            last_status     TEXT,
            last_update     INTEGER,
            closed          INTEGER NOT NULL DEFAULT 0,
            added_at        INTEGER NOT NULL,
            last_pulled_at  INTEGER,
            next_pull_at    INTEGER,
            lease_until     INTEGER,
            gone            TEXT,
            stuck_status    TEXT,
            stuck_since     INTEGER,
            last_asked_at   INTEGER,
            PRIMARY KEY (order_id, shop)
        );
        INSERT INTO tracking_by_shop (order_id, kind, last_status, last_update, closed,
            added_at, last_pulled_at, next_pull_at, lease_until, gone, stuck_status,
            stuck_since, last_asked_at)
            SELECT order_id, kind, last_status, last_update, closed, added_at, last_pulled_at,
            next_pull_at, lease_until, gone, stuck_status, stuck_since, last_asked_at
            FROM tracking;
        DROP TABLE tracking;
        ALTER TABLE tracking_by_shop RENAME TO tracking;
        CREATE INDEX tracking_open ON tracking (last_update) WHERE closed = 0 AND gone IS NULL;
        CREATE INDEX tracking_asked ON tracking (last_asked_at) WHERE closed = 0 AND gone IS NULL;
        """,
    ),
    (
        15,
        # Grouped routes (`gateway.delivery.grouping`): a group per (route, sink, key) with the
        # message it collects now (a pending delivery, closed when first claimed), and each
        # message's events. A message's lane (`deliveries.order_id`) is its group's id.
        """
        CREATE TABLE groups (
            id              TEXT PRIMARY KEY,
            route           TEXT NOT NULL,
            sink            TEXT NOT NULL,
            key             TEXT NOT NULL,
            open_message    TEXT,
            last_closed_at  INTEGER,
            created_at      INTEGER NOT NULL,
            updated_at      INTEGER NOT NULL
        );
        CREATE INDEX groups_open ON groups (open_message) WHERE open_message IS NOT NULL;
        CREATE TABLE group_events (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            message_id  TEXT NOT NULL,
            group_id    TEXT NOT NULL,
            event_id    TEXT NOT NULL,
            UNIQUE (message_id, event_id)
        );
        CREATE INDEX group_events_by_event ON group_events (event_id);
        """,
    ),
    (
        16,
        # Digests: the last period of each sent (claimed with its deliveries in one commit, so
        # a period goes once across restarts), the stand-in event each digest's deliveries
        # name, and the indexes its window counts read by time.
        """
        CREATE TABLE digests (
            name         TEXT PRIMARY KEY,
            last_period  INTEGER NOT NULL,
            updated_at   INTEGER NOT NULL
        );
        CREATE TABLE digest_runs (
            seq         INTEGER PRIMARY KEY AUTOINCREMENT,
            id          TEXT NOT NULL UNIQUE,
            digest      TEXT NOT NULL,
            order_id    TEXT NOT NULL,
            period      INTEGER,
            created_at  INTEGER NOT NULL,
            body        TEXT NOT NULL
        );
        CREATE INDEX digest_runs_by_digest ON digest_runs (digest, created_at);
        CREATE INDEX events_received ON events (received_at);
        CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
        """,
    ),
    (
        17,
        # A dashboard session records which admin token signed it in (a keyed hash of it, keyed
        # with the session's cookie), so that a scoped token's session sees its shops only and
        # ends when its token leaves the file. Sessions from before recorded none: they end
        # (everyone signs in once more).
        """
        DELETE FROM sessions;
        ALTER TABLE sessions ADD COLUMN token_mac TEXT;
        """,
    ),
    (
        18,
        # What each order knows (`gateway.store.facts`): courier, product, destination city,
        # KiriminAja's estimate and the times of its stages, written with its events; the
        # transit and pickup times (and their hours) are computed here and indexed for exact
        # percentiles, and the counts index covers what a scorecard counts. The
        # rows of a store that had events before are rebuilt from them (`AFTER`).
        """
        CREATE TABLE order_facts (
            shop          TEXT NOT NULL,
            order_id      TEXT NOT NULL,
            courier       TEXT NOT NULL DEFAULT '',
            product       TEXT NOT NULL DEFAULT '',
            destination   TEXT NOT NULL DEFAULT '',
            estimation    TEXT,
            est_min_days  INTEGER,
            est_max_days  INTEGER,
            created_at    INTEGER,
            shipped_at    INTEGER,
            delivered_at  INTEGER,
            returned_at   INTEGER,
            problem_at    INTEGER,
            stuck_at      INTEGER,
            transit       INTEGER GENERATED ALWAYS AS (CASE WHEN delivered_at >= shipped_at
                              THEN (delivered_at - shipped_at) / 1000000 END) STORED,
            pickup        INTEGER GENERATED ALWAYS AS (CASE WHEN shipped_at >= created_at
                              THEN (shipped_at - created_at) / 1000000 END) STORED,
            transit_hour  INTEGER GENERATED ALWAYS AS (transit / 3600) STORED,
            pickup_hour   INTEGER GENERATED ALWAYS AS (pickup / 3600) STORED,
            PRIMARY KEY (shop, order_id)
        );
        CREATE INDEX order_facts_transit ON order_facts (shop, courier, product, transit)
            WHERE transit IS NOT NULL;
        CREATE INDEX order_facts_transit_to
            ON order_facts (shop, courier, product, destination, transit)
            WHERE transit IS NOT NULL;
        CREATE INDEX order_facts_transit_all ON order_facts (courier, product, transit_hour,
            transit, shipped_at, shop, destination) WHERE transit IS NOT NULL;
        CREATE INDEX order_facts_pickup_all ON order_facts (courier, product, pickup_hour,
            pickup, shipped_at, shop, destination) WHERE pickup IS NOT NULL;
        CREATE INDEX order_facts_counts ON order_facts (courier, product, shipped_at,
            delivered_at, returned_at, problem_at, stuck_at, est_max_days, shop, destination);
        """,
    ),
    (
        19,
        # The tracking page's lookup finds an order by its AWB (`EventQuery.awb`).
        """
        CREATE INDEX events_by_awb ON events ((body ->> '$.awb'));
        """,
    ),
    (
        20,
        # Retention finds the order facts whose latest stage is older than `retention.orders`
        # (the expression is `sql.FACTS_LATEST`, word for word: SQLite uses the index only then).
        """
        CREATE INDEX order_facts_latest ON order_facts (max(coalesce(created_at, 0),
            coalesce(shipped_at, 0), coalesce(delivered_at, 0), coalesce(returned_at, 0),
            coalesce(problem_at, 0), coalesce(stuck_at, 0)));
        """,
    ),
]

AFTER: dict[int, Callable[[sqlite3.Connection], None]] = {18: insights.rebuild}
"""Steps a migration runs after its DDL, in its transaction: rows rebuilt from stored ones."""


LOG_MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        # The push log in a file of its own (beside the main one, `<name>.pushes.db`): an
        # append commits without queueing behind an intake commit or writing event index
        # pages. Its own heartbeat row proves that this file takes commits too.
        """
        CREATE TABLE pushes (
            seq           INTEGER PRIMARY KEY AUTOINCREMENT,
            id            TEXT NOT NULL UNIQUE,
            source        TEXT NOT NULL,
            method        TEXT,
            items         INTEGER NOT NULL,
            received_at   INTEGER NOT NULL,
            content_type  TEXT,
            body          BLOB NOT NULL,
            state         TEXT NOT NULL,
            error         TEXT,
            processed_at  INTEGER,
            accepted      INTEGER,
            duplicates    INTEGER
        );
        CREATE INDEX pushes_pending ON pushes (seq) WHERE state = 'pending';
        CREATE INDEX pushes_failed ON pushes (seq) WHERE state = 'failed';
        CREATE TABLE heartbeat (
            id  INTEGER PRIMARY KEY CHECK (id = 1),
            at  INTEGER NOT NULL
        );
        """,
    ),
    (
        2,
        # Which push source decoded an entry (`gateway.sources`; ``source`` says push or pull),
        # so that the intake asks that source to normalise it. Every entry logged before
        # sources existed was KiriminAja's.
        """
        ALTER TABLE pushes ADD COLUMN origin TEXT NOT NULL DEFAULT 'kiriminaja';
        """,
    ),
    (
        3,
        # Several shops: each entry is the shop's whose token pushed it (`default` before).
        """
        ALTER TABLE pushes ADD COLUMN shop TEXT NOT NULL DEFAULT 'default';
        """,
    ),
]
"""The push log's file (see `LOG_MIGRATIONS`' first entry); versioned on its own."""


def move_pushes(conn: sqlite3.Connection, log_path: str) -> int:
    """Move the entries of a main file's ``pushes`` table (a store from before the log had its
    own file) into the log file, then drop the table; how many were moved.

    Copy first, drop after, each committed: a crash in between leaves both, and the next start
    copies again (rows the log has are skipped by id) before dropping."""
    if conn.execute(sql.MAIN_HAS_PUSHES).fetchone() is None:
        return 0
    conn.execute(sql.ATTACH_LOG, (log_path,))
    try:
        conn.execute(sql.BEGIN)
        try:
            moved = conn.execute(sql.MOVE_PUSHES).rowcount
            conn.execute(sql.COMMIT)
        except BaseException:
            conn.execute(sql.ROLLBACK)
            raise
    finally:
        conn.execute(sql.DETACH_LOG)
    conn.execute(sql.BEGIN)
    try:
        conn.execute(sql.DROP_MAIN_PUSHES)
        conn.execute(sql.COMMIT)
    except BaseException:
        conn.execute(sql.ROLLBACK)
        raise
    return moved


def migrate(
    conn: sqlite3.Connection,
    *,
    now: int,
    migrations: list[tuple[int, str]] = MIGRATIONS,
    after: Mapping[int, Callable[[sqlite3.Connection], None]] = AFTER,
) -> None:
    """Apply the migrations this database has not had yet, each in its own transaction (with
    its step of `after`, if any); `now` (microseconds) records when."""
    conn.execute(sql.CREATE_SCHEMA_VERSION)
    done = {r[0] for r in conn.execute(sql.APPLIED_VERSIONS)}
    for version, ddl in migrations:
        if version in done:
            continue
        statements: Iterable[str] = (s for s in ddl.split(";") if s.strip())
        conn.execute(sql.BEGIN)
        try:
            for statement in statements:
                conn.execute(statement)
            if (step := after.get(version)) is not None:
                step(conn)
            conn.execute(sql.RECORD_VERSION, (version, now))
            conn.execute(sql.COMMIT)
        except BaseException:
            conn.execute(sql.ROLLBACK)
            raise
