"""Atomic file writes: a reader sees the old file or the new one, never a torn one.

Every file another process or person reads (``neo.lock``, ``model.tar.gz``, request JSON,
reports) is written through this module: the bytes go to a temporary file in the same
directory, are flushed and fsynced, the temporary file is renamed over the destination with
:func:`os.replace`, and the directory is fsynced so the rename itself survives a crash.
A ``kill -9`` at any moment leaves either the previous content or the new content (and, at
worst, a stray ``.<name>.*.tmp`` file that the next write does not trip over).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["DEFAULT_MODE", "atomic_write_bytes", "atomic_write_text", "atomic_writer"]

DEFAULT_MODE = 0o644
"""Mode of a newly created file (independent of the umask, like the files it replaces)."""


def _fsync_dir(directory: Path) -> None:
    """Fsync a directory so a rename inside it is durable (a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _target_mode(path: Path) -> int:
    """The existing destination's permission bits, or :data:`DEFAULT_MODE`."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return DEFAULT_MODE


@contextlib.contextmanager
def atomic_writer(path: Path, *, sync: bool = True) -> Iterator[BinaryIO]:
    """Open a binary stream whose content replaces ``path`` atomically on success.

    The temporary file lives in ``path``'s directory (so the rename never crosses a file
    system); it is removed if the block raises. The result keeps the destination's existing
    mode, or gets 0o644 when the destination is new.

    Args:
        path: The destination file. Its directory must exist.
        sync: False skips both fsyncs: still atomic for other processes, but a power loss
            may leave an empty or torn file. Only for files that carry a checksum and may
            be thrown away (``statefile.py``).

    Yields:
        A writable binary file object.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    mode = _target_mode(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
            stream.flush()
            os.fchmod(stream.fileno(), mode)
            if sync:
                os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync:
        _fsync_dir(directory)


def atomic_write_bytes(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data`` atomically (see :func:`atomic_writer`).

    Args:
        path: The destination file. Its directory must exist.
        data: The complete new content.
        sync: False skips the fsyncs (see :func:`atomic_writer`).
    """
    with atomic_writer(path, sync=sync) as stream:
        stream.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` encoded as UTF-8, atomically, newlines as written.

    Args:
        path: The destination file. Its directory must exist.
        text: The complete new content.
    """
    atomic_write_bytes(path, text.encode("utf-8"))
