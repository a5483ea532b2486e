"""YAML → typed configuration.

`load_config(path)` reads the file, replaces ``${VAR}`` and ``${VAR:-default}`` in every string,
and converts it into frozen msgspec structs that forbid unknown keys. Every problem is reported
at once as a `ConfigError` whose lines name the YAML path and line, e.g.
``receiver.max_body_bytes (line 4): Expected `int`, got `str```.
"""

from __future__ import annotations

import math
import os
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from gateway.delivery.model import Ordering
from gateway.errors import ConfigError
from gateway.events import TERMINAL_STATUSES, Status
from gateway.redaction import secret_values
from gateway.store.roles import DEFAULT_CACHE_MB
from gateway.units import (
    Duration,
    FieldError,
    Window,
    check_interval,
    dec_hook,
    parse_rate_limit,
)
from sinks.base import SinkConfig
from sinks.registry import kind_of, load_sink_types

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "AdminConfig",
    "Config",
    "ContactLookupConfig",
    "ContactsConfig",
    "DispatcherConfig",
    "IntakeConfig",
    "InvalidConfig",
    "KiriminAjaConfig",
    "PullConfig",
    "ReceiverConfig",
    "RetentionConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "StoreConfig",
    "Target",
    "TemplateFile",
    "load_config",
    "parse_config",
]

DEFAULT_RETRY_SCHEDULE = tuple(
    Duration(s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
)


class _Section(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class ReceiverConfig(_Section, frozen=True):
    token: str
    """KiriminAja's API key: KiriminAja sends it as the push's bearer token."""
    path: str = "/kiriminaja/push"
    max_body_bytes: int = 2 * 1024 * 1024
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
        if not self.token:
            raise FieldError("token", "must not be empty")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise FieldError("timezone", f"unknown time zone `{self.timezone}`") from exc

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StoreConfig(_Section, frozen=True):
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


class AdminConfig(_Section, frozen=True):
    token: str | None = None
    """Bearer token of the admin API; without one the admin API answers 401 to everyone."""
    secure_cookie: Literal["auto", "always"] = "auto"
    """The dashboard's session cookie is ``Secure``: ``auto`` for https requests (as a trusted
    proxy says), ``always`` whatever the request (a TLS proxy Kabarin does not trust)."""
    public_url: str | None = None
    """Where people reach this Kabarin (``https://kabarin.toko.example``): staff messages link
    to an order's dashboard page under it (the ``order_url`` template name). ``None``: no
    link."""

    def __post_init__(self) -> None:
        # Empty is "off", as if left out; anything shorter than this is guessable.
        if self.token and len(self.token) < MIN_ADMIN_TOKEN:
            raise FieldError(
                "token", f"must be at least {MIN_ADMIN_TOKEN} characters (it has {len(self.token)})"
            )
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise FieldError("public_url", "must be an absolute http:// or https:// URL")
            if parts.query or parts.fragment:
                raise FieldError("public_url", "must not have a query or a fragment")


MIN_ADMIN_TOKEN = 16
"""Characters an admin token needs at least."""


class RetryPolicyConfig(_Section, frozen=True):
    schedule: list[Duration] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    """Waits before the 2nd, 3rd, ... attempt; after the last one a delivery is dead."""
    jitter: float = 0.2
    """Each wait is spread by ± this fraction."""

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise FieldError("jitter", "must be between 0 and 1")


class DispatcherConfig(_Section, frozen=True):
    enabled: bool = True
    """Run the dispatcher inside `kabarin serve` (turn off when `kabarin worker` runs apart)."""
    lease: Duration = Duration(60)
    """How long a claimed delivery stays leased before another worker may take it."""
    batch: int = 100
    poll_interval: Duration = Duration(1)
    """Longest sleep between looks at the store when nothing wakes the dispatcher."""
    shutdown_timeout: Duration = Duration(10)

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FieldError("batch", "must be at least 1")
        if self.lease <= 0:
            raise FieldError("lease", "must be more than 0")


class IntakeConfig(_Section, frozen=True):
    enabled: bool = True
    """Run the intake inside `kabarin serve` (`kabarin worker` always runs one)."""
    batch: int = 200
    """Push log entries normalised, routed and stored per commit."""

    def __post_init__(self) -> None:
        if self.batch < 1:
            raise FieldError("batch", "must be at least 1")


class RetentionConfig(_Section, frozen=True):
    """How long each kind of row is kept (``0`` or ``off``: for ever); see the README."""

    pushes: Window = Window(90 * 86400)
    """``processed`` push log entries (pending and failed ones are never pruned)."""
    events: Window = Window(90 * 86400)
    """Events, and so the dedupe window: a push repeated after its events went makes new ones."""
    delivered: Window = Window(30 * 86400)
    """``delivered``, ``superseded`` and ``skipped`` deliveries, with their attempts."""
    dead: Window = Window(90 * 86400)
    rejected: Window = Window(30 * 86400)
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
    """Bearer token of the API calls; without one, `receiver.token` (KiriminAja sends the same
    key as the push's bearer token: one secret both ways)."""
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
        if isinstance(self.rate, str):
            limit = parse_rate_limit(self.rate)
            return limit.count / limit.per
        if isinstance(self.rate, bool) or not 0 < self.rate < math.inf:
            raise ValueError(f"expected a number above 0 or a rate like `5/s`, got {self.rate!r}")
        check_interval(1 / self.rate, self.rate)
        return float(self.rate)


class LookupFields(_Section, frozen=True):
    """Where the answer's JSON keeps each field: a key, or a dotted path (``customer.phone``)."""

    name: str | None = "name"
    phone: str | None = "phone"
    email: str | None = "email"


class ContactLookupConfig(_Section, frozen=True):
    """Ask the shop's system for an order's customer (`gateway.contacts.ContactLookup`)."""

    url: str
    """A URL template with ``{order_id}``, e.g. ``https://erp.example/orders/{order_id}/contact``."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    fields: LookupFields = msgspec.field(default_factory=LookupFields)
    ttl: Duration = Duration(600)
    """How long an answer (a 404 too) is kept before the shop's system is asked again."""
    timeout: Duration = Duration(5)

    def __post_init__(self) -> None:
        if "{order_id}" not in self.url:
            raise FieldError("url", "must contain `{order_id}`")
        if not self.url.startswith(("http://", "https://")):
            raise FieldError("url", "must be an http:// or https:// URL")
        if self.timeout <= 0:
            raise FieldError("timeout", "must be more than 0")


class ContactsConfig(_Section, frozen=True):
    lookup: ContactLookupConfig | None = None
    """Asked only when the store's contact lacks a phone or an email."""


class TemplateFile(_Section, frozen=True):
    file: str
    """Path relative to the configuration file."""


class RouteConfig(_Section, frozen=True):
    name: str
    sinks: list[str]
    match: dict[str, Any] = msgspec.field(default_factory=dict)
    """Event field (dotted paths into ``details``) → value, list (any of), {not: …}, {regex: …}."""
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
    routes: list[RouteConfig]
    intake: IntakeConfig = msgspec.field(default_factory=IntakeConfig)
    kiriminaja: KiriminAjaConfig = msgspec.field(default_factory=KiriminAjaConfig)
    contacts: ContactsConfig = msgspec.field(default_factory=ContactsConfig)
    retention: RetentionConfig = msgspec.field(default_factory=RetentionConfig)
    pull: PullConfig = msgspec.field(default_factory=PullConfig)
    base_dir: Path
    """Folder of the configuration file: template files are looked up from here."""
    secrets: frozenset[str] = frozenset()
    """Values that came from secret-bearing keys, for redaction."""
    locations: _LineIndex | None = None
    """Where each key is in the file, for messages about it."""
    targets: list[dict[str, Target]] = msgspec.field(default_factory=list)
    """Per route (by its index in `routes`): sink name → `Target`, for every defined sink and
    fallback sink it names. Derived from `sinks` and `routes` by the load."""

    @property
    def kiriminaja_api_key(self) -> str:
        """The key of KiriminAja API calls: `kiriminaja.api_key`, else `receiver.token`."""
        return self.kiriminaja.api_key or self.receiver.token

    def where(self, *path: str | int) -> str:
        """A key's path, with its line in the file when known: ``routes[1].when (line 12)``."""
        return (self.locations or _LineIndex(None)).describe(path)


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a configuration file, and check that its store can be
    opened from here (the SQLite file's folder exists or can be created)."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{file}: cannot read: not UTF-8 text"]) from exc
    return _build(text, base_dir=file.resolve().parent, env=env, on_disk=True)


def parse_config(
    text: str, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Validate configuration text. Template files are read from `base_dir` (default: the
    working folder); the store's folder is not looked at."""
    return _build(text, base_dir=base_dir, env=env, on_disk=False)


class InvalidConfig(ConfigError):
    """The file has problems; ``partial`` is what was valid, with defaults in place of the bad
    sections, sinks left out and routes kept in place, so that routes and templates can still
    be checked and every problem of the file reported in one run."""

    def __init__(self, problems: list[str], partial: Config) -> None:
        super().__init__(problems)
        self.partial = partial


_SECTIONS: dict[str, type[_Section]] = {
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
}
_INVALID: Any = object()


def _build(
    text: str, *, base_dir: Path | None, env: Mapping[str, str] | None, on_disk: bool
) -> Config:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"invalid YAML{where}: {problem}"]) from exc
    lines = _LineIndex(node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping of sections (receiver, store, ...)"])

    problems: list[str] = []
    data = _interpolate(data, os.environ if env is None else env, (), problems, lines)
    unset = len(problems)
    for key in data:
        if key not in _SECTIONS and key not in ("sinks", "routes"):
            problems.append(f"{lines.describe((str(key),))}: {_UNKNOWN_KEY}")
    sections: dict[str, Any] = {}
    for name, section in _SECTIONS.items():
        if name in data:
            got = _convert(data[name], section, (name,), lines, problems)
            if got is not _INVALID:
                sections[name] = got
        elif name == "receiver":
            problems.append(f"{lines.describe(())}: missing required section `receiver`")
        else:
            sections[name] = section()
    if on_disk and "store" in sections:
        problem = _store_folder_problem(sections["store"])
        if problem:
            problems.append(f"{lines.describe(('store', 'url'))}: {problem}")

    raw_sinks = data.get("sinks")
    if raw_sinks is None:
        raw_sinks = {}
    elif not isinstance(raw_sinks, dict):
        problems.append(f"{lines.describe(('sinks',))}: expected a mapping of sink name → block")
        raw_sinks = {}
    invalid_sinks: set[str] = set()
    sinks = _sinks(raw_sinks, lines, problems, invalid_sinks)
    routes, valid = _routes(data.get("routes"), lines, problems)
    for i in valid:
        route = routes[i]
        if route.name in (r.name for r in routes[:i]):
            problems.append(f"{lines.describe(('routes', i, 'name'))}: duplicate route name")
        if not route.sinks:
            problems.append(f"{lines.describe(('routes', i, 'sinks'))}: name at least one sink")
        for j, sink in enumerate(route.sinks):
            if sink not in raw_sinks:
                problems.append(
                    f"{lines.describe(('routes', i, 'sinks', j))}: undefined sink {sink!r}"
                )
        for sink, spare in route.fallback.items():
            path = ("routes", i, "fallback", sink)
            if sink not in route.sinks:
                problems.append(f"{lines.describe(path)}: {sink!r} is not a sink of this route")
            if spare not in raw_sinks:
                problems.append(f"{lines.describe(path)}: undefined sink {spare!r}")
            elif spare in route.sinks or spare == sink:
                problems.append(
                    f"{lines.describe(path)}: {spare!r} already gets every event of this route"
                )
        for sink in route.template:
            if sink not in route.sinks and sink not in route.fallback.values():
                problems.append(
                    f"{lines.describe(('routes', i, 'template', sink))}: "
                    f"template for {sink!r}, which this route does not send to"
                )

    folder = base_dir or Path.cwd()
    targets = [_targets(route, i, sinks, folder, lines, problems) for i, route in enumerate(routes)]

    receiver = sections.get("receiver") or ReceiverConfig(token="(invalid)")
    admin = sections.get("admin") or AdminConfig()
    kiriminaja = sections.get("kiriminaja") or KiriminAjaConfig()
    api_keys = [kiriminaja.api_key] if kiriminaja.api_key and len(kiriminaja.api_key) >= 4 else []
    config = Config(
        receiver=receiver,
        store=sections.get("store") or StoreConfig(),
        admin=admin,
        retry=sections.get("retry") or RetryPolicyConfig(),
        dispatcher=sections.get("dispatcher") or DispatcherConfig(),
        intake=sections.get("intake") or IntakeConfig(),
        kiriminaja=kiriminaja,
        contacts=sections.get("contacts") or ContactsConfig(),
        retention=sections.get("retention") or RetentionConfig(),
        pull=sections.get("pull") or PullConfig(),
        sinks=sinks,
        routes=routes,
        base_dir=folder,
        secrets=frozenset(
            _collect_secrets(receiver, admin, raw_sinks)
            + api_keys
            + secret_values(data.get("contacts") or {})
        ),
        locations=lines,
        targets=targets,
    )
    if problems:
        # The later checks see only sinks that exist and are valid: those already reported
        # are not reported again as undefined.
        kept = [
            msgspec.structs.replace(
                r,
                sinks=[s for s in r.sinks if s in sinks],
                template={
                    s: t
                    for s, t in r.template.items()
                    if s in sinks and (s in r.sinks or s in r.fallback.values())
                },
                fallback={
                    s: f
                    for s, f in r.fallback.items()
                    if s in sinks and f in sinks and s in r.sinks and f not in r.sinks
                },
            )
            for r in routes
        ]
        raise InvalidConfig(
            _unset_first(problems, unset), msgspec.structs.replace(config, routes=kept)
        )
    return config


def _sinks(
    raw_sinks: dict[Any, Any], lines: _LineIndex, problems: list[str], invalid: set[str]
) -> dict[str, SinkConfig]:
    """Every sink block whose type is known, converted; an invalid one is named in `invalid`
    and stands in as a console sink."""
    sink_types = load_sink_types()
    sinks: dict[str, SinkConfig] = {}
    for name, block in raw_sinks.items():
        sink_path: tuple[str | int, ...] = ("sinks", str(name))
        if not isinstance(block, dict):
            problems.append(f"{lines.describe(sink_path)}: expected a block with a `type`")
            continue
        kind = block.get("type")
        if not isinstance(kind, str) or kind not in sink_types:
            known = ", ".join(sorted(sink_types))
            problems.append(
                f"{lines.describe((*sink_path, 'type'))}: unknown sink type {kind!r} "
                f"(known: {known})"
            )
            continue
        salvage: dict[str, Any] = {}
        got = _convert(block, sink_types[kind].config_type, sink_path, lines, problems, salvage)
        if got is _INVALID:
            # A console stand-in with what was valid of the block's `language` and `template`,
            # so the routes that send to it are still checked; the file is refused anyway.
            keep = {k: v for k, v in salvage.items() if k in ("language", "template")}
            got = msgspec.convert({"type": "console", **keep}, sink_types["console"].config_type)
            invalid.add(str(name))
        sinks[str(name)] = got
    return sinks


def _targets(
    route: RouteConfig,
    index: int,
    sinks: Mapping[str, SinkConfig],
    folder: Path,
    lines: _LineIndex,
    problems: list[str],
) -> dict[str, Target]:
    """The `Target` of each sink and fallback sink of `route` that is defined (the others are
    reported already); a template file that cannot be read is a problem, its part left out."""
    kinds = load_sink_types()
    out: dict[str, Target] = {}
    for sink in [*route.sinks, *route.fallback.values()]:
        block = sinks.get(sink)
        if block is None or sink in out:
            continue
        # `_sinks` keeps only blocks of known kinds; a plugin kind may leave its default out
        default: Ordering = getattr(kinds.get(kind_of(block)), "default_ordering", "all")
        given = route.template.get(sink)
        parts: dict[str, str] = {}
        path: tuple[str | int, ...] = ("routes", index, "template", sink)
        if isinstance(given, dict) and set(given) != {"file"}:
            for part, source in given.items():
                text = _template_source(source, (*path, part), folder, lines, problems)
                if text is not None:
                    parts[part] = text
        elif given is not None:  # the text part: inline, or {file: ...} as it always was
            source = TemplateFile(file=str(given["file"])) if isinstance(given, dict) else given
            text = _template_source(source, path, folder, lines, problems)
            if text is not None:
                parts["text"] = text
        out[sink] = Target(ordering=block.ordering or default, parts=parts)
    return out


def _template_source(
    given: str | TemplateFile,
    path: tuple[str | int, ...],
    folder: Path,
    lines: _LineIndex,
    problems: list[str],
) -> str | None:
    """An inline source as it is, a file's text, or None (with the problem) if unreadable."""
    if isinstance(given, str):
        return given
    file = folder / given.file
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        problems.append(
            f"{lines.describe(path)}: cannot read template file {str(file)!r}: {reason}"
        )
        return None


def _routes(
    raw_routes: Any, lines: _LineIndex, problems: list[str]
) -> tuple[list[RouteConfig], list[int]]:
    """Every route, in place: one that is invalid keeps what was valid of it (and its index,
    which later messages name), with a name and no sinks where those were bad."""
    if raw_routes is None:
        return [], []
    if not isinstance(raw_routes, list):
        problems.append(f"{lines.describe(('routes',))}: expected a list of routes")
        return [], []
    routes: list[RouteConfig] = []
    valid: list[int] = []
    for i, item in enumerate(raw_routes):
        salvage: dict[str, Any] = {}
        got = _convert(item, RouteConfig, ("routes", i), lines, problems, salvage)
        if got is _INVALID:
            salvage.setdefault("name", f"routes[{i}]")
            salvage.setdefault("sinks", [])
            got = RouteConfig(**salvage)
        else:
            valid.append(i)
        routes.append(got)
    return routes, valid


def _convert(
    value: Any,
    type_: Any,
    path: tuple[str | int, ...],
    lines: _LineIndex,
    problems: list[str],
    salvage: dict[str, Any] | None = None,
) -> Any:
    """`msgspec.convert`, reporting every bad key of a block rather than only the first (msgspec
    stops at the first). Returns `_INVALID` when anything was wrong; ``salvage`` then receives
    the fields that were valid, by attribute name."""
    try:
        return msgspec.convert(value, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        error = exc
    struct = _struct_of(type_) if isinstance(value, dict) else None
    if struct is None:
        found = len(problems)
        if isinstance(value, dict) and typing.get_origin(type_) is dict:
            _convert_items(value, typing.get_args(type_), path, lines, problems)
        if len(problems) == found:
            problems.append(_describe(error, path, lines))
        return _INVALID
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    tag_field = struct.__struct_config__.tag_field
    bad: set[Any] = set()
    for key, item in value.items():
        field = fields.get(key)
        if key == tag_field and tag_field is not None:
            continue
        if field is None:
            problems.append(f"{lines.describe((*path, str(key)))}: {_UNKNOWN_KEY}")
            bad.add(key)
            continue
        got = _convert(item, field.type, (*path, key), lines, problems)
        if got is _INVALID:
            bad.add(key)
        elif salvage is not None:
            salvage[field.name] = got
    missing = [name for name, f in fields.items() if f.required and name not in value]
    for name in missing:
        problems.append(f"{lines.describe(path)}: missing required key `{name}`")
    if missing or any(fields[k].required for k in bad if k in fields):
        return _INVALID
    if not bad:
        problems.append(_describe(error, path, lines))  # the block's own checks failed
        return _INVALID
    try:  # the block's own checks (`__post_init__`) may still find more in the valid keys
        msgspec.convert({k: v for k, v in value.items() if k not in bad}, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__cause__, ValueError):
            problems.append(_describe(exc, path, lines))
    return _INVALID


def _convert_items(
    value: dict[Any, Any],
    types_: tuple[Any, ...],
    path: tuple[str | int, ...],
    lines: _LineIndex,
    problems: list[str],
) -> None:
    """Report each bad key and value of a mapping at its own key: msgspec names none
    (``$.alert_after[...]``)."""
    key_type, value_type = types_
    for key, item in value.items():
        try:
            msgspec.convert(key, key_type)
        except msgspec.ValidationError as exc:
            problems.append(f"{lines.describe((*path, str(key)))}: {_without_path(str(exc))}")
            continue
        _convert(item, value_type, (*path, str(key)), lines, problems)


def _without_path(message: str) -> str:
    return message.split(" - at `", 1)[0]


def _struct_of(type_: Any) -> type[msgspec.Struct] | None:
    """The struct a field holds (``X`` or ``X | None``), if any."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return type_
    members = [t for t in getattr(type_, "__args__", ()) if t is not type(None)]
    if isinstance(type_, types.UnionType) and len(members) == 1:
        return _struct_of(members[0])
    return None


def _unset_first(problems: list[str], unset: int) -> list[str]:
    """The problems, without those about a key whose variable is unset (the first `unset`
    problems): its empty value is not reported again as, say, an empty token."""
    keys = {problem.split(": ", 1)[0] for problem in problems[:unset]}
    return problems[:unset] + [p for p in problems[unset:] if p.split(": ", 1)[0] not in keys]


def _store_folder_problem(store: StoreConfig) -> str | None:
    if store.is_postgres:  # a server, not a folder: `serve` reports it if it cannot connect
        return None
    folder = store.sqlite_path.parent.absolute()
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder, so the SQLite file's folder {folder} cannot be created"
    if not os.access(probe, os.W_OK | os.X_OK):
        verb = "write in" if probe == folder else f"create {folder} in"
        return f"cannot {verb} {probe} (permission denied)"
    return None


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


def _interpolate(
    value: Any,
    env: Mapping[str, str],
    path: tuple[str | int, ...],
    problems: list[str],
    lines: _LineIndex,
) -> Any:
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append(f"{lines.describe(path)}: environment variable {name} is not set")
            return ""

        return _VAR.sub(sub, value) if "${" in value else value
    if isinstance(value, dict):
        return {k: _interpolate(v, env, (*path, str(k)), problems, lines) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, env, (*path, i), problems, lines) for i, v in enumerate(value)]
    return value


def _collect_secrets(
    receiver: ReceiverConfig, admin: AdminConfig, raw_sinks: dict[Any, Any]
) -> list[str]:
    # From the raw blocks, so a sink kind this process cannot build still has its secrets masked.
    found = [receiver.token, *([admin.token] if admin.token else []), *secret_values(raw_sinks)]
    return [s for s in found if len(s) >= 4]


_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
_UNKNOWN_KEY = "unknown key (check its spelling and indentation)"
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _describe(
    exc: msgspec.ValidationError, prefix: tuple[str | int, ...], lines: _LineIndex
) -> str:
    """Turn msgspec's ``msg - at `$.a.b[0]``` into ``a.b[0] (line N): msg``."""
    message = str(exc)
    path = list(prefix)
    if m := _MSGSPEC_PATH.search(message):
        message = message[: m.start()]
        for key, index in _PATH_PART.findall(m.group(1).replace("[...]", "")):
            path.append(int(index) if index else key)
    if m := _UNKNOWN_FIELD.match(message):
        path.append(m.group(1))
        message = _UNKNOWN_KEY
    if isinstance(exc.__cause__, FieldError):
        path.extend(exc.__cause__.key)
    return f"{lines.describe(tuple(path))}: {message}"


class _LineIndex:
    """Line numbers of YAML nodes by path, for error messages."""

    def __init__(self, root: yaml.Node | None) -> None:
        self._root = root

    def line(self, path: tuple[str | int, ...]) -> int | None:
        node = self._root
        found = node.start_mark.line + 1 if node is not None else None
        for part in path:
            child: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value == str(part):
                        child = value
                        found = key.start_mark.line + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and part < len(node.value)
            ):
                child = node.value[part]
                found = child.start_mark.line + 1
            if child is None:
                break
            node = child
        return found

    def describe(self, path: tuple[str | int, ...]) -> str:
        text = ""
        for part in path:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
        text = text or "(top level)"
        line = self.line(path)
        return f"{text} (line {line})" if line is not None else text
