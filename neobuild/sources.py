"""Source globs against one repository: which files a model's ``sources`` match.

The expansion both the fingerprint (``fingerprint.py``) and the manifest's "matches no
file" warning use, so the two never disagree about what a glob means.
"""

from __future__ import annotations

import bisect
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from neobuild import depends

#: Directory names never walked into when expanding source globs (unless a glob's
#: literal prefix names them explicitly).
PRUNED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".neobuild",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    }
)
#: Files at the repository root that neobuild itself writes; never a model's input.
IGNORED_ROOT_FILES = frozenset({"neo.lock", "neo.lock.lock"})

_WILDCARDS = re.compile(r"[*?\[]")


class SourceIndex:
    """Expands source globs against one repository, walking each directory at most once.

    Directories named in :data:`PRUNED_DIRS` and the build directory are not walked.
    File symlinks count (their target's content is hashed); directory symlinks are
    not followed. A file symlink whose target is outside the repository is listed in
    :attr:`outside` (repo-relative path -> target), for the caller to refuse.
    """

    def __init__(self, root: Path, *, build_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self._build_dir = build_dir.resolve() if build_dir is not None else None
        self._build_dir_text = os.fspath(self._build_dir) if self._build_dir is not None else None
        self._walked: dict[str, tuple[list[str], dict[str, os.stat_result]]] = {}
        self._root_prefix = os.path.join(os.fspath(self.root), "")
        self.outside: dict[str, str] = {}

    def _note_link(self, path: str, rel: str) -> None:
        """Record ``rel`` in :attr:`outside` when the symlink ``path`` leads out of the repo."""
        target = os.path.realpath(path)
        if not target.startswith(self._root_prefix):
            self.outside[rel] = target

    def files_under(self, prefix: str) -> dict[str, os.stat_result]:
        """Every file below the repo-relative directory ``prefix`` ("" for the root)."""
        cached = self._walked.get(prefix)
        if cached is not None:
            return cached[1]
        # Reuse the walk of an ancestor directory when there is one.
        parts = prefix.split("/") if prefix else []
        for depth in range(len(parts)):
            ancestor = self._walked.get("/".join(parts[:depth]))
            if ancestor is not None:
                keys, stats = ancestor
                lo = bisect.bisect_left(keys, prefix + "/")
                hi = bisect.bisect_left(keys, prefix + "0")  # "0" sorts right after "/"
                found = {k: stats[k] for k in keys[lo:hi]}
                break
        else:
            found = {}
            self._walk(os.fspath(self.root / prefix if prefix else self.root), prefix, found)
        self._walked[prefix] = (sorted(found), found)
        return found

    def _walk(self, directory: str, rel: str, out: dict[str, os.stat_result]) -> None:
        # Plain strings, no Path per entry: this runs once per directory of the repo.
        depends.note_dir(directory)
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            return
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in PRUNED_DIRS:
                        continue
                    if entry.path == self._build_dir_text:
                        continue
                    self._walk(entry.path, path, out)
                elif entry.is_file():
                    if not rel and entry.name in IGNORED_ROOT_FILES:
                        continue
                    if entry.is_symlink():
                        self._note_link(entry.path, path)
                    out[path] = entry.stat()
                elif entry.is_symlink():  # dangling: a source (or refused) once it resolves
                    depends.note_absent(entry.path)
            except OSError:  # a symlink loop, or an entry gone since the listing
                depends.note_absent(entry.path)
                continue

    def match(self, patterns: Iterable[str]) -> dict[str, os.stat_result]:
        """The files matched by any of the repo-relative glob ``patterns``.

        ``*`` and ``?`` stay inside one path component, ``**`` spans any number of
        them, ``[...]`` is a character class; a pattern without wildcards naming a
        directory means every file below it.
        """
        out: dict[str, os.stat_result] = {}
        for pattern in patterns:
            pattern = pattern.strip("/")
            if pattern.startswith("./"):
                pattern = pattern[2:]
            prefix = literal_prefix(pattern)
            if prefix == pattern:  # no wildcard: a file or a directory
                target = self.root / pattern
                try:
                    st = os.stat(target)
                except OSError:
                    depends.note_absent(os.fspath(target))
                    continue
                if os.path.isfile(target):
                    if os.path.islink(target):
                        self._note_link(os.fspath(target), pattern)
                    out[pattern] = st
                else:
                    out.update(self.files_under(pattern))
                continue
            if pattern == "**" or pattern == prefix + "/**":  # everything below: no regex
                out.update(self.files_under(prefix))  # (a fresh process would compile one
                continue  # regex per model, ~0.2 s on 1,000 models)
            regex = glob_regex(pattern)
            for path, st in self.files_under(prefix).items():
                if regex.match(path):
                    out[path] = st
        return out


def literal_prefix(pattern: str) -> str:
    """The leading components of a glob without wildcards (``models/a`` of ``models/a/*.py``)."""
    parts = pattern.split("/")
    literal: list[str] = []
    for part in parts:
        if _WILDCARDS.search(part):
            break
        literal.append(part)
    return "/".join(literal)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regex of a repo-relative glob (see :meth:`SourceIndex.match`)."""
    out: list[str] = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j = 0
        while j < len(part):
            ch = part[j]
            if ch == "*":
                out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch == "[":
                end = part.find("]", j + 2 if part[j + 1 : j + 2] in ("!", "]") else j + 1)
                if end == -1:
                    out.append(re.escape(ch))
                else:
                    body = part[j + 1 : end]
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                    j = end
            else:
                out.append(re.escape(ch))
            j += 1
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"\Z")
