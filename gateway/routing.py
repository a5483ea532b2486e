"""Route matching and fan-out: an `Event` becomes one `NewDelivery` per (matching route, sink).

Routes are tried in the order of the file, like Alertmanager's: every route that matches fires,
until one with ``stop: true`` matches. A route matches when every ``match`` entry holds and its
``when`` expression (if any) is true::

    routes:
      - name: costly-instant-cancellations
        match:
          kind: instant                           # equality
          status: [canceled, rejected]            # any of
          details.service: {not: gosend}          # negation of any matcher
          awb: {regex: "GK-.*"}                   # full match, Python `re`
        when: event.details.shipping_price > 50000
        sinks: [ops-slack, erp]
        template:
          ops-slack: "Batal: {{ event.order_id }} ({{ event.details.shipping_price | rupiah }})"
        stop: true

Values are compared as text (``status: canceled`` matches `Status.CANCELED`, ``34000`` matches
``"34000"``); a missing ``details`` key is ``null``. A ``when`` that raises makes its route not
match (logged), never fails the request. Everything is compiled once, in `Router.from_config`,
from what the configuration's load resolved (template files read, each sink's ordering): the
router reads no file and asks no sink registry.

A route with ``group: {by: [status, courier], wait: 30s, interval: 5m}`` gives each of its
deliveries a `GroupRef`: the group of (route, sink, the event's values of ``by``) whose message
it goes in (`gateway.delivery.grouping`). ``by`` names event fields (``details.<key>`` too);
``courier`` is the event's courier: ``details.courier``, else the service code KiriminAja
gave (``details.service``, ``raw.service``), until the event carries one of its own.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from operator import attrgetter
from typing import Any

from jinja2 import TemplateSyntaxError

from gateway.config import Config, GroupConfig, RouteConfig, Target
from gateway.delivery.grouping import GROUP_PREFIX
from gateway.delivery.model import Delivery, GroupRef, NewDelivery, Ordering
from gateway.errors import ConfigError
from gateway.events import Event, Status
from gateway.sources.registry import configured_sources
from gateway.templating import encode_parts, sandbox

__all__ = ["Grouping", "Route", "Router", "delivery_id", "group_id"]

log = logging.getLogger("kabarin.routing")

_Getter = Callable[[Event], Any]
_Test = Callable[[Any], bool]

_FIELDS = frozenset(Event.__struct_fields__) - {"details", "raw"}
_CHOICES: dict[str, frozenset[str]] = {
    "status": frozenset(s.value for s in Status),
    "source": frozenset({"push", "pull"}),
}
"""Fields with a closed set of values; ``kind``'s are those of the configured push sources."""
_LOGGED_LIMIT = 100


def delivery_id(event_id: str, route: str, sink: str) -> str:
    """Stable id of one delivery, so routing the same event again yields the same rows."""
    text = f"{event_id}\x1f{route}\x1f{sink}".encode()
    return "dlv_" + hashlib.blake2b(text, digest_size=12).hexdigest()


def group_id(route: str, sink: str, key: Mapping[str, str | None]) -> str:
    """Stable id of one group (a route's sink and the values of its ``group.by``)."""
    values = "\x1f".join(f"{k}\x1e{'' if v is None else v}\x1e{v is None}" for k, v in key.items())
    text = f"{route}\x1f{sink}\x1f{values}".encode()
    return GROUP_PREFIX + hashlib.blake2b(text, digest_size=12).hexdigest()


class Grouping:
    """A route's compiled ``group``: how an event's group key is read, and its times."""

    __slots__ = ("by", "interval", "wait")

    def __init__(self, *, by: Sequence[tuple[str, _Getter]], wait: float, interval: float) -> None:
        self.by = tuple(by)
        self.wait = wait
        self.interval = interval

    def key(self, event: Event) -> dict[str, str | None]:
        """The event's values of ``by``, as text (as ``match`` compares them)."""
        return {name: _text(get(event)) for name, get in self.by}

    def ref(self, route: str, sink: str, key: Mapping[str, str | None]) -> GroupRef:
        return GroupRef(
            id=group_id(route, sink, key),
            key=dict(key),
            wait=self.wait,
            interval=self.interval,
        )


class Route:
    """One compiled route: ``index`` and ``name`` as in the file, the sinks it sends to,
    ``templates`` (sink name → part name → template source), ``stop`` and the ``when``
    source."""

    __slots__ = (
        "_fallbacks",
        "_fields",
        "_logged",
        "_targets",
        "_when",
        "fallbacks",
        "grouping",
        "index",
        "name",
        "sinks",
        "stop",
        "templates",
        "when",
    )

    def __init__(
        self,
        *,
        index: int,
        name: str,
        targets: Sequence[tuple[str, Ordering, Mapping[str, str]]],
        fields: Sequence[tuple[_Getter, _Test]] = (),
        when: str | None = None,
        when_fn: Callable[..., Any] | None = None,
        stop: bool = False,
        fallbacks: Mapping[str, tuple[str, Ordering, Mapping[str, str]]] | None = None,
        grouping: Grouping | None = None,
    ) -> None:
        if grouping is not None:
            # A group's messages go one after the other, each exactly once: never superseded.
            targets = [(s, "all", t) for s, _, t in targets]
            fallbacks = {s: (f, "all", t) for s, (f, _, t) in (fallbacks or {}).items()}
        self.index = index
        self.name = name
        self.sinks: tuple[str, ...] = tuple(sink for sink, _, _ in targets)
        self.templates: dict[str, dict[str, str]] = {s: dict(t) for s, _, t in targets if t}
        self.stop = stop
        self.when = when
        self._targets = tuple((s, o, encode_parts(t)) for s, o, t in targets)
        self.fallbacks: dict[str, str] = {s: f[0] for s, f in (fallbacks or {}).items()}
        """Sink → the sink that gets the event instead when its delivery ends dead or skipped."""
        self._fallbacks = {s: (f, o, encode_parts(t)) for s, (f, o, t) in (fallbacks or {}).items()}
        self.templates.update({f: dict(t) for f, _, t in (fallbacks or {}).values() if t})
        self._fields = tuple(fields)
        self._when = when_fn
        self._logged: set[str] = set()
        self.grouping = grouping
        """``group``: each event goes in its group's message instead of a delivery of its own."""

    def fallback(self, delivery: Delivery) -> NewDelivery | None:
        """The delivery to issue once on the fallback of `delivery`'s sink, if it has one."""
        target = self._fallbacks.get(delivery.sink)
        if target is None or delivery.fallback_of is not None:
            return None
        sink, ordering, template = target
        return NewDelivery(
            id=delivery_id(delivery.event_id, self.name, sink),
            event_id=delivery.event_id,
            route=self.name,
            sink=sink,
            ordering=ordering,
            template=template,
        )

    def matches_fields(self, event: Event) -> bool:
        """Whether every ``match`` entry holds (``when`` aside)."""
        for get, test in self._fields:  # noqa: SIM110 (a plain loop is faster than all())
            if not test(get(event)):
                return False
        return True

    def evaluate_when(self, event: Event) -> bool:
        """The ``when`` expression's truth for `event` (true without one); raises what it raises."""
        return True if self._when is None else bool(self._when(event=event))

    def matches(self, event: Event) -> bool:
        """Whether this route fires for `event`. Never raises: a failing ``when`` is logged."""
        if not self.matches_fields(event):
            return False
        if self._when is None:
            return True
        try:
            return bool(self._when(event=event))
        except Exception as exc:
            self._log_when_error(event, exc)
            return False

    def _log_when_error(self, event: Event, exc: Exception) -> None:
        message = str(exc).replace("gateway.events.", "")
        first = message not in self._logged and len(self._logged) < _LOGGED_LIMIT
        self._logged.add(message)
        log.log(
            logging.WARNING if first else logging.DEBUG,
            "route %r does not match event %s: `when` failed: %s: %s",
            self.name,
            event.id,
            type(exc).__name__,
            message,
        )

    def __repr__(self) -> str:
        return f"Route({self.index}, {self.name!r}, sinks={list(self.sinks)})"


class Router:
    """The configured routes, compiled: `match` and `deliveries` run on the request path."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = tuple(routes)

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    @classmethod
    def from_config(cls, config: Config) -> Router:
        """Compile `config.routes`; `ConfigError` lists every problem with its path and line."""
        router, problems = cls.compile(config)
        if problems:
            raise ConfigError(problems)
        return router

    @classmethod
    def compile(cls, config: Config) -> tuple[Router, list[str]]:
        """Compile what is valid of `config.routes`, and list every problem found on the way,
        so that templates can still be checked in the same run."""
        problems: list[str] = []
        env = sandbox(config.receiver.tz)
        kinds = frozenset(k for source in configured_sources(config) for k in source.kinds)
        choices = {**_CHOICES, "kind": kinds}
        if config.shops:  # a shop id no configured shop has is a typo: no event would match it
            choices["shop"] = frozenset(config.shops)
        routes: list[Route] = []
        for i, rc in enumerate(config.routes):
            fields = []
            for field, spec in rc.match.items():
                path = ("routes", i, "match", field)
                get = _getter(field, config.where(*path), problems)
                test = _test(spec, path, config.where, choices.get(field), problems)
                if get is not None and test is not None:
                    fields.append((get, test))
            if rc.shop is not None:
                test = _test(
                    rc.shop, ("routes", i, "shop"), config.where, choices.get("shop"), problems
                )
                if test is not None:
                    fields.append((attrgetter("shop"), test))
            when_fn = None
            if rc.when is not None:
                try:
                    when_fn = env.compile_expression(rc.when, undefined_to_none=False)
                except TemplateSyntaxError as exc:
                    problems.append(
                        f"{config.where('routes', i, 'when')}: syntax error: {exc.message}"
                    )
            grouping = None
            if rc.group is not None:
                grouping = _grouping(rc.group, ("routes", i, "group"), config.where, problems)
            resolved = config.targets[i] if i < len(config.targets) else {}
            targets = _targets(rc, i, resolved, config, problems)
            fallbacks = {
                s: (f, resolved[f].ordering, resolved[f].parts)
                for s, f in rc.fallback.items()
                if f in resolved
            }
            routes.append(
                Route(
                    index=i,
                    name=rc.name,
                    targets=targets,
                    fields=fields,
                    when=rc.when,
                    when_fn=when_fn,
                    stop=rc.stop,
                    fallbacks=fallbacks,
                    grouping=grouping,
                )
            )
        return cls(routes), problems

    def fallback(self, delivery: Delivery) -> NewDelivery | None:
        """What `delivery` falls back to when it ends dead or skipped, by the routes in use
        now: ``None`` when its route (still) names no fallback for its sink, or it is itself
        a fallback (one is issued once, never a fallback's fallback)."""
        for route in self._routes:
            if route.name == delivery.route:
                return route.fallback(delivery)
        return None

    def match(self, event: Event) -> list[Route]:
        """The routes that fire for `event`, in order, up to the first matching ``stop`` route."""
        fired = []
        for route in self._routes:
            if route.matches(event):
                fired.append(route)
                if route.stop:
                    break
        return fired

    def deliveries(self, event: Event) -> list[NewDelivery]:
        """One delivery per (fired route, sink); empty when nothing matches (not an error)."""
        out: list[NewDelivery] = []
        eid = event.id
        for route in self._routes:
            if not route.matches(event):
                continue
            grouping = route.grouping
            key = None if grouping is None else grouping.key(event)
            for sink, ordering, template in route._targets:
                out.append(
                    NewDelivery(
                        id=delivery_id(eid, route.name, sink),
                        event_id=eid,
                        route=route.name,
                        sink=sink,
                        ordering=ordering,
                        template=template,
                        group=None
                        if grouping is None or key is None
                        else grouping.ref(route.name, sink, key),
                    )
                )
            if route.stop:
                break
        return out


def _targets(
    rc: RouteConfig,
    index: int,
    resolved: Mapping[str, Target],
    config: Config,
    problems: list[str],
) -> list[tuple[str, Ordering, dict[str, str]]]:
    targets: list[tuple[str, Ordering, dict[str, str]]] = []
    for j, sink in enumerate(rc.sinks):
        if sink in rc.sinks[:j]:  # a sink named twice is sent to once
            continue
        target = resolved.get(sink)
        if target is None:
            where = config.where("routes", index, "sinks", j)
            if sink not in config.sinks:
                problems.append(f"{where}: undefined sink {sink!r}")
            else:  # a Config put together by hand, past the load that resolves its targets
                problems.append(f"{where}: sink {sink!r} has no target resolved by the load")
            continue
        targets.append((sink, target.ordering, target.parts))
    return targets


def _courier(event: Event) -> Any:
    """The event's courier until `Event` carries one: ``details.courier``, else KiriminAja's
    service code (``details.service``, ``raw.service``)."""
    for value in (
        event.details.get("courier"),
        event.details.get("service"),
        event.raw.get("service"),
    ):
        if value not in (None, ""):
            return value
    return None


def _grouping(
    spec: GroupConfig,
    path: tuple[str | int, ...],
    where: Callable[..., str],
    problems: list[str],
) -> Grouping | None:
    by: list[tuple[str, _Getter]] = []
    failed = False
    for j, name in enumerate(spec.by):
        if name == "courier" and name not in _FIELDS:
            by.append((name, _courier))
            continue
        get = _getter(name, where(*path, "by", j), problems, also="courier")
        if get is None:
            failed = True
        else:
            by.append((name, get))
    if failed:
        return None
    return Grouping(by=by, wait=float(spec.wait), interval=float(spec.interval))


def _getter(field: str, where: str, problems: list[str], also: str | None = None) -> _Getter | None:
    head, _, rest = field.partition(".")
    if head == "details" and rest and all(rest.split(".")):
        keys = rest.split(".")
        if len(keys) == 1:
            key = keys[0]
            return lambda event: event.details.get(key)

        def nested(event: Event) -> Any:
            value: Any = event.details
            for key in keys:
                if not isinstance(value, dict):
                    return None
                value = value.get(key)
            return value

        return nested
    if not rest and field in _FIELDS:
        return attrgetter(field)
    if field == "details":
        problems.append(f"{where}: match a key of `details`, e.g. `details.service`")
        return None
    known = ", ".join(sorted(_FIELDS | ({also} if also else set())))
    problems.append(f"{where}: unknown event field {field!r} (fields: {known}, details.<key>)")
    return None


def _test(
    spec: Any,
    path: tuple[str | int, ...],
    where: Callable[..., str],
    choices: frozenset[str] | None,
    problems: list[str],
) -> _Test | None:
    """Compile one matcher: a value, a list (any of), ``{not: …}`` or ``{regex: …}``.
    ``where(*path)`` names a key and its line in messages."""
    if isinstance(spec, list):
        if not spec:
            problems.append(f"{where(*path)}: an empty list matches nothing")
            return None
        if not any(isinstance(v, list | dict) for v in spec):
            for j, value in enumerate(spec):
                _check_choice(value, where(*path, j), choices, problems)
            keys = frozenset(_text(v) for v in spec)
            return lambda value: _text(value) in keys
        tests = [_test(v, (*path, j), where, choices, problems) for j, v in enumerate(spec)]
        compiled = [t for t in tests if t is not None]
        return lambda value: any(t(value) for t in compiled)
    if isinstance(spec, dict):
        if len(spec) != 1 or next(iter(spec)) not in ("not", "regex"):
            got = ", ".join(map(str, spec)) or "none"
            problems.append(
                f"{where(*path)}: expected a value, a list, {{not: …}} or {{regex: …}}, "
                f"got a mapping with keys {got}"
            )
            return None
        if "not" in spec:
            inner = _test(spec["not"], (*path, "not"), where, choices, problems)
            return None if inner is None else (lambda value: not inner(value))
        return _regex(spec["regex"], where(*path, "regex"), problems)
    _check_choice(spec, where(*path), choices, problems)
    key = _text(spec)
    return lambda value: _text(value) == key


def _regex(source: Any, where: str, problems: list[str]) -> _Test | None:
    if not isinstance(source, str):
        problems.append(f"{where}: a regex must be a string, got {source!r}")
        return None
    try:
        pattern = re.compile(source)
    except re.error as exc:
        problems.append(f"{where}: bad regex {source!r}: {exc}")
        return None

    def test(value: Any) -> bool:
        text = _text(value)
        return text is not None and pattern.fullmatch(text) is not None

    return test


def _check_choice(
    value: Any, where: str, choices: frozenset[str] | None, problems: list[str]
) -> None:
    if choices is not None and _text(value) not in choices:
        known = ", ".join(sorted(choices))
        problems.append(f"{where}: {value!r} is never a value of this field (values: {known})")


def _text(value: Any) -> str | None:
    """The text a matcher compares: enums by value, ``true``/``false``, ``34000.0`` as ``34000``."""
    if value is None:
        return None
    if type(value) is str:
        return value
    if isinstance(value, enum.Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
