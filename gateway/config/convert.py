"""The one-pass conversion of a YAML block into its struct, every bad key reported.

msgspec stops at the first error of a block; `convert` goes on key by key, so one run of
``kabarin check`` names every problem of the file, each as ``path (line N): message``.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

import msgspec

from gateway.config.lines import LineIndex
from gateway.units import FieldError, dec_hook

__all__ = ["INVALID", "UNKNOWN_KEY", "convert", "struct_of"]

INVALID: Any = object()
"""What `convert` returns for a block with problems (they are in its ``problems`` list)."""
UNKNOWN_KEY = "unknown key (check its spelling and indentation)"


def convert(
    value: Any,
    type_: Any,
    path: tuple[str | int, ...],
    lines: LineIndex,
    problems: list[str],
    salvage: dict[str, Any] | None = None,
) -> Any:
    """`msgspec.convert`, reporting every bad key of a block rather than only the first (msgspec
    stops at the first). Returns `INVALID` when anything was wrong; ``salvage`` then receives
    the fields that were valid, by attribute name."""
    try:
        return msgspec.convert(value, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        error = exc
    struct = struct_of(type_) if isinstance(value, dict) else None
    if struct is None:
        found = len(problems)
        if isinstance(value, dict) and typing.get_origin(type_) is dict:
            _convert_items(value, typing.get_args(type_), path, lines, problems)
        if len(problems) == found:
            problems.append(_describe(error, path, lines))
        return INVALID
    fields = {f.encode_name: f for f in msgspec.structs.fields(struct)}
    tag_field = struct.__struct_config__.tag_field
    bad: set[Any] = set()
    for key, item in value.items():
        field = fields.get(key)
        if key == tag_field and tag_field is not None:
            continue
        if field is None:
            problems.append(f"{lines.describe((*path, str(key)))}: {UNKNOWN_KEY}")
            bad.add(key)
            continue
        got = convert(item, field.type, (*path, key), lines, problems)
        if got is INVALID:
            bad.add(key)
        elif salvage is not None:
            salvage[field.name] = got
    missing = [name for name, f in fields.items() if f.required and name not in value]
    for name in missing:
        problems.append(f"{lines.describe(path)}: missing required key `{name}`")
    if missing or any(fields[k].required for k in bad if k in fields):
        return INVALID
    if not bad:
        problems.append(_describe(error, path, lines))  # the block's own checks failed
        return INVALID
    try:  # the block's own checks (`__post_init__`) may still find more in the valid keys
        msgspec.convert({k: v for k, v in value.items() if k not in bad}, type_, dec_hook=dec_hook)
    except msgspec.ValidationError as exc:
        if isinstance(exc.__cause__, ValueError):
            problems.append(_describe(exc, path, lines))
    return INVALID


def _convert_items(
    value: dict[Any, Any],
    types_: tuple[Any, ...],
    path: tuple[str | int, ...],
    lines: LineIndex,
    problems: list[str],
) -> None:
    """Report each bad key and value of a mapping at its own key: msgspec names none
    (``$.alert_after[...]``)."""
    key_type, value_type = types_
    for key, item in value.items():
        try:
            msgspec.convert(key, key_type)
        except msgspec.ValidationError as exc:
            problems.append(f"{lines.describe((*path, str(key)))}: {_without_path(str(exc))}")
            continue
        convert(item, value_type, (*path, str(key)), lines, problems)


def _without_path(message: str) -> str:
    return message.split(" - at `", 1)[0]


def struct_of(type_: Any) -> type[msgspec.Struct] | None:
    """The struct a field holds (``X`` or ``X | None``), if any."""
    if isinstance(type_, type) and issubclass(type_, msgspec.Struct):
        return type_
    members = [t for t in getattr(type_, "__args__", ()) if t is not type(None)]
    if isinstance(type_, types.UnionType) and len(members) == 1:
        return struct_of(members[0])
    return None


_MSGSPEC_PATH = re.compile(r" - at `\$(.*)`$")
_UNKNOWN_FIELD = re.compile(r"^Object contains unknown field `(.+)`$")
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _describe(exc: msgspec.ValidationError, prefix: tuple[str | int, ...], lines: LineIndex) -> str:
    """Turn msgspec's ``msg - at `$.a.b[0]``` into ``a.b[0] (line N): msg``."""
    message = str(exc)
    path = list(prefix)
    if m := _MSGSPEC_PATH.search(message):
        message = message[: m.start()]
        for key, index in _PATH_PART.findall(m.group(1).replace("[...]", "")):
            path.append(int(index) if index else key)
    if m := _UNKNOWN_FIELD.match(message):
        path.append(m.group(1))
        message = UNKNOWN_KEY
    if isinstance(exc.__cause__, FieldError):
        path.extend(exc.__cause__.key)
    return f"{lines.describe(tuple(path))}: {message}"
