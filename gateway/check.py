"""`kabarin check`'s verdict on a configuration file, shared by every place that loads one.

`validate_file` is what `kabarin check` runs, what `kabarin serve` refuses to start on, what a
reload refuses to apply, and what the dashboard's configuration page shows: the file's own
problems, then every route's and template's, all in one `ConfigError`. `sms_costs` is the
report `kabarin check` adds for SMS sinks.
"""

from __future__ import annotations

from gateway.config import Config, InvalidConfig, load_config
from gateway.errors import ConfigError, TemplateError

__all__ = ["sms_costs", "validate_file"]


def validate_file(path: str) -> Config:
    """Load the file and check its routes and templates; raises `ConfigError` listing every
    problem (each with its YAML path and line)."""
    from gateway.routing import Router
    from gateway.templates import check_templates
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks

    try:
        config = load_config(path)
        problems = []
    except InvalidConfig as exc:  # routes and templates are still checked, to list everything
        config, problems = exc.partial, exc.problems
    router, route_problems = Router.compile(config)
    problems += route_problems
    problems += check_templates(config, router, build_sinks(config.sinks, SinkDeps()))
    if problems:
        raise ConfigError(list(dict.fromkeys(problems)))
    return config


def sms_costs(config: Config) -> list[str]:
    """The worst case of every SMS text: the most SMS it takes over the sample events its
    route can receive (each with and without a contact), against the sink's ``max_segments``."""
    from gateway.events import Contact
    from gateway.routing import Route, Router
    from gateway.templates import Templates, minimal_events, sample_events
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks
    from sinks.segments import Segments, count_segments

    sms = {
        name: sink
        for name, sink in build_sinks(config.sinks, SinkDeps()).items()
        if type(sink.config).__struct_config__.tag == "sms"
    }
    if not sms:
        return []
    templates = Templates.for_config(config)
    events = sample_events() + [e for e, _ in minimal_events()]
    targets: list[tuple[str, Route | None]] = []
    for route in Router.from_config(config).routes:
        targets += [(n, route) for n in (*route.sinks, *route.fallbacks.values()) if n in sms]
    used = {name for name, _ in targets}
    targets += [(name, None) for name in sms if name not in used]
    lines = []
    for name, route_ in targets:
        sink = sms[name]
        route_name = route_.name if route_ is not None else None
        parts = route_.templates.get(name, {}) if route_ is not None else {}
        receivable = [e for e in events if route_ is None or route_.matches_fields(e)] or events
        worst: tuple[Segments, str] | None = None
        for event in receivable:
            for contact in (
                Contact(order_id=event.order_id, name="Siti Rahayu", phone="+6281229917190"),
                None,
            ):
                try:
                    text = templates.render_parts(
                        templates.sources(parts, sink),
                        event=event,
                        contact=contact,
                        route=route_name or "check",
                        language=sink.config.language,
                    ).get("text", "")
                except TemplateError:
                    continue  # `check_templates` reports what fails to render
                got = count_segments(text)
                if worst is None or got.units > worst[0].units:
                    worst = (got, f"{event.status.value} {event.kind}")
        if worst is None:
            continue
        limit: int = getattr(sink.config, "max_segments", 2)
        where = f"route {route_name}" if route_name else "no route"
        over = f", OVER max_segments {limit}: refused" if worst[0].count > limit else ""
        lines.append(f"{name} ({where}): up to {worst[0]}, for a {worst[1]} event{over}")
    return lines
