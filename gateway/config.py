"""YAML → typed configuration.

`load_config(path)` reads the file, replaces ``${VAR}`` and ``${VAR:-default}`` in every string,
and converts it into frozen msgspec structs that forbid unknown keys. Every problem is reported
at once as a `ConfigError` whose lines name the YAML path and line, e.g.
``receiver.max_body_bytes (line 4): Expected `int`, got `str```.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
import yaml

from gateway.errors import ConfigError
from gateway.units import Duration, dec_hook
from sinks.base import SinkConfig, load_sink_types

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "AdminConfig",
    "Config",
    "DispatcherConfig",
    "ReceiverConfig",
    "RetryPolicyConfig",
    "RouteConfig",
    "StoreConfig",
    "TemplateFile",
    "load_config",
    "parse_config",
    "safe_url",
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

    def __post_init__(self) -> None:
        if self.read_timeout <= 0 or self.keep_alive <= 0:
            raise ValueError("`read_timeout` and `keep_alive` must be positive")
        if not self.path.startswith("/"):
            raise ValueError("`path` must start with `/`")
        if self.max_body_bytes < 1024:
            raise ValueError("`max_body_bytes` must be at least 1024")
        if not self.token:
            raise ValueError("`token` must not be empty")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone `{self.timezone}`") from exc

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class StoreConfig(_Section, frozen=True):
    url: str = "sqlite:///./kabarin.db"


class AdminConfig(_Section, frozen=True):
    token: str | None = None
    """Bearer token of the admin API; without one the admin API answers 401 to everyone."""


class RetryPolicyConfig(_Section, frozen=True):
    schedule: list[Duration] = msgspec.field(default_factory=lambda: list(DEFAULT_RETRY_SCHEDULE))
    """Waits before the 2nd, 3rd, ... attempt; after the last one a delivery is dead."""
    jitter: float = 0.2
    """Each wait is spread by ± this fraction."""

    def __post_init__(self) -> None:
        if not 0 <= self.jitter < 1:
            raise ValueError("`jitter` must be between 0 and 1")


class DispatcherConfig(_Section, frozen=True):
    enabled: bool = True
    """Run the dispatcher inside `kabarin serve` (turn off when `kabarin worker` runs apart)."""
    lease: Duration = Duration(60)
    """How long a claimed delivery stays leased before another worker may take it."""
    batch: int = 100
    poll_interval: Duration = Duration(1)
    """Longest sleep between looks at the store when nothing wakes the dispatcher."""
    shutdown_timeout: Duration = Duration(10)


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
    template: dict[str, str | TemplateFile] = msgspec.field(default_factory=dict)
    """Per-sink template: sink name → inline source or ``{file: path}``."""
    stop: bool = False
    """When this route matches, no later route is tried."""


class _RawConfig(_Section, frozen=True):
    receiver: ReceiverConfig
    store: StoreConfig = msgspec.field(default_factory=StoreConfig)
    admin: AdminConfig = msgspec.field(default_factory=AdminConfig)
    retry: RetryPolicyConfig = msgspec.field(default_factory=RetryPolicyConfig)
    dispatcher: DispatcherConfig = msgspec.field(default_factory=DispatcherConfig)
    sinks: dict[str, dict[str, Any]] = msgspec.field(default_factory=dict)
    routes: list[RouteConfig] = msgspec.field(default_factory=list)


class Config(msgspec.Struct, frozen=True, kw_only=True):
    receiver: ReceiverConfig
    store: StoreConfig
    admin: AdminConfig
    retry: RetryPolicyConfig
    dispatcher: DispatcherConfig
    sinks: dict[str, SinkConfig]
    routes: list[RouteConfig]
    base_dir: Path
    """Folder of the configuration file: template files are looked up from here."""
    secrets: frozenset[str] = frozenset()
    """Values that came from secret-bearing keys, for redaction."""


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and validate a configuration file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{file}: cannot read: {exc.strerror or exc}"]) from exc
    return parse_config(text, base_dir=file.resolve().parent, env=env)


def parse_config(
    text: str, *, base_dir: Path | None = None, env: Mapping[str, str] | None = None
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
    if problems:
        raise ConfigError(problems)
    try:
        raw = msgspec.convert(data, _RawConfig, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        raise ConfigError([_describe(exc, (), lines)]) from exc

    sink_types = load_sink_types()
    sinks: dict[str, SinkConfig] = {}
    for name, block in raw.sinks.items():
        sink_path: tuple[str | int, ...] = ("sinks", name)
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(kind, str) or kind not in sink_types:
            known = ", ".join(sorted(sink_types))
            problems.append(
                f"{lines.describe((*sink_path, 'type'))}: unknown sink type {kind!r} "
                f"(known: {known})"
            )
            continue
        try:
            sinks[name] = msgspec.convert(block, sink_types[kind].config_type, dec_hook=dec_hook)
        except msgspec.ValidationError as exc:
            problems.append(_describe(exc, sink_path, lines))

    seen_routes: set[str] = set()
    for i, route in enumerate(raw.routes):
        if route.name in seen_routes:
            problems.append(f"{lines.describe(('routes', i, 'name'))}: duplicate route name")
        seen_routes.add(route.name)
        if not route.sinks:
            problems.append(f"{lines.describe(('routes', i, 'sinks'))}: name at least one sink")
        for j, sink in enumerate(route.sinks):
            if sink not in raw.sinks:
                problems.append(
                    f"{lines.describe(('routes', i, 'sinks', j))}: undefined sink {sink!r}"
                )
        for sink in route.template:
            if sink not in route.sinks:
                problems.append(
                    f"{lines.describe(('routes', i, 'template', sink))}: "
                    f"template for {sink!r}, which this route does not send to"
                )
    if problems:
        raise ConfigError(problems)

    return Config(
        receiver=raw.receiver,
        store=raw.store,
        admin=raw.admin,
        retry=raw.retry,
        dispatcher=raw.dispatcher,
        sinks=sinks,
        routes=raw.routes,
        base_dir=base_dir or Path.cwd(),
        secrets=frozenset(_collect_secrets(raw)),
    )


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")
_SECRET_KEYS = re.compile(r"(token|secret|password|api_key|webhook_url|auth)", re.I)


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


def _collect_secrets(raw: _RawConfig) -> list[str]:
    found = [raw.receiver.token]
    if raw.admin.token:
        found.append(raw.admin.token)

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value and _SECRET_KEYS.search(key):
            found.append(value)

    walk(raw.sinks, "")
    return [s for s in found if len(s) >= 4]


_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
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
        for key, index in _PATH_PART.findall(m.group(1)):
            path.append(int(index) if index else key)
    if m := _UNKNOWN_FIELD.match(message):
        path.append(m.group(1))
        message = "unknown key (check its spelling and indentation)"
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


def safe_url(url: str) -> str:
    """A URL without its password, for logs and summaries."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        creds, _, host = rest.rpartition("@")
        user = creds.split(":", 1)[0]
        return f"{scheme}{sep}{user}:***@{host}"
    return url
