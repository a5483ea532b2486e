"""MkDocs hook: the reference pages are written from the code at every build (see
`generators`), never committed, so the site cannot describe a Kabarin that no longer exists."""

from __future__ import annotations

from generators.admin_api import admin_api_page, openapi_document, openapi_json
from generators.cli import cli_page
from generators.configuration import configuration_page
from generators.events import events_page
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages (and the OpenAPI document) to the site's files, where the nav
    in ``mkdocs.yml`` names them."""
    document = openapi_document()
    pages = {
        "reference/configuration.md": configuration_page(),
        "reference/cli.md": cli_page(),
        "reference/admin-api.md": admin_api_page(document),
        "reference/openapi.json": openapi_json(document),
        "reference/events.md": events_page(),
    }
    for uri, content in pages.items():
        files.append(File.generated(config, uri, content=content))
    return files
