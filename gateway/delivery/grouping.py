"""Grouping: a grouped route's events go out as a few messages per group, not one each.

A route with ``group: {by: [status, courier], wait: 30s, interval: 5m}`` collects its events,
per sink, into groups of the same values of ``by`` (`gateway.routing` computes the key). A
group's message is an ordinary delivery (retried, dead-lettered and replayed like any other)
whose lane is the group (`GroupRef.id`), and the group's events are its members::

    event ──▶ the group collects a message? ──yes──▶ joins it
                         │ no
                         ▼
               opens one, due at `message_due` ──▶ (its time comes) claimed: closed
                                                   ──▶ later events open the next one

The first message goes `wait` after the group's first event; while a group is active (its
last message was closed less than `interval` ago) the next one goes `interval` after the
last: at most one message per `interval`. A group quiet for longer starts over, as a first.
Each event is in exactly one message: a message is closed in the commit that first claims
it, so an event either made it in before or opens the next one.

`message_due` is the decision and `plan_groups` applies it to an intake batch; both are pure,
and both backends apply the same plan (the retry policy's shape: `gateway.delivery.retry`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from gateway.delivery.model import GroupRef, NewDelivery

__all__ = [
    "GROUP_PREFIX",
    "GroupPlan",
    "GroupState",
    "Member",
    "Opened",
    "message_due",
    "plan_groups",
]

GROUP_PREFIX = "grp_"
"""Starts every group's id, and so the lane (`Delivery.order_id`) of its messages: the claim
looks for a message's events only on such lanes."""


def message_due(
    *, now: datetime, last_closed_at: datetime | None, wait: float, interval: float
) -> datetime:
    """When a group's new message goes, opened by an event at `now`: `wait` after it, or,
    while the group is active (its last message closed less than `interval` before `now`),
    `interval` after that one."""
    if last_closed_at is not None:
        next_turn = last_closed_at + timedelta(seconds=interval)
        if now < next_turn:
            return next_turn
    return now + timedelta(seconds=wait)


class GroupState(NamedTuple):
    """A group as the store keeps it, read (and locked) in the intake's commit."""

    open_message: str | None
    """The message collecting events now (not claimed yet); ``None``: none is."""
    last_closed_at: datetime | None
    """When its last message was closed (first claimed); ``None``: never."""


class Opened(NamedTuple):
    """A message to create: pending, due at `due`, its first member `delivery.event_id`."""

    delivery: NewDelivery
    group: GroupRef
    due: datetime


class Member(NamedTuple):
    """An event's place: in message `message_id` of group `group_id`."""

    message_id: str
    group_id: str
    event_id: str


@dataclass(slots=True)
class GroupPlan:
    """What an intake commit writes for its grouped deliveries."""

    opened: list[Opened] = field(default_factory=list)
    members: list[Member] = field(default_factory=list)

    @property
    def open_messages(self) -> dict[str, str]:
        """Group id → the message it collects from now on (the ones opened here)."""
        return {o.group.id: o.delivery.id for o in self.opened}


def plan_groups(
    grouped: Sequence[NewDelivery], state: Mapping[str, GroupState], now: datetime
) -> GroupPlan:
    """Place each grouped delivery of a batch (in arrival order) in its group's message: the
    one the group collects, else one this batch opened for it, else a new one."""
    plan = GroupPlan()
    collecting = {gid: s.open_message for gid, s in state.items() if s.open_message is not None}
    for d in grouped:
        group = d.group
        if group is None:
            raise ValueError(f"delivery {d.id} belongs to no group")
        message = collecting.get(group.id)
        if message is None:
            known = state.get(group.id)
            due = message_due(
                now=now,
                last_closed_at=None if known is None else known.last_closed_at,
                wait=group.wait,
                interval=group.interval,
            )
            plan.opened.append(Opened(d, group, due))
            message = collecting[group.id] = d.id
        plan.members.append(Member(message, group.id, d.event_id))
    return plan
