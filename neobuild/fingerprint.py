"""A model's input fingerprint: one digest over named parts, and the parts themselves.

The digest covers six *parts*:

``manifest``      the model's resolved entry (``Model.canonical_json()``)
``sources``       the sorted repo-relative paths and contents of the files its
                  ``sources`` globs match (plus the export file)
``requirements``  its inline requirements and its requirements file's content
``templates``     a hash of the templates it renders (given by the caller)
``neobuild``      the neobuild version
``adapter``       the framework adapter's name and version

Next to them, :attr:`Fingerprint.parts` keeps *details* that never enter the digest on
their own (they are already folded into a part) but let ``plan`` name what changed:

``fields``         one line, ``name=<8 hex> name=<8 hex> …``: a short hash per top-level
                   field of the manifest entry (one line, not one per field, to keep
                   neo.lock small)
``source:<path>``  per source file, a 16-hex-digit prefix of its SHA-256 (one lock line
                   per file, so a lock diff shows which file changed)

Details only *name* a change: detection rests on the full-hash parts, so a collision
in a short hash can at worst leave a change unnamed ("manifest field changed").
neo.lock stores all of them in ``fingerprint_parts``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache
from pathlib import Path
from typing import Any

from neobuild import __version__
from neobuild.errors import ManifestError
from neobuild.model import Manifest, Model
from neobuild.sources import SourceIndex
from neobuild.statcache import StatCache

#: The parts that make up the digest, in the order ``plan --explain`` shows them.
PARTS = ("manifest", "sources", "requirements", "templates", "neobuild", "adapter")
FIELDS_PART = "fields"
SOURCE_PREFIX = "source:"


@dataclass(frozen=True)
class Fingerprint:
    """A model's input digest (``sha256:<hex>``) and the named parts it was made from."""

    digest: str
    parts: dict[str, str]
    #: set when the ``fields`` detail was left out (``details=False``); see :meth:`complete`
    model: Model | None = field(default=None, compare=False, repr=False)

    def summary(self) -> dict[str, str]:
        """Only the parts that make up the digest (no per-field or per-file details)."""
        return {k: self.parts[k] for k in PARTS if k in self.parts}

    def complete(self) -> Fingerprint:
        """Fill in the ``fields`` detail if it was left out; returns ``self``.

        The digest does not depend on it, so a fingerprint computed without details
        is the same fingerprint; only what neo.lock stores and what ``plan`` can name
        needs them.
        """
        if FIELDS_PART not in self.parts and self.model is not None:
            self.parts[FIELDS_PART] = field_hashes(model_json(self.model))
        return self


def short_hash(data: bytes) -> str:
    """A 16-hex-digit SHA-256 prefix, for per-field and per-file details."""
    return hashlib.sha256(data).hexdigest()[:16]


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def manifest_hash(model: Model, data: dict[str, Any] | None = None) -> str:
    """The ``manifest`` part: the hash of ``model.canonical_json()``.

    Args:
        model: the model.
        data: ``model_json(model)`` when the caller already has it.
    """
    if data is None:
        data = model_json(model)
    return _sha(_canonical(data).encode())


def _canonical(value: Any) -> str:
    # Keys sorted: mappings here have no order. Inputs are ``{"form", "items": [...]}``,
    # a list, so a reordering of the declared inputs changes the hash.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def model_json(model: Model) -> dict[str, Any]:
    """The same data as ``Model.to_json()``, built without ``dataclasses.asdict``'s deep copies.

    ``asdict`` costs about half a millisecond per model, which is most of a no-op plan
    over 1,000 models; the tests check both agree.
    """
    out = _jsonable(model)
    assert isinstance(out, dict)
    return out


_SCALARS = (str, int, float, bool, type(None))
_SCALAR_TYPES = frozenset(_SCALARS)
#: Per type: its dataclass field names (``position`` left out), or None for a non-dataclass.
_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _jsonable(value: Any) -> Any:
    kind = type(value)
    if kind in _SCALAR_TYPES or isinstance(value, _SCALARS):  # the set first: no MRO walk
        return value
    try:
        names = _FIELD_NAMES[kind]
    except KeyError:
        names = _FIELD_NAMES[kind] = (
            tuple(f.name for f in fields(kind) if f.name != "position")
            if is_dataclass(kind)
            else None
        )
    if names is not None:
        return {name: _jsonable(getattr(value, name)) for name in names}
    if kind is tuple or kind is list or isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Path):
        return value.as_posix()
    return value


def _manifest_parts(data: Mapping[str, Any]) -> tuple[str, str]:
    """``manifest`` and ``fields`` with one ``json.dumps`` per field.

    The entry's canonical JSON is assembled from the per-field pieces; it equals
    ``json.dumps(data, sort_keys=True, separators=(",", ":"))`` because field names
    are plain identifiers (the tests check it against ``Model.canonical_json``).
    """
    pieces = []
    short = []
    for key in sorted(data):
        text = _canonical(data[key])
        pieces.append(f'"{key}":{text}')
        short.append(f"{key}={hashlib.sha256(text.encode()).hexdigest()[:8]}")
    return _sha(("{" + ",".join(pieces) + "}").encode()), " ".join(short)


def field_hashes(data: Mapping[str, Any]) -> str:
    """The ``fields`` detail: ``name=<8 hex>`` per top-level field, sorted, space-separated."""
    return " ".join(
        f"{key}={hashlib.sha256(_canonical(data[key]).encode()).hexdigest()[:8]}"
        for key in sorted(data)
    )


def parse_field_hashes(text: str) -> dict[str, str]:
    """The inverse of :func:`field_hashes`."""
    out = {}
    for item in text.split():
        name, _, value = item.partition("=")
        out[name] = value
    return out


@cache
def adapter_version(framework: str) -> str:
    """``<framework>@<adapter version>``; version ``0`` while the adapter does not exist.

    Read from :data:`neobuild.frameworks.ADAPTER_VERSIONS`: the adapter module itself
    (which may import h5py or numpy) is not imported.
    """
    from neobuild.frameworks import ADAPTER_VERSIONS

    return f"{framework}@{ADAPTER_VERSIONS.get(framework, '0')}"


def source_patterns(model: Model) -> tuple[str, ...]:
    """The model's source globs; the export file's directory when none are declared."""
    if model.sources:
        return model.sources
    if model.export.path:
        parent = Path(model.export.path).parent.as_posix()
        return ("**",) if parent in ("", ".") else (f"{parent}/**",)
    return ()


def source_files(model: Model, index: SourceIndex) -> dict[str, os.stat_result]:
    """The files that are a model's sources: its globs' matches plus its export file.

    Raises:
        ManifestError: one of them is a symlink whose target is outside the repository.
    """
    files = index.match(source_patterns(model))
    if model.export.path and model.export.path not in files:
        files.update(index.match([model.export.path]))
    if index.outside:
        leaving = sorted(p for p in files if p in index.outside)
        if leaving:
            shown = ", ".join(f"{p} -> {index.outside[p]}" for p in leaving[:5])
            more = f" and {len(leaving) - 5} more" if len(leaving) > 5 else ""
            raise ManifestError(
                f"model {model.name!r}: its sources include symlinks that lead outside the "
                f"repository: {shown}{more}",
                hint="copy the file into the repository, or narrow the model's `sources` so "
                "that it leaves the link out",
            )
    return files


def fingerprint(
    manifest: Manifest,
    model: Model,
    *,
    stat_cache: StatCache | None = None,
    templates_hash: str = "",
    index: SourceIndex | None = None,
    details: bool = True,
) -> Fingerprint:
    """Compute a model's fingerprint.

    Args:
        manifest: the loaded manifest (for the root and build directory).
        model: the model.
        stat_cache: skips reading unchanged files; a private one is used when None.
        templates_hash: the hash of the templates this model renders
            (``templatehash.templates_hash``).
        index: a :class:`SourceIndex` shared between models, so each directory is
            walked once per run.
        details: False leaves out the ``fields`` detail (16 JSON encodings per model,
            a third of a no-op plan); :meth:`Fingerprint.complete` adds it later.

    Returns:
        The digest and its parts (see the module docstring).
    """
    root = manifest.root
    if stat_cache is None:
        stat_cache = StatCache(root)
    if index is None:
        index = SourceIndex(root, build_dir=manifest.build_dir)
    parts: dict[str, str] = {}

    data = model_json(model)
    if details:
        parts["manifest"], parts[FIELDS_PART] = _manifest_parts(data)
    else:
        parts["manifest"] = _sha(_canonical(data).encode())

    root_is_cache_root = stat_cache.root == index.root
    lines: list[str] = []
    shorts: dict[str, str] = {}
    for path, st in sorted(source_files(model, index).items()):
        try:
            digest = (
                stat_cache.hash(path, st)
                if root_is_cache_root
                else stat_cache.hash(root / path, st)
            )
        except OSError as exc:  # unreadable: still a distinct, visible state
            digest = f"unreadable:{exc.strerror}"
        lines.append(f"{path}\0{digest}\n")
        shorts[path] = short_hash(digest.encode())
    parts["sources"] = _sha("".join(lines).encode())
    for name, value in source_details(shorts).items():
        parts[SOURCE_PREFIX + name] = value

    parts["requirements"] = _requirements_hash(root, model, stat_cache)
    parts["templates"] = templates_hash or "none"
    parts["neobuild"] = __version__
    parts["adapter"] = adapter_version(model.framework)
    return Fingerprint(digest=digest_of(parts), parts=parts, model=None if details else model)


#: Above this many source files, details are kept per directory, not per file.
MAX_SOURCE_DETAILS = 200


def source_details(files: Mapping[str, str]) -> dict[str, str]:
    """The ``source:`` details of a model: per file, or per directory when there are many.

    Args:
        files: repo-relative path -> 16-hex short hash of the file.

    Returns:
        Up to :data:`MAX_SOURCE_DETAILS` entries when possible: the files themselves, or
        directories (names ending in ``/``) at the deepest level that fits, each with a
        short hash over its files (:func:`group_details`).
    """
    if len(files) <= MAX_SOURCE_DETAILS:
        return dict(files)
    deepest = max(p.count("/") for p in files)
    for depth in range(deepest, 0, -1):
        grouped = group_details(files, depth)
        if len(grouped) <= MAX_SOURCE_DETAILS:
            return grouped
    return group_details(files, 1)


def group_details(files: Mapping[str, str], depth: int) -> dict[str, str]:
    """Per-file details folded into directories ``depth`` components deep.

    A file shallower than ``depth`` stays a file entry with its own hash; a directory
    entry (``a/b/``) gets a short hash over ``path\\0hash`` of its files, sorted.
    """
    buckets: dict[str, list[str]] = {}
    for path in sorted(files):
        pieces = path.split("/")
        key = "/".join(pieces[:depth]) + "/" if len(pieces) > depth else path
        buckets.setdefault(key, []).append(path)
    out = {}
    for key, members in buckets.items():
        if key.endswith("/"):
            blob = "".join(f"{p}\0{files[p]}\n" for p in members)
            out[key] = short_hash(blob.encode())
        else:
            out[key] = files[members[0]]
    return out


def details_depth(details: Mapping[str, str]) -> int | None:
    """The directory depth of grouped details; None when they are per file."""
    for name in details:
        if name.endswith("/"):
            return name.count("/")
    return None


def digest_of(parts: Mapping[str, str]) -> str:
    """The digest over the six main parts (details are already folded into them)."""
    summary = {k: parts.get(k, "") for k in PARTS}
    return _sha(json.dumps(summary, sort_keys=True, separators=(",", ":")).encode())


def _requirements_hash(root: Path, model: Model, stat_cache: StatCache) -> str:
    content = "none"
    if model.requirements_file:
        try:
            content = stat_cache.hash(root / model.requirements_file)
        except OSError:
            content = "missing"
    data = {"inline": list(model.requirements), "file": model.requirements_file, "content": content}
    return _sha(json.dumps(data, sort_keys=True).encode())
