"""codeloop's modules import each other without cycles.

A cycle makes import order matter, hides which layer owns what, and breaks as soon as someone moves a line. The
graph is built from the source with `ast`: every import at module level counts, including those under
`if TYPE_CHECKING:` (mypy follows them, and a type-only cycle is still two modules that know each other).
Imports inside functions are left out: they are how optional or heavy dependencies load on first use.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import codeloop

PACKAGE_ROOT = Path(codeloop.__file__).parent


def _modules() -> dict[str, tuple[Path, bool]]:
    """Dotted module name -> (file, is a package's __init__)."""
    found: dict[str, tuple[Path, bool]] = {}
    for path in PACKAGE_ROOT.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        found[".".join(parts)] = (path, is_package)
    return found


def _module_level_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements that run when the module is imported (or type-checked): not those inside functions."""
    pending: list[ast.AST] = list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def _targets(
    module: str, is_package: bool, node: ast.Import | ast.ImportFrom, modules: dict[str, tuple[Path, bool]]
) -> set[str]:
    """The codeloop modules an import statement loads (`from pkg import submodule` names the submodule)."""
    if isinstance(node, ast.Import):
        candidates = [alias.name for alias in node.names]
    else:
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - node.level + 1]
            base = ".".join([*anchor, *([node.module] if node.module else [])])
        else:
            base = node.module or ""
        submodules = [f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules]
        names_from_base = len(submodules) < len(node.names)
        candidates = submodules + ([base] if names_from_base else [])
    targets = set()
    for name in candidates:
        while name and name not in modules:  # `import a.b.c` of a non-module attribute: its module
            name = name.rpartition(".")[0]
        if name and name != module:
            targets.add(name)
    return targets


def import_graph() -> dict[str, set[str]]:
    """Module -> the codeloop modules it imports at module level."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        graph[module] = set()
        for node in _module_level_imports(tree):
            graph[module] |= _targets(module, is_package, node, modules)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path that starts and ends at the same module, or None (depth-first search)."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = fully explored
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_checker_sees_a_cycle_and_a_type_only_import() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import X\ndef f():\n    from .c import Y\n"
    )
    modules = {
        "p": (Path("p"), True),
        "p.a": (Path("a"), False),
        "p.b": (Path("b"), False),
        "p.c": (Path("c"), False),
    }
    found = set().union(*(_targets("p.a", False, node, modules) for node in _module_level_imports(tree)))
    assert found == {"p.b"}  # the TYPE_CHECKING import counts, the one inside a function does not
    assert find_cycle({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": {"p.a"}}) == ["p.a", "p.b", "p.c", "p.a"]
    assert find_cycle({"p.a": {"p.b"}, "p.b": {"p.c"}, "p.c": set()}) is None


def test_codeloop_modules_import_each_other_without_cycles() -> None:
    graph = import_graph()
    assert "codeloop.agents" in graph and "codeloop.tools.base" in graph  # the walk found the package
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# Imports inside functions that point back "up" on purpose, each for a public entry point that must stay where
# users look for it. Any other function-level import that closes a cycle is a layering mistake.
LAZY_UPWARD_IMPORTS = {
    # Tool.from_mcp / from_langchain / to_dict / from_dict / save / push_to_hub: public classmethods on the
    # base class whose work (and optional SDKs: mcp, langchain, huggingface_hub) lives in the modules built
    # on top of it.
    ("codeloop.tools.base", "codeloop.tools.mcp"),
    ("codeloop.tools.base", "codeloop.tools.interop"),
    ("codeloop.tools.base", "codeloop.tools.sharing"),
    # FallbackModel accepts spec strings and resolves them with codeloop.models.model(), the package's factory.
    ("codeloop.models.fallback", "codeloop.models"),
}


def all_imports_graph() -> dict[str, set[str]]:
    """Module -> every codeloop module it imports, inside functions too (package facades: module level only,
    as their function-level imports are the lazy re-exports of `__getattr__`)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, (path, is_package) in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        nodes = (
            _module_level_imports(tree)
            if is_package
            else (n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
        )
        graph[module] = set()
        for node in nodes:
            graph[module] |= _targets(module, is_package, node, modules)
    return graph


def test_even_imports_inside_functions_point_one_way_apart_from_the_listed_entry_points() -> None:
    graph = all_imports_graph()
    for source, target in LAZY_UPWARD_IMPORTS:
        assert target in graph[source], f"{source} no longer imports {target}: drop it from the list"
        graph[source].discard(target)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle (counting imports inside functions): " + " -> ".join(cycle or [])


def test_the_console_is_a_listener_that_knows_nothing_of_the_loop() -> None:
    graph = all_imports_graph()
    assert not graph["codeloop.console"] & {"codeloop.agents", "codeloop.effects"}
    assert "codeloop.console" not in graph["codeloop.effects"]
