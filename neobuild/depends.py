"""What a computation read from the file system, so that its result can be reused.

While :func:`recording` is active, the modules that read the repository for a plan note
every file they stat or hash (:func:`note_file`), every path they found missing
(:func:`note_absent`), every directory they listed (:func:`note_dir`) and the manifest
cache record the manifest came from (:func:`note_manifest`). :meth:`Deps.holds` later
tells, with one ``stat`` per path, whether all of it is still as it was: when it is, the
result computed from it is still right (:mod:`neobuild.planmemo`).

A listed directory's mtime changes when an entry is added, removed or renamed in it, so
directory signatures catch new and deleted files; a file's signature is its device,
inode, size, mtime and ctime (the ctime catches an edit that puts the old mtime back).
As in the stat cache (``statcache.py``), a path changed less than
:data:`~neobuild.statcache.RACY_WINDOW_NS` before the recording started could change
again within the same timestamp tick: such a recording is not :attr:`Deps.trusted`.

Outside :func:`recording` the ``note_*`` functions cost one global lookup.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Deps",
    "active",
    "note_absent",
    "note_dir",
    "note_file",
    "note_manifest",
    "note_path",
    "recording",
]

#: Files or directories changed less than this long before recording began are not trusted
#: (the stat cache's window: the coarsest common timestamp granularity and clock lag).
RACY_WINDOW_NS = 2_000_000_000

#: device, inode, size, mtime_ns, ctime_ns, file type
Signature = tuple[int, int, int, int, int, int]


def signature(st: os.stat_result) -> Signature:
    """What must stay the same for a file or directory to count as unchanged."""
    return (
        st.st_dev,
        st.st_ino,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
        stat.S_IFMT(st.st_mode),
    )


@dataclass
class Deps:
    """The paths a computation depended on, with their signatures then.

    Attributes:
        paths: path -> signature, or None for a path that did not exist.
        manifest: what the manifest cache needs to tell its record still holds
            (:func:`neobuild.manifest.cache.record_holds`), or None when not noted.
        racy: a path changed too recently to be trusted (see the module docstring).
    """

    paths: dict[str, Signature | None] = field(default_factory=dict)
    manifest: dict[str, Any] | None = None
    racy: bool = False
    started_ns: int = field(default_factory=time.time_ns)

    @property
    def trusted(self) -> bool:
        """Whether a result computed from these paths may be reused later."""
        return self.manifest is not None and not self.racy

    def add(self, path: str, st: os.stat_result | None) -> None:
        if st is None:
            self.paths.setdefault(path, None)
            return
        sig = signature(st)
        if self.paths.get(path, sig) != sig:  # seen twice with different stats: changing
            self.racy = True
        self.paths[path] = sig
        if max(st.st_mtime_ns, st.st_ctime_ns) >= self.started_ns - RACY_WINDOW_NS:
            self.racy = True

    def holds(self) -> bool:
        """Whether every path still has the signature it had (missing ones still missing)."""
        for path, sig in self.paths.items():
            try:
                st = os.stat(path)
            except OSError:
                if sig is not None:
                    return False
                continue
            if sig is None or signature(st) != sig:
                return False
        return True

    def to_data(self) -> dict[str, Any]:
        """Builtin types only (for a ``marshal`` state file)."""
        return {"paths": self.paths, "manifest": self.manifest}

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> Deps:
        return cls(paths=dict(data["paths"]), manifest=data["manifest"])


_active: Deps | None = None


@contextlib.contextmanager
def recording() -> Iterator[Deps]:
    """Note what is read until the block ends (one recording at a time, in one thread)."""
    global _active
    previous, _active = _active, Deps()
    try:
        yield _active
    finally:
        _active = previous


def active() -> bool:
    """Whether a recording is running (callers skip building what they would note)."""
    return _active is not None


def note_path(path: str) -> None:
    """``path`` (absolute) was read: stat it now and note it (or note it missing)."""
    if _active is not None:
        try:
            _active.add(path, os.stat(path))
        except OSError:
            _active.add(path, None)


def note_file(path: str, st: os.stat_result) -> None:
    """``path`` (absolute) was read or stat'ed and had ``st``."""
    if _active is not None:
        _active.add(path, st)


def note_absent(path: str) -> None:
    """``path`` (absolute) was looked for and did not exist (or could not be stat'ed)."""
    if _active is not None:
        _active.add(path, None)


def note_dir(path: str) -> None:
    """Directory ``path`` (absolute) was listed: stat it now, before its entries are read."""
    note_path(path)


def note_manifest(data: dict[str, Any]) -> None:
    """The manifest came from (or went into) the manifest cache with these inputs."""
    if _active is not None:
        _active.manifest = data
