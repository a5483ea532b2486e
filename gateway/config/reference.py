"""The reference of every configuration key, read from the schema itself.

Each key is a field of a struct in `gateway.config.schema` or of a sink kind's config struct
(`sinks.registry`), and its description is the docstring written under the field, as everywhere
in this code base. `describe_config` walks the whole tree, so a reference page is generated
rather than written, and cannot miss a key or drift from the code; a test fails when a key has
no description.
"""

from __future__ import annotations

import ast
import enum
import functools
import inspect
import itertools
import textwrap
import types
import typing
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec

from gateway.config.convert import struct_of
from gateway.config.schema import (
    SECTIONS,
    Config,
    DigestConfig,
    RouteConfig,
    ShopConfig,
    SourceConfig,
)
from gateway.units import Duration, RateLimit, Window
from sinks.base import Sink, SinkConfig
from sinks.registry import load_sink_types

__all__ = ["KeyDoc", "describe_config", "field_docs"]


class KeyDoc(msgspec.Struct, frozen=True, kw_only=True):
    """One key of the file, as a reference page shows it."""

    key: str
    """Dotted path as written in the file: ``receiver.token``, ``sinks.<name>.url``,
    ``routes[].match`` (``<name>`` stands for any name, ``[]`` for any item of a list)."""
    type: str
    """The value in the file's words: ``string``, ``duration``, ``list of string``, ``block``
    (a mapping of the keys below it), ``stdout | stderr`` (one of those words), ..."""
    required: bool
    """The key must be written (in a block that is there: a section, a sink, a route)."""
    default: str | None
    """The value when left out, as YAML would write it; ``None`` when required, and for a block
    (its keys have their own defaults)."""
    description: str
    """The docstring under the field ("" when it has none)."""
    sink_type: str | None = None
    """For a key of one sink kind only: that ``type``. ``None`` for every other key (those of
    every sink block included)."""


def describe_config(sink_types: Mapping[str, type[Sink]] | None = None) -> list[KeyDoc]:
    """Every key of the file, in the file's usual order: the sections, ``shops``, ``sinks``
    (the keys of every sink block, then each kind's own), ``routes``, then ``digests``. `sink_types`
    defaults to the installed kinds (`load_sink_types`)."""
    kinds = load_sink_types() if sink_types is None else sink_types
    config_docs = field_docs(Config)
    out: list[KeyDoc] = []
    for name, section in SECTIONS.items():
        fields = msgspec.structs.fields(section)
        out.append(
            KeyDoc(
                key=name,
                type="block",
                # A section with a required key must be written; the others default whole.
                required=any(f.required for f in fields),
                default=None,
                description=config_docs.get(name) or _class_doc(section),
            )
        )
        out.extend(_keys(section, name))
    out.append(
        KeyDoc(
            key="shops",
            type="mapping of id → block",
            required=False,
            default="{}",
            description=config_docs.get("shops", ""),
        )
    )
    out.extend(_keys(ShopConfig, "shops.<id>"))
    out.append(
        KeyDoc(
            key="sinks",
            type="mapping of name → block",
            required=False,
            default="{}",
            description=config_docs.get("sinks", ""),
        )
    )
    out.append(
        KeyDoc(
            key="sinks.<name>.type",
            type=" | ".join(kinds),
            required=True,
            default=None,
            description="The sink's kind: which of the keys below apply, and what it sends to. "
            "Kinds come from the ``kabarin.sinks`` entry points (built-in or installed "
            "plugins).",
        )
    )
    out.extend(_keys(SinkConfig, "sinks.<name>"))
    common = {f.name: f for f in msgspec.structs.fields(SinkConfig)}
    for kind, sink in kinds.items():
        struct = sink.config_type
        out.append(
            KeyDoc(
                key="sinks.<name>",
                type="block",
                required=False,
                default=None,
                description=_class_doc(struct),
                sink_type=kind,
            )
        )
        # Only what the kind adds, or changes the default of: the rest is listed above.
        own = [
            f
            for f in msgspec.structs.fields(struct)
            if f.name not in common or _default(f) != _default(common[f.name])
        ]
        out.extend(_keys(struct, "sinks.<name>", own, sink_type=kind))
    out.append(
        KeyDoc(
            key="sources",
            type="mapping of name → block",
            required=False,
            default="{}",
            description=config_docs.get("sources", ""),
        )
    )
    out.extend(_keys(SourceConfig, "sources.<name>"))
    out.append(
        KeyDoc(
            key="routes",
            type="list of block",
            required=False,
            default="[]",
            description=config_docs.get("routes", ""),
        )
    )
    out.extend(_keys(RouteConfig, "routes[]"))
    out.append(
        KeyDoc(
            key="digests",
            type="mapping of name → block",
            required=False,
            default="{}",
            description=config_docs.get("digests", ""),
        )
    )
    out.extend(_keys(DigestConfig, "digests.<name>"))
    return out


def _keys(
    struct: type[msgspec.Struct],
    prefix: str,
    fields: list[msgspec.structs.FieldInfo] | None = None,
    *,
    sink_type: str | None = None,
) -> Iterator[KeyDoc]:
    docs = field_docs(struct)
    for field in msgspec.structs.fields(struct) if fields is None else fields:
        key = f"{prefix}.{field.encode_name}"
        inner = struct_of(field.type)
        item = _list_item_struct(field.type)
        yield KeyDoc(
            key=key,
            type=_type_text(field.type),
            required=field.required,
            default=None if field.required or inner is not None else _default(field),
            description=docs.get(field.name) or (_class_doc(inner) if inner else ""),
            sink_type=sink_type,
        )
        if inner is not None:
            yield from _keys(inner, key, sink_type=sink_type)
        elif item is not None:  # a list of blocks (``admin.tokens``): the keys of each
            yield from _keys(item, f"{key}[]", sink_type=sink_type)


def _list_item_struct(type_: Any) -> type[msgspec.Struct] | None:
    """The struct a list field holds (``list[X]``), if any."""
    if typing.get_origin(type_) is list:
        (member,) = typing.get_args(type_)
        return struct_of(member)
    return None


@functools.cache
def field_docs(struct: type) -> dict[str, str]:
    """Field name → the docstring written under it (as running text), from `struct` and its
    bases (the nearest class that has one wins). A class whose source cannot be read (a plugin
    installed without it) has none."""
    docs: dict[str, str] = {}
    for klass in reversed(struct.__mro__):
        if klass is object or klass.__module__ == "msgspec":
            continue
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        body = ast.parse(source).body
        if not body or not isinstance(body[0], ast.ClassDef):
            continue
        statements = body[0].body
        for statement, after in itertools.pairwise(statements):
            if (
                isinstance(statement, ast.AnnAssign)
                and isinstance(statement.target, ast.Name)
                and isinstance(after, ast.Expr)
                and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)
            ):
                docs[statement.target.id] = _text(after.value.value)
    return docs


def _class_doc(struct: type) -> str:
    """The docstring of `struct`'s own body, not one inherited from a base."""
    doc = struct.__dict__.get("__doc__")
    return _text(doc) if isinstance(doc, str) else ""


def _text(docstring: str) -> str:
    """A docstring as running text: its lines joined, paragraphs kept apart by a blank line."""
    paragraphs = inspect.cleandoc(docstring).split("\n\n")
    return "\n\n".join(" ".join(p.split()) for p in paragraphs)


_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    Any: "any",
    type(None): "null",
    Window: "duration or off",
    Duration: "duration",
    RateLimit: "rate",
}


def _type_text(type_: Any) -> str:
    """A field's type in the file's words: ``list of duration``, ``string | null``."""
    if type_ in _NAMES:
        return _NAMES[type_]
    origin, args = typing.get_origin(type_), typing.get_args(type_)
    if origin is typing.Literal:
        return " | ".join(str(a) for a in args)
    if isinstance(type_, types.UnionType) or origin is typing.Union:
        return " | ".join(_type_text(a) for a in args)
    if origin is list:
        return f"list of {_inner_text(args[0])}"
    if origin is dict:
        return f"mapping of {_inner_text(args[0])} → {_inner_text(args[1])}"
    if isinstance(type_, type) and issubclass(type_, enum.Enum):
        return type_.__name__.lower()
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return "block"
    return getattr(type_, "__name__", str(type_))


def _inner_text(type_: Any) -> str:
    """A container's member type, in brackets when it is a choice: ``list of (string | null)``."""
    text = _type_text(type_)
    return f"({text})" if " | " in text else text


def _default(field: msgspec.structs.FieldInfo) -> str | None:
    if field.default is not msgspec.NODEFAULT:
        return _yaml_text(field.default)
    if field.default_factory is not msgspec.NODEFAULT:
        return _yaml_text(field.default_factory())
    return None


_UNITS = (("d", 86400.0), ("h", 3600.0), ("m", 60.0), ("s", 1.0))


def _yaml_text(value: Any) -> str | None:
    """A default as the file would write it (``5m``, ``[5s, 5m]``, ``null``); ``None`` for a
    block, whose keys have their own."""
    if isinstance(value, msgspec.Struct):
        return None
    if isinstance(value, Window) and value.off:
        return "off"
    if isinstance(value, Duration):
        for unit, seconds in _UNITS:
            if value >= seconds and (value / seconds).is_integer():
                return f"{value / seconds:g}{unit}"
        return f"{value * 1000:g}ms" if value < 1 else f"{value:g}s"
    if isinstance(value, RateLimit):
        per = next((u for u, s in _UNITS if s == value.per), None)
        return f"{value.count:g}/{per}" if per else f"{value.count:g}/{value.per:g}s"
    if isinstance(value, enum.Enum):
        return str(value.value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value if value else '""'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(str(_yaml_text(v)) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml_text(v)}" for k, v in value.items()) + "}"
    return f"{value:g}" if isinstance(value, float) else str(value)
