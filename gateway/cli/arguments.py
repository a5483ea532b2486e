"""What every ``kabarin`` command shares on its command line: the ``--config`` and
``--log-level`` options, and the argument types that say what is wrong with a value."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta
from typing import TypeAlias

from gateway.units import TooLong, parse_duration

__all__ = ["Subparsers", "command", "http_url", "port", "positive", "shop", "since", "wait"]

Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
"""What ``add_subparsers`` gives: the commands of ``kabarin``, or the actions of one group."""


def command(within: Subparsers, name: str, help_: str) -> argparse.ArgumentParser:
    """A command (or a group's action) that reads a configuration file."""
    p = within.add_parser(name, help=help_, description=help_)
    p.add_argument(
        "--config",
        "-c",
        default=os.environ.get("KABARIN_CONFIG", "config.yaml"),
        help="configuration file (default: $KABARIN_CONFIG or ./config.yaml)",
    )
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return p


def since(value: str) -> datetime:
    """An ISO time (UTC if it has no zone), or a duration ago (``2h``)."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            seconds = parse_duration(value)
        except TooLong as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an ISO time or a duration like 2h, got {value!r}"
            ) from None
        return datetime.now(UTC) - timedelta(seconds=seconds)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def port(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return number


def positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def http_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {value!r}")
    return value


def wait(value: str) -> float:
    """A duration (``1m``) in seconds."""
    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def shop(p: argparse.ArgumentParser, what: str) -> None:
    """The ``--shop`` option: `what` it limits to one shop (a shop id of the file)."""
    p.add_argument("--shop", metavar="SHOP_ID", help=f"{what} (a shop id of the file)")
