"""A range of a logged push's package items, decoded without the others: `push_part`.

The admin API and the dashboard show a push a page of items at a time, and a push at the size
limit holds tens of thousands of them: decoding and normalising every item for each page of a
hundred cost seconds and hundreds of megabytes. Here the envelope is read with each item (and
each package of the complete format) kept as its raw JSON bytes (`msgspec.Raw`, a slice of the
body, no Python objects built); only the page's items, and the packages that name their orders,
are decoded. Normalising the part yields exactly the events those items yield in the whole push:
`normalise` reads each item alone, with the payment and the package of its own order.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.sources.kiriminaja.normalise import order_key
from gateway.sources.kiriminaja.push import Push

__all__ = ["PushPart", "push_part"]


class PushPart(msgspec.Struct, frozen=True):
    push: Push
    """The envelope with only the part's items (and the packages of their orders)."""
    total: int
    """Package items in the whole push."""


class _Envelope(msgspec.Struct):
    method: str
    data: msgspec.Raw
    payment: Any = None
    packages: msgspec.Raw = msgspec.Raw(b"null")


class _Keyed(msgspec.Struct):
    """A package read for its ``order_id`` alone (its other fields are skipped, not built)."""

    order_id: Any = None


_envelope = msgspec.json.Decoder(_Envelope).decode
_items = msgspec.json.Decoder(list[msgspec.Raw] | dict[str, Any]).decode
_raws = msgspec.json.Decoder(list[msgspec.Raw]).decode
_keyed = msgspec.json.Decoder(_Keyed).decode
_value = msgspec.json.Decoder().decode

_BOM = b"\xef\xbb\xbf"


def push_part(body: bytes, start: int, stop: int) -> PushPart:
    """Items ``[start, stop)`` of a push body `decode_push` accepted, in body order (raises on
    one it would not accept)."""
    envelope = _envelope(body.removeprefix(_BOM))
    data = _items(envelope.data)
    if isinstance(data, dict):  # one package sent as an object
        items: list[Any] = [data][start:stop]
        total = 1
    else:
        items = [_value(raw) for raw in data[start:stop]]
        total = len(data)
    return PushPart(
        Push(
            method=envelope.method,
            data=items,
            payment=envelope.payment,
            packages=_packages(envelope.packages, items),
        ),
        total,
    )


def _packages(packages: msgspec.Raw, items: list[Any]) -> list[Any] | None:
    """The complete format's packages of the items' orders, in body order (so that the last of
    two for one order wins, as in `normalise`)."""
    try:
        raws = _raws(packages)
    except msgspec.ValidationError:  # not a list: `normalise` reads no package from it either
        return None
    wanted = {order_key(item["order_id"]) for item in items}
    found = []
    for raw in raws:
        try:
            order_id = _keyed(raw).order_id
        except msgspec.ValidationError:  # not an object: `normalise` skips it too
            continue
        if order_id is not None and order_key(order_id) in wanted:
            found.append(_value(raw))
    return found
