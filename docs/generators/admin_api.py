"""``reference/admin-api.md`` and ``reference/openapi.json``: the HTTP API from the OpenAPI
document the app itself serves at ``/schema/openapi.json`` (built for a minimal configuration;
the document does not depend on it beyond ``receiver.path``)."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from litestar.testing import TestClient

from gateway.app import create_app
from gateway.config import parse_config
from generators.markdown import cell, code, prose, sentence

__all__ = ["admin_api_page", "openapi_document"]

_METHODS = ("get", "put", "post", "patch", "delete")
_TAGS = {
    "push": "The push endpoint",
    "admin": "The admin API",
}
"""Section titles for the document's tags, in this order; any other tag follows under its
own name."""

_INTRO = """\
# HTTP API reference

Every endpoint Kabarin serves besides the dashboard, written from the OpenAPI document the
running server publishes at `/schema/openapi.json` (and browsable at `/schema/swagger`). The
same document is [here as a file](openapi.json), for a client generator.

The admin API (`/admin/v1/...`) wants `Authorization: Bearer <admin.token>`; the push endpoint
wants KiriminAja's API key (`receiver.token`) the same way. The push endpoint's path is
`receiver.path` (`/kiriminaja/push` unless configured). Errors answer
`{"error": "...", "detail": "..."}`.
"""


def openapi_document() -> dict[str, Any]:
    """The document exactly as the app serves it (the app is not started: the route that
    serves the document needs no store)."""
    with tempfile.TemporaryDirectory() as folder:
        config = parse_config(
            "receiver: {token: docs-push-token}\n"
            f"store: {{url: 'sqlite:///{Path(folder) / 'docs.db'}'}}\n"
            "admin: {token: docs-admin-token}\n",
            env={},
        )
        response = TestClient(create_app(config)).get("/schema/openapi.json")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def openapi_json(document: dict[str, Any]) -> str:
    """The document as the file the site ships."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def admin_api_page(document: dict[str, Any]) -> str:
    """The page's Markdown."""
    return _INTRO + "".join(_operations(document)) + "".join(_schemas(document))


def _operations(document: dict[str, Any]) -> Iterator[str]:
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in _METHODS:
            if method in item:
                tag = (item[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((path, method, item[method]))
    order = [t for t in _TAGS if t in by_tag] + [t for t in by_tag if t not in _TAGS]
    for tag in order:
        yield f"\n## {_TAGS.get(tag, tag.capitalize())}\n"
        for path, method, operation in by_tag[tag]:
            yield from _operation(path, method, operation)


def _operation(path: str, method: str, op: dict[str, Any]) -> Iterator[str]:
    yield f"\n### `{method.upper()} {path}`\n\n"
    if summary := op.get("summary"):
        yield prose(sentence(summary)) + "\n\n"
    if description := op.get("description"):
        yield prose(description) + "\n\n"
    if op.get("security"):
        names = ", ".join(name for need in op["security"] for name in need)
        yield f"Authentication: {names}.\n\n"
    if params := op.get("parameters"):
        yield "| Parameter | In | Type | Description |\n| --- | --- | --- | --- |\n"
        for p in params:
            need = " (required)" if p.get("required") else ""
            kind = _type(p.get("schema", {}))
            about = cell(p.get("description", "") + need)
            yield f"| {code(p['name'])} | {p['in']} | {kind} | {about} |\n"
        yield "\n"
    if body := op.get("requestBody"):
        kinds = ", ".join(
            f"{code(media)} {_type(content.get('schema', {}))}"
            for media, content in body.get("content", {}).items()
        )
        about = f" {prose(body['description'])}" if body.get("description") else ""
        yield f"Request body: {kinds}.{about}\n\n"
    yield "| Status | Meaning | Body |\n| --- | --- | --- |\n"
    for status, answer in op.get("responses", {}).items():
        media = answer.get("content", {})
        kinds = ", ".join(_type(c.get("schema", {})) for c in media.values())
        yield f"| {status} | {cell(answer.get('description', ''))} | {kinds} |\n"


def _schemas(document: dict[str, Any]) -> Iterator[str]:
    schemas = document.get("components", {}).get("schemas", {})
    if not schemas:
        return
    yield "\n## Schemas\n\nThe bodies named above.\n"
    for name, schema in sorted(schemas.items()):
        yield f"\n### {name} {{#{_anchor(name)}}}\n\n"
        if description := schema.get("description"):
            yield prose(description) + "\n\n"
        properties = schema.get("properties")
        if not properties:
            yield f"{_type(schema)}\n"
            continue
        required = set(schema.get("required", ()))
        yield "| Field | Type | Description |\n| --- | --- | --- |\n"
        for field, sub in properties.items():
            need = " (required)" if field in required else ""
            yield f"| {code(field)} | {_type(sub)} | {cell(sub.get('description', '') + need)} |\n"


def _type(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words, a named schema as a link to its section."""
    if ref := schema.get("$ref"):
        name = ref.rsplit("/", 1)[-1]
        return f"[{name}](#{_anchor(name)})"
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return " or ".join(_type(s) for s in schema[key])
    if "enum" in schema:
        return " or ".join(code(json.dumps(v)) for v in schema["enum"])
    if "const" in schema:
        return code(json.dumps(schema["const"]))
    kind = schema.get("type")
    if isinstance(kind, list):
        return " or ".join(_type({**schema, "type": k}) for k in kind)
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        return f"object of {_type(extra)}" if isinstance(extra, dict) else "object"
    if kind is None:
        return "any"
    fmt = schema.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _anchor(name: str) -> str:
    return "schema-" + name.lower()
