"""A stat cache: skip re-reading files whose ``(device, inode, size, mtime, ctime)`` did not change.

The cache lives in ``<root>/.neobuild/statcache``, a state file (``statefile.py``:
header, code stamp, checksum) whose ``marshal`` payload holds the repository root it
belongs to and one entry per file. Loading it is one read and one ``marshal.loads``: a
no-op ``plan`` over thousands of files stats them and reads no file content.

The cache is only ever a hint. A cache that is truncated, corrupt, written by another
format version, neobuild or Python, or that belongs to another root (a copied
``.neobuild/``) is ignored as if it were absent, never trusted.

Racy files (the problem git calls "racy git", https://git-scm.com/docs/racy-git):
a file can be hashed and then modified again within the same timestamp tick, leaving
its stat unchanged. An entry is therefore only persisted when the file's mtime is at
least :data:`RACY_WINDOW_NS` older than the moment this process started hashing; a
file touched just before or during a run is re-hashed next time.

The change time is compared as well as the modification time, as git does: an edit
that puts the old mtime back (``cp -p``, ``touch -r``, ``tar x``, ``os.utime``) cannot
put the ctime back, since the kernel sets it on every change. The racy check applies
to the later of the two.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from neobuild import depends
from neobuild.hashing import hash_file
from neobuild.statefile import ABSENT, StateFile

__all__ = ["FORMAT_VERSION", "RACY_WINDOW_NS", "StatCache", "hash_file"]

FORMAT_VERSION = 2  # 2: entries carry st_ctime_ns
STATE = StateFile("statcache", FORMAT_VERSION, "stat cache")

#: Files modified less than this long before hashing began are not trusted next time.
#: 2 s covers the coarsest common timestamp granularity (FAT) and kernel clock lag.
RACY_WINDOW_NS = 2_000_000_000

#: device, inode, size, mtime_ns, ctime_ns, sha256 digest
_Entry = tuple[int, int, int, int, int, bytes]


class StatCache:
    """Content hashes of files under one root, keyed by their stat.

    Use :meth:`load` to open the cache of a root, :meth:`hash` for every file, and
    :meth:`save` at the end (it writes only when something changed).

    Attributes:
        reads: how many files had their content read by this instance.
        ignored: why an existing cache file was ignored (None when it was used or absent).
    """

    def __init__(self, root: Path, entries: dict[str, _Entry] | None = None) -> None:
        self.root = root.resolve()
        self._root_text = os.fspath(self.root)
        self._root_prefix = self._root_text.rstrip(os.sep) + os.sep
        self.path = STATE.path(self.root)
        self._entries: dict[str, _Entry] = entries or {}
        self._used: set[str] = set()
        self._dirty = False
        self._started_ns = time.time_ns()
        self.reads = 0
        self.ignored: str | None = None

    @classmethod
    def load(cls, root: Path) -> StatCache:
        """Open the cache of ``root``; a missing, corrupt or foreign cache gives an empty one."""
        cache = cls(root)
        entries, why = _decode(*STATE.read(cache.root), str(cache.root))
        if why == ABSENT:
            return cache
        if entries is None:
            cache.ignored = why
            cache._dirty = True  # replace the bad file on save
        else:
            cache._entries = entries
        return cache

    @classmethod
    def open(cls, root: Path) -> StatCache:
        """Alias of :meth:`load`."""
        return cls.load(root)

    def _locate(self, path: Path | str) -> tuple[str, str]:
        """``(cache key, filesystem path)``: keys are root-relative posix paths when
        the file is under the root, absolute paths otherwise."""
        text = os.fspath(path)
        if not os.path.isabs(text):
            rel = text.replace(os.sep, "/")
            return rel, os.path.join(self._root_text, text)
        if text.startswith(self._root_prefix):
            return text[len(self._root_prefix) :].replace(os.sep, "/"), text
        return Path(text).as_posix(), text

    def hash(self, path: Path | str, st: os.stat_result | None = None) -> str:
        """The ``sha256:<hex>`` of a file, read only if its stat changed since cached.

        Args:
            path: an absolute path, or one relative to the root (a repo-relative
                posix string is the fastest form).
            st: the file's ``os.stat`` result when the caller already has it.

        Raises:
            OSError: the file does not exist or cannot be read.
        """
        text = path if isinstance(path, str) else os.fspath(path)
        if st is not None and text in self._entries and not os.path.isabs(text):
            # The common case of a plan with nothing changed: a repo-relative posix key
            # whose stat the caller has; no path arithmetic (issue 14's profile).
            key = full = text
        else:
            key, full = self._locate(text)
            if st is None:
                try:
                    st = os.stat(full)
                except OSError:
                    depends.note_absent(full)
                    raise
        if depends.active():
            depends.note_file(self._locate(text)[1], st)
        self._used.add(key)
        entry = self._entries.get(key)
        if (
            entry is not None
            and entry[0] == st.st_dev
            and entry[1] == st.st_ino
            and entry[2] == st.st_size
            and entry[3] == st.st_mtime_ns
            and entry[4] == st.st_ctime_ns
        ):
            return "sha256:" + entry[5].hex()
        digest = hash_file(Path(self._locate(text)[1]))
        self.reads += 1
        self._entries[key] = (
            st.st_dev,
            st.st_ino,
            st.st_size,
            st.st_mtime_ns,
            st.st_ctime_ns,
            bytes.fromhex(digest[7:]),
        )
        self._dirty = True
        return digest

    def save(self) -> None:
        """Write the cache atomically when it changed; errors writing it are ignored.

        Racy entries (modified or changed within :data:`RACY_WINDOW_NS` of this run) and entries
        of files that no longer exist are dropped.
        """
        cutoff = self._started_ns - RACY_WINDOW_NS
        keep: dict[str, _Entry] = {}
        for key, entry in self._entries.items():
            if max(entry[3], entry[4]) >= cutoff:
                self._dirty = True
                continue
            if key not in self._used and not os.path.exists(self.root / key):
                self._dirty = True
                continue
            keep[key] = entry
        if not self._dirty:
            return
        if not STATE.write(self.root, (str(self.root), keep)):
            return  # a cache that cannot be written only costs time
        self._entries = keep
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)


def _decode(payload: Any, why: str, root: str) -> tuple[dict[str, _Entry] | None, str]:
    """The entries of a state file's payload, or None and why they cannot be used."""
    if payload is None:
        return None, why
    try:
        cached_root, entries = payload
    except (ValueError, TypeError):
        return None, "malformed payload"
    if cached_root != root:
        return None, f"belongs to {cached_root}"
    # The checksum and format version vouch for the structure; only the type is checked.
    if not isinstance(entries, dict):
        return None, "malformed entries"
    return entries, ""
