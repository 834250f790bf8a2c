"""Rebuilding a model from its previous export when only render-only inputs changed.

Changing ``compile.role_arn`` in ``defaults`` must not re-run every export of a monorepo.
:func:`reusable_export` decides whether a model's last export may be packed again (only
fields in :data:`RENDER_ONLY_FIELDS` changed, and the exported files still hash as
neo.lock recorded); :func:`kept_archive` keeps the previous ``model.tar.gz`` byte for byte
when the re-packed content would be the same. :mod:`neobuild.pipeline` uses both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.model import Manifest, Model

if TYPE_CHECKING:
    from neobuild.archive import ArchiveInfo
    from neobuild.lockfile import LockEntry

__all__ = ["RENDER_ONLY_FIELDS", "ReusedExport", "kept_archive", "reusable_export"]


# Manifest fields that shape only the rendered files and requests, never the export.
RENDER_ONLY_FIELDS = frozenset(
    {
        "compile",
        "targets",
        "compiler_options",
        "tags",
        "timeout",
        "templates_dir",
        "smoke",
        "compile_check",
    }
)


@dataclass(frozen=True)
class ReusedExport:
    """A previous, verified export that a rebuild packs again instead of re-running it."""

    directory: Path
    previous: LockEntry  # its lock entry: what exported it, its files, its archive


def kept_archive(
    reuse: ReusedExport | None,
    final: Path,
    export_dir: Path,
    files: Sequence[str],
    extras: Mapping[str, bytes],
) -> ArchiveInfo | None:
    """The previous archive, kept as it is, when a reused export packs to the same content.

    Its content is the exported files (verified by :func:`reusable_export`) and the
    generated ``code/`` members: when those hash as the lock recorded, compressing them
    again would only risk different deflate bytes for the same content.
    """
    from neobuild.archive import hash_bytes, keep

    if reuse is None:
        return None
    previous = reuse.previous
    if sorted(files) != sorted(previous.files):
        return None
    for name, data in extras.items():
        record = previous.outputs.get(name)
        if record is None or record.sha256 != hash_bytes(data):
            return None
    return keep(
        final / "model.tar.gz",
        export_dir.parent / "model.tar.gz",
        export_dir,
        {rel: (rec.size, rec.sha256) for rel, rec in previous.files.items()},
        sha256=previous.archive.sha256,
        size=previous.archive.size,
        extra=extras,
    )


def reusable_export(
    manifest: Manifest, model: Model, previous: LockEntry | None, fingerprint: Any
) -> ReusedExport | None:
    """The model's last export when only render-only inputs changed and it is intact.

    Changing ``compile.role_arn`` in ``defaults`` must not re-run every export of a
    monorepo: when sources, requirements, neobuild and adapter versions and every
    export-shaping manifest field are as the lock recorded, and the exported files
    still hash as recorded, the rebuild re-renders, re-writes requests and re-packs (or keeps
    the archive, see :func:`kept_archive`).
    """
    from neobuild.archive import hash_file
    from neobuild.staleness import changed_fields

    if previous is None:
        return None
    old, new = previous.fingerprint_parts, fingerprint.parts
    for part in ("sources", "requirements", "neobuild", "adapter"):
        if old.get(part) != new.get(part):
            return None
    sources_old = {k: v for k, v in old.items() if k.startswith("source:")}
    sources_new = {k: v for k, v in new.items() if k.startswith("source:")}
    if sources_old != sources_new:
        return None
    fields = changed_fields(old, new)
    if not fields or not set(fields) <= RENDER_ONLY_FIELDS:
        return None
    export = manifest.build_dir / model.name / "export"
    try:
        present = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
        if present != sorted(previous.files):
            return None
        for rel, record in previous.files.items():
            if hash_file(export / rel) != record.sha256:
                return None
    except OSError:
        return None
    return ReusedExport(directory=export, previous=previous)
