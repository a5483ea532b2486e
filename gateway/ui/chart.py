"""The overview's chart: counts per hour as an inline SVG, drawn on the server.

No chart library: two bar series on a shared scale read well on a phone and work offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

__all__ = ["count_per_hour", "hour_buckets", "hourly_svg"]

_WIDTH = 720
_HEIGHT = 180
_AXIS = 22


def hour_buckets(now: datetime, hours: int) -> list[datetime]:
    """The starts of the last `hours` whole hours (UTC), oldest first, the current one last."""
    current = now.replace(minute=0, second=0, microsecond=0)
    return [current - timedelta(hours=hours - 1 - i) for i in range(hours)]


def count_per_hour(times: Sequence[datetime], buckets: Sequence[datetime]) -> list[int]:
    counts = [0] * len(buckets)
    start = buckets[0]
    for t in times:
        index = int((t - start).total_seconds() // 3600)
        if 0 <= index < len(counts):
            counts[index] += 1
    return counts


def hourly_svg(
    buckets: Sequence[datetime],
    series: Sequence[tuple[str, str, Sequence[int]]],
    timezone: ZoneInfo,
) -> Markup:
    """Bars per hour for each ``(label, css class, counts)``; hours labelled in `timezone`."""
    top = max([1, *(c for _, _, counts in series for c in counts)])
    plot = _HEIGHT - _AXIS
    slot = _WIDTH / len(buckets)
    bar = max(slot / (len(series) + 1), 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img"'
        f' preserveAspectRatio="none" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="0" y1="{plot}" x2="{_WIDTH}" y2="{plot}" class="axis"/>',
    ]
    for i, start in enumerate(buckets):
        hour = start.astimezone(timezone).strftime("%H")
        for j, (label, css, counts) in enumerate(series):
            h = plot * counts[i] / top
            x = i * slot + bar * (j + 0.5)
            parts.append(
                f'<rect class="{escape(css)}" x="{x:.1f}" y="{plot - h:.1f}"'
                f' width="{bar:.1f}" height="{h:.1f}">'
                f"<title>{hour}:00 {escape(label)}: {counts[i]}</title></rect>"
            )
        if i % 3 == 0:
            parts.append(
                f'<text x="{i * slot + slot / 2:.1f}" y="{_HEIGHT - 6}"'
                f' text-anchor="middle">{hour}</text>'
            )
    parts.append(f'<text x="4" y="12" class="top">{top}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
