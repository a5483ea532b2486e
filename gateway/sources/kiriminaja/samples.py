"""KiriminAja's sample events, what ``kabarin check`` renders every template with.

`sample_events` is one realistic event per status with every detail filled; `minimal_events`
is the event of each push method's shortest form, what a template meets when KiriminAja sends
nothing beyond what its specification guarantees.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.events import Event, Status, event_id
from gateway.sources.kiriminaja.normalise import normalise
from gateway.sources.kiriminaja.push import Push

__all__ = ["minimal_events", "sample_events"]


_SAMPLES: dict[Status, tuple[str, str, str | None, str]] = {
    # status: (method, kind, raw status, reason)
    Status.PROCESSED: ("processed_packages", "express", None, "Resi terbit"),
    Status.VALIDATED: ("tracking", "express", "102", "Divalidasi oleh kurir"),
    Status.SHIPPED: ("shipped_packages", "express", None, "Diserahkan ke kurir"),
    Status.PICKED_UP: ("update_instant_packages", "instant", "picked_up", "Diambil driver"),
    Status.IN_TRANSIT: ("update_instant_packages", "instant", "sent", "Menuju penerima"),
    Status.DELIVERED: ("finished_packages", "express", None, "Diterima oleh yang bersangkutan"),
    Status.CANCELED: ("canceled_packages", "express", None, "3pl rejection"),
    Status.REJECTED: ("update_instant_packages", "instant", "rejected", "Penerima menolak paket"),
    Status.PROBLEM: ("tracking", "express", "107", "Alamat penerima tidak ditemukan"),
    Status.NO_DRIVER: ("update_instant_packages", "instant", "no_driver", "Tidak ada driver"),
    Status.RETURNING: ("returned_packages", "express", None, "Penerima tidak dapat dihubungi"),
    Status.RETURNED: ("returned_packages", "express", None, "Diterima kembali oleh pengirim"),
    Status.STUCK: ("tracking", "express", None, "Tidak ada kabar selama 3 hari"),
    Status.UNKNOWN: ("rescheduled_packages", "express", None, "Metode baru dari KiriminAja"),
}


def sample_events() -> list[Event]:
    """One realistic event per `Status`, every detail filled."""
    at = datetime(2022, 5, 5, 0, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
    events = []
    for n, status in enumerate(Status):
        method, kind, raw_status, reason = _SAMPLES[status]
        instant = kind == "instant"
        order_id = f"OID-{40592020 + n}"
        awb = f"GK-11-{3114100 + n}" if instant else f"JP{1234567890 + n}"
        occurred = at + timedelta(hours=n)
        events.append(
            Event(
                id=event_id("sample", method, order_id, status.value),
                source="pull" if method == "tracking" else "push",
                method=method,
                kind="instant" if instant else "express",
                status=status,
                raw_status=raw_status,
                order_id=order_id,
                awb=awb,
                occurred_at=occurred,
                received_at=occurred + timedelta(seconds=2),
                reason=reason,
                details={
                    "service": "gosend" if instant else "jne",
                    "service_name": "instant" if instant else "REG",
                    "sorting_code": None if instant else "JOG-JOG1000-JKT2010",
                    "shipping_price": 34000,
                    "tracking_url": "http://gjk.io/abcd" if instant else "https://kiriminaja.com/t",
                    "driver": {"name": "Budi Santoso", "phone": "081229917190", "image": None},
                },
                raw={"order_id": order_id, "awb": awb},
            )
        )
    return events


_MOMENT = "2022-05-05 00:00:00"
_MINIMAL_PUSHES: tuple[tuple[str, dict[str, Any]], ...] = (
    # Only the fields KiriminAja's push specification guarantees for each method.
    ("processed_packages", {"awb": "JP1234567890", "sorting_code": "JOG-JOG1000-JKT2010"}),
    ("validated_packages", {}),
    ("shipped_packages", {"shipped_at": _MOMENT}),
    ("canceled_packages", {"date": _MOMENT, "canceled_at": _MOMENT, "reason": "3pl rejection"}),
    ("finished_packages", {"finished_at": _MOMENT}),
    ("rejected_packages", {}),
    ("problem_packages", {}),
    ("returned_packages", {}),
    ("returned_packages", {"returned_at": _MOMENT}),
    ("return_finished_packages", {"date": _MOMENT}),
    *(
        ("update_instant_packages", {"status": status})
        for status in ("picked_up", "sent", "no_driver", "delivered", "cancel", "return")
    ),
    ("update_instant_packages", {"status": "returned"}),
    ("rescheduled_packages", {}),
)


def minimal_events() -> list[tuple[Event, str]]:
    """The event of each push method's shortest form, with a label naming it: what a template
    meets when KiriminAja sends nothing beyond what its specification guarantees."""
    at = datetime(2022, 5, 5, 3, 0, tzinfo=ZoneInfo("UTC"))
    out = []
    for n, (method, fields) in enumerate(_MINIMAL_PUSHES):
        push = Push(method=method, data=[{"order_id": f"OID-{40593020 + n}", **fields}])
        for event in normalise(push, received_at=at, tz=ZoneInfo("Asia/Jakarta")).events:
            out.append((event, f"minimal {method} push"))
    return out
