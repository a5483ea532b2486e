"""`kabarin check`'s verdict on a configuration file, shared by every place that loads one.

`validate_file` is what `kabarin check` runs, what `kabarin serve` refuses to start on, what a
reload refuses to apply, and what the dashboard's configuration page shows: the file's own
problems, then every route's, grouping's (`check_grouping`) and template's (`check_templates`),
all in one `ConfigError`.
`sink_checks` is what the sinks themselves say of the messages they would be handed (a sink's
optional `sinks.base.Checkable.check`: the SMS sink counts the segments of its texts), printed
in `kabarin check`'s summary.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from gateway.config import Config, InvalidConfig, RouteConfig, load_config
from gateway.delivery.model import Group
from gateway.digests.runner import digest_problems
from gateway.errors import ConfigError, TemplateError
from gateway.events import Event, Status
from gateway.routing import Route, Router
from gateway.sources.registry import configured_sources
from gateway.templating import (
    Templates,
    clean_error,
    minimal_events,
    sample_contact,
    sample_estimate,
    sample_events,
)
from sinks.base import Checkable, CheckSamples, Message, Sink, SinkDeps
from sinks.registry import build_sinks, kind_of

__all__ = ["check_grouping", "check_templates", "sink_checks", "validate_file"]


def validate_file(path: str) -> Config:
    """Load the file and check its routes and templates; raises `ConfigError` listing every
    problem (each with its YAML path and line)."""
    try:
        config = load_config(path)
        problems = []
    except InvalidConfig as exc:  # routes and templates are still checked, to list everything
        config, problems = exc.partial, exc.problems
    router, route_problems = Router.compile(config)
    problems += route_problems
    sinks = build_sinks(config.sinks, SinkDeps())
    problems += check_grouping(config, router, sinks)
    problems += check_templates(config, router, sinks)
    problems += digest_problems(config, sinks)
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return config


def sink_checks(config: Config) -> list[tuple[str, str]]:
    """What each sink with a `check` hook says of a valid configuration, as (sink kind, line).

    A sink is handed, once per route that sends to it (fallbacks included) and once more if no
    route does, the message of every sample event that route's ``match`` lets through (every
    sample when none does), with a contact and without; a message whose template fails is
    left out (`check_templates` reports it).
    """
    checked = {
        name: sink
        for name, sink in build_sinks(config.sinks, SinkDeps()).items()
        if isinstance(sink, Checkable)
    }
    if not checked:
        return []
    templates = Templates.for_config(config)
    sources = configured_sources(config)
    events = sample_events(sources) + [e for e, _ in minimal_events(sources)]
    targets: list[tuple[str, Route | None]] = []
    for each in Router.from_config(config).routes:
        targets += [(n, each) for n in (*each.sinks, *each.fallbacks.values()) if n in checked]
    used = {name for name, _ in targets}
    targets += [(name, None) for name in checked if name not in used]
    out = []
    for name, route in targets:
        sink = checked[name]
        receivable = [e for e in events if route is None or route.matches_fields(e)] or events
        route_name = route.name if route is not None else None
        parts = route.templates.get(name, {}) if route is not None else {}
        messages = []
        for event in receivable:
            for contact in (sample_contact(event), None):
                try:
                    rendered = templates.render_parts(
                        templates.sources(parts, sink),
                        event=event,
                        contact=contact,
                        route=route_name or "check",
                        language=sink.config.language,
                        estimate=sample_estimate(event),
                    )
                except TemplateError:
                    continue
                messages.append(
                    Message(
                        delivery_id="check",
                        route=route_name or "check",
                        event=event,
                        contact=contact,
                        parts=rendered,
                    )
                )
        lines = sink.check(CheckSamples(route=route_name, messages=messages))
        out += [(kind_of(sink.config), line) for line in lines]
    return out


def check_grouping(config: Config, router: Router, sinks: Mapping[str, Sink]) -> list[str]:
    """A grouped route (``group:``) may send only to staff and machines: a sink that writes to
    the customer (`Sink.writes_to_customer`: WhatsApp, SMS, email ``to: customer``), as a
    route's sink or its fallback, gets every customer their own message, never a list of
    other people's orders."""
    problems = []
    for route in router.routes:
        if route.index >= len(config.routes) or config.routes[route.index].group is None:
            continue
        for name in dict.fromkeys([*route.sinks, *route.fallbacks.values()]):
            sink = sinks.get(name)
            if sink is not None and sink.writes_to_customer:
                problems.append(
                    f"{config.where('routes', route.index, 'group')}: route {route.name!r}"
                    f" cannot group: sink {name!r} ({kind_of(sink.config)}) writes to the"
                    " customer, who gets their own message; send to it from a route without"
                    " `group`"
                )
    return problems


_Sample = tuple[Event, str]
_MISSING_KEY = re.compile(r"^'dict object' has no attribute '([^']+)'$")


def _samples(config: Config) -> list[_Sample]:
    """The events of every source the configuration receives pushes from."""
    sources = configured_sources(config)
    full = [(e, f"sample {e.status.value} {e.kind} event") for e in sample_events(sources)]
    return full + minimal_events(sources)


def _missing(exc: BaseException, source: str) -> str | None:
    """The expression that reads a ``details`` key an event lacks (``event.details.price``),
    or None when `exc` is some other failure."""
    message = exc.__cause__ if isinstance(exc, TemplateError) and exc.__cause__ else exc
    m = _MISSING_KEY.match(str(message))
    if m is None:
        return None
    key = re.escape(m.group(1))
    found = re.search(rf"\b(?:event|contact)(?:\.\w+)*\.{key}\b", source)
    return found.group() if found else m.group(1)


def _lacking(expression: str, failed: list[tuple[_Sample, BaseException]], guard: str) -> str:
    (event, label), _ = failed[0]
    others = dict.fromkeys(e.status.value for (e, _), _ in failed[1:])
    others.pop(event.status.value, None)
    also = f", and for status {', '.join(others)}" if others else ""
    return (
        f"`{expression}` is missing for status {event.status.value} ({label}){also}; "
        f"guard it with `| default(...)` or `{guard}`"
    )


def _check(
    templates: Templates,
    where: str,
    source: str,
    route: str,
    sink: str,
    language: str,
    events: list[_Sample],
) -> list[str]:
    try:
        templates.compile(source)
    except TemplateError as exc:
        return [f"{where}: {exc}"]
    failed: list[tuple[_Sample, BaseException]] = []
    rendered = 0
    problems: dict[str, str] = {}
    for sample in events:
        event, label = sample
        for contact in (sample_contact(event), None):
            try:
                templates.render(
                    source,
                    event=event,
                    contact=contact,
                    route=route,
                    language=language,
                    estimate=sample_estimate(event) if contact else None,
                )
            except TemplateError as exc:
                failed.append((sample, exc))
                label += "" if contact else " with no contact"
                problems.setdefault(str(exc), f"{where}: {exc} ({label})")
            else:
                rendered += 1
    if not failed:
        return []
    missing = {_missing(exc, source) for _, exc in failed}
    if rendered and None not in missing:  # keys some pushes carry and others do not
        lines = []
        for expression in dict.fromkeys(_missing(exc, source) for _, exc in failed):
            assert expression is not None
            these = [f for f in failed if _missing(f[1], source) == expression]
            guard = f"{{% if {expression} is defined %}}"
            lines.append(
                f"{where}: route {route}, sink {sink}: {_lacking(expression, these, guard)}"
            )
        return lines
    return list(problems.values())


def _check_group(
    templates: Templates,
    where: str,
    source: str,
    route: Route,
    sink: str,
    language: str,
    events: list[_Sample],
) -> list[str]:
    """A grouped route's template, rendered as its messages are: a group of the sample events
    the route receives (``event`` its first), with no contact."""
    samples = [e for e, _ in events]
    grouping = route.grouping
    key = grouping.key(samples[0]) if grouping is not None else {}
    try:
        templates.render(
            source,
            event=samples[0],
            contact=None,
            route=route.name,
            language=language,
            group=Group(key=key, events=samples),
        )
    except TemplateError as exc:
        return [f"{where}: route {route.name}, sink {sink}: {exc} (a group of sample events)"]
    return []


def check_templates(config: Config, router: Router, sinks: Mapping[str, Sink]) -> list[str]:
    """Render every template against every event its route can receive; one line per failure.

    The events are a full sample of every status and the shortest push of every method, kept
    to those a route's ``match`` and ``when`` let through. Checks each route's per-sink
    template (``routes[i].template.<sink>``, fallback sinks included), else the sink's own or
    built-in one (``sinks.<name>.template``), in the sink's language; a sink no route uses is
    checked against every event. A ``when`` that fails on an event its ``match`` lets through is
    reported too (``routes[i].when``): at run time that route would not fire for it. A grouped
    route's templates are rendered as its messages are: once, for a group of those events.
    """
    templates = Templates.for_config(config)
    samples = _samples(config)
    problems: list[str] = []
    used: set[tuple[str, str]] = set()
    for route in router.routes:
        events, when_problems = _receivable(route, samples, config)
        spares = [s for s in route.fallbacks.values() if s not in route.sinks]
        for sink_name in [*route.sinks, *dict.fromkeys(spares)]:
            target = sinks.get(sink_name)
            if target is None and sink_name in route.sinks:
                where = config.where("routes", route.index, "sinks", route.sinks.index(sink_name))
                problems.append(f"{where}: undefined sink {sink_name!r}")
                continue
            if target is None:  # an undefined fallback sink: the configuration reports it
                continue
            given = route.templates.get(sink_name, {})
            for part in _checked_parts(target, given):
                if part in given:
                    path: tuple[str | int, ...] = ("routes", route.index, "template", sink_name)
                    where = config.where(*path, *_part_key(part, given))
                    source: str | None = given[part]
                else:
                    used.add((sink_name, part))
                    where, source = _sink_part(config, sink_name, target, part)
                if source is None:
                    problems.append(f"{where}: no `{part}` template: sink {sink_name!r} needs one")
                    continue
                language = target.config.language
                if route.grouping is not None:
                    problems += _check_group(
                        templates, where, source, route, sink_name, language, events or samples
                    )
                    continue
                problems += _check(
                    templates, where, source, route.name, sink_name, language, events
                )
        problems += when_problems
    for name, sink in sinks.items():
        for part in _checked_parts(sink, {}):
            if (name, part) in used:
                continue
            where, source = _sink_part(config, name, sink, part)
            if source is None:
                problems.append(f"{where}: no `{part}` template: sink {name!r} needs one")
                continue
            language = sink.config.language
            problems += _check(templates, where, source, "check", name, language, samples)
    return list(dict.fromkeys(problems))


def _checked_parts(sink: Sink, route_parts: Mapping[str, str]) -> list[str]:
    """The parts the kind sends, then any other part the configuration gives (a template a
    webhook does not send is still checked: a typo in it is a typo)."""
    return list(dict.fromkeys([*sink.parts, *sink.config.template_parts, *route_parts]))


def _part_key(part: str, given: Mapping[str, str]) -> tuple[str, ...]:
    """The YAML key of `part` below ``template``: none when the template is a plain string."""
    return () if set(given) == {"text"} else (part,)


def _sink_part(config: Config, name: str, sink: Sink, part: str) -> tuple[str, str | None]:
    """Where the sink's own template of `part` is written (or that it is built in), and its
    source (``None``: neither the block nor the kind gives one)."""
    own = sink.config.template
    if isinstance(own, str) and part == "text":
        return config.where("sinks", name, "template"), own
    if isinstance(own, dict) and part in own:
        return config.where("sinks", name, "template", part), own[part]
    built_in = sink.default_templates.get(part, {})
    source = built_in.get(sink.config.language) or built_in.get("id")
    what = "template" if part == "text" else f"{part} template"
    return config.where("sinks", name) + f" (built-in {what})", source


def _receivable(
    route: Route, samples: list[_Sample], config: Config
) -> tuple[list[_Sample], list[str]]:
    """The samples `route` fires for, and the problems of its ``when`` on the others.

    The ``when`` is judged only on samples the route's ``match`` lets through. When none does
    (``kind: instant`` with ``details.service: {not: gosend}``: every instant sample is a
    gosend one), it is judged on the full samples changed field by field to pass the match
    (`_made_to_match`); when none can be, it is not judged. When its ``when`` lets no sample
    through, the templates are still checked, on the full samples its ``match`` lets through
    (those carry every detail a ``when`` may test)."""
    tried = [s for s in samples if route.matches_fields(s[0])]
    if not tried:
        tried = _made_to_match(route, samples, config)
        if not tried:  # nothing the match lets through: the templates meet every full sample
            return [s for s in samples if s[1].startswith("sample ")], []
    events: list[_Sample] = []
    failed: list[tuple[_Sample, BaseException]] = []
    evaluated = 0
    for sample in tried:
        try:
            fires = route.evaluate_when(sample[0])
        except Exception as exc:
            failed.append((sample, exc))
            continue
        evaluated += 1
        if fires:
            events.append(sample)
    events = events or [s for s in tried if s[1].startswith("sample ")] or tried
    if not failed:
        return events, []
    where = config.where("routes", route.index, "when")
    error = clean_error(str(failed[0][1]))
    if not evaluated:
        return events, [f"{where}: fails on every sample event: {error}"]
    source = route.when or ""
    expression = _missing(failed[0][1], source)
    if expression is None:
        (event, label), _ = failed[0]
        return events, [
            f"{where}: route {route.name}: fails for status {event.status.value} ({label}): {error}"
        ]
    these = [f for f in failed if _missing(f[1], source) == expression]
    guard = f"{expression} is defined and ..."
    return events, [f"{where}: route {route.name}: {_lacking(expression, these, guard)}"]


_STATUS_VALUES = frozenset(s.value for s in Status)
_TEXT_FIELDS = frozenset(
    {"method", "kind", "source", "raw_status", "order_id", "awb", "reason", "shop"}
)
"""Event fields a value written in a ``match`` may be put in as it is (text)."""


def _made_to_match(route: Route, samples: list[_Sample], config: Config) -> list[_Sample]:
    """The full samples changed to pass `route`'s ``match``, one per status and kind: each
    field that fails takes the first value that passes it, from the values the ``match``
    names and those the samples have. A sample no value makes pass is left out."""
    match = config.routes[route.index].matchers if route.index < len(config.routes) else {}
    if not match:
        return []
    # Each entry compiled alone, by the router itself: a route of one entry tests one field.
    alone = msgspec.structs.replace(
        config,
        routes=[
            RouteConfig(name=field, sinks=[], match={field: spec}) for field, spec in match.items()
        ],
        targets=[],
    )
    tests = Router.compile(alone)[0].routes
    candidates = {field: _candidates(field, spec, samples) for field, spec in match.items()}
    made: dict[str, _Sample] = {}
    for event, label in samples:
        if not label.startswith("sample "):
            continue
        for test in tests:
            if test.matches_fields(event):
                continue
            field = test.name
            changed = (_with(event, field, value) for value in candidates[field])
            event = next((e for e in changed if test.matches_fields(e)), event)
            if not test.matches_fields(event):
                break
        else:
            if route.matches_fields(event):
                made_label = (
                    f"sample {event.status.value} {event.kind} event made to pass the match"
                )
                made.setdefault(made_label, (event, made_label))
    return list(made.values())


def _candidates(field: str, spec: Any, samples: list[_Sample]) -> list[Any]:
    """Values to try in `field`: those the ``match`` names, those the samples have, none, and
    last a regex's own source (``GK-.*`` passes ``{regex: "GK-.*"}``)."""
    named, patterns = _scalars(spec)
    if field == "status":
        named = [Status(v) for v in map(str, named) if v in _STATUS_VALUES]
    elif "." not in field and field not in _TEXT_FIELDS:
        named = patterns = []  # a time or an id: only values of the right type, the samples'
    found = [_value(e, field) for e, _ in samples]
    values: list[Any] = []
    for value in [*named, *found, None, *patterns]:
        if value not in values:
            values.append(value)
    return values


def _scalars(spec: Any) -> tuple[list[Any], list[str]]:
    """The values a matcher names, and its regexes' sources."""
    if isinstance(spec, list | dict):
        named: list[Any] = []
        patterns: list[str] = []
        for key, item in spec.items() if isinstance(spec, dict) else enumerate(spec):
            if key == "regex" and isinstance(item, str):
                patterns.append(item)
                continue
            more, regexes = _scalars(item)
            named += more
            patterns += regexes
        return named, patterns
    return [spec], []


def _value(event: Event, field: str) -> Any:
    rest = field.partition(".")[2]
    if not rest:
        return getattr(event, field, None)
    value: Any = event.details
    for key in rest.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _with(event: Event, field: str, value: Any) -> Event:
    """`event` with `value` in `field` (a dotted path into ``details`` made as needed; ``None``
    there removes the key, as a push that lacks it)."""
    rest = field.partition(".")[2]
    if not rest:
        return msgspec.structs.replace(event, **{field: value})
    details = dict(event.details)
    keys = rest.split(".")
    here = details
    for key in keys[:-1]:
        inner = here.get(key)
        here[key] = dict(inner) if isinstance(inner, dict) else {}
        here = here[key]
    if value is None:
        here.pop(keys[-1], None)
    else:
        here[keys[-1]] = value
    return msgspec.structs.replace(event, details=details)
