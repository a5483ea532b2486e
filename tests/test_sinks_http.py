"""`sinks.http`: the status table, Retry-After, and the shared client against a real server."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from aiohttp import web

from gateway.redaction import Redactor
from sinks.base import Delivered, Permanent, Retry
from sinks.http import classify, make_http_client, parse_retry_after, post

NO_SECRETS = Redactor([])


@pytest.mark.parametrize(
    ("status", "kind", "disable"),
    [
        (200, Delivered, False),
        (202, Delivered, False),
        (204, Delivered, False),
        (299, Delivered, False),
        (301, Permanent, False),
        (308, Permanent, False),
        (400, Permanent, False),
        (401, Permanent, False),
        (403, Permanent, False),
        (404, Permanent, False),
        (413, Permanent, False),
        (422, Permanent, False),
        (410, Permanent, True),
        (408, Retry, False),
        (409, Retry, False),
        (425, Retry, False),
        (429, Retry, False),
        (500, Retry, False),
        (502, Retry, False),
        (503, Retry, False),
        (504, Retry, False),
        (599, Retry, False),
        (600, Retry, False),
    ],
)
def test_classify_table(status: int, kind: type, disable: bool) -> None:
    result = classify(status, {})
    assert isinstance(result, kind)
    assert result.status_code == status
    assert getattr(result, "disable_sink", False) is disable


def test_reasons_name_the_status_and_a_short_one_line_excerpt() -> None:
    body = "<html>\n  <h1>Bad   Gateway</h1>\n" + "x" * 1000
    result = classify(502, {}, body.encode())
    assert isinstance(result, Retry)
    assert result.reason.startswith("HTTP 502 Bad Gateway: <html> <h1>Bad Gateway</h1> xxx")
    assert len(result.reason) <= len("HTTP 502 Bad Gateway: ") + 200
    assert result.reason.endswith("…")
    assert classify(500, {}) == Retry(reason="HTTP 500 Internal Server Error", status_code=500)
    moved = classify(302, {})
    assert isinstance(moved, Permanent) and "redirects are not followed" in moved.reason


def test_control_characters_in_an_excerpt_are_replaced() -> None:
    result = classify(500, {}, b"bad\x00 answer \x1b[31mred\x1b[0m\xc2\x9b")
    assert result == Retry(
        reason="HTTP 500 Internal Server Error: bad\ufffd answer \ufffd[31mred\ufffd[0m\ufffd",
        status_code=500,
    )


def test_a_secret_at_the_cut_is_masked_not_half_shown() -> None:
    secret = "tok-" + "s" * 40
    body = "y" * 190 + " " + secret
    result = classify(400, {}, body, redactor=Redactor([secret]))
    assert isinstance(result, Permanent)
    assert "ssssss" not in result.reason and "***" in result.reason


def test_without_a_redactor_credential_shapes_are_still_masked() -> None:
    result = classify(401, {}, b"bad Authorization: Bearer abcdefghijkl for https://u:pw@h/")
    assert "abcdefghijkl" not in result.reason and ":pw@" not in result.reason  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("0", 0.0),
        ("120", 120.0),
        (" 5 ", 5.0),
        ("-5", None),
        ("soon", None),
        ("1.5", None),
        ("\u00b2", None),  # "²": str.isdigit() says yes, float() refuses it
        ("\u0663", None),  # an Arabic-Indic three
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date_against_a_clock() -> None:
    now = datetime(2024, 5, 5, 9, 0, tzinfo=UTC)
    later = format_datetime(now + timedelta(minutes=2), usegmt=True)
    assert parse_retry_after(later, now=now.timestamp()) == 120.0


def test_classify_reads_retry_after_case_insensitively() -> None:
    result = classify(429, {"retry-after": "3"})
    assert isinstance(result, Retry) and result.after == 3.0


# -- the shared client against a real server on 127.0.0.1 ---------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    seen: list[dict[str, Any]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        seen.append({"headers": dict(request.headers), "body": await request.read(), "peer": peer})
        mode = request.match_info["mode"]
        if mode == "ok":
            return web.Response(text="ok")
        if mode == "busy":
            return web.Response(
                status=503, text="down for maintenance", headers={"Retry-After": "9"}
            )
        if mode == "slow":
            await asyncio.sleep(1)
            return web.Response(text="late")
        if mode == "big":
            return web.Response(status=400, body=b"e" * 1_000_000)
        if mode == "redirect":
            return web.Response(status=302, headers={"Location": "https://elsewhere.example/"})
        raise web.HTTPNotFound()

    app = web.Application()
    app.router.add_post("/{mode}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", seen
    finally:
        await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_real_requests_through_each_transport(
    server: tuple[str, list[dict[str, Any]]], transport: Any
) -> None:
    base, seen = server
    async with make_http_client(transport=transport) as client:

        async def send(path: str, **kw: Any) -> Any:
            return await post(
                client, base + path, content=b'{"a":1}', headers={}, redactor=NO_SECRETS, **kw
            )

        assert await send("/ok") == Delivered(status_code=200)
        assert seen[-1]["headers"]["User-Agent"].startswith("Kabarin/")
        assert seen[-1]["body"] == b'{"a":1}'

        busy = await send("/busy")
        assert isinstance(busy, Retry) and busy.after == 9.0 and "maintenance" in busy.reason

        big = await send("/big")
        assert isinstance(big, Permanent) and big.status_code == 400

        moved = await send("/redirect")
        assert isinstance(moved, Permanent) and moved.status_code == 302

        slow = await send("/slow", request_timeout=0.2)
        assert isinstance(slow, Retry) and slow.reason.startswith("timed out")

        refused = await post(
            client,
            f"http://127.0.0.1:{_closed_port()}/ok",
            content=b"{}",
            headers={},
            redactor=NO_SECRETS,
        )
        assert isinstance(refused, Retry)
        assert refused.reason.startswith("network error (ConnectError)"), refused.reason

        # the client still works after every kind of failure
        assert await send("/ok") == Delivered(status_code=200)


async def test_connections_are_kept_alive(server: tuple[str, list[dict[str, Any]]]) -> None:
    base, seen = server
    async with make_http_client() as client:
        for _ in range(5):
            result = await post(
                client, base + "/ok", content=b"{}", headers={}, redactor=NO_SECRETS
            )
            assert isinstance(result, Delivered)
    assert len({call["peer"] for call in seen}) == 1


async def test_a_non_http_url_is_permanent() -> None:
    async with make_http_client() as client:
        result = await post(
            client, "ftp://127.0.0.1/x", content=b"", headers={}, redactor=NO_SECRETS
        )
    assert isinstance(result, Permanent)


def test_an_unknown_transport_name_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transport"):
        make_http_client(transport="curl")  # type: ignore[arg-type]


async def test_httpx_request_logs_keep_only_the_origin(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="httpx")
    url = "https://hooks.slack.com/services/T0/B0/secretpath?token=abc"
    async with make_http_client(transport=httpx.MockTransport(lambda r: httpx.Response(200))) as c:
        await c.post(url, content=b"{}")
    assert 'HTTP Request: POST https://hooks.slack.com/… "HTTP/1.1 200 OK"' in caplog.text
    assert "secretpath" not in caplog.text and "abc" not in caplog.text


# -- misbehaving peers: a raw TCP server that answers exactly the bytes a test gives -----------

Step = bytes | float | str
"""Bytes to write, seconds to wait, or ``"reset"`` (close with a TCP reset)."""


@contextlib.asynccontextmanager
async def raw_peer(*steps: Step) -> AsyncIterator[str]:
    """A peer on 127.0.0.1 that reads each request whole, then plays `steps`; yields its URL.

    After the last step it keeps the connection open until the client hangs up.
    """
    handlers: set[asyncio.Task[Any]] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
            await reader.readexactly(int(length.group(1)) if length else 0)
            for step in steps:
                if isinstance(step, float):
                    await asyncio.sleep(step)
                elif step == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                else:
                    assert isinstance(step, bytes)
                    writer.write(step)
                    await writer.drain()
            await reader.read()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


HEADER_DRIP: tuple[Step, ...] = (
    b"HTTP/1.1 200 OK\r\n",
    *[item for _ in range(20) for item in (0.1, b"X-Drip: 1\r\n")],
    b"Content-Length: 0\r\n\r\n",
)
"""A 200 whose headers come one line every 0.1 s: each read is quick, the answer never is."""


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_the_timeout_bounds_the_whole_answer_not_each_read(transport: Any) -> None:
    async with raw_peer(*HEADER_DRIP) as url, make_http_client(transport=transport) as client:
        result = await post(
            client, url, content=b"{}", headers={}, redactor=NO_SECRETS, request_timeout=0.5
        )
    assert result == Retry(reason="timed out: no answer within 0.5 s (the sink's timeout)")


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_only_a_failure_to_connect_is_unsent(transport: Any) -> None:
    async with make_http_client(transport=transport) as client:
        refused = await post(
            client,
            f"http://127.0.0.1:{_closed_port()}/",
            content=b"{}",
            headers={},
            redactor=NO_SECRETS,
        )
        assert isinstance(refused, Retry) and refused.unsent, refused
        async with raw_peer("reset") as url:  # got the whole request, then hung up
            dropped = await post(client, url, content=b"{}", headers={}, redactor=NO_SECRETS)
        assert isinstance(dropped, Retry) and not dropped.unsent, dropped
        assert "(ConnectError)" not in dropped.reason
        async with raw_peer(0.8) as url:  # no answer in time
            late = await post(
                client, url, content=b"{}", headers={}, redactor=NO_SECRETS, request_timeout=0.3
            )
        assert isinstance(late, Retry) and not late.unsent and late.reason.startswith("timed out")


@pytest.mark.parametrize(
    ("answer", "says"),
    [
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 10_000 + b"\r\n\r\n", "8190"),
        (b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n", "status"),
        (b"garbage\r\n\r\n", ""),
    ],
    ids=["oversized-header", "bad-status", "garbage"],
)
async def test_a_malformed_answer_is_named_without_aiohttps_internal_code(
    answer: bytes, says: str
) -> None:
    async with raw_peer(answer) as url, make_http_client() as client:
        result = await post(client, url, content=b"{}", headers={}, redactor=NO_SECRETS)
    assert isinstance(result, Retry) and result.status_code is None and not result.unsent
    assert result.reason.startswith(
        "network error (RemoteProtocolError): the peer's answer was malformed: "
    ), result.reason
    assert "400" not in result.reason and "message=" not in result.reason
    assert says.lower() in result.reason.lower()


@pytest.mark.parametrize("transport", ["aiohttp", "httpx"])
async def test_a_unicode_digit_retry_after_keeps_the_429(transport: Any) -> None:
    answer = b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: \xc2\xb2\r\nContent-Length: 0\r\n\r\n"
    async with raw_peer(answer) as url, make_http_client(transport=transport) as client:
        result = await post(client, url, content=b"{}", headers={}, redactor=NO_SECRETS)
    assert result == Retry(reason="HTTP 429 Too Many Requests", status_code=429)
