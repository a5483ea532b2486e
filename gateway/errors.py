"""Kabarin's exceptions, one tree, and `ErrorBody`, the JSON every HTTP error answer carries.

Foreign errors are translated at the boundary (``from exc``).

KabarinError
├── ConfigError        the YAML file is invalid (carries one message per problem)
├── PushError          a request body is not a KiriminAja push (400); carries the JSON path
├── StoreError         the store could not read or commit (503 on the request path)
│   └── StoreRefused   ... because of the rows themselves: trying again will not help
├── TemplateError      a template failed to compile or render
├── UnknownSink        an operator named a sink the configuration does not have
├── UnknownShop        an operator named a shop that is not configured, or not theirs to see
├── ShopRequired       an operator left out the shop where several could be meant
└── NotReplayable      an operator asked to replay a delivery that is missing or not finished
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

__all__ = [
    "ConfigError",
    "ErrorBody",
    "KabarinError",
    "NotReplayable",
    "PushError",
    "ShopRequired",
    "StoreError",
    "StoreRefused",
    "TemplateError",
    "UnknownShop",
    "UnknownSink",
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


class UnknownSink(KabarinError):
    """A sink name that no configured sink has: a typo, usually. ``configured`` lists the
    configured ones (sorted), for the message each front words its own way."""

    def __init__(self, sink: str, configured: Iterable[str]) -> None:
        self.sink = sink
        self.configured = sorted(configured)
        known = ", ".join(self.configured) or "none"
        super().__init__(f"no sink named {sink!r} is configured (configured sinks: {known})")


class UnknownShop(KabarinError):
    """A shop id the configuration does not have, or (``hidden``) one outside the asking admin
    token's shops: a front answers the latter as it answers another shop's record (404), so
    that a scoped token learns nothing of the shops it does not see."""

    def __init__(self, shop: str, *, hidden: bool = False) -> None:
        self.shop = shop
        self.hidden = hidden
        super().__init__(f"no shop {shop!r}")


class ShopRequired(KabarinError):
    """Contacts and orders are kept per shop: with several shops to choose from, the shop must
    be named. ``choices`` lists the ones the asker sees."""

    def __init__(self, choices: Iterable[str]) -> None:
        self.choices = list(choices)
        super().__init__(f"name the shop: one of {', '.join(self.choices)}")


class NotReplayable(KabarinError):
    """The delivery cannot be replayed: there is none of that id (``state`` is ``None``), or it
    is in a state a replay does not take (only dead, skipped and superseded ones are)."""

    def __init__(self, delivery_id: str, state: str | None) -> None:
        self.delivery_id = delivery_id
        self.state = state
        if state is None:
            super().__init__(f"delivery {delivery_id} not found")
        else:
            super().__init__(
                f"delivery {delivery_id} is {state}: only dead, skipped or superseded"
                " deliveries are replayed"
            )


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
