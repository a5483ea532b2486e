"""KiriminAja's push on the wire, and `decode_push`: bytes → `Push`, or a `PushError` (400).

Only the envelope is strict: a JSON object with a string ``method`` and ``data`` that is a list
of objects or one object, each with an ``order_id``. Everything inside a package item is read
leniently by `gateway.sources.kiriminaja.normalise`: KiriminAja adds fields without notice, sends
``null`` where its docs show a value and numbers as strings, and a dropped update is worse than
an odd one.
"""

from __future__ import annotations

import re
from itertools import accumulate
from typing import Any

import msgspec

from gateway.errors import PushError

__all__ = ["MAX_DEPTH", "MAX_ORDER_ID", "Item", "Push", "decode_push"]

MAX_DEPTH = 32
"""Deepest nesting of arrays and objects a push may have, the envelope included (a package item
sits at level 3). msgspec decodes deeper documents by recursion, and a document near its limit
decodes but cannot be encoded again by the admin API or a sink: the limit keeps every accepted
push readable, and no real push comes close to it."""

MAX_ORDER_ID = 255
"""Longest ``order_id`` a push may carry, in characters (KiriminAja's are a few dozen). The
stores index it: PostgreSQL refuses an index entry past about 2,700 bytes, and an order id
the store cannot keep would be accepted and then never become an event."""

_BOM = b"\xef\xbb\xbf"
_GZIP = b"\x1f\x8b"

Item = dict[str, Any]
"""One package as received (kept verbatim in `Event.raw`)."""


class Push(msgspec.Struct, frozen=True):
    """A push: the short format (``method`` + ``data``) or the complete one, which adds
    ``payment`` and ``packages`` beside ``data``. Other top-level fields are ignored."""

    method: str
    data: list[Any] | dict[str, Any]
    payment: Any = None
    """Complete format: the payment of the orders (kept in `Event.details`)."""
    packages: Any = None
    """Complete format: one entry per package with courier, numeric status, recipient, ..."""

    @property
    def items(self) -> list[Any]:
        return self.data if isinstance(self.data, list) else [self.data]


_decode = msgspec.json.Decoder(Push).decode
_MISSING_FIELD = re.compile(r"^Object missing required field `(\w+)`")
_AT_PATH = re.compile(r" - at `(\$[^`]*)`$")


# A JSON string, escapes included; an unterminated one runs to the end. Possessive, so a body
# full of quotes and backslashes costs one pass.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"?', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_UNIFORM = bytes.maketrans(b"{}", b"[]")


def _too_deep(body: bytes) -> bool:
    """Whether arrays and objects nest past `MAX_DEPTH`, read without decoding."""
    if body.count(b"[") + body.count(b"{") <= MAX_DEPTH:  # the usual small push
        return False
    brackets = _STRING.sub(b"", body).translate(_UNIFORM, _NOT_BRACKETS)
    # Each round takes away the innermost level everywhere: a balanced body nested no deeper
    # than the limit is gone within MAX_DEPTH rounds, at C speed.
    rest = brackets
    for _ in range(MAX_DEPTH):
        rest = rest.replace(b"[]", b"")
        if not rest:
            return False
    # Too deep, or unbalanced (not JSON at all, which only the decoder should say).
    return max(accumulate(1 if b == 0x5B else -1 for b in brackets)) > MAX_DEPTH


def decode_push(body: bytes) -> Push:
    """Decode and check the envelope and every item's ``order_id``. A UTF-8 byte order mark
    before the JSON is ignored, as RFC 8259 allows."""
    if body.startswith(_BOM):
        body = body[len(_BOM) :]
    if _too_deep(body):
        raise PushError(f"the body nests arrays and objects deeper than {MAX_DEPTH} levels", "$")
    try:
        push = _decode(body)
    except msgspec.ValidationError as exc:
        raise _validation_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        if body.startswith(_GZIP):
            raise PushError(
                "the body is gzip-compressed: send it uncompressed (no Content-Encoding)"
            ) from None
        raise PushError(f"the body is not valid JSON: {exc}") from None
    except UnicodeDecodeError as exc:  # msgspec checks UTF-8 only when it builds a `str`
        raise PushError(f"a string in the body is not valid UTF-8 ({exc.reason})") from None
    if b"\\u0000" in body and (where := _nul_at(push)) is not None:
        raise PushError(
            "a string in the body holds a NUL character (\\u0000), which the store cannot keep",
            where,
        )
    one_object = isinstance(push.data, dict)
    for i, item in enumerate(push.items):
        where = "$.data" if one_object else f"$.data[{i}]"
        if not isinstance(item, dict):
            raise PushError(f"a package must be a JSON object, got {_json_type(item)}", where)
        order_id = item.get("order_id")
        if isinstance(order_id, bool) or not isinstance(order_id, str | int | float):
            raise PushError("a package must have an `order_id`", f"{where}.order_id")
        if isinstance(order_id, str) and not order_id.strip():
            raise PushError("a package's `order_id` is empty", f"{where}.order_id")
        if len(str(order_id)) > MAX_ORDER_ID:
            raise PushError(
                f"a package's `order_id` is longer than {MAX_ORDER_ID} characters",
                f"{where}.order_id",
            )
    return push


def _nul_at(push: Push) -> str | None:
    """The path of the first key or string value that holds a NUL character, if any. Such a
    string is valid JSON, but PostgreSQL's text and jsonb refuse it: accepted, it would be
    kept in the log and then never become an event."""
    fields = {"method": push.method, "data": push.data}
    fields |= {"payment": push.payment, "packages": push.packages}
    return _nul_in(fields, "$")


def _nul_in(value: Any, where: str) -> str | None:
    if isinstance(value, str):
        return where if "\x00" in value else None
    children: Any = ()
    if isinstance(value, list):
        children = ((f"{where}[{i}]", v) for i, v in enumerate(value))
    elif isinstance(value, dict):
        if any("\x00" in key for key in value):
            return where
        children = ((f"{where}.{key}", v) for key, v in value.items())
    for path, child in children:
        if (found := _nul_in(child, path)) is not None:
            return found
    return None


def _validation_error(message: str) -> PushError:
    path = "$"
    if m := _AT_PATH.search(message):
        path = m.group(1)
        message = message[: m.start()]
    if m := _MISSING_FIELD.match(message):
        path = f"{path}.{m.group(1)}"
    if path == "$" and message.startswith("Expected `object`"):
        message = "a push must be a JSON object with `method` and `data`; " + message
    return PushError(message, path)


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "an array"
    return type(value).__name__
