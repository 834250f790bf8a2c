"""Whether a validated manifest still holds: its include files and the validator's probes.

The manifest cache (``manifest/cache.py``) records, with each validated manifest, the
include globs and files it read and every probe the validator made of the repository
(``manifest/repofiles.py``): ``f:``/``d:`` a path is a file or a directory, ``i:`` a path
resolves inside the repository, ``s:`` an export file kept its mtime and size, ``g:`` a
sources glob matched no file. When they all answer as recorded, the manifest would
validate to the same result. The plan memo (``planmemo.py``) asks the same question
before it trusts a remembered plan; this module imports nothing heavy for it.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import Any

from neobuild.paths import RealPaths, expand

__all__ = ["inputs_hold", "inputs_hold_for"]


def inputs_hold(noted: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> bool:
    """Whether the manifest noted by a recording would load the same today.

    ``noted`` is what :func:`neobuild.depends.note_manifest` received: the top-level
    file's content hash, and the includes and probes of its cache record. ``known`` maps
    absolute paths to :func:`neobuild.depends.signature` results already checked to be
    current (:meth:`neobuild.depends.Deps.holds`): a probe of such a path needs no syscall.
    """
    try:
        path, root = Path(noted["path"]), Path(noted["root"])
        if hashlib.sha256(path.read_bytes()).hexdigest() != noted["sha256"]:
            return False
        return inputs_hold_for(path, root, noted, known or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return False


def inputs_hold_for(
    path: Path, root: Path, record: Mapping[str, Any], known: Mapping[str, Any] | None = None
) -> bool:
    """The include files and the validator's probes are as the record says.

    Raises:
        OSError, ValueError, KeyError...: the record is malformed or a file unreadable.
    """
    includes: list[str] = []
    for pattern in record["include_patterns"]:
        rel = posixpath.normpath(pattern)
        includes.extend(p.relative_to(root).as_posix() for p in expand(root, rel) if p != path)
    if sorted(set(includes)) != sorted(rel for rel, _ in record["includes"]):
        return False
    for rel, digest in record["includes"]:
        if hashlib.sha256((root / rel).read_bytes()).hexdigest() != digest:
            return False
    real_root = os.path.realpath(root) + os.sep
    realpath = RealPaths()
    index: Any = None
    base = os.path.join(root, "")  # plain strings: a thousand stats stay cheap
    known = known or {}
    for probe, existed in record["probes"].items():
        kind, rel = probe.split(":", 1)
        target = base + rel
        if kind == "i":
            now = realpath(target).startswith(real_root)
        elif kind == "s":  # an export file parsed for its function: unchanged since
            mtime, size, rel = rel.split(":", 2)
            sig = known.get(base + rel)
            if sig is not None:  # (dev, ino, size, mtime_ns, ctime_ns, type), still current
                now = sig[3] == int(mtime) and sig[2] == int(size)
            else:
                stat = os.stat(base + rel)
                now = stat.st_mtime_ns == int(mtime) and stat.st_size == int(size)
        elif kind == "g":  # a sources glob that matched no file (rare: usually none)
            if index is None:
                from neobuild.sources import SourceIndex

                index = SourceIndex(root)
            now = bool(index.match([rel]))
        elif (sig := known.get(target)) is not None:
            now = (S_ISREG if kind == "f" else S_ISDIR)(sig[5])
        else:
            now = os.path.isfile(target) if kind == "f" else os.path.isdir(target)
        if now != existed:
            return False
    return True
