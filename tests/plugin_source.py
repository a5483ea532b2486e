"""A small third-party push source, ``parcelku``, installed for a test as a real distribution:
its package and a ``.dist-info`` with its ``kabarin.sources`` entry point, in a folder that
goes on ``sys.path`` (a unit test) or ``PYTHONPATH`` (the server an end-to-end test starts)."""

from __future__ import annotations

from pathlib import Path

PATH = "/parcelku/push"

PACKAGE = '''
"""Parcelku's webhook: {"event": "shipment.updated", "shipments": [{"ref", "status", "at"}]}."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import msgspec

from gateway.errors import PushError
from gateway.events import Event, Status, event_identity
from gateway.sources.base import Normalised

STATUS = {"created": Status.PROCESSED, "on_the_way": Status.IN_TRANSIT,
          "delivered": Status.DELIVERED}


class ParcelPush(msgspec.Struct):
    event: str
    shipments: list[Any]

    @property
    def method(self) -> str:
        return self.event

    @property
    def items(self) -> list[Any]:
        return self.shipments


_decode = msgspec.json.Decoder(ParcelPush).decode


class ParcelkuSource:
    name = "parcelku"
    methods = frozenset({"shipment.updated"})
    kinds = frozenset({"same_day"})

    def decode(self, body: bytes) -> ParcelPush:
        try:
            push = _decode(body)
        except msgspec.DecodeError as exc:
            raise PushError(f"not a Parcelku push: {exc}") from None
        for i, shipment in enumerate(push.shipments):
            if not isinstance(shipment, dict) or not isinstance(shipment.get("ref"), str):
                raise PushError("a shipment needs a `ref`", f"$.shipments[{i}].ref")
        return push

    def normalise(
        self, push: Any, *, received_at: datetime, tz: tzinfo, shop: str = "default"
    ) -> Normalised:
        events = []
        for shipment in push.items:
            raw_status = shipment.get("status")
            status = STATUS.get(raw_status, Status.UNKNOWN)
            when = datetime.fromisoformat(shipment["at"]) if shipment.get("at") else None
            events.append(
                Event(
                    id=event_identity(
                        namespace=self.name, method=push.method, order_id=shipment["ref"],
                        status=status, raw_status=raw_status, occurred_at=when, awb=None,
                        reason=None, shop=shop,
                    ),
                    shop=shop, source="push", method=push.method, kind="same_day", status=status,
                    raw_status=raw_status, order_id=shipment["ref"],
                    occurred_at=when or received_at, received_at=received_at, raw=shipment,
                )
            )
        return Normalised(events, [])

    def method_name(self, method: str) -> str:
        return method.strip().lower()

    def sample_events(self) -> list[Event]:
        shipment = {"ref": "PK-SAMPLE", "status": "delivered", "at": "2024-01-01T10:00:00+07:00"}
        return self._events(shipment)

    def minimal_events(self) -> list[tuple[Event, str]]:
        return [(e, "minimal parcelku push") for e in self._events({"ref": "PK-MINIMAL"})]

    def _events(self, shipment: dict[str, Any]) -> list[Event]:
        push = ParcelPush("shipment.updated", [shipment])
        at = datetime(2024, 1, 1, 3, 0, tzinfo=UTC)
        return self.normalise(push, received_at=at, tz=UTC).events


class NotASource:
    name = "parcelku"


class Impostor(ParcelkuSource):
    name = "kiriminaja"
'''


def install(folder: Path, target: str = "parcelku_kabarin:ParcelkuSource") -> Path:
    """Write the ``parcelku-kabarin`` distribution into `folder` (its entry point naming
    `target`); the folder to put on the path."""
    (folder / "parcelku_kabarin").mkdir(parents=True, exist_ok=True)
    (folder / "parcelku_kabarin" / "__init__.py").write_text(PACKAGE)
    info = folder / "parcelku_kabarin-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: parcelku-kabarin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[kabarin.sources]\nparcelku = {target}\n")
    return folder


def push(ref: str, status: str, at: str = "2024-01-01T10:00:00+07:00") -> bytes:
    """A Parcelku push of one shipment."""
    import json

    shipment = {"ref": ref, "status": status, "at": at}
    return json.dumps({"event": "shipment.updated", "shipments": [shipment]}).encode()
