"""The import graph of src/faceaudit: no cycles, no private names imported across modules.

The graph is built from the source with ``ast`` (not by importing): every ``import`` and ``from ...
import`` statement, at module level or inside functions and classes, is an edge from the module that
holds it to the faceaudit module it names (``from a.b import c`` names the module ``a.b.c`` when that
is a module, else ``a.b``). Imports under ``if TYPE_CHECKING:`` never run and are not edges. A package's
implicit import of its parent ``__init__`` is not an edge either (every submodule would close a cycle
with a package that imports it).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "faceaudit"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((SRC / PACKAGE).rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def import_nodes(tree: ast.AST):
    """Every Import / ImportFrom that can run (not under ``if TYPE_CHECKING:``)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _absolute(node: ast.ImportFrom, importer: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = importer.split(".") if is_package else importer.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, list[str], int]]:
    """(imported module, names taken from it, line) for each faceaudit import of a module."""
    out = []
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in import_nodes(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == PACKAGE]
            continue
        base = _absolute(node, name, path.name == "__init__.py")
        if base.split(".")[0] != PACKAGE:
            continue
        for alias in node.names:
            sub = f"{base}.{alias.name}"
            if sub in modules:
                out.append((sub, [], node.lineno))
            else:
                out.append((base, [alias.name], node.lineno))
    return out


def import_graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for target, _, _ in imports_of(name, path, modules):
            if target in modules and target != name:
                graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                scc = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    scc.append(w)
                    if w == v:
                        break
                if len(scc) > 1:
                    found.append(sorted(scc))
    return sorted(found)


def private_imports(modules: dict[str, Path]) -> list[str]:
    """``module:line imports _name from other`` for each private name (``_x``, not ``__x__``) or private
    module imported from another faceaudit module."""
    out = []

    def private(part: str) -> bool:
        return part.startswith("_") and not (part.startswith("__") and part.endswith("__"))

    for name, path in modules.items():
        for target, names, line in imports_of(name, path, modules):
            if target == name:
                continue
            bad = [n for n in names if private(n)]
            if any(private(p) for p in target.split(".")):
                bad.append(f"(module {target})")
            if bad:
                out.append(f"{name}:{line} imports {', '.join(bad)} from {target}")
    return out


# ----- the checker checks itself on hand-made graphs ---------------------------------------------------
def test_cycle_finder_on_known_graphs():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []
    assert cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": {"d"}}) == [
        ["a", "b", "c"],
        ["d", "e"],
    ]


def test_function_level_and_relative_imports_are_edges(tmp_path):
    pkg = tmp_path / PACKAGE
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("from . import a\n")
    (pkg / "sub" / "a.py").write_text("def f():\n    from faceaudit.sub.b import g, _h\n")
    (pkg / "sub" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from faceaudit.sub import a\n"
        "def g():\n    from .a import f\n_h = 1\n")
    global SRC
    old, SRC = SRC, tmp_path
    try:
        modules = all_modules()
        graph = import_graph(modules)
        assert graph["faceaudit.sub"] == {"faceaudit.sub.a"}
        assert graph["faceaudit.sub.b"] == {"faceaudit.sub.a"}  # the TYPE_CHECKING import is no edge
        assert cycles(graph) == [["faceaudit.sub.a", "faceaudit.sub.b"]]
        assert private_imports(modules) == ["faceaudit.sub.a:2 imports _h from faceaudit.sub.b"]
    finally:
        SRC = old


# ----- the real tree ---------------------------------------------------------------------------------------
def _in(prefix: str, items):
    return [
        c
        for c in items
        if any(
            m == prefix or m.startswith(prefix + ".")
            for m in (c if isinstance(c, list) else [c.split(":")[0]])
        )
    ]


def test_compare_package_has_no_import_cycle_and_no_private_import():
    modules = all_modules()
    assert _in("faceaudit.compare", cycles(import_graph(modules))) == []
    assert _in("faceaudit.compare", private_imports(modules)) == []


def test_no_import_cycle_in_src():
    found = cycles(import_graph(all_modules()))
    assert not found, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_no_private_name_imported_across_modules():
    found = private_imports(all_modules())
    assert not found, "private names imported across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("backend", ["numpy_backend", "torch_backend", "dask_backend"])
def test_each_backend_imports_only_the_kernel_base_and_errors(backend):
    """A backend module depends on the shared kernel, the protocol, the errors (and its own fused
    kernel), never on the engine, the plan's assembly or another backend."""
    modules = all_modules()
    name = f"faceaudit.compare.backends.{backend}"
    allowed = {"faceaudit.compare.kernel", "faceaudit.compare.backends.base", "faceaudit.compare.errors",
               "faceaudit.errors", "faceaudit.scores", "faceaudit.compare.backends.triton_kernel"}
    assert import_graph(modules)[name] <= allowed
