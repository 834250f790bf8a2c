"""A model's output directory: staged, marked as neobuild's, swapped into place.

Every ``<build_dir>/<model>/`` that neobuild writes holds a marker file. A directory
without it was not made by neobuild, so neobuild never replaces or deletes it: a
``build_dir`` pointed at a source tree by mistake costs an error, not the sources.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path

from neobuild.errors import PackageError

MARKER = ".neobuild-output"
STAGING = ".staging"


def staging_dir(final: Path, purpose: str = "build") -> Path:
    """A fresh, marked staging directory beside ``final`` (under ``.staging/``)."""
    path = final.parent / STAGING / f"{final.name}-{purpose}-{uuid.uuid4().hex[:12]}"
    path.mkdir(parents=True)
    mark(path)
    return path


def mark(path: Path) -> None:
    """Mark ``path`` as a neobuild output directory (replaceable on rebuild)."""
    (path / MARKER).write_text("written by neobuild; this directory is replaced on rebuild\n")


def is_ours(path: Path) -> bool:
    return (path / MARKER).is_file()


def check_replaceable(final: Path) -> None:
    """Refuse to touch an existing directory neobuild did not write.

    Raises:
        PackageError: ``final`` exists and is not a neobuild output directory.
    """
    if (final.exists() or final.is_symlink()) and not (final.is_dir() and is_ours(final)):
        raise PackageError(
            f"refusing to replace {final}: it exists and was not written by neobuild",
            hint="point build_dir at a directory only neobuild writes to (e.g. build/neo), "
            "or move that path away",
        )


def swap_into_place(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames; the old tree is removed after.

    Raises:
        PackageError: ``final`` exists and was not written by neobuild.
    """
    check_replaceable(final)
    old = final.parent / STAGING / f"{final.name}-old-{uuid.uuid4().hex[:12]}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def sweep_staging(build_dir: Path) -> None:
    """Remove what killed runs left in ``<build_dir>/.staging`` (call under the build lock)."""
    staging = build_dir / STAGING
    if staging.is_dir():
        shutil.rmtree(staging, ignore_errors=True)


def remove_output(final: Path) -> bool:
    """Delete a model's output directory if neobuild wrote it; True when removed."""
    if final.is_dir() and not final.is_symlink() and is_ours(final):
        shutil.rmtree(final, ignore_errors=True)
        return True
    return False
