"""Package layers of ``aiservice``: imports point down only, and packages form no cycle.

Every module under ``src/aiservice`` is parsed with :mod:`ast` (nothing is imported, so a
heavy or broken module cannot hide an edge). Every ``import``/``from ... import`` counts —
module level and inside functions alike, relative and absolute — because a function-level
import is still a dependency: it only moves the failure from import time to call time.

Imports under ``if TYPE_CHECKING:`` are excluded: they never execute, so they cannot form an
import cycle, and a type annotation naming a higher layer's class (a ``Runtime``, a
``Gateway``) is how a lower layer stays ignorant of it at run time. Imports by string
(``importlib.import_module``, e.g. ``cli.EXTRA_COMMANDS``) are invisible to this test.

A package is the first path component under ``aiservice`` (``aiservice.cache.redis`` ->
``cache``); a top-level module (``errors.py``, ``runtime.py``...) is its own node, and
``aiservice/__init__.py`` is the node ``__init__``. Imports inside one node are ignored.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "aiservice"

# The layer of each node (docs: ARCHITECTURE.md, "Layers"). An import may go to the same
# or a lower layer, never a higher one; same-layer imports must still be acyclic. Names are
# the tree's: ``cache`` is the doc's state/cache, ``llm`` its gateway.
LAYERS: dict[str, int] = {
    # 0 - the ground
    "config": 0,
    "errors": 0,
    "error_shapes": 0,  # the error body by API (OpenAI envelope or Anthropic's)
    "registry": 0,
    "_version": 0,
    "cpu": 0,  # CPU-bound offload helper, imports nothing of ours
    "compact_json": 0,  # the strict compact encoder, built once
    # 1 - logs/metrics and guards
    "observability": 1,
    "security": 1,
    "transport": 1,  # one upstream HTTP client; above security (the SSRF rules it enforces)
    # 2 - backends behind small protocols, and the typed bundle that carries them
    "secrets": 2,
    "providers": 2,
    "cache": 2,
    "queues": 2,  # async execution queues (inprocess, SQS, Cloud Tasks, Redis Streams)
    "vectors": 2,  # vector backends, chunking, blobs; embeddings are passed in
    "runtime": 2,  # built from secrets + security; higher layers receive it
    # 3 - the capabilities
    "llm": 3,
    "orchestrator": 3,
    # 4 - thin edges: HTTP routes, platform bridges, command line, app assembly, deploy
    "api": 4,
    "platforms": 4,
    "app": 4,
    "preflight": 4,
    "cli": 4,
    "vector_cli": 4,  # ``aiservice ingest`` / ``search``: vectors + the gateway
    "deploy": 4,
    "__init__": 4,
    "__main__": 4,
}

# Edges (importer, imported) tolerated for now, each with what has to move to drop it.
# Every other up-import or cycle fails; an entry whose edge no longer exists fails too, so
# the list only shrinks.
KNOWN_EXCEPTIONS: dict[tuple[str, str], str] = {}


@dataclass(frozen=True, slots=True)
class Edge:
    src: str
    dst: str
    where: str  # "aiservice/x/y.py:12 aiservice.z"


def _module_parts(path: Path, root: Path) -> tuple[list[str], bool]:
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    is_package = parts[-1] == "__init__"
    return (parts[:-1] if is_package else parts), is_package


def _node(parts: list[str]) -> str:
    return parts[1] if len(parts) > 1 else "__init__"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, except those in the body of ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _targets(
    node: ast.Import | ast.ImportFrom, parts: list[str], is_package: bool, root: Path
) -> list[str]:
    """Absolute dotted names ``node`` imports."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        base = parts if is_package else parts[:-1]
        base = base[: len(base) - (node.level - 1)]
        module = ".".join([*base, *([node.module] if node.module else [])])
    else:
        module = node.module or ""
    if module == root.name:  # ``from aiservice import x``: x may be a module of its own
        return [
            f"{module}.{a.name}"
            if (root / a.name).is_dir() or (root / f"{a.name}.py").is_file()
            else module
            for a in node.names
        ]
    return [module]


def package_edges(root: Path = SRC) -> dict[tuple[str, str], list[Edge]]:
    """``(importer, imported) -> [Edge...]`` between the nodes under ``root``."""
    edges: dict[tuple[str, str], list[Edge]] = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        parts, is_package = _module_parts(path, root)
        src = _node(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            for target in _targets(node, parts, is_package, root):
                names = target.split(".")
                if names[0] != root.name:
                    continue
                dst = _node(names)
                if dst != src:
                    where = f"{path.relative_to(root.parent)}:{node.lineno} {target}"
                    edges[(src, dst)].append(Edge(src, dst, where))
    return dict(edges)


def nodes(root: Path = SRC) -> set[str]:
    return {_node(_module_parts(p, root)[0]) for p in root.rglob("*.py")}


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected component of size > 1."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def strongconnect(v: str) -> None:  # Tarjan; the graph has a few dozen nodes
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's smallest node (breadth first)."""
    start = min(component)
    parent: dict[str, str] = {}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph.get(v, set()) & component):
            if w == start:
                path = [v]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if w not in parent:
                parent[w] = v
                queue.append(w)
    raise AssertionError(f"no cycle in component {component}")  # pragma: no cover


def _graph(edges: dict[tuple[str, str], list[Edge]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in edges:
        graph[src].add(dst)
    return graph


def _current_edges() -> dict[tuple[str, str], list[Edge]]:
    return {k: v for k, v in package_edges().items() if k not in KNOWN_EXCEPTIONS}


def test_every_package_has_a_layer() -> None:
    missing = sorted(nodes() - LAYERS.keys())
    assert not missing, f"place these in LAYERS (tests/test_layers.py): {missing}"
    stale = sorted(LAYERS.keys() - nodes())
    assert not stale, f"LAYERS names what no longer exists: {stale}"


def test_no_import_goes_up_a_layer() -> None:
    up = [
        f"{e.src} (layer {LAYERS[e.src]}) -> {e.dst} (layer {LAYERS[e.dst]}): {e.where}"
        for (src, dst), found in sorted(_current_edges().items())
        if LAYERS.get(dst, 0) > LAYERS.get(src, 0)
        for e in found
    ]
    assert not up, "imports going up a layer:\n  " + "\n  ".join(up)


def test_no_cycle_between_packages() -> None:
    edges = _current_edges()
    report = []
    for cycle in find_cycles(_graph(edges)):
        report.append(" -> ".join(cycle))
        for src, dst in zip(cycle, cycle[1:], strict=False):
            report += [f"    {e.where}" for e in edges[(src, dst)]]
    assert not report, "package import cycles:\n  " + "\n  ".join(report)


def test_known_exceptions_still_exist() -> None:
    edges = package_edges()
    gone = [edge for edge in KNOWN_EXCEPTIONS if edge not in edges]
    assert not gone, f"remove from KNOWN_EXCEPTIONS, these imports are gone: {gone}"


# -- the checker itself, on a synthetic tree ---------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_checker_sees_function_level_relative_and_absolute_imports(tmp_path: Path) -> None:
    root = tmp_path / "aiservice"
    _write(
        root,
        {
            "__init__.py": "",
            "errors.py": "",
            "low/__init__.py": "",
            "low/a.py": "def f():\n    from ..high.b import g\n",
            "high/__init__.py": "",
            "high/b.py": "import aiservice.low.a\nfrom .. import errors\nfrom . import c\n",
            "high/c.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from aiservice.mid import x\n",
            "mid/__init__.py": "",
        },
    )
    edges = package_edges(root)
    assert set(edges) == {("low", "high"), ("high", "low"), ("high", "errors")}
    assert [e.where for e in edges[("low", "high")]] == ["aiservice/low/a.py:2 aiservice.high.b"]
    assert find_cycles(_graph(edges)) == [["high", "low", "high"]]
    assert nodes(root) == {"__init__", "errors", "low", "high", "mid"}


@pytest.mark.parametrize(
    ("graph", "expected"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c", "a"]]),
    ],
)
def test_find_cycles(graph: dict[str, set[str]], expected: list[list[str]]) -> None:
    assert find_cycles(graph) == expected
