"""The layout the code promises a newcomer: no import circle among Kabarin's own modules, and
no module too long to read in one sitting.

The import graph is read from the source with `ast`, every import counted wherever it is
written (a circle hidden in a function-level import is still a circle), except those under
``if TYPE_CHECKING:``, which never run. Importing ``a.b.c`` runs the packages ``a.b`` and
``a`` first, so it counts as importing them too.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gateway", "sinks")
MAX_LINES = 700


def _files() -> Iterator[Path]:
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(tree: ast.AST, module: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """Every module `module` imports, at any depth, outside ``if TYPE_CHECKING:``: for
    ``from a.b import c``, ``a.b.c`` when that is a module (a submodule of ``a.b``), else
    ``a.b`` itself."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imported(child, module, is_package, known)
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = module.split(".")
                anchor = here if is_package else here[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
        yield from _imported(node, module, is_package, known)


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of `PACKAGES` it imports (and the packages those run)."""
    paths = {_module(path): path for path in _files()}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        own_packages = {".".join(module.split(".")[:n]) for n in range(1, module.count(".") + 1)}
        edges: set[str] = set()
        for name in _imported(tree, module, path.name == "__init__.py", set(paths)):
            parts = name.split(".")
            for n in range(1, len(parts) + 1):
                target = ".".join(parts[:n])
                implicit = n < len(parts)
                # A package's own submodules run inside it: not an import of it.
                if target not in paths or target == module:
                    continue
                if not (implicit and target in own_packages):
                    edges.add(target)
        graph[module] = edges
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_function_level_imports() -> None:
    graph = import_graph()
    # gateway.check imports the router inside `validate_file`.
    assert "gateway.routing" in graph["gateway.check"]
    assert "gateway.templating" in graph["gateway.routing"]


def test_the_circle_finder_finds_a_circle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]


def test_no_import_circle_among_kabarins_modules() -> None:
    found = circles(import_graph())
    assert found == [], "import circles: " + "; ".join(" ↔ ".join(group) for group in found)


def _long_files() -> dict[str, int]:
    out = {}
    for path in _files():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            out[path.relative_to(ROOT).as_posix()] = lines
    return out


def test_no_module_over_700_lines() -> None:
    over = _long_files()
    assert over == {}, f"modules over {MAX_LINES} lines: {over}"
