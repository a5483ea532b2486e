"""The configuration's schema: one frozen msgspec struct per section of the YAML file.

Every key is a field, documented by the docstring under it (`gateway.config.reference` reads
them for the key reference, and a test keeps every key described). A block's own checks are
in its ``__post_init__``, raising `FieldError` to point at the key at fault. Reading the file
is `gateway.config.loader`'s job.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

from gateway.config.lines import LineIndex
from gateway.config.tracking_page import BrandConfig, TrackingPageConfig
from gateway.delivery.model import Ordering
from gateway.events import DEFAULT_SHOP, TERMINAL_STATUSES, Status
from gateway.store.roles import DEFAULT_CACHE_MB
from gateway.units import Duration, FieldError, Window, check_interval, parse_rate_limit
from sinks.base import Language, SinkConfig

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "DEFAULT_SHOP",
    "KIRIMINAJA_URLS",
    "MIN_ADMIN_TOKEN",
    "SECTIONS",
    "SHOP_ID",
    "AdminConfig",
    "Config",
    "ContactLookupConfig",
    "ContactsConfig",
    "DigestConfig",
    "DispatcherConfig",
    "GroupConfig",
    "IntakeConfig",
    "KiriminAjaConfig",
    "LookupFields",
    "PullConfig",
    "ReceiverConfig",
    "RetentionConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "ScopedToken",
    "ShopConfig",
    "SourceConfig",
    "StoreConfig",
    "Target",
    "TemplateFile",
    "TrackingPageConfig",
]

DEFAULT_RETRY_SCHEDULE = tuple(
    Duration(s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
)


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ReceiverConfig(_Section, frozen=True):
    """The push endpoint KiriminAja POSTs to."""

    token: str | None = None
    """KiriminAja's API key: KiriminAja sends it as the push's bearer token. A file with one
    shop sets it (that shop's id is ``default``); a file with several leaves it out and lists
    them under ``shops:``."""
    path: str = "/kiriminaja/push"
    """Where KiriminAja POSTs (register it with KiriminAja's ``set_callback``)."""
    max_body_bytes: int = 2 * 1024 * 1024
    """Larger bodies are answered 413; at least 1024."""
    timezone: str = "Asia/Jakarta"
    """Zone of KiriminAja's naive ``YYYY-MM-DD HH:MM:SS`` times."""
    read_timeout: Duration = Duration(10)
    """How long a request's headers, and then its body, may take to arrive."""
    keep_alive: Duration = Duration(5)
    """How long a connection may sit idle between requests (or before its first one)."""
    max_backlog: int = 50_000
    """Pending push log entries beyond which pushes are answered 503 with Retry-After."""

    def __post_init__(self) -> None:
        if self.read_timeout <= 0 or self.keep_alive <= 0:
            raise ValueError("`read_timeout` and `keep_alive` must be positive")
        if not float(self.keep_alive).is_integer():
            # The server counts its idle timeout in whole seconds: 1.5s would silently be 2s.
            raise FieldError(
                "keep_alive",
                f"must be a whole number of seconds ({self.keep_alive:g}s is not): write 1s or 2s",
            )
        if not self.path.startswith("/"):
            raise FieldError("path", "must start with `/`")
        if self.max_body_bytes < 1024:
            raise FieldError("max_body_bytes", "must be at least 1024")
        if self.max_backlog < 1:
            raise FieldError("max_backlog", "must be at least 1")
        if self.token is not None and not self.token:
            raise FieldError("token", "must not be empty")
        _check_zone("timezone", self.timezone)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class SourceConfig(_Section, frozen=True):
    """A push source besides KiriminAja (a ``kabarin.sources`` plugin), by its name."""

    path: str
    """Where it POSTs its pushes, with the bearer token of ``receiver.token``."""

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise FieldError("path", "must start with `/`")


def _check_zone(key: str, zone: str) -> None:
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise FieldError(key, f"unknown time zone `{zone}`") from exc


class StoreConfig(_Section, frozen=True):
    """Where pushes, events, deliveries and contacts are kept: SQLite or PostgreSQL."""

    url: str = "sqlite:///./kabarin.db"
    """``sqlite:///relative.db`` (from the working folder), ``sqlite:////absolute.db``, or
    ``postgresql://user:password@host:5432/db`` (``postgres://`` too), shared by replicas."""
    cache_mb: int = DEFAULT_CACHE_MB
    """SQLite's page cache per connection, in MiB (a server holds four: two writers, two
    readers); most of the memory a busy server keeps. Ignored with PostgreSQL."""

    def __post_init__(self) -> None:
        if not 1 <= self.cache_mb <= 65536:
            raise FieldError("cache_mb", "must be between 1 and 65536 (MiB per connection)")
        if not self.is_postgres:
            self.sqlite_path  # noqa: B018 (raises FieldError for a URL `serve` could not open)

    @property
    def is_postgres(self) -> bool:
        """A PostgreSQL URL, as `gateway.store.open_store` reads it (libpq checks the rest)."""
        scheme, sep, _rest = self.url.partition("://")
        return bool(sep) and scheme in ("postgresql", "postgres")

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file the URL names, as `gateway.store.open_store` reads it."""
        usage = "use sqlite:///relative.db, sqlite:////absolute.db or postgresql://host/db"
        scheme, sep, rest = self.url.partition("://")
        if not sep:
            raise FieldError("url", f"not a store URL ({usage})")
        if scheme != "sqlite":
            raise FieldError("url", f"unsupported store {scheme!r} ({usage})")
        if not rest.startswith("/") or len(rest) < 2 or rest.endswith("/"):
            raise FieldError("url", f"name the SQLite file ({usage})")
        return Path(rest[1:])


class ScopedToken(_Section, frozen=True):
    """An admin token limited to some shops."""

    token: str
    """Its bearer token (at least 16 characters)."""
    shops: list[str]
    """The ids (under ``shops:``; ``default`` in a one-shop file) of the shops it sees."""

    def __post_init__(self) -> None:
        if len(self.token) < MIN_ADMIN_TOKEN:
            raise FieldError(
                "token", f"must be at least {MIN_ADMIN_TOKEN} characters (it has {len(self.token)})"
            )
        if not self.shops:
            raise FieldError("shops", "name at least one shop")


class AdminConfig(_Section, frozen=True):
    """The admin API and the dashboard."""

    token: str | None = None
    """Bearer token of the admin API; without one the admin API answers 401 to everyone."""
    secure_cookie: Literal["auto", "always"] = "auto"
    """The dashboard's session cookie is ``Secure``: ``auto`` for https requests (as a trusted
    proxy says), ``always`` whatever the request (a TLS proxy Kabarin does not trust)."""
    public_url: str | None = None
    """Where people reach this Kabarin (``https://kabarin.toko.example``): staff messages link
    to an order's dashboard page under it (the ``order_url`` template name). ``None``: no
    link."""
    tokens: list[ScopedToken] = msgspec.field(default_factory=list)
    """Admin tokens that see only some shops (a shop owner's own view): their pushes, events,
    deliveries, contacts and orders; not the configuration, nor a reload."""

    def __post_init__(self) -> None:
        # Empty is "off", as if left out; anything shorter than this is guessable.
        if self.token and len(self.token) < MIN_ADMIN_TOKEN:
            raise FieldError(
                "token", f"must be at least {MIN_ADMIN_TOKEN} characters (it has {len(self.token)})"
            )
        seen = {self.token} if self.token else set()
        for i, scoped in enumerate(self.tokens):
            if scoped.token in seen:
                raise FieldError(("tokens", i, "token"), "already used by another admin token")
            seen.add(scoped.token)
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise FieldError("public_url", "must be an absolute http:// or https:// URL")
            if parts.query or parts.fragment:
                raise FieldError("public_url", "must not have a query or a fragment")


MIN_ADMIN_TOKEN = 16
"""Characters an admin token needs at least."""


class RetryPolicyConfig(_Section, frozen=True):
    """When a failed delivery is tried again (a sink's own ``retry`` may override it)."""

    schedule: list[Duration] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    """Waits before the 2nd, 3rd, ... attempt; after the last one a delivery is dead."""
    jitter: float = 0.2
    """Each wait is spread by ± this fraction."""

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise FieldError("jitter", "must be between 0 and 1")


class DispatcherConfig(_Section, frozen=True):
    """The dispatcher: claims due deliveries and hands them to their sinks."""

    enabled: bool = True
    """Run the dispatcher inside `kabarin serve` (turn off when `kabarin worker` runs apart)."""
    lease: Duration = Duration(60)
    """How long a claimed delivery stays leased before another worker may take it."""
    batch: int = 100
    """Deliveries claimed per round."""
    poll_interval: Duration = Duration(1)
    """Longest sleep between looks at the store when nothing wakes the dispatcher."""
    shutdown_timeout: Duration = Duration(10)
    """On SIGTERM, how long in-flight sends may take before they are released."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FieldError("batch", "must be at least 1")
        if self.lease <= 0:
            raise FieldError("lease", "must be more than 0")


class IntakeConfig(_Section, frozen=True):
    """The intake: pending push log entries → normalise → route → store."""

    enabled: bool = True
    """Run the intake inside `kabarin serve` (`kabarin worker` always runs one)."""
    batch: int = 200
    """Push log entries normalised, routed and stored per commit."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FieldError("batch", "must be at least 1")


class RetentionConfig(_Section, frozen=True):
    """How long each kind of row is kept (``0`` or ``off``: for ever); see "Retention" in
    docs/operations.md."""

    pushes: Window = Window(90 * 86400)
    """``processed`` push log entries (pending and failed ones are never pruned)."""
    events: Window = Window(90 * 86400)
    """Events, and so the dedupe window: a push repeated after its events went makes new ones."""
    delivered: Window = Window(30 * 86400)
    """``delivered``, ``superseded`` and ``skipped`` deliveries, with their attempts."""
    dead: Window = Window(90 * 86400)
    """``dead`` deliveries, with their attempts."""
    rejected: Window = Window(30 * 86400)
    """Rejected push bodies (kept for replay)."""
    orders: Window = Window(365 * 86400)
    """Order facts, the history of courier scorecards and delivery estimates
    (docs/insights.md): an order goes once its latest stage (created, shipped, delivered,
    returned, problem, stuck) is older; so scorecards look back at most this far."""
    interval: Duration = Duration(3600)
    """How often the pruning runs."""
    batch: int = 500
    """Rows removed per commit: small commits leave the writer to the pushes in between."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FieldError("batch", "must be at least 1")
        if self.interval <= 0:
            raise FieldError("interval", "must be more than 0")


KIRIMINAJA_URLS = {
    "sandbox": "https://tdev.kiriminaja.com",
    "production": "https://client.kiriminaja.com",
}


class KiriminAjaConfig(_Section, frozen=True):
    """How Kabarin calls KiriminAja's API (the pull tracker's tracking calls)."""

    api_key: str | None = None
    """Bearer token of the API calls; without one, `receiver.token`, or under ``shops:`` the
    shop's ``token`` (KiriminAja sends the same key as the push's bearer token: one secret
    both ways)."""
    env: Literal["sandbox", "production"] = "production"
    """KiriminAja runs no tracking on its sandbox, so production is the default."""
    base_url: str | None = None
    """Overrides the environment's URL (a proxy, or a fake KiriminAja in tests)."""

    def __post_init__(self) -> None:
        if self.api_key is not None and not self.api_key:
            raise FieldError("api_key", "must not be empty (leave it out to use receiver.token)")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise FieldError("base_url", "must be an http:// or https:// URL")

    @property
    def url(self) -> str:
        """The API's base URL, without a trailing slash."""
        return (self.base_url or KIRIMINAJA_URLS[self.env]).rstrip("/")


class PullConfig(_Section, frozen=True):
    """The pull tracker: asks KiriminAja's tracking API about orders pushes left quiet."""

    enabled: bool = False
    """Run the pull tracker (off unless switched on)."""
    interval: Duration = Duration(300)
    """How often it looks for orders to ask about (and for stuck ones)."""
    stale_after: Duration = Duration(6 * 3600)
    """An open order is asked about once its last update is this old, and again this long
    after each answer."""
    rate: float | str = 5.0
    """Tracking calls per second per process at most: a number, or a rate like ``5/s``,
    ``120/m``."""
    gap: Duration = Duration(600)
    """No push for this long (Kabarin was down, or pushes stopped): at start-up every open
    order is asked about once."""
    alert_after: dict[Status, Duration] = msgspec.field(default_factory=dict)
    """Status → how long without a new status makes one ``stuck`` event, e.g.
    ``shipped: 7d``."""
    lease: Duration = Duration(60)
    """How long a claimed order stays this process's (beyond its place in the rate)."""

    def __post_init__(self) -> None:
        try:
            self.calls_per_second  # noqa: B018 (validates the rate)
        except ValueError as exc:
            raise FieldError("rate", str(exc)) from None
        for key in ("interval", "stale_after"):
            if getattr(self, key) <= 0:
                raise FieldError(key, "must be more than 0")
        for status, after in self.alert_after.items():
            if status in TERMINAL_STATUSES or status in (Status.STUCK, Status.UNKNOWN):
                raise FieldError(("alert_after", status.value), "not a status an order waits in")
            if after <= 0:
                raise FieldError(("alert_after", status.value), "must be more than 0")

    @property
    def calls_per_second(self) -> float:
        return _calls_per_second(self.rate)


def _calls_per_second(rate: float | str) -> float:
    """A rate (a number, or ``5/s``, ``120/m``) as calls per second; `ValueError` if bad."""
    if isinstance(rate, str):
        limit = parse_rate_limit(rate)
        return limit.count / limit.per
    if isinstance(rate, bool) or not 0 < rate < math.inf:
        raise ValueError(f"expected a number above 0 or a rate like `5/s`, got {rate!r}")
    check_interval(1 / rate, rate)
    return float(rate)


SHOP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
"""A shop id: letters, digits, ``-`` and ``_`` (it is part of URLs, metric labels, event ids)."""


class ShopConfig(_Section, frozen=True):
    """One shop (one KiriminAja account) this Kabarin serves, under its id."""

    token: str
    """That account's KiriminAja API key: its pushes' bearer token, and the key of the pull
    tracker's calls about its orders. Distinct per shop."""
    name: str | None = None
    """Shown to staff and customers (``shop.name`` in templates); ``None``: the id."""
    kiriminaja: KiriminAjaConfig | None = None
    """How Kabarin calls KiriminAja's API for this shop; ``None``: the top-level
    ``kiriminaja:`` block (its ``api_key`` aside: a shop's key is its ``token``)."""
    timezone: str | None = None
    """Zone of this shop's naive push times; ``None``: ``receiver.timezone``."""
    rate: float | str | None = None
    """The pull tracker's calls per second about this shop's orders at most (like
    ``pull.rate``); ``None``: ``pull.rate``."""
    brand: BrandConfig | None = None
    """This shop's brand on the tracking page, key by key over ``tracking_page.brand``."""

    def __post_init__(self) -> None:
        if not self.token:
            raise FieldError("token", "must not be empty")
        if self.name is not None and not self.name.strip():
            raise FieldError("name", "must not be empty (leave it out to show the id)")
        if self.timezone is not None:
            _check_zone("timezone", self.timezone)
        if self.rate is not None:
            try:
                _calls_per_second(self.rate)
            except ValueError as exc:
                raise FieldError("rate", str(exc)) from None

    @property
    def calls_per_second(self) -> float | None:
        """`rate` as tracking calls per second (``None``: ``pull.rate``)."""
        return None if self.rate is None else _calls_per_second(self.rate)


class LookupFields(_Section, frozen=True):
    """Where the answer's JSON keeps each field: a key, or a dotted path (``customer.phone``)."""

    name: str | None = "name"
    """The customer's name (``None``: the answer has none)."""
    phone: str | None = "phone"
    """The customer's phone, normalised to E.164."""
    email: str | None = "email"
    """The customer's email address."""


class ContactLookupConfig(_Section, frozen=True):
    """Ask the shop's system for an order's customer (`gateway.contacts.ContactLookup`)."""

    url: str
    """A URL template with ``{order_id}``, e.g. ``https://erp.example/orders/{order_id}/contact``;
    ``{shop}`` is the order's shop id, for a system that keeps several shops' orders."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Sent with every lookup (``Authorization: Bearer ...``)."""
    fields: LookupFields = msgspec.field(default_factory=LookupFields)
    """Where the answer keeps each field of the contact."""
    ttl: Duration = Duration(600)
    """How long an answer (a 404 too) is kept before the shop's system is asked again."""
    timeout: Duration = Duration(5)
    """How long one lookup may take; a timeout is a failed attempt of the delivery."""

    def __post_init__(self) -> None:
        if "{order_id}" not in self.url:
            raise FieldError("url", "must contain `{order_id}`")
        if not self.url.startswith(("http://", "https://")):
            raise FieldError("url", "must be an http:// or https:// URL")
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")


class ContactsConfig(_Section, frozen=True):
    """Who an order's customer is, beyond what the shop registered and pushes carried."""

    lookup: ContactLookupConfig | None = None
    """Asked only when the store's contact lacks a phone or an email."""


class TemplateFile(_Section, frozen=True):
    """A template kept in its own file: ``{file: path}``."""

    file: str
    """Path relative to the configuration file."""


class GroupConfig(_Section, frozen=True):
    """Collect a route's events into one message per sink and group (`gateway.delivery.grouping`):
    staff hear about fifty cancellations in one message, not fifty."""

    by: list[str] = msgspec.field(default_factory=list)
    """Event fields whose values make a group (``status``, ``kind``, ``method``, ``courier``,
    ``details.<key>``, any field of the event); empty: one group per route and sink."""
    wait: Duration = Duration(30)
    """How long a group's first message waits after its first event, for more to join."""
    interval: Duration = Duration(300)
    """At least this long between two messages of one group: events arriving meanwhile wait
    for the next one."""

    def __post_init__(self) -> None:
        if self.wait < 0:
            raise FieldError("wait", "must be 0 or more")
        if self.interval <= 0:
            raise FieldError("interval", "must be more than 0")
        for i, name in enumerate(self.by):
            if name in self.by[:i]:
                raise FieldError(("by", i), f"{name!r} is named twice")


class RouteConfig(_Section, frozen=True):
    """Which events go to which sinks; every matching route sends (unless one says ``stop``)."""

    name: str
    """Unique among the routes: deliveries and ``kabarin check``'s messages name it."""
    sinks: list[str]
    """The sinks (by name under ``sinks:``) that get every event this route matches."""
    match: dict[str, Any] = msgspec.field(default_factory=dict)
    """Event field (dotted paths into ``details``) → value, list (any of), {not: …}, {regex: …}."""
    shop: str | list[str] | None = None
    """Only the events of this shop, or of any of these (ids under ``shops:``); ``None``:
    every shop's. The same as ``match: {shop: ...}``."""
    when: str | None = None
    """A Jinja2 expression over ``event``; the route matches only where it is true."""
    template: dict[str, str | dict[str, str | TemplateFile]] = msgspec.field(default_factory=dict)
    """Per-sink template: sink name → the ``text`` part (inline source or ``{file: path}``), or
    a mapping part name → inline source or ``{file: path}``."""
    stop: bool = False
    """When this route matches, no later route is tried."""
    fallback: dict[str, str] = msgspec.field(default_factory=dict)
    """Sink → the sink that gets the event once instead when its delivery ends dead or
    skipped (``{wa: sms}``)."""
    group: GroupConfig | None = None
    """Send the events as a few grouped messages instead of one each (staff sinks only: a
    sink that writes to the customer cannot be grouped); ``None``: one message per event."""

    @property
    def matchers(self) -> dict[str, Any]:
        """``match`` with ``shop`` as one more entry (what the route's fields must hold)."""
        return self.match if self.shop is None else {**self.match, "shop": self.shop}


class DigestConfig(_Section, frozen=True):
    """A scheduled summary for the shop's staff (`gateway.digests`): daily ``at`` a local time,
    or ``every`` so long; sent once per period, a missed one (Kabarin was down) once at start."""

    sinks: list[str]
    """The sinks (by name under ``sinks:``) it goes to: staff sinks (slack, email to staff,
    webhook, console), never one that writes to customers."""
    at: str | None = None
    """Daily at this local time, ``HH:MM`` in `timezone` (give `at` or `every`)."""
    every: Duration | None = None
    """Every this long (``1h``, ``30m``), counted from midnight in `timezone` (give `at` or
    `every`)."""
    timezone: str | None = None
    """The zone of `at` and of the times the digest shows; ``None`` takes
    ``receiver.timezone``."""
    window: Duration | None = None
    """How far back it looks from its time (``24h``); ``None``: a day for `at`, the period
    for `every`. The window before it is what it compares with."""
    language: Language = "id"
    """``id`` or ``en``: the digest's words and status labels."""

    def __post_init__(self) -> None:
        if (self.at is None) == (self.every is None):
            raise ValueError("give exactly one of `at` (a time of day) and `every` (a duration)")
        if self.at is not None and not _HH_MM.fullmatch(self.at):
            raise FieldError("at", "expected a time of day as HH:MM, e.g. 08:00")
        if self.every is not None and self.every < 1:
            raise FieldError("every", "must be at least 1s")
        if self.window is not None and self.window <= 0:
            raise FieldError("window", "must be more than 0")
        if not self.sinks:
            raise FieldError("sinks", "name at least one sink")
        if self.timezone is not None:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError) as exc:
                raise FieldError("timezone", f"unknown time zone `{self.timezone}`") from exc


_HH_MM = re.compile(r"(?:[01]\d|2[0-3]):[0-5]\d")


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """What one route sends to one of its sinks (or fallback sinks) with, as the load resolved
    it, so that the router reads no file and asks no registry."""

    ordering: Ordering
    """The sink block's ``ordering``, else its kind's default (`Sink.default_ordering`)."""
    parts: dict[str, str] = msgspec.field(default_factory=dict)
    """The route's own template of each part, as source text (a ``{file: ...}`` read)."""


class Config(msgspec.Struct, frozen=True, kw_only=True):
    receiver: ReceiverConfig
    store: StoreConfig
    admin: AdminConfig
    retry: RetryPolicyConfig
    dispatcher: DispatcherConfig
    sinks: dict[str, SinkConfig]
    """Sink name → block; its ``type`` picks the kind (webhook, slack, email, whatsapp, sms,
    console, or a plugin's)."""
    routes: list[RouteConfig]
    """Which events go where, tried in order; an event no route matches goes nowhere."""
    sources: dict[str, SourceConfig] = msgspec.field(default_factory=dict)
    """Push sources besides KiriminAja (which POSTs to ``receiver.path``): source name (its
    ``kabarin.sources`` entry point) → where it POSTs."""
    shops: dict[str, ShopConfig] = msgspec.field(default_factory=dict)
    """Shop id → block, for several shops (KiriminAja accounts) in one Kabarin; leave it out
    and set ``receiver.token`` for one. The load fills it in for a one-shop file: the shop
    ``default``, with `receiver.token`."""
    digests: dict[str, DigestConfig] = msgspec.field(default_factory=dict)
    """Digest name → its schedule, window and sinks: scheduled summaries for staff."""
    intake: IntakeConfig = msgspec.field(default_factory=IntakeConfig)
    kiriminaja: KiriminAjaConfig = msgspec.field(default_factory=KiriminAjaConfig)
    contacts: ContactsConfig = msgspec.field(default_factory=ContactsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    pull: PullConfig = msgspec.field(default_factory=PullConfig)
    tracking_page: TrackingPageConfig = msgspec.field(default_factory=TrackingPageConfig)
    base_dir: Path
    """Folder of the configuration file: template files are looked up from here."""
    secrets: frozenset[str] = frozenset()
    """Values that came from secret-bearing keys, for redaction."""
    locations: LineIndex | None = None
    """Where each key is in the file, for messages about it."""
    targets: list[dict[str, Target]] = msgspec.field(default_factory=list)
    """Per route (by its index in `routes`): sink name → `Target`, for every defined sink and
    fallback sink it names. Derived from `sinks` and `routes` by the load."""

    @property
    def kiriminaja_api_key(self) -> str:
        """The key of KiriminAja API calls of a one-shop file: `kiriminaja.api_key`, else
        `receiver.token` (with several shops, each shop's ``token``: `gateway.shops`)."""
        return self.kiriminaja.api_key or self.receiver.token or ""

    def where(self, *path: str | int) -> str:
        """A key's path, with its line in the file when known: ``routes[1].when (line 12)``."""
        return (self.locations or LineIndex(None)).describe(path)


SECTIONS: dict[str, type[msgspec.Struct]] = {
    "receiver": ReceiverConfig,
    "store": StoreConfig,
    "admin": AdminConfig,
    "retry": RetryPolicyConfig,
    "dispatcher": DispatcherConfig,
    "intake": IntakeConfig,
    "kiriminaja": KiriminAjaConfig,
    "contacts": ContactsConfig,
    "retention": RetentionConfig,
    "pull": PullConfig,
    "tracking_page": TrackingPageConfig,
}
"""The top-level sections beside ``sinks`` and ``routes``, in the file's usual order."""
