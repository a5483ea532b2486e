"""`kabarin check`'s verdict on a configuration file, shared by every place that loads one.

`validate_file` is what `kabarin check` runs, what `kabarin serve` refuses to start on, what a
reload refuses to apply, and what the dashboard's configuration page shows: the file's own
problems, then every route's and template's, all in one `ConfigError`.
"""

from __future__ import annotations

from gateway.config import Config, InvalidConfig, load_config
from gateway.errors import ConfigError

__all__ = ["validate_file"]


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
