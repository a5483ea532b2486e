"""The configuration file: its schema (`schema`), how it is read (`loader`), and the
reference of every key (`reference`).

`load_config(path)` reads, interpolates and validates a file in one pass; every problem is
reported at once as a `ConfigError` naming each key's YAML path and line.
"""

from __future__ import annotations

from gateway.config.loader import InvalidConfig, load_config, parse_config
from gateway.config.schema import (
    DEFAULT_RETRY_SCHEDULE,
    AdminConfig,
    Config,
    ContactLookupConfig,
    ContactsConfig,
    DigestConfig,
    DispatcherConfig,
    GroupConfig,
    IntakeConfig,
    KiriminAjaConfig,
    LookupFields,
    PullConfig,
    ReceiverConfig,
    RetentionConfig,
    RetryPolicyConfig,
    RouteConfig,
    ScopedToken,
    ShopConfig,
    SourceConfig,
    StoreConfig,
    Target,
    TemplateFile,
    TrackingPageConfig,
)

__all__ = [
    "DEFAULT_RETRY_SCHEDULE",
    "AdminConfig",
    "Config",
    "ContactLookupConfig",
    "ContactsConfig",
    "DigestConfig",
    "DispatcherConfig",
    "GroupConfig",
    "IntakeConfig",
    "InvalidConfig",
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
    "load_config",
    "parse_config",
]
