"""``plan --explain``: one model's fingerprint, old (neo.lock) vs new, part by part.

An :class:`Explanation` lays the lock entry's breakdown next to today's: every part of
the digest, the manifest fields that changed, every source file (added, removed or
changed), and the model's plan (:func:`neobuild.plan.plan_model`) with its reasons.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from neobuild.fingerprint import FIELDS_PART, PARTS, fingerprint, parse_field_hashes
from neobuild.model import Manifest, Model
from neobuild.plan import SCHEMA_VERSION, ModelPlan, TemplatesHash, plan_model, templates_hash_of
from neobuild.staleness import LockLike, changed_fields, comparable_sources
from neobuild.statcache import StatCache


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
        manifest, model, stat_cache=cache, templates_hash=templates_hash_of(templates_hash, model)
    )
    entry = lock.models.get(model.name)
    old = dict(entry.fingerprint_parts) if entry is not None else {}
    item = plan_model(manifest, model, entry, fp, cache)
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
