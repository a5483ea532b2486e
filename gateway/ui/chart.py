"""The dashboard's charts as inline SVG, drawn on the server: counts per hour (the overview),
ranges and rates per row (the courier scorecards).

No chart library: two bar series on a shared scale read well on a phone and work offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from markupsafe import Markup, escape

__all__ = ["count_per_hour", "hour_buckets", "hourly_svg", "range_svg", "rates_svg"]

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


_ROW = 26
_LABEL = 112
_HWIDTH = 360
"""The row charts are drawn as wide as a phone shows them: their text stays readable there."""


def _rows_svg(height: int, body: list[str]) -> Markup:
    return Markup(
        f'<svg class="hchart" viewBox="0 0 {_HWIDTH} {height}" role="img"'
        f' xmlns="http://www.w3.org/2000/svg">' + "".join(body) + "</svg>"
    )


def range_svg(rows: Sequence[tuple[str, float | None, float | None]], unit: str) -> Markup:
    """One horizontal bar per ``(label, low, high)`` from low to high (a tick at low), on a
    scale shared by every row; a row without figures shows only its label."""
    top = max([1.0, *(h for _, _, h in rows if h is not None)])
    span = _HWIDTH - _LABEL - 58
    body: list[str] = []
    for i, (label, low, high) in enumerate(rows):
        y = i * _ROW
        body.append(f'<text x="0" y="{y + 17}" class="label">{escape(label)}</text>')
        if low is None or high is None:
            body.append(f'<text x="{_LABEL}" y="{y + 17}">-</text>')
            continue
        x0 = _LABEL + span * low / top
        x1 = _LABEL + span * high / top
        body.append(
            f'<rect class="range" x="{x0:.1f}" y="{y + 6}" width="{max(x1 - x0, 2):.1f}"'
            f' height="14"><title>{escape(label)}: {low:g}&#8211;{high:g}'
            f" {escape(unit)}</title></rect>"
            f'<rect class="mid" x="{x0:.1f}" y="{y + 3}" width="3" height="20"/>'
            f'<text x="{x1 + 6:.1f}" y="{y + 17}">{low:g}&#8211;{high:g}</text>'
        )
    return _rows_svg(max(len(rows), 1) * _ROW + 4, body)


def rates_svg(
    rows: Sequence[tuple[str, Sequence[float | None]]], series: Sequence[tuple[str, str]]
) -> Markup:
    """Per ``(label, rates)`` one thin horizontal bar per rate (0 to 1) of `series`
    (``(name, css class)`` each), on a scale up to the largest rate."""
    top = max([0.01, *(r for _, rates in rows for r in rates if r is not None)])
    span = _HWIDTH - _LABEL - 58
    height = 8 * len(series) + 10
    body: list[str] = []
    for i, (label, rates) in enumerate(rows):
        y = i * height
        body.append(
            f'<text x="0" y="{y + height / 2 + 4:.0f}" class="label">{escape(label)}</text>'
        )
        for j, ((name, css), rate) in enumerate(zip(series, rates, strict=True)):
            value = rate or 0.0
            w = span * value / top
            body.append(
                f'<rect class="{escape(css)}" x="{_LABEL}" y="{y + 4 + 8 * j}" width="{w:.1f}"'
                f' height="7"><title>{escape(label)} {escape(name)}:'
                f" {value * 100:.1f}%</title></rect>"
                f'<text x="{_LABEL + w + 4:.1f}" y="{y + 11 + 8 * j}" class="small">'
                f"{value * 100:.1f}%</text>"
            )
    return _rows_svg(max(len(rows), 1) * height + 4, body)
