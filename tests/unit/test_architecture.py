"""The layers of docs/architecture.md, enforced: no import goes up a layer, no import cycle.

Every module under ``neobuild/`` is parsed with :mod:`ast`; every import counts, at
module level, inside functions and under ``if TYPE_CHECKING:``. A module's layer comes
from the first entry of :data:`LAYERS` whose name prefix matches its dotted name
(``manifest`` matches ``manifest.py`` and every module of a ``manifest/`` package), so
the table survives a module turning into a package or being split in two.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "neobuild"

#: Highest layer first. A module may import its own layer and the layers below it.
#: Names are prefixes of the dotted module name below ``neobuild`` (``""`` is the
#: package's ``__init__``). Any module not listed is a leaf module.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cli", ("cli", "__main__", "completion")),
    ("api", ("api",)),
    ("commands", ("scheduler", "show")),  # runs over many models
    ("pipeline", ("pipeline",)),  # one model
    ("leaf", ()),  # everything else: manifest, lockfile, archive, render, request...
    ("foundation", ("errors", "results", "")),  # import nothing above them
)
LEAF = "leaf"

#: Import cycles allowed to exist. Empty: a cycle anywhere under neobuild/ fails the test.
KNOWN_CYCLES: frozenset[frozenset[str]] = frozenset()
RANK = {name: len(LAYERS) - i for i, (name, _) in enumerate(LAYERS)}


def module_name(path: Path) -> str:
    """``neobuild/manifest/load.py`` -> ``manifest.load``; ``neobuild/__init__.py`` -> ``""``."""
    parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(name: str) -> str:
    best, best_len = LEAF, -1
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            matches = name == prefix or (prefix != "" and name.startswith(prefix + "."))
            if matches and len(prefix) > best_len:
                best, best_len = layer, len(prefix)
    return best


MODULES: dict[str, Path] = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(target: str) -> str | None:
    """The deepest module of ``neobuild`` that ``target`` (below ``neobuild``) names."""
    parts = target.split(".") if target else []
    while parts:
        name = ".".join(parts)
        if name in MODULES:
            return name
        parts.pop()
    return "" if target == "" or "" in MODULES else None


def imports_of(name: str) -> Iterator[tuple[str, int]]:
    """Every neobuild module that module ``name`` imports, with the line, wherever it is."""
    path = MODULES[name]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "neobuild" or alias.name.startswith("neobuild."):
                    found = _resolve(alias.name.removeprefix("neobuild").lstrip("."))
                    if found is not None:
                        yield found, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: from the package holding this module
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                stem = ".".join([*base, *([node.module] if node.module else [])])
            elif node.module == "neobuild" or (node.module or "").startswith("neobuild."):
                stem = (node.module or "").removeprefix("neobuild").lstrip(".")
            else:
                continue
            for alias in node.names:
                sub = f"{stem}.{alias.name}" if stem else alias.name
                found = sub if sub in MODULES else _resolve(stem)
                if found is not None:
                    yield found, node.lineno


IMPORTS: dict[str, list[tuple[str, int]]] = {name: list(imports_of(name)) for name in MODULES}
GRAPH: dict[str, set[str]] = {
    name: {target for target, _ in found if target != name} for name, found in IMPORTS.items()
}


def upward_imports(name: str, found: list[tuple[str, int]]) -> list[str]:
    """``FILE:LINE: A (layer) imports B (higher layer)`` for each import that goes up."""
    return [
        f"neobuild/{MODULES[name].relative_to(PACKAGE)}:{line}: {name or 'neobuild'} "
        f"({layer_of(name)}) imports {target or 'neobuild'} ({layer_of(target)})"
        for target, line in found
        if RANK[layer_of(target)] > RANK[layer_of(name)]
    ]


def test_the_table_covers_the_commands_layers() -> None:
    # The table must still name real modules after the renames it tolerates.
    for must in ("cli", "api", "scheduler", "pipeline", "errors", "results"):
        assert must in MODULES, f"neobuild/{must}.py is gone: update LAYERS"
    assert layer_of("manifest.load") == LEAF
    assert layer_of("cli") == "cli"
    assert layer_of("errors") == "foundation"
    assert layer_of("") == "foundation"


def test_no_import_goes_up_a_layer() -> None:
    upward = [line for name, found in IMPORTS.items() for line in upward_imports(name, found)]
    assert not upward, "imports that go up a layer:\n" + "\n".join(upward)


def test_an_upward_import_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from neobuild import scheduler\n", encoding="utf-8")
    monkeypatch.setitem(MODULES, "manifest._probe", probe)
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert upward_imports("manifest._probe", list(imports_of("manifest._probe"))) == [
        "neobuild/probe.py:2: manifest._probe (leaf) imports scheduler (commands)"
    ]
    assert upward_imports("scheduler", [("manifest", 1)]) == []


def _cycles() -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    found = _cycles()
    cycles = [" <-> ".join(c or "neobuild" for c in cycle) for cycle in found]
    new = [text for text, c in zip(cycles, found, strict=True) if frozenset(c) not in KNOWN_CYCLES]
    assert not new, "import cycles (type-only imports count):\n" + "\n".join(new)
    gone = KNOWN_CYCLES - {frozenset(c) for c in found}
    assert not gone, f"fixed, remove from KNOWN_CYCLES: {sorted(sorted(c) for c in gone)}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from neobuild import api\n", {"api"}),
        ("from neobuild.errors import NeobuildError\n", {"errors"}),
        ("import neobuild.scheduler\n", {"scheduler"}),
        ("def f():\n    from neobuild import pipeline\n", {"pipeline"}),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from neobuild import cli\n",
            {"cli"},
        ),
    ],
)
def test_every_kind_of_import_is_seen(
    source: str, expected: set[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text(source, encoding="utf-8")
    monkeypatch.setitem(MODULES, "_probe", probe)
    assert {target for target, _ in imports_of("_probe")} == expected
