"""neobuild's state files: one format for every file under ``<root>/.neobuild/``.

A state file (the manifest cache, the lock parse cache, the stat cache) remembers work
neobuild can always redo, so it is disposable: a read that finds anything wrong (missing,
truncated, another format, written by another neobuild or Python, made for other input,
a failed checksum, an undecodable payload) returns ``None`` and the reason, never raises;
a write that fails is skipped. Each file is a fixed header followed by the payload::

    magic "NBSTATE\\0" | format version | marshal version | format name
    | sha256(code stamp) | sha256(key) | sha256(payload) | payload

The code stamp is neobuild's version and the size and mtime of every module in the
package: an edited checkout (an editable install) never reuses what older code wrote. The
key is whatever the content was derived from (e.g. the bytes of ``neo.lock``).

Files are renamed into place without fsync (a torn file fails its checksum, and syncing
on every model of a parallel build would slow it down); temp files a killed writer left
behind are removed by the next write once they are a minute old.

Example::

    LOCK_CACHE = StateFile("lockcache", 1, "lock parse cache")
    models, why = LOCK_CACHE.read(root, key=lock_bytes)
    LOCK_CACHE.write(root, models, key=lock_bytes, create=False)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import marshal
import os
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from neobuild import __version__
from neobuild.atomic import atomic_write_bytes
from neobuild.gitignore import STATE_DIR, state_dir

__all__ = ["ABSENT", "STATE_DIR", "StateFile", "code_stamp"]

MAGIC = b"NBSTATE\0"
# magic, format version, marshal version, format name, code stamp, key, payload digest
_NAME_BYTES = 24
_HEADER = struct.Struct(f"<8sII{_NAME_BYTES}s32s32s32s")

#: The reason :meth:`StateFile.read` gives for a file that does not exist.
ABSENT = "absent"

#: Temp files older than this are a killed writer's, not one in progress.
STALE_TEMP_SECONDS = 60.0


@functools.cache
def code_stamp() -> bytes:
    """sha256 of neobuild's version and every module's path, size and mtime (once a process)."""
    parts = [__version__]
    _stat_modules(os.path.dirname(__file__), "", parts)
    return hashlib.sha256("\n".join(parts).encode()).digest()


def _stat_modules(directory: str, prefix: str, parts: list[str]) -> None:
    """Append ``path:size:mtime`` of every ``.py`` file under ``directory``, in name order."""
    try:
        with os.scandir(directory) as it:
            entries = sorted(it, key=lambda entry: entry.name)
    except OSError:
        return
    for entry in entries:
        if entry.name.endswith(".py"):
            with contextlib.suppress(OSError):
                st = entry.stat()
                parts.append(f"{prefix}{entry.name}:{st.st_size}:{st.st_mtime_ns}")
        elif entry.name != "__pycache__" and entry.is_dir():
            _stat_modules(entry.path, f"{prefix}{entry.name}/", parts)


@dataclass(frozen=True)
class StateFile:
    """One kind of state file: ``<root>/.neobuild/<name>``.

    Attributes:
        name: The file name, also recorded in the header.
        version: The payload's format version; bump it when the payload's shape changes.
        what: What the file is, for reasons ("not a neobuild stat cache").
        codec: How the payload is encoded: ``marshal`` (fastest, builtin types only) or
            ``json`` (any JSON value; str subclasses welcome).
    """

    name: str
    version: int
    what: str
    codec: Literal["marshal", "json"] = "marshal"

    def __post_init__(self) -> None:
        if len(self.name.encode()) > _NAME_BYTES:
            raise ValueError(f"state file name {self.name!r} is over {_NAME_BYTES} bytes")

    def path(self, root: Path) -> Path:
        """Where this file lives for the repository at ``root``."""
        return root / STATE_DIR / self.name

    def read(self, root: Path, *, key: bytes = b"") -> tuple[Any, str]:
        """``(payload, "")``, or ``(None, why)`` when the file cannot be used.

        Args:
            root: The repository root.
            key: What the payload must have been made from (as given to :meth:`write`).

        Returns:
            The decoded payload and an empty reason, or None and why it was ignored
            (:data:`ABSENT` when there is no file).
        """
        try:
            data = self.path(root).read_bytes()
        except FileNotFoundError:
            return None, ABSENT
        except OSError as exc:
            return None, f"unreadable: {exc.strerror or exc}"
        return self.decode(data, key=key)

    def decode(self, data: bytes, *, key: bytes = b"") -> tuple[Any, str]:
        """Check and decode the bytes of a state file (see :meth:`read`)."""
        if len(data) < _HEADER.size:
            return None, "truncated"
        magic, version, marshal_version, name, stamp, key_digest, digest = _HEADER.unpack_from(data)
        if magic != MAGIC:
            return None, f"not a neobuild {self.what}"
        if version != self.version or marshal_version != marshal.version:
            return (
                None,
                f"format {version}/{marshal_version}, expected {self.version}/{marshal.version}",
            )
        written = name.rstrip(b"\0").decode(errors="replace")
        if written != self.name:
            return None, f"holds a {written}, not a {self.name}"
        if stamp != code_stamp():
            return None, "written by another version of neobuild"
        if key_digest != hashlib.sha256(key).digest():
            return None, "made from other input"
        payload = memoryview(data)[_HEADER.size :]
        if hashlib.sha256(payload).digest() != digest:
            return None, "checksum mismatch"
        try:
            if self.codec == "json":
                return json.loads(bytes(payload)), ""
            return marshal.loads(payload), ""
        except (ValueError, EOFError, TypeError):
            return None, "undecodable payload"

    def encode(self, value: Any, *, key: bytes = b"") -> bytes:
        """The bytes of a state file holding ``value`` (see :meth:`write`).

        Raises:
            ValueError: ``value`` cannot be encoded with this file's codec.
        """
        if self.codec == "json":
            try:
                payload = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
            except TypeError as exc:
                raise ValueError(str(exc)) from exc
        else:
            payload = marshal.dumps(value)
        header = _HEADER.pack(
            MAGIC,
            self.version,
            marshal.version,
            self.name.encode(),
            code_stamp(),
            hashlib.sha256(key).digest(),
            hashlib.sha256(payload).digest(),
        )
        return header + payload

    def write(self, root: Path, value: Any, *, key: bytes = b"", create: bool = True) -> bool:
        """Replace the file with ``value``, atomically; never raises.

        Args:
            root: The repository root.
            value: The payload (builtin types for ``marshal``, a JSON value for ``json``).
            key: What the payload was made from; :meth:`read` must be given the same.
            create: False writes only where ``.neobuild/`` already exists; True creates
                it (with the ``.gitignore`` that keeps it out of git).

        Returns:
            Whether the file was written (a read-only checkout only costs the cache).
        """
        target = self.path(root)
        try:
            data = self.encode(value, key=key)
            if create:
                state_dir(root)
            elif not target.parent.is_dir():
                return False
            _remove_stale_temps(target)
            atomic_write_bytes(target, data, sync=False)
        except (OSError, ValueError):
            return False
        return True


def _remove_stale_temps(target: Path) -> None:
    """Delete the temp files of writers that died (only old ones: others may be writing)."""
    cutoff = time.time() - STALE_TEMP_SECONDS
    for stale in target.parent.glob(f".{target.name}.*.tmp"):
        with contextlib.suppress(OSError):
            if stale.stat().st_mtime < cutoff:
                stale.unlink()
