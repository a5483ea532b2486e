"""The Jinja2 sandbox every template and `when` expression runs in, with Kabarin's filters.

A template cannot change what it is handed (the sandbox is immutable); ``a.b`` on a dict reads
the key ``b``, even ``details.items``. ``None`` renders as an empty string, and undefined names
are errors (`StrictUndefined`). Filters:

- ``rupiah``: ``34000`` → ``Rp34.000``; ``None`` → ``-``.
- ``localtime(format=None)``: a datetime (or ISO string) in the receiver's zone, e.g.
  ``05 Mei 2022 00:00 WIB``; in a format, ``%b %B %a %A`` are month and day names in the
  template's language and ``%Z`` is ``WIB`` / ``WITA`` / ``WIT`` (else the zone's abbreviation).
- ``localdate(format=None)``: the same, as a date, e.g. ``Kamis, 05 November 2026``
  (``Thursday, 05 November 2026`` in English); ``None`` → ``-``.
- ``status_label(language=None)``: ``delivered`` → ``Terkirim`` (``id``) / ``Delivered`` (``en``).
- ``group_key``: a grouped message's ``group.key`` as text, ``status: Dibatalkan, courier: jne``
  (statuses by their label in the template's language, a missing value as ``-``).
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any

from jinja2 import StrictUndefined, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.events import Status

__all__ = ["STATUS_LABELS", "clean_error", "local_time", "rupiah", "sandbox"]


_LABELS = {
    Status.PROCESSED: ("Diproses", "Processed"),
    Status.VALIDATED: ("Divalidasi", "Validated"),
    Status.SHIPPED: ("Dikirim", "Shipped"),
    Status.PICKED_UP: ("Diambil kurir", "Picked up"),
    Status.IN_TRANSIT: ("Dalam perjalanan", "In transit"),
    Status.DELIVERED: ("Terkirim", "Delivered"),
    Status.CANCELED: ("Dibatalkan", "Canceled"),
    Status.REJECTED: ("Ditolak", "Rejected"),
    Status.PROBLEM: ("Bermasalah", "Problem"),
    Status.NO_DRIVER: ("Driver tidak ditemukan", "No driver"),
    Status.RETURNING: ("Dalam pengembalian", "Returning"),
    Status.RETURNED: ("Dikembalikan", "Returned"),
    Status.STUCK: ("Tertahan", "Stuck"),
    Status.UNKNOWN: ("Tidak diketahui", "Unknown"),
}
STATUS_LABELS: dict[str, dict[Status, str]] = {
    "id": {status: labels[0] for status, labels in _LABELS.items()},
    "en": {status: labels[1] for status, labels in _LABELS.items()},
}
"""Human label of every status, by language."""

_MONTHS = {
    "id": "Januari Februari Maret April Mei Juni Juli Agustus September Oktober November Desember",
    "en": "January February March April May June July August September October November December",
}
_MONTHS_SHORT = {
    "id": "Jan Feb Mar Apr Mei Jun Jul Agu Sep Okt Nov Des",
    "en": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec",
}
_DAYS = {
    "id": "Senin Selasa Rabu Kamis Jumat Sabtu Minggu",
    "en": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
}
_DAYS_SHORT = {"id": "Sen Sel Rab Kam Jum Sab Min", "en": "Mon Tue Wed Thu Fri Sat Sun"}
_ZONE_LABELS = {
    "Asia/Jakarta": "WIB",
    "Asia/Pontianak": "WIB",
    "Asia/Makassar": "WITA",
    "Asia/Ujung_Pandang": "WITA",
    "Asia/Jayapura": "WIT",
}
_DEFAULT_TIME_FORMAT = "%d %b %Y %H:%M %Z"
_DEFAULT_DATE_FORMAT = "%A, %d %B %Y"
_TIME_DIRECTIVE = re.compile(r"%[%aAbBZ]")


class _Sandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox (templates cannot change the event), where ``a.b`` on a dict
    reads the key ``b`` even when it shares a method's name (``details.items``)."""

    def getattr(self, obj: Any, attribute: str) -> Any:
        if type(obj) is dict and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def sandbox(timezone: tzinfo) -> ImmutableSandboxedEnvironment:
    """The Jinja2 environment every template and `when` expression runs in."""
    env = _Sandbox(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
        finalize=lambda value: "" if value is None else value,
    )
    env.filters["rupiah"] = rupiah

    @pass_context
    def localtime(context: Context, value: Any, format: str | None = None) -> str:
        # In the zone of the message's shop (``shop.timezone``) where it has one.
        zone = getattr(context.get("shop"), "timezone", None)
        return _localtime(
            value, zone if isinstance(zone, tzinfo) else timezone, format, _language(context)
        )

    @pass_context
    def status_label(context: Context, value: Any, language: str | None = None) -> str:
        return _status_label(value, language or _language(context))

    @pass_context
    def group_key(context: Context, key: Any) -> str:
        language = _language(context)
        return ", ".join(
            f"{name}: "
            + (
                "-"
                if value is None
                else _status_label(value, language)
                if name == "status"
                else str(value)
            )
            for name, value in dict(key).items()
        )

    @pass_context
    def localdate(context: Context, value: Any, format: str | None = None) -> str:
        return localtime(context, value, format or _DEFAULT_DATE_FORMAT)

    env.filters["localtime"] = localtime
    env.filters["localdate"] = localdate
    env.filters["status_label"] = status_label
    env.filters["group_key"] = group_key
    return env


def rupiah(value: Any) -> str:
    """``34000`` → ``Rp34.000``, ``1500000.5`` → ``Rp1.500.000,50``, ``None`` → ``-``.

    Numeric strings are read as numbers; anything else is shown unchanged.
    """
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return str(value)
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except (InvalidOperation, TypeError, ValueError):
        return str(value)
    if not amount.is_finite():
        return str(value)
    sign = "-" if amount < 0 else ""
    amount = abs(amount)
    whole = int(amount)
    text = f"{whole:,}".replace(",", ".")
    cents = (amount - whole).quantize(Decimal("0.01"))
    if cents:
        text += "," + f"{cents:.2f}"[2:]
    return f"{sign}Rp{text}"


def _language(context: Context) -> str:
    language = context.get("language")
    return language if language in STATUS_LABELS else "id"


def _status_label(value: Any, language: str) -> str:
    labels = STATUS_LABELS.get(language, STATUS_LABELS["id"])
    try:
        return labels[Status(value)]
    except ValueError:
        return str(value)


def _zone_label(moment: datetime) -> str:
    """``WIB`` / ``WITA`` / ``WIT`` for Indonesia's zones, else the zone's own abbreviation."""
    key = getattr(moment.tzinfo, "key", None)
    if key in _ZONE_LABELS:
        return _ZONE_LABELS[key]
    return moment.tzname() or ""


def local_time(
    value: datetime, timezone: tzinfo, format: str | None = None, language: str = "id"
) -> str:
    """What the ``localtime`` filter writes: `value` in `timezone`, month and day names in
    `language`, ``WIB``/``WITA``/``WIT`` for ``%Z``."""
    return _localtime(value, timezone, format, language)


def _localtime(value: Any, timezone: tzinfo, format: str | None, language: str) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return str(value)
    if not isinstance(value, datetime):
        return str(value)
    moment = value.astimezone(timezone) if value.tzinfo else value.replace(tzinfo=timezone)

    def name(match: re.Match[str]) -> str:
        directive = match.group()[1]
        if directive == "b":
            return _MONTHS_SHORT[language].split()[moment.month - 1]
        if directive == "B":
            return _MONTHS[language].split()[moment.month - 1]
        if directive == "a":
            return _DAYS_SHORT[language].split()[moment.weekday()]
        if directive == "A":
            return _DAYS[language].split()[moment.weekday()]
        if directive == "Z":
            return _zone_label(moment).replace("%", "%%")
        return "%%"

    return moment.strftime(_TIME_DIRECTIVE.sub(name, format or _DEFAULT_TIME_FORMAT))


def clean_error(message: str) -> str:
    """A Jinja error message as a template's author reads it (``Status``, not
    ``gateway.events.Status``)."""
    for name in ("gateway.insights.estimates.Estimate", "gateway.templating.rendering._NoEstimate"):
        message = message.replace(f"'{name} object'", "estimate")
    return message.replace("gateway.events.", "")
