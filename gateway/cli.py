"""``kabarin``: serve | worker | check | simulate | routes test | deliveries | replay | pull |
track add | register-callback."""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import signal
import socket
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from gateway import __version__
from gateway.config import Config, load_config
from gateway.delivery.model import DeliveryFilter
from gateway.errors import ConfigError, KabarinError, PushError
from gateway.events import Contact
from gateway.redaction import install_log_redaction, mask_url

if TYPE_CHECKING:
    from gateway.backtest import History
    from gateway.store.roles import AdminReader

__all__ = ["main"]

log = logging.getLogger("kabarin")


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
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
        _print_invalid(args.config, exc)
        return 1
    except KabarinError as exc:
        print(f"kabarin: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kabarin", description="Notification gateway for KiriminAja shipment pushes."
    )
    parser.add_argument("--version", action="version", version=f"kabarin {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str,
        help_: str,
        within: argparse._SubParsersAction[argparse.ArgumentParser] | None = None,
    ) -> argparse.ArgumentParser:
        p = (within or sub).add_parser(name, help=help_, description=help_)
        p.add_argument(
            "--config",
            "-c",
            default=os.environ.get("KABARIN_CONFIG", "config.yaml"),
            help="configuration file (default: $KABARIN_CONFIG or ./config.yaml)",
        )
        p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
        return p

    p = command("serve", "run the gateway: receiver, admin API and dispatcher")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    p.add_argument(
        "--port", type=_port, default=8080, help="0 to 65535; 0: any free port (default: 8080)"
    )
    p.set_defaults(func=_serve)

    p = command(
        "worker",
        "run the intake, the dispatcher, retention and (with pull.enabled) the pull tracker,"
        " without the HTTP server (for deployments that split roles)",
    )
    p.set_defaults(func=_worker)

    p = command("check", "validate the configuration, routes and templates")
    p.set_defaults(func=_check)

    p = command("simulate", "show what a push would do, without sending or storing anything")
    p.add_argument("push", type=Path, help="a push body (JSON file), or - for standard input")
    p.add_argument(
        "--source", default="kiriminaja", help="the push source it comes to (its sources: key)"
    )
    p.set_defaults(func=_simulate)

    p = command("deliveries", "list deliveries (e.g. dead letters), newest first")
    p.add_argument(
        "--state", choices=["pending", "in_flight", "delivered", "dead", "skipped", "superseded"]
    )
    p.add_argument("--sink")
    p.add_argument("--order-id")
    p.add_argument("--since", type=_parse_since, help="ISO time or a duration ago, e.g. 2h")
    p.add_argument("--limit", type=_positive, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.set_defaults(func=_deliveries)

    p = command("replay", "put dead deliveries back to pending with a fresh retry schedule")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--delivery", metavar="ID", help="one delivery (dead, skipped or superseded)"
    )
    which.add_argument("--dead", action="store_true", help="every dead delivery matching filters")
    p.add_argument("--sink")
    p.add_argument("--order-id")
    p.add_argument("--since", type=_parse_since, help="ISO time or a duration ago, e.g. 2h")
    p.set_defaults(func=_replay)

    p = command("reprocess", "run failed pushes through the intake again (after a fix)")
    p.add_argument(
        "--failed",
        action="store_true",
        help="every failed push (the default; --since and --id narrow it)",
    )
    p.add_argument("--since", type=_parse_since, help="ISO time or a duration ago, e.g. 2h")
    p.add_argument("--id", action="append", default=[], help="only this push (repeatable)")
    p.add_argument(
        "--wait",
        type=_parse_wait,
        default="1m",
        help="how long to wait for pushes another process's intake has taken (default: 1m)",
    )
    p.set_defaults(func=_reprocess)

    p = command("pull", "ask KiriminAja's tracking API about orders now and show what changed")
    p.add_argument("order_id", nargs="*", metavar="ORDER_ID")
    p.add_argument("--stale", action="store_true", help="one pass of the tracker over stale orders")
    p.add_argument("--instant", action="store_true", help="orders not seen yet are instant ones")
    p.set_defaults(func=_pull)

    p = sub.add_parser("track", help="orders the pull tracker follows")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command("add", "follow orders no push has named yet", actions)
    p.add_argument("order_id", nargs="+", metavar="ORDER_ID")
    p.add_argument("--instant", action="store_true", help="instant orders (default: express)")
    p.set_defaults(func=_track_add)

    p = command("register-callback", "tell KiriminAja where to push (POST /api/mitra/set_callback)")
    p.add_argument(
        "--url", required=True, type=_http_url, help="the full URL of Kabarin's push endpoint"
    )
    p.set_defaults(func=_register_callback)

    p = sub.add_parser("rejected", help="bodies the push endpoint refused, kept for replay")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command("list", "list rejected bodies, newest first", actions)
    p.add_argument("--limit", type=_positive, default=100)
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p = command("show", "print one rejected body with its reason", actions)
    p.add_argument("id", type=int)
    p = command("replay", "run a rejected body through the push endpoint again", actions)
    p.add_argument("id", type=int)
    for action in actions.choices.values():
        action.set_defaults(func=_rejected)

    p = sub.add_parser("contacts", help="the customers of orders, as the shop registers them")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command("import", "register contacts from a CSV file (they win over pushes)", actions)
    p.add_argument("file", type=Path, help="header row: order_id,name,phone,email,language")
    p.set_defaults(func=_contacts_import)

    p = sub.add_parser("routes", help="try a configuration's routes before using it")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    help_ = "run stored events through a configuration's routes and templates, sending nothing"
    p = actions.add_parser("test", help=help_, description=help_)
    p.add_argument("--config", "-c", required=True, help="the configuration to test")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--since",
        type=_parse_since,
        default="7d",
        help="events received since an ISO time or a duration ago (default: 7d)",
    )
    p.add_argument("--store", metavar="URL", help="the store to read (default: the config's)")
    p.add_argument(
        "--diff", action="store_true", help="compare with the configuration in use (--against)"
    )
    p.add_argument(
        "--against",
        metavar="FILE",
        help="the configuration in use (implies --diff; default: $KABARIN_CONFIG, ./config.yaml)",
    )
    p.add_argument("--samples", type=int, default=3, help="messages shown per route and sink")
    p.add_argument("--json", action="store_true", help="one JSON document")
    p.set_defaults(func=_routes_test)

    p = sub.add_parser("store", help="look after the store")
    store_actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = command("prune", "remove now what the retention windows let go", store_actions)
    p.add_argument(
        "--dry-run", action="store_true", help="count what would go per table, remove nothing"
    )
    p.set_defaults(func=_store_prune)
    p = command(
        "migrate", "copy a store to another (SQLite <-> PostgreSQL); re-runnable", store_actions
    )
    p.add_argument("--from", dest="source", required=True, metavar="URL", help="the store to read")
    p.add_argument("--to", dest="target", required=True, metavar="URL", help="the store to fill")
    p.set_defaults(func=_store_migrate)
    return parser


def _parse_since(value: str) -> datetime:
    from gateway.units import TooLong, parse_duration

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


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {value!r}")
    return port


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {value!r}")
    return number


def _http_url(value: str) -> str:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {value!r}")
    return value


def _parse_wait(value: str) -> float:
    from gateway.units import parse_duration

    try:
        return float(parse_duration(value))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _print_invalid(path: str, exc: ConfigError) -> None:
    print(f"{path}: invalid configuration", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _validated(path: str) -> Config:
    from gateway.check import validate_file

    return validate_file(path)


def _check(args: argparse.Namespace) -> int:
    from gateway.check import sink_checks

    config = _validated(args.config)
    kinds = ", ".join(
        f"{name} ({type(c).__struct_config__.tag})" for name, c in config.sinks.items()
    )
    print(f"{args.config}: OK")
    print(
        f"  receiver  POST {config.receiver.path} (token set, times in {config.receiver.timezone})"
    )
    print(f"  store     {mask_url(config.store.url)}")
    print(f"  admin     {'on' if config.admin.token else 'off (no admin.token)'}")
    print(f"  sinks     {len(config.sinks)}: {kinds or '-'}")
    print(f"  routes    {len(config.routes)}: {', '.join(r.name for r in config.routes) or '-'}")
    for kind, line in sink_checks(config):
        print(f"  {kind:<9} {line}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from gateway.access import published_tokens
    from gateway.app import create_app
    from gateway.receiver import http_protocol

    config = _validated(args.config)
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
    host, port = listener.getsockname()[:2]  # the port chosen when --port 0 asked for any
    address = f"http://[{host}]:{port}" if family == socket.AF_INET6 else f"http://{host}:{port}"
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
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    await store.close()


def _worker(args: argparse.Namespace) -> int:
    config = _validated(args.config)
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
        log.info("kabarin worker %s running: %d sinks", __version__, len(config.sinks))
        await stopping.wait()
        log.info("kabarin worker stopping")
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from gateway.dryrun import simulate
    from gateway.routing import Router
    from gateway.sources.registry import DEFAULT_SOURCE, get_source
    from gateway.templating import Templates
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks

    config = _validated(args.config)
    if args.source != DEFAULT_SOURCE and args.source not in config.sources:
        known = ", ".join([DEFAULT_SOURCE, *config.sources])
        print(f"--source: no push source {args.source!r} is configured ({known})", file=sys.stderr)
        return 2
    try:
        body = sys.stdin.buffer.read() if str(args.push) == "-" else args.push.read_bytes()
    except OSError as exc:
        print(f"{args.push}: cannot read: {exc.strerror or exc}", file=sys.stderr)
        return 1
    try:
        result = simulate(
            body,
            source=get_source(args.source),
            router=Router.from_config(config),
            templates=Templates.for_config(config),
            sinks=build_sinks(config.sinks, SinkDeps()),
            timezone=config.receiver.tz,
        )
    except PushError as exc:
        print(f"not a push (Kabarin would answer 400): {exc}", file=sys.stderr)
        return 1
    print(f"push {result.method}: {len(result.events)} event(s)")
    for item in result.events:
        event = item.event
        print()
        print(
            f"event {event.id}  {event.status.value}  order {event.order_id}"
            f"  awb {event.awb or '-'}  {event.kind}  at {event.occurred_at.isoformat()}"
        )
        if not item.routes:
            print("  matches no route: stored and counted, sent nowhere")
        for delivery in item.deliveries:
            print(
                f"  route {delivery.route} -> sink {delivery.sink} (ordering {delivery.ordering})"
            )
            if delivery.error is not None:
                print(f"    template error: {delivery.error}")
                continue
            for line in (delivery.preview or "").splitlines() or [""]:
                print(f"    | {line}")
    return 0


def _routes_test(args: argparse.Namespace) -> int:
    from gateway.backtest import History, format_report
    from gateway.redaction import Redactor, use_log_secrets
    from gateway.runtime import collect_secrets
    from sinks.base import SinkDeps
    from sinks.registry import build_sinks

    config = _validated(args.config)
    current = None
    against = args.against
    if args.diff or against is not None:
        if against is None:
            against = os.environ.get("KABARIN_CONFIG") or (
                "config.yaml" if Path("config.yaml").exists() else None
            )
        if against is None:
            raise KabarinError(
                "--diff compares with the configuration in use, and there is none: no --against"
                " FILE, $KABARIN_CONFIG is not set and ./config.yaml does not exist"
            )
        try:
            current = _validated(against)
        except ConfigError as exc:
            _print_invalid(against, exc)
            return 1
    url = args.store or config.store.url
    # An SQLite file that is not there would be created empty, and test nothing.
    _existing_store("--store" if args.store else None, url)
    sinks = build_sinks(config.sinks, SinkDeps())
    redactor = Redactor(collect_secrets(config, sinks))
    use_log_secrets(redactor)
    history = History(
        config,
        sinks,
        redactor,
        samples=max(0, args.samples),
        current=current,
    )
    asyncio.run(_read_history(url, args.since, history))
    report = history.report(
        config=args.config, store=mask_url(url), since=args.since, against=against
    )
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(report) + b"\n")
    else:
        print(format_report(report))
    return 2 if report.template_errors else 0


def _existing_store(option: str | None, url: str) -> None:
    """Refuse a store URL (of `option`, when given) that names no store: an unsupported one,
    or an SQLite file that does not exist (opening it would create an empty store)."""
    from gateway.config import StoreConfig
    from gateway.units import FieldError

    where = f"{option}: " if option else ""
    try:
        store = StoreConfig(url=url)
        path = None if store.is_postgres else store.sqlite_path
    except FieldError as exc:
        raise KabarinError(f"{where}{exc}") from None
    if path is not None and not path.is_file():
        raise KabarinError(f"{where}no store at {mask_url(url)}: {path} does not exist")


async def _read_history(url: str, since: datetime, history: History) -> None:
    from gateway.store import open_store

    store = open_store(url)
    await store.open(now=datetime.now(UTC))
    try:
        await history.read(store, since)
    finally:
        await store.close()


def _deliveries(args: argparse.Namespace) -> int:
    return asyncio.run(_list_deliveries(load_config(args.config), args))


async def _list_deliveries(config: Config, args: argparse.Namespace) -> int:
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    try:
        items = await store.list_deliveries(
            DeliveryFilter(
                state=args.state,
                sink=args.sink,
                order_id=args.order_id,
                since=args.since,
                limit=args.limit,
            )
        )
    finally:
        await store.close()
    if args.json:
        for d in items:
            sys.stdout.buffer.write(msgspec.json.encode(d) + b"\n")
        return 0
    if not items:
        if args.sink is not None and args.sink not in config.sinks:
            print(_unknown_sink(config, args.sink), file=sys.stderr)
            return 1
        print("no deliveries match")
        return 0
    print(f"{'ID':<28} {'STATE':<10} {'SINK':<14} {'ORDER':<20} {'TRIES':>5}  LAST ERROR / WAITING")
    for d in items:
        note = (d.last_error or "").replace("\n", " ")[:60]
        if d.waiting and d.state == "pending":
            note = f"waiting: {d.waiting}"
        print(f"{d.id:<28} {d.state:<10} {d.sink:<14} {d.order_id:<20} {d.attempts:>5}  {note}")
    return 0


def _unknown_sink(config: Config, sink: str) -> str:
    """A ``--sink`` that matches nothing because it is not configured (a typo, usually)."""
    known = ", ".join(sorted(config.sinks)) or "none"
    return f"no sink named {sink!r} has deliveries; configured sinks: {known}"


def _replay(args: argparse.Namespace) -> int:
    return asyncio.run(_run_replay(load_config(args.config), args))


async def _run_replay(config: Config, args: argparse.Namespace) -> int:
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    now = datetime.now(UTC)
    try:
        if args.delivery:
            if not await store.replay_one(args.delivery, now=now):
                found = await store.get_delivery(args.delivery)
                if found is None:
                    print(f"delivery {args.delivery} not found", file=sys.stderr)
                else:
                    print(
                        f"delivery {args.delivery} is {found[0].state}: only dead, skipped or"
                        " superseded deliveries are replayed",
                        file=sys.stderr,
                    )
                return 1
            print(f"replayed 1 delivery ({args.delivery})")
            return 0
        count = await store.replay(
            DeliveryFilter(state="dead", sink=args.sink, order_id=args.order_id, since=args.since),
            now=now,
        )
    finally:
        await store.close()
    if count == 0 and args.sink is not None and args.sink not in config.sinks:
        print(_unknown_sink(config, args.sink), file=sys.stderr)
        return 1
    print(f"replayed {count} dead deliver{'y' if count == 1 else 'ies'}")
    return 0


def _contacts_import(args: argparse.Namespace) -> int:
    from gateway.contacts import read_contacts_csv

    config = load_config(args.config)
    try:
        text = args.file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        print(f"{args.file}: cannot read: {reason}", file=sys.stderr)
        return 1
    contacts, problems = read_contacts_csv(text)
    count = asyncio.run(_register_contacts(config, contacts)) if contacts else 0
    print(f"{args.file}: imported {count} contact{'' if count == 1 else 's'}")
    if problems:
        rows = len(problems)
        print(f"{rows} row{'' if rows == 1 else 's'} not imported:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    return 0


async def _register_contacts(config: Config, contacts: list[Contact]) -> int:
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    try:
        return await store.register_contacts(contacts, now=datetime.now(UTC))
    finally:
        await store.close()


def _rejected(args: argparse.Namespace) -> int:
    return asyncio.run(_run_rejected(load_config(args.config), args))


async def _run_rejected(config: Config, args: argparse.Namespace) -> int:
    from contextlib import AsyncExitStack

    from gateway.operations import rejected_item, replay_rejected
    from gateway.runtime import build_intake, open_runtime

    async with AsyncExitStack() as stack:
        rt = await open_runtime(config, stack, dispatcher=False)
        if args.action == "list":
            rows = await rt.store.list_rejected(limit=args.limit)
            if args.json:
                for r in rows:
                    sys.stdout.buffer.write(msgspec.json.encode(rejected_item(r)) + b"\n")
                return 0
            if not rows:
                print("no rejected bodies")
            for r in rows:
                reason = r.reason.replace("\n", " ")[:70]
                print(f"{r.id:>6}  {r.received_at.isoformat(timespec='seconds')}  {reason}")
            return 0
        found = await rt.store.get_rejected(args.id)
        if found is None:
            print(f"no rejected body {args.id}", file=sys.stderr)
            return 1
        if args.action == "show":
            item = rejected_item(found)
            print(f"id            {item.id}")
            print(f"received_at   {item.received_at.isoformat()}")
            print(f"content_type  {item.content_type or '-'}")
            print(f"reason        {item.reason}")
            print(item.body)
            return 0
        result = await replay_rejected(rt, found)
        answer = msgspec.json.encode(result.answer).decode()
        if result.outcome == "accepted":
            await build_intake(rt).drain()  # its events now, not at the server's next look
            print(f"rejected body {args.id} accepted and removed: {answer}")
            return 0
        print(f"rejected body {args.id} {result.outcome}: {answer}", file=sys.stderr)
        return 1


def _pull(args: argparse.Namespace) -> int:
    if not args.order_id and not args.stale:
        raise KabarinError("name orders to pull, or --stale for one pass over stale orders")
    return asyncio.run(_run_pull(_validated(args.config), args))


async def _run_pull(config: Config, args: argparse.Namespace) -> int:
    """Ask, append what is new to the push log, and run it through the intake here and now
    (event ids are deterministic: a server's intake taking it too stores nothing twice)."""
    from contextlib import AsyncExitStack

    from gateway.runtime import build_intake, build_tracker, open_runtime

    async with AsyncExitStack() as stack:
        rt = await open_runtime(config, stack, dispatcher=False)
        tracker = build_tracker(rt)
        results = []
        for order_id in args.order_id:
            known = await rt.store.get_tracking(order_id)
            kind = known.kind if known else "instant" if args.instant else "express"
            results.append(await tracker.pull(order_id, kind))
        if args.stale:
            results.extend((await tracker.run_pass()).pulls)
        await build_intake(rt).drain()
        for r in results:
            if r.outcome == "changed":
                print(f"{r.order_id}: new {', '.join(e.status.value for e in r.new)}")
            elif r.outcome == "unchanged":
                print(f"{r.order_id}: nothing new")
            else:
                print(f"{r.order_id}: {r.outcome.replace('_', ' ')}: {r.reason}")
        if args.stale and not results:
            print("no stale open orders")
        return 1 if any(r.outcome in ("try_later", "skipped") for r in results) else 0


def _track_add(args: argparse.Namespace) -> int:
    return asyncio.run(_run_track_add(_validated(args.config), args))


async def _run_track_add(config: Config, args: argparse.Namespace) -> int:
    from gateway.events import EventKind
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    try:
        kind: EventKind = "instant" if args.instant else "express"
        orders = [(o, kind) for o in dict.fromkeys(args.order_id)]
        added = await store.track_orders(orders, now=datetime.now(UTC))
    finally:
        await store.close()
    print(f"{added} orders added, {len(orders) - added} already followed")
    return 0


def _register_callback(args: argparse.Namespace) -> int:
    return asyncio.run(_run_register_callback(_validated(args.config), args.url))


async def _run_register_callback(config: Config, url: str) -> int:
    from gateway.sources.kiriminaja.tracking import TrackingClient
    from sinks.http import make_http_client

    async with make_http_client() as http:
        client = TrackingClient(config.kiriminaja, api_key=config.kiriminaja_api_key, http=http)
        accepted, answer = await client.set_callback(url)
    print(answer, file=sys.stdout if accepted else sys.stderr)
    return 0 if accepted else 1


def _reprocess(args: argparse.Namespace) -> int:
    return asyncio.run(_run_reprocess(_validated(args.config), args))


async def _run_reprocess(config: Config, args: argparse.Namespace) -> int:
    """Failed pushes back to pending, then through the intake here and now: event ids are
    deterministic, so a server's intake taking some of them at the same time is harmless.

    The verdict is read back from the store, push by push: a push another process's intake
    took before this one could is waited for (up to ``--wait``), never counted unseen."""
    from contextlib import AsyncExitStack

    from gateway.runtime import build_intake, open_runtime

    async with AsyncExitStack() as stack:
        rt = await open_runtime(config, stack, dispatcher=False)
        ids = await _failed_pushes(rt.store, since=args.since, only=args.id)
        if not ids:
            print("no failed pushes match")
            return 0
        for start in range(0, len(ids), _REQUEUE_PAGE):
            await rt.store.requeue_pushes(state="failed", ids=ids[start : start + _REQUEUE_PAGE])
        intake = build_intake(rt)
        await intake.drain()
        states = {push_id: await _push_state(rt.store, push_id) for push_id in ids}
        held = [i for i, (state, _) in states.items() if state == "pending"]
        if held:
            print(
                f"waiting up to {args.wait:g}s for {len(held)} pushes another process's intake"
                " has taken",
                file=sys.stderr,
            )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + args.wait
        while held and loop.time() < deadline:
            await asyncio.sleep(min(_REPROCESS_POLL, max(0.0, deadline - loop.time())))
            await intake.drain()  # takes those whose holder let go of them (it stopped)
            for push_id in held:
                states[push_id] = await _push_state(rt.store, push_id)
            held = [i for i in held if states[i][0] == "pending"]
    failed = {i: error for i, (state, error) in states.items() if state == "failed"}
    done = len(ids) - len(failed) - len(held)
    pending = f", {len(held)} still pending (another process's intake has them)" if held else ""
    print(f"{len(ids)} failed pushes reprocessed: {done} processed, {len(failed)} failed{pending}")
    for push_id, error in failed.items():
        print(f"  {push_id}  {error}", file=sys.stderr)
    for push_id in held:
        print(f"  {push_id}  still pending", file=sys.stderr)
    return 1 if failed or held else 0


_REQUEUE_PAGE = 500
_REPROCESS_POLL = 0.2
"""Seconds between two looks at pushes another process's intake has taken."""


async def _failed_pushes(
    store: AdminReader, *, since: datetime | None, only: Sequence[str]
) -> list[str]:
    """The ids of the failed pushes received since `since` (among `only`, when given)."""
    from gateway.store.roles import PushQuery

    if only:
        found = [await store.get_push(push_id) for push_id in dict.fromkeys(only)]
        return [
            p.id
            for p in found
            if p is not None and p.state == "failed" and (since is None or p.received_at >= since)
        ]
    ids: list[str] = []
    cursor: int | None = None
    while True:
        page = await store.list_pushes(
            PushQuery(state="failed", since=since, limit=_REQUEUE_PAGE, before_seq=cursor)
        )
        ids.extend(p.id for p in page)
        if len(page) < _REQUEUE_PAGE:
            return ids[::-1]  # oldest first, as the intake takes them
        cursor = page[-1].seq


async def _push_state(store: AdminReader, push_id: str) -> tuple[str, str | None]:
    """A push's state and error; one retention removed was processed (only those go)."""
    push = await store.get_push(push_id)
    return ("processed", None) if push is None else (push.state, push.error)


def _store_prune(args: argparse.Namespace) -> int:
    return asyncio.run(_run_store_prune(load_config(args.config), args.dry_run))


async def _run_store_prune(config: Config, dry_run: bool) -> int:
    from gateway.retention import Retention
    from gateway.store import open_store

    store = open_store(config.store.url, cache_mb=config.store.cache_mb)
    await store.open(now=datetime.now(UTC))
    try:
        retention = Retention.from_config(store, config.retention)
        now = retention.clock()
        if dry_run:
            counts = await store.count_prunable(retention.policy.cutoffs(now))
        else:
            counts = await retention.run_once()
    finally:
        await store.close()
    head = "would remove" if dry_run else "removed"
    print(f"{head} (retention as of {now.isoformat(timespec='seconds')}):")
    for table in ("pushes", "events", "deliveries", "attempts", "rejected"):
        print(f"  {table:<11} {getattr(counts, table):>9}")
    return 0


def _store_migrate(args: argparse.Namespace) -> int:
    return asyncio.run(_run_store_migrate(args.source, args.target))


async def _run_store_migrate(source_url: str, target_url: str) -> int:
    from gateway.config import StoreConfig
    from gateway.store import open_store
    from gateway.store.moving import Portable, copy_store
    from gateway.units import FieldError

    if source_url == target_url:
        raise KabarinError("--from and --to name the same store")
    _existing_store("--from", source_url)
    try:
        StoreConfig(url=target_url)
    except FieldError as exc:
        raise KabarinError(f"--to: {exc}") from None
    now = datetime.now(UTC)
    source, target = open_store(source_url), open_store(target_url)
    if not isinstance(source, Portable) or not isinstance(target, Portable):
        raise KabarinError("only SQLite and PostgreSQL stores can be copied")
    await source.open(now=now)
    try:
        await target.open(now=now)  # migrated to the current schema first
        try:
            counts = await copy_store(source, target)
        finally:
            await target.close()
    finally:
        await source.close()
    print(f"copied {mask_url(source_url)} -> {mask_url(target_url)}:")
    for table, (read, copied) in counts.items():
        print(f"  {table:<11} {copied:>9} copied  ({read - copied} already there)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
