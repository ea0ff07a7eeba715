"""The package's import graph has no cycle (issue 27: "no import circles").

The graph is built from the source with `ast`, without importing anything: a node per module
under robustmix/, an edge a -> b where a imports b anywhere in its code, at module level or
inside a function. Imports inside functions are included on purpose. Only module-level imports
can fail at import time (a half-initialised module), and robustmix has no cycle of those; but
it defers many imports into functions (torch, ray and matplotlib, so that --help and --check
answer at once), and a deferred import is still a dependency: a cycle through one means neither
module can be read, tested or moved without the other, and it turns into an import-time failure
the day someone lifts the import to the top of the file. The three cycles issue 27 names were
all of this kind. Imports under `if TYPE_CHECKING:` are left out: they never run and only name
types for annotations.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "robustmix"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module, functions: bool = True):
    """The module's import statements, in functions too unless functions=False; never those
    under `if TYPE_CHECKING:`."""
    todo: list[ast.AST] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            todo += node.orelse
        elif functions or not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                ast.Lambda)):
            todo += list(ast.iter_child_nodes(node))


def import_graph(functions: bool = True) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in files}
    for mod, path in files.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        for node in _imports(ast.parse(path.read_text(), str(path)), functions):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                if node.level:
                    base = package.split(".")
                    base = base[:len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                # `from pkg import name` imports the submodule pkg.name where there is one
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in files else prefix
                           for a in node.names]
            graph[mod] |= {t for t in targets if t in files and t != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(found)


def test_the_graph_sees_the_package():
    """A sanity check of the parser: known edges are found, relative imports resolved."""
    graph = import_graph()
    assert "robustmix.training.config" in graph
    assert "robustmix.training.methods" in graph["robustmix.training.config"]
    assert "robustmix.errors" in graph["robustmix.training.config"]
    assert "robustmix.data.labelnoise" in graph["robustmix.studies.spec"]
    # an import inside a function (attacks/registry builds its attacks on demand)
    assert "robustmix.attacks.pgd" in graph["robustmix.attacks.registry"]
    assert "robustmix.attacks.pgd" not in import_graph(functions=False)["robustmix.attacks.registry"]


def test_package_has_no_import_cycle():
    found = cycles(import_graph())
    assert found == [], "import cycles: " + "; ".join(" <-> ".join(c) for c in found)
