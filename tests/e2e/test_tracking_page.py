"""The customer's tracking page end to end: the real server (on SQLite, then on PostgreSQL), its
signed link as a customer message carries it, and the page in a headless chromium 360 px wide.

One server per backend for the module. A route sends every status to a console sink whose
template is ``tracking_url`` alone, so the link a test opens is the one a message carried.
With ``KABARIN_SCREENSHOTS=docs/images`` the run keeps the page's screenshots
(``tracking-page-*.png``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.tracking_page import LinkSigner
from tests.conftest import create_pg_schema, drop_pg_schema, pg_url_with_schema, require_pg
from tests.e2e.conftest import KabarinProcess, write_config
from tests.waiting import eventually

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tracking-page-e2e-secret-0123456789"
ORDER = "OID-20261207-0042"
AWB = "JNE0099887766"
PHONE = "+6281234565678"
_NOW = datetime.now(ZoneInfo("Asia/Jakarta"))
PROCESSED_AT = (_NOW - timedelta(hours=26)).strftime("%Y-%m-%d %H:%M:00")
SHIPPED_AT = (_NOW - timedelta(hours=3)).strftime("%Y-%m-%d %H:%M:00")
# The default WIB clock of the shipped step, as the page writes it (Indonesian day and month).
_SHIPPED = datetime.strptime(SHIPPED_AT, "%Y-%m-%d %H:%M:%S")
SHIPPED_LOCAL = _SHIPPED.strftime("%H:%M WIB")
# The shop's history of jne REG: 10 deliveries in a day and 10 in three (the estimate's p50 and
# p90): the order shipped today arrives between tomorrow and the day after the next.
HISTORY = [f"OID-HISTORY-{i:02}" for i in range(20)]
EARLIEST, LATEST = (_SHIPPED + timedelta(days=1)).day, (_SHIPPED + timedelta(days=3)).day


def _history() -> list[dict[str, Any]]:
    long_ago = _SHIPPED - timedelta(days=30)
    shipped: dict[str, Any] = {
        "method": "shipped_packages",
        "data": [
            {"order_id": o, "shipped_at": f"{long_ago:%Y-%m-%d %H:%M:%S}", "service": "jne"}
            | {"service_name": "REG"}
            for o in HISTORY
        ],
    }
    finished: dict[str, Any] = {
        "method": "finished_packages",
        "data": [
            {
                "order_id": o,
                "finished_at": f"{long_ago + timedelta(days=1 if i < 10 else 3):%Y-%m-%d %H:%M:%S}",
            }
            for i, o in enumerate(HISTORY)
        ],
    }
    return [shipped, finished]


def _extra(url: str) -> str:
    return f"""
tracking_page:
  enabled: true
  secret: {SECRET}
  public_url: {url}
  link_ttl: 60d
  brand: {{name: Toko Sari, color: "#0a7f5a", whatsapp: "+6281299990000"}}
sinks:
  customer:
    type: console
    template: "LINK {{{{ tracking_url }}}} END"
routes:
  - name: customer
    match: {{}}
    sinks: [customer]
"""


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KabarinProcess]:
    workdir = tmp_path_factory.mktemp(f"tracking-{request.param}")
    schema = None
    store = None
    if request.param == "postgres":
        require_pg()
        schema = create_pg_schema()
        store = pg_url_with_schema(schema)
    config = workdir / "config.yaml"
    proc = KabarinProcess(config, workdir)
    write_config(config, _extra(proc.url), store=store)
    proc.start()
    try:
        for push in _history():
            proc.ingest(push)
        item = {"order_id": ORDER, "awb": AWB, "service": "jne", "service_name": "REG"}
        item["date"] = PROCESSED_AT
        proc.ingest({"method": "processed_packages", "data": [item]})
        shipped = {"order_id": ORDER, "shipped_at": SHIPPED_AT}
        proc.ingest({"method": "shipped_packages", "data": [shipped]})
        contact = {"name": "Sari Dewi Lestari", "phone": PHONE, "email": "sari@example.id"}
        assert proc.admin("PUT", f"/contacts/{ORDER}", json=contact).status_code == 200
        yield proc
    finally:
        proc.stop()
        if schema is not None:
            drop_pg_schema(schema)


def _links(server: KabarinProcess) -> list[str]:
    return re.findall(r"LINK (\S+) END", server.output())


def _ours(server: KabarinProcess) -> list[str]:
    """The links of the messages about `ORDER` (one per status, each with its own expiry)."""
    signer, now = _signer(server), datetime.now(UTC)
    return [
        u for u in _links(server) if signer.verify(u.rsplit("/", 1)[1], now=now).order_id == ORDER
    ]


def _link(server: KabarinProcess) -> str:
    """The link of the newest message about `ORDER`."""
    server.wait_for(lambda: len(_ours(server)) >= 2)
    return _ours(server)[-1]


def _signer(server: KabarinProcess) -> LinkSigner:
    return LinkSigner(SECRET, server.url, 60 * 86400)


# -- HTTP --------------------------------------------------------------------------------------


def test_the_message_link_opens_the_page_with_a_strict_policy_and_an_etag(
    server: KabarinProcess,
) -> None:
    link = _link(server)
    assert link.startswith(f"{server.url}/t/") and len(link.rsplit("/", 1)[1]) < 64
    page = httpx.get(link)
    assert page.status_code == 200, page.text
    html = page.text
    assert ORDER in html and AWB in html and "Toko Sari" in html
    assert "Dikirim" in html and "Diproses" in html and "JNE0099887766" in html
    # First name only: no surname, no phone, no e-mail.
    assert "Sari" in html and "Dewi" not in html and "Lestari" not in html
    assert "5678" not in html and "sari@example.id" not in html
    assert "https://wa.me/6281299990000" in html
    assert len(page.content) < 60_000
    assert not re.search(r"""(src|href)=["']?https?://(?!wa\.me)""", html), "nothing external"
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "'unsafe-inline'" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    etag = page.headers["etag"]
    again = httpx.get(link, headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    head = httpx.head(link)  # a link checker, a chat app's preview
    assert head.status_code == 200 and head.content == b"" and head.headers["etag"] == etag
    assert head.headers["content-length"] == str(len(page.content))
    english = httpx.get(link, params={"lang": "en"})
    assert "Shipped" in english.text and "Dikirim" not in english.text
    assert english.headers["etag"] != etag


def test_the_page_never_writes_to_the_store(server: KabarinProcess) -> None:
    link = _link(server)
    before = server.admin("GET", "/events", params={"order_id": ORDER}).json()
    contact = server.admin("GET", f"/contacts/{ORDER}").json()
    for _ in range(5):
        assert httpx.get(link).status_code == 200
    assert server.admin("GET", "/events", params={"order_id": ORDER}).json() == before
    assert server.admin("GET", f"/contacts/{ORDER}").json() == contact


def test_a_tampered_link_is_404_like_an_unknown_order_and_an_expired_one_410(
    server: KabarinProcess,
) -> None:
    link = _link(server)
    token = link.rsplit("/", 1)[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    unknown = _signer(server).sign("default", "OID-NOT-THERE", datetime.now(UTC) + timedelta(1))
    bad_key = LinkSigner("x" * 32, server.url, 60).sign(
        "default", ORDER, datetime.now(UTC) + timedelta(1)
    )
    answers = [httpx.get(f"{server.url}/t/{t}") for t in (forged, unknown, bad_key, "nonsense")]
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert len({a.text for a in answers}) == 1, "no hint whether the order exists"
    assert ORDER not in answers[0].text
    expired = _signer(server).sign("default", ORDER, datetime.now(UTC) - timedelta(seconds=1))
    gone = httpx.get(f"{server.url}/t/{expired}")
    assert gone.status_code == 410
    assert "kedaluwarsa" in gone.text and ORDER not in gone.text and 'href="/t"' in gone.text


def test_lookup_redirects_on_a_match_and_answers_the_same_otherwise(
    server: KabarinProcess,
) -> None:
    with httpx.Client(base_url=server.url) as client:
        form = client.get("/t")
        assert form.status_code == 200 and 'name="phone_last4"' in form.text
        found = client.post("/t", data={"awb": AWB.lower(), "phone_last4": PHONE[-4:]})
        assert found.status_code == 303
        page = client.get(found.headers["location"])
        assert page.status_code == 200 and ORDER in page.text
        answers = [
            client.post("/t", data=data)
            for data in (
                {"awb": AWB, "phone_last4": "0000"},
                {"awb": "NO-SUCH-AWB", "phone_last4": PHONE[-4:]},
                {"awb": AWB, "phone_last4": "12"},
            )
        ]
    assert {a.status_code for a in answers} == {200}
    assert all("Tidak ada paket yang cocok." in a.text for a in answers)
    # the same answer whichever part was wrong (the AWB typed is all that is echoed)
    assert len({a.text.replace(AWB, "").replace("NO-SUCH-AWB", "") for a in answers}) == 1


def test_ten_failed_lookups_from_one_client_are_429_with_retry_after(
    server: KabarinProcess,
) -> None:
    # Its own client address (127.0.0.2: also loopback) so the other tests' slips don't count;
    # misses of a made-up AWB, so the parcel's own AWB is not refused by its count (that is
    # tests/test_tracking_http.py's).
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=server.url, transport=transport) as client:
        for _ in range(10):
            wrong = client.post("/t", data={"awb": "NO-SUCH-AWB", "phone_last4": "0000"})
            assert wrong.status_code == 200
        refused = client.post("/t", data={"awb": AWB, "phone_last4": PHONE[-4:]})
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 600
        # Only the lookup is limited: the form and a link's page still open.
        assert client.get("/t").status_code == 200
        assert client.get(_link(server).removeprefix(server.url)).status_code == 200
    # another client is not affected
    right = httpx.post(f"{server.url}/t", data={"awb": AWB, "phone_last4": PHONE[-4:]})
    assert right.status_code == 303


def test_with_the_page_off_every_t_answer_is_404(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    proc = KabarinProcess(config, tmp_path)
    write_config(config)
    proc.start()
    try:
        token = LinkSigner(SECRET, proc.url, 60).sign("default", ORDER, datetime.now(UTC))
        off = proc.client.get(f"/t/{token}")
        assert off.status_code == 404 and 'href="/t"' not in off.text
        assert proc.client.get("/t").status_code == 404
        assert proc.client.post("/t", data={"awb": AWB, "phone_last4": "1234"}).status_code == 404
    finally:
        proc.stop()


# -- in a browser, 360 px wide -----------------------------------------------------------------


@pytest.fixture(scope="module")
def phone(browser: WebDriver) -> WebDriver:
    browser.set_window_size(360, 740)
    return browser


def _screenshot(browser: WebDriver, name: str, server: KabarinProcess) -> None:
    """Every run takes it (a page that cannot render fails here); only the SQLite run keeps it
    in docs/images, and only when asked (``KABARIN_SCREENSHOTS``)."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(360, max(640, min(int(height) + 140, 1600)))
    try:
        png = browser.get_screenshot_as_png()
        assert png.startswith(b"\x89PNG") and len(png) > 5_000
        folder = os.environ.get("KABARIN_SCREENSHOTS")
        if folder and "sqlite" in str(server.config_path):
            (ROOT / folder).mkdir(exist_ok=True)
            (ROOT / folder / name).write_bytes(png)
    finally:
        browser.set_window_size(360, 740)


def _shown(browser: WebDriver, element_id: str, text: str) -> None:
    """Wait until the page (still loading after a click) shows `text` in `element_id`."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    asyncio.run(
        eventually(
            lambda: browser.find_element("id", element_id).text == text,
            within=10,
            ignoring=(NoSuchElementException, StaleElementReferenceException),
        )
    )


def _fits(browser: WebDriver) -> None:
    width = browser.execute_script("return document.documentElement.scrollWidth")
    inner = browser.execute_script("return window.innerWidth")
    assert width <= inner, f"sideways scrolling: {width} > {inner}"


def test_the_page_in_both_languages_at_360_px(phone: WebDriver, server: KabarinProcess) -> None:
    link = _link(server)
    phone.get(link)
    assert phone.find_element("id", "shop").text == "Toko Sari"
    assert phone.find_element("id", "first-name").text == "Sari"
    assert phone.find_element("id", "status").text == "Dikirim"
    assert phone.find_element("id", "awb").text == AWB
    assert phone.find_element("id", "courier").text == "JNE REG"
    steps = phone.find_elements("css selector", "#timeline li")
    assert [s.find_element("css selector", "b").text for s in steps] == ["Dikirim", "Diproses"]
    assert SHIPPED_LOCAL in steps[0].text
    estimate = phone.find_element("id", "estimate").text
    assert estimate.startswith("Perkiraan tiba: ")
    assert f" {EARLIEST:02} " in estimate and f" {LATEST:02} " in estimate
    assert " \u2013 " in estimate  # a range: earliest - latest
    _fits(phone)
    _screenshot(phone, "tracking-page-id.png", server)
    phone.find_element("css selector", 'a[href="?lang=en"]').click()
    _shown(phone, "status", "Shipped")
    assert phone.find_element("id", "chat").get_attribute("href") == "https://wa.me/6281299990000"
    _fits(phone)
    _screenshot(phone, "tracking-page-en.png", server)


def test_the_copy_button_is_shown_with_javascript_and_the_awb_is_text_without(
    phone: WebDriver, server: KabarinProcess
) -> None:
    phone.get(_link(server))
    # 127.0.0.1 is a secure context: the clipboard is there, so is the button.
    assert phone.find_element("id", "copy").is_displayed()
    # Without the script (as with JavaScript off) the AWB is plain text and no button shows.
    html = httpx.get(_link(server)).text
    without = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    assert "<button" in without and " hidden>" in without and f">{AWB}</span>" in without


def test_expired_and_tampered_pages_and_the_lookup_at_360_px(
    phone: WebDriver, server: KabarinProcess
) -> None:
    expired = _signer(server).sign("default", ORDER, datetime.now(UTC) - timedelta(days=1))
    phone.get(f"{server.url}/t/{expired}")
    assert phone.find_element("id", "title").text == "Tautan ini sudah kedaluwarsa"
    _fits(phone)
    _screenshot(phone, "tracking-page-expired.png", server)
    phone.get(f"{server.url}/t/{expired[:-3]}xyz?lang=en")
    assert phone.find_element("id", "title").text == "Page not found"
    _fits(phone)
    phone.find_element("id", "find-link").click()
    _shown(phone, "find", "Find")
    phone.find_element("id", "awb").send_keys("NOPE-1")
    phone.find_element("id", "phone_last4").send_keys("1234")
    phone.find_element("id", "find").click()
    _shown(phone, "notice", "No parcel matches.")
    _fits(phone)
    _screenshot(phone, "tracking-page-lookup.png", server)
    awb = phone.find_element("id", "awb")
    awb.clear()
    awb.send_keys(AWB)
    phone.find_element("id", "phone_last4").send_keys(PHONE[-4:])
    phone.find_element("id", "find").click()
    _shown(phone, "status", "Shipped")
    assert phone.current_url.startswith(f"{server.url}/t/")
