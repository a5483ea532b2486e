"""The ceiling for bench/ingest.py: bare Litestar that decodes the push into a msgspec struct."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Litestar, Request, Response, post


class Push(msgspec.Struct):
    method: str
    data: list[dict[str, Any]] | dict[str, Any]


_decode = msgspec.json.Decoder(Push).decode


@post("/kiriminaja/push", status_code=200)
async def receive(request: Request[Any, Any, Any]) -> Response[bytes]:
    push = _decode(await request.body())
    n = len(push.data) if isinstance(push.data, list) else 1
    return Response(b'{"accepted":%d,"duplicates":0}' % n, media_type="application/json")


app = Litestar(route_handlers=[receive], openapi_config=None)
