"""Bodies the push endpoint refused, as an operator sees them, and replaying one through the
push path after a fix."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec

from gateway.receiver import accept_push
from gateway.store.roles import StoredRejected

if TYPE_CHECKING:
    from gateway.runtime import Runtime

__all__ = ["RejectedItem", "RejectedReplay", "rejected_item", "replay_rejected"]


class RejectedItem(msgspec.Struct, frozen=True, kw_only=True):
    id: int
    shop: str
    """The shop whose token sent it."""
    received_at: datetime
    reason: str
    content_type: str | None
    body: str
    """The body as received (bytes that are not UTF-8 shown as U+FFFD)."""


class RejectedReplay(msgspec.Struct, frozen=True, kw_only=True):
    outcome: str
    """``accepted``: the body is a push now, in the push log, and its rejected row removed;
    ``rejected``: still not a push, the row keeps the new reason; ``store_unavailable``."""
    status_code: int
    """What the push endpoint answers for this body now."""
    answer: dict[str, Any]
    """The push endpoint's answer (``{"push_id", "items"}`` or ``{"error", "detail"}``)."""


def rejected_item(r: StoredRejected) -> RejectedItem:
    return RejectedItem(
        id=r.id,
        shop=r.shop,
        received_at=r.received_at,
        reason=r.reason,
        content_type=r.content_type,
        body=r.body.decode("utf-8", errors="replace"),
    )


async def replay_rejected(rt: Runtime, rejected: StoredRejected) -> RejectedReplay:
    """Run a kept body through the push path again (`accept_push`, as the receiver does).

    Accepted: its events are stored and the rejected row is removed. Still not a push: the same
    row is updated with the new reason, not kept twice.
    """
    status, body = await accept_push(
        rt,
        rejected.body,
        rejected.content_type,
        source=rejected.origin,
        rejected_id=rejected.id,
        shop=rejected.shop,
    )
    if status == 200:
        await rt.store.delete_rejected(rejected.id)
        outcome = "accepted"
    else:
        outcome = "rejected" if status == 400 else "store_unavailable"
    answer: dict[str, Any] = msgspec.json.decode(body)
    return RejectedReplay(outcome=outcome, status_code=status, answer=answer)
