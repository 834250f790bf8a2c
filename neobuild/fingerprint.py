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

import bisect
import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

from neobuild import __version__
from neobuild.model import Manifest, Model
from neobuild.statcache import StatCache

#: The parts that make up the digest, in the order ``plan --explain`` shows them.
PARTS = ("manifest", "sources", "requirements", "templates", "neobuild", "adapter")
FIELDS_PART = "fields"
SOURCE_PREFIX = "source:"

#: Directory names never walked into when expanding source globs (unless a glob's
#: literal prefix names them explicitly).
PRUNED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".neobuild",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
    }
)
#: Files at the repository root that neobuild itself writes; never a model's input.
IGNORED_ROOT_FILES = frozenset({"neo.lock", "neo.lock.lock"})

_WILDCARDS = re.compile(r"[*?\[]")


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


class SourceIndex:
    """Expands source globs against one repository, walking each directory at most once.

    Directories named in :data:`PRUNED_DIRS` and the build directory are not walked.
    File symlinks count (their target's content is hashed); directory symlinks are
    not followed.
    """

    def __init__(self, root: Path, *, build_dir: Path | None = None) -> None:
        self.root = root.resolve()
        self._build_dir = build_dir.resolve() if build_dir is not None else None
        self._build_dir_text = os.fspath(self._build_dir) if self._build_dir is not None else None
        self._walked: dict[str, tuple[list[str], dict[str, os.stat_result]]] = {}

    def files_under(self, prefix: str) -> dict[str, os.stat_result]:
        """Every file below the repo-relative directory ``prefix`` ("" for the root)."""
        cached = self._walked.get(prefix)
        if cached is not None:
            return cached[1]
        # Reuse the walk of an ancestor directory when there is one.
        parts = prefix.split("/") if prefix else []
        for depth in range(len(parts)):
            ancestor = self._walked.get("/".join(parts[:depth]))
            if ancestor is not None:
                keys, stats = ancestor
                lo = bisect.bisect_left(keys, prefix + "/")
                hi = bisect.bisect_left(keys, prefix + "0")  # "0" sorts right after "/"
                found = {k: stats[k] for k in keys[lo:hi]}
                break
        else:
            found = {}
            self._walk(os.fspath(self.root / prefix if prefix else self.root), prefix, found)
        self._walked[prefix] = (sorted(found), found)
        return found

    def _walk(self, directory: str, rel: str, out: dict[str, os.stat_result]) -> None:
        # Plain strings, no Path per entry: this runs once per directory of the repo.
        try:
            with os.scandir(directory) as it:
                entries = list(it)
        except (NotADirectoryError, FileNotFoundError, PermissionError):
            return
        for entry in entries:
            path = f"{rel}/{entry.name}" if rel else entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in PRUNED_DIRS:
                        continue
                    if entry.path == self._build_dir_text:
                        continue
                    self._walk(entry.path, path, out)
                elif entry.is_file():
                    if not rel and entry.name in IGNORED_ROOT_FILES:
                        continue
                    out[path] = entry.stat()
            except OSError:
                continue

    def match(self, patterns: Iterable[str]) -> dict[str, os.stat_result]:
        """The files matched by any of the repo-relative glob ``patterns``.

        ``*`` and ``?`` stay inside one path component, ``**`` spans any number of
        them, ``[...]`` is a character class; a pattern without wildcards naming a
        directory means every file below it.
        """
        out: dict[str, os.stat_result] = {}
        for pattern in patterns:
            pattern = pattern.strip("/")
            if pattern.startswith("./"):
                pattern = pattern[2:]
            prefix = _literal_prefix(pattern)
            if prefix == pattern:  # no wildcard: a file or a directory
                target = self.root / pattern
                try:
                    st = os.stat(target)
                except OSError:
                    continue
                if os.path.isfile(target):
                    out[pattern] = st
                else:
                    out.update(self.files_under(pattern))
                continue
            if pattern == "**" or pattern == prefix + "/**":  # everything below: no regex
                out.update(self.files_under(prefix))  # (a fresh process would compile one
                continue  # regex per model, ~0.2 s on 1,000 models)
            regex = glob_regex(pattern)
            for path, st in self.files_under(prefix).items():
                if regex.match(path):
                    out[path] = st
        return out


def _literal_prefix(pattern: str) -> str:
    parts = pattern.split("/")
    literal: list[str] = []
    for part in parts:
        if _WILDCARDS.search(part):
            break
        literal.append(part)
    return "/".join(literal)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The compiled regex of a repo-relative glob (see :meth:`SourceIndex.match`)."""
    out: list[str] = []
    parts = pattern.split("/")
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            out.append(".*" if last else "(?:[^/]+/)*")
            continue
        j = 0
        while j < len(part):
            ch = part[j]
            if ch == "*":
                out.append("[^/]*")
            elif ch == "?":
                out.append("[^/]")
            elif ch == "[":
                end = part.find("]", j + 2 if part[j + 1 : j + 2] in ("!", "]") else j + 1)
                if end == -1:
                    out.append(re.escape(ch))
                else:
                    body = part[j + 1 : end]
                    if body.startswith("!"):
                        body = "^" + body[1:]
                    out.append(f"[{body.replace(chr(92), chr(92) * 2)}]")
                    j = end
            else:
                out.append(re.escape(ch))
            j += 1
        if not last:
            out.append("/")
    return re.compile("".join(out) + r"\Z")


def source_patterns(model: Model) -> tuple[str, ...]:
    """The model's source globs; the export file's directory when none are declared."""
    if model.sources:
        return model.sources
    if model.export.path:
        parent = Path(model.export.path).parent.as_posix()
        return ("**",) if parent in ("", ".") else (f"{parent}/**",)
    return ()


def source_files(model: Model, index: SourceIndex) -> dict[str, os.stat_result]:
    """The files that are a model's sources: its globs' matches plus its export file."""
    files = index.match(source_patterns(model))
    if model.export.path and model.export.path not in files:
        files.update(index.match([model.export.path]))
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
            (``render.templates_hash``).
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
