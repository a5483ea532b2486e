"""Versioned schema migrations for PostgreSQL, applied in order at start-up.

Replicas starting together each run `migrate`; a transaction-scoped advisory lock (keyed on the
schema, so two deployments in one database do not wait for each other) makes them take turns:
the first applies what is missing, the others find it applied. DDL is transactional here, so a
migration that fails leaves nothing half-done. Add a migration by appending to `MIGRATIONS`;
never edit one that has shipped. The statements the store runs are in sql.py.

Times are ``timestamptz``; event bodies are ``json`` (kept exactly as encoded, key order and
all, and unlike ``jsonb`` able to hold a ``\\u0000`` a push may carry); raw bodies are ``bytea``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from psycopg import AsyncConnection
from psycopg.rows import TupleRow

from gateway.store.postgres import insights, sql

__all__ = ["AFTER", "MIGRATIONS", "migrate"]

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        # The schema SQLite reached by its migration 8 (pull tracking aside), plus the intake's
        # lease on the push log (several replicas take pending pushes at once).
        """
        CREATE TABLE pushes (
            seq           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id            text NOT NULL UNIQUE,
            source        text NOT NULL,
            method        text,
            items         integer NOT NULL,
            received_at   timestamptz NOT NULL,
            content_type  text,
            body          bytea NOT NULL,
            state         text NOT NULL,
            error         text,
            processed_at  timestamptz,
            accepted      integer,
            duplicates    integer,
            lease_owner   text,
            lease_until   timestamptz
        );
        CREATE INDEX pushes_pending ON pushes (seq) WHERE state = 'pending';
        CREATE INDEX pushes_failed ON pushes (seq) WHERE state = 'failed';

        CREATE TABLE events (
            seq          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id           text NOT NULL UNIQUE,
            order_id     text NOT NULL,
            status       text NOT NULL,
            method       text NOT NULL,
            occurred_at  timestamptz NOT NULL,
            received_at  timestamptz NOT NULL,
            body         json NOT NULL,
            push_id      text
        );
        CREATE INDEX events_by_order ON events (order_id);

        CREATE TABLE deliveries (
            seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id               text NOT NULL UNIQUE,
            event_id         text NOT NULL,
            route            text NOT NULL,
            sink             text NOT NULL,
            order_id         text NOT NULL,
            occurred_at      timestamptz NOT NULL,
            ordering         text NOT NULL,
            template         text,
            state            text NOT NULL,
            attempts         integer NOT NULL DEFAULT 0,
            next_attempt_at  timestamptz NOT NULL,
            lease_owner      text,
            lease_until      timestamptz,
            last_error       text,
            created_at       timestamptz NOT NULL,
            updated_at       timestamptz NOT NULL,
            delivered_at     timestamptz,
            waiting          text,
            fallback_of      text
        );
        CREATE UNIQUE INDEX deliveries_fallback ON deliveries (fallback_of)
            WHERE fallback_of IS NOT NULL;
        CREATE INDEX deliveries_due ON deliveries (state, next_attempt_at);
        CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE state = 'in_flight';
        CREATE INDEX deliveries_lane ON deliveries (sink, order_id);

        CREATE TABLE attempts (
            id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            delivery_id  text NOT NULL,
            started_at   timestamptz NOT NULL,
            duration_ms  double precision NOT NULL,
            outcome      text NOT NULL,
            status_code  integer,
            error        text
        );
        CREATE INDEX attempts_by_delivery ON attempts (delivery_id, id);

        CREATE TABLE rejected (
            id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            received_at   timestamptz NOT NULL,
            reason        text NOT NULL,
            body          bytea NOT NULL,
            content_type  text
        );

        CREATE TABLE contacts (
            order_id       text PRIMARY KEY,
            name           text,
            phone          text,
            email          text,
            language       text,
            updated_at     timestamptz NOT NULL,
            registered_at  timestamptz
        );

        CREATE TABLE sink_state (
            sink             text PRIMARY KEY,
            disabled_reason  text,
            disabled_at      timestamptz
        );

        CREATE TABLE heartbeat (
            id  integer PRIMARY KEY CHECK (id = 1),
            at  timestamptz NOT NULL
        );
        """,
    ),
    (
        2,
        # The pull tracker's orders: their newest status and time (kept by the commit that
        # stores their events or contacts), and the tracker's own schedule, lease and alerts.
        # Orders already stored are taken in from their events and contacts.
        """
        CREATE TABLE tracking (
            order_id        text PRIMARY KEY,
            kind            text NOT NULL DEFAULT 'express',
            last_status     text,
            last_update     timestamptz,
            closed          boolean NOT NULL DEFAULT false,
            added_at        timestamptz NOT NULL,
            last_pulled_at  timestamptz,
            next_pull_at    timestamptz,
            lease_until     timestamptz,
            gone            text,
            stuck_status    text,
            stuck_since     timestamptz
        );
        CREATE INDEX tracking_open ON tracking (last_update) WHERE NOT closed AND gone IS NULL;
        INSERT INTO tracking (order_id, kind, last_status, last_update, closed, added_at)
            SELECT DISTINCT ON (order_id) order_id, coalesce(body ->> 'kind', 'express'),
                status, occurred_at,
                bool_or(status IN ('delivered', 'canceled', 'rejected', 'returned'))
                    OVER (PARTITION BY order_id),
                statement_timestamp()
            FROM events WHERE status <> 'stuck' ORDER BY order_id, occurred_at DESC, seq DESC;
        INSERT INTO tracking (order_id, added_at)
            SELECT order_id, statement_timestamp() FROM contacts
            ON CONFLICT (order_id) DO NOTHING;
        """,
    ),
    (
        3,
        # Each sink's rate limit (the next free slot) and circuit breaker, shared by every
        # replica. A missing row is a sink never limited nor failing.
        """
        CREATE TABLE sink_controls (
            sink            text PRIMARY KEY,
            next_slot       timestamptz NOT NULL DEFAULT '-infinity',
            deferred_until  timestamptz NOT NULL DEFAULT '-infinity',
            failures        integer NOT NULL DEFAULT 0,
            open_until      timestamptz,
            cooldown        double precision,
            probe_until     timestamptz
        );
        """,
    ),
    (
        4,
        # `rejected` is no longer final: a refused parcel is followed until it is returned.
        """
        UPDATE tracking SET closed = false WHERE closed AND last_status = 'rejected';
        """,
    ),
    (
        5,
        # `ordering: latest` ranks by lifecycle stage, then by whether the time is the
        # courier's (`gateway.store.lanes`): both kept per delivery for the claim, and filled
        # in from the events for the lanes that use them (the stage numbers of lanes.STAGES
        # when this shipped). `started_at` marks a customer send under way.
        """
        ALTER TABLE deliveries ADD COLUMN stage integer NOT NULL DEFAULT 0,
            ADD COLUMN timed integer NOT NULL DEFAULT 0,
            ADD COLUMN started_at timestamptz;
        UPDATE deliveries AS d SET
            stage = CASE
                    CASE WHEN e.status = 'stuck' THEN e.body ->> 'raw_status' ELSE e.status END
                WHEN 'processed' THEN 1
                WHEN 'validated' THEN 2 WHEN 'no_driver' THEN 2
                WHEN 'shipped' THEN 3 WHEN 'picked_up' THEN 3
                WHEN 'in_transit' THEN 4 WHEN 'problem' THEN 4
                WHEN 'rejected' THEN 5 WHEN 'returning' THEN 5
                WHEN 'delivered' THEN 6 WHEN 'returned' THEN 6 WHEN 'canceled' THEN 6
                ELSE 0 END,
            timed = (e.status = 'stuck' OR e.occurred_at <> e.received_at)::integer
            FROM events AS e
            WHERE e.id = d.event_id AND d.ordering = 'latest'
            AND d.state IN ('pending', 'in_flight', 'delivered');
        """,
    ),
    (
        6,
        # The dashboard's sign-in sessions, known to every replica (`key` is a keyed hash of
        # the cookie, never the cookie).
        """
        CREATE TABLE sessions (
            key         text PRIMARY KEY,
            csrf        text NOT NULL,
            created_at  timestamptz NOT NULL,
            used_at     timestamptz NOT NULL,
            flash       text
        );
        CREATE INDEX sessions_used ON sessions (used_at);
        """,
    ),
    (
        7,
        # When the pull tracker last asked about an order, answered or not: a pass takes the
        # least recently asked first (ordered by last update, an order answered again with no
        # news came back first and starved the others). An order answered before was asked then.
        """
        ALTER TABLE tracking ADD COLUMN last_asked_at timestamptz;
        UPDATE tracking SET last_asked_at = last_pulled_at;
        CREATE INDEX tracking_asked ON tracking (last_asked_at NULLS FIRST)
            WHERE NOT closed AND gone IS NULL;
        """,
    ),
    (
        8,
        # Which push source decoded a log entry, and which one a rejected body came to
        # (`gateway.sources`): the intake asks that source to normalise the entry, a replay
        # judges the body by that source's decoder. Everything kept before sources existed
        # was KiriminAja's.
        """
        ALTER TABLE pushes ADD COLUMN origin text NOT NULL DEFAULT 'kiriminaja';
        ALTER TABLE rejected ADD COLUMN origin text NOT NULL DEFAULT 'kiriminaja';
        """,
    ),
    (
        9,
        # Several shops (KiriminAja accounts) in one store: the push log, events, deliveries
        # (whose lanes are per shop, order and sink), rejected bodies, contacts and tracked
        # orders carry their shop; contacts and tracked orders are keyed by (order id, shop).
        # Every row written before belongs to the shop `default` (a one-shop file's).
        """
        ALTER TABLE pushes ADD COLUMN shop text NOT NULL DEFAULT 'default';
        ALTER TABLE events ADD COLUMN shop text NOT NULL DEFAULT 'default';
        ALTER TABLE deliveries ADD COLUMN shop text NOT NULL DEFAULT 'default';
        ALTER TABLE rejected ADD COLUMN shop text NOT NULL DEFAULT 'default';
        DROP INDEX events_by_order;
        CREATE INDEX events_by_order ON events (order_id, shop);
        DROP INDEX deliveries_lane;
        CREATE INDEX deliveries_lane ON deliveries (sink, order_id, shop);
        ALTER TABLE contacts ADD COLUMN shop text NOT NULL DEFAULT 'default';
        ALTER TABLE contacts DROP CONSTRAINT contacts_pkey;
        ALTER TABLE contacts ADD PRIMARY KEY (order_id, shop);
        ALTER TABLE tracking ADD COLUMN shop text NOT NULL DEFAULT 'default';
        ALTER TABLE tracking DROP CONSTRAINT tracking_pkey;
        ALTER TABLE tracking ADD PRIMARY KEY (order_id, shop);
        """,
    ),
    (
        10,
        # Grouped routes (`gateway.delivery.grouping`): a group per (route, sink, key) with the
        # message it collects now (a pending delivery, closed when first claimed), and each
        # message's events. A message's lane (`deliveries.order_id`) is its group's id. The
        # intake and the claim lock a group's row, so replicas share groups.
        """
        CREATE TABLE groups (
            id              text PRIMARY KEY,
            route           text NOT NULL,
            sink            text NOT NULL,
            key             text NOT NULL,
            open_message    text,
            last_closed_at  timestamptz,
            created_at      timestamptz NOT NULL,
            updated_at      timestamptz NOT NULL
        );
        CREATE INDEX groups_open ON groups (open_message) WHERE open_message IS NOT NULL;
        CREATE TABLE group_events (
            seq         bigserial PRIMARY KEY,
            message_id  text NOT NULL,
            group_id    text NOT NULL,
            event_id    text NOT NULL,
            UNIQUE (message_id, event_id)
        );
        CREATE INDEX group_events_by_event ON group_events (event_id);
        """,
    ),
    (
        11,
        # Digests: the last period of each sent (claimed with its deliveries in one commit, so
        # a period goes once across replicas and restarts), the stand-in event each digest's
        # deliveries name, and the indexes its window counts read by time.
        """
        CREATE TABLE digests (
            name         text PRIMARY KEY,
            last_period  timestamptz NOT NULL,
            updated_at   timestamptz NOT NULL
        );
        CREATE TABLE digest_runs (
            seq         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id          text NOT NULL UNIQUE,
            digest      text NOT NULL,
            order_id    text NOT NULL,
            period      timestamptz,
            created_at  timestamptz NOT NULL,
            body        text NOT NULL
        );
        CREATE INDEX digest_runs_by_digest ON digest_runs (digest, created_at);
        CREATE INDEX events_received ON events (received_at);
        CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
        """,
    ),
    (
        12,
        # A dashboard session records which admin token signed it in (see SQLite's migration
        # 17); sessions from before recorded none and end.
        """
        DELETE FROM sessions;
        ALTER TABLE sessions ADD COLUMN token_mac text;
        """,
    ),
    (
        13,
        # What each order knows (`gateway.store.facts`; see SQLite's migration 18), rebuilt
        # from the stored events (`AFTER`).
        """
        CREATE TABLE order_facts (
            shop          text NOT NULL,
            order_id      text NOT NULL,
            courier       text NOT NULL DEFAULT '',
            product       text NOT NULL DEFAULT '',
            destination   text NOT NULL DEFAULT '',
            estimation    text,
            est_min_days  integer,
            est_max_days  integer,
            created_at    timestamptz,
            shipped_at    timestamptz,
            delivered_at  timestamptz,
            returned_at   timestamptz,
            problem_at    timestamptz,
            stuck_at      timestamptz,
            transit       bigint GENERATED ALWAYS AS (CASE WHEN delivered_at >= shipped_at
                              THEN floor(extract(epoch FROM delivered_at - shipped_at))::bigint
                              END) STORED,
            pickup        bigint GENERATED ALWAYS AS (CASE WHEN shipped_at >= created_at
                              THEN floor(extract(epoch FROM shipped_at - created_at))::bigint
                              END) STORED,
            transit_hour  bigint GENERATED ALWAYS AS (CASE WHEN delivered_at >= shipped_at
                THEN floor(extract(epoch FROM delivered_at - shipped_at) / 3600)::bigint
                END) STORED,
            pickup_hour   bigint GENERATED ALWAYS AS (CASE WHEN shipped_at >= created_at
                THEN floor(extract(epoch FROM shipped_at - created_at) / 3600)::bigint
                END) STORED,
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
        CREATE INDEX order_facts_counts ON order_facts (courier, product, shipped_at)
            INCLUDE (delivered_at, returned_at, problem_at, stuck_at, est_max_days, shop,
            destination);
        """,
    ),
    (
        14,
        # The tracking page's lookup finds an order by its AWB (see SQLite's migration 19).
        """
        CREATE INDEX events_by_awb ON events ((body ->> 'awb'));
        """,
    ),
    (
        15,
        # Retention finds the order facts whose latest stage is older than `retention.orders`
        # (see SQLite's migration 20; the expression is `sql.FACTS_LATEST`).
        """
        CREATE INDEX order_facts_latest ON order_facts ((coalesce(greatest(created_at,
            shipped_at, delivered_at, returned_at, problem_at, stuck_at),
            '-infinity'::timestamptz)));
        """,
    ),
]

AFTER: dict[int, Callable[[AsyncConnection[TupleRow]], Awaitable[None]]] = {13: insights.rebuild}
"""Steps a migration runs after its DDL, in its transaction: rows rebuilt from stored ones."""


async def migrate(conn: AsyncConnection[TupleRow], *, now: datetime) -> list[int]:
    """Apply the migrations this schema has not had yet, in one transaction under the
    migration lock; the versions applied (none when another replica was first)."""
    applied: list[int] = []
    async with conn.transaction():
        await conn.execute(sql.MIGRATION_LOCK)
        await conn.execute(sql.CREATE_SCHEMA_VERSION)
        cur = await conn.execute(sql.APPLIED_VERSIONS)
        done = {int(r[0]) for r in await cur.fetchall()}
        for version, ddl in MIGRATIONS:
            if version in done:
                continue
            await conn.execute(ddl)
            if (step := AFTER.get(version)) is not None:
                await step(conn)
            await conn.execute(sql.RECORD_VERSION, (version, now))
            applied.append(version)
    return applied
