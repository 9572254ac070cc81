"""The project's import graph, read from the source with ``ast`` (nothing is imported).

Every ``import`` counts, at module level or inside a function: a lazy import still ties two
modules together, and a circle of lazy imports is still a circle (bench/cli.py and bench/zoo.py
had one). Imports under ``if TYPE_CHECKING:`` do not run and do not count. Importing ``a.b.c``
is an edge to ``a.b.c`` only, not to the packages above it: a package's ``__init__`` that
re-exports its submodules would otherwise make a circle of every sibling import. Imports by
name at run time (``importlib.import_module``: imdsr/cli.py's command groups, the model
registry's builders) are not seen.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_files(packages: Iterable[str], root: Path = ROOT) -> dict[str, Path]:
    """Module name -> file for every .py under the named top-level packages."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(node: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    if isinstance(node, ast.Import | ast.ImportFrom):
        yield node
        return
    # Under `if TYPE_CHECKING:` only the else branch runs.
    is_guard = isinstance(node, ast.If) and _is_type_checking(node.test)
    for child in node.orelse if is_guard else ast.iter_child_nodes(node):  # type: ignore[attr-defined]
        yield from _runtime_imports(child)


def _absolute(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(module: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``module`` (at ``path``) imports."""
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            source = _absolute(module, node, is_package)
            # `from a import b` names the module a.b where there is one, else a name in a.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source
                       for a in node.names]
        for target in targets:
            # `import a.b.c` of a name that is not a module of ours: its longest known prefix.
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != module:
                found.add(target)
    return found


def import_graph(packages: Iterable[str], root: Path = ROOT) -> dict[str, set[str]]:
    files = module_files(packages, root)
    known = set(files)
    return {name: imports_of(name, path, known) for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)
