"""What the dashboard's pages show, in-process: stored events, deliveries and contacts read back
through the real app (no intake or dispatcher running: what a page shows is what the test
stored, or what the store's own `finish` made of it)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from gateway.deliveries import NewDelivery
from gateway.events import Contact, Event, Status
from gateway.runtime import Runtime

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
