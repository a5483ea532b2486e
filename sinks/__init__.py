"""Kabarin's sinks: one module per destination, each a small class behind `sinks.base.Sink`.

Built-in kinds: ``webhook`` (Standard Webhooks to the merchant's system), ``slack`` and
``console``. They and third-party kinds register under the ``kabarin.sinks`` entry-point
group (`sinks.registry`).
"""

from __future__ import annotations

from sinks.base import (
    Checkable,
    CheckSamples,
    ContactReader,
    Delivered,
    Message,
    Permanent,
    Retry,
    RetryConfig,
    SendResult,
    Sink,
    SinkConfig,
    SinkDeps,
    Skipped,
    mask,
)
from sinks.registry import build_sinks, load_sink_types

__all__ = [
    "CheckSamples",
    "Checkable",
    "ContactReader",
    "Delivered",
    "Message",
    "Permanent",
    "Retry",
    "RetryConfig",
    "SendResult",
    "Sink",
    "SinkConfig",
    "SinkDeps",
    "Skipped",
    "build_sinks",
    "load_sink_types",
    "mask",
]
