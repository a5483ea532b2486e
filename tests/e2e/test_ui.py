"""The dashboard at /ui in a real headless chromium, against the real server.

One server and one browser for the module: the example configuration, plus an ERP webhook whose
peer first answers 400 and then 410 Gone, so that there is a dead delivery to replay and a
switched-off sink to enable. The run takes the overview and order screenshots; with
``KABARIN_SCREENSHOTS=docs`` it writes them where the README shows them (``make screenshots``).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.e2e.conftest import ADMIN_TOKEN, PUSH_TOKEN, KabarinProcess, Peer, running_peer
from tests.waiting import eventually

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + base64.b64encode(b"kabarin-ui-signing-key-32-bytes!").decode()
ORDER = "OID-20261129-0042"
SINKS = ("console", "erp")
AWB = "JNE0088123456"


def _push(method: str, **item: Any) -> dict[str, Any]:
    return {"method": method, "data": [{"order_id": ORDER, **item}]}


# KiriminAja's naive Jakarta times, an hour apart and in the past whenever this module runs, so
# that the timeline's order is known however long the test session takes.
_NOW = datetime.now(ZoneInfo("Asia/Jakarta"))
PROCESSED_AT = (_NOW - timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:00")
SHIPPED_AT = (_NOW - timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:00")
PROCESSED = _push(
    "processed_packages", awb=AWB, sorting_code="JOG-JOG1000-JKT2010", date=PROCESSED_AT
)
SHIPPED = _push("shipped_packages", shipped_at=SHIPPED_AT)


@pytest.fixture(scope="module")
def erp() -> Iterator[Peer]:
    with running_peer() as peer:
        peer.script = [(400, {})]
        peer.default = (410, {})
        yield peer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, erp: Peer) -> Iterator[KabarinProcess]:
    workdir = tmp_path_factory.mktemp("ui")
    text = (ROOT / "config.example.yaml").read_text()
    sink = (
        "sinks:\n  erp:\n    type: webhook\n"
        f"    url: {erp.url}/hooks/kiriminaja\n    secret: {SECRET}\n"
    )
    assert "sinks:\n" in text
    text = text.replace("sinks:\n", sink, 1)
    text += "\n  - name: every-status-to-erp\n    match: {}\n    sinks: [erp]\n"
    config = workdir / "config.yaml"
    config.write_text(text)
    proc = KabarinProcess(config, workdir)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("KIRIMINAJA_TOKEN", PUSH_TOKEN)
        env.setenv("KABARIN_ADMIN_TOKEN", ADMIN_TOKEN)
        proc.start()
    try:
        proc.ingest(PROCESSED)
        proc.ingest(SHIPPED)
        # The ERP refused the first (dead) and said 410 to the second: the sink is off.
        proc.wait_for(lambda: _dead(proc) == 1 and _disabled(proc, "erp") is not None)
        # ... and everything else has settled: the pages count what the API counts
        proc.wait_for(lambda: _unsettled(proc) == [("erp", "pending")])
        erp.default = (200, {})
        yield proc
    finally:
        proc.stop()


def _dead(server: KabarinProcess) -> int:
    r = server.admin("GET", "/deliveries", params={"state": "dead", "sink": "erp"})
    return len(r.json()["items"])


def _unsettled(server: KabarinProcess) -> list[tuple[str, str]]:
    found = []
    for state in ("pending", "in_flight"):
        items = server.admin("GET", "/deliveries", params={"state": state}).json()["items"]
        found += [(d["sink"], state) for d in items]
    return found


def _disabled(server: KabarinProcess, sink: str) -> str | None:
    items = server.admin("GET", "/sinks").json()["items"]
    reason: str | None = next(s["disabled"] for s in items if s["name"] == sink)
    return reason


@pytest.fixture(scope="module")
def ui(browser: WebDriver, server: KabarinProcess) -> WebDriver:
    """The browser, signed in."""
    browser.get(f"{server.url}/ui/login?lang=en")
    browser.find_element("id", "token").send_keys(ADMIN_TOKEN)
    browser.find_element("id", "sign-in").click()
    _wait(browser, lambda: browser.find_elements("id", "sign-out"))
    return browser


def _wait(browser: WebDriver, condition: Callable[[], Any], timeout: float = 10) -> Any:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    # a page still loading lacks the element yet; one read while the next page replaces it is stale
    missing = (NoSuchElementException, StaleElementReferenceException)
    return asyncio.run(eventually(condition, within=timeout, ignoring=missing))


def _open(browser: WebDriver, server: KabarinProcess, path: str) -> None:
    browser.get(f"{server.url}{path}")


def _text(browser: WebDriver, element_id: str) -> str:
    text: str = browser.find_element("id", element_id).text
    return text


def _flash(browser: WebDriver) -> str:
    found = _wait(browser, lambda: browser.find_elements("css selector", ".flash"))
    text: str = found[0].text
    return text


def _session_client(browser: WebDriver, server: KabarinProcess) -> httpx.Client:
    """An HTTP client holding the browser's session cookie (for what a browser would not do)."""
    cookie = browser.get_cookie("kabarin_session")
    assert cookie is not None
    return httpx.Client(base_url=server.url, cookies={"kabarin_session": cookie["value"]})


def _screenshot(browser: WebDriver, name: str, width: int, height: int) -> None:
    """Taken on every run (so a page that cannot render fails here); kept in the repository's
    docs/ only when asked, so that a test run leaves the work tree as it found it."""
    size = browser.get_window_size()
    browser.set_window_size(width, height)
    try:
        png = browser.get_screenshot_as_png()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        if folder := os.environ.get("KABARIN_SCREENSHOTS"):
            target = ROOT / folder
            target.mkdir(exist_ok=True)
            (target / name).write_bytes(png)
    finally:
        browser.set_window_size(size["width"], size["height"])


# -- sign-in -----------------------------------------------------------------------------------


def test_every_page_and_action_needs_sign_in(server: KabarinProcess) -> None:
    pages = ["/ui/", "/ui/orders", "/ui/deliveries", "/ui/pushes", "/ui/config", "/ui/try"]
    for page in pages:
        r = server.client.get(page)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login?next="), page
    actions = ["/ui/sinks/erp/enable", "/ui/deliveries/replay", "/ui/pushes/reprocess", "/ui/try"]
    for action in actions:
        r = server.client.post(action, data={"csrf": "x"})
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), action
    # A session cookie the server never issued is no session.
    with httpx.Client(base_url=server.url, cookies={"kabarin_session": ADMIN_TOKEN}) as forged:
        assert forged.get("/ui/").status_code == 303


def test_sign_in_with_the_admin_token_lands_on_the_page_asked_for(
    browser: WebDriver, server: KabarinProcess
) -> None:
    browser.delete_all_cookies()
    _open(browser, server, "/ui/deliveries?state=dead")
    _wait(browser, lambda: "/ui/login" in browser.current_url)
    browser.find_element("id", "token").send_keys("not-the-token")
    browser.find_element("id", "sign-in").click()
    _wait(browser, lambda: "Wrong admin token." in browser.page_source)
    assert browser.get_cookie("kabarin_session") is None

    browser.find_element("id", "token").send_keys(ADMIN_TOKEN)
    browser.find_element("id", "sign-in").click()
    _wait(browser, lambda: browser.current_url.endswith("/ui/deliveries?state=dead"))
    cookie = browser.get_cookie("kabarin_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in cookie["value"]


# -- overview ----------------------------------------------------------------------------------


def test_overview_shows_activity_states_backlog_and_sinks_and_enables_a_sink(
    ui: WebDriver, server: KabarinProcess, erp: Peer
) -> None:
    _open(ui, server, "/ui/")
    assert ui.find_element("css selector", "dd[data-state=dead]").text == "1"
    for state in ("pending", "delivered", "superseded", "skipped"):
        listed = server.admin("GET", "/deliveries", params={"state": state}).json()["items"]
        shown = ui.find_element("css selector", f"dd[data-state={state}]").text
        assert shown == str(len(listed)), state
    assert _text(ui, "backlog") == "0"
    bars = ui.find_elements("css selector", "svg.chart rect.pushes title")
    assert len(bars) == 24
    assert any((b.get_attribute("textContent") or "").endswith("pushes: 2") for b in bars)
    row = ui.find_element("css selector", "tr[data-sink=erp]")
    assert "410" in row.text
    _screenshot(ui, "dashboard-overview.png", 1280, 1000)

    row.find_element("css selector", "button.enable").click()
    assert "erp" in _flash(ui)
    assert _disabled(server, "erp") is None
    assert "410" not in ui.find_element("css selector", "tr[data-sink=erp]").text
    # Switched back on, the delivery that waited for it goes out.
    server.wait_for(lambda: len(erp.requests()) == 1)


# -- orders ------------------------------------------------------------------------------------


def test_an_order_is_found_by_its_awb_and_shows_its_timeline(
    ui: WebDriver, server: KabarinProcess
) -> None:
    _open(ui, server, "/ui/orders")
    ui.find_element("id", "q").send_keys(AWB)
    ui.find_element("id", "search").click()
    _wait(ui, lambda: ui.find_elements("id", "timeline"))
    assert _text(ui, "order-id") == ORDER
    timeline = ui.find_element("id", "timeline")
    entries = timeline.find_elements("css selector", "ol > li")
    assert [e.find_element("css selector", ".status").text for e in entries] == [
        "processed",
        "shipped",
    ]
    # KiriminAja's naive times are Jakarta's: shown as such.
    assert f"{SHIPPED_AT} WIB" in entries[1].text
    summaries = timeline.find_elements("css selector", "details.delivery summary")
    assert sorted(s.text.split(" ")[2] for s in summaries) == ["console", "console", "erp", "erp"]
    dead = next(d for d in timeline.find_elements("css selector", "details") if "dead" in d.text)
    dead.find_element("css selector", "summary").click()
    assert "400" in dead.find_element("css selector", "table").text
    _screenshot(ui, "dashboard-order.png", 420, 1100)

    _open(ui, server, "/ui/orders?q=no-such-order")
    assert "no-such-order" in _text(ui, "no-match")


# -- CSRF --------------------------------------------------------------------------------------


def test_a_form_without_its_csrf_token_changes_nothing(
    ui: WebDriver, server: KabarinProcess
) -> None:
    (dead,) = server.admin("GET", "/deliveries", params={"state": "dead"}).json()["items"]
    _open(ui, server, f"/ui/deliveries/{dead['id']}")
    # A wrong token in the browser's own form: refused, and the delivery stays dead.
    forged = "document.querySelector('form[action$=\"/replay\"] input[name=csrf]').value = 'x';"
    ui.execute_script(forged)
    ui.find_element("id", "replay-one").click()
    # The delivery's own page has a `message` too (the message it sent): wait for the answer's.
    _wait(ui, lambda: "Nothing was changed" in _text(ui, "message"))

    with _session_client(ui, server) as client:
        for data in ({}, {"csrf": ""}, {"csrf": "forged"}):
            for action in (f"/ui/deliveries/{dead['id']}/replay", "/ui/deliveries/replay"):
                r = client.post(action, data=data)
                assert r.status_code == 403, (action, data)
        assert _dead(server) == 1
        # The same session with its real token is accepted: the refusals were the token's.
        _open(ui, server, "/ui/deliveries")
        token = ui.find_element("css selector", "input[name=csrf]").get_attribute("value")
        r = client.post("/ui/deliveries/replay", data={"csrf": token, "route": "nope"})
        assert r.status_code == 303
    assert _dead(server) == 1


# -- deliveries --------------------------------------------------------------------------------


def test_a_dead_delivery_shows_its_attempts_and_message_and_is_replayed(
    ui: WebDriver, server: KabarinProcess
) -> None:
    _open(ui, server, "/ui/deliveries?state=dead&sink=erp")
    rows = ui.find_elements("css selector", "#deliveries tbody tr")
    assert len(rows) == 1
    rows[0].find_element("css selector", "td a").click()
    _wait(ui, lambda: ui.find_elements("id", "delivery-id"))
    delivery_id = _text(ui, "delivery-id")
    assert "400" in ui.find_element("css selector", "table").text
    envelope = json.loads(_text(ui, "message"))
    assert envelope["data"]["order_id"] == ORDER

    ui.find_element("id", "replay-one").click()
    assert _flash(ui) == "Delivery replayed."
    # Back to pending, then through the dispatcher: the ERP's sink keeps `ordering: all`, so
    # this status goes out although a later one reached the ERP first (it sorts by occurred_at).
    server.wait_for(
        lambda: (
            server.admin("GET", f"/deliveries/{delivery_id}").json()["delivery"]["state"]
            == "delivered"
        )
    )
    _open(ui, server, f"/ui/deliveries/{delivery_id}")
    assert ui.find_element("css selector", "h1 .state").text == "delivered"


def test_replaying_every_dead_delivery_of_a_filter_says_how_many_first(
    ui: WebDriver, server: KabarinProcess, erp: Peer
) -> None:
    erp.script = [(400, {}), (400, {})]
    other = {**PROCESSED, "data": [{**PROCESSED["data"][0], "order_id": "OID-2", "awb": "J2"}]}
    server.ingest(other)
    server.ingest({**SHIPPED, "data": [{**SHIPPED["data"][0], "order_id": "OID-2"}]})
    server.wait_for(lambda: _dead(server) == 2)
    _open(ui, server, "/ui/deliveries?state=dead&route=every-status-to-erp")
    ui.find_element("id", "replay-dead").click()
    _wait(ui, lambda: ui.find_elements("id", "confirm"))
    assert _text(ui, "confirm") == "Replay 2 dead deliveries?"
    ui.find_element("id", "replay-confirm").click()
    assert _flash(ui) == "2 deliveries replayed."
    assert _dead(server) == 0

    def settled() -> bool:
        items = server.admin("GET", "/deliveries", params={"order_id": "OID-2"}).json()["items"]
        states = {sink: sorted(d["state"] for d in items if d["sink"] == sink) for sink in SINKS}
        # the console keeps only the latest status: its copy of the first event is superseded
        # when the second was stored before the first was claimed
        return states["erp"] == ["delivered", "delivered"] and states["console"] in (
            ["delivered", "delivered"],
            ["delivered", "superseded"],
        )

    server.wait_for(settled)

    _open(ui, server, "/ui/deliveries/replay?state=dead")
    assert _text(ui, "confirm") == "No dead delivery matches the filter."


# -- pushes ------------------------------------------------------------------------------------


def test_a_failed_push_is_reprocessed_and_a_rejected_body_replayed(
    ui: WebDriver, server: KabarinProcess
) -> None:
    r = server.push({"method": "canceled_packages", "data": [{"order_id": "OID-FAIL-1"}]})
    push_id = r.json()["push_id"]
    # As if the code that normalised it had raised: the push is kept as failed.
    with sqlite3.connect(server.workdir / "data" / "kabarin.pushes.db") as db:  # the log's file
        db.execute(
            "UPDATE pushes SET state = 'failed', error = 'KeyError: x' WHERE id = ?", [push_id]
        )
    _open(ui, server, "/ui/pushes?state=failed")
    ui.find_element("link text", push_id).click()
    _wait(ui, lambda: ui.find_elements("id", "push-error"))
    assert _text(ui, "push-error") == "KeyError: x"
    ui.find_element("id", "reprocess").click()
    assert _flash(ui) == "1 push put back to the intake."
    assert server.processed(push_id)["state"] == "processed"

    r = server.push(b'{"method": "shipped_packages", "data": [{"shipped_at": "x"}]}')
    assert r.status_code == 400
    _open(ui, server, "/ui/pushes")
    rows = ui.find_elements("css selector", "#rejected tbody tr a")
    rows[0].click()
    _wait(ui, lambda: ui.find_elements("id", "reason"))
    assert "order_id" in _text(ui, "reason")
    ui.find_element("id", "replay-rejected").click()
    assert _flash(ui).startswith("Still not a push: ")


# -- configuration and try a push --------------------------------------------------------------


def test_the_configuration_page_shows_the_file_masked_and_checked(
    ui: WebDriver, server: KabarinProcess
) -> None:
    _open(ui, server, "/ui/config")
    assert _text(ui, "config-path") == str(server.config_path)
    assert _text(ui, "check") == "OK"
    text = _text(ui, "config-text")
    assert "every-status-to-erp" in text
    assert SECRET not in ui.page_source
    assert "secret: ***" in text


def test_the_reload_button_applies_the_file_and_says_so(
    ui: WebDriver, server: KabarinProcess
) -> None:
    _open(ui, server, "/ui/config")
    ui.find_element("css selector", "#reload button").click()
    _wait(ui, lambda: ui.find_elements("id", "last-reload"))
    assert "Reloaded" in _text(ui, "last-reload")
    metrics = server.client.get("/metrics").text
    assert "kabarin_config_last_reload_successful 1.0" in metrics


def test_try_a_push_shows_events_routes_and_messages_and_stores_nothing(
    ui: WebDriver, server: KabarinProcess
) -> None:
    pushes = len(server.admin("GET", "/pushes").json()["items"])
    body = json.dumps(_push("finished_packages", finished_at="2026-11-29 10:00:00"))
    _open(ui, server, "/ui/try")
    ui.find_element("id", "body").send_keys(body)
    ui.find_element("id", "try").click()
    _wait(ui, lambda: ui.find_elements("id", "simulated"))
    shown = _text(ui, "simulated")
    assert "delivered" in shown
    assert "Route everything-to-console → Sink console" in shown
    assert "Route every-status-to-erp → Sink erp" in shown
    assert '"type": "shipment.delivered"' in shown or "shipment.delivered" in shown

    ui.find_element("id", "body").clear()
    ui.find_element("id", "body").send_keys('{"method": "nope"}')
    ui.find_element("id", "try").click()
    _wait(ui, lambda: ui.find_elements("id", "not-a-push"))
    assert len(server.admin("GET", "/pushes").json()["items"]) == pushes
    assert len(server.events(order_id=ORDER)) == 2


# -- language and sign-out ---------------------------------------------------------------------


def test_the_language_switch_is_remembered(ui: WebDriver, server: KabarinProcess) -> None:
    _open(ui, server, "/ui/deliveries")
    ui.find_element("id", "lang-id").click()
    _wait(ui, lambda: "Ringkasan" in ui.find_element("id", "nav").text)
    _open(ui, server, "/ui/orders")
    assert "Cari dengan ID pesanan atau AWB" in ui.page_source
    assert ui.find_element("tag name", "html").get_attribute("lang") == "id"
    ui.find_element("id", "lang-en").click()
    _wait(ui, lambda: "Overview" in ui.find_element("id", "nav").text)
    _open(ui, server, "/ui/")
    assert "Deliveries by state" in ui.page_source


def test_sign_out_ends_the_session(ui: WebDriver, server: KabarinProcess) -> None:
    _open(ui, server, "/ui/")
    cookie = ui.get_cookie("kabarin_session")
    assert cookie is not None
    ui.find_element("id", "sign-out").click()
    _wait(ui, lambda: "/ui/login" in ui.current_url)
    _open(ui, server, "/ui/pushes")
    _wait(ui, lambda: "/ui/login" in ui.current_url)
    # The old cookie is worthless now, even replayed by hand.
    with httpx.Client(base_url=server.url, cookies={"kabarin_session": cookie["value"]}) as old:
        assert old.get("/ui/").status_code == 303
