"""The configuration reference: every key of the file, with its type, default and description,
read from the schema (`gateway.config.reference`), the sink kinds' blocks included."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar

import msgspec
import pytest
import yaml

from gateway.config.reference import KeyDoc, describe_config, field_docs
from gateway.config.schema import SECTIONS
from sinks.base import SinkConfig
from sinks.registry import load_sink_types

ROOT = Path(__file__).resolve().parent.parent


def by_key(docs: list[KeyDoc]) -> dict[tuple[str, str | None], KeyDoc]:
    return {(d.key, d.sink_type): d for d in docs}


def test_every_key_has_a_description() -> None:
    docs = describe_config()
    missing = [
        f"{d.key} ({d.sink_type})" if d.sink_type else d.key
        for d in docs
        if not d.description.strip()
    ]
    assert missing == [], "write a docstring under each of these fields"


def test_the_reference_covers_every_section_sink_kind_and_route_key() -> None:
    docs = describe_config()
    keys = by_key(docs)
    assert len(keys) == len(docs), "a key is listed twice"
    for name, section in SECTIONS.items():
        assert (name, None) in keys
        for field in msgspec.structs.fields(section):
            assert (f"{name}.{field.encode_name}", None) in keys
    assert [d.key for d in docs[:2]] == ["receiver", "receiver.token"]
    # nested blocks, with their own keys, however deep
    assert ("contacts.lookup.fields.phone", None) in keys
    assert ("sinks.<name>.circuit_breaker.cooldown", None) in keys
    assert ("sinks.<name>.quiet_hours.start", None) in keys
    # every installed kind, with the keys it adds under their YAML names
    kinds = load_sink_types()
    assert {d.sink_type for d in docs if d.key == "sinks.<name>"} == set(kinds)
    assert keys["sinks.<name>.type", None].type == " | ".join(kinds)
    assert ("sinks.<name>.from", "email") in keys
    assert ("sinks.<name>.success.field", "sms") in keys
    assert ("sinks.<name>.sender", "email") not in keys
    # a kind lists a common key only when it changes its default
    assert keys["sinks.<name>.rate_limit", "slack"].default == "1/s"
    assert ("sinks.<name>.concurrency", "slack") not in keys
    assert {d.key for d in docs if d.key.startswith("routes[].")} == {
        f"routes[].{name}" for name in ("name", "sinks", "match", "when", "template", "stop")
    } | {"routes[].fallback", "routes[].shop"} | {
        f"routes[].group{key}" for key in ("", ".by", ".wait", ".interval")
    }


@pytest.mark.parametrize(
    ("key", "type_", "required", "default"),
    [
        ("receiver", "block", False, None),
        ("store", "block", False, None),
        ("receiver.token", "string | null", False, "null"),
        ("shops", "mapping of id → block", False, "{}"),
        ("shops.<id>.token", "string", True, None),
        ("shops.<id>.timezone", "string | null", False, "null"),
        ("admin.tokens[].shops", "list of string", True, None),
        ("receiver.read_timeout", "duration", False, "10s"),
        ("receiver.max_body_bytes", "integer", False, "2097152"),
        ("admin.token", "string | null", False, "null"),
        ("admin.secure_cookie", "auto | always", False, "auto"),
        ("retry.schedule", "list of duration", False, "[5s, 5m, 30m, 2h, 5h, 10h, 10h]"),
        ("retry.jitter", "number", False, "0.2"),
        ("dispatcher.lease", "duration", False, "1m"),
        ("retention.pushes", "duration or off", False, "90d"),
        ("pull.enabled", "boolean", False, "false"),
        ("pull.alert_after", "mapping of status → duration", False, "{}"),
        ("contacts.lookup", "block | null", False, None),
        ("contacts.lookup.url", "string", True, None),
        ("sinks.<name>.rate_limit", "rate | null", False, "null"),
        ("routes[].name", "string", True, None),
        (
            "routes[].template",
            "mapping of string → (string | mapping of string → (string | block))",
            False,
            "{}",
        ),
    ],
)
def test_types_and_defaults_read_as_the_file_writes_them(
    key: str, type_: str, required: bool, default: str | None
) -> None:
    doc = by_key(describe_config())[key, None]
    assert (doc.type, doc.required, doc.default) == (type_, required, default)


def test_a_description_is_the_docstring_under_the_field_as_running_text() -> None:
    keys = by_key(describe_config())
    assert keys["receiver.token", None].description.startswith(
        "KiriminAja's API key: KiriminAja sends it as the push's bearer token."
    )
    # wrapped over two lines in the source, one line here
    assert keys["store.cache_mb", None].description.startswith(
        "SQLite's page cache per connection, in MiB (a server holds four: two writers, two"
        " readers);"
    )
    # a block without a docstring of its own is described by its struct's
    assert keys["sinks.<name>.circuit_breaker", None].description == (
        "Stop calling a sink that keeps failing, and probe it again later."
    )


class PagerConfig(SinkConfig, tag="pager", kw_only=True, frozen=True, forbid_unknown_fields=True):
    """A ``type: pager`` block (a plugin's)."""

    number: str
    """Who is paged."""
    urgency: int = 3


class PagerSink:
    config_type: ClassVar[type[SinkConfig]] = PagerConfig


def test_a_key_without_a_docstring_is_found() -> None:
    kinds: dict[str, Any] = {"pager": PagerSink}
    keys = by_key(describe_config(kinds))
    assert keys["sinks.<name>.number", "pager"].description == "Who is paged."
    assert keys["sinks.<name>.urgency", "pager"].description == ""
    assert keys["sinks.<name>.type", None].type == "pager"
    assert field_docs(PagerConfig)["concurrency"].startswith("How many sends")  # inherited


def test_every_key_of_the_example_and_the_readme_table_is_in_the_reference() -> None:
    keys = by_key(describe_config())
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    seen: list[str] = []

    def walk(block: dict[str, Any], prefix: str, kind: str | None) -> None:
        for name, value in block.items():
            key = f"{prefix}.{name}" if prefix else str(name)
            doc = keys.get((key, None)) or keys.get((key, kind))
            assert doc is not None, f"{key} ({kind}) is not in the reference"
            seen.append(key)
            if doc.type.startswith("block") and isinstance(value, dict):
                walk(value, key, kind)

    walk({k: v for k, v in example.items() if k not in ("sinks", "routes")}, "", None)
    for block in example["sinks"].values():
        walk(block, "sinks.<name>", block["type"])
    for route in example["routes"]:
        walk(route, "routes[]", None)
    assert "sinks.<name>.language" in seen and "routes[].match" in seen

    page = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    table = page.split("# Configuration\n", 1)[1].split("\n## ", 1)[0]
    named = re.findall(
        r"`([a-z_]+(?:\.[a-z_]+)*)`",
        "\n".join(line.split(" | ", 1)[0] for line in table.splitlines() if line.startswith("| `")),
    )
    assert len(named) > 40
    assert [k for k in named if (k, None) not in keys] == []
