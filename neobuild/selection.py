"""Choosing models by name, glob or ``tag:NAME``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from neobuild.errors import UsageError
from neobuild.model import Manifest, Model
from neobuild.suggest import closest, did_you_mean


def select_models(
    manifest: Manifest, patterns: Sequence[str] = (), *, all_models: bool = False
) -> list[Model]:
    """The models matched by ``patterns``, in manifest order (all when none are given).

    A pattern is an exact name, a glob (``vision-*``) or ``tag:NAME``. A pattern that
    matches nothing is a usage error with a did-you-mean.

    Raises:
        UsageError: a pattern matched no model, or names were given with ``--all``.
    """
    if all_models and patterns:
        raise UsageError(
            "give model names or --all, not both", hint="drop --all to build only the named models"
        )
    if not patterns:
        return list(manifest.models.values())
    chosen: set[str] = set()
    for pattern in patterns:
        matched = list(_match(pattern, manifest.models.values()))
        if not matched:
            raise UsageError(f"no model matches {pattern!r}", hint=_hint(manifest, pattern))
        chosen.update(m.name for m in matched)
    return [m for m in manifest.models.values() if m.name in chosen]


def _match(pattern: str, models: Iterable[Model]) -> Iterable[Model]:
    if pattern.startswith("tag:"):
        tag = pattern[4:]
        return (m for m in models if tag in m.tags)
    if any(ch in pattern for ch in "*?["):
        return (m for m in models if fnmatch.fnmatchcase(m.name, pattern))
    return (m for m in models if m.name == pattern)


def _hint(manifest: Manifest, pattern: str) -> str:
    """A did-you-mean among tags for ``tag:`` patterns and among names otherwise, else
    the tags or models there are (the first ten)."""
    if pattern.startswith("tag:"):
        tags = sorted({tag for m in manifest.models.values() for tag in m.tags})
        guess = closest(pattern[4:], tags)
        if guess is not None and guess != pattern[4:]:
            return f"did you mean 'tag:{guess}'?"
        shown = ", ".join(tags[:10]) + (f" and {len(tags) - 10} more" if len(tags) > 10 else "")
        return f"tags in {manifest.path.name}: {shown or '(none)'}"
    names = list(manifest.models)
    return did_you_mean(pattern, names) or (
        f"models in {manifest.path.name}: {', '.join(names[:10]) or '(none)'}"
        + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    )
