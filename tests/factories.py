"""Builders for tests: models and manifests with defaults, file trees, git repos, fake builds.

A "build" here writes what ``package`` writes (archive, exported file, rendered
script, one request per target) and records a real ``lockfile.LockEntry`` with the
fingerprint ``plan`` computed, so plan/verify see exactly what they would after a
real ``package`` run, without running exports.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from neobuild.lockfile import FileRecord, Lock, LockEntry, RequestRecord
from neobuild.model import ExportRef, Inputs, InputSpec, Manifest, Model, Position, Target
from neobuild.plan import plan


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def init_repo(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    (root / ".gitignore").write_text("build/\n.neobuild/\n")


def commit_all(root: Path, message: str = "change") -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message, "--allow-empty")
    return git(root, "rev-parse", "HEAD").strip()


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def make_model(
    name: str = "m",
    *,
    framework: str = "onnx",
    export: ExportRef | str | None = None,
    inputs: Inputs | Mapping[str, Sequence[int]] | None = None,
    targets: Iterable[str | Target] = ("ml_c5",),
    sources: Iterable[str] = (),
    requirements: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
    tags: Iterable[str] = (),
    position: Path | None = None,
    **fields: Any,
) -> Model:
    r"""A ``Model`` as ``manifest.load`` would build it, with defaults for what a test ignores.

    ``export`` is an ``ExportRef`` or the path of an export.py whose function is ``export``
    (default ``models/<name>/export.py``). ``inputs`` is an ``Inputs`` or ``{name: shape}``
    (dict form, in that order; default one input ``input`` of shape (1, 3)). ``targets``
    are device names or ``Target``\ s (``()`` for none). Every other ``Model`` field
    (``framework_version``, ``timeout``, ``requirements_file``, ``compile``...) is passed on.
    """
    if export is None:
        export = f"models/{name}/export.py"
    if isinstance(export, str):
        export = ExportRef(function="export", path=export)
    if inputs is None:
        inputs = {"input": (1, 3)}
    if not isinstance(inputs, Inputs):
        inputs = Inputs("dict", tuple(InputSpec(n, tuple(s)) for n, s in inputs.items()))
    return Model(
        name=name,
        framework=framework,
        export=export,
        inputs=inputs,
        targets=tuple(t if isinstance(t, Target) else Target(device=t) for t in targets),
        sources=tuple(sources),
        requirements=tuple(requirements),
        env=tuple(sorted((env or {}).items())),
        tags=tuple(tags),
        position=Position(position) if position is not None else None,
        **fields,
    )


def make_manifest(
    root: Path,
    models: Iterable[Model],
    *,
    files: Iterable[Path] = (),
    build_dir: Path | None = None,
    **fields: Any,
) -> Manifest:
    """A ``Manifest`` rooted at ``root`` (its neo.yaml need not exist); build dir build/neo."""
    root = root.resolve()
    return Manifest(
        path=root / "neo.yaml",
        root=root,
        build_dir=build_dir if build_dir is not None else root / "build" / "neo",
        models={m.name: m for m in models},
        files=(root / "neo.yaml", *files),
        **fields,
    )


def seed_models(root: Path, names: Iterable[str]) -> None:
    """Export files for each model plus a shared common/ directory and a neo.yaml."""
    write(root, "neo.yaml", "version: 1\n")
    write(root, "common/util.py", "SHARED = 1\n")
    for name in names:
        write(root, f"models/{name}/export.py", f"def export(out, inputs):\n    pass  # {name}\n")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fake_build(manifest: Manifest, lock: Lock, names: Iterable[str] | None = None) -> Lock:
    """Write outputs for the named (default: all) models and return the updated lock."""
    chosen = [manifest.models[n] for n in (names or manifest.models)]
    the_plan = plan(manifest, chosen, lock, templates_hash="sha256:tmpl")
    models = dict(lock.models)
    for model in chosen:
        fp = the_plan.fingerprint(model.name)
        mdir = manifest.build_dir / model.name
        exported = f"onnx bytes of {model.name} {fp.digest}".encode()
        archive = b"tar.gz of " + exported
        script = f"# inference for {model.name}\n".encode()
        (mdir / "export").mkdir(parents=True, exist_ok=True)
        (mdir / "code").mkdir(parents=True, exist_ok=True)
        (mdir / "requests").mkdir(parents=True, exist_ok=True)
        (mdir / "export" / "model.onnx").write_bytes(exported)
        (mdir / "model.tar.gz").write_bytes(archive)
        (mdir / "code" / "inference.py").write_bytes(script)
        (mdir / "export.log").write_text("ok\n")
        outputs = {"code/inference.py": FileRecord(len(script), _digest(script))}
        requests = {}
        for target in model.targets:
            body = f'{{"CompilationJobName": "{model.name}-{target.key}"}}'.encode()
            rel = f"requests/{target.key}.json"
            (mdir / rel).write_bytes(body)
            outputs[rel] = FileRecord(len(body), _digest(body))
            requests[target.key] = RequestRecord(
                path=f"build/neo/{model.name}/{rel}",
                sha256=_digest(body),
                job_name=f"{model.name}-{target.key}",
            )
        models[model.name] = LockEntry(
            fingerprint=fp.digest,
            framework=model.framework,
            framework_version=model.framework_version,
            exported_with={"onnx": "1.17.0"},
            files={"model.onnx": FileRecord(len(exported), _digest(exported))},
            archive=FileRecord(len(archive), _digest(archive)),
            archive_path=f"build/neo/{model.name}/model.tar.gz",
            outputs=outputs,
            requests=requests,
            smoke=None,
            fingerprint_parts=dict(fp.parts),
            jobs={},
            git_commit=None,
            git_dirty=None,
        )
    return Lock(models=models)


def backdate(root: Path, seconds: int = 60) -> None:
    """Set every file's mtime in the past, out of the stat cache's racy window.

    The ctime cannot be set back (utime itself changes it): tests that need a warm
    cache also set ``statcache.RACY_WINDOW_NS`` to 0.
    """
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            dirnames.remove(".git")
        for filename in filenames:
            path = os.path.join(dirpath, filename)
            st = os.stat(path)
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))
