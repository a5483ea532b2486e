"""The sink registry: every kind through the ``kabarin.sinks`` entry points, loaded once, and
sinks built with the dependencies they ask for."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path
from typing import Any, ClassVar, Self

import httpx
import msgspec
import pytest

from gateway.cli import main
from gateway.config import parse_config
from gateway.delivery.model import Ordering
from gateway.events import Contact
from gateway.templating import message_language, minimal_events, sample_events
from sinks import registry
from sinks.base import (
    Checkable,
    CheckSamples,
    Delivered,
    Message,
    SendResult,
    SinkConfig,
    SinkDeps,
    Skipped,
)
from sinks.console import ConsoleSink
from sinks.email import EmailSink
from sinks.registry import build_sinks, load_sink_types
from sinks.slack import SlackSink
from sinks.sms import SmsSink
from sinks.webhook import WebhookSink
from sinks.whatsapp import WhatsAppSink

from .test_sinks_shared import make_event, make_message

BUILT_IN = {
    EntryPoint("console", "sinks.console:ConsoleSink", "kabarin.sinks"),
    EntryPoint("slack", "sinks.slack:SlackSink", "kabarin.sinks"),
    EntryPoint("webhook", "sinks.webhook:WebhookSink", "kabarin.sinks"),
}


class PagerConfig(SinkConfig, tag="pager", kw_only=True, frozen=True, forbid_unknown_fields=True):
    number: str


class PagerSink:
    """A third-party kind: pages the order's customer, so it asks for the contacts reader."""

    config_type: ClassVar[type[SinkConfig]] = PagerConfig
    default_ordering: ClassVar[Ordering] = "latest"
    parts: ClassVar[tuple[str, ...]] = ("text",)
    default_templates: ClassVar[dict[str, dict[str, str]]] = {
        "text": {"id": "{{ event.order_id }}", "en": "{{ event.order_id }}"}
    }

    def __init__(self, name: str, config: PagerConfig, deps: SinkDeps) -> None:
        self.name = name
        self.config = config
        self.deps = deps

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        return cls(name, config, deps)

    async def send(self, message: Message) -> SendResult:
        assert self.deps.contacts is not None
        contact = await self.deps.contacts.get_contact(message.event.order_id)
        if contact is None or not contact.phone:
            return Skipped(reason="no phone number for the order")
        return Delivered()

    def preview(self, message: Message) -> str:
        return message.text

    def secrets(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        pass


class WrongTagSink(PagerSink):
    """Registered under a name its config struct's tag does not carry."""


class OtherConsoleConfig(
    SinkConfig, tag="console", kw_only=True, frozen=True, forbid_unknown_fields=True
):
    pass


class OtherConsoleSink(PagerSink):
    """A plugin that also calls itself ``console``."""

    config_type: ClassVar[type[SinkConfig]] = OtherConsoleConfig


class LegacyConfig(SinkConfig, tag="legacy", kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class LegacySink:
    """A plugin written before sinks said whether they write to customers. Not a subclass of
    PagerSink, which the other tests load: the registry gives the attribute to the class it
    loads, and so to its subclasses."""

    config_type: ClassVar[type[SinkConfig]] = LegacyConfig
    default_ordering: ClassVar[Ordering] = "latest"
    parts: ClassVar[tuple[str, ...]] = ("text",)
    default_templates: ClassVar[dict[str, dict[str, str]]] = {"text": {"id": "{{ route }}"}}

    def __init__(self, name: str, config: LegacyConfig) -> None:
        self.name = name
        self.config = config

    @classmethod
    def build(cls, name: str, config: Any, deps: SinkDeps) -> Self:
        return cls(name, config)

    async def send(self, message: Message) -> SendResult:
        return Delivered()

    def preview(self, message: Message) -> str:
        return message.text

    def secrets(self) -> list[str]:
        return []

    async def aclose(self) -> None:
        pass


class TallyConfig(SinkConfig, tag="tally", kw_only=True, frozen=True, forbid_unknown_fields=True):
    pass


class TallySink(PagerSink):
    """A plugin with its own `kabarin check`: counts the messages it is handed."""

    config_type: ClassVar[type[SinkConfig]] = TallyConfig
    writes_to_customer: ClassVar[bool] = True

    def check(self, samples: CheckSamples) -> list[str]:
        texts = sorted({m.text for m in samples.messages})
        return [f"{self.name} ({samples.route}): {len(samples.messages)} messages, {texts}"]


class FakeEntryPoint(EntryPoint):
    """An entry point that loads a given object, as a plugin package's would."""

    def load(self) -> Any:
        if self.value == "broken:Sink":
            raise ImportError("No module named 'broken'")
        return {
            "tests:PagerSink": PagerSink,
            "tests:WrongTagSink": WrongTagSink,
            "tests:OtherConsoleSink": OtherConsoleSink,
            "tests:LegacySink": LegacySink,
            "tests:TallySink": TallySink,
        }[self.value]


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[EntryPoint]]:
    """The entry points `load_sink_types` finds: the built-in ones plus what a test adds."""
    eps: list[EntryPoint] = sorted(BUILT_IN, key=lambda ep: ep.name)
    calls: list[str] = []

    def entry_points(*, group: str) -> list[EntryPoint]:
        calls.append(group)
        return [ep for ep in eps if ep.group == group]

    monkeypatch.setattr(registry, "entry_points", entry_points)
    load_sink_types.cache_clear()
    yield eps
    load_sink_types.cache_clear()  # the next test sees the real installation again


def test_the_built_in_kinds_come_from_the_installed_entry_points() -> None:
    load_sink_types.cache_clear()
    kinds = load_sink_types()
    assert kinds == {
        "console": ConsoleSink,
        "email": EmailSink,
        "slack": SlackSink,
        "sms": SmsSink,
        "webhook": WebhookSink,
        "whatsapp": WhatsAppSink,
    }


def test_a_third_party_kind_is_loaded_like_a_built_in_one(installed: list[EntryPoint]) -> None:
    installed.append(FakeEntryPoint("pager", "tests:PagerSink", "kabarin.sinks"))
    # PagerSink predates `writes_to_customer`: a `Sink` only once the registry gave it one.
    assert load_sink_types()["pager"] is PagerSink  # type: ignore[comparison-overlap]
    assert set(load_sink_types()) == {"console", "pager", "slack", "webhook"}
    config = parse_config(
        "receiver: {token: t}\nsinks:\n  beeper: {type: pager, number: '0812'}\n"
        "routes:\n  - name: all\n    sinks: [beeper]\n",
        env={},
    )
    assert isinstance(config.sinks["beeper"], PagerConfig)


def test_kinds_are_looked_up_once_per_process(
    installed: list[EntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = load_sink_types()
    installed.append(FakeEntryPoint("pager", "tests:PagerSink", "kabarin.sinks"))
    assert load_sink_types() is first and "pager" not in first


def test_a_plugin_cannot_replace_a_built_in_kind(
    installed: list[EntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
    installed.insert(0, FakeEntryPoint("console", "tests:OtherConsoleSink", "kabarin.sinks"))
    with caplog.at_level(logging.WARNING, logger="kabarin.sinks"):
        assert load_sink_types()["console"] is ConsoleSink
    assert (
        "two sink kinds named 'console': using sinks.console:ConsoleSink, "
        "ignoring tests:OtherConsoleSink"
    ) in caplog.text


def test_a_broken_or_mislabelled_plugin_is_logged_and_left_out(
    installed: list[EntryPoint], caplog: pytest.LogCaptureFixture
) -> None:
    installed.append(FakeEntryPoint("broken", "broken:Sink", "kabarin.sinks"))
    installed.append(FakeEntryPoint("beeper", "tests:WrongTagSink", "kabarin.sinks"))
    with caplog.at_level(logging.ERROR, logger="kabarin.sinks"):
        kinds = load_sink_types()
    assert set(kinds) == {"console", "slack", "webhook"}
    assert "sink kind 'broken' (broken:Sink) cannot be loaded" in caplog.text
    assert "sink kind 'beeper' (tests:WrongTagSink) ignored" in caplog.text


class Contacts:
    """The contacts reader a sink may ask for (the store is the real one)."""

    def __init__(self, *contacts: Contact) -> None:
        self.contacts = {c.order_id: c for c in contacts}

    async def get_contact(self, order_id: str) -> Contact | None:
        return self.contacts.get(order_id)


async def test_build_sinks_hands_every_sink_the_same_deps(installed: list[EntryPoint]) -> None:
    installed.append(FakeEntryPoint("pager", "tests:PagerSink", "kabarin.sinks"))
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, text="ok")

    contacts = Contacts(Contact(order_id="OID-1001", phone="+6281234567890"))
    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as client:
        deps = SinkDeps(http=client, contacts=contacts)
        configs = {
            "ops": msgspec.convert(
                {"type": "slack", "webhook_url": "https://hooks.slack.com/services/T0/B0/xyz"},
                load_sink_types()["slack"].config_type,
            ),
            "beeper": PagerConfig(number="0812"),
        }
        sinks = build_sinks(configs, deps)
        assert isinstance(sinks["beeper"], PagerSink) and sinks["beeper"].deps is deps

        assert await sinks["ops"].send(make_message(text="hi")) == Delivered(status_code=200)
        assert [str(r.url) for r in seen] == ["https://hooks.slack.com/services/T0/B0/xyz"]
        assert await sinks["beeper"].send(make_message()) == Delivered()
        unknown = make_message(event=make_event(order_id="OID-404"))
        assert await sinks["beeper"].send(unknown) == Skipped(
            reason="no phone number for the order"
        )


def test_a_plugin_that_predates_writes_to_customer_writes_to_machines(
    installed: list[EntryPoint], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As the plugin ships it, whichever test loaded it first in this process.
    monkeypatch.delattr(LegacySink, "writes_to_customer", raising=False)
    installed.append(FakeEntryPoint("legacy", "tests:LegacySink", "kabarin.sinks"))
    with caplog.at_level(logging.INFO, logger="kabarin.sinks"):
        kind = load_sink_types()["legacy"]
    assert kind is LegacySink  # type: ignore[comparison-overlap]
    assert "sink kind 'legacy' (tests:LegacySink) does not say writes_to_customer" in caplog.text
    sink = build_sinks({"pager": LegacyConfig()}, SinkDeps())["pager"]
    assert sink.writes_to_customer is False
    # So, as before the attribute existed, it writes in its own language, not the customer's.
    english = Contact(order_id="OID-1001", language="en")
    assert message_language(sink, english) == "id"
    assert message_language(TallySink.build("t", TallyConfig(), SinkDeps()), english) == "en"
    assert not isinstance(sink, Checkable)


CHECKED = """
receiver: {token: t0ken}
sinks:
  beeper: {type: tally}
  old: {type: legacy}
routes:
  - name: all
    sinks: [beeper, old]
"""


def test_kabarin_check_prints_what_a_sinks_own_check_says(
    installed: list[EntryPoint], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    installed.append(FakeEntryPoint("tally", "tests:TallySink", "kabarin.sinks"))
    installed.append(FakeEntryPoint("legacy", "tests:LegacySink", "kabarin.sinks"))
    config = tmp_path / "config.yaml"
    config.write_text(CHECKED)
    assert main(["check", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    # Every sample event the route lets through, with a contact and without; a sink without
    # `check` (old) adds no line.
    samples = len(sample_events()) + len(minimal_events())
    texts = sorted(
        {e.order_id for e in sample_events()} | {e.order_id for e, _ in minimal_events()}
    )
    assert f"  tally     beeper (all): {2 * samples} messages, {texts}\n" in out
    assert [line for line in out.splitlines() if "legacy" in line or "old (" in line] == [
        "  sinks     2: beeper (tally), old (legacy)"
    ]
