"""When a digest is due: its periods, and what to do at a given moment, as a pure decision.

A digest's periods are the moments it is sent for: daily ``at`` a local time in its zone, or
``every`` so long counted from local midnight (``every: 1h`` at each full hour). Each period
covers the `window` before it. `DigestSchedule.decide` looks at the time and at the last
period the store says was sent, and answers, like `gateway.delivery.retry.RetryPolicy.decide`:

- `Baseline`: the store knows no period of this digest yet (it was just configured): record
  the latest period as the start, send nothing; the first digest goes at the next period;
- `SendNow`: the latest period is not sent yet. When Kabarin was down over several periods,
  only the latest is sent (``late`` says by how much, ``skipped`` that earlier ones went
  unsent), never a backlog;
- `WaitUntil`: the latest period is sent; wake at the next.

It reads no clock and touches no store. Wall times are converted with `zoneinfo`: Indonesia's
zones (``Asia/Jakarta``, ``Asia/Makassar``, ``Asia/Jayapura``) have no daylight saving time; in
a zone that has, a wall time that does not exist is taken as the moment after the jump, and one
that happens twice as its first occurrence, so a period is never sent twice (the store compares
periods as instants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

__all__ = ["Baseline", "DigestDecision", "DigestSchedule", "SendNow", "WaitUntil"]

_DAY = 86400.0


@dataclass(frozen=True, slots=True)
class Baseline:
    """First sight of the digest: record `period` as sent without sending it."""

    period: datetime
    next: datetime
    """The period after it: when to wake."""


@dataclass(frozen=True, slots=True)
class SendNow:
    """Send the digest of `period` now (claim it first: another replica may have)."""

    period: datetime
    late: float
    """Seconds since `period`: more than a moment when the process was down at its time."""
    skipped: bool = False
    """Periods between the last one sent and this one went unsent (the process was down over
    them): this one stands for them all."""


@dataclass(frozen=True, slots=True)
class WaitUntil:
    """Nothing due: the next period is at `when`."""

    when: datetime


DigestDecision = Baseline | SendNow | WaitUntil


@dataclass(frozen=True, slots=True)
class DigestSchedule:
    """A digest's periods in `zone`: daily at `at`, or every `every` seconds from midnight."""

    zone: ZoneInfo
    at: time | None = None
    every: float | None = None
    window_seconds: float | None = None

    def __post_init__(self) -> None:
        if (self.at is None) == (self.every is None):
            raise ValueError("a digest schedule has either `at` or `every`")
        if self.every is not None and not self.every > 0:
            raise ValueError("`every` must be more than 0")

    @classmethod
    def of(
        cls, *, zone: ZoneInfo, at: str | None, every: float | None, window: float | None
    ) -> DigestSchedule:
        """From a digest block's values (``at`` as ``HH:MM``)."""
        clock = None
        if at is not None:
            hour, minute = at.split(":")
            clock = time(int(hour), int(minute))
        return cls(zone=zone, at=clock, every=every, window_seconds=window)

    @property
    def period_seconds(self) -> float:
        """The nominal length of a period: a day, or `every`."""
        return _DAY if self.every is None else self.every

    @property
    def window(self) -> timedelta:
        """How far back a period's digest looks."""
        seconds = self.window_seconds if self.window_seconds is not None else self.period_seconds
        return timedelta(seconds=seconds)

    def latest(self, now: datetime) -> datetime:
        """The last period at or before `now`."""
        local = now.astimezone(self.zone)
        for day in (local.date(), local.date() - timedelta(days=1)):
            if self.at is not None:
                candidate = _wall(day, self.at, self.zone)
            else:
                midnight = datetime.combine(day, time(0))
                since = (local.replace(tzinfo=None) - midnight).total_seconds()
                step = self._step(min(since, _DAY - 1e-6))
                candidate = _naive_wall(midnight + timedelta(seconds=step), self.zone)
                if candidate > now and step > 0:  # a wall time past a jump: the one before
                    step = self._step(step - 1e-6)
                    candidate = _naive_wall(midnight + timedelta(seconds=step), self.zone)
            if candidate <= now:
                return candidate
        raise AssertionError("a day always holds a period")  # pragma: no cover

    def following(self, period: datetime) -> datetime:
        """The first period after `period`."""
        local = period.astimezone(self.zone)
        for days in range(3):
            day = local.date() + timedelta(days=days)
            if self.at is not None:
                candidate = _wall(day, self.at, self.zone)
            else:
                midnight = datetime.combine(day, time(0))
                step = 0.0
                if days == 0:
                    since = (local.replace(tzinfo=None) - midnight).total_seconds()
                    step = self._step(since) + float(self.every or _DAY)
                    if step >= _DAY:  # the count starts again at midnight
                        continue
                candidate = _naive_wall(midnight + timedelta(seconds=step), self.zone)
            if candidate > period:
                return candidate
        raise AssertionError("three days always hold a later period")  # pragma: no cover

    def _step(self, seconds: float) -> float:
        """Seconds after midnight of the last ``every`` step at or before `seconds`."""
        every = float(self.every or _DAY)
        return math.floor(seconds / every + 1e-9) * every

    def decide(self, now: datetime, last_sent: datetime | None) -> DigestDecision:
        """What to do at `now`, given the last period sent (`None`: none is recorded)."""
        latest = self.latest(now)
        if last_sent is None:
            return Baseline(period=latest, next=self.following(latest))
        if last_sent < latest:
            skipped = self.following(last_sent) < latest
            return SendNow(period=latest, late=(now - latest).total_seconds(), skipped=skipped)
        return WaitUntil(when=self.following(max(latest, last_sent)))


def _wall(day: object, at: time, zone: ZoneInfo) -> datetime:
    return _naive_wall(datetime.combine(day, at), zone)  # type: ignore[arg-type]


def _naive_wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """A local wall time as a UTC instant: the first occurrence of a repeated one, and for one
    skipped by a jump forward, the instant the clock jumped at plus the gap's remainder."""
    aware = moment.replace(tzinfo=zone, fold=0)
    utc = aware.astimezone(UTC)
    if utc.astimezone(zone).replace(tzinfo=None) != moment:
        # Skipped wall time: fold=1 gives the later reading (after the jump).
        utc = moment.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return utc
