"""Small path helpers shared by the layers: real paths resolved a directory at a time,
and repo-relative globs expanded to files."""

from __future__ import annotations

import glob
import os
from pathlib import Path


class RealPaths:
    """``os.path.realpath`` with each directory resolved once (one instance per pass).

    A thousand models' export files share a few directories; resolving each path from
    the root costs one ``lstat`` per component, this one ``lstat`` per file. Use a new
    instance for each pass over the files: directories are not re-checked.

    Example::

        realpath = RealPaths()
        inside = all(realpath(p).startswith(real_root) for p in paths)
    """

    def __init__(self) -> None:
        self._dirs: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        head, tail = os.path.split(path)
        if tail in ("", ".", "..") or not head or head == path:
            return os.path.realpath(path)
        joined = os.path.join(self._directory(head), tail)
        return os.path.realpath(joined) if os.path.islink(joined) else joined

    def _directory(self, path: str) -> str:
        """The real path of a directory, from the real path of its parent."""
        real = self._dirs.get(path)
        if real is None:
            real = self._dirs[path] = self(path)
        return real


def expand(root: Path, pattern: str) -> list[Path]:
    """Files matching a repo-relative glob, sorted (``**`` spans directories)."""
    if not glob.has_magic(pattern):
        candidate = root / pattern
        return [candidate] if os.path.isfile(candidate) else []
    found = glob.glob(pattern, root_dir=root, recursive=True)
    return sorted(root / f for f in found if os.path.isfile(root / f))
