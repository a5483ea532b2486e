"""Quiet hours: a daily window in which a people-facing sink sends nothing.

`QuietHours.until` says whether a moment falls inside the window and, if so, when it ends: the
dispatcher puts such a delivery back as pending until then, without using an attempt, so the
wait is in the store (a restart keeps it) and nothing is dropped. A window whose start is later
than its end (``21:00``-``07:00``) spans midnight. Times are wall-clock times in the window's
zone: the recipient's, ``receiver.timezone`` unless the sink names one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sinks.base import QuietHoursConfig

__all__ = ["QuietHours"]


@dataclass(frozen=True, slots=True)
class QuietHours:
    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def from_config(cls, config: QuietHoursConfig, default_zone: ZoneInfo) -> QuietHours:
        zone = ZoneInfo(config.timezone) if config.timezone else default_zone
        return cls(time.fromisoformat(config.start), time.fromisoformat(config.end), zone)

    def contains(self, moment: datetime) -> bool:
        """Whether `moment` (timezone-aware) falls inside the window; its end is outside."""
        local = moment.astimezone(self.zone).time().replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def until(self, moment: datetime) -> datetime | None:
        """The end of the window `moment` is in (UTC), or ``None`` when it is outside it."""
        if not self.contains(moment):
            return None
        local = moment.astimezone(self.zone)
        end = datetime.combine(local.date(), self.end, tzinfo=self.zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=self.zone)
        return end.astimezone(UTC)

    def describe(self, end: datetime) -> str:
        """What a waiting delivery says: ``quiet hours (21:00-07:00 Asia/Jakarta) until ...``."""
        local = end.astimezone(self.zone)
        return (
            f"quiet hours ({self.start:%H:%M}-{self.end:%H:%M} {self.zone.key}): "
            f"waits until {local:%Y-%m-%d %H:%M} {local.tzname()}"
        )
