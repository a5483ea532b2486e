"""What the tracking page shows of an order (`gateway.tracking_page.view`) and how it is
written: proof of delivery as links (nothing loaded from elsewhere), staff-only statuses left
out, the first name only, the style and script allowed by hash."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import pytest

from gateway.config.tracking_page import BrandConfig
from gateway.events import Contact, Event, Status
from gateway.insights.estimates import Estimate
from gateway.tracking_page.assets import SCRIPT, policy, style
from gateway.tracking_page.labels import Language, words
from gateway.tracking_page.page import _env
from gateway.tracking_page.view import Brand, build_view, first_name

T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)  # 10:00 WIB
WIB = ZoneInfo("Asia/Jakarta")
PHOTO = "https://pod.example/photo.jpeg"
SIGNATURE = "https://pod.example/signature.jpeg"


def _event(status: Status, hours: int, **details: object) -> Event:
    return Event(
        id=f"evt-{status.value}",
        source="pull",
        method="m",
        kind="express",
        status=status,
        order_id="OID-1",
        awb="JNE123" if status is not Status.PROCESSED else None,
        occurred_at=T0 + timedelta(hours=hours),
        received_at=T0 + timedelta(hours=hours),
        reason="Alamat tidak lengkap" if status is Status.PROBLEM else None,
        details=dict(details),
    )


EVENTS = [
    _event(Status.PROCESSED, 0, service="jne", service_name="REG"),
    _event(Status.SHIPPED, 5),
    _event(Status.STUCK, 30),
    _event(Status.PROBLEM, 31),
    _event(Status.DELIVERED, 50, proof_of_delivery={"photo": PHOTO, "signature": SIGNATURE}),
]
CONTACT = Contact(order_id="OID-1", name="  Budi Santoso Wibowo ", phone="+6281234567890")


def test_the_view_is_newest_first_in_local_time_without_staff_statuses() -> None:
    view = build_view(list(reversed(EVENTS)), contact=CONTACT, language="id", timezone=WIB)
    assert [s.label for s in view.steps] == ["Terkirim", "Bermasalah", "Dikirim", "Diproses"]
    assert view.steps[-1].at == "Sen, 07 Des 2026 10:00 WIB" and view.zone == "WIB"
    assert view.steps[1].note == "Ada kendala pengiriman; hubungi toko."
    assert view.steps[0].note is None
    assert view.current is not None and view.current.status is Status.DELIVERED
    assert (view.awb, view.courier, view.first_name) == ("JNE123", "JNE REG", "Budi")
    assert view.proof == {"photo": PHOTO, "signature": SIGNATURE}
    assert view.estimate is None
    english = build_view(EVENTS, contact=None, language="en", timezone=WIB)
    assert english.steps[-1].at == "Mon, 07 Dec 2026 10:00 WIB" and english.first_name is None


def test_a_late_timeless_processed_push_never_outranks_a_delivered_the_courier_dated() -> None:
    # A processed_packages push carries no time: it is dated by its arrival, a day after the
    # courier's time of the delivery.
    late = msgspec.structs.replace(
        EVENTS[0], occurred_at=T0 + timedelta(hours=80), received_at=T0 + timedelta(hours=80)
    )
    shipped = msgspec.structs.replace(EVENTS[1], received_at=T0 + timedelta(hours=6))
    delivered = msgspec.structs.replace(EVENTS[4], received_at=T0 + timedelta(hours=51))
    view = build_view([late, shipped, delivered], contact=None, language="id", timezone=WIB)
    assert view.current is not None and view.current.status is Status.DELIVERED
    assert [s.label for s in view.steps] == ["Terkirim", "Dikirim", "Diproses"]
    # The processed step keeps its own (arrival) time.
    assert view.steps[-1].at == "Kam, 10 Des 2026 18:00 WIB"


def test_a_problem_shows_a_fixed_line_never_the_couriers_words() -> None:
    reason = "Penerima Ahmad Suryadi tidak di tempat, Jl. Melati No. 5 RT 02, hub 081234567890"
    problem = msgspec.structs.replace(EVENTS[3], reason=reason)
    view = build_view([EVENTS[0], problem], contact=None, language="id", timezone=WIB)
    assert view.steps[0].note == "Ada kendala pengiriman; hubungi toko."
    english = build_view([EVENTS[0], problem], contact=None, language="en", timezone=WIB)
    assert english.steps[0].note == "There is a delivery problem; contact the shop."
    for page in (_page(problem), _page(problem, language="en")):
        assert "Suryadi" not in page and "Ahmad" not in page and "Melati" not in page
        assert "081234567890" not in page and "RT 02" not in page


def test_an_estimate_is_written_as_local_dates() -> None:
    estimate = Estimate(
        earliest=datetime(2026, 12, 8, 18, 0, tzinfo=UTC),  # the 9th in Jakarta
        latest=datetime(2026, 12, 10, 1, 0, tzinfo=UTC),
        basis="kiriminaja",
    )
    view = build_view(EVENTS[:2], contact=None, language="id", timezone=WIB, estimate=estimate)
    assert view.estimate == ("Rab, 09 Des 2026", "Kam, 10 Des 2026")


def test_an_estimate_already_past_is_left_out() -> None:
    # Shipped 1 Dec, still in transit on 7 Dec: "03 Dec - 04 Dec" would promise a past date.
    estimate = Estimate(
        earliest=datetime(2026, 12, 3, 1, 0, tzinfo=UTC),
        latest=datetime(2026, 12, 4, 1, 0, tzinfo=UTC),
        basis="kiriminaja",
    )
    past = build_view(
        EVENTS[:2], contact=None, language="id", timezone=WIB, estimate=estimate, now=T0
    )
    assert past.estimate is None
    before = build_view(
        EVENTS[:2],
        contact=None,
        language="id",
        timezone=WIB,
        estimate=estimate,
        now=estimate.latest - timedelta(seconds=1),
    )
    assert before.estimate == ("Kam, 03 Des 2026", "Jum, 04 Des 2026")


def test_first_name_only() -> None:
    assert first_name(CONTACT) == "Budi"
    assert first_name(Contact(order_id="x", name="   ")) is None
    assert first_name(None) is None


@pytest.mark.parametrize(
    "name",
    ["+6281234567890", "081234567890", "budi@example.com", "Budi 0812", "Budi@toko", "Toko 2"],
)
def test_a_name_that_is_a_phone_number_or_an_email_shows_no_name(name: str) -> None:
    assert first_name(Contact(order_id="x", name=name)) is None


@pytest.mark.parametrize(
    ("name", "first"),
    [
        ("Ibu Ratna Sari", "Ratna"),
        ("bu Ratna", "Ratna"),
        ("Bapak Joko Widodo", "Joko"),
        ("Pak. Joko", "Joko"),
        ("Bpk. Joko", "Joko"),
        ("Sdr Andi", "Andi"),
        ("Sdri. Ani", "Ani"),
        ("Mas Bayu", "Bayu"),
        ("Mbak Sinta Dewi", "Sinta"),
        ("Kak Rina", "Rina"),
        ("Mr. John Smith", "John"),
        ("Mrs Jane Doe", "Jane"),
        ("Ms. Jane", "Jane"),
        ("Miss Jane", "Jane"),
        ("MBAK", None),
        ("Masayu Putri", "Masayu"),
    ],
)
def test_a_title_before_the_name_is_skipped(name: str, first: str | None) -> None:
    assert first_name(Contact(order_id="x", name=name)) == first


def test_proof_of_delivery_only_from_a_delivered_event_and_only_web_links() -> None:
    odd = [
        _event(Status.SHIPPED, 1, proof_of_delivery={"photo": PHOTO}),
        _event(Status.DELIVERED, 2, proof_of_delivery={"photo": "javascript:alert(1)"}),
    ]
    assert build_view(odd, contact=None, language="id", timezone=WIB).proof == {}


def _page(brand_or_event: Brand | Event, language: Language = "id") -> str:
    """The order page of `EVENTS` in `brand`, or of `EVENTS[0]` and an event in a plain brand."""
    if isinstance(brand_or_event, Brand):
        brand, events = brand_or_event, EVENTS
    else:
        brand, events = Brand.of(BrandConfig(), "Toko"), [EVENTS[0], brand_or_event]
    view = build_view(events, contact=CONTACT, language=language, timezone=WIB)
    css, _ = style(brand.color)
    return _env.get_template("order.html.j2").render(
        lang=language, w=words(language), brand=brand, style=css, script=SCRIPT, view=view, base=""
    )


def test_the_page_links_the_proof_and_loads_nothing_from_elsewhere() -> None:
    brand = Brand.of(BrandConfig(color="#123456", whatsapp="+62 812-9999-0000"), "Toko")
    html = _page(brand)
    assert f'href="{PHOTO}"' in html and f'href="{SIGNATURE}"' in html
    assert "<img" not in html and "<link" not in html and " src=" not in html
    assert 'href="https://wa.me/6281299990000"' in html
    assert "Santoso" not in html and "567890" not in html
    assert len(html.encode()) < 60_000


def test_the_policy_allows_exactly_the_inline_style_and_script() -> None:
    brand = Brand.of(BrandConfig(logo_url="https://cdn.toko.example/a/logo.png"), "Toko")
    html = _page(brand)
    _, css_hash = style(brand.color)
    csp = policy(css_hash, brand.logo_url)
    (inline_style,) = re.findall(r"<style>(.*?)</style>", html, re.S)
    (inline_script,) = re.findall(r"<script>(.*?)</script>", html, re.S)

    def sha(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"

    assert f"style-src {sha(inline_style)};" in csp and f"script-src {sha(inline_script)};" in csp
    assert "img-src https://cdn.toko.example;" in csp and "default-src 'none'" in csp
    assert '<img class="logo" src="https://cdn.toko.example/a/logo.png"' in html
    assert "img-src 'none'" in policy(css_hash, None)
