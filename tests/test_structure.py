"""The shape of the code base: no import cycle in core/, small modules, plugins that import
only the public API of the host or their own family.

Import cycles are found with the standard library's `ast`: every module-level import of a
`modelway.*` module in core/ is an edge (imports under `if TYPE_CHECKING:` are not: they never
run), and the graph must have no cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "core"
MAX_LINES = 400


def module_name(path: Path) -> str:
    relative = path.relative_to(CORE).with_suffix("")
    parts = [p for p in relative.parts if p != "__init__"]
    return ".".join(["modelway", *parts])


def runtime_imports(tree: ast.Module, modules: set[str]) -> set[str]:
    """`modelway.*` modules a module imports when it is imported: its module-level imports,
    not those under TYPE_CHECKING and not those deferred into a function's body;
    `from modelway import jsonx` is an import of the submodule `modelway.jsonx`."""
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in _without_functions(node):
            if isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                subs = {f"{inner.module}.{a.name}" for a in inner.names} & modules
                found.update(subs or {inner.module})
            elif isinstance(inner, ast.Import):
                found.update(alias.name for alias in inner.names)
    return {name for name in found if name.startswith("modelway")}


def _without_functions(node: ast.AST) -> list[ast.AST]:
    """`node` and what it holds, except the bodies of functions (imports there are deferred)."""
    out = [node]
    for child in ast.iter_child_nodes(node):
        if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            out.extend(_without_functions(child))
    return out


def core_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in CORE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = runtime_imports(ast.parse(path.read_text()), set(modules))
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*stack[stack.index(target) :], target]
            if target not in state and (cycle := visit(target)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def test_core_has_no_import_cycle():
    graph = core_graph()
    assert "modelway.requestpath" in graph, "the graph was not built from core/"
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_in_core_or_plugins_is_over_400_lines():
    big = [
        f"{path.relative_to(ROOT)} ({count} lines)"
        for folder in ("core", "plugins", "addons")
        for path in (ROOT / folder).rglob("*.py")
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, "modules over 400 lines: " + ", ".join(big)


def test_plugins_do_not_import_the_engine_or_the_request_path():
    """Plugins talk to the host through hooks, the public API and typed services."""
    private = {
        "modelway.engine",
        "modelway.requestpath",
        "modelway.attempts",
        "modelway.streams",
        "modelway.relay",
        "modelway.runner",
    }
    offenders = []
    for path in (ROOT / "plugins").rglob("*.py"):
        tree = ast.parse(path.read_text())
        used = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        if used & private:
            offenders.append(f"{path.relative_to(ROOT)}: {sorted(used & private)}")
    assert not offenders, offenders
