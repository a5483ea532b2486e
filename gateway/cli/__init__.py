"""``kabarin``: serve | worker | check | simulate | deliveries | replay | reprocess | pull |
track add | register-callback | rejected | contacts import | routes test | digest | store |
insights couriers.

One module per command group; each registers its commands and only parses input and prints
output. The operator actions themselves are `gateway.operations`, shared with the admin API and
the dashboard.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence

from gateway import __version__
from gateway.cli import (
    check,
    contacts,
    deliveries,
    digest,
    insights,
    pull,
    pushes,
    rejected,
    routes,
    serve,
    store,
)
from gateway.cli.running import print_invalid
from gateway.errors import ConfigError, KabarinError
from gateway.redaction import install_log_redaction

__all__ = ["main", "parser"]


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    install_log_redaction()
    if args.log_level != "debug":  # one line per outbound request is debugging detail
        logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        code: int = args.func(args)
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit
    except BrokenPipeError:
        # The reader (`kabarin check | head -1`) has gone: no traceback, and no second error
        # when the interpreter flushes stdout again at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + signal.SIGPIPE
    except ConfigError as exc:
        print_invalid(args.config, exc)
        return 1
    except KabarinError as exc:
        print(f"kabarin: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def parser() -> argparse.ArgumentParser:
    """The ``kabarin`` command line, every command registered (the CLI reference is written
    from it)."""
    top = argparse.ArgumentParser(
        prog="kabarin", description="Notification gateway for KiriminAja shipment pushes."
    )
    top.add_argument("--version", action="version", version=f"kabarin {__version__}")
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # in the order `kabarin --help` lists them
    for group in (
        serve,
        check,
        deliveries,
        pushes,
        pull,
        rejected,
        contacts,
        routes,
        digest,
        store,
        insights,
    ):
        group.register(sub)
    return top


if __name__ == "__main__":
    raise SystemExit(main())
