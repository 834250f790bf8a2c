"""What ``package`` would rebuild, and why: fresh/stale per model and per model x target.

A model is *fresh* when its lock entry's fingerprint equals the one computed now and
every output the lock lists is present and unmodified; otherwise it is *stale*, with
one :class:`Reason` per thing that differs, naming the manifest field or the file.
With ``since``, only the models git reports as affected since ``git merge-base REF
HEAD`` are planned, plus, as a cross-check, every locked model whose fingerprint
changed (git can miss inputs, e.g. untracked-but-ignored sources).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from neobuild import depends
from neobuild.errors import UsageError
from neobuild.fingerprint import (
    FIELDS_PART,
    PARTS,
    SOURCE_PREFIX,
    Fingerprint,
    details_depth,
    fingerprint,
    group_details,
    manifest_hash,
    parse_field_hashes,
    source_patterns,
)
from neobuild.model import Manifest, Model, repo_relative
from neobuild.sources import SourceIndex, glob_regex
from neobuild.statcache import StatCache

SCHEMA_VERSION = 1
Status = Literal["fresh", "stale"]
TemplatesHash = str | Callable[[Model], str]


# ---------------------------------------------------------------- the lock, as plan reads it
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


# ---------------------------------------------------------------- results
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


@dataclass(frozen=True)
class TargetPlan:
    """One model x target item."""

    target: str
    status: Status
    reasons: tuple[Reason, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "status": self.status,
            "reasons": [r.to_json() for r in self.reasons],
        }


@dataclass(frozen=True)
class ModelPlan:
    """One model: its status, every reason, its targets and its fingerprint.

    A fresh model's ``fingerprint`` leaves out the ``fields`` detail (it is not needed
    to tell it is fresh); :meth:`Plan.fingerprint` always returns the complete one.
    """

    name: str
    status: Status
    reasons: tuple[Reason, ...]
    targets: tuple[TargetPlan, ...]
    fingerprint: Fingerprint
    locked_fingerprint: str | None
    changed_since: tuple[str, ...] = ()  # paths git reported, with --since

    @property
    def stale(self) -> bool:
        return self.status == "stale"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "fingerprint": self.fingerprint.digest,
            "locked_fingerprint": self.locked_fingerprint,
            "reasons": [r.to_json() for r in self.reasons],
            "targets": [t.to_json() for t in self.targets],
            "changed_since": list(self.changed_since),
        }


@dataclass(frozen=True)
class Plan:
    """The plan of a run: one :class:`ModelPlan` per planned model, in manifest order."""

    models: tuple[ModelPlan, ...]
    since: str | None = None
    merge_base: str | None = None
    unaffected: tuple[str, ...] = ()  # with --since: selected models git left out
    fingerprints: dict[str, Fingerprint] = field(default_factory=dict, compare=False, repr=False)
    _by_name: dict[str, ModelPlan] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._by_name.update({m.name: m for m in self.models})

    def get(self, name: str) -> ModelPlan:
        """The plan of one model.

        Raises:
            UsageError: the model is not part of this plan.
        """
        try:
            return self._by_name[name]
        except KeyError:
            raise UsageError(
                f"model {name!r} is not in this plan",
                hint="select it (by name, glob or tag) or drop --since/--shard",
            ) from None

    def is_stale(self, name: str) -> bool:
        """True when the model is planned and stale (unplanned models are not stale)."""
        item = self._by_name.get(name)
        return item is not None and item.stale

    def fingerprint(self, name: str) -> Fingerprint:
        """The fingerprint computed for a model (what its lock entry should record).

        Models that ``since`` left out of the plan have one too.

        Raises:
            UsageError: the model was not given to :func:`plan`.
        """
        found = self.fingerprints.get(name)
        return (found if found is not None else self.get(name).fingerprint).complete()

    @property
    def stale(self) -> list[ModelPlan]:
        return [m for m in self.models if m.stale]

    @property
    def fresh(self) -> list[ModelPlan]:
        return [m for m in self.models if not m.stale]

    @property
    def stale_count(self) -> int:
        return len(self.stale)

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON data, versioned by ``schema_version``."""
        targets = [t for m in self.models for t in m.targets]
        return {
            "schema_version": SCHEMA_VERSION,
            "since": self.since,
            "merge_base": self.merge_base,
            "summary": {
                "models": len(self.models),
                "stale": self.stale_count,
                "fresh": len(self.models) - self.stale_count,
                "targets": len(targets),
                "targets_stale": sum(1 for t in targets if t.status == "stale"),
            },
            "models": [m.to_json() for m in self.models],
            "unaffected": list(self.unaffected),
        }

    def render(self, *, show_fresh: bool = False) -> str:
        """A compact plain-text table: one row per stale model (fresh ones when asked)."""
        return render_table(self, show_fresh=show_fresh)


# ---------------------------------------------------------------- planning
def plan(
    manifest: Manifest,
    models: Sequence[Model],
    lock: LockLike,
    *,
    templates_hash: TemplatesHash = "",
    since: str | None = None,
    stat_cache: StatCache | None = None,
) -> Plan:
    """Decide, for every model (and model x target), whether it is fresh or stale.

    Args:
        manifest: the loaded manifest.
        models: the selected models, in the order to report them.
        lock: the current neo.lock.
        templates_hash: the templates' hash, or a function giving it per model
            (``render.templates_hash_for``).
        since: a git ref; only models affected since ``git merge-base REF HEAD`` (and
            locked models whose fingerprint changed) are planned.
        stat_cache: skips re-hashing unchanged files; the caller saves it.

    Raises:
        ScmError: with ``since``, when git cannot answer (not a repository, unknown
            ref, shallow clone without the merge base).
    """
    cache = stat_cache if stat_cache is not None else StatCache(manifest.root)
    index = SourceIndex(manifest.root, build_dir=manifest.build_dir)
    fingerprints = {
        m.name: fingerprint(
            manifest,
            m,
            stat_cache=cache,
            templates_hash=_templates_hash(templates_hash, m),
            index=index,
            details=False,
        )
        for m in models
    }
    chosen: Sequence[Model] = models
    affected: dict[str, list[str]] = {}
    merge_base: str | None = None
    unaffected: tuple[str, ...] = ()
    if since is not None:
        from neobuild import scm

        merge_base = scm.merge_base(manifest.root, since)
        changed = scm.changed_paths(manifest.root, since)
        affected = affected_models(manifest, changed, models, lock=lock)
        chosen = []
        for m in models:
            entry = lock.models.get(m.name)
            cross_check = entry is not None and entry.fingerprint != fingerprints[m.name].digest
            if m.name in affected or cross_check:
                chosen.append(m)
        unaffected = tuple(m.name for m in models if m not in chosen)
    items = tuple(
        _plan_model(manifest, m, lock.models.get(m.name), fingerprints[m.name], cache)
        for m in chosen
    )
    if affected:
        items = tuple(
            _with_changed(item, tuple(sorted(affected.get(item.name, ())))) for item in items
        )
    return Plan(
        models=items,
        since=since,
        merge_base=merge_base,
        unaffected=unaffected,
        fingerprints=fingerprints,
    )


def _with_changed(item: ModelPlan, changed: tuple[str, ...]) -> ModelPlan:
    return ModelPlan(
        name=item.name,
        status=item.status,
        reasons=item.reasons,
        targets=item.targets,
        fingerprint=item.fingerprint,
        locked_fingerprint=item.locked_fingerprint,
        changed_since=changed,
    )


def _templates_hash(value: TemplatesHash, model: Model) -> str:
    return value(model) if callable(value) else value


def _plan_model(
    manifest: Manifest,
    model: Model,
    entry: LockEntryLike | None,
    fp: Fingerprint,
    cache: StatCache,
) -> ModelPlan:
    if entry is None or entry.fingerprint != fp.digest:
        fp.complete()  # the lock will need the details, and naming fields does too
    if entry is None:
        reasons: tuple[Reason, ...] = (Reason("new-model"),)
        targets = tuple(TargetPlan(t.key, "stale", reasons) for t in model.targets)
        return ModelPlan(model.name, "stale", reasons, targets, fp, None)
    found = input_reasons(entry.fingerprint_parts, fp.parts)
    if not found and entry.fingerprint != fp.digest:
        found.append(Reason("inputs-changed", "neo.lock has no breakdown to compare"))
    found.extend(output_reasons(manifest, model.name, entry, cache))
    model_level = tuple(found)
    target_plans: list[TargetPlan] = []
    # A model packaged without compile settings has no requests to miss or check.
    expects_requests = bool(entry.requests) or model.compile.renders_requests
    for target in model.targets:
        own = tuple(request_reasons(manifest, entry, target.key, cache)) if expects_requests else ()
        status: Status = "stale" if (model_level or own) else "fresh"
        target_plans.append(TargetPlan(target.key, status, model_level + own))
        found.extend(r for r in own if r not in found)
    status = "stale" if found else "fresh"
    if found:
        fp.complete()
    return ModelPlan(model.name, status, tuple(found), tuple(target_plans), fp, entry.fingerprint)


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


# ---------------------------------------------------------------- explain
@dataclass(frozen=True)
class PartRow:
    """One part of a fingerprint, old (from neo.lock) vs new."""

    part: str
    old: str | None
    new: str

    @property
    def changed(self) -> bool:
        return self.old != self.new

    def to_json(self) -> dict[str, Any]:
        return {"part": self.part, "old": self.old, "new": self.new, "changed": self.changed}


@dataclass(frozen=True)
class Explanation:
    """The full breakdown of one model's fingerprint, old vs new, and its plan."""

    model: str
    old_digest: str | None
    new_digest: str
    parts: tuple[PartRow, ...]
    fields: tuple[PartRow, ...]  # manifest fields that changed
    sources: tuple[PartRow, ...]  # every source file (old None: added; new "": removed)
    item: ModelPlan

    def to_json(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "model": self.model,
            "status": self.item.status,
            "old": self.old_digest,
            "new": self.new_digest,
            "parts": [p.to_json() for p in self.parts],
            "fields_changed": [p.to_json() for p in self.fields],
            "sources": [p.to_json() for p in self.sources],
            "reasons": [r.to_json() for r in self.item.reasons],
            "targets": [t.to_json() for t in self.item.targets],
        }

    def render(self) -> str:
        lines = [
            f"{self.model}: {self.item.status}",
            f"  fingerprint  old {_short(self.old_digest)}  new {_short(self.new_digest)}",
            f"   {'part':<13} {'old (neo.lock)':<20} new",
        ]
        for row in self.parts:
            mark = "*" if row.changed else " "
            lines.append(f" {mark} {row.part:<13} {_short(row.old):<20} {_short(row.new)}")
        for row in self.fields:
            lines.append(f"  * manifest field {row.part}")
        changed_sources = [s for s in self.sources if s.changed]
        lines.append(
            f"  sources: {len([s for s in self.sources if s.new])} entries, "
            f"{len(changed_sources)} changed"
        )
        for row in changed_sources:
            what = "added" if row.old is None else "removed" if not row.new else "changed"
            lines.append(f"  * {what:<8} {row.part}")
        for reason in self.item.reasons:
            lines.append(f"  - {reason}")
        return "\n".join(lines)


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    if value.startswith("sha256:"):
        return value[7:19]
    return value


def explain(
    manifest: Manifest,
    model: Model,
    lock: LockLike,
    *,
    templates_hash: TemplatesHash = "",
    stat_cache: StatCache | None = None,
) -> Explanation:
    """The full fingerprint breakdown of one model, the lock's values against today's."""
    cache = stat_cache if stat_cache is not None else StatCache(manifest.root)
    fp = fingerprint(
        manifest, model, stat_cache=cache, templates_hash=_templates_hash(templates_hash, model)
    )
    entry = lock.models.get(model.name)
    old = dict(entry.fingerprint_parts) if entry is not None else {}
    item = _plan_model(manifest, model, entry, fp, cache)
    parts = tuple(PartRow(p, old.get(p), fp.parts[p]) for p in PARTS)
    before = parse_field_hashes(old.get(FIELDS_PART, ""))
    after = parse_field_hashes(fp.parts.get(FIELDS_PART, ""))
    fields = tuple(
        PartRow(f, before.get(f), after.get(f, "")) for f in changed_fields(old, fp.parts)
    )
    old_sources, new_sources = comparable_sources(old, fp.parts)
    sources = tuple(
        PartRow(p, old_sources.get(p), new_sources.get(p, ""))
        for p in sorted(old_sources.keys() | new_sources.keys())
    )
    return Explanation(
        model=model.name,
        old_digest=entry.fingerprint if entry is not None else None,
        new_digest=fp.digest,
        parts=parts,
        fields=fields,
        sources=sources,
        item=item,
    )


# ---------------------------------------------------------------- human output
def render_table(the_plan: Plan, *, show_fresh: bool = False) -> str:
    """One row per model: name, status, stale/total targets, first reason (+N more)."""
    rows = [m for m in the_plan.models if show_fresh or m.stale]
    lines: list[str] = []
    if rows:
        width = max(len("MODEL"), *(len(m.name) for m in rows))
        lines.append(f"{'MODEL':<{width}}  STATUS  TARGETS  REASON")
        for m in rows:
            stale_targets = sum(1 for t in m.targets if t.status == "stale")
            targets = f"{stale_targets}/{len(m.targets)}"
            reason = str(m.reasons[0]) if m.reasons else ""
            if len(m.reasons) > 1:
                reason += f" (+{len(m.reasons) - 1} more)"
            lines.append(f"{m.name:<{width}}  {m.status:<6}  {targets:<7}  {reason}".rstrip())
    fresh = len(the_plan.models) - the_plan.stale_count
    summary = f"{the_plan.stale_count} stale, {fresh} up to date"
    if the_plan.since is not None:
        summary += f"; {len(the_plan.unaffected)} unaffected since {the_plan.since}"
    lines.append(summary)
    return "\n".join(lines)
