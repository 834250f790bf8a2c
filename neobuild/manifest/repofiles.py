"""The paths a manifest names: what may be written, and what is there in the repository."""

from __future__ import annotations

import functools
import glob
import os
import posixpath
import re
from pathlib import Path
from typing import Any

from neobuild.manifest.positions import Doc
from neobuild.sources import literal_prefix
from neobuild.suggest import closest


class RepoFiles:
    """Answers about the repository's files, each recorded as a probe.

    The validated-manifest cache (``cache.py``) stores the probes and checks them again
    on a hit: a file that appears or goes away invalidates the cached manifest.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        #: "f:rel"/"d:rel" (a file/directory existed), "i:rel" (stayed inside the
        #: repository), "g:glob" (matched no file), "s:mtime:size:rel" (parsed) -> answer
        self.probes: dict[str, bool] = {}
        self._globs: dict[str, bool] = {}
        self._source_index: Any = None

    def source_matches(self, rel: str) -> bool:
        """Whether a repo-relative ``sources`` glob matches a file (as the fingerprint
        expands it), recording what the validated-manifest cache re-checks.

        Cheap on purpose: globs are expanded only here, on a cache miss (a manifest
        file changed). A glob that matched nothing is re-checked on every lookup (so
        its warning goes once it matches); for one that matched, only its literal
        directory prefix is (one stat), so a glob that stops matching for another
        reason is caught at the next manifest change.
        """
        known = self._globs.get(rel)
        if known is not None:
            return known
        from neobuild.sources import SourceIndex

        if self._source_index is None:
            self._source_index = SourceIndex(self.root)
        matched = bool(self._source_index.match([rel]))
        self._globs[rel] = matched
        if not matched:
            self.probes[f"g:{rel}"] = False
        else:
            prefix = literal_prefix(rel)
            if prefix == rel:
                self.exists(rel, "f" if os.path.isfile(os.path.join(self.root, rel)) else "d")
            elif prefix:
                self.exists(prefix, "d")
        return matched

    def exists(self, rel: str, kind: str) -> bool:
        """Whether the repo-relative path exists as a file ("f") or directory ("d")."""
        target = os.path.join(self.root, rel)  # os.path: False, not OSError, on odd names
        ok = os.path.isfile(target) if kind == "f" else os.path.isdir(target)
        self.probes[f"{kind}:{rel}"] = ok
        return ok

    def resolves_inside(self, rel: str) -> bool:
        """Whether a path, symlinks on the way followed, stays inside the repository."""
        real = os.path.realpath(os.path.join(self.root, rel))
        inside = real.startswith(self._real_root + os.sep)
        self.probes[f"i:{rel}"] = inside
        return inside

    def real(self, rel: str) -> str:
        return os.path.realpath(os.path.join(self.root, rel))

    @functools.cached_property
    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def repo_path(self, doc: Doc, value: str) -> str | None:
        """``value`` (relative to ``doc``'s directory) as a repo-relative posix path.

        None when it is absolute or leaves the repository.
        """
        if value.startswith("/") or re.match(r"[A-Za-z]:[\\/]", value) or value.startswith("~"):
            return None
        joined = posixpath.normpath(posixpath.join(doc.rel_dir, value.replace("\\", "/")))
        if joined == ".." or joined.startswith("../"):
            return None
        return joined

    def inside(self, doc: Doc, value: str) -> str | None:
        """:meth:`repo_path`, and None too when a symlink on the way leads outside."""
        rel = self.repo_path(doc, value)
        if rel is not None and not self.resolves_inside(rel):
            return None
        return rel


FLAW_HINT = "write a path relative to the manifest, inside the repository"

#: Limits of a path written in the manifest. The name and path lengths are Linux's
#: NAME_MAX and PATH_MAX; ``**`` in a glob costs a walk of the tree per occurrence.
_NAME_MAX = 255
_PATH_MAX = 4096
_MAX_DOUBLE_STARS = 4
_MAX_COMPONENTS = 64


def path_flaw(value: str, *, pattern: bool) -> str | None:
    """Why ``value`` cannot be a path (or glob) neobuild may use; None when it can."""
    if "\0" in value:
        return "contains a NUL byte"
    bad = next((c for c in value if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        return f"contains the control character U+{ord(bad):04X}"
    if any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        return "is not valid Unicode text"
    if len(value.encode()) > _PATH_MAX:
        return f"is longer than {_PATH_MAX} bytes (the file system's limit)"
    parts = value.replace("\\", "/").split("/")
    if any(len(part.encode()) > _NAME_MAX for part in parts):
        return f"has a name longer than {_NAME_MAX} bytes (the file system's limit)"
    if len(parts) > _MAX_COMPONENTS:
        return f"has more than {_MAX_COMPONENTS} path components"
    stars = sum(part == "**" for part in parts) if pattern else 0
    if stars > _MAX_DOUBLE_STARS:
        return f"uses '**' {stars} times (at most {_MAX_DOUBLE_STARS}: one spans any depth)"
    return None


def path_guess(root: Path, rel: str, written: str) -> str | None:
    """``did you mean '...'?`` for a glob whose literal part names a missing file or
    directory close to an existing one (one directory listing); None otherwise."""
    parts = rel.split("/")
    for i, part in enumerate(parts):
        if glob.has_magic(part):
            return None
        parent = root.joinpath(*parts[:i])
        if os.path.lexists(parent / part):
            continue
        try:
            with os.scandir(parent) as it:
                names = [e.name for e in it if not e.name.startswith(".") or part.startswith(".")]
        except OSError:
            return None
        guess = closest(part, names)
        if guess is None or guess == part:
            return None
        shown = written.split("/")
        if part in shown:
            shown[shown.index(part)] = guess
            return f"did you mean {'/'.join(shown)!r}?"
        return f"did you mean {'/'.join([*parts[:i], guess, *parts[i + 1 :]])!r}?"
    return None
