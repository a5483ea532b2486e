"""End-to-end harness: the real `kabarin serve` process and real HTTP peers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.waiting import eventually

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

PUSH_TOKEN = "e2e-kiriminaja-token"
ADMIN_TOKEN = "e2e-admin-token-local"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "push"
KABARIN = Path(sys.executable).with_name("kabarin")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class KabarinProcess:
    """One `kabarin serve` process on a free port, restartable on the same database."""

    def __init__(self, config_path: Path, workdir: Path) -> None:
        self.config_path = config_path
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / "kabarin.log"
        self.serve_args: list[str] = []
        """More arguments for `kabarin serve` (``--log-level debug``)."""
        self.client = httpx.Client(base_url=self.url, timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.launch()
        self.ready()

    def launch(self) -> None:
        """Start the process without waiting for it to be ready (`ready`): several servers
        then start side by side."""
        self.log = self.log_path.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        serve = ["serve", "--config", str(self.config_path), "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [str(KABARIN), *serve, *self.serve_args],
            cwd=self.workdir,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )

    def ready(self) -> None:
        """Wait until the launched process answers ``/readyz``."""
        assert self.proc is not None
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"kabarin exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=0.5).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"kabarin did not become ready:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.log.close()
        return code

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
            self.log.close()
        self.client.close()

    # -- talking to it -------------------------------------------------------------------
    def push(
        self, body: bytes | dict[str, Any], token: str | None = PUSH_TOKEN, *, wait: bool = True
    ) -> httpx.Response:
        """POST a push as KiriminAja does. A 200 means it is in the push log; with `wait`, this
        also waits until the intake has made its events (so the admin API shows them)."""
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "KiriminAja-Push-Services"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        r = self.client.post("/kiriminaja/push", content=content, headers=headers)
        if wait and r.status_code == 200:
            self.processed(r.json()["push_id"])
        return r

    def processed(self, push_id: str, timeout: float = 15) -> dict[str, Any]:
        """Wait until the intake has taken a push; its log entry (state, accepted, ...)."""
        found: dict[str, Any] = {}

        def done() -> bool:
            r = self.admin("GET", f"/pushes/{push_id}")
            if r.status_code == 200 and r.json()["push"]["state"] != "pending":
                found.update(r.json()["push"])
                return True
            return False

        self.wait_for(done, timeout)
        return found

    def drained(self, timeout: float = 15) -> None:
        """Wait until the intake has taken every push in the log."""

        def none_pending() -> bool:
            r = self.admin("GET", "/pushes", params={"state": "pending", "limit": 1})
            return r.status_code == 200 and not r.json()["items"]

        self.wait_for(none_pending, timeout)

    def ingest(self, body: bytes | dict[str, Any]) -> dict[str, int]:
        """Push, wait for the intake, and say what it stored: ``{accepted, duplicates}``."""
        r = self.push(body, wait=False)
        assert r.status_code == 200, r.text
        entry = self.processed(r.json()["push_id"])
        assert entry["state"] == "processed", entry
        return {"accepted": entry["accepted"], "duplicates": entry["duplicates"]}

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        return self.client.request(method, f"/admin/v1{path}", headers=headers, **kwargs)

    def events(self, **params: Any) -> list[dict[str, Any]]:
        r = self.admin("GET", "/events", params={"limit": 500, **params})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        return items

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 15) -> None:
        """`eventually`, with this server's log in the failure."""
        asyncio.run(eventually(predicate, within=timeout, every=0.05, explain=self._log))

    def _log(self) -> str:
        return f"server log:\n{self.output()}"


def write_config(
    path: Path,
    extra: str = "",
    store: str | None = None,
    dispatcher: bool = True,
    *,
    shutdown_timeout: str = "3s",
    lease: str = "3s",
) -> Path:
    store_url = store or f"sqlite:///{path.parent / 'kabarin.db'}"
    path.write_text(
        f"""
receiver:
  token: {PUSH_TOKEN}
  max_body_bytes: 65536
store:
  url: {store_url}
admin:
  token: {ADMIN_TOKEN}
dispatcher:
  enabled: {"true" if dispatcher else "false"}
  poll_interval: 200ms
  shutdown_timeout: {shutdown_timeout}
  lease: {lease}  # after a kill -9, leased work is claimed again this soon
{extra}
"""
    )
    return path


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator[Callable[..., KabarinProcess]]:
    servers: list[KabarinProcess] = []

    def make(
        extra: str = "", start: bool = True, dispatcher: bool = True, **settings: str
    ) -> KabarinProcess:
        """`settings`: `write_config`'s dispatcher ones (``lease="1s"``)."""
        config = write_config(tmp_path / "config.yaml", extra, dispatcher=dispatcher, **settings)
        server = KabarinProcess(config, tmp_path)
        servers.append(server)
        if start:
            server.start()
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def server(make_server: Callable[..., KabarinProcess]) -> KabarinProcess:
    """A server of the test's own, on an empty store."""
    return make_server()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KabarinProcess]:
    """One server (the `server` configuration) for every test of a module that asks for it:
    such a test keeps to order ids of its own, compares what it finds with what was there
    before it rather than with an empty store, and neither stops nor reconfigures the server."""
    workdir = tmp_path_factory.mktemp("module-server")
    server = KabarinProcess(write_config(workdir / "config.yaml"), workdir)
    server.start()
    yield server
    server.stop()


# -- a scriptable HTTP peer (the shop's ERP, Slack's webhook URL) -------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    """Lower-case names."""
    body: bytes
    at: float
    status: int

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Peer:
    """Records every request; answers from a script of (status, headers) then `default`."""

    port: int = 0
    received: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    default: tuple[int, dict[str, str]] = (200, {})
    delay: float = 0.0
    """Seconds to wait before answering (a slow ERP)."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else self.default

    def requests(self, path: str | None = None, *, ok_only: bool = True) -> list[Received]:
        """What reached `path` (every path if None); by default only requests answered 2xx."""
        with self.lock:
            return [
                r
                for r in self.received
                if (path is None or r.path == path) and (r.ok or not ok_only)
            ]

    def bodies(self, path: str | None = None) -> list[Any]:
        return [r.json() for r in self.requests(path)]


@contextmanager
def running_peer() -> Iterator[Peer]:
    """A `Peer` listening on 127.0.0.1 until the block ends."""
    state = Peer()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            status, headers = state.answer()
            names = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.received.append(Received(self.path, names, body, time.monotonic(), status))
            if state.delay:
                time.sleep(state.delay)
            reply = b"ok" if status < 300 else b'{"error": "scripted failure"}'
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    state.port = httpd.server_address[1]
    # a short poll: `shutdown` waits for the loop to look, 0.5 s by default
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def peer() -> Iterator[Peer]:
    with running_peer() as state:
        yield state


# -- a real browser (Debian's chromium, driven by selenium) -------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One headless chromium per test module. Skipped on a machine without Debian's chromium
    and chromium-driver, except in CI (``CI=true``), where a missing browser is a failure."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        reason = (
            f"browser tests need {CHROMIUM} and {CHROMEDRIVER}"
            " (apt-get install chromium chromium-driver)"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    # An explicit binary and driver: Selenium Manager then has nothing to look up or download.
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=str(CHROMEDRIVER)))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
