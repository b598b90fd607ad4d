"""The layering of synccli, checked from source.

Every module of ``synccli/`` is parsed (``ast``, nothing is imported) and every import it
makes, also inside functions and ``TYPE_CHECKING`` blocks, becomes an edge of the import
graph. No module may import a module of a higher layer or a sibling of its own layer
(``server`` and ``client`` never know each other), not even for a type. The imports that
run (all but ``TYPE_CHECKING`` ones) must have no cycle. A module that matches no layer
fails the test too, so a new package has to be placed on purpose.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "synccli"

# Layer of each component; a module belongs to the component that is its longest prefix.
LAYERS: dict[str, int] = {
    "synccli.errors": 0,
    "synccli.clock": 0,
    # Ctrl+C and SIGTERM for the server, the harness and the proxy (cli/simulate, cli/proxy)
    "synccli.signals": 0,
    "synccli.injection": 0,
    "synccli.version": 0,
    "synccli.domain": 0,
    # the history record types sit below protocol, client, harness and report (decisions.md)
    "synccli.history": 0,
    "synccli.protocol": 1,
    "synccli.faults.kinds": 1,
    # the board rebuilt from the log: pure, on domain values; the store returns its entries
    "synccli.audit": 1,
    "synccli.store": 2,
    # minting and reading JWTs: above the rights rules (protocol.authz), below server and clients
    "synccli.tokens": 2,
    "synccli.server": 3,
    "synccli.client": 3,
    "synccli.faults": 3,
    "synccli.web": 3,
    "synccli.bus": 3,
    "synccli.report": 4,
    "synccli.harness": 5,
    "synccli.cli": 6,
    "synccli.__main__": 6,
    "synccli": 6,
}

# The one exception tree: every layer raises it, L0 included, and it imports nothing.
ERRORS = "synccli.errors"
# Sibling imports that are the point of their module: ``python -m synccli`` runs the CLI.
ALLOWED: frozenset[tuple[str, str]] = frozenset({("synccli.__main__", "synccli.cli")})

# Violations in code being rewritten elsewhere right now; each line goes when that work
# lands (the test then fails on a stale entry, so the list can only shrink).
KNOWN: frozenset[str] = frozenset()
KNOWN_CYCLES: frozenset[str] = frozenset()


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(
    name: str, source: str, is_package: bool, modules: Iterable[str], typing: bool = True
) -> set[str]:
    """The synccli modules that ``source`` (the module ``name``) imports, anywhere in it;
    without ``typing``, not those under ``if TYPE_CHECKING:`` (they never run)."""
    known = set(modules)
    found: set[str] = set()
    package = name.split(".") if is_package else name.split(".")[:-1]
    tree = ast.parse(source)
    skip = set() if typing else _typing_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            # ``from pkg import sub`` imports the module ``pkg.sub`` when there is one.
            subs = {f"{target}.{alias.name}" for alias in node.names} & known
            found.update(subs or {target})
    return {_closest(target, known) for target in found if target.split(".")[0] == "synccli"} - {
        name
    }


def _typing_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes inside ``if TYPE_CHECKING:`` blocks."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    return inside


def _closest(target: str, known: set[str]) -> str:
    """``target`` itself, or the nearest enclosing module for ``import a.b.Name`` forms."""
    while target not in known and "." in target:
        target = target.rsplit(".", 1)[0]
    return target


def import_graph(root: Path = PACKAGE, typing: bool = True) -> dict[str, set[str]]:
    paths = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    return {
        name: imports_of(name, path.read_text(), path.name == "__init__.py", paths, typing)
        for name, path in paths.items()
    }


def component(module: str) -> str | None:
    """The entry of ``LAYERS`` that ``module`` belongs to; the bare package is only itself."""
    if module == "synccli":
        return module
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYERS:
            return prefix
    return None


def layer_violations(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """``a.b -> c.d (L3 -> L5)`` for each upward or sibling import, and each unplaced module."""
    out: list[str] = []
    for source in sorted(graph):
        here = component(source)
        if here is None:
            out.append(f"{source} is in no layer")
            continue
        for target in sorted(graph[source]):
            there = component(target)
            if there is None or there == here:
                continue
            low, high = LAYERS[here], LAYERS[there]
            sibling = low == high and there != ERRORS and (source, there) not in ALLOWED
            if high > low or sibling:
                out.append(f"{source} -> {target} (L{low} -> L{high})")
    return out


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Each import cycle as a path ``[a, b, ..., a]``, one per strongly connected component.

    Tarjan's algorithm with an explicit stack: the graph may be deep.
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1 or node in graph.get(node, ()):
                    components.append(_cycle_path(graph, set(members)))
    return components


def _cycle_path(graph: Mapping[str, Iterable[str]], members: set[str]) -> list[str]:
    """One concrete cycle through the smallest member of a strongly connected component."""
    start = min(members)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child == start:
                    path = [start]
                    while node != start:
                        path.append(node)
                        node = parents[node]
                    return [start, *reversed(path[1:]), start]
                if child in members and child not in parents:
                    parents[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a component always has one


# --------------------------------------------------------------------------- the real code


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_the_graph_sees_imports_inside_functions(graph: dict[str, set[str]]) -> None:
    # open_store imports each backend inside the function, when its URL asks for it
    assert {"synccli.store.sqlite", "synccli.store.odbc"} <= graph["synccli.store"]
    assert "synccli.errors" in graph["synccli.protocol.messages"]


def test_no_import_cycles() -> None:
    graph = import_graph(typing=False)
    found = [" -> ".join(path) for path in cycles(graph)]
    new = [line for line in found if line not in KNOWN_CYCLES]
    stale = sorted(KNOWN_CYCLES - set(found))
    assert not new, "import cycles:\n" + "\n".join(new)
    assert not stale, "fixed, remove from KNOWN_CYCLES:\n" + "\n".join(stale)
    assert graph[ERRORS] == set()


def test_no_upward_or_sibling_imports(graph: dict[str, set[str]]) -> None:
    found = layer_violations(graph)
    new = [line for line in found if line not in KNOWN]
    stale = sorted(KNOWN - set(found))
    assert not new, "imports against the layers:\n" + "\n".join(new)
    assert not stale, "fixed, remove from KNOWN:\n" + "\n".join(stale)


# --------------------------------------------------------------------------- the checker


def test_a_made_up_cycle_is_found() -> None:
    graph = {
        "synccli.store.a": {"synccli.store.b"},
        "synccli.store.b": {"synccli.store.c"},
        "synccli.store.c": {"synccli.store.a", "synccli.errors"},
        "synccli.errors": set(),
        "synccli.store.self": {"synccli.store.self"},
    }
    assert cycles(graph) == [
        ["synccli.store.a", "synccli.store.b", "synccli.store.c", "synccli.store.a"],
        ["synccli.store.self", "synccli.store.self"],
    ]
    assert cycles({"synccli.store.a": {"synccli.errors"}, "synccli.errors": set()}) == []


def test_a_made_up_upward_and_sibling_import_are_found() -> None:
    graph = {
        "synccli.server.app": {"synccli.harness.run", "synccli.store.base", "synccli.server.hub"},
        "synccli.client.fleet": {"synccli.server.app"},
        "synccli.faults.kinds": {"synccli.faults.netns", "synccli.errors"},
        "synccli.domain.values": {"synccli.errors", "synccli.clock"},
        "synccli.__main__": {"synccli.cli.main"},
        "synccli.extra": {"synccli.errors"},
    }
    assert layer_violations(graph) == [
        "synccli.client.fleet -> synccli.server.app (L3 -> L3)",
        "synccli.domain.values -> synccli.clock (L0 -> L0)",
        "synccli.extra is in no layer",
        "synccli.faults.kinds -> synccli.faults.netns (L1 -> L3)",
        "synccli.server.app -> synccli.harness.run (L3 -> L5)",
    ]


def test_imports_are_read_without_running_them() -> None:
    source = (
        "from __future__ import annotations\n"
        "import os\n"
        "from . import hub\n"
        "from ..store import base as b\n"
        "from synccli.domain.values import Row\n"
        "def later():\n"
        "    import synccli.client.fleet\n"
        "if TYPE_CHECKING:\n"
        "    from synccli.report import run\n"
        "raise SystemExit('never run')\n"
    )
    modules = [
        "synccli.server.app",
        "synccli.server.hub",
        "synccli.store.base",
        "synccli.domain.values",
        "synccli.client.fleet",
        "synccli.report.run",
    ]
    assert imports_of("synccli.server.app", source, False, modules) == {
        "synccli.server.hub",
        "synccli.store.base",
        "synccli.domain.values",
        "synccli.client.fleet",
        "synccli.report.run",
    }
    assert "synccli.report.run" not in imports_of(
        "synccli.server.app", source, False, modules, typing=False
    )
