"""A stat cache: skip re-reading files whose ``(device, inode, size, mtime, ctime)`` did not change.

The cache lives in ``<root>/.neobuild/statcache``: a small header (magic, format
version, the Python ``marshal`` version, a SHA-256 of the payload) followed by a
``marshal`` payload holding the repository root it belongs to and one entry per
file. Loading it is one read and one ``marshal.loads``: a no-op ``plan`` over
thousands of files stats them and reads no file content.

The cache is only ever a hint. A cache that is truncated, corrupt, written by another
format version or Python, or that belongs to another root (a copied ``.neobuild/``) is
ignored as if it were absent, never trusted.

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

import hashlib
import marshal
import os
import struct
import time
from pathlib import Path

from neobuild.atomic import atomic_write_bytes

CACHE_DIR = ".neobuild"
CACHE_NAME = "statcache"
FORMAT_VERSION = 2  # 2: entries carry st_ctime_ns
MAGIC = b"NBSTATC\0"
_HEADER = struct.Struct("<8sII32s")  # magic, format version, marshal version, sha256(payload)

#: Files modified less than this long before hashing began are not trusted next time.
#: 2 s covers the coarsest common timestamp granularity (FAT) and kernel clock lag.
RACY_WINDOW_NS = 2_000_000_000

#: device, inode, size, mtime_ns, ctime_ns, sha256 digest
_Entry = tuple[int, int, int, int, int, bytes]


def hash_file(path: Path) -> str:
    """The ``sha256:<hex>`` digest of a file's content, read in chunks.

    Raises:
        OSError: the file cannot be read.
    """
    with open(path, "rb") as fh:
        return "sha256:" + hashlib.file_digest(fh, "sha256").hexdigest()


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
        self.path = self.root / CACHE_DIR / CACHE_NAME
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
        try:
            data = cache.path.read_bytes()
        except OSError:
            return cache
        entries, why = _decode(data, str(cache.root))
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
                st = os.stat(full)
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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.path, _encode(keep, str(self.root)))
        except OSError:
            return  # a cache that cannot be written only costs time
        self._entries = keep
        self._dirty = False

    def __len__(self) -> int:
        return len(self._entries)


def _encode(entries: dict[str, _Entry], root: str) -> bytes:
    payload = marshal.dumps((root, entries))
    digest = hashlib.sha256(payload).digest()
    return _HEADER.pack(MAGIC, FORMAT_VERSION, marshal.version, digest) + payload


def _decode(data: bytes, root: str) -> tuple[dict[str, _Entry] | None, str]:
    if len(data) < _HEADER.size:
        return None, "truncated"
    magic, version, marshal_version, digest = _HEADER.unpack_from(data)
    if magic != MAGIC:
        return None, "not a neobuild stat cache"
    if version != FORMAT_VERSION or marshal_version != marshal.version:
        return (
            None,
            f"format {version}/{marshal_version}, expected {FORMAT_VERSION}/{marshal.version}",
        )
    payload = data[_HEADER.size :]
    if hashlib.sha256(payload).digest() != digest:
        return None, "checksum mismatch"
    try:
        cached_root, entries = marshal.loads(payload)
    except (ValueError, EOFError, TypeError):
        return None, "undecodable payload"
    if cached_root != root:
        return None, f"belongs to {cached_root}"
    # The checksum and format version vouch for the structure; only the type is checked.
    if not isinstance(entries, dict):
        return None, "malformed entries"
    return entries, ""
