"""Rendering a message: the template of each part a sink sends, rendered for one delivery.

A message has named parts (``text``, ``subject``, ``html``, ...). Each sink kind declares the
parts it sends (`Sink.parts`); `Templates.message` renders each one from the route's template
for that sink, else the sink block's, else the kind's built-in one in the message's language
(`message_language`), and builds the `Message` the sink is handed. Templates are compiled once
per source. The ``html`` part escapes every value it inserts (``<`` → ``&lt;``);
``{{ x | safe }}`` opts out.

A template sees ``event`` (the `Event`; ``event.details.<key>`` reads the details, statuses render
as their value, e.g. ``delivered``), ``contact`` (never undefined: with no contact it is falsy and
``contact.name`` is ``None``), ``route`` (the route's name), ``language`` (``id`` or ``en``),
``shop`` (the event's shop: ``shop.id``, ``shop.name``; ``localtime`` writes times in its
``timezone``), ``order_url`` (the order's dashboard page under ``admin.public_url``; ``None``
when that is not set), ``tracking_url`` (the customer's signed tracking page,
`gateway.tracking_page`; ``None`` when ``tracking_page`` is not enabled), ``group`` (a grouped
route's message: ``group.key``, the values its events share, ``group.events`` and
``group.count``, with ``event`` its first event; ``None`` for a message about one event) and
``estimate`` (when the parcel is expected, `gateway.insights.estimates`: ``estimate.earliest``,
``estimate.latest``, ``estimate.basis``; never undefined: with none it is falsy and its fields
are ``None``, which ``localdate`` writes as ``-``), in the sandbox of
`gateway.templating.sandbox`. A failure is a `TemplateError` with the template's line.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import tzinfo
from typing import TYPE_CHECKING
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import msgspec
from jinja2 import Template, TemplateSyntaxError

from gateway.delivery.model import Group, NewDelivery
from gateway.errors import TemplateError
from gateway.events import Contact, Event
from gateway.insights.estimates import Estimate
from gateway.templating.sandbox import STATUS_LABELS, clean_error, sandbox
from gateway.tracking_page.links import LinkSigner, signer_for
from sinks.base import Message

if TYPE_CHECKING:
    from gateway.config import Config
    from gateway.delivery.model import Delivery
    from sinks.base import Sink

__all__ = [
    "Templates",
    "decode_parts",
    "encode_parts",
    "mentions_estimate",
    "message_language",
    "order_page",
]

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


class _NoContact:
    """What ``contact`` is when the order has none: falsy, every field ``None``."""

    __slots__ = ("order_id",)
    name = phone = email = None

    def __init__(self, order_id: str) -> None:
        self.order_id = order_id

    def __bool__(self) -> bool:
        return False


class _NoEstimate:
    """What ``estimate`` is when the parcel has none: falsy, every field ``None``."""

    __slots__ = ()
    earliest = latest = basis = samples = destination = estimation = None

    def __bool__(self) -> bool:
        return False


_NO_ESTIMATE = _NoEstimate()


class ShopView:
    """What ``shop`` is in a template: the event's shop, ``shop.id``, ``shop.name`` and
    ``shop.timezone`` (the zone ``localtime`` writes in)."""

    __slots__ = ("id", "name", "timezone")

    def __init__(self, shop_id: str, name: str, timezone: tzinfo) -> None:
        self.id = shop_id
        self.name = name
        self.timezone = timezone

    def __str__(self) -> str:
        return self.name


def order_page(public_url: str | None, order_id: str) -> str | None:
    """The dashboard page of an order under `public_url` (``admin.public_url``), if set."""
    if public_url is None:
        return None
    return f"{public_url.rstrip('/')}/ui/orders/view?{urlencode({'id': order_id})}"


class Templates:
    """Compiles (once per source) and renders message templates in the shop's time zone.

    `public_url` (``admin.public_url``) makes ``order_url`` a link to the order's dashboard page;
    `shop_names` (shop id → name) are what ``shop.name`` shows (the id for a shop not named);
    `shop_zones` (shop id → zone) the zone of each shop's times (`timezone`, the receiver's,
    for a shop without one); `links` signs ``tracking_url`` (``None``: the page is off).
    """

    def __init__(
        self,
        *,
        timezone: tzinfo,
        public_url: str | None = None,
        shop_names: Mapping[str, str] | None = None,
        shop_zones: Mapping[str, tzinfo] | None = None,
        links: LinkSigner | None = None,
    ) -> None:
        self.timezone = timezone
        self.links = links
        self.public_url = public_url
        self.shop_names = dict(shop_names or {})
        self.shop_zones = dict(shop_zones or {})
        self._env = sandbox(timezone)
        self._compiled: dict[str, Template] = {}

    @classmethod
    def for_config(cls, config: Config) -> Templates:
        """Templates in each shop's ``timezone`` (else ``receiver.timezone``) linking to the
        dashboard at ``admin.public_url``, naming the configured shops."""
        names = {shop_id: block.name or shop_id for shop_id, block in config.shops.items()}
        zones = {
            shop_id: ZoneInfo(block.timezone)
            for shop_id, block in config.shops.items()
            if block.timezone
        }
        return cls(
            timezone=config.receiver.tz,
            public_url=config.admin.public_url,
            shop_names=names,
            shop_zones=zones,
            links=signer_for(config),
        )

    def same_setup(self, other: Templates) -> bool:
        """Whether `other` renders as these do (zones, links, shop names): a reload keeps
        these, and their compiled templates, when it does."""
        mine = (self.timezone, self.public_url, self.shop_names, self.shop_zones, self.links)
        return mine == (
            other.timezone,
            other.public_url,
            other.shop_names,
            other.shop_zones,
            other.links,
        )

    def compile(self, source: str) -> Template:
        """The compiled template; `TemplateError` (with the line) for a syntax error."""
        template = self._compiled.get(source)
        if template is None:
            try:
                template = self._env.from_string(source)
            except TemplateSyntaxError as exc:
                raise TemplateError(f"line {exc.lineno}: {clean_error(exc.message or '')}") from exc
            if len(self._compiled) >= _CACHE_LIMIT:
                self._compiled.clear()
            self._compiled[source] = template
        return template

    def render(
        self,
        source: str,
        *,
        event: Event,
        contact: Contact | None,
        route: str,
        language: str,
        group: Group | None = None,
        estimate: Estimate | None = None,
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
                tracking_url=self.tracking_url(event),
                shop=ShopView(
                    event.shop,
                    self.shop_names.get(event.shop, event.shop),
                    self.shop_zones.get(event.shop, self.timezone),
                ),
                group=group,
                estimate=estimate if estimate is not None else _NO_ESTIMATE,
            )
        except Exception as exc:
            raise TemplateError(f"line {_template_line(exc)}: {clean_error(str(exc))}") from exc

    def tracking_url(self, event: Event) -> str | None:
        """The customer's tracking page of `event`'s order, working for ``link_ttl`` after
        the event reached Kabarin (a retried or re-rendered message carries the same link)."""
        if self.links is None:
            return None
        return self.links.url(event.shop, event.order_id, made_at=event.received_at)

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
        group: Group | None = None,
        estimate: Estimate | None = None,
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
                    source,
                    event=event,
                    contact=contact,
                    route=route,
                    language=language,
                    group=group,
                    estimate=estimate,
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
        group: Group | None = None,
        estimate: Estimate | None = None,
    ) -> Message:
        """The `Message` `sink` is handed for `delivery`, every declared part rendered (a
        grouped message: `group` holds its events, `event` is the first). A grouped route's
        `NewDelivery` (``kabarin simulate``, ``routes test``) renders as a group of its event."""
        if group is None and isinstance(delivery, NewDelivery) and delivery.group is not None:
            group = Group(key=delivery.group.key, events=[event])
        language = message_language(sink, contact)
        parts = self.render_parts(
            self.sources(decode_parts(delivery.template), sink, language),
            event=event,
            contact=contact,
            route=delivery.route,
            language=language,
            group=group,
            estimate=estimate,
        )
        return Message(
            delivery_id=delivery.id,
            route=delivery.route,
            event=event,
            contact=contact,
            parts=parts,
            attempt=attempt,
            group=group,
        )


def mentions_estimate(sources: Mapping[str, str]) -> bool:
    """Whether a message's templates may read ``estimate`` (only then is it looked up)."""
    return any("estimate" in source for source in sources.values())


def message_language(sink: Sink, contact: Contact | None) -> str:
    """The language a message is written in: the customer's own (``contact.language``, as the
    shop registered it) when the sink writes to the customer, else the sink's ``language``."""
    own = contact.language if contact is not None else None
    if own in STATUS_LABELS and sink.writes_to_customer:
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
