"""Static checks of an export entrypoint: does the file define the function?

``validate`` must catch what ``package`` would refuse before running an export,
without running (or importing) user code: the file is parsed with :mod:`ast` and
its top-level names are collected. When a file can define names dynamically (a
star import, a module-level ``__getattr__``, writes through ``globals()``), nothing
is claimed.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Statements whose bodies still run at module level.
_NESTED = (ast.If, ast.Try, ast.With, ast.AsyncWith, ast.For, ast.AsyncFor, ast.While)


@dataclass(frozen=True)
class Scan:
    """The top-level names of one Python file."""

    names: frozenset[str]
    open_ended: bool = False  # names may be defined dynamically: claim nothing
    syntax_error: str | None = None  # "line N: message"

    def lacks(self, name: str) -> bool:
        """Whether the file certainly does not define ``name`` at module level."""
        return self.syntax_error is None and not self.open_ended and name not in self.names

    def functions(self) -> list[str]:
        """The names, public first, for did-you-mean hints."""
        return sorted(self.names, key=lambda n: (n.startswith("_"), n))


def scan(path: Path) -> Scan | None:
    """The names ``path`` defines at module level; None when it cannot be read."""
    try:
        source = path.read_bytes()
    except OSError:
        return None
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError) as exc:
        line = getattr(exc, "lineno", None)
        message = getattr(exc, "msg", None) or str(exc)
        return Scan(frozenset(), syntax_error=f"line {line}: {message}" if line else message)
    names: set[str] = set()
    open_ended = b"globals()" in source or b"sys.modules" in source
    for node in _module_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            if node.name == "__getattr__":
                open_ended = True
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                if alias.name == "*":
                    open_ended = True
                else:
                    names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names.update(_bound(target))
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            names.update(_bound(node.target))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            for item in node.items:
                if item.optional_vars is not None:
                    names.update(_bound(item.optional_vars))
    return Scan(frozenset(names), open_ended=open_ended)


def _module_level(body: list[ast.stmt]) -> list[ast.stmt]:
    """Every statement that runs at module level, inside if/try/with/for blocks too."""
    found: list[ast.stmt] = []
    for node in body:
        found.append(node)
        if isinstance(node, _NESTED):
            for attr in ("body", "orelse", "finalbody"):
                found.extend(_module_level(getattr(node, attr, [])))
            if isinstance(node, ast.Try):
                for handler in node.handlers:
                    found.extend(_module_level(handler.body))
    return found


def _bound(target: ast.expr) -> list[str]:
    if isinstance(target, ast.Name):
        return [target.id]
    if isinstance(target, (ast.Tuple, ast.List)):
        return [name for item in target.elts for name in _bound(item)]
    if isinstance(target, ast.Starred):
        return _bound(target.value)
    return []


def module_candidates(module: str) -> tuple[str, str]:
    """The repo-relative files a ``package.module`` would import from the root."""
    stem = module.replace(".", "/")
    return f"{stem}.py", f"{stem}/__init__.py"
