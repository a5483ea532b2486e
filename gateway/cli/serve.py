"""``kabarin serve`` (the receiver, admin API, dashboard and the stages) and ``kabarin
worker`` (the stages without the HTTP server)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import signal
import socket

from gateway import __version__
from gateway.cli.arguments import Subparsers, command, port
from gateway.cli.running import opened_store, validated
from gateway.config import Config
from gateway.errors import KabarinError
from gateway.units import how_many

__all__ = ["register"]

log = logging.getLogger("kabarin")


def register(sub: Subparsers) -> None:
    p = command(sub, "serve", "run the gateway: receiver, admin API and dispatcher")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=port, default=8080, help="0 to 65535; 0: any free port (default: 8080)"
    )
    p.set_defaults(func=_serve)

    p = command(
        sub,
        "worker",
        "run the intake, the dispatcher, retention and (with pull.enabled) the pull tracker,"
        " without the HTTP server (for deployments that split roles)",
    )
    p.set_defaults(func=_worker)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.access import published_tokens
    from gateway.app import create_app
    from gateway.receiver import http_protocol

    config = validated(args.config)
    published = published_tokens(config, args.host)
    if published:
        raise KabarinError("refusing to serve: " + "; ".join(published))
    # Bound before anything starts, so a busy port is one clear error and never a "ready" line.
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        listener = socket.create_server((args.host, args.port), family=family, backlog=2048)
    except OSError as exc:
        raise KabarinError(
            f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}"
        ) from None
    asyncio.run(_store_writable(config))
    host, bound = listener.getsockname()[:2]  # the port chosen when --port 0 asked for any
    address = f"http://[{host}]:{bound}" if family == socket.AF_INET6 else f"http://{host}:{bound}"
    app = create_app(config, config_path=args.config, address=address)
    receiver = config.receiver
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level=args.log_level,
            access_log=False,
            timeout_graceful_shutdown=int(config.dispatcher.shutdown_timeout) + 5,
            server_header=False,
            http=http_protocol(receiver.read_timeout),
            timeout_keep_alive=max(1, math.ceil(receiver.keep_alive)),
        )
    )
    with listener:
        server.run(sockets=[listener])
    return 0


async def _store_writable(config: Config) -> None:
    """Open the store once before serving: one that cannot commit stops `serve` with one line
    (exit 1), not a traceback from inside the server's startup."""
    async with opened_store(config.store.url, cache_mb=config.store.cache_mb):
        pass


def _worker(args: argparse.Namespace) -> int:
    config = validated(args.config)
    return asyncio.run(_run_worker(config))


async def _run_worker(config: Config) -> int:
    from contextlib import AsyncExitStack

    from gateway.runtime import open_runtime

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    async with AsyncExitStack() as stack:
        await open_runtime(config, stack, dispatcher=True, intake=True)
        log.info("kabarin worker %s running: %s", __version__, how_many(len(config.sinks), "sink"))
        await stopping.wait()
        log.info("kabarin worker stopping")
    return 0
