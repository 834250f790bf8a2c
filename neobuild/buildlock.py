"""The repository's build lock: one ``package`` (or ``check``) at a time in a repository.

The lock is an ``flock`` on ``.neobuild/build.lock``: the kernel releases it when its
holder dies, so a lock left by a killed run is never stale. ``.neobuild/build.lock.json``
names the holder (pid, host, start time) for the message another run prints.

``fcntl.flock`` directly where it exists (it is what ``filelock`` uses on POSIX, so the
two interoperate; importing ``filelock`` costs ~20 ms, a tenth of a no-op ``package``);
``filelock`` elsewhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from neobuild.errors import LockError

__all__ = ["build_lock"]

try:  # pragma: no branch - POSIX here; filelock covers the rest
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def build_lock(root: Path, *, wait: bool) -> Iterator[None]:
    """Hold the repository's build lock; say who holds it when it is taken.

    Raises:
        LockError: another run holds it and ``wait`` is False.
    """
    from neobuild.gitignore import state_dir

    state = state_dir(root)
    holder_file = state / "build.lock.json"
    with _flock(state / "build.lock", wait=wait) as taken:
        if not taken:
            raise LockError(
                f"another neobuild run is building in {root}{_read_holder(holder_file)}",
                hint="wait for it to finish, or rerun with --wait-lock to queue behind it",
            )
        try:
            from neobuild.atomic import atomic_write_text

            atomic_write_text(
                holder_file,
                json.dumps(
                    {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
                ),
            )
            yield
        finally:
            with contextlib.suppress(OSError):
                holder_file.unlink()


@contextlib.contextmanager
def _flock(path: Path, *, wait: bool) -> Iterator[bool]:
    """An exclusive lock on ``path``; yields whether it was taken (always, with ``wait``)."""
    if fcntl is None:  # pragma: no cover - not POSIX
        import filelock

        lock = filelock.FileLock(str(path))
        try:
            lock.acquire(timeout=-1 if wait else 0)
        except filelock.Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _read_holder(path: Path) -> str:
    """`` (pid N on HOST, since HH:MM:SS)`` from the holder file, when it names a live run."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(data["pid"]), str(data["host"])
        started = time.strftime("%H:%M:%S", time.localtime(float(data["started"])))
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""  # a killed run's leftover file; the lock holder is another run
        except PermissionError:
            pass
    return f" (pid {pid} on {host}, since {started})"
