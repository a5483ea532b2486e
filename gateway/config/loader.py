"""YAML → typed configuration.

`load_config(path)` reads the file, replaces ``${VAR}`` and ``${VAR:-default}`` in every string,
and converts it into frozen msgspec structs that forbid unknown keys (`gateway.config.schema`).
Every problem is reported at once as a `ConfigError` whose lines name the YAML path and line,
e.g. ``receiver.max_body_bytes (line 4): Expected `int`, got `str```. The load also resolves
what routes send with (`Target`: each sink's ordering and template text), so that the router
reads no file and asks no registry.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import yaml

from gateway.config.convert import INVALID, UNKNOWN_KEY, convert
from gateway.config.lines import LineIndex
from gateway.config.schema import (
    DEFAULT_SHOP,
    SECTIONS,
    SHOP_ID,
    AdminConfig,
    Config,
    ContactsConfig,
    DigestConfig,
    DispatcherConfig,
    IntakeConfig,
    KiriminAjaConfig,
    PullConfig,
    ReceiverConfig,
    RetentionConfig,
    RetryPolicyConfig,
    RouteConfig,
    ShopConfig,
    SourceConfig,
    StoreConfig,
    Target,
    TemplateFile,
    TrackingPageConfig,
)
from gateway.delivery.model import Ordering
from gateway.errors import ConfigError
from gateway.redaction import secret_values
from gateway.sources.registry import DEFAULT_SOURCE, load_sources
from sinks.base import SinkConfig
from sinks.registry import kind_of, load_sink_types

__all__ = ["InvalidConfig", "load_config", "parse_config"]


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
    lines = LineIndex(node)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(["the file must hold a mapping of sections (receiver, store, ...)"])

    problems: list[str] = []
    data = _interpolate(data, os.environ if env is None else env, (), problems, lines)
    unset = len(problems)
    for key in data:
        if key not in SECTIONS and key not in ("sinks", "routes", "sources", "shops", "digests"):
            problems.append(f"{lines.describe((str(key),))}: {UNKNOWN_KEY}")
    sections: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        if name in data:
            got = convert(data[name], section, (name,), lines, problems)
            if got is not INVALID:
                sections[name] = got
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

    receiver = sections.get("receiver") or ReceiverConfig(token="(invalid)")
    sources = _sources(data.get("sources"), receiver.path, lines, problems)

    digests = _digests(data.get("digests"), raw_sinks, lines, problems)
    folder = base_dir or Path.cwd()
    targets = [_targets(route, i, sinks, folder, lines, problems) for i, route in enumerate(routes)]

    admin = sections.get("admin") or AdminConfig()
    kiriminaja = sections.get("kiriminaja") or KiriminAjaConfig()
    shops = _shops(data, receiver, admin, lines, problems)
    api_keys = [kiriminaja.api_key] if kiriminaja.api_key and len(kiriminaja.api_key) >= 4 else []
    api_keys += [k.api_key for s in shops.values() if s.kiriminaja and (k := s.kiriminaja).api_key]
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
        tracking_page=sections.get("tracking_page") or TrackingPageConfig(),
        sinks=sinks,
        routes=routes,
        sources=sources,
        shops=shops,
        digests=digests,
        base_dir=folder,
        secrets=frozenset(
            _collect_secrets(receiver, admin, raw_sinks)
            + [shop.token for shop in shops.values() if len(shop.token) >= 4]
            + api_keys
            + _page_secret(sections.get("tracking_page"))
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


def _shops(
    data: dict[Any, Any],
    receiver: ReceiverConfig,
    admin: AdminConfig,
    lines: LineIndex,
    problems: list[str],
) -> dict[str, ShopConfig]:
    """The shops: the ``shops:`` blocks, or the one shop ``default`` of `receiver.token`; and
    the checks across them (one or the other, ids, distinct tokens, scoped admin tokens)."""
    raw = data.get("shops")
    shops: dict[str, ShopConfig] = {}
    if raw is None:
        if "receiver" not in data:
            problems.append(f"{lines.describe(())}: missing required section `receiver`")
        elif receiver.token is None:
            problems.append(
                f"{lines.describe(('receiver',))}: missing `token` (KiriminAja's API key), "
                "or list the shops under `shops:`"
            )
        else:
            shops[DEFAULT_SHOP] = ShopConfig(token=receiver.token)
    elif not isinstance(raw, dict) or not raw:
        problems.append(f"{lines.describe(('shops',))}: expected a mapping of shop id → block")
    else:
        if isinstance(data.get("receiver"), dict) and "token" in data["receiver"]:
            problems.append(
                f"{lines.describe(('receiver', 'token'))}: a file with `shops:` gives each "
                "shop its token there; leave `receiver.token` out"
            )
        owner: dict[str, str] = {}
        for key, block in raw.items():
            path: tuple[str | int, ...] = ("shops", str(key))
            if not isinstance(key, str) or not SHOP_ID.match(key):
                problems.append(
                    f"{lines.describe(path)}: a shop id is letters, digits, `-` and `_` "
                    "(at most 63, starting with a letter or a digit)"
                )
                continue
            got = convert(block, ShopConfig, path, lines, problems)
            if got is INVALID:
                continue
            if got.token in owner:
                problems.append(
                    f"{lines.describe((*path, 'token'))}: the same token as shop "
                    f"{owner[got.token]!r}: a push could not tell them apart"
                )
            owner.setdefault(got.token, key)
            shops[key] = got
    if shops:  # none: that is reported already
        for i, scoped in enumerate(admin.tokens):
            for j, shop in enumerate(scoped.shops):
                if shop not in shops:
                    problems.append(
                        f"{lines.describe(('admin', 'tokens', i, 'shops', j))}: "
                        f"unknown shop {shop!r} (shops: {', '.join(shops)})"
                    )
    return shops


def _sinks(
    raw_sinks: dict[Any, Any], lines: LineIndex, problems: list[str], invalid: set[str]
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
        got = convert(block, sink_types[kind].config_type, sink_path, lines, problems, salvage)
        if got is INVALID:
            # A console stand-in with what was valid of the block's `language` and `template`,
            # so the routes that send to it are still checked; the file is refused anyway.
            keep = {k: v for k, v in salvage.items() if k in ("language", "template")}
            got = msgspec.convert({"type": "console", **keep}, sink_types["console"].config_type)
            invalid.add(str(name))
        sinks[str(name)] = got
    return sinks


def _sources(
    raw: Any, receiver_path: str, lines: LineIndex, problems: list[str]
) -> dict[str, SourceConfig]:
    """The ``sources:`` blocks of installed sources, each at a path of its own."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(f"{lines.describe(('sources',))}: expected a mapping of source → block")
        return {}
    installed = load_sources()
    taken = {receiver_path: f"{DEFAULT_SOURCE} (receiver.path)"}
    found: dict[str, SourceConfig] = {}
    for name, block in raw.items():
        where = ("sources", str(name))
        if name == DEFAULT_SOURCE:
            problems.append(f"{lines.describe(where)}: {DEFAULT_SOURCE} is at receiver.path")
            continue
        if name not in installed:
            known = ", ".join(installed) or "none"
            problems.append(
                f"{lines.describe(where)}: no push source {name!r} is installed (installed: "
                f"{known})"
            )
            continue
        got = convert(block, SourceConfig, where, lines, problems)
        if got is INVALID:
            continue
        if got.path in taken:
            problems.append(
                f"{lines.describe((*where, 'path'))}: {got.path} is already {taken[got.path]}'s"
            )
            continue
        taken[got.path] = str(name)
        found[str(name)] = got
    return found


def _targets(
    route: RouteConfig,
    index: int,
    sinks: Mapping[str, SinkConfig],
    folder: Path,
    lines: LineIndex,
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
    lines: LineIndex,
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
    raw_routes: Any, lines: LineIndex, problems: list[str]
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
        got = convert(item, RouteConfig, ("routes", i), lines, problems, salvage)
        if got is INVALID:
            salvage.setdefault("name", f"routes[{i}]")
            salvage.setdefault("sinks", [])
            got = RouteConfig(**salvage)
        else:
            valid.append(i)
        routes.append(got)
    return routes, valid


def _digests(
    raw: Any, raw_sinks: dict[Any, Any], lines: LineIndex, problems: list[str]
) -> dict[str, DigestConfig]:
    """Every valid digest block, its sinks checked against the file's (whether a sink writes
    to customers is `gateway.check`'s question: it needs the sink built)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        problems.append(
            f"{lines.describe(('digests',))}: expected a mapping of digest name → block"
        )
        return {}
    digests: dict[str, DigestConfig] = {}
    for name, block in raw.items():
        path: tuple[str | int, ...] = ("digests", str(name))
        got = convert(block, DigestConfig, path, lines, problems)
        if got is INVALID:
            continue
        for j, sink in enumerate(got.sinks):
            if sink not in raw_sinks:
                problems.append(f"{lines.describe((*path, 'sinks', j))}: undefined sink {sink!r}")
        digests[str(name)] = got
    return digests


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
    lines: LineIndex,
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


def _page_secret(page: TrackingPageConfig | None) -> list[str]:
    return [page.secret] if page is not None and page.secret else []


def _collect_secrets(
    receiver: ReceiverConfig, admin: AdminConfig, raw_sinks: dict[Any, Any]
) -> list[str]:
    # From the raw blocks, so a sink kind this process cannot build still has its secrets masked.
    found = [
        *([receiver.token] if receiver.token else []),
        *([admin.token] if admin.token else []),
        *(scoped.token for scoped in admin.tokens),
        *secret_values(raw_sinks),
    ]
    return [s for s in found if len(s) >= 4]
