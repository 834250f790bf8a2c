"""What ``package`` would rebuild, and why: fresh/stale per model and per model x target.

A model is *fresh* when its lock entry's fingerprint equals the one computed now and
every output the lock lists is present and unmodified; otherwise it is *stale*, with
one :class:`~neobuild.staleness.Reason` per thing that differs, naming the manifest
field or the file (:mod:`neobuild.staleness` finds them). With ``since``, only the
models git reports as affected since ``git merge-base REF HEAD`` are planned, plus, as
a cross-check, every locked model whose fingerprint changed (git can miss inputs, e.g.
untracked-but-ignored sources). This module owns the plan: its types, :func:`plan` and
its table; ``plan --explain`` is :mod:`neobuild.explanation`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from neobuild.errors import UsageError
from neobuild.fingerprint import Fingerprint, fingerprint
from neobuild.model import Manifest, Model
from neobuild.sources import SourceIndex
from neobuild.staleness import (
    LockEntryLike,
    LockLike,
    Reason,
    affected_models,
    input_reasons,
    output_reasons,
    request_reasons,
)
from neobuild.statcache import StatCache

SCHEMA_VERSION = 1
Status = Literal["fresh", "stale"]
TemplatesHash = str | Callable[[Model], str]


# ---------------------------------------------------------------- results
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
            templates_hash=templates_hash_of(templates_hash, m),
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
        plan_model(manifest, m, lock.models.get(m.name), fingerprints[m.name], cache)
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


def templates_hash_of(value: TemplatesHash, model: Model) -> str:
    """A model's templates hash: ``value``, or ``value(model)`` when it is a function."""
    return value(model) if callable(value) else value


def plan_model(
    manifest: Manifest,
    model: Model,
    entry: LockEntryLike | None,
    fp: Fingerprint,
    cache: StatCache,
) -> ModelPlan:
    """One model against its lock entry (``None``: not locked yet), with its targets.

    ``fp`` is the model's fingerprint as computed now; it is completed (its ``fields``
    detail filled in) when it differs from the lock's or the model is stale: the lock
    and the reasons need the details.
    """
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
