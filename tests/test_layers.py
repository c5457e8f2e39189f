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
    """Absolute names of the package modules that ``path`` imports (type-checking imports included)."""
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


MODULES = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}

# (layer, layers it must never import)
FORBIDDEN = {
    "mirror_neuron.errors": ["mirror_neuron."],
    "mirror_neuron._json": ["mirror_neuron."],
    "mirror_neuron._time": ["mirror_neuron."],
    "mirror_neuron.ids": ["mirror_neuron."],
    "mirror_neuron.names": ["mirror_neuron."],
    "mirror_neuron.policy": ["mirror_neuron."],
    "mirror_neuron.messages": ["mirror_neuron.runtime", "mirror_neuron.agents", "mirror_neuron.store"],
    "mirror_neuron.bundle": ["mirror_neuron.runtime", "mirror_neuron.agents", "mirror_neuron.store"],
    "mirror_neuron.store": ["mirror_neuron.runtime", "mirror_neuron.agents", "mirror_neuron.execution"],
    "mirror_neuron.execution": ["mirror_neuron.runtime", "mirror_neuron.store"],
    "mirror_neuron.agents": ["mirror_neuron.runtime"],
    "mirror_neuron.runtime": ["mirror_neuron.api", "mirror_neuron.aio"],
}
INTERFACES = ("mirror_neuron.cli", "mirror_neuron.server", "mirror_neuron.tui")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_imports_upwards(module: str) -> None:
    for layer, banned in FORBIDDEN.items():
        if module == layer or module.startswith(layer + "."):
            bad = {i for i in MODULES[module] for b in banned if i.startswith(b) and not i.startswith(layer)}
            assert not bad, f"{module} imports {sorted(bad)}"
    if not module.startswith(INTERFACES) and module != "mirror_neuron.__main__":
        bad = {i for i in MODULES[module] if i.startswith(INTERFACES)}
        assert not bad, f"{module} imports an interface: {sorted(bad)}"


def test_every_module_stays_readable_in_one_sitting() -> None:
    long = {
        m: n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 500
        for m in [module_name(p)]
    }
    assert not long, f"modules over 500 lines: {long}"
