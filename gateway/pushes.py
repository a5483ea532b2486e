"""Taking in an authenticated push body: check its envelope, then append it to the push log, or
keep it as rejected when it is not a push.

The receiver calls this for every push it has read, and replaying a rejected body (admin API,
dashboard, ``kabarin rejected replay``) runs the same path, so both answer alike.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import msgspec

from gateway import metrics
from gateway.errors import PushError, StoreError, error_answer
from gateway.ingest import new_push_id
from gateway.kiriminaja import decode_push
from gateway.store.base import NewPush, RejectedRequest

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["PushAccepted", "accept_push"]

log = logging.getLogger("kabarin.receiver")


class PushAccepted(msgspec.Struct, frozen=True):
    push_id: str
    """The push log entry: ``GET /admin/v1/pushes/{push_id}`` shows what became of it."""
    items: int
    """Packages in the push."""


_encode = msgspec.json.Encoder().encode


async def accept_push(
    rt: Runtime,
    body: bytes,
    content_type: str | None,
    *,
    rejected_id: int | None = None,
    now: datetime | None = None,
) -> tuple[int, bytes]:
    """Check an authenticated body's envelope and append it to the push log; the status and
    JSON answer. The 200 means the body is on disk: the intake makes events of it afterwards.

    `rejected_id` replays a kept rejected body: if it is still not a push, that row gets the
    new reason instead of a second row being added.
    """
    started = time.perf_counter()
    received_at = now or datetime.now(UTC)
    try:
        push = decode_push(body)
    except PushError as exc:
        metrics.PUSH_REJECTIONS.labels("invalid").inc()
        try:
            await rt.store.reject(
                RejectedRequest(
                    received_at=received_at,
                    reason=str(exc),
                    body=body,
                    content_type=content_type,
                    replaces=rejected_id,
                )
            )
        except StoreError as failure:
            rt.receiver_trouble.failed("could not keep a rejected push", failure, "answering 503")
            return error_answer(
                503, "store_unavailable", "could not store the request; send it again"
            )
        return error_answer(400, "invalid_push", exc.reason, exc.path)

    entry = NewPush(
        id=new_push_id(received_at),
        source="push",
        received_at=received_at,
        body=body,
        content_type=content_type,
        method=push.method,
        items=len(push.items),
    )
    try:
        await rt.store.append_push(entry)
    except StoreError as failure:
        rt.receiver_trouble.failed("could not append a push to the log", failure, "answering 503")
        return error_answer(503, "store_unavailable", "could not store the push; send it again")
    rt.receiver_trouble.recovered()
    rt.backlog.pending += 1
    rt.wake_intake()
    metrics.PUSHES.labels(metrics.method_label(push.method)).inc()
    log.debug(
        "push %s %r: %d items logged in %.1f ms",
        entry.id,
        push.method,
        entry.items,
        (time.perf_counter() - started) * 1000,
    )
    return 200, _encode(PushAccepted(entry.id, entry.items))
