"""Shell completion (typer's ``--install-completion``): model names, tags, devices.

Completion runs on every Tab press, so it reads the manifest through its cache and never
fails: anything that goes wrong completes nothing rather than printing an error.
"""

from __future__ import annotations

from pathlib import Path

import typer


def _manifest_path(ctx: typer.Context) -> Path | None:
    root = ctx.find_root().params
    directory = root.get("directory")
    manifest = root.get("manifest")
    from neobuild import api

    try:
        return api.locate_manifest(
            directory=Path(directory) if directory else None,
            manifest=Path(manifest) if manifest else None,
        )
    except Exception:  # completion must never fail
        return None


def model_patterns(ctx: typer.Context, incomplete: str) -> list[str]:
    """Model names, and ``tag:NAME`` for every tag, that start with ``incomplete``."""
    from neobuild import manifest as manifest_mod

    path = _manifest_path(ctx)
    if path is None:
        return []
    try:
        loaded, _ = manifest_mod.check(path)
    except Exception:  # completion must never fail
        return []
    if loaded is None:
        return []
    tags = sorted({tag for model in loaded.models.values() for tag in model.tags})
    choices = [*loaded.models, *(f"tag:{tag}" for tag in tags)]
    return [c for c in choices if c.startswith(incomplete)]


def target_devices(incomplete: str) -> list[str]:
    """Neo's TargetDevice names that start with ``incomplete``."""
    from neobuild.neo import TARGET_DEVICES

    return [d for d in TARGET_DEVICES if d.startswith(incomplete)]


def frameworks(incomplete: str) -> list[str]:
    """Framework names as neo.yaml spells them."""
    from neobuild.model import FRAMEWORKS

    return [f for f in FRAMEWORKS if f.startswith(incomplete)]
