"""The manifest's entry points: find it, load it, check it (served from the cache when
nothing it depends on changed)."""

from __future__ import annotations

import os
from pathlib import Path

from neobuild.errors import ManifestError, Problem, UsageError
from neobuild.manifest.cache import lookup, store
from neobuild.manifest.constants import MANIFEST_NAME
from neobuild.model import Manifest


def find_manifest(start: Path, explicit: Path | None = None) -> Path:
    """The manifest to use: ``explicit``, else ``neo.yaml`` in ``start`` or a parent.

    The search stops at the git root (the first directory holding ``.git``). A
    ``neo.yaml`` that exists but is not a file (a directory, a broken symlink) is an
    error, not skipped: the search does not silently fall through to a parent's.

    Raises:
        UsageError: ``start`` is not an existing directory (a mistyped ``-C``), no
            manifest was found, or ``explicit`` / the ``neo.yaml`` found is not a file.
    """
    if not start.is_dir():
        raise _missing_directory(start)
    if explicit is not None:
        if explicit.is_file():
            return explicit.absolute()
        if explicit.exists():
            raise UsageError(
                f"manifest {explicit} is not a file ({_kind(explicit)})",
                hint="pass the path of the neo.yaml file itself to --manifest",
            )
        raise UsageError(
            f"manifest {explicit} does not exist",
            hint="check the --manifest path, or run `neobuild init` to create one",
        )
    directory = start.absolute()
    while True:
        candidate = directory / MANIFEST_NAME
        if candidate.is_file():
            return candidate
        if os.path.lexists(candidate):
            raise UsageError(
                f"{candidate} is not a file ({_kind(candidate)})",
                hint=f"the manifest must be a YAML file named {MANIFEST_NAME}; "
                "rename or remove what is there, or pass --manifest FILE",
            )
        if (directory / ".git").exists() or directory.parent == directory:
            break
        directory = directory.parent
    raise UsageError(
        f"no {MANIFEST_NAME} in {start.absolute()} or its parents (up to the git root)",
        hint="run `neobuild init` to write one, or pass -C DIR / --manifest FILE",
    )


def _missing_directory(start: Path) -> UsageError:
    what = "is not a directory" if os.path.lexists(start) else "does not exist"
    return UsageError(
        f"directory {start.absolute()} {what}",
        hint="check the -C / --directory path",
    )


def _kind(path: Path) -> str:
    """What a path that is not a regular file is, for messages."""
    if path.is_dir():
        return "a directory"
    if path.is_symlink() and not path.exists():
        return "a broken symlink"
    if path.exists():
        return "not a regular file"
    return "missing"


def load(path: Path, *, use_cache: bool = True) -> Manifest:
    """Load and validate the manifest at ``path``.

    Warnings do not fail the load; they are in ``Manifest.warnings``.

    Raises:
        ManifestError: the manifest has errors; ``problems`` holds every problem.
    """
    manifest, problems = check(path, use_cache=use_cache)
    errors = [p for p in problems if p.severity == "error"]
    if manifest is None or errors:
        raise ManifestError(
            f"{path} has {len(errors)} error(s)",
            problems=problems,
            hint="fix the problems listed above; `neobuild validate` lists them again",
        )
    return manifest


def check(path: Path, *, use_cache: bool = True) -> tuple[Manifest | None, list[Problem]]:
    """Validate the manifest at ``path`` and return it with every error and warning.

    The manifest is None when there is at least one error. Problems are sorted by file
    (top level first, then includes) and position.
    """
    path = path.absolute()
    root = path.parent
    try:
        data = path.read_bytes()
    except OSError as exc:
        return None, [Problem(f"cannot read the manifest: {exc.strerror or exc}", file=path)]
    if use_cache:
        cached = lookup(path, root, data)
        if cached is not None:
            return cached, list(cached.warnings)
    from neobuild.manifest.validator import Validator  # only on a miss: a hit needs none of it

    validator = Validator(path, root)
    manifest = validator.run(data)
    problems = validator.sorted_problems()
    if manifest is not None and use_cache:
        store(
            path,
            root,
            data,
            manifest,
            include_patterns=validator.resolver.include_patterns,
            includes=validator.docs[1:],
            probes=validator.files.probes,
        )
    return manifest, problems
