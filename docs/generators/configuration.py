"""``reference/configuration.md``: every key of the configuration file, from
`gateway.config.reference.describe_config` (the schema's structs and their field docstrings)."""

from __future__ import annotations

from collections.abc import Iterator

from gateway.config.reference import KeyDoc, describe_config
from generators.markdown import cell, code, prose

__all__ = ["configuration_page"]

_INTRO = """\
# Configuration reference

Every key of the configuration file (`config.yaml`; see `config.example.yaml` for a commented
one), written from the schema that reads it: a key is listed here because Kabarin reads it, with
the description written beside it in the code. `kabarin check` tells what is wrong with a file.

A dotted key is a key inside a block: `receiver.token` is `token:` under `receiver:`.
`sinks.<name>` stands for any sink name, `routes[]` for any item of the `routes` list.
Durations are written `30s`, `5m`, `2h` or `1d`; rates `1/s` or `30/m`. A value may name an
environment variable: `${PUSH_TOKEN}`. Under `sinks`, each kind's table lists only the keys it
adds to those of every sink block, or whose default it changes.
"""


def configuration_page() -> str:
    """The page's Markdown."""
    return _INTRO + "".join(_sections(describe_config()))


def _sections(keys: list[KeyDoc]) -> Iterator[str]:
    rows: list[KeyDoc] = []
    for key in keys:
        if "." not in key.key and "[" not in key.key:  # a top-level key: its own section
            yield from _table(rows)
            rows = []
            yield f"\n## `{key.key}`\n\n{_what(key)}\n\n{prose(key.description)}\n"
        elif key.sink_type is not None and key.key == "sinks.<name>":  # one sink kind's block
            yield from _table(rows)
            rows = []
            yield f"\n### `type: {key.sink_type}`\n\n{prose(key.description)}\n"
        else:
            rows.append(key)
    yield from _table(rows)


def _table(rows: list[KeyDoc]) -> Iterator[str]:
    if not rows:
        return
    yield "\n| Key | Type | Default | Description |\n| --- | --- | --- | --- |\n"
    for key in rows:
        default = "required" if key.required else code(key.default) if key.default else ""
        yield f"| {code(key.key)} | {cell(key.type)} | {default} | {cell(key.description)} |\n"


def _what(key: KeyDoc) -> str:
    """A section's line under its heading: its type, and whether it must be written."""
    must = "required" if key.required else "optional"
    default = f", default `{key.default}`" if key.default else ""
    return f"*{prose(key.type)}, {must}{default}*"
