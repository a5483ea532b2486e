"""``reference/cli.md``: every ``kabarin`` command with its arguments, walked from the argument
parser the ``kabarin`` entry point uses (`gateway.cli.parser`)."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from gateway.cli import parser
from gateway.cli.arguments import Subparsers
from generators.markdown import cell, code, prose, sentence

__all__ = ["cli_page"]

_WIDTH = 92
"""Usage lines are wrapped at this width whatever terminal builds the site."""

_INTRO = """\
# Command line reference

Every `kabarin` command, written from the argument parser `kabarin` itself uses: what
`kabarin COMMAND --help` says, on one page. A command that reads the configuration takes
`--config` (default: `$KABARIN_CONFIG`, else `./config.yaml`) and `--log-level`.
"""


def cli_page() -> str:
    """The page's Markdown."""
    top = parser()
    head = f"{_INTRO}\n```text\n{_usage(top)}```\n\n{_arguments(top)}"
    return head + "".join(_commands(top, level=2))


def _commands(p: argparse.ArgumentParser, level: int) -> Iterator[str]:
    for sub in _subcommands(p):
        helps = {a.dest: a.help or "" for a in sub._get_subactions()}
        for name, child in sub.choices.items():
            yield f"\n{'#' * level} `{child.prog}`\n\n"
            about = child.description or helps.get(name, "")
            if about:
                yield prose(sentence(about)) + "\n\n"
            yield f"```text\n{_usage(child)}```\n\n"
            yield _arguments(child)
            yield from _commands(child, level + 1)


def _subcommands(p: argparse.ArgumentParser) -> list[Subparsers]:
    # argparse offers no public way to walk a parser: its actions are the only record.
    return [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]


def _usage(p: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(p.prog, width=_WIDTH)
    formatter.add_usage(p.usage, p._actions, p._mutually_exclusive_groups)
    return formatter.format_help().strip() + "\n"


def _arguments(p: argparse.ArgumentParser) -> str:
    rows = [
        f"| {_names(a)} | {cell(_help(p, a))} | {_default(a)} |\n"
        for a in p._actions
        if not isinstance(a, argparse._HelpAction | argparse._SubParsersAction)
    ]
    if not rows:
        return ""
    return "| Argument | Meaning | Default |\n| --- | --- | --- |\n" + "".join(rows) + "\n"


def _names(a: argparse.Action) -> str:
    if not a.option_strings:  # a positional argument
        return code(a.metavar if isinstance(a.metavar, str) else a.dest.upper())
    takes = a.nargs != 0
    value = f" {a.metavar or a.dest.upper()}" if takes and isinstance(a.metavar, str | None) else ""
    if takes and a.choices is not None and a.metavar is None:
        value = " {" + ",".join(str(c) for c in a.choices) + "}"
    return ", ".join(code(f"{o}{value}") for o in a.option_strings)


def _help(p: argparse.ArgumentParser, a: argparse.Action) -> str:
    """The help text with argparse's ``%(default)s`` and the like filled in."""
    text = a.help or ""
    if "%" in text:
        params = {**vars(a), "prog": p.prog}
        text = text % params
    if a.required and a.option_strings:
        text = f"{text} (required)".strip()
    return text


def _default(a: argparse.Action) -> str:
    if a.nargs == 0 or a.default in (None, argparse.SUPPRESS) or a.required:
        return ""
    if a.dest == "config":  # read from the environment when the parser is built
        return code("config.yaml")
    return code(str(a.default))
