"""Writing Markdown from the code's own words: docstrings and help texts as running text, and
table cells that cannot break their table."""

from __future__ import annotations

import re

__all__ = ["cell", "code", "prose", "sentence"]

_RST_CODE = re.compile(r"``(.+?)``", re.S)
_CODE_SPAN = re.compile(r"(`[^`]*`)")
_SPECIAL = re.compile(r"([\\*_\[\]])")


def prose(text: str, *, in_table: bool = False) -> str:
    """A docstring or help text as Markdown: ``literal`` (as the code base writes it) becomes
    a code span; outside code spans, characters Markdown would read as markup are escaped (a
    ``<name>`` in a description is text, not an HTML tag)."""
    text = _RST_CODE.sub(lambda m: "`" + m.group(1).replace("`", "") + "`", text)
    parts = _CODE_SPAN.split(text)
    for i in range(0, len(parts), 2):  # the even parts are outside code spans
        escaped = _SPECIAL.sub(r"\\\1", parts[i])
        escaped = escaped.replace("<", "&lt;").replace(">", "&gt;")
        parts[i] = escaped.replace("|", "\\|") if in_table else escaped
    return "".join(parts)


def cell(text: str) -> str:
    """`prose` fit for one table cell: one line, no ``|`` that would end the cell (one in a code
    span does not)."""
    return " ".join(prose(text, in_table=True).split()) or " "


def code(text: str) -> str:
    """`text` as an inline code span, whatever backticks it holds."""
    fence = "``" if "`" in text else "`"
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def sentence(text: str) -> str:
    """A help text or summary as a sentence: capital first, full stop last."""
    text = text.strip()
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?", ")")) else ".")
