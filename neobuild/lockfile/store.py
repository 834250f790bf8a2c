"""Write ``neo.lock``: validated, atomically, one update at a time under a file lock.

The file lock is ``.neobuild/neo.lock.lock`` beside the lock, so parallel model builds
(threads or processes) never lose each other's entries, and a build killed at any moment
leaves a lock that parses (the previous version or the new one).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from neobuild.atomic import atomic_write_bytes
from neobuild.errors import LockError
from neobuild.lockfile.emitter import dumps_data
from neobuild.lockfile.entries import Lock, LockEntry
from neobuild.lockfile.reader import read_lock, remember_parse

if TYPE_CHECKING:
    import filelock

LOCK_TIMEOUT = 120.0
"""Seconds :func:`update_lock` waits for another process's update before giving up."""


def _guard(path: Path, timeout: float) -> filelock.FileLock:
    """The file lock of ``path``: ``.neobuild/<name>.lock`` beside it, out of ``git status``."""
    import filelock

    from neobuild.gitignore import state_dir

    return filelock.FileLock(state_dir(path.parent) / (path.name + ".lock"), timeout=timeout)


@contextlib.contextmanager
def _locked(path: Path, timeout: float) -> Iterator[None]:
    import filelock

    guard = _guard(path, timeout)
    try:
        guard.acquire()
    except filelock.Timeout as exc:
        raise LockError(
            f"{path} is being updated by another process and was not released within "
            f"{timeout:g} s (lock file {guard.lock_file})",
            hint="wait for the other neobuild run to finish, then try again",
        ) from exc
    try:
        yield
    finally:
        guard.release()


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files of writers that died mid-write (only called under the lock)."""
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()


def _write_unlocked(path: Path, lock: Lock) -> None:
    text, data = dumps_data(lock)
    _remove_stale_temps(path)
    encoded = text.encode("utf-8")
    try:
        atomic_write_bytes(path, encoded)
    except OSError as exc:
        raise LockError(
            f"cannot write {path}: {exc.strerror or exc}",
            hint="check that the repository directory is writable",
        ) from exc
    # The next read (the next update_lock of a parallel build, or plan) skips parsing.
    remember_parse(path, hashlib.sha256(encoded).digest(), data["models"])


def write_lock(path: Path, lock: Lock, *, timeout: float = LOCK_TIMEOUT) -> None:
    """Validate ``lock`` and replace ``path`` with it atomically, under the lock's file lock.

    Raises:
        LockError: the content is invalid, the file lock is held too long, or the write fails.
    """
    path = Path(path)
    with _locked(path, timeout):
        _write_unlocked(path, lock)


def update_lock(
    path: Path, updates: Mapping[str, LockEntry | None], *, timeout: float = LOCK_TIMEOUT
) -> Lock:
    """Read-modify-write ``neo.lock`` under its file lock: set or (with None) remove entries.

    Parallel builds (threads or processes) call this as each model finishes; the file lock
    makes the updates happen one at a time, so none is lost.

    Args:
        path: The lock file (``<root>/neo.lock``).
        updates: Model name -> new entry, or None to remove the model.
        timeout: Seconds to wait for another update to finish.

    Returns and raises as :func:`modify_lock`.
    """
    return modify_lock(path, lambda _current: updates, timeout=timeout)


def modify_lock(
    path: Path,
    change: Callable[[Lock], Mapping[str, LockEntry | None]],
    *,
    timeout: float = LOCK_TIMEOUT,
) -> Lock:
    """Like :func:`update_lock`, with updates computed from the current lock, under the lock.

    Use it when a new entry derives from the existing one (e.g. adding a compilation job to
    an entry): reading the lock first and calling :func:`update_lock` later would overwrite
    an entry another process changed in between.

    Args:
        path: The lock file.
        change: Called once with the current lock (while the file lock is held); returns
            model name -> new entry, or None to remove the model.
        timeout: Seconds to wait for another update to finish.

    Returns:
        The lock as written.

    Raises:
        InvalidLockError: the existing lock is invalid (it is not overwritten).
        LockError: the file lock was not acquired in time, or the write failed.
    """
    path = Path(path)
    with _locked(path, timeout):
        current = read_lock(path)
        models = dict(current.models)
        for name, entry in change(current).items():
            if entry is None:
                models.pop(name, None)
            else:
                models[name] = entry
        new = Lock(models=dict(sorted(models.items())))
        if new != current or not path.exists():
            _write_unlocked(path, new)
        return new
