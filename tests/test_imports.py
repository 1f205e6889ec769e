"""The import graph of the ``simulator`` package has no cycle, lazy imports included, and the fast
engine knows no protocol by module or by name.

Why: a cycle hidden in a function-level import still ties the modules into one unit (each needs
the other to be importable and to be understood), and the next lazy import added in the wrong
place turns it into a load-order crash. A protocol must carry its own fast path, so
``engine/fast.py`` may not import a protocol module or spell a protocol's ``name``.

The graph is read from the source with ``ast`` (nothing is imported to build it): every import
statement anywhere in a module (module level, in functions, in classes, under ``try``), relative
imports resolved, ``from pkg import x`` meaning the submodule ``pkg.x`` when there is one (else
``pkg`` itself), and ``importlib.import_module("...")`` with a literal name. Two things are not
edges: imports under ``if TYPE_CHECKING:`` (they never run), and the implicit import of a parent
package's ``__init__`` when one of its submodules is imported (every module would otherwise sit in
a cycle with a package ``__init__`` that re-exports anything).

From the command line, ``python tests/test_imports.py`` prints every cycle (each strongly connected
component, its modules and the import lines between them) and what the fast engine knows of
protocols, and exits 1 if there is any of either.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parents[1] / "simulator"
FAST_ENGINE = "simulator.engine.fast"

#: module -> {imported module: line of its first import there}
Graph = dict[str, dict[str, int]]


# --------------------------------------------------------------------------- the graph


def module_files(package_dir: Path) -> dict[str, Path]:
    """Every module of the package by dotted name (``pkg/a/__init__.py`` is ``pkg.a``)."""
    out: dict[str, Path] = {}
    root = package_dir.parent
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    """``if TYPE_CHECKING:`` or ``if typing.TYPE_CHECKING:``."""
    if isinstance(test, ast.Name):
        return test.id == "TYPE_CHECKING"
    return isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node that can run: the whole tree except the bodies of ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            children: list[ast.AST] = [node.test, *node.orelse]
        else:
            children = list(ast.iter_child_nodes(node))
        stack.extend(reversed(children))


def _resolve(name: str, is_package: bool, level: int, module: str | None) -> str:
    """The absolute module a (possibly relative) ``from`` import names."""
    if level == 0:
        return module or ""
    base = name.split(".")
    if not is_package:
        base = base[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _targets(node: ast.AST, name: str, is_package: bool, known: set[str]) -> list[str]:
    """The package modules one node imports (none if it is not an import)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name in known]
    if isinstance(node, ast.ImportFrom):
        source = _resolve(name, is_package, node.level, node.module)
        out = []
        for alias in node.names:
            sub = f"{source}.{alias.name}"
            if sub in known:
                out.append(sub)
            elif source in known:
                out.append(source)
        return out
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute | ast.Name)
        and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id)
        == "import_module"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in known
    ):
        return [node.args[0].value]
    return []


def import_graph(package_dir: Path = PACKAGE_DIR) -> Graph:
    """Who imports whom inside the package, with the line of each first import."""
    files = module_files(package_dir)
    known = set(files)
    graph: Graph = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        edges: dict[str, int] = {}
        is_package = path.name == "__init__.py"
        for node in _runtime_nodes(tree):
            for target in _targets(node, name, is_package, known):
                line = getattr(node, "lineno", 0)
                edges[target] = min(edges.get(target, line), line)
        graph[name] = edges
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """The strongly connected components that hold a cycle (two or more modules, or a module
    importing itself), each sorted, largest first (Tarjan's algorithm, iterative)."""
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
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, {})))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in graph.get(node, {}):
                    found.append(sorted(component))
    return sorted(found, key=lambda c: (-len(c), c))


def describe(graph: Graph, components: list[list[str]]) -> str:
    """Each cycle: its modules, then every import between two of them (module:line -> target),
    so that whoever breaks it sees which lines to move."""
    lines = []
    for number, component in enumerate(components, start=1):
        members = set(component)
        lines.append(f"cycle {number}: {len(component)} modules: {', '.join(component)}")
        for module in component:
            for target, line in sorted(graph[module].items(), key=lambda item: (item[1], item[0])):
                if target in members:
                    lines.append(f"    {module}:{line} -> {target}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the checks


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    assert not found, "import cycles in simulator (lazy imports count):\n" + describe(graph, found)


def _protocol_classes() -> dict[str, str]:
    """Every registered protocol's ``name`` -> the module that defines it."""
    from simulator.coding.registry import PROTOCOLS

    return {cls.name: cls.__module__ for cls in PROTOCOLS.values()}


def fast_engine_protocol_imports() -> list[str]:
    """Each import of a protocol module (one defining a registered protocol) by the fast engine."""
    protocol_modules = set(_protocol_classes().values())
    imported = import_graph()[FAST_ENGINE]
    return sorted(
        f"{FAST_ENGINE}:{line} imports {module}"
        for module, line in imported.items()
        if module in protocol_modules
    )


def fast_engine_protocol_names() -> list[str]:
    """Each string literal in the fast engine equal to a registered protocol's ``name``."""
    names = set(_protocol_classes())
    path = module_files(PACKAGE_DIR)[FAST_ENGINE]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names
    ]
    return [f"{FAST_ENGINE}:{line} names protocol {name!r}" for line, name in sorted(found)]


def test_fast_engine_imports_no_protocol_module() -> None:
    bad = fast_engine_protocol_imports()
    assert not bad, "\n".join(bad)


def test_fast_engine_names_no_protocol() -> None:
    bad = fast_engine_protocol_names()
    assert not bad, "\n".join(bad)


# --------------------------------------------------------------------------- the checker itself


def _package(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_checker_finds_lazy_and_relative_cycles(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import f\n",
            "pkg/a.py": "from . import b\ndef f():\n    return b\n",
            "pkg/b.py": "def g():\n    from .sub.c import h\n    return h\n",
            "pkg/sub/__init__.py": "",
            "pkg/sub/c.py": "import pkg.a\nfrom .. import d\nh = 1\n",
            "pkg/d.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n"
                "else:\n    from pkg import e\n"
            ),
            "pkg/e.py": "import importlib\nx = importlib.import_module('pkg.e')\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg"] == {"pkg.a": 1}
    assert graph["pkg.a"] == {"pkg.b": 1}
    assert graph["pkg.b"] == {"pkg.sub.c": 2}  # inside a function, relative into a subpackage
    assert graph["pkg.sub.c"] == {"pkg.a": 1, "pkg.d": 2}
    assert graph["pkg.d"] == {"pkg.e": 5}  # the TYPE_CHECKING branch is no edge, its else is
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.sub.c"], ["pkg.e"]]
    text = describe(graph, cycles(graph))
    assert "cycle 1: 3 modules" in text and "pkg.b:2 -> pkg.sub.c" in text


def test_checker_names_a_package_when_the_name_is_no_submodule(tmp_path: Path) -> None:
    package = _package(
        tmp_path,
        {
            "pkg/__init__.py": "from .a import thing\n",
            "pkg/a.py": "thing = 1\n",
            "pkg/b.py": "from pkg import thing\nfrom . import a\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.b"] == {"pkg": 1, "pkg.a": 2}
    assert cycles(graph) == []


def main() -> int:
    """Print every cycle and every protocol the fast engine knows; exit 1 if there is any."""
    graph = import_graph()
    found = cycles(graph)
    if found:
        print(describe(graph, found))
    else:
        print(f"no import cycles among the {len(graph)} modules of simulator")
    sys.path.insert(0, str(PACKAGE_DIR.parent))  # the registry of this checkout, not another
    fast = fast_engine_protocol_imports() + fast_engine_protocol_names()
    print("\n".join(fast) if fast else f"{FAST_ENGINE} imports and names no protocol")
    return 1 if found or fast else 0


if __name__ == "__main__":
    sys.exit(main())
