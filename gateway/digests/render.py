"""A `Summary` in every form a digest's sinks take: text, a mail's HTML tables, Slack blocks and
the webhook's JSON (`DigestParts`), in Bahasa Indonesia (``id``, the default) or English.

Status names are the templates' own labels (`gateway.templating.STATUS_LABELS`); times are
shown in the digest's zone as the templates' ``localtime`` shows them (``WIB``, ``WITA``,
``WIT``). Every value that came from a push is escaped for where it goes: HTML in the mail,
mrkdwn control characters in Slack; the webhook carries it as it is.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.digests.message import DigestParts
from gateway.digests.summary import Change, Summary
from gateway.events import Status
from gateway.templating import STATUS_LABELS, sandbox

__all__ = ["LABELS", "render_digest"]

LABELS: dict[str, dict[str, str]] = {
    "id": {
        "title": "Ringkasan {name}",
        "events": "Peristiwa",
        "by_status": "Per status",
        "by_courier": "Per kurir",
        "stuck": "Paket tertahan",
        "troubles": "Retur dan masalah",
        "dead": "Pesan gagal terkirim (dead) per sink",
        "before": "dibanding periode sebelumnya",
        "none": "tidak ada",
        "unknown_courier": "(kurir tidak diketahui)",
        "no_reason": "(tanpa alasan)",
        "more": "dan {n} lainnya",
        "stuck_in": "tertahan di {status} sejak {at}",
        "awb": "resi",
    },
    "en": {
        "title": "Digest {name}",
        "events": "Events",
        "by_status": "By status",
        "by_courier": "By courier",
        "stuck": "Stuck parcels",
        "troubles": "Returns and problems",
        "dead": "Dead deliveries by sink",
        "before": "against the window before",
        "none": "none",
        "unknown_courier": "(courier unknown)",
        "no_reason": "(no reason)",
        "more": "and {n} more",
        "stuck_in": "stuck in {status} since {at}",
        "awb": "AWB",
    },
}
"""The digest's own words, by language (status names come from `STATUS_LABELS`)."""

_SLACK_TEXT_LIMIT = 2900
"""Slack refuses a section's text past 3,000 characters."""


class _Words:
    """The labels, status names and time format of one digest in one language."""

    def __init__(self, language: str, zone: ZoneInfo, *, seconds: bool = False) -> None:
        self.language = language if language in LABELS else "id"
        self.labels = LABELS[self.language]
        clock = "%H:%M:%S" if seconds else "%H:%M"
        self._time = sandbox(zone).from_string(f"{{{{ t | localtime('%d %b %Y {clock} %Z') }}}}")

    def __getitem__(self, key: str) -> str:
        return self.labels[key]

    def status(self, status: Status | str | None) -> str:
        try:
            return STATUS_LABELS[self.language][Status(str(status))]
        except ValueError:
            return str(status)

    def time(self, moment: datetime) -> str:
        return self._time.render(t=moment, language=self.language)

    def courier(self, name: str) -> str:
        return name.upper() if name else self.labels["unknown_courier"]


def _sign(change: Change) -> str:
    return f"{change.now} ({change.delta:+d})"


def _lines(summary: Summary, w: _Words) -> list[tuple[str, list[str]]]:
    """The digest as titled sections of plain lines (the text, and Slack's sections)."""
    cur = summary.current
    statuses = [f"{w.status(s)}: {_sign(c)}" for s, c in summary.statuses()]
    couriers = [f"{w.courier(c)}: {n}" for c, n in cur.by_courier.items()]
    awb = w["awb"]
    stuck = [
        f"{p.order_id}{f' ({awb} {p.awb})' if p.awb else ''}: "
        + w["stuck_in"].format(status=w.status(p.stuck_in), at=w.time(p.at))
        for p in cur.stuck
    ]
    if cur.stuck_total > len(cur.stuck):
        stuck.append(w["more"].format(n=cur.stuck_total - len(cur.stuck)))
    troubles = [
        f"{w.status(t.status)}: {t.reason or w['no_reason']} x{t.count}" for t in cur.troubles
    ]
    dead = [
        f"{sink}: {_sign(Change(cur.dead.get(sink, 0), summary.previous.dead.get(sink, 0)))}"
        for sink in sorted(set(cur.dead) | set(summary.previous.dead))
    ]
    return [
        (w["by_status"], statuses),
        (w["by_courier"], couriers),
        (f"{w['stuck']}: {cur.stuck_total}", stuck),
        (w["troubles"], troubles),
        (f"{w['dead']}: {_sign(summary.dead)}", dead),
    ]


def render_digest(
    summary: Summary, *, language: str, zone: ZoneInfo, period: datetime | None
) -> DigestParts:
    """Every form of the digest (`period` is ``None`` for one sent or previewed by hand)."""
    cur = summary.current
    # To the second when the window is not on whole minutes (`every: 30s`, a preview), so
    # two digests never show the same span.
    seconds = any(t.second or t.microsecond for t in (cur.start, cur.end))
    w = _Words(language, zone, seconds=seconds)
    title = w["title"].format(name=summary.digest)
    span = f"{w.time(cur.start)} - {w.time(cur.end)}"
    total = f"{w['events']}: {_sign(summary.events)} {w['before']}"
    sections = _lines(summary, w)
    text = [f"{title}: {span}", total]
    for heading, lines in sections:
        text += ["", heading, *(f"  {line}" for line in lines or [w["none"]])]
    return DigestParts(
        subject=f"{title}: {span}",
        text="\n".join(text),
        html=_html(summary, w, title, span, total),
        blocks=_blocks(title, span, total, sections, w),
        payload=_payload(summary, language=w.language, period=period),
    )


def _html(summary: Summary, w: _Words, title: str, span: str, total: str) -> str:
    e = html.escape
    cur, prev = summary.current, summary.previous

    def table(heading: str, header: list[str], rows: Sequence[Sequence[object]]) -> str:
        head = "".join(f"<th align='left'>{e(h)}</th>" for h in header)
        if not rows:
            body = f"<tr><td colspan='{len(header)}'>{e(w['none'])}</td></tr>"
        else:
            body = "".join(
                "<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in r) + "</tr>" for r in rows
            )
        return (
            f"<h3>{e(heading)}</h3><table border='1' cellpadding='4' cellspacing='0'>"
            f"<tr>{head}</tr>{body}</table>"
        )

    delta = "Δ"
    more = cur.stuck_total - len(cur.stuck)
    parts = [
        f"<h2>{e(title)}</h2><p>{e(span)}</p><p><b>{e(total)}</b></p>",
        table(
            w["by_status"],
            ["Status", w["events"], delta],
            [[w.status(s), c.now, f"{c.delta:+d}"] for s, c in summary.statuses()],
        ),
        table(
            w["by_courier"],
            ["", w["events"]],
            [[w.courier(c), n] for c, n in cur.by_courier.items()],
        ),
        table(
            f"{w['stuck']} ({cur.stuck_total})",
            ["Order", w["awb"], "Status", ""],
            [[p.order_id, p.awb or "-", w.status(p.stuck_in), w.time(p.at)] for p in cur.stuck]
            + ([[w["more"].format(n=more), "", "", ""]] if more > 0 else []),
        ),
        table(
            w["troubles"],
            ["Status", "", w["events"]],
            [[w.status(t.status), t.reason or w["no_reason"], t.count] for t in cur.troubles],
        ),
        table(
            w["dead"],
            ["Sink", "dead", delta],
            [
                [
                    sink,
                    cur.dead.get(sink, 0),
                    f"{cur.dead.get(sink, 0) - prev.dead.get(sink, 0):+d}",
                ]
                for sink in sorted(set(cur.dead) | set(prev.dead))
            ],
        ),
    ]
    return "".join(parts)


def _mrkdwn(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _blocks(
    title: str, span: str, total: str, sections: list[tuple[str, list[str]]], w: _Words
) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": _mrkdwn(span)}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{_mrkdwn(total)}*"}},
    ]
    for heading, lines in sections:
        body = "\n".join(f"• {_mrkdwn(line)}" for line in lines) or f"_{w['none']}_"
        text = f"*{_mrkdwn(heading)}*\n{body}"
        if len(text) > _SLACK_TEXT_LIMIT:
            text = text[: _SLACK_TEXT_LIMIT - 1] + "…"
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    return blocks


def _change(change: Change) -> dict[str, int]:
    return {"count": change.now, "previous": change.before, "delta": change.delta}


def _payload(summary: Summary, *, language: str, period: datetime | None) -> dict[str, Any]:
    cur, prev = summary.current, summary.previous
    return {
        "digest": summary.digest,
        "period": None if period is None else period.isoformat(),
        "language": language,
        "window": {"start": cur.start.isoformat(), "end": cur.end.isoformat()},
        "previous_window": {"start": prev.start.isoformat(), "end": prev.end.isoformat()},
        "events": _change(summary.events),
        "by_status": {s.value: _change(c) for s, c in summary.statuses()},
        "by_courier": dict(cur.by_courier),
        "stuck": {
            "count": cur.stuck_total,
            "items": [
                {
                    "order_id": p.order_id,
                    "awb": p.awb,
                    "stuck_in": p.stuck_in,
                    "at": p.at.isoformat(),
                    "reason": p.reason,
                }
                for p in cur.stuck
            ],
        },
        "troubles": [
            {"status": t.status.value, "reason": t.reason, "count": t.count} for t in cur.troubles
        ],
        "dead": {
            **_change(summary.dead),
            "by_sink": dict(cur.dead),
        },
    }
