"""Includes and defaults: the files a manifest names, and every model with its defaults.

``defaults`` merge under each model (top-level, then the file's own): mappings merge,
lists and scalars replace, and ``inputs`` (ordered) replaces whole.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from neobuild import neo
from neobuild.manifest.constants import MODEL_NAME_MAX
from neobuild.manifest.diagnostics import Reporter, describe, short
from neobuild.manifest.parse import parse
from neobuild.manifest.positions import Doc, ModelSource, PathKey
from neobuild.manifest.repofiles import FLAW_HINT, RepoFiles, path_flaw
from neobuild.manifest.schemacheck import SchemaChecker
from neobuild.paths import expand

_MODEL_NAME = re.compile(neo.MODEL_NAME_PATTERN)


class Resolver:
    """Reads the top-level file and its includes, and lists every model declared."""

    def __init__(self, out: Reporter, schema: SchemaChecker, files: RepoFiles) -> None:
        self.out = out
        self.schema = schema
        self.files = files
        self.docs = out.docs
        self.include_patterns: list[str] = []

    def parse_file(self, doc: Doc, data: bytes, kind: str) -> bool:
        syntax = parse(doc, data)
        if syntax is not None:
            self.out.problems.append(syntax)
            return False
        if doc.data is None:
            self.out.report(
                doc,
                (),
                "the manifest is empty",
                hint="start from `neobuild init`, or add `version: 1` and `models:`",
            )
            return False
        if not isinstance(doc.data, dict):
            self.out.report(
                doc,
                (),
                f"the manifest must be a mapping, got {describe(doc.data)}",
                hint="start with `version: 1` and `models:`",
            )
            return False
        self.schema.check(doc, (), doc.data, kind)
        return True

    def load_includes(self, top: Doc) -> None:
        patterns = top.data.get("include")
        if not isinstance(patterns, list):
            return
        seen: set[Path] = {top.path}
        for i, pattern in enumerate(patterns):
            if not isinstance(pattern, str) or not pattern:
                continue
            flaw = path_flaw(pattern, pattern=True)
            if flaw is not None:
                self.out.report(
                    top, ("include", i), f"include {short(pattern)} {flaw}", hint=FLAW_HINT
                )
                continue
            self.include_patterns.append(pattern)
            rel = self.files.repo_path(top, pattern)
            if rel is None:
                self.out.report(
                    top,
                    ("include", i),
                    f"include {pattern!r} leaves the repository",
                    hint="include only files under the directory of neo.yaml",
                )
                continue
            matches = expand(self.files.root, rel)
            if not matches:
                self.out.report(
                    top,
                    ("include", i),
                    f"include {pattern!r} matches no file",
                    severity="warning",
                    hint="check the glob; paths are relative to this file",
                )
            for match in matches:
                if match in seen:
                    continue
                seen.add(match)
                if not self.files.resolves_inside(match.relative_to(self.files.root).as_posix()):
                    self.out.report(
                        top,
                        ("include", i),
                        f"include {short(pattern)} reaches "
                        f"{match.relative_to(self.files.root).as_posix()}, which a symlink leads "
                        "outside the repository",
                        hint="include only files under the directory of neo.yaml",
                    )
                    continue
                doc = Doc(
                    match,
                    posixpath.dirname(match.relative_to(self.files.root).as_posix()),
                    len(self.docs),
                )
                self.docs.append(doc)
                try:
                    data = match.read_bytes()
                except OSError as exc:
                    self.out.report(top, ("include", i), f"cannot read {match}: {exc.strerror}")
                    continue
                self.parse_file(doc, data, "included")

    def collect_models(self) -> list[ModelSource]:
        top = self.docs[0]
        top_defaults = defaults_of(top)
        declared: dict[str, ModelSource] = {}
        folded: dict[str, ModelSource] = {}  # name.casefold() -> first declaration
        for doc in self.docs:
            if not isinstance(doc.data, dict):
                continue
            models = doc.data.get("models")
            if not isinstance(models, dict):
                continue
            defaults = list(top_defaults)
            if doc is not top:
                defaults.extend(defaults_of(doc))
            for name in models:
                if not isinstance(name, str):
                    self.out.report(
                        doc, ("models", name), "a model name must be a string", at="key"
                    )
                    continue
                first = declared.get(name)
                if first is not None:
                    line, col = first.doc.position(first.path, at="key")
                    self.out.report(
                        doc,
                        ("models", name),
                        f"model {name!r} is already declared at {first.doc.path}:{line}:{col}",
                        hint="model names must be unique across neo.yaml and its includes",
                        at="key",
                    )
                    continue
                src = ModelSource(name, doc, defaults)
                declared[name] = src
                self.check_name(src)
                self.check_case(src, folded.setdefault(name.casefold(), src))
                if isinstance(models[name], dict):
                    self.schema.check(doc, src.path, models[name], "model")
        return list(declared.values())

    def check_case(self, src: ModelSource, first: ModelSource) -> None:
        """Names equal but for letter case collide in build dirs on macOS and in AWS names."""
        if first is src:
            return
        line, col = first.doc.position(first.path, at="key")
        self.out.report(
            src.doc,
            src.path,
            f"model {src.name!r} differs only in letter case from model {first.name!r} "
            f"declared at {first.doc.path}:{line}:{col}",
            hint="rename one of them: build directories on case-insensitive file systems "
            "(macOS, Windows) and AWS resource names would collide",
            at="key",
        )

    def check_name(self, src: ModelSource) -> None:
        name = src.name
        if not _MODEL_NAME.fullmatch(name):
            self.out.report(
                src.doc,
                src.path,
                f"model name {name!r} cannot be part of a CompilationJobName",
                hint="use letters, digits and hyphens; start and end with a letter or digit",
                at="key",
            )
        elif len(name) > MODEL_NAME_MAX:
            self.out.report(
                src.doc,
                src.path,
                f"model name {name!r} is {len(name)} characters; at most {MODEL_NAME_MAX} "
                "are allowed (the limit of AWS resource names such as a CompilationJobName)",
                hint="shorten the name",
                at="key",
            )


def merged(src: ModelSource) -> dict[str, Any] | None:
    """A model's entry merged over the defaults that apply to it (None: not a mapping)."""
    entry = src.doc.data["models"][src.name]
    if not isinstance(entry, dict):
        return None
    result: dict[str, Any] = {}
    for doc, base in src.defaults:
        block = doc.data.get(base[0]) if isinstance(doc.data, dict) else None
        if isinstance(block, dict):
            result = deep_merge(result, block, replace=ORDERED_KEYS)
    return deep_merge(result, entry, replace=ORDERED_KEYS)


def defaults_of(doc: Doc) -> list[tuple[Doc, PathKey]]:
    if isinstance(doc.data, dict) and isinstance(doc.data.get("defaults"), dict):
        return [(doc, ("defaults",))]
    return []


#: Model keys whose mapping is ordered (inputs are positional for PyTorch and Neo): a
#: model's own value replaces the defaults' whole, so its declared order is the order.
ORDERED_KEYS = frozenset({"inputs"})


def deep_merge(
    base: Mapping[str, Any], over: Mapping[str, Any], replace: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``over`` merged onto ``base``: mappings merge (except keys in ``replace``),
    everything else replaces."""
    result = dict(base)
    for key, value in over.items():
        old = result.get(key)
        if isinstance(old, dict) and isinstance(value, dict) and key not in replace:
            result[key] = deep_merge(old, value)
        else:
            result[key] = value
    return result
