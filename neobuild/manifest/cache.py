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
from collections.abc import Mapping
from pathlib import Path
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
from neobuild.probes import inputs_hold_for
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
        if not inputs_hold_for(path, root, record):
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
