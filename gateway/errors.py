"""Kabarin's exceptions, one tree, and `ErrorBody`, the JSON every HTTP error answer carries.

Foreign errors are translated at the boundary (``from exc``).

KabarinError
├── ConfigError        the YAML file is invalid (carries one message per problem)
├── PushError          a request body is not a KiriminAja push (400); carries the JSON path
├── StoreError         the store could not read or commit (503 on the request path)
│   └── StoreRefused   ... because of the rows themselves: trying again will not help
└── TemplateError      a template failed to compile or render
"""

from __future__ import annotations

import msgspec

__all__ = [
    "ConfigError",
    "ErrorBody",
    "KabarinError",
    "PushError",
    "StoreError",
    "StoreRefused",
    "TemplateError",
    "error_answer",
]


class KabarinError(Exception):
    """Base class for every error Kabarin raises on purpose."""


class ConfigError(KabarinError):
    """The configuration is invalid. ``problems`` holds one line per problem, each with its path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class PushError(KabarinError):
    """The body is not a push. ``path`` is msgspec's ``$.data[3].order_id`` style, if known."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        self.reason = reason
        self.path = path
        super().__init__(reason if path is None or path in reason else f"{reason} - at `{path}`")


class StoreError(KabarinError):
    """The store failed; the operation did not take effect."""


class StoreRefused(StoreError):
    """The store works, but refused these rows (a value it cannot hold, a broken constraint):
    the same rows will be refused again. Any other `StoreError` may pass on a retry."""


class TemplateError(KabarinError):
    """A template could not be compiled or rendered."""


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    error: str
    detail: str
    path: str | None = None
    """Where in the body the problem is, msgspec style: ``$.data[3].order_id``."""


_encode = msgspec.json.Encoder().encode


def error_answer(
    status: int, error: str, detail: str, path: str | None = None
) -> tuple[int, bytes]:
    """A status with its `ErrorBody` encoded, for the paths that answer without Litestar."""
    return status, _encode(ErrorBody(error, detail, path))
