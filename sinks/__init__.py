"""Kabarin's sinks: one module per destination, each a small class behind `sinks.base.Sink`.

Built-in kinds: ``webhook`` (Standard Webhooks to the merchant's system), ``slack`` and
``console``. Third-party kinds register under the ``kabarin.sinks`` entry-point group.
"""

from __future__ import annotations

from sinks.base import (
    Delivered,
    Message,
    Permanent,
    Retry,
    RetryConfig,
    SendResult,
    Sink,
    SinkConfig,
    load_sink_types,
    mask,
)

__all__ = [
    "Delivered",
    "Message",
    "Permanent",
    "Retry",
    "RetryConfig",
    "SendResult",
    "Sink",
    "SinkConfig",
    "load_sink_types",
    "mask",
]
