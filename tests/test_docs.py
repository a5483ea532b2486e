"""The docs site builds strictly (a broken link or a page missing from the nav fails here), its
reference pages cover every configuration key and every ``kabarin`` command, and it loads
nothing from another host."""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gateway.cli import parser
from gateway.config.reference import describe_config

ROOT = Path(__file__).resolve().parents[1]

ASSET_ATTRIBUTES = {
    "script": "src",
    "link": "href",
    "img": "src",
    "iframe": "src",
    "source": "src",
    "audio": "src",
    "video": "src",
    "embed": "src",
    "object": "data",
}
"""What a browser fetches by itself when it shows a page (an ``<a href>`` it only follows)."""
CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+)['"]?([^'")\s]+)""")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=120,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return out


def page_text(site: Path, page: str) -> str:
    """A built page's text as a reader sees it (tags dropped, entities decoded)."""
    raw = (site / page / "index.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", "", raw))


def test_every_configuration_key_is_in_the_configuration_reference(site: Path) -> None:
    text = page_text(site, "reference/configuration")
    missing = [k.key for k in describe_config() if k.key not in text]
    assert not missing
    for kind in ("console", "webhook", "slack", "email", "whatsapp", "sms"):
        assert f"type: {kind}" in text


def test_every_kabarin_command_is_in_the_cli_reference(site: Path) -> None:
    text = page_text(site, "reference/cli")
    commands = _commands()
    assert {"kabarin serve", "kabarin rejected list", "kabarin store migrate"} <= set(commands)
    assert not [c for c in commands if c not in text]
    # and their options: `--dead` of `kabarin replay`, `--dry-run` of `kabarin store prune`
    assert "--dead" in text and "--dry-run" in text


def test_the_http_reference_lists_every_operation_and_ships_the_document(site: Path) -> None:
    document = json.loads((site / "reference/openapi.json").read_text(encoding="utf-8"))
    text = page_text(site, "reference/admin-api")
    operations = [
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "put", "post", "patch", "delete")
    ]
    assert "POST /kiriminaja/push" in operations
    assert "POST /admin/v1/deliveries/replay" in operations
    assert not [op for op in operations if op not in text]
    assert not [name for name in document["components"]["schemas"] if name not in text]


def test_the_events_page_shows_every_field_and_a_payload_the_webhook_sink_signed(
    site: Path,
) -> None:
    from standardwebhooks import Webhook

    from gateway.events import Event

    text = page_text(site, "reference/events")
    assert all(f in text for f in Event.__struct_fields__)
    request = re.search(r"POST (\S+) HTTP/1.1\n(.*?)\n\n(\{.*?\})\n", text, re.S)
    assert request is not None
    headers = dict(line.split(": ", 1) for line in request.group(2).splitlines())
    secret = re.search(r"secret (whsec_\S+?);", text)
    assert secret is not None
    # The page's example is a real signed request: a verifier accepts it (its timestamp is the
    # build's moment, well within the verifier's tolerance).
    payload = Webhook(secret.group(1)).verify(request.group(3), headers)
    assert payload["type"] == "shipment.shipped"
    assert payload["data"]["order_id"] == "OID-8812"


def test_the_screenshots_are_in_the_site(site: Path) -> None:
    for name in ("dashboard-overview.png", "dashboard-order.png"):
        assert (site / "images" / name).read_bytes().startswith(b"\x89PNG")
        assert f"images/{name}" in (site / "index.html").read_text(encoding="utf-8")
        assert f"(docs/images/{name})" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_site_loads_nothing_from_another_host(site: Path) -> None:
    """Fonts, scripts, stylesheets and images are the site's own: a reader may be offline, and a
    CDN is one more party to trust. (Links a reader follows may lead anywhere.)"""
    found = [
        (str(path.relative_to(site)), url)
        for path, url in _asset_urls(site)
        if re.match(r"(?:[a-z]+:)?//", url, re.I) and not url.startswith("data:")
    ]
    assert not found
    # The theme's script loads mermaid from a CDN when a page has a diagram: none may.
    pages = [p.read_text(encoding="utf-8") for p in site.rglob("*.html")]
    assert not [p for p in pages if 'class="mermaid"' in p]


def _asset_urls(site: Path) -> Iterator[tuple[Path, str]]:
    for path in site.rglob("*"):
        if path.suffix == ".html":
            finder = _AssetFinder()
            finder.feed(path.read_text(encoding="utf-8"))
            for url in finder.urls:
                yield path, url
        if path.suffix in (".html", ".css"):
            for match in CSS_URL.finditer(path.read_text(encoding="utf-8")):
                yield path, match.group(1)


class _AssetFinder(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = ASSET_ATTRIBUTES.get(tag)
        for name, value in attrs:
            if value and (name == wanted or name == "srcset"):
                self.urls.append(value.strip())


def _commands(p: argparse.ArgumentParser | None = None) -> list[str]:
    """Every command as typed, walked from the parser ``kabarin`` runs (argparse keeps its
    subcommands only in its actions)."""
    found: list[str] = []
    for action in (p or parser())._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                found += [child.prog, *_commands(child)]
    return found
