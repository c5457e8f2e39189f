"""The package's layers only import downwards (bundle → runtime → agents → execution → store)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mirror_neuron"


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> set[str]:
    """Absolute names of the package modules that ``path`` imports.

    Every import counts, wherever it is written: at the top, inside a function or under
    ``TYPE_CHECKING`` (a cycle hidden in a function is still a cycle). ``from a.b import c``
    counts ``a.b`` and, when ``c`` is a module, ``a.b.c``.
    """
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mirror_neuron"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("mirror_neuron"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
    return found


def module_graph() -> dict[str, set[str]]:
    """Module → the package modules importing it runs, including parent packages' ``__init__``
    (importing ``a.b.c`` runs ``a.b`` first) but not the module's own ancestors (already running)."""
    files = {module_name(p) for p in PACKAGE.rglob("*.py")}

    def own(name: str, target: str) -> bool:
        return target == name or name.startswith(target + ".")

    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        name = module_name(path)
        direct = {t for t in imports_of(path) if t in files and not own(name, t)}
        parents = {
            parent
            for t in direct
            for i in range(2, t.count(".") + 1)
            if (parent := ".".join(t.split(".")[:i])) in files and not own(name, parent)
        }
        graph[name] = direct | parents
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycle() -> None:
    """Not in ``runtime/`` (its parts form a DAG), not ``codec``↔``messages``, nowhere."""
    assert cycles(module_graph()) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


MODULES = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}

# (layer, layers it must never import)
FORBIDDEN = {
    "mirror_neuron.errors": ["mirror_neuron."],
    "mirror_neuron._json": ["mirror_neuron."],
    "mirror_neuron._time": ["mirror_neuron."],
    "mirror_neuron._text": ["mirror_neuron."],
    "mirror_neuron.ids": ["mirror_neuron."],
    "mirror_neuron.names": ["mirror_neuron."],
    "mirror_neuron.policy": ["mirror_neuron."],
    "mirror_neuron.messages": ["mirror_neuron.runtime", "mirror_neuron.agents", "mirror_neuron.store"],
    "mirror_neuron.bundle": [
        "mirror_neuron.runtime",
        "mirror_neuron.agents",
        "mirror_neuron.store",
        "mirror_neuron.execution",
    ],
    "mirror_neuron.store": [
        "mirror_neuron.runtime",
        "mirror_neuron.agents",
        "mirror_neuron.execution",
        "mirror_neuron.bundle",
    ],
    "mirror_neuron.execution": ["mirror_neuron.runtime", "mirror_neuron.store", "mirror_neuron.agents"],
    "mirror_neuron.agents": ["mirror_neuron.runtime", "mirror_neuron.store"],
    "mirror_neuron.states": ["mirror_neuron.runtime", "mirror_neuron.store", "mirror_neuron.agents"],
    "mirror_neuron.validation": [
        "mirror_neuron.runtime",
        "mirror_neuron.agents",
        "mirror_neuron.store",
        "mirror_neuron.cli",
        "mirror_neuron.server",
    ],
    "mirror_neuron.codec": ["mirror_neuron.messages"],
    "mirror_neuron.runtime": ["mirror_neuron.api", "mirror_neuron.aio"],
}
INTERFACES = ("mirror_neuron.cli", "mirror_neuron.server", "mirror_neuron.monitor")
#: Packages whose modules interfaces may not reach into: they use what the package exports
#: (the public API, ``Runtime``, ``open_store``), never ``runtime.job`` or ``store.sqlite``.
INTERNALS = (
    "mirror_neuron.runtime.",
    "mirror_neuron.store.",
)
#: Public modules of those packages an interface may name.
PUBLIC = {"mirror_neuron.store.base"}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_upwards(module: str) -> None:
    for layer, banned in FORBIDDEN.items():
        if module == layer or module.startswith(layer + "."):
            bad = {i for i in MODULES[module] for b in banned if i.startswith(b) and not i.startswith(layer)}
            assert not bad, f"{module} imports {sorted(bad)}"
    if not module.startswith(INTERFACES) and module != "mirror_neuron.__main__":
        bad = {i for i in MODULES[module] if i.startswith(INTERFACES)}
        assert not bad, f"{module} imports an interface: {sorted(bad)}"
    else:
        bad = {i for i in MODULES[module] if i.startswith(INTERNALS) and i in MODULES and i not in PUBLIC}
        assert not bad, f"interface {module} reaches past the public API into {sorted(bad)}"


def test_every_layer_named_exists() -> None:
    assert not [m for m in [*FORBIDDEN, *INTERFACES] if m not in MODULES]


def test_every_module_stays_readable_in_one_sitting() -> None:
    long = {
        m: n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
        for m in [module_name(p)]
    }
    assert not long, f"modules over 500 lines: {long}"
