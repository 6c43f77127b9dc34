"""No import cycle inside ``emox_edge/``: every import, at module level or inside a function, is an edge.

A cycle through a lazy (function-level) import still ties two modules together, so it counts too.
Imports of a package's ``__init__`` are edges to that ``__init__``; the implicit import of parent
packages is not an edge.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "emox_edge"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(*, external: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """Edges between emox_edge modules; ``external`` (if given) collects every other import per module."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            for target in targets:
                if external is not None and not target.startswith("emox_edge"):
                    external.setdefault(name, set()).add(target)
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles_in_the_runtime():
    graph = import_graph()
    assert "emox_edge.analyzer" in graph and graph["emox_edge.analyzer"]
    assert cycles(graph) == []


def test_the_runtime_package_holds_no_bundle_building_code():
    external: dict[str, set[str]] = {}
    graph = import_graph(external=external)
    builders = {n for n in graph if n.startswith("emox_edge.lite.")
                and n.split(".")[-1] in ("build", "sources", "default", "keras_h5", "fer_onnx", "fer_reference")}
    assert builders == set()
    importers = {n for n, deps in external.items() if any(d.split(".")[0] in ("converters", "torch") for d in deps)}
    # the command layer (emox_edge.cli) dispatches into the converters; the runtime proper reads bundles
    # and makes one first-use call to build the default bundle (converters.lite needs no torch)
    assert {n for n in importers if not n.startswith("emox_edge.cli.")} == {"emox_edge.default_bundle"}, importers
