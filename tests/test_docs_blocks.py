"""Every fenced block of README.md and of every page under docs/ is checked, so the
documentation cannot show a configuration Kabarin refuses or a command it does not have.
Pages added later are covered as they are written: nothing here names a page.

What each block's language gets (the convention is written for authors in
docs/development.md, "Documentation"):

- ``yaml``: a piece of Kabarin configuration. By default a *fragment*, merged into `BASE` (a
  receiver token, a store and the sinks the pages send to) and validated as `kabarin check`
  does; ``<!-- check: file -->`` on the line before the fence (a blank line between) makes it a
  whole file, run through `kabarin check` as it is; ``<!-- check: yaml-only WHY -->`` is YAML
  that is not Kabarin's (Prometheus' configuration), only parsed.
- ``sh``, ``bash``, ``shell``, and lines starting with ``$ `` in ``text`` blocks: every command.
  ``kabarin ...`` is parsed by the argument parser ``kabarin`` uses; ``curl`` must name a route
  the app serves, with a method it answers and query parameters its OpenAPI document has;
  ``make`` a target of the Makefile; a few more (`COMMANDS`) have their own check. Anything else
  fails until it gets a checker or a skip marker.
- ``json`` must parse, ``toml`` must parse, ``python`` must compile, ``jinja`` must parse, and
  ``csv`` is a contacts file `kabarin contacts import` takes whole.
- ``text`` blocks are output and pictures, not checked (but their ``$`` lines are); a block
  without a language fails.
- ``<!-- check: skip WHY -->`` leaves a block unchecked; every such block is listed in `SKIPPED`,
  so leaving one out is a decision someone wrote down.
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
import pytest
import yaml
from litestar.testing import TestClient

from gateway.app import create_app
from gateway.check import validate_file
from gateway.cli import main, parser
from gateway.config import parse_config
from gateway.contacts import read_contacts_csv

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>```+|~~~+)[ \t]*(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.M | re.S,
)
MARKER = re.compile(r"^\s*<!--\s*check:\s*(?P<kind>[\w-]+)\s*(?P<why>.*?)\s*-->\s*$")
MARKERS = {"file", "fragment", "yaml-only", "skip"}

SHELL = {"sh", "bash", "shell"}
OUTPUT = {"text", "console"}
"""Output and pictures, said so by their language; only their ``$ `` lines are commands."""

SKIPPED = {
    ("docs/concepts.md", "needs the parcelku push source installed"),
    ("docs/guides/production.md", "sqlite3 is SQLite's own shell, not Kabarin's"),
    ("docs/guides/production.md", "a systemd unit, for systemd"),
    ("docs/guides/production.md", "nginx's configuration, for nginx"),
}
"""Blocks left unchecked on purpose: (page, the reason its marker gives)."""

BASE: dict[str, Any] = {
    "receiver": {"token": "docs-push-token"},
    "admin": {"token": "docs-admin-token-0123456789"},
    "sinks": {
        "console": {"type": "console"},
        "erp": {
            "type": "webhook",
            "url": "https://erp.toko.example/hooks/kiriminaja",
            "secret": "whsec_" + "a" * 32,
        },
        "ops-slack": {
            "type": "slack",
            "webhook_url": "https://hooks.slack.com/services/T000/B000/example",
        },
        "gudang": {
            "type": "email",
            "host": "smtp.toko.example",
            "from": "kabarin@toko.example",
            "to": ["gudang@toko.example"],
        },
        "owner-mail": {
            "type": "email",
            "host": "smtp.toko.example",
            "from": "kabarin@toko.example",
            "to": ["owner@toko.example"],
        },
        "wa": {"type": "whatsapp", "provider": "fonnte", "token": "fonnte-token"},
        "sms": {"type": "sms", "provider": "zenziva", "userkey": "u", "passkey": "p"},
    },
}
"""What a YAML fragment is merged into: its own keys win, mapping by mapping; a list (routes)
replaces the base's. The sinks are those the pages' routes send to by name."""


@dataclass(frozen=True)
class Block:
    page: str
    line: int
    lang: str
    body: str
    marker: str
    why: str

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks() -> list[Block]:
    found = []
    for path in PAGES:
        text = path.read_text(encoding="utf-8")
        page = str(path.relative_to(ROOT))
        for match in FENCE.finditer(text):
            start = text.count("\n", 0, match.start()) + 1
            indent = len(match["indent"])
            body = "".join(line[indent:] for line in match["body"].splitlines(keepends=True))
            lang = match["info"].split()[0].lower() if match["info"].split() else ""
            before = [line for line in text[: match.start()].splitlines() if line.strip()]
            marked = MARKER.match(before[-1]) if before else None
            marker, why = (marked["kind"], marked["why"]) if marked else ("", "")
            found.append(Block(page, start, lang, body, marker, why))
    return found


BLOCKS = blocks()


def _id(block: Block) -> str:
    return block.id


def test_blocks_are_found_and_every_marker_is_known() -> None:
    assert len(BLOCKS) > 50
    assert {b.page for b in BLOCKS} >= {"README.md", "docs/guides/typical-shop.md"}
    unknown = [(b.id, b.marker) for b in BLOCKS if b.marker and b.marker not in MARKERS]
    assert not unknown
    unexplained = [b.id for b in BLOCKS if b.marker in ("skip", "yaml-only") and not b.why]
    assert not unexplained, "a skip or yaml-only marker says why"
    written = sum(
        1
        for p in PAGES
        for line in p.read_text(encoding="utf-8").splitlines()
        if MARKER.match(line)
    )
    assert written == len([b for b in BLOCKS if b.marker]), "a marker stands right before a fence"


def test_the_unchecked_blocks_are_the_listed_ones() -> None:
    skipped = Counter((b.page, b.why) for b in BLOCKS if b.marker == "skip")
    assert set(skipped) == SKIPPED
    assert sum(skipped.values()) == len(SKIPPED), "one listed reason per skipped block"


def test_every_block_says_its_language() -> None:
    """An unlabelled block would be neither checked nor said to be output."""
    assert not [b.id for b in BLOCKS if not b.lang]


def test_every_language_has_a_check() -> None:
    checked = SHELL | OUTPUT | {"yaml", "yml", "json", "toml", "python", "jinja", "csv"}
    assert not [(b.id, b.lang) for b in BLOCKS if b.lang not in checked and b.marker != "skip"]


# -- YAML: Kabarin's configuration -------------------------------------------------------------


def _example_value(variable: str) -> str:
    """A value of the right form for an environment variable a page names."""
    if "SECRET" in variable:
        return "whsec_" + "a" * 32
    if "SLACK" in variable:
        return "https://hooks.slack.com/services/T000/B000/example"
    if "ADMIN" in variable:
        return f"example-admin-token-{variable.lower()}"
    return f"example-{variable}"


def merged(base: dict[str, Any], fragment: dict[str, Any]) -> dict[str, Any]:
    """The fragment's sections over the base's, key by key: a sink (or shop, digest...) the
    fragment names replaces the base's of that name whole."""
    out = dict(base)
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def _prepare(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in set(re.findall(r"\$\{(\w+)", block.body)):
        monkeypatch.setenv(name, _example_value(name))
    for name in set(re.findall(r"\{file: ([\w./-]+)\}", block.body)):  # the templates it names
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("{{ event.status | status_label }}: {{ event.order_id }}")
    monkeypatch.chdir(tmp_path)  # a whole file's relative SQLite path lands here


YAML = [b for b in BLOCKS if b.lang in ("yaml", "yml") and b.marker != "skip"]


@pytest.mark.parametrize("block", [b for b in YAML if b.marker in ("", "fragment")], ids=_id)
def test_a_yaml_fragment_is_valid_configuration(
    block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fragment = yaml.safe_load(block.body)
    assert isinstance(fragment, dict), f"{block.id}: a fragment is a mapping of sections"
    base = {**BASE, "store": {"url": f"sqlite:///{tmp_path}/k.db"}}
    if "shops" in fragment:  # a file names its shops or its one receiver.token, not both
        base["receiver"] = {k: v for k, v in base["receiver"].items() if k != "token"}
    _prepare(block, tmp_path, monkeypatch)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(merged(base, fragment), sort_keys=False), encoding="utf-8")
    validate_file(str(path))  # raises ConfigError with every problem


@pytest.mark.parametrize("block", [b for b in YAML if b.marker == "file"], ids=_id)
def test_a_whole_configuration_file_passes_kabarin_check(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _prepare(block, tmp_path, monkeypatch)
    (tmp_path / "config.yaml").write_text(block.body, encoding="utf-8")
    assert main(["check", "--config", "config.yaml"]) == 0, capsys.readouterr().err
    assert "config.yaml: OK" in capsys.readouterr().out


def test_yaml_that_is_not_kabarins_parses() -> None:
    others = [b for b in YAML if b.marker == "yaml-only"]
    assert others
    for block in others:
        assert isinstance(yaml.safe_load(block.body), dict), block.id


# -- shell commands ---------------------------------------------------------------------------


def commands(block: Block) -> Iterator[list[str]]:
    """Each command of a block as its words: continuation lines joined, comments dropped, a
    pipeline or list split into its commands, redirections left out. In output blocks (``text``,
    ``console``), only the lines after ``$ ``."""
    lines = block.body.replace("\\\n", " ").splitlines()
    if block.lang in OUTPUT:
        lines = [line[2:] for line in lines if line.startswith("$ ")]
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|<>")
        lexer.whitespace_split = True
        words: list[str] = []
        redirected = False
        for word in lexer:
            if redirected:  # the file of a redirection is not a word of the command
                redirected = False
            elif word in (">", ">>", "<"):
                redirected = True
            elif word in ("|", "||", "&&", ";", "&"):
                if words:
                    yield words
                words = []
            else:
                words.append(word)
        if words:
            yield words


def check_kabarin(words: list[str]) -> None:
    try:
        parser().parse_args(words[1:])
    except SystemExit as exc:  # --help and --version exit 0 after printing
        if exc.code != 0:
            raise AssertionError(f"`{shlex.join(words)}` is not a kabarin command") from exc


@cache
def app_routes() -> list[tuple[re.Pattern[str], frozenset[str]]]:
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            "shops: {toko-a: {token: docs-push-token}}\n"
            f"store: {{url: 'sqlite:///{Path(folder) / 'docs.db'}'}}\n"
            "admin: {token: docs-admin-token-0123456789}\n",
            env={},
        )
        app = create_app(config)
        found = []
        for route in app.routes:
            pattern = re.sub(
                r"\{\w+:(\w+)\}",
                lambda m: ".+" if m[1] == "path" else "[^/]+",
                route.path,
            )
            methods = frozenset(getattr(route, "methods", ()) or {"POST"})  # the push endpoint
            if not getattr(route, "methods", ()):
                pattern += "(?:/[^/]+)?"  # with several shops, one path per shop as well
            found.append((re.compile(pattern), methods))
    return found


@cache
def openapi() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            f"receiver: {{token: t}}\nstore: {{url: 'sqlite:///{Path(folder) / 'd.db'}'}}\n",
            env={},
        )
        document: dict[str, Any] = TestClient(create_app(config)).get("/schema/openapi.json").json()
    return document


def _query_parameters(path: str, method: str) -> set[str] | None:
    """The query parameters the OpenAPI document gives this operation, or None if it does
    not describe it (a literal path wins over a template: `/deliveries/replay` is not
    `/deliveries/{delivery_id}`)."""
    paths = sorted(openapi()["paths"].items(), key=lambda item: item[0].count("{"))
    for template, item in paths:
        if re.fullmatch(re.sub(r"\{[^}]+\}", ".+", template), path):
            operation = item.get(method.lower(), {})
            return {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    return None


def check_curl(words: list[str]) -> None:
    method, url = "GET", None
    options_with_value = {"-H", "--header", "-d", "--data", "--data-binary", "--data-raw"}
    options_with_value |= {"-X", "--request", "-o", "--output", "-u", "--user", "--json"}
    options_with_value |= {"-F", "--form", "-b", "--cookie", "-c", "--cookie-jar"}
    rest = iter(words[1:])
    for word in rest:
        if word in ("-X", "--request"):
            method = next(rest)
        elif word in ("-d", "--data", "--data-binary", "--data-raw", "--json", "-F", "--form"):
            method = "POST" if method == "GET" else method
            next(rest)
        elif word in options_with_value:
            next(rest)
        elif word.startswith("http"):
            url = word
    assert url, f"`{shlex.join(words)}` names no URL"
    match = re.match(r"https?://[^/]+(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?", url)
    assert match, url
    path, query = match["path"] or "/", match["query"]
    served = [methods for pattern, methods in app_routes() if pattern.fullmatch(path)]
    assert served, f"`{shlex.join(words)}`: Kabarin serves no {path}"
    assert any(method in m for m in served), f"`{shlex.join(words)}`: {path} takes no {method}"
    if query:
        known = _query_parameters(path, method)
        assert known is not None, f"{path} takes no query"
        names = {part.split("=", 1)[0] for part in query.split("&")}
        assert names <= known, f"`{shlex.join(words)}`: {sorted(names - known)} not in {known}"


@cache
def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    return set(re.findall(r"^([\w-]+):", makefile, re.M))


def check_make(words: list[str]) -> None:
    targets = [w for w in words[1:] if "=" not in w and not w.startswith("-")]
    assert targets, "`make` alone"
    assert set(targets) <= make_targets(), f"`{shlex.join(words)}`: no such target"


def check_activate(words: list[str]) -> None:
    assert words[1:] == [".venv/bin/activate"], words  # what `make install` creates


def check_cp(words: list[str]) -> None:
    source = words[-2]
    assert (ROOT / source).is_file(), f"`{shlex.join(words)}`: the repository has no {source}"


def check_export(words: list[str]) -> None:
    """An exported variable is one a page's configuration or Kabarin itself reads."""
    known = {"KABARIN_CONFIG", "FORWARDED_ALLOW_IPS"}
    for block in YAML:
        known |= set(re.findall(r"\$\{(\w+)", block.body))
    for assignment in words[1:]:
        name = assignment.split("=", 1)[0]
        assert name in known, f"`{shlex.join(words)}`: nothing reads {name}"


def check_docker(words: list[str]) -> None:
    """`docker build` of the repository's Dockerfile, or `docker run` of the image it tags."""
    if words[1] == "build":
        assert (ROOT / words[-1] / "Dockerfile").is_file(), words
        assert words[2:4] == ["-t", "kabarin"], words
    else:
        assert words[1] == "run" and words[-1] == "kabarin", words


def check_json_tool(words: list[str]) -> None:
    assert words[1:] == ["-m", "json.tool"], words


COMMANDS: dict[str, Callable[[list[str]], None]] = {
    "kabarin": check_kabarin,
    ".venv/bin/kabarin": check_kabarin,
    "curl": check_curl,
    "make": check_make,
    ".": check_activate,
    "cp": check_cp,
    "export": check_export,
    "python3": check_json_tool,
    "docker": check_docker,
}

SHELL_BLOCKS = [
    b
    for b in BLOCKS
    if (b.lang in SHELL or (b.lang in OUTPUT and "\n$ " in "\n" + b.body)) and b.marker != "skip"
]


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=_id)
def test_every_command_exists_as_written(block: Block) -> None:
    seen = 0
    for words in commands(block):
        while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value before a command
            check_export(["export", words.pop(0)])
        check = COMMANDS.get(words[0])
        assert check, f"{block.id}: no check for `{words[0]}`: add one or mark the block skip"
        check(words)
        seen += 1
    assert seen, f"{block.id}: a shell block without a command"


def test_the_command_checks_can_fail() -> None:
    def refused(check: Callable[[list[str]], None], line: str) -> bool:
        try:
            check(shlex.split(line))
        except AssertionError:
            return True
        return False

    assert refused(check_kabarin, "kabarin replay --all")
    assert refused(check_curl, "curl -s http://127.0.0.1:8080/admin/v1/nothing")
    assert refused(check_curl, "curl -X DELETE http://127.0.0.1:8080/admin/v1/events")
    assert refused(check_curl, "curl http://127.0.0.1:8080/admin/v1/events?colour=red")
    assert refused(check_make, "make deploy")
    assert refused(check_kabarin, "kabarin")
    assert not refused(check_kabarin, "kabarin --version")
    assert not refused(check_curl, "curl -d '{}' http://h:8080/kiriminaja/push/toko-a")
    assert not refused(check_curl, "curl http://h/admin/v1/orders/INV/2024/05/001?shop=toko-a")


# -- the other languages ----------------------------------------------------------------------


def _of(*langs: str) -> list[Block]:
    return [b for b in BLOCKS if b.lang in langs and b.marker != "skip"]


@pytest.mark.parametrize("block", _of("json"), ids=_id)
def test_json_parses(block: Block) -> None:
    json.loads(block.body)


def test_toml_python_and_templates_parse() -> None:
    for block in _of("toml"):
        tomllib.loads(block.body)
    for block in _of("python"):
        compile(block.body, block.id, "exec")
    for block in _of("jinja"):
        jinja2.Environment().parse(block.body)


def test_a_contacts_csv_is_imported_whole() -> None:
    files = _of("csv")
    assert files
    for block in files:
        contacts, problems = read_contacts_csv(block.body)
        assert contacts and not problems, (block.id, problems)


def test_the_typical_shop_is_one_file_with_every_part_the_guide_promises() -> None:
    (block,) = [b for b in BLOCKS if b.page == "docs/guides/typical-shop.md" and b.marker == "file"]
    config = yaml.safe_load(block.body)
    kinds = {(s["type"], s.get("provider"), str(s.get("to"))) for s in config["sinks"].values()}
    assert {("webhook", None), ("slack", None), ("whatsapp", "fonnte"), ("sms", "zenziva")} <= {
        k[:2] for k in kinds
    }
    assert ("email", None, "['gudang@toko.example']") in kinds  # staff email
    assert any(r.get("fallback") for r in config["routes"])  # WhatsApp, then SMS
    assert config["contacts"]["lookup"]["url"]
    assert all("quiet_hours" in config["sinks"][s] for s in ("wa", "sms"))


# -- what the prose names ---------------------------------------------------------------------

KABARIN_PATHS = ("/admin/", "/ui", "/kiriminaja/", "/healthz", "/readyz", "/metrics", "/schema")
"""Where an inline ``METHOD /path`` is Kabarin's own (``POST /api/mitra/tracking`` is
KiriminAja's, ``POST /send`` Fonnte's)."""


def _prose(path: Path) -> str:
    return FENCE.sub("", path.read_text(encoding="utf-8"))


def test_every_endpoint_the_prose_names_is_served() -> None:
    named = 0
    for path in PAGES:
        for match in re.finditer(
            r"`((?:GET|POST|PUT|DELETE) (/[^`\s?]*)(\?[^`]*)?)`", _prose(path)
        ):
            if not match[2].startswith(KABARIN_PATHS):
                continue
            concrete = re.sub(r"\{[^}]+\}|<[^>]+>", "x", match[2])
            query = match[3] or ""
            check_curl(["curl", "-X", match[1].split()[0], f"http://h{concrete}{query}"])
            named += 1
    assert named > 50


def test_every_command_the_prose_names_exists() -> None:
    """An inline `kabarin ...` may be a usage line (`[--since T]`), so only its command words
    are held to the parser: `kabarin rejected list|show ID` names `rejected list` and
    `rejected show`."""

    def tree(p: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for action in p._actions:
            if action.__class__.__name__ == "_SubParsersAction":
                out |= {name: tree(child) for name, child in action.choices.items()}
        return out

    commands = tree(parser())
    named = 0
    for path in PAGES:
        for match in re.finditer(r"`kabarin ([a-z][\w-]*)(?: ([a-z][\w|-]*))?", _prose(path)):
            assert match[1] in commands, (path.name, match[0])
            below = commands[match[1]]
            if below:
                assert match[2], (path.name, match[0])
                assert set(match[2].split("|")) <= set(below), (path.name, match[0])
            named += 1
    assert named > 50


def test_the_typical_shops_commands_run_on_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's check, simulate and contacts import, run in-process as written, on the
    page's configuration file and its CSV (the ones that need no network)."""
    page = [b for b in BLOCKS if b.page == "docs/guides/typical-shop.md"]
    (config,) = [b for b in page if b.marker == "file"]
    (contacts,) = [b for b in page if b.lang == "csv"]
    _prepare(config, tmp_path, monkeypatch)
    (tmp_path / "shop.yaml").write_text(config.body, encoding="utf-8")  # the name the page gives
    (tmp_path / "contacts.csv").write_text(contacts.body, encoding="utf-8")
    (tmp_path / "tests").symlink_to(ROOT / "tests")  # the fixtures the page names
    ran = []
    for block in page:
        for words in commands(block) if block.lang in SHELL else ():
            if words[:2] in (["kabarin", "simulate"], ["kabarin", "contacts"]):
                assert main(words[1:]) == 0, (words, capsys.readouterr())
                ran.append(words[1])
    assert ran == ["simulate", "contacts"]
    out = capsys.readouterr().out
    assert "every-status-to-erp" in out and "tell-the-customer" in out  # simulate's routes
    assert "imported 3" in out
