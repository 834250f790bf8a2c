"""Keep neobuild's own files out of ``git status``: its directories ignore themselves.

``.neobuild/`` (locks, caches) and the build directory each carry a ``.gitignore``
holding ``*``, as virtualenvs and pytest's cache do, so a repository needs no entry
of its own and ``git status`` after ``init`` and a build lists only ``neo.yaml``,
``neo.lock`` and the user's files. A build directory that holds anything neobuild did
not write (``build_dir`` pointed at a source tree by mistake) is left alone: ignoring
it would hide the user's files from git.
"""

from __future__ import annotations

from pathlib import Path

from neobuild.atomic import atomic_write_text

STATE_DIR = ".neobuild"
IGNORE_ALL = "# written by neobuild: nothing in this directory belongs in git\n*\n"

#: Entries neobuild itself makes directly in a build directory.
_BUILD_DIR_OWN = frozenset({".gitignore", ".staging", ".failed"})


def ignore_all(directory: Path) -> None:
    """Give ``directory`` a ``.gitignore`` that ignores everything in it (if it has none)."""
    ignore = directory / ".gitignore"
    if not ignore.exists():
        atomic_write_text(ignore, IGNORE_ALL)


def state_dir(root: Path) -> Path:
    """``<root>/.neobuild``, created (self-ignoring) when missing; returns its path."""
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    ignore_all(state)
    return state


def ignore_build_dir(build_dir: Path) -> None:
    """Make ``build_dir`` self-ignoring when everything in it is neobuild's.

    A ``.gitignore`` already there (neobuild's or the user's) is kept as it is.
    """
    from neobuild import outputs

    if (build_dir / ".gitignore").exists():
        return
    for entry in build_dir.iterdir():
        if entry.name in _BUILD_DIR_OWN:
            continue
        if not (entry.is_dir() and not entry.is_symlink() and outputs.is_ours(entry)):
            return
    ignore_all(build_dir)
