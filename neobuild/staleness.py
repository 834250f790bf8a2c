"""Why a model is stale: its lock entry against today's inputs and outputs, as reasons.

Each difference is one :class:`Reason`, naming the manifest field or the file: the
fingerprint breakdowns compared part by part (:func:`input_reasons`), the outputs the
lock lists re-checked on disk (:func:`output_reasons`, :func:`request_reasons`), and,
for ``--since``, the models a set of git-changed paths affects (:func:`affected_models`).
The lock is read through the :class:`LockLike` protocols (``lockfile.Lock`` fits them);
:mod:`neobuild.plan` builds on all of this, and :mod:`neobuild.verify` lists the outputs
to re-hash with :func:`locked_outputs`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from neobuild import depends
from neobuild.fingerprint import (
    FIELDS_PART,
    SOURCE_PREFIX,
    details_depth,
    group_details,
    manifest_hash,
    parse_field_hashes,
    source_patterns,
)
from neobuild.model import Manifest, Model, repo_relative
from neobuild.sources import glob_regex
from neobuild.statcache import StatCache


# ---------------------------------------------------------------- the lock, as read here
class _FileRecord(Protocol):
    @property
    def size(self) -> int: ...
    @property
    def sha256(self) -> str: ...


class _RequestRecord(Protocol):
    @property
    def path(self) -> str: ...
    @property
    def sha256(self) -> str: ...


class LockEntryLike(Protocol):
    """The fields of ``lockfile.LockEntry`` that plan and verify read."""

    @property
    def fingerprint(self) -> str: ...
    @property
    def fingerprint_parts(self) -> Mapping[str, str]: ...
    @property
    def files(self) -> Mapping[str, _FileRecord]: ...
    @property
    def archive(self) -> _FileRecord: ...
    @property
    def archive_path(self) -> str: ...
    @property
    def outputs(self) -> Mapping[str, _FileRecord]: ...
    @property
    def requests(self) -> Mapping[str, _RequestRecord]: ...


class LockLike(Protocol):
    """``lockfile.Lock``: entries by model name."""

    @property
    def models(self) -> Mapping[str, LockEntryLike]: ...


# ---------------------------------------------------------------- reasons
#: Reason kinds (stable identifiers, part of the JSON schema).
REASON_TEXT = {
    "new-model": "new model (not in neo.lock)",
    "new-target": "new target (no request in neo.lock)",
    "manifest-changed": "manifest field changed",
    "source-changed": "source file changed",
    "source-added": "source file added",
    "source-removed": "source file removed",
    "requirements-changed": "requirements changed",
    "templates-changed": "templates changed",
    "neobuild-upgraded": "neobuild version changed",
    "adapter-changed": "framework adapter changed",
    "inputs-changed": "fingerprint changed",
    "output-missing": "output missing",
    "output-modified": "output modified since neo.lock",
}


@dataclass(frozen=True)
class Reason:
    """Why something is stale: a kind from :data:`REASON_TEXT` and what it is about."""

    kind: str
    detail: str = ""

    def __str__(self) -> str:
        if self.kind.startswith("source-") and self.detail.endswith("/"):
            verb = self.kind.removeprefix("source-")  # changed / added / removed
            return f"source files {verb} under {self.detail}"
        text = REASON_TEXT.get(self.kind, self.kind)
        return f"{text}: {self.detail}" if self.detail else text

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "detail": self.detail, "message": str(self)}


# ---------------------------------------------------------------- inputs
def input_reasons(old: Mapping[str, str], new: Mapping[str, str]) -> list[Reason]:
    """What differs between two fingerprint breakdowns, field by field and file by file."""
    reasons: list[Reason] = []
    if old.get("manifest") != new.get("manifest"):
        fields = changed_fields(old, new)
        if fields:
            reasons.extend(Reason("manifest-changed", f) for f in fields)
        else:
            reasons.append(Reason("manifest-changed"))
    if old.get("sources") != new.get("sources"):
        before, after = comparable_sources(old, new)
        specific = [
            Reason("source-changed", p)
            for p in sorted(before.keys() & after.keys())
            if before[p] != after[p]
        ]
        specific += [Reason("source-added", p) for p in sorted(after.keys() - before.keys())]
        specific += [Reason("source-removed", p) for p in sorted(before.keys() - after.keys())]
        reasons.extend(specific or [Reason("source-changed")])
    if old.get("requirements") != new.get("requirements"):
        reasons.append(Reason("requirements-changed"))
    if old.get("templates") != new.get("templates"):
        reasons.append(Reason("templates-changed"))
    if old.get("neobuild") != new.get("neobuild"):
        reasons.append(
            Reason("neobuild-upgraded", f"{old.get('neobuild')} -> {new.get('neobuild')}")
        )
    if old.get("adapter") != new.get("adapter"):
        reasons.append(Reason("adapter-changed", f"{old.get('adapter')} -> {new.get('adapter')}"))
    return reasons


def comparable_sources(
    old: Mapping[str, str], new: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The ``source:`` details of two breakdowns, at the same granularity.

    When one side keeps details per file and the other per directory (a model crossed
    :data:`~neobuild.fingerprint.MAX_SOURCE_DETAILS` files), the per-file side is
    folded into the other's directories. Two different directory depths cannot be
    compared: both come back empty, and the change is reported without a name.
    """
    before = {k[len(SOURCE_PREFIX) :]: v for k, v in old.items() if k.startswith(SOURCE_PREFIX)}
    after = {k[len(SOURCE_PREFIX) :]: v for k, v in new.items() if k.startswith(SOURCE_PREFIX)}
    depth_before, depth_after = details_depth(before), details_depth(after)
    if depth_before == depth_after:
        return before, after
    if depth_before is None and depth_after is not None:
        return group_details(before, depth_after), after
    if depth_after is None and depth_before is not None:
        return before, group_details(after, depth_before)
    return {}, {}


def changed_fields(old: Mapping[str, str], new: Mapping[str, str]) -> list[str]:
    """The manifest fields whose short hashes differ between two breakdowns."""
    before = parse_field_hashes(old.get(FIELDS_PART, ""))
    after = parse_field_hashes(new.get(FIELDS_PART, ""))
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


# ---------------------------------------------------------------- outputs
def _check_file(
    root: Path | str, rel: str, sha256: str, size: int | None, cache: StatCache
) -> Reason | None:
    path = os.path.join(root, rel)
    try:
        st = os.stat(path)
    except OSError:
        depends.note_absent(path)  # root is absolute (the manifest's root)
        return Reason("output-missing", rel)
    depends.note_file(path, st)
    if size is not None and st.st_size != size:
        return Reason("output-modified", rel)
    try:
        digest = cache.hash(path, st)
    except OSError:
        return Reason("output-missing", rel)
    return None if digest == sha256 else Reason("output-modified", rel)


def _rel(manifest: Manifest, path: Path) -> str:
    return repo_relative(manifest.root, path)


def locked_outputs(
    manifest: Manifest, name: str, entry: LockEntryLike
) -> list[tuple[str, str, int | None]]:
    """Every output a lock entry lists, as ``(repo-relative path, sha256, size)``.

    The archive, the exported files (under ``<build_dir>/<model>/export/``) and the
    rendered outputs (``code/…``, ``edge/…``, ``requests/…``, relative to the model's
    build directory). Requests are listed by :func:`request_reasons` per target.
    """
    # Plain string joins (no Path per file): the lock's paths are normalised relative
    # posix paths (its schema rejects "", ".", ".." and "//"), so this equals
    # _rel(manifest, manifest.build_dir / name / rel).
    build_dir = _build_dir_rel(manifest)
    model_dir = f"{build_dir}/{name}" if build_dir != "." else name
    out: list[tuple[str, str, int | None]] = [
        (entry.archive_path, entry.archive.sha256, entry.archive.size)
    ]
    for rel, rec in sorted(entry.files.items()):
        out.append((f"{model_dir}/export/{rel}", rec.sha256, rec.size))
    for rel, rec in sorted(entry.outputs.items()):
        out.append((f"{model_dir}/{rel}", rec.sha256, rec.size))
    return out


_BUILD_DIRS: dict[tuple[Path, Path], str] = {}


def _build_dir_rel(manifest: Manifest) -> str:
    """The build directory relative to the root (absolute when outside it), posix."""
    key = (manifest.root, manifest.build_dir)
    found = _BUILD_DIRS.get(key)
    if found is None:
        found = _BUILD_DIRS[key] = _rel(manifest, manifest.build_dir)
    return found


def output_reasons(
    manifest: Manifest, name: str, entry: LockEntryLike, cache: StatCache
) -> list[Reason]:
    """Outputs the lock lists that are missing or differ from their recorded hash."""
    request_paths = {r.path for r in entry.requests.values()}
    reasons = []
    root = os.fspath(manifest.root)
    for rel, sha, size in locked_outputs(manifest, name, entry):
        if rel in request_paths:
            continue  # reported per target
        reason = _check_file(root, rel, sha, size, cache)
        if reason is not None:
            reasons.append(reason)
    return reasons


def request_reasons(
    manifest: Manifest, entry: LockEntryLike, target_key: str, cache: StatCache
) -> list[Reason]:
    """Why one model x target item is stale on its own: no request locked, or it drifted."""
    record = entry.requests.get(target_key)
    if record is None:
        return [Reason("new-target", target_key)]
    reason = _check_file(manifest.root, record.path, record.sha256, None, cache)
    return [reason] if reason is not None else []


# ---------------------------------------------------------------- --since
def affected_models(
    manifest: Manifest,
    changed: Iterable[str],
    models: Iterable[Model] | None = None,
    *,
    lock: LockLike | None = None,
) -> dict[str, list[str]]:
    """The models a set of changed paths affects, each with the paths that affect it.

    A model is affected by a change to a file its ``sources`` globs match (deleted
    files included), its export file, its requirements file, a templates directory
    it renders from, or a manifest file: the top-level neo.yaml (defaults apply to
    every model) or the include that declares it. When the lock records the
    model's manifest hash, a manifest-file change affects the model only if its
    resolved entry really changed.

    Args:
        manifest: the loaded manifest.
        changed: repo-relative posix paths (from :func:`neobuild.scm.changed_paths`).
        models: the models to consider (default: every model of the manifest).
        lock: the current lock, to tell manifest edits that do not touch a model.
    """
    if models is None:
        models = manifest.models.values()
    changed_set = sorted(set(changed))
    manifest_files = {_rel(manifest, Path(f)) for f in manifest.files} | {
        _rel(manifest, manifest.path)
    }
    top = _rel(manifest, manifest.path)
    manifest_changes = [p for p in changed_set if p in manifest_files]
    global_templates = _rel(manifest, manifest.templates_dir) if manifest.templates_dir else None
    out: dict[str, list[str]] = {}
    for model in models:
        hits: list[str] = []
        regexes = [glob_regex(p.strip("/")) for p in source_patterns(model)]
        literal = {p.strip("/") for p in source_patterns(model)}
        exact = {p for p in (model.export.path, model.requirements_file) if p}
        dirs = [d for d in (model.templates_dir, global_templates) if d]
        for path in changed_set:
            if (
                path in exact
                or any(r.match(path) for r in regexes)
                or any(path.startswith(lit + "/") for lit in literal)
                or any(path.startswith(d.rstrip("/") + "/") for d in dirs)
            ):
                hits.append(path)
        if manifest_changes:
            declared = (
                _rel(manifest, Path(model.position.file)) if model.position is not None else top
            )
            relevant = [p for p in manifest_changes if p in (top, declared)]
            entry = lock.models.get(model.name) if lock is not None else None
            if (
                relevant
                and entry is not None
                and entry.fingerprint_parts.get("manifest") == manifest_hash(model)
            ):
                relevant = []
            hits.extend(relevant)
        if hits:
            out[model.name] = sorted(set(hits))
    return out
