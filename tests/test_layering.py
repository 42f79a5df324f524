"""The registry is on top: the import graph of ``src/prism_match`` has no
circle, nothing the registry depends on imports it back, and no module
reaches into another module's underscore names.

The graph is read from the source (every ``import`` and ``from … import``,
at module level or inside functions), so a lazy import cannot hide a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "src" / "prism_match"
# Modules that sit above the registry and may import it.
ABOVE = {"__init__", "__main__", "cli", "distributed", "registry"}


def _modules() -> dict[str, ast.Module]:
    return {p.stem: ast.parse(p.read_text(), str(p)) for p in sorted(PACKAGE.glob("*.py"))}


def _imports(tree: ast.Module) -> dict[str, set[str]]:
    """module it imports → names taken from it (``*`` for ``import x``)."""
    out: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.setdefault(node.module.split(".")[0], set()).update(a.name for a in node.names)
            else:  # from . import a, b
                for alias in node.names:
                    out.setdefault(alias.name, set()).add("*")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("prism_match."):
            out.setdefault(node.module.split(".")[1], set()).update(a.name for a in node.names)
    return out


def _graph() -> dict[str, dict[str, set[str]]]:
    modules = _modules()
    return {name: {dep: names for dep, names in _imports(tree).items() if dep in modules or dep.startswith("_")}
            for name, tree in modules.items()}


def test_the_import_graph_has_no_circle():
    graph = {name: set(deps) - {"__init__"} for name, deps in _graph().items()}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                raise AssertionError(" -> ".join(path + [node, dep]))
            if dep not in state:
                visit(dep, path + [node])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


def test_nothing_below_the_registry_imports_it():
    offenders = sorted(name for name, deps in _graph().items() if "registry" in deps and name not in ABOVE)
    assert offenders == []


def test_no_module_takes_another_modules_private_names():
    offenders = []
    for name, deps in _graph().items():
        for dep, names in deps.items():
            if dep.startswith("_"):
                continue  # the compiled core and private helper modules are imported by their users
            offenders += [f"{name} imports {dep}.{n}" for n in names if n.startswith("_") and n != "*"]
    assert offenders == []


def test_no_module_reads_private_attributes_of_a_registry_or_engine():
    offenders = []
    for name, tree in _modules().items():
        if name == "registry":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__") \
                    and isinstance(node.value, ast.Name) and node.value.id in ("registry", "engine", "core"):
                offenders.append(f"{name}: {node.value.id}.{node.attr}")
    assert offenders == []
