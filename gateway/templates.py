"""Message templates: a Jinja2 sandbox with Kabarin's filters, and the start-up template check.

A message has named parts (``text``, ``subject``, ``html``, ...). Each sink kind declares the
parts it sends (`Sink.parts`); `Templates.message` renders each one from the route's template
for that sink, else the sink block's, else the kind's built-in one in the sink's language, and
builds the `Message` the sink is handed. Templates are compiled once per source. The ``html``
part escapes every value it inserts (``<`` → ``&lt;``); ``{{ x | safe }}`` opts out.

A template sees ``event`` (the `Event`; ``event.details.<key>`` reads the details, statuses render
as their value, e.g. ``delivered``), ``contact`` (never undefined: with no contact it is falsy and
``contact.name`` is ``None``), ``route`` (the route's name), ``language`` (``id`` or ``en``,
the sink's) and ``order_url`` (the order's dashboard page under ``admin.public_url``; ``None``
when that is not set). ``None`` renders as an empty string. Filters:

- ``rupiah``: ``34000`` → ``Rp34.000``; ``None`` → ``-``.
- ``localtime(format=None)``: a datetime (or ISO string) in the receiver's zone, e.g.
  ``05 Mei 2022 00:00 WIB``; in a format, ``%b %B %a %A`` are month and day names in the
  template's language and ``%Z`` is ``WIB`` / ``WITA`` / ``WIT`` (else the zone's abbreviation).
- ``status_label(language=None)``: ``delivered`` → ``Terkirim`` (``id``) / ``Delivered`` (``en``).

Undefined names are errors (`StrictUndefined`), reported as `TemplateError` with the line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import StrictUndefined, Template, TemplateSyntaxError, pass_context
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gateway.errors import TemplateError
from gateway.events import Contact, Event, Status, event_id
from sinks.base import Message

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.delivery.model import Delivery, NewDelivery
    from gateway.routing import Route, Router
    from sinks.base import Sink

__all__ = [
    "STATUS_LABELS",
    "Templates",
    "check_templates",
    "decode_parts",
    "encode_parts",
    "message_language",
    "minimal_events",
    "sample_events",
    "sandbox",
]


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
_TIME_DIRECTIVE = re.compile(r"%[%aAbBZ]")
_CACHE_LIMIT = 512
_PARTS_MARK = "{#parts#}"
"""Starts a stored route template of several parts (a Jinja comment: no text template that
was stored before starts with it by accident)."""
_decode_parts = msgspec.json.Decoder(dict[str, str]).decode


def encode_parts(parts: Mapping[str, str]) -> str | None:
    """A route's template for one sink as `NewDelivery.template` keeps it: ``None`` for none,
    the source alone for just a ``text`` part (as it always was), else marked JSON."""
    if not parts:
        return None
    if set(parts) == {"text"}:
        return parts["text"]
    return _PARTS_MARK + msgspec.json.encode(dict(parts)).decode()


def decode_parts(stored: str | None) -> dict[str, str]:
    """`encode_parts` undone: part name → template source."""
    if stored is None:
        return {}
    if stored.startswith(_PARTS_MARK):
        return _decode_parts(stored[len(_PARTS_MARK) :])
    return {"text": stored}


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
        return _localtime(value, timezone, format, _language(context))

    @pass_context
    def status_label(context: Context, value: Any, language: str | None = None) -> str:
        return _status_label(value, language or _language(context))

    env.filters["localtime"] = localtime
    env.filters["status_label"] = status_label
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


class _NoContact:
    """What ``contact`` is when the order has none: falsy, every field ``None``."""

    __slots__ = ("order_id",)
    name = phone = email = None

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id

    def __bool__(self) -> bool:
        return False


def order_page(public_url: str | None, order_id: str) -> str | None:
    """The dashboard page of an order under `public_url` (``admin.public_url``), if set."""
    if public_url is None:
        return None
    return f"{public_url.rstrip('/')}/ui/orders/view?{urlencode({'id': order_id})}"


class Templates:
    """Compiles (once per source) and renders message templates in the receiver's time zone.

    `public_url` (``admin.public_url``) makes ``order_url`` a link to the order's dashboard page.
    """

    def __init__(self, *, timezone: tzinfo, public_url: str | None = None) -> None:
        self.timezone = timezone
        self.public_url = public_url
        self._env = sandbox(timezone)
        self._compiled: dict[str, Template] = {}

    @classmethod
    def for_config(cls, config: Config) -> Templates:
        """Templates in ``receiver.timezone`` linking to the dashboard at ``admin.public_url``."""
        return cls(timezone=config.receiver.tz, public_url=config.admin.public_url)

    def compile(self, source: str) -> Template:
        """The compiled template; `TemplateError` (with the line) for a syntax error."""
        template = self._compiled.get(source)
        if template is None:
            try:
                template = self._env.from_string(source)
            except TemplateSyntaxError as exc:
                raise TemplateError(f"line {exc.lineno}: {_clean(exc.message or '')}") from exc
            if len(self._compiled) >= _CACHE_LIMIT:
                self._compiled.clear()
            self._compiled[source] = template
        return template

    def render(
        self, source: str, *, event: Event, contact: Contact | None, route: str, language: str
    ) -> str:
        """Render `source` for one delivery; any failure is a `TemplateError` naming its line."""
        template = self.compile(source)
        try:
            return template.render(
                event=event,
                contact=contact if contact is not None else _NoContact(event.order_id),
                route=route,
                language=language,
                order_url=order_page(self.public_url, event.order_id),
            )
        except Exception as exc:
            raise TemplateError(f"line {_template_line(exc)}: {_clean(str(exc))}") from exc

    def sources(
        self, route_parts: Mapping[str, str], sink: Sink, language: str | None = None
    ) -> dict[str, str]:
        """The template source of every part `sink` declares: the route's, else the sink
        block's, else the kind's built-in one (in `language`, by default the sink's, else
        ``id``).

        A declared part none of them gives is a `TemplateError` naming it.
        """
        own = sink.config.template_parts
        wanted = language or sink.config.language
        out: dict[str, str] = {}
        for part in sink.parts:
            source = route_parts.get(part, own.get(part))
            if source is None:
                built_in = sink.default_templates.get(part, {})
                source = built_in.get(wanted) or built_in.get("id")
            if source is None:
                raise TemplateError(f"no `{part}` template: sink {sink.name!r} needs one")
            out[part] = source
        return out

    def render_parts(
        self,
        sources: Mapping[str, str],
        *,
        event: Event,
        contact: Contact | None,
        route: str,
        language: str,
    ) -> dict[str, str]:
        """Every part rendered; the first failure is a `TemplateError` naming its part."""
        out: dict[str, str] = {}
        for part, source in sources.items():
            if part == "html":
                # Data from a push must not become markup in a mail. Same line: line numbers
                # in errors stay the template's own.
                source = f"{{% autoescape true %}}{source}{{% endautoescape %}}"
            try:
                out[part] = self.render(
                    source, event=event, contact=contact, route=route, language=language
                )
            except TemplateError as exc:
                if part == "text":
                    raise
                raise TemplateError(f"{part} part, {exc}") from exc.__cause__
        return out

    def message(
        self,
        sink: Sink,
        delivery: Delivery | NewDelivery,
        *,
        event: Event,
        contact: Contact | None,
        attempt: int = 1,
    ) -> Message:
        """The `Message` `sink` is handed for `delivery`, every declared part rendered."""
        language = message_language(sink, contact)
        parts = self.render_parts(
            self.sources(decode_parts(delivery.template), sink, language),
            event=event,
            contact=contact,
            route=delivery.route,
            language=language,
        )
        return Message(
            delivery_id=delivery.id,
            route=delivery.route,
            event=event,
            contact=contact,
            parts=parts,
            attempt=attempt,
        )


def message_language(sink: Sink, contact: Contact | None) -> str:
    """The language a message is written in: the customer's own (``contact.language``, as the
    shop registered it) when the sink writes to the customer, else the sink's ``language``."""
    own = contact.language if contact is not None else None
    if own in STATUS_LABELS and getattr(sink, "writes_to_customer", False):
        return str(own)
    return sink.config.language


def _template_line(exc: BaseException) -> int | str:
    """The template line an exception was raised at (Jinja rewrites tracebacks to point there)."""
    line: int | str = "?"
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _clean(message: str) -> str:
    return message.replace("gateway.events.", "")


_SAMPLES: dict[Status, tuple[str, str, str | None, str]] = {
    # status: (method, kind, raw status, reason)
    Status.PROCESSED: ("processed_packages", "express", None, "Resi terbit"),
    Status.VALIDATED: ("tracking", "express", "102", "Divalidasi oleh kurir"),
    Status.SHIPPED: ("shipped_packages", "express", None, "Diserahkan ke kurir"),
    Status.PICKED_UP: ("update_instant_packages", "instant", "picked_up", "Diambil driver"),
    Status.IN_TRANSIT: ("update_instant_packages", "instant", "sent", "Menuju penerima"),
    Status.DELIVERED: ("finished_packages", "express", None, "Diterima oleh yang bersangkutan"),
    Status.CANCELED: ("canceled_packages", "express", None, "3pl rejection"),
    Status.REJECTED: ("update_instant_packages", "instant", "rejected", "Penerima menolak paket"),
    Status.PROBLEM: ("tracking", "express", "107", "Alamat penerima tidak ditemukan"),
    Status.NO_DRIVER: ("update_instant_packages", "instant", "no_driver", "Tidak ada driver"),
    Status.RETURNING: ("returned_packages", "express", None, "Penerima tidak dapat dihubungi"),
    Status.RETURNED: ("returned_packages", "express", None, "Diterima kembali oleh pengirim"),
    Status.STUCK: ("tracking", "express", None, "Tidak ada kabar selama 3 hari"),
    Status.UNKNOWN: ("rescheduled_packages", "express", None, "Metode baru dari KiriminAja"),
}


def sample_events() -> list[Event]:
    """One realistic event per `Status`, every detail filled, for checks and previews."""
    at = datetime(2022, 5, 5, 0, 0, tzinfo=ZoneInfo("Asia/Jakarta"))
    events = []
    for n, status in enumerate(Status):
        method, kind, raw_status, reason = _SAMPLES[status]
        instant = kind == "instant"
        order_id = f"OID-{40592020 + n}"
        awb = f"GK-11-{3114100 + n}" if instant else f"JP{1234567890 + n}"
        occurred = at + timedelta(hours=n)
        events.append(
            Event(
                id=event_id("sample", method, order_id, status.value),
                source="pull" if method == "tracking" else "push",
                method=method,
                kind="instant" if instant else "express",
                status=status,
                raw_status=raw_status,
                order_id=order_id,
                awb=awb,
                occurred_at=occurred,
                received_at=occurred + timedelta(seconds=2),
                reason=reason,
                details={
                    "service": "gosend" if instant else "jne",
                    "service_name": "instant" if instant else "REG",
                    "sorting_code": None if instant else "JOG-JOG1000-JKT2010",
                    "shipping_price": 34000,
                    "tracking_url": "http://gjk.io/abcd" if instant else "https://kiriminaja.com/t",
                    "driver": {"name": "Budi Santoso", "phone": "081229917190", "image": None},
                },
                raw={"order_id": order_id, "awb": awb},
            )
        )
    return events


_MOMENT = "2022-05-05 00:00:00"
_MINIMAL_PUSHES: tuple[tuple[str, dict[str, Any]], ...] = (
    # Only the fields KiriminAja's push specification guarantees for each method.
    ("processed_packages", {"awb": "JP1234567890", "sorting_code": "JOG-JOG1000-JKT2010"}),
    ("validated_packages", {}),
    ("shipped_packages", {"shipped_at": _MOMENT}),
    ("canceled_packages", {"date": _MOMENT, "canceled_at": _MOMENT, "reason": "3pl rejection"}),
    ("finished_packages", {"finished_at": _MOMENT}),
    ("rejected_packages", {}),
    ("problem_packages", {}),
    ("returned_packages", {}),
    ("returned_packages", {"returned_at": _MOMENT}),
    ("return_finished_packages", {"date": _MOMENT}),
    *(
        ("update_instant_packages", {"status": status})
        for status in ("picked_up", "sent", "no_driver", "delivered", "cancel", "return")
    ),
    ("update_instant_packages", {"status": "returned"}),
    ("rescheduled_packages", {}),
)


def minimal_events() -> list[tuple[Event, str]]:
    """The event of each push method's shortest form, with a label naming it: what a template
    meets when KiriminAja sends nothing beyond what its specification guarantees."""
    from gateway.kiriminaja import Push, normalise

    at = datetime(2022, 5, 5, 3, 0, tzinfo=ZoneInfo("UTC"))
    out = []
    for n, (method, fields) in enumerate(_MINIMAL_PUSHES):
        push = Push(method=method, data=[{"order_id": f"OID-{40593020 + n}", **fields}])
        for event in normalise(push, received_at=at, tz=ZoneInfo("Asia/Jakarta")).events:
            out.append((event, f"minimal {method} push"))
    return out


def _sample_contact(event: Event) -> Contact:
    return Contact(
        order_id=event.order_id, name="Siti Rahayu", phone="+6281229917190", email="siti@toko.id"
    )


_Sample = tuple[Event, str]
_MISSING_KEY = re.compile(r"^'dict object' has no attribute '([^']+)'$")


def _samples() -> list[_Sample]:
    full = [(e, f"sample {e.status.value} {e.kind} event") for e in sample_events()]
    return full + minimal_events()


def _missing(exc: BaseException, source: str) -> str | None:
    """The expression that reads a ``details`` key an event lacks (``event.details.price``),
    or None when `exc` is some other failure."""
    message = exc.__cause__ if isinstance(exc, TemplateError) and exc.__cause__ else exc
    m = _MISSING_KEY.match(str(message))
    if m is None:
        return None
    key = re.escape(m.group(1))
    found = re.search(rf"\b(?:event|contact)(?:\.\w+)*\.{key}\b", source)
    return found.group() if found else m.group(1)


def _lacking(expression: str, failed: list[tuple[_Sample, BaseException]], guard: str) -> str:
    (event, label), _ = failed[0]
    others = dict.fromkeys(e.status.value for (e, _), _ in failed[1:])
    others.pop(event.status.value, None)
    also = f", and for status {', '.join(others)}" if others else ""
    return (
        f"`{expression}` is missing for status {event.status.value} ({label}){also}; "
        f"guard it with `| default(...)` or `{guard}`"
    )


def _check(
    templates: Templates,
    where: str,
    source: str,
    route: str,
    sink: str,
    language: str,
    events: list[_Sample],
) -> list[str]:
    try:
        templates.compile(source)
    except TemplateError as exc:
        return [f"{where}: {exc}"]
    failed: list[tuple[_Sample, BaseException]] = []
    rendered = 0
    problems: dict[str, str] = {}
    for sample in events:
        event, label = sample
        for contact in (_sample_contact(event), None):
            try:
                templates.render(
                    source, event=event, contact=contact, route=route, language=language
                )
            except TemplateError as exc:
                failed.append((sample, exc))
                label += "" if contact else " with no contact"
                problems.setdefault(str(exc), f"{where}: {exc} ({label})")
            else:
                rendered += 1
    if not failed:
        return []
    missing = {_missing(exc, source) for _, exc in failed}
    if rendered and None not in missing:  # keys some pushes carry and others do not
        lines = []
        for expression in dict.fromkeys(_missing(exc, source) for _, exc in failed):
            assert expression is not None
            these = [f for f in failed if _missing(f[1], source) == expression]
            guard = f"{{% if {expression} is defined %}}"
            lines.append(
                f"{where}: route {route}, sink {sink}: {_lacking(expression, these, guard)}"
            )
        return lines
    return list(problems.values())


def check_templates(config: Config, router: Router, sinks: Mapping[str, Sink]) -> list[str]:
    """Render every template against every event its route can receive; one line per failure.

    The events are a full sample of every status and the shortest push of every method, kept
    to those a route's ``match`` and ``when`` let through. Checks each route's per-sink
    template (``routes[i].template.<sink>``, fallback sinks included), else the sink's own or
    built-in one (``sinks.<name>.template``), in the sink's language; a sink no route uses is
    checked against every event. A ``when`` that fails on an event its ``match`` lets through is
    reported too (``routes[i].when``): at run time that route would not fire for it.
    """
    templates = Templates.for_config(config)
    samples = _samples()
    problems: list[str] = []
    used: set[tuple[str, str]] = set()
    for route in router.routes:
        events, when_problems = _receivable(route, samples, config)
        spares = [s for s in route.fallbacks.values() if s not in route.sinks]
        for sink_name in [*route.sinks, *dict.fromkeys(spares)]:
            target = sinks.get(sink_name)
            if target is None and sink_name in route.sinks:
                where = config.where("routes", route.index, "sinks", route.sinks.index(sink_name))
                problems.append(f"{where}: undefined sink {sink_name!r}")
                continue
            if target is None:  # an undefined fallback sink: the configuration reports it
                continue
            given = route.templates.get(sink_name, {})
            for part in _checked_parts(target, given):
                if part in given:
                    path: tuple[str | int, ...] = ("routes", route.index, "template", sink_name)
                    where = config.where(*path, *_part_key(part, given))
                    source: str | None = given[part]
                else:
                    used.add((sink_name, part))
                    where, source = _sink_part(config, sink_name, target, part)
                if source is None:
                    problems.append(f"{where}: no `{part}` template: sink {sink_name!r} needs one")
                    continue
                language = target.config.language
                problems += _check(
                    templates, where, source, route.name, sink_name, language, events
                )
        problems += when_problems
    for name, sink in sinks.items():
        for part in _checked_parts(sink, {}):
            if (name, part) in used:
                continue
            where, source = _sink_part(config, name, sink, part)
            if source is None:
                problems.append(f"{where}: no `{part}` template: sink {name!r} needs one")
                continue
            language = sink.config.language
            problems += _check(templates, where, source, "check", name, language, samples)
    return list(dict.fromkeys(problems))


def _checked_parts(sink: Sink, route_parts: Mapping[str, str]) -> list[str]:
    """The parts the kind sends, then any other part the configuration gives (a template a
    webhook does not send is still checked: a typo in it is a typo)."""
    return list(dict.fromkeys([*sink.parts, *sink.config.template_parts, *route_parts]))


def _part_key(part: str, given: Mapping[str, str]) -> tuple[str, ...]:
    """The YAML key of `part` below ``template``: none when the template is a plain string."""
    return () if set(given) == {"text"} else (part,)


def _sink_part(config: Config, name: str, sink: Sink, part: str) -> tuple[str, str | None]:
    """Where the sink's own template of `part` is written (or that it is built in), and its
    source (``None``: neither the block nor the kind gives one)."""
    own = sink.config.template
    if isinstance(own, str) and part == "text":
        return config.where("sinks", name, "template"), own
    if isinstance(own, dict) and part in own:
        return config.where("sinks", name, "template", part), own[part]
    built_in = sink.default_templates.get(part, {})
    source = built_in.get(sink.config.language) or built_in.get("id")
    what = "template" if part == "text" else f"{part} template"
    return config.where("sinks", name) + f" (built-in {what})", source


def _receivable(
    route: Route, samples: list[_Sample], config: Config
) -> tuple[list[_Sample], list[str]]:
    """The samples `route` fires for, and the problems of its ``when`` on the others.

    The ``when`` is judged only on samples the route's ``match`` lets through. When none does
    (``kind: instant`` with ``details.service: {not: gosend}``: every instant sample is a
    gosend one), it is judged on the full samples changed field by field to pass the match
    (`_made_to_match`); when none can be, it is not judged. When its ``when`` lets no sample
    through, the templates are still checked, on the full samples its ``match`` lets through
    (those carry every detail a ``when`` may test)."""
    tried = [s for s in samples if route.matches_fields(s[0])]
    if not tried:
        tried = _made_to_match(route, samples, config)
        if not tried:  # nothing the match lets through: the templates meet every full sample
            return [s for s in samples if s[1].startswith("sample ")], []
    events: list[_Sample] = []
    failed: list[tuple[_Sample, BaseException]] = []
    evaluated = 0
    for sample in tried:
        try:
            fires = route.evaluate_when(sample[0])
        except Exception as exc:
            failed.append((sample, exc))
            continue
        evaluated += 1
        if fires:
            events.append(sample)
    events = events or [s for s in tried if s[1].startswith("sample ")] or tried
    if not failed:
        return events, []
    where = config.where("routes", route.index, "when")
    error = _clean(str(failed[0][1]))
    if not evaluated:
        return events, [f"{where}: fails on every sample event: {error}"]
    source = route.when or ""
    expression = _missing(failed[0][1], source)
    if expression is None:
        (event, label), _ = failed[0]
        return events, [
            f"{where}: route {route.name}: fails for status {event.status.value} ({label}): {error}"
        ]
    these = [f for f in failed if _missing(f[1], source) == expression]
    guard = f"{expression} is defined and ..."
    return events, [f"{where}: route {route.name}: {_lacking(expression, these, guard)}"]


_STATUS_VALUES = frozenset(s.value for s in Status)
_TEXT_FIELDS = frozenset({"method", "kind", "source", "raw_status", "order_id", "awb", "reason"})
"""Event fields a value written in a ``match`` may be put in as it is (text)."""


def _made_to_match(route: Route, samples: list[_Sample], config: Config) -> list[_Sample]:
    """The full samples changed to pass `route`'s ``match``, one per status and kind: each
    field that fails takes the first value that passes it, from the values the ``match``
    names and those the samples have. A sample no value makes pass is left out."""
    from gateway.config import RouteConfig
    from gateway.routing import Router

    match = config.routes[route.index].match if route.index < len(config.routes) else {}
    if not match:
        return []
    # Each entry compiled alone, by the router itself: a route of one entry tests one field.
    alone = msgspec.structs.replace(
        config,
        routes=[
            RouteConfig(name=field, sinks=[], match={field: spec}) for field, spec in match.items()
        ],
        targets=[],
    )
    tests = Router.compile(alone)[0].routes
    candidates = {field: _candidates(field, spec, samples) for field, spec in match.items()}
    made: dict[str, _Sample] = {}
    for event, label in samples:
        if not label.startswith("sample "):
            continue
        for test in tests:
            if test.matches_fields(event):
                continue
            field = test.name
            changed = (_with(event, field, value) for value in candidates[field])
            event = next((e for e in changed if test.matches_fields(e)), event)
            if not test.matches_fields(event):
                break
        else:
            if route.matches_fields(event):
                made_label = (
                    f"sample {event.status.value} {event.kind} event made to pass the match"
                )
                made.setdefault(made_label, (event, made_label))
    return list(made.values())


def _candidates(field: str, spec: Any, samples: list[_Sample]) -> list[Any]:
    """Values to try in `field`: those the ``match`` names, those the samples have, none, and
    last a regex's own source (``GK-.*`` passes ``{regex: "GK-.*"}``)."""
    named, patterns = _scalars(spec)
    if field == "status":
        named = [Status(v) for v in map(str, named) if v in _STATUS_VALUES]
    elif "." not in field and field not in _TEXT_FIELDS:
        named = patterns = []  # a time or an id: only values of the right type, the samples'
    found = [_value(e, field) for e, _ in samples]
    values: list[Any] = []
    for value in [*named, *found, None, *patterns]:
        if value not in values:
            values.append(value)
    return values


def _scalars(spec: Any) -> tuple[list[Any], list[str]]:
    """The values a matcher names, and its regexes' sources."""
    if isinstance(spec, list | dict):
        named: list[Any] = []
        patterns: list[str] = []
        for key, item in spec.items() if isinstance(spec, dict) else enumerate(spec):
            if key == "regex" and isinstance(item, str):
                patterns.append(item)
                continue
            more, regexes = _scalars(item)
            named += more
            patterns += regexes
        return named, patterns
    return [spec], []


def _value(event: Event, field: str) -> Any:
    rest = field.partition(".")[2]
    if not rest:
        return getattr(event, field, None)
    value: Any = event.details
    for key in rest.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def _with(event: Event, field: str, value: Any) -> Event:
    """`event` with `value` in `field` (a dotted path into ``details`` made as needed; ``None``
    there removes the key, as a push that lacks it)."""
    rest = field.partition(".")[2]
    if not rest:
        return msgspec.structs.replace(event, **{field: value})
    details = dict(event.details)
    keys = rest.split(".")
    here = details
    for key in keys[:-1]:
        inner = here.get(key)
        here[key] = dict(inner) if isinstance(inner, dict) else {}
        here = here[key]
    if value is None:
        here.pop(keys[-1], None)
    else:
        here[keys[-1]] = value
    return msgspec.structs.replace(event, details=details)
