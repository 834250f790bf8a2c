"""``neo.lock``: what was built, from what, with which hashes — read, validated, written.

The lock is YAML that users commit, validated against :data:`LOCK_SCHEMA` when read and
before it is written. The package, one module per job (each imports only those above it):

- ``schema.py``: the name, version and cerberus schema, and a fast validity check;
- ``entries.py``: :class:`Lock`, :class:`LockEntry` and their records (frozen dataclasses);
- ``emitter.py``: the canonical text (:func:`dumps`), written by hand;
- ``reader.py``: :func:`loads` and :func:`read_lock` (with the parse cache);
- ``store.py``: :func:`write_lock`, :func:`update_lock`, :func:`modify_lock` (atomic,
  under a file lock).

See ``docs/lockfile.md`` for the format.
"""

from __future__ import annotations

from neobuild.errors import InvalidLockError
from neobuild.lockfile.emitter import HEADER, dumps
from neobuild.lockfile.entries import (
    FileRecord,
    JobRecord,
    Lock,
    LockEntry,
    RequestRecord,
    carry_jobs,
)
from neobuild.lockfile.reader import CACHE_NAME, loads, read_lock
from neobuild.lockfile.schema import ENTRY_SCHEMA, LOCK_NAME, LOCK_SCHEMA, LOCK_VERSION
from neobuild.lockfile.store import LOCK_TIMEOUT, modify_lock, update_lock, write_lock

__all__ = [
    "CACHE_NAME",
    "ENTRY_SCHEMA",
    "HEADER",
    "LOCK_NAME",
    "LOCK_SCHEMA",
    "LOCK_TIMEOUT",
    "LOCK_VERSION",
    "FileRecord",
    "InvalidLockError",
    "JobRecord",
    "Lock",
    "LockEntry",
    "RequestRecord",
    "carry_jobs",
    "dumps",
    "loads",
    "modify_lock",
    "read_lock",
    "update_lock",
    "write_lock",
]
