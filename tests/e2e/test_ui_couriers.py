"""The courier scorecards page and an order's delivery estimate in a real headless chromium,
against the real server fed KiriminAja's complete push format.

One server and one browser for the module. 21 jne REG orders are processed and shipped (two
hours apart), 20 of them delivered 1..20 hours after shipping (p50 10 h, p90 18 h); three
sicepat BEST orders are shipped, one of them returned. The 21st jne order, on its way, is
expected 10 to 18 hours after it shipped: 20 deliveries are enough history.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest

from tests.e2e.conftest import ADMIN_TOKEN, KabarinProcess, write_config
from tests.waiting import eventually

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
JAKARTA = ZoneInfo("Asia/Jakarta")
_START = datetime.now(JAKARTA).replace(second=0, microsecond=0) - timedelta(days=3)
TRANSITS = list(range(1, 21))
OPEN_ORDER = "JNE-20"


def _at(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")  # KiriminAja's naive Jakarta time


def _complete(method: str, rows: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """A complete-format push: each (order, courier/product, item) with its package."""
    return {
        "method": method,
        "data": [{"order_id": order, **item} for order, _, item in rows],
        "packages": [
            {
                "order_id": order,
                "service": product.split()[0],
                "service_type": product.split()[1],
                "destination": {"name": "Siti", "phone": "08123", "city": "Kota Yogyakarta"},
            }
            for order, product, _ in rows
        ],
    }


def _shipped(i: int) -> datetime:
    return _START + timedelta(hours=2 * i + 1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KabarinProcess]:
    workdir = tmp_path_factory.mktemp("couriers")
    config = write_config(workdir / "config.yaml", dispatcher=False)
    proc = KabarinProcess(config, workdir)
    proc.start()
    try:
        jne = [f"JNE-{i}" for i in range(21)]
        sicepat = ["SCP-0", "SCP-1", "SCP-2"]
        processed = [
            (o, "jne REG", {"awb": f"AWB{i}", "date": _at(_START + timedelta(hours=2 * i))})
            for i, o in enumerate(jne)
        ]
        shipped = [(o, "jne REG", {"shipped_at": _at(_shipped(i))}) for i, o in enumerate(jne)]
        shipped += [(o, "sicepat BEST", {"shipped_at": _at(_START)}) for o in sicepat]
        finished = [
            (o, "jne REG", {"finished_at": _at(_shipped(i) + timedelta(hours=hours))})
            for i, (o, hours) in enumerate(zip(jne, TRANSITS, strict=False))
        ]
        returned = [("SCP-0", "sicepat BEST", {"returned_at": _at(_START + timedelta(days=1))})]
        for method, rows in (
            ("processed_packages", processed),
            ("shipped_packages", shipped),
            ("finished_packages", finished),
            ("return_finished_packages", returned),
        ):
            assert proc.ingest(_complete(method, rows))["accepted"] == len(rows)
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def ui(browser: WebDriver, server: KabarinProcess) -> WebDriver:
    """The browser, signed in."""
    browser.get(f"{server.url}/ui/login?lang=en")
    browser.find_element("id", "token").send_keys(ADMIN_TOKEN)
    browser.find_element("id", "sign-in").click()
    _wait(browser, lambda: browser.find_elements("id", "sign-out"))
    return browser


def _wait(browser: WebDriver, condition: Callable[[], Any], timeout: float = 10) -> Any:
    from selenium.common.exceptions import NoSuchElementException

    return asyncio.run(eventually(condition, within=timeout, ignoring=(NoSuchElementException,)))


def _row(browser: WebDriver, courier: str) -> Any:
    return browser.find_element("css selector", f'#scorecards tr[data-courier="{courier}"]')


def test_the_couriers_page_shows_the_scorecards_and_charts_on_a_phone(
    ui: WebDriver, server: KabarinProcess
) -> None:
    ui.set_window_size(390, 844)  # a phone
    try:
        ui.get(f"{server.url}/ui/couriers?lang=en")
        _wait(ui, lambda: ui.find_elements("id", "scorecards"))
        jne = _row(ui, "jne")
        assert jne.find_element("css selector", ".shipments").text == "21"
        assert jne.find_element("css selector", ".transit").text == "10 / 18"
        assert jne.find_element("css selector", ".pickup").text == "1 / 1"
        sicepat = _row(ui, "sicepat")
        assert sicepat.find_element("css selector", ".return-rate").text == "33.3%"
        for chart in ("transit-chart", "rates-chart"):
            svg = ui.find_element("css selector", f"#{chart} svg")
            assert svg.size["width"] <= 390  # drawn within the phone's width
            assert svg.size["height"] > 20
        scripts = ui.find_elements("css selector", "script[src]")
        assert all((s.get_attribute("src") or "").startswith(server.url) for s in scripts)
        assert "Transit time, hours (p50 to p90)" in ui.page_source
        ui.set_window_size(390, 1500)  # the whole page, charts too
        png = ui.get_screenshot_as_png()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        if folder := os.environ.get("KABARIN_SCREENSHOTS"):  # `make screenshots`
            (ROOT / folder).mkdir(exist_ok=True)
            (ROOT / folder / "dashboard-couriers.png").write_bytes(png)

        sicepat.find_element("css selector", "a").click()
        _wait(ui, lambda: ui.find_elements("id", "courier-orders"))
        orders = ui.find_elements("css selector", "#courier-orders tbody tr")
        assert sorted(r.find_element("css selector", "a").text for r in orders) == [
            "SCP-0",
            "SCP-1",
            "SCP-2",
        ]
    finally:
        ui.set_window_size(1280, 900)


def test_the_scorecards_are_in_indonesian_too(ui: WebDriver, server: KabarinProcess) -> None:
    ui.get(f"{server.url}/ui/couriers?lang=id")
    _wait(ui, lambda: "Rapor kurir" in ui.find_element("css selector", "h1").text)
    assert "Kurir" in ui.find_element("id", "nav").text
    ui.get(f"{server.url}/ui/couriers?lang=en")


def test_an_open_order_shows_when_it_is_expected(ui: WebDriver, server: KabarinProcess) -> None:
    ui.get(f"{server.url}/ui/orders/view?id={OPEN_ORDER}&lang=en")
    _wait(ui, lambda: ui.find_elements("id", "order-estimate"))
    text = ui.find_element("id", "order-estimate").text
    shipped = _shipped(20)
    earliest = (shipped + timedelta(hours=10)).strftime("%Y-%m-%d")
    latest = (shipped + timedelta(hours=18)).strftime("%Y-%m-%d")
    assert earliest in text and latest in text
    assert "20 deliveries" in text and "Kota Yogyakarta" in text
    assert "jne REG" in ui.find_element("id", "order-facts").text
    body = server.admin("GET", f"/orders/{OPEN_ORDER}").json()
    assert body["estimate"]["basis"] == "history"
    assert body["estimate"]["samples"] == 20
