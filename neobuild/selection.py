"""Choosing models by name, glob or ``tag:NAME``."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Sequence

from neobuild.errors import UsageError
from neobuild.model import Manifest, Model
from neobuild.suggest import did_you_mean


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
            names = list(manifest.models)
            guess = did_you_mean(pattern.removeprefix("tag:"), names)
            raise UsageError(
                f"no model matches {pattern!r}",
                hint=guess
                or f"models in {manifest.path.name}: {', '.join(names[:10]) or '(none)'}",
            )
        chosen.update(m.name for m in matched)
    return [m for m in manifest.models.values() if m.name in chosen]


def _match(pattern: str, models: Iterable[Model]) -> Iterable[Model]:
    if pattern.startswith("tag:"):
        tag = pattern[4:]
        return (m for m in models if tag in m.tags)
    if any(ch in pattern for ch in "*?["):
        return (m for m in models if fnmatch.fnmatchcase(m.name, pattern))
    return (m for m in models if m.name == pattern)
