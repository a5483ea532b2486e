"""Value types of the YAML file: durations (``500ms``, ``5s``, ``5m``, ``2h``, ``7d`` or seconds)
and rate limits (``1/s``, ``30/m``, ``100/h``).

Every duration is finite and at most `MAX_DURATION` (100 years), and so is the wait between two
sends of a rate: each may be added to or taken from a datetime, or handed to a timer, and any of
those overflows on an infinite or huge value (YAML reads ``.inf`` and ``.nan`` as numbers).
"""

from __future__ import annotations

import math
import re
from datetime import datetime, tzinfo
from typing import Any

__all__ = [
    "MAX_DURATION",
    "Duration",
    "FieldError",
    "RateLimit",
    "TooLong",
    "Window",
    "check_interval",
    "clipped",
    "dec_hook",
    "how_many",
    "local_time",
    "parse_duration",
    "parse_rate_limit",
    "parse_window",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(\d*)\s*(ms|s|m|h|d)\s*$")

MAX_DURATION = 100 * 365 * 86400
"""The longest duration, in seconds (``36500d``): 100 years from now is still a datetime."""


class FieldError(ValueError):
    """A ``__post_init__`` check that failed on one key of its block.

    msgspec reports any ``ValueError`` from ``__post_init__`` at the block itself; this one also
    names the key (``("secret", 1)`` for ``secret[1]``), so the message can point at that key's
    own line rather than the block's.
    """

    def __init__(self, key: str | tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.key: tuple[str | int, ...] = (key,) if isinstance(key, str) else key


class TooLong(ValueError):
    """A duration past `MAX_DURATION`."""


class Duration(float):
    """Seconds, parsed from ``500ms``, ``5s``, ``5m``, ``2h``, ``7d`` or a plain number."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Duration({float(self)!r})"


class Window(Duration):
    """How long something is kept: a duration, or ``0`` / ``off`` for ever (``0.0`` here)."""

    __slots__ = ()

    @property
    def off(self) -> bool:
        return self <= 0


class RateLimit:
    """At most ``count`` sends every ``per`` seconds, written ``count/unit`` (``1/s``, ``30/m``)."""

    __slots__ = ("count", "per")

    def __init__(self, count: float, per: float) -> None:
        self.count = count
        self.per = per

    @property
    def interval(self) -> float:
        """Seconds between two sends at the limit."""
        return self.per / self.count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RateLimit) and (self.count, self.per) == (other.count, other.per)

    def __hash__(self) -> int:
        return hash((self.count, self.per))

    def __repr__(self) -> str:
        return f"RateLimit({self.count:g}/{self.per:g}s)"


def parse_duration(value: object) -> Duration:
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like `5s`, got {value!r}")
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"expected a duration like `5s`, got {value!r}")
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(f"expected a duration like `500ms`, `5s`, `5m`, `2h`, `7d`, got {value!r}")
    if not seconds <= MAX_DURATION:  # an int is compared as it is: a huge one is no float
        raise TooLong(f"a duration must be at most 100 years (36500d), got {value!r}")
    return Duration(seconds)


def parse_window(value: object) -> Window:
    # YAML reads a bare `off` (or `no`, `false`) as false.
    if value is False or (isinstance(value, str) and value.strip().lower() in ("off", "never")):
        return Window(0)
    return Window(parse_duration(value))


def parse_rate_limit(value: object) -> RateLimit:
    if isinstance(value, str) and (m := _RATE.match(value)):
        count = float(m.group(1))
        per = float(m.group(2) or 1) * _UNIT_SECONDS[m.group(3)]
        if 0 < count < math.inf and 0 < per < math.inf:
            check_interval(per / count, value)
            return RateLimit(count, per)
    raise ValueError(f"expected a rate like `1/s`, `30/m` or `100/h`, got {value!r}")


def check_interval(seconds: float, rate: object) -> None:
    """Refuse a rate whose wait between two sends is longer than `MAX_DURATION`."""
    if not seconds <= MAX_DURATION:
        raise ValueError(f"a rate must allow at least one call every 100 years, got {rate!r}")


def dec_hook(type_: type, value: Any) -> Any:
    """msgspec ``dec_hook`` for the types above."""
    if type_ is Duration:
        return parse_duration(value)
    if type_ is RateLimit:
        return parse_rate_limit(value)
    if type_ is Window:
        return parse_window(value)
    raise NotImplementedError(f"no decoder for {type_!r}")


def how_many(count: int, noun: str, plural: str | None = None) -> str:
    """``1 sink``, ``0 sinks``, ``2 sinks``: a count in words, for what a person reads."""
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def local_time(moment: datetime | None, zone: tzinfo) -> str:
    """``2024-05-05 17:00:00 WIB``: a stored (UTC) time as the dashboard and the CLI show it, in
    the configured ``receiver.timezone``; ``-`` for none."""
    if moment is None:
        return "-"
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def clipped(text: str, width: int) -> str:
    """`text` on one line, at most `width` characters: one cut short ends with ``…``."""
    line = text.replace("\n", " ")
    return line if len(line) <= width else line[: width - 1] + "…"
