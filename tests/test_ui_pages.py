"""What the dashboard's pages show, in-process: stored events, deliveries and contacts read back
through the real app (no intake or dispatcher running: what a page shows is what the test
stored, or what the store's own `finish` made of it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import msgspec
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import load_config, parse_config
from gateway.delivery.model import Attempt, NewDelivery
from gateway.events import Contact, Event, Status
from gateway.runtime import Runtime
from gateway.ui.labels import translate

from .conftest import ingest

ORDER = "INV-2001"
PHONE = "+6281399990000"
EMAIL = "budi.santoso@example.com"


@pytest.fixture
def dashboard(tmp_path: Path) -> Iterator[TestClient[Litestar]]:
    config = parse_config(
        f"""
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{tmp_path}/k.db"}}
admin: {{token: adm1n-token-for-tests}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
sinks:
  wa: {{type: whatsapp, provider: fonnte, token: fonnte-token-Zx81q}}
  sms:
    type: sms
    provider: twilio
    account_sid: AC0123456789abcdef
    auth_token: twilio-auth-token-9911
    from: KABARIN
  mail:
    type: email
    host: smtp.toko.example
    from: "Toko A <kabarin@toko.example>"
    to: customer
routes:
  - name: customers
    sinks: [wa, mail]
    fallback: {{wa: sms}}
"""
    )
    with TestClient(create_app(config), raise_server_exceptions=False) as client:
        signed = {"token": "adm1n-token-for-tests"}
        r = client.post("/ui/login", data=signed, follow_redirects=False)
        assert r.status_code == 303, r.text
        yield client


def runtime(client: TestClient[Litestar]) -> Runtime:
    rt: Runtime = client.app.state.runtime
    return rt


def event(status: Status, minute: int, *, order_id: str = ORDER, awb: str | None = None) -> Event:
    moment = datetime(2024, 5, 1, 8, minute, tzinfo=UTC)
    return Event(
        id=f"evt-{order_id}-{status.value}",
        source="push",
        method=f"{status.value}_packages",
        kind="express",
        status=status,
        order_id=order_id,
        awb=awb,
        occurred_at=moment,
        received_at=moment,
        raw={"order_id": order_id},
    )


def store(
    client: TestClient[Litestar], *events: Event, sinks: tuple[str, ...] = ("wa",)
) -> list[str]:
    """Events with a delivery on each of `sinks`, and the order's contact; the delivery ids."""
    deliveries = [
        NewDelivery(id=f"dlv-{e.id}-{s}", event_id=e.id, route="customers", sink=s, ordering="all")
        for e in events
        for s in sinks
    ]
    contacts = [Contact(order_id=ORDER, name="Budi Santoso", phone=PHONE, email=EMAIL)]
    client.blocking_portal.call(
        partial(
            ingest, runtime(client).store, events=events, deliveries=deliveries, contacts=contacts
        )
    )
    return [d.id for d in deliveries]


# -- personal data -----------------------------------------------------------------------------


def test_a_twilio_delivery_page_shows_the_number_masked(dashboard: TestClient[Litestar]) -> None:
    (delivery_id,) = store(dashboard, event(Status.SHIPPED, 1), sinks=("sms",))
    page = dashboard.get(f"/ui/deliveries/{delivery_id}")
    assert page.status_code == 200, page.text
    assert "To=%2B62813*****000" in page.text
    assert "9999" not in page.text and "6281399990000" not in page.text


def test_a_mail_delivery_page_masks_the_address_but_not_the_message_id(
    dashboard: TestClient[Litestar],
) -> None:
    (delivery_id,) = store(dashboard, event(Status.SHIPPED, 1), sinks=("mail",))
    page = dashboard.get(f"/ui/deliveries/{delivery_id}")
    assert page.status_code == 200, page.text
    assert "To: b***@example.com" in page.text
    assert "udi.santoso" not in page.text
    assert f"Message-ID: &lt;{delivery_id}.kabarin@toko.example&gt;" in page.text


# -- orders ------------------------------------------------------------------------------------


def test_the_orders_list_shows_the_latest_awb_an_earlier_push_gave(
    dashboard: TestClient[Litestar],
) -> None:
    # An order whose AWB came before the 200 newest events the page looks through ...
    store(dashboard, event(Status.PROCESSED, 1, order_id="INV-OLD", awb="JNE0088123456"))
    busy = [
        msgspec.structs.replace(
            event(Status.IN_TRANSIT, 2, order_id=f"INV-BUSY-{n % 10}"), id=f"evt-busy-{n}"
        )
        for n in range(196)
    ]
    store(dashboard, *busy, sinks=())
    store(dashboard, event(Status.SHIPPED, 3, order_id="INV-OLD"))
    # ... and one whose newest event (a pull answer) has none, the push before it had.
    store(dashboard, event(Status.PROCESSED, 4, awb="JP0000000001"))
    store(dashboard, event(Status.SHIPPED, 5, awb="JP0000000002"))
    store(dashboard, event(Status.IN_TRANSIT, 6))
    page = dashboard.get("/ui/orders")
    assert page.status_code == 200, page.text
    rows = {row.split("</a>")[0].rsplit(">", 1)[1]: row for row in page.text.split("<tr>")[2:]}
    assert "<td>JP0000000002</td>" in rows[ORDER]
    assert "<td>JNE0088123456</td>" in rows["INV-OLD"]
    assert "<td>-</td>" in rows["INV-BUSY-0"]  # none known: still a dash


# -- language ----------------------------------------------------------------------------------


def test_statuses_states_and_outcomes_are_translated(dashboard: TestClient[Litestar]) -> None:
    (wa,) = store(dashboard, event(Status.DELIVERED, 1, awb="JP1"))
    finish_dead(dashboard, wa, fallback=False)
    page = dashboard.get("/ui/orders/view", params={"id": ORDER, "lang": "id"}).text
    assert '<strong class="status">terkirim</strong>' in page
    assert '<span class="state state-dead">gagal</span>' in page
    assert "1 percobaan" in page and "<td>ditolak tetap</td>" in page
    listed = dashboard.get("/ui/orders").text  # the language is remembered
    assert "<td>terkirim</td>" in listed
    assert '<option value="dead">gagal</option>' in dashboard.get("/ui/deliveries").text
    overview = dashboard.get("/ui/").text
    assert '<span class="state state-superseded">digantikan</span>' in overview

    page = dashboard.get("/ui/orders/view", params={"id": ORDER, "lang": "en"}).text
    assert '<strong class="status">delivered</strong>' in page
    assert '<span class="state state-dead">dead</span>' in page
    assert "· 1 attempt</summary>" in page and "1 attempts" not in page


def test_the_sinks_column_says_enabled_or_switched_off(dashboard: TestClient[Litestar]) -> None:
    rt = runtime(dashboard)
    dashboard.blocking_portal.call(
        partial(rt.store.disable_sink, "sms", reason="HTTP 410 Gone", now=datetime.now(UTC))
    )
    page = dashboard.get("/ui/", params={"lang": "en"}).text
    rows = {row.split('"', 1)[0]: row for row in page.split('<tr data-sink="')[1:]}
    assert "Switched off" in rows["sms"] and "HTTP 410 Gone" in rows["sms"]
    assert "Enabled" in rows["wa"] and "Switched off" not in rows["wa"]
    assert ">on<" not in page and "<th>State</th>" in page
    page = dashboard.get("/ui/", params={"lang": "id"}).text
    assert "Dimatikan" in page and "Aktif" in page


# -- fallback ----------------------------------------------------------------------------------


def finish_dead(client: TestClient[Litestar], delivery_id: str, *, fallback: bool) -> None:
    """Claim the delivery and end it dead after one refused attempt, issuing its fallback on
    the SMS sink as the dispatcher does."""
    rt = runtime(client)
    now = datetime.now(UTC)
    claimed = client.blocking_portal.call(
        partial(rt.store.claim, worker="w", now=now, limit=10, lease_seconds=60)
    )
    (job,) = [c for c in claimed.claims if c.delivery.id == delivery_id]
    spare = rt.router.fallback(job.delivery) if fallback else None
    attempt = Attempt(
        delivery_id=delivery_id,
        started_at=now,
        duration_ms=12.0,
        outcome="permanent",
        status_code=200,
        error="target invalid",
    )
    done = client.blocking_portal.call(
        partial(
            rt.store.finish,
            delivery_id,
            worker="w",
            attempt=attempt,
            state="dead",
            now=now,
            error="target invalid",
            fallback=spare,
        )
    )
    assert done


def test_a_dead_whatsapp_delivery_and_its_sms_fallback_link_to_each_other(
    dashboard: TestClient[Litestar],
) -> None:
    (wa,) = store(dashboard, event(Status.SHIPPED, 1))
    finish_dead(dashboard, wa, fallback=True)
    page = dashboard.get(f"/ui/deliveries/{wa}", params={"lang": "en"}).text
    href = page.split('id="fallback" href="', 1)[1].split('"', 1)[0]
    assert "sms</a>" in page.split('id="fallback"', 1)[1].split("</dd>", 1)[0]
    sms = dashboard.get(href).text
    assert "customers → sms" in sms
    back = sms.split('id="fallback-of" href="', 1)[1].split('"', 1)[0]
    assert back == f"/ui/deliveries/{wa}"
    assert 'id="fallback"' not in sms  # a fallback has no fallback of its own


# -- staff mail --------------------------------------------------------------------------------

STAFF_FILE = """
receiver: {{token: t0ken-for-pushes}}
store: {{url: "sqlite:///{db}"}}
admin: {{token: adm1n-token-for-tests{public}}}
intake: {{enabled: false}}
dispatcher: {{enabled: false}}
sinks:
  gudang: {{type: email, host: smtp.toko.example, from: kabarin@toko.example, to: [g@toko.example]}}
routes:
  - {{name: staff, sinks: [gudang]}}
"""


def test_staff_mail_links_to_the_order_once_a_reload_sets_the_public_url(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(STAFF_FILE.format(db=tmp_path / "k.db", public=""))
    app = create_app(load_config(path), config_path=path)
    with TestClient(app) as client:
        signed = {"token": "adm1n-token-for-tests"}
        assert client.post("/ui/login", data=signed, follow_redirects=False).status_code == 303
        (delivery_id,) = store(client, event(Status.SHIPPED, 1, awb="JP1"), sinks=("gudang",))
        page = client.get(f"/ui/deliveries/{delivery_id}").text
        assert "Pesanan INV-2001: Dikirim" in page and "Resi: JP1" in page
        assert "Halo" not in page and "Dasbor" not in page

        public = ", public_url: 'https://kabarin.toko.example'"
        path.write_text(STAFF_FILE.format(db=tmp_path / "k.db", public=public))
        bearer = {"Authorization": "Bearer adm1n-token-for-tests"}
        r = client.post("/admin/v1/reload", headers=bearer)
        assert r.status_code == 200 and r.json()["ok"], r.text
        page = client.get(f"/ui/deliveries/{delivery_id}").text
        assert "Dasbor: https://kabarin.toko.example/ui/orders/view?id=INV-2001" in page


@pytest.mark.parametrize(
    "label",
    [
        "{n} pushes put back to the intake.",
        "{n} deliveries replayed.",
        "{n} attempts",
        "Replay {n} dead deliveries?",
    ],
)
def test_a_counting_label_says_one_thing_in_the_singular(label: str) -> None:
    one, two = translate(label, "en", n=1), translate(label, "en", n=2)
    assert two == label.format(n=2) and one != label.format(n=1)
    assert one.startswith("1 ") or " 1 " in one
    assert translate(label, "id", n=1) != label.format(n=1)  # translated, one form for both
