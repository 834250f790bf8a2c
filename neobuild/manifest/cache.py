"""The validated-manifest cache: ``<root>/.neobuild/manifestcache``.

Keyed by the content of every manifest file, the include globs' results and
neobuild's version (``statefile.py`` adds the header, code stamp and checksum); on a
hit only the files the result depends on (the validator's probes) are stat'ed again.
``sources`` globs are expanded only on a miss (to warn about one that matches no
file): on a hit, a glob that matched nothing is expanded again and one that matched
has its literal directory prefix stat'ed, so a glob that stops matching otherwise is
caught at the next manifest change.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Mapping
from pathlib import Path
from stat import S_ISDIR, S_ISREG
from typing import TYPE_CHECKING, Any

from neobuild import depends
from neobuild.errors import Problem
from neobuild.model import (
    CacheSettings,
    CompileSettings,
    ExportRef,
    Inputs,
    InputSpec,
    Manifest,
    Model,
    Platform,
    Position,
    Target,
    VpcConfig,
)
from neobuild.paths import RealPaths, expand
from neobuild.statefile import StateFile

if TYPE_CHECKING:
    from neobuild.manifest.positions import Doc

CACHE_FILE = StateFile("manifestcache", 3, "manifest cache", codec="json")


def store(
    path: Path,
    root: Path,
    data: bytes,
    manifest: Manifest,
    *,
    include_patterns: list[str],
    includes: list[Doc],
    probes: dict[str, bool],
) -> None:
    """Remember a validated manifest with what it depends on (``includes``: every file
    but the top-level one; ``probes``: :attr:`RepoFiles.probes`)."""
    record = {
        "root": str(root),
        "manifest": path.name,
        "include_patterns": include_patterns,
        "includes": [[doc.path.relative_to(root).as_posix(), doc.digest] for doc in includes],
        "probes": probes,
        "result": _encode_manifest(manifest, root),
    }
    _note_inputs(path, root, data, record)
    CACHE_FILE.write(root, record, key=data)  # a read-only checkout only costs the cache


def lookup(path: Path, root: Path, data: bytes) -> Manifest | None:
    """The cached manifest when every input is unchanged; None otherwise (or if unreadable)."""
    try:
        record, _why = CACHE_FILE.read(root, key=data)
        if record is None or (record["root"], record["manifest"]) != (str(root), path.name):
            return None
        if not _inputs_hold(path, root, record):
            return None
        manifest = _decode_manifest(record["result"], path, root)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return None  # missing, corrupt or foreign: validate from scratch
    _note_inputs(path, root, data, record)
    return manifest


def _note_inputs(path: Path, root: Path, data: bytes, record: Mapping[str, Any]) -> None:
    """Tell a running :func:`neobuild.depends.recording` what this manifest came from."""
    if not depends.active():
        return
    depends.note_manifest(
        {
            "path": str(path),
            "root": str(root),
            "sha256": hashlib.sha256(data).hexdigest(),
            "include_patterns": list(record["include_patterns"]),
            "includes": [list(item) for item in record["includes"]],
            "probes": dict(record["probes"]),
        }
    )


def inputs_hold(noted: Mapping[str, Any], known: Mapping[str, Any] | None = None) -> bool:
    """Whether the manifest noted by a recording would load the same today.

    ``noted`` is what :func:`neobuild.depends.note_manifest` received: the top-level
    file's content hash, and the includes and probes of its cache record. ``known`` maps
    absolute paths to :func:`neobuild.depends.signature` results already checked to be
    current (:meth:`neobuild.depends.Deps.holds`): a probe of such a path needs no syscall.
    """
    try:
        path, root = Path(noted["path"]), Path(noted["root"])
        if hashlib.sha256(path.read_bytes()).hexdigest() != noted["sha256"]:
            return False
        return _inputs_hold(path, root, noted, known or {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return False


def _inputs_hold(
    path: Path, root: Path, record: Mapping[str, Any], known: Mapping[str, Any] | None = None
) -> bool:
    """The include files and the validator's probes are as the record says.

    Raises:
        OSError, ValueError, KeyError...: the record is malformed or a file unreadable.
    """
    includes: list[str] = []
    for pattern in record["include_patterns"]:
        rel = posixpath.normpath(pattern)
        includes.extend(p.relative_to(root).as_posix() for p in expand(root, rel) if p != path)
    if sorted(set(includes)) != sorted(rel for rel, _ in record["includes"]):
        return False
    for rel, digest in record["includes"]:
        if hashlib.sha256((root / rel).read_bytes()).hexdigest() != digest:
            return False
    real_root = os.path.realpath(root) + os.sep
    realpath = RealPaths()
    index: Any = None
    base = os.path.join(root, "")  # plain strings: a thousand stats stay cheap
    known = known or {}
    for probe, existed in record["probes"].items():
        kind, rel = probe.split(":", 1)
        target = base + rel
        if kind == "i":
            now = realpath(target).startswith(real_root)
        elif kind == "s":  # an export file parsed for its function: unchanged since
            mtime, size, rel = rel.split(":", 2)
            sig = known.get(base + rel)
            if sig is not None:  # (dev, ino, size, mtime_ns, ctime_ns, type), still current
                now = sig[3] == int(mtime) and sig[2] == int(size)
            else:
                stat = os.stat(base + rel)
                now = stat.st_mtime_ns == int(mtime) and stat.st_size == int(size)
        elif kind == "g":  # a sources glob that matched no file (rare: usually none)
            if index is None:
                from neobuild.sources import SourceIndex

                index = SourceIndex(root)
            now = bool(index.match([rel]))
        elif (sig := known.get(target)) is not None:
            now = (S_ISREG if kind == "f" else S_ISDIR)(sig[5])
        else:
            now = os.path.isfile(target) if kind == "f" else os.path.isdir(target)
        if now != existed:
            return False
    return True


def _encode_position(pos: Position | None, root: Path) -> list[Any] | None:
    if pos is None:
        return None
    return [pos.file.relative_to(root).as_posix(), pos.line, pos.col]


class _Files(dict[str, Path]):
    """Repo-relative name -> absolute Path, built once per file (positions share them)."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __missing__(self, rel: str) -> Path:
        path = self[rel] = self.root / rel
        return path


def _decode_position(data: Any, files: _Files) -> Position | None:
    if data is None:
        return None
    return Position(files[data[0]], int(data[1]), int(data[2]))


def _encode_manifest(manifest: Manifest, root: Path) -> dict[str, Any]:
    models = []
    for m in manifest.models.values():
        data = m.to_json()
        data["position"] = _encode_position(m.position, root)
        for t_json, target in zip(data["targets"], m.targets, strict=True):
            t_json["position"] = _encode_position(target.position, root)
        models.append(data)
    return {
        "build_dir": manifest.build_dir.relative_to(root).as_posix(),
        "templates_dir": manifest.templates_dir.relative_to(root).as_posix()
        if manifest.templates_dir is not None
        else None,
        "cache": [manifest.cache.url, manifest.cache.read_only] if manifest.cache else None,
        "files": [f.relative_to(root).as_posix() for f in manifest.files],
        "models": models,
        "warnings": [
            {**p.as_json(), "file": p.file.relative_to(root).as_posix() if p.file else None}
            for p in manifest.warnings
        ],
    }


def _decode_manifest(data: Mapping[str, Any], path: Path, root: Path) -> Manifest:
    files = _Files(root)
    models = {}
    for m in data["models"]:
        model = _decode_model(m, files)
        models[model.name] = model
    cache = data["cache"]
    return Manifest(
        path=path,
        root=root,
        build_dir=root / data["build_dir"],
        models=models,
        files=tuple(root / f for f in data["files"]),
        cache=CacheSettings(url=cache[0], read_only=cache[1]) if cache else None,
        templates_dir=root / data["templates_dir"] if data["templates_dir"] else None,
        warnings=tuple(
            Problem(
                w["message"],
                path=w["path"],
                file=root / w["file"] if w["file"] else None,
                line=w["line"],
                col=w["col"],
                severity=w["severity"],
                hint=w["hint"],
            )
            for w in data["warnings"]
        ),
    )


def _decode_model(m: Mapping[str, Any], files: _Files) -> Model:
    inputs = m["inputs"]
    compile_ = m["compile"]
    vpc = compile_["vpc"]
    return Model(
        name=m["name"],
        framework=m["framework"],
        export=ExportRef(**m["export"]),
        inputs=Inputs(
            form=inputs["form"],
            items=tuple(
                InputSpec(name=i["name"], shape=tuple(i["shape"])) for i in inputs["items"]
            ),
        ),
        targets=tuple(
            Target(
                device=t["device"],
                platform=Platform(**t["platform"]) if t["platform"] else None,
                compiler_options=t["compiler_options"],
                position=_decode_position(t["position"], files),
            )
            for t in m["targets"]
        ),
        framework_version=m["framework_version"],
        sources=tuple(m["sources"]),
        requirements=tuple(m["requirements"]),
        requirements_file=m["requirements_file"],
        env=tuple((k, v) for k, v in m["env"]),
        timeout=m["timeout"],
        tags=tuple(m["tags"]),
        compiler_options=m["compiler_options"],
        compile=CompileSettings(
            role_arn=compile_["role_arn"],
            s3_prefix=compile_["s3_prefix"],
            region=compile_["region"],
            max_runtime=compile_["max_runtime"],
            kms_key_id=compile_["kms_key_id"],
            vpc=VpcConfig(tuple(vpc["security_group_ids"]), tuple(vpc["subnets"])) if vpc else None,
            tags=tuple((k, v) for k, v in compile_["tags"]),
        ),
        templates_dir=m["templates_dir"],
        smoke=m["smoke"],
        compile_check=m.get("compile_check", False),
        position=_decode_position(m["position"], files),
    )
