"""The import graph of DESIGN.md: no cycle, no edge against the stage direction, few deferred imports.

contracts <- indexing <- retrieval <- training <- pipelines; evaluation needs only contracts. Imports inside
functions count as edges too (hiding one there is how a cycle stays invisible), and there may be only a few of
them, each deferring a heavy optional dependency and saying so in a comment.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("contracts", "indexing", "retrieval", "evaluation", "training", "pipelines")
# What each top-level package may import from the project (itself included).
ALLOWED = {
    "contracts": {"contracts"},
    "indexing": {"contracts", "indexing"},
    "retrieval": {"contracts", "indexing", "retrieval"},
    "evaluation": {"contracts", "evaluation"},
    "training": {"contracts", "indexing", "retrieval", "evaluation", "training"},
    "pipelines": set(STAGES),
}
MAX_DEFERRED = 8  # function-level imports of project modules, across all stages


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for stage in STAGES for p in (ROOT / stage).rglob("*.py")}


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module an import names (`a.b.c` may be a module or a name inside module `a.b`)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _edges(modules: dict[str, Path]) -> list[tuple[str, str, int, bool, str]]:
    """(importer, imported, line, inside a function, source line) for every import of a project module."""
    edges = []
    for name, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        inside = {id(n) for f in functions for n in ast.walk(f) if n is not f}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                package = name.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                mod = f"{base}.{node.module}" if node.module else base
                targets = [f"{mod}.{alias.name}" for alias in node.names]
            for target in targets:
                resolved = _resolve(target, modules)
                edge = (name, resolved, node.lineno, id(node) in inside, lines[node.lineno - 1])
                if resolved and resolved != name and edge not in edges:
                    edges.append(edge)
    return edges


@pytest.fixture(scope="module")
def graph():
    modules = _modules()
    return modules, _edges(modules)


def test_no_edge_against_the_stage_direction(graph):
    _, edges = graph
    wrong = [f"{a} -> {b} (line {line})" for a, b, line, _, _ in edges
             if b.split(".")[0] not in ALLOWED[a.split(".")[0]]]
    assert not wrong, "imports against DESIGN.md's direction:\n" + "\n".join(wrong)


def test_no_import_cycle(graph):
    modules, edges = graph
    # Package __init__ files re-export their modules; an edge into a package from inside it is not a cycle of
    # logic, so cycles are looked for between modules that are not __init__ re-exports of their own children.
    succ: dict[str, set[str]] = {m: set() for m in modules}
    for a, b, _, _, _ in edges:
        if not (modules[a].name == "__init__.py" and b.startswith(a + ".")):
            succ[a].add(b)
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(succ[m]):
            if state.get(n) == 1:
                cycles.append(stack[stack.index(n):] + [n])
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(modules):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_deferred_project_imports_are_few_and_explained(graph):
    modules, edges = graph
    deferred = [(a, b, line, text) for a, b, line, inside, text in edges if inside]
    unexplained = []
    for a, b, line, text in deferred:
        previous = modules[a].read_text(encoding="utf-8").splitlines()[line - 2] if line > 1 else ""
        if "#" not in text and not previous.strip().startswith("#"):
            unexplained.append(f"{a}:{line} imports {b} inside a function without a comment saying why")
    assert not unexplained, "\n".join(unexplained)
    assert len(deferred) <= MAX_DEFERRED, "function-level imports of project modules:\n" + "\n".join(
        f"{a}:{line} -> {b}" for a, b, line, _ in deferred)
