"""``neobuild verify``: do the outputs on disk match what neo.lock says was built?

Every output the lock lists (archive, exported files, rendered scripts, requests) is
re-hashed from its content (no stat cache: verify is the check that proves it), and
each difference is a :class:`Drift`:

``missing``         the lock lists a file that is not there
``modified``        the file's size or hash differs from the lock; when the model's
                    directory was put in place after neo.lock was last written (a
                    build killed between the two), the detail says so: rerun package
``orphaned``        a model directory or file in the build dir that the lock does not
                    list (logs of a failed build of a declared model excepted), or a
                    lock entry for a model the manifest no longer declares
``pending``         a model of the manifest with no lock entry yet
``config-changed``  the model's manifest entry no longer matches the one it was built
                    from (the lock's ``manifest`` fingerprint part)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from neobuild.fingerprint import manifest_hash
from neobuild.model import Manifest, repo_relative
from neobuild.staleness import LockLike, locked_outputs
from neobuild.statcache import hash_file

SCHEMA_VERSION = 1
DriftKind = Literal["missing", "modified", "orphaned", "pending", "config-changed"]

#: Files a model directory may hold without the lock listing them.
UNLOCKED_MODEL_FILES = frozenset({"export.log", "smoke.log", ".neobuild-output"})


@dataclass(frozen=True)
class Drift:
    """One difference between neo.lock, the manifest and the build directory."""

    kind: DriftKind
    model: str | None
    path: str | None  # repository-relative posix path, when the drift is about a file
    detail: str

    def __str__(self) -> str:
        where = " ".join(x for x in (self.model, self.path) if x)
        return f"{self.kind}: {where}: {self.detail}" if where else f"{self.kind}: {self.detail}"

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "model": self.model, "path": self.path, "detail": self.detail}


@dataclass(frozen=True)
class VerifyReport:
    """Every drift found (empty when the outputs match the lock), plus what was checked."""

    drifts: tuple[Drift, ...]
    checked_files: int
    models: int

    @property
    def ok(self) -> bool:
        return not self.drifts

    def __iter__(self) -> Iterator[Drift]:
        return iter(self.drifts)

    def __len__(self) -> int:
        return len(self.drifts)

    def kinds(self) -> set[str]:
        return {d.kind for d in self.drifts}

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "ok": self.ok,
            "models": self.models,
            "checked_files": self.checked_files,
            "drifts": [d.to_json() for d in self.drifts],
        }

    def render(self) -> str:
        lines = [str(d) for d in self.drifts]
        if self.ok:
            lines.append(f"ok: {self.checked_files} files of {self.models} models match neo.lock")
        else:
            lines.append(f"{len(self.drifts)} drift(s) from neo.lock")
        return "\n".join(lines)


def verify(manifest: Manifest, lock: LockLike) -> VerifyReport:
    """Compare the manifest, neo.lock and the build directory.

    Args:
        manifest: the loaded manifest.
        lock: the current neo.lock.

    Returns:
        A :class:`VerifyReport`; its drifts are ordered by model, then path.
    """
    root = manifest.root
    drifts: list[Drift] = []
    expected: dict[str, set[str]] = {}  # model name -> repo-relative files it may have
    checked = 0
    lock_written = _lock_mtime(root)
    for name, entry in sorted(lock.models.items()):
        model = manifest.models.get(name)
        if model is None:
            drifts.append(
                Drift("orphaned", name, None, "in neo.lock but not declared in the manifest")
            )
        elif entry.fingerprint_parts.get("manifest") not in (None, manifest_hash(model)):
            drifts.append(
                Drift(
                    "config-changed",
                    name,
                    repo_relative(root, model.position.file if model.position else manifest.path),
                    "the manifest entry changed since it was built",
                )
            )
        files = locked_outputs(manifest, name, entry)
        listed = {p for p, _, _ in files}
        for record in entry.requests.values():
            if record.path not in listed:
                files.append((record.path, record.sha256, None))
        expected[name] = {p for p, _, _ in files}
        interrupted = _placed_after(manifest.build_dir / name, lock_written)
        for rel, sha, size in files:
            checked += 1
            drift = _check(root, name, rel, sha, size)
            if drift is not None and drift.kind == "modified" and interrupted:
                drift = Drift("modified", name, rel, f"{INTERRUPTED} ({drift.detail})")
            if drift is not None:
                drifts.append(drift)
    for name in manifest.models:
        if name not in lock.models:
            drifts.append(Drift("pending", name, None, "declared in the manifest, not built yet"))
    drifts.extend(_orphans(manifest, expected))
    drifts.sort(key=lambda d: (d.model or "", d.path or "", d.kind))
    return VerifyReport(drifts=tuple(drifts), checked_files=checked, models=len(lock.models))


#: The detail of a "modified" drift in outputs put in place after neo.lock was written.
INTERRUPTED = (
    "interrupted build: the outputs were replaced after neo.lock was last written, "
    "rerun `neobuild package`"
)


def _lock_mtime(root: Path) -> int | None:
    from neobuild.lockfile import LOCK_NAME

    try:
        return os.stat(root / LOCK_NAME).st_mtime_ns
    except OSError:
        return None


def _placed_after(model_dir: Path, lock_written: int | None) -> bool:
    """Whether the model's directory was renamed into place after neo.lock was written.

    A build swaps the staged directory in (a rename sets its ctime), then records the
    entry; a kill between the two leaves outputs newer than their lock entry.
    """
    if lock_written is None:
        return False
    try:
        return os.stat(model_dir).st_ctime_ns > lock_written
    except OSError:
        return False


def _check(root: Path, model: str, rel: str, sha: str, size: int | None) -> Drift | None:
    path = root / rel
    try:
        st = os.stat(path)
    except OSError:
        return Drift("missing", model, rel, "listed in neo.lock, not on disk")
    if size is not None and st.st_size != size:
        return Drift("modified", model, rel, f"size {st.st_size}, neo.lock says {size}")
    try:
        digest = hash_file(path)
    except OSError as exc:
        return Drift("missing", model, rel, f"cannot be read: {exc.strerror}")
    if digest != sha:
        return Drift("modified", model, rel, f"{digest[:19]}…, neo.lock says {sha[:19]}…")
    return None


def _orphans(manifest: Manifest, expected: dict[str, set[str]]) -> list[Drift]:
    """Model directories and files in the build dir that the lock does not account for."""
    root = manifest.root
    build = manifest.build_dir
    out: list[Drift] = []
    try:
        children = sorted(os.scandir(build), key=lambda e: e.name)
    except OSError:
        return out
    for child in children:
        if child.name.startswith("."):
            continue  # neobuild's own state (staging area, build lock)
        rel = repo_relative(root, Path(child.path))
        if not child.is_dir(follow_symlinks=False):
            # A file (or symlink) directly in the build dir belongs to no model, even
            # when it is named like one: model directories are directories.
            out.append(Drift("orphaned", None, rel, "in the build directory, not in neo.lock"))
            continue
        if child.name not in expected and child.name not in manifest.models:
            out.append(
                Drift("orphaned", child.name, rel, "in the build directory, not in neo.lock")
            )
            continue
        # A declared model not built yet (already reported as pending) may hold the log
        # of a failed attempt; anything else in it is an orphan.
        wanted = expected.get(child.name, set())
        for dirpath, dirnames, filenames in os.walk(child.path):
            dirnames.sort()
            for filename in sorted(filenames):
                full = Path(dirpath) / filename
                file_rel = repo_relative(root, full)
                if file_rel in wanted:
                    continue
                if Path(dirpath) == Path(child.path) and filename in UNLOCKED_MODEL_FILES:
                    continue
                out.append(Drift("orphaned", child.name, file_rel, "not listed in neo.lock"))
    return out
