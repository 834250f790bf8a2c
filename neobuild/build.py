"""``neobuild package``: build every selected stale model, in parallel, crash-safely.

One model's build is a straight pipeline (:func:`build_model`)::

    export env -> export (subprocess) -> normalise + check -> render -> pack
    -> requests -> smoke test -> swap into place -> neo.lock entry -> cache upload

Everything is produced in a staging directory and swapped into
``<build_dir>/<model>/`` only when the whole pipeline succeeded, so a failed or
killed build never leaves half-written outputs; the previous outputs stay. The lock
entry of a model is written as soon as that model finishes.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import os
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild import __version__, outputs
from neobuild.console import Output
from neobuild.errors import (
    EXIT_INTERRUPTED,
    LockError,
    NeobuildError,
    PackageError,
    RequestError,
    UsageError,
)
from neobuild.model import Manifest, Model, repo_relative

if TYPE_CHECKING:
    from neobuild.compile import CompileResult
    from neobuild.lockfile import LockEntry
    from neobuild.plan import Plan
    from neobuild.verify import VerifyReport

STATE_DIR = ".neobuild"
FAILED_DIR = ".failed"  # <build_dir>/.failed/<model>/: the export of the last failed build


# --------------------------------------------------------------------------- results


@dataclass
class ModelReport:
    """What happened to one model in this run."""

    name: str
    status: str  # built | fresh | restored | failed | skipped
    duration: float = 0.0
    message: str = ""
    hint: str | None = None
    log_path: Path | None = None
    log_tail: str = ""
    archive: str | None = None  # repo-relative path
    archive_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # exported file -> sha256
    targets: list[tuple[str, str, str]] = field(default_factory=list)  # (key, status, message)
    smoke: str | None = None
    warnings: list[str] = field(default_factory=list)
    compile_check: str | None = None  # ``status: detail`` of the local compile check
    compile_check_result: dict[str, Any] | None = None  # its figures, for --json

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "duration": round(self.duration, 3),
            "message": self.message,
            "hint": self.hint,
            "log": str(self.log_path) if self.log_path else None,
            "archive": self.archive,
            "archive_sha256": self.archive_sha256,
            "files": self.files,
            "targets": [{"target": k, "status": s, "message": m} for k, s, m in self.targets],
            "smoke": self.smoke,
            "warnings": self.warnings,
            "compile_check": self.compile_check_result,
        }


@dataclass
class BuildReport:
    """The outcome of one ``package`` run."""

    manifest: Path
    models: list[ModelReport]
    duration: float
    without_requests: list[str] = field(default_factory=list)  # built with no compile settings

    def count(self, status: str) -> int:
        return sum(1 for m in self.models if m.status == status)

    @property
    def ok(self) -> bool:
        return not any(m.status in ("failed", "skipped", "interrupted") for m in self.models)

    def summary(self) -> str:
        parts = [f"{self.count('built')} built"]
        for status, label in (
            ("restored", "restored from cache"),
            ("fresh", "up to date"),
            ("failed", "failed"),
            ("interrupted", "interrupted"),
            ("skipped", "not started"),
        ):
            if self.count(status):
                parts.append(f"{self.count(status)} {label}")
        return f"{', '.join(parts)} in {self.duration:.1f}s"

    def to_json(self) -> dict[str, Any]:
        return {
            "report_version": 1,
            "neobuild": __version__,
            "manifest": str(self.manifest),
            "ok": self.ok,
            "duration": round(self.duration, 3),
            "summary": {
                s: self.count(s)
                for s in ("built", "restored", "fresh", "failed", "interrupted", "skipped")
            },
            "models": [m.to_json() for m in self.models],
            "requests_not_rendered": self.without_requests,
        }


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def build_lock(root: Path, *, wait: bool) -> Iterator[None]:
    """Hold the repository's build lock; say who holds it when it is taken.

    The lock is an ``flock`` on ``.neobuild/build.lock``: the kernel releases it when
    its holder dies, so a lock left by a killed run is never stale.
    """
    import filelock

    from neobuild.gitignore import state_dir

    state = state_dir(root)
    holder_file = state / "build.lock.json"
    lock = filelock.FileLock(str(state / "build.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        holder = _read_holder(holder_file)
        raise LockError(
            f"another neobuild run is building in {root}{holder}",
            hint="wait for it to finish, or rerun with --wait-lock to queue behind it",
        ) from None
    try:
        from neobuild.atomic import atomic_write_text

        atomic_write_text(
            holder_file,
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}),
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_file.unlink()
        lock.release()


def _read_holder(path: Path) -> str:
    """`` (pid N on HOST, since HH:MM:SS)`` from the holder file, when it names a live run."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pid, host = int(data["pid"]), str(data["host"])
        started = time.strftime("%H:%M:%S", time.localtime(float(data["started"])))
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    if host == socket.gethostname():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""  # a killed run's leftover file; the lock holder is another run
        except PermissionError:
            pass
    return f" (pid {pid} on {host}, since {started})"


# --------------------------------------------------------------------------- one model


@dataclass(frozen=True)
class BuildOptions:
    force: bool = False
    smoke: bool | None = None
    allow_incomplete: bool = False
    stream: bool = False
    compile_check: bool | None = None
    strict: bool = False  # an unsupported or mismatched compile check fails the model


def compile_check_wanted(options: BuildOptions, model: Model) -> bool:
    return options.compile_check if options.compile_check is not None else model.compile_check


def model_dir(manifest: Manifest, model: Model) -> Path:
    return manifest.build_dir / model.name


def _rel(manifest: Manifest, path: Path) -> str:
    return repo_relative(manifest.root, path)


def _tail(path: Path, lines: int = 20, *, max_bytes: int = 64 * 1024, width: int = 2000) -> str:
    """The last ``lines`` lines of a log, read from its last ``max_bytes`` only."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(
        line if len(line) <= width else line[:width] + " …[cut]"
        for line in text.splitlines()[-lines:]
    )


class Interrupted(NeobuildError):
    """The run was interrupted before this model finished; nothing of it was kept."""

    exit_code = EXIT_INTERRUPTED


# The one line ``package`` prints when models were packaged without requests.
NO_REQUESTS_HINT = (
    "set compile.role_arn and compile.s3_prefix in neo.yaml (compile.region is optional: "
    "AWS_REGION is used without it) to render them"
)
NOT_RENDERED = "not rendered"


def writes_requests(model: Model, options: BuildOptions) -> bool:
    """Whether ``package`` writes the model's requests (``--allow-incomplete``: placeholders)."""
    return model.compile.renders_requests or options.allow_incomplete


def no_requests_line(names: Sequence[str]) -> str:
    """``package``'s one line about models packaged without CreateCompilationJob requests."""
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    count = f"{len(names)} model{'s' if len(names) != 1 else ''}"
    return f"compilation requests not rendered for {count} ({shown}): {NO_REQUESTS_HINT}"


def preflight_requests(manifest: Manifest, model: Model, options: BuildOptions) -> None:
    """Check every target's request before exporting: a missing ``role_arn`` costs nothing.

    The archive hash is not known yet, so a stand-in is used; the real requests are
    checked again when they are written.
    """
    from neobuild import request
    from neobuild.preflight import preflight

    if not writes_requests(model, options):
        return
    problems: list[str] = []
    for target in model.targets:
        body = request.build_request(
            manifest,
            model,
            target,
            archive_sha256="sha256:" + "0" * 64,
            allow_incomplete=options.allow_incomplete,
        )
        try:
            preflight(
                body, model=model.name, target=target.key, region=model.compile.region
            )
        except RequestError as exc:
            problems.extend(exc.problems or [exc.message])
    if problems:
        raise RequestError(
            f"model {model.name}: {len(problems)} problem(s) in its CreateCompilationJob "
            "requests (found before exporting):\n  " + "\n  ".join(problems),
            problems=problems,
            hint="fix the model's entry in neo.yaml (compile:, targets:, compiler_options:)",
        )


def build_model(
    manifest: Manifest,
    model: Model,
    options: BuildOptions,
    *,
    fingerprint: Any,
    git_state: tuple[str | None, bool | None],
    cancel: threading.Event | None = None,
    reuse: ReusedExport | None = None,
) -> tuple[ModelReport, LockEntry]:
    """Run one model's whole pipeline; returns its report and new lock entry.

    The entry carries no compilation jobs: the caller merges the recorded ones in
    under the lock (:func:`neobuild.lockfile.carry_jobs`).

    Raises:
        NeobuildError: any step failed (the staging directory is removed; the log is
            kept at ``<build_dir>/<model>/export.log`` and the export, for inspection,
            at ``<build_dir>/.failed/<model>/``).
    """
    from neobuild import envs, render, request
    from neobuild.archive import pack
    from neobuild.export import run_export
    from neobuild.frameworks import get_adapter
    from neobuild.hashing import hash_bytes
    from neobuild.lockfile import FileRecord, LockEntry, RequestRecord

    final = model_dir(manifest, model)
    outputs.check_replaceable(final)
    preflight_requests(manifest, model, options)
    staging = outputs.staging_dir(final)
    export_dir = staging / "export"
    log_path = staging / "export.log"
    started = time.monotonic()
    report = ModelReport(name=model.name, status="failed", log_path=final / "export.log")
    try:
        smoke_wanted = options.smoke if options.smoke is not None else model.smoke
        check_wanted = compile_check_wanted(options, model)
        python: Path | None = None
        if reuse is None or smoke_wanted or check_wanted:
            python = envs.export_python(
                model, root=manifest.root, log_path=log_path, stream=options.stream
            )
        if reuse is not None:
            # Only render-only settings changed: pack the verified previous export again.
            shutil.copytree(reuse.directory, export_dir)
            exported_with = reuse.exported_with
            report.message = "export reused: only request/render settings changed"
        else:
            export_dir.mkdir()
            assert python is not None
            result = run_export(
                model,
                root=manifest.root,
                output_dir=export_dir,
                log_path=log_path,
                python=python,
                stream=options.stream,
            )
            exported_with = dict(sorted(result.framework_versions.items()))
            report.warnings.extend(_sources_touched(manifest, model, fingerprint))
        adapter = get_adapter(model.framework)
        adapter.normalize(export_dir)
        artifacts = adapter.check(export_dir, model)
        report.warnings.extend(artifacts.warnings)

        rendered = render.render_model(manifest, model)
        for rel, content in sorted(rendered.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        extras = render.archive_extras(model, rendered)
        archive = pack(export_dir, artifacts.files, staging / "model.tar.gz", extra=extras)
        request_paths: dict[str, Path] = {}
        if writes_requests(model, options):
            request_paths = request.write_requests(
                manifest,
                model,
                archive.sha256,
                staging / "requests",
                allow_incomplete=options.allow_incomplete,
                warnings=report.warnings,
            )

        smoke_status: str | None = None
        if smoke_wanted:
            from neobuild import smoke

            assert python is not None
            smoke_status = smoke.smoke_test(
                manifest,
                model,
                export_dir=export_dir,
                python=python,
                log_path=log_path,
                rendered=rendered,
            )

        check = None
        if check_wanted:
            from neobuild import compilecheck

            assert python is not None
            check = compilecheck.check_model(
                model, export_dir=export_dir, python=python, log_path=log_path
            )
            report.compile_check = check.summary()
            report.compile_check_result = check.to_json()
            if options.strict and check.failed:
                raise compilecheck.CompileCheckError(
                    f"model {model.name}: compile check {check.summary()}",
                    compile_check=check.summary(),
                    hint="the check is a hint, not Neo's verdict; drop --strict to build anyway",
                )

        # Hashed while packing: multi-GB weights are read once.
        files = {
            rel: FileRecord(size=archive.file_sizes[rel], sha256=archive.file_hashes[rel])
            for rel in artifacts.files
        }
        written = {
            rel: FileRecord(size=len(content), sha256=hash_bytes(content))
            for rel, content in sorted(rendered.items())
        }
        requests: dict[str, RequestRecord] = {}
        for key, path in sorted(request_paths.items()):
            data = path.read_bytes()
            rel = path.relative_to(staging).as_posix()
            written[rel] = FileRecord(size=len(data), sha256=hash_bytes(data))
            job_name = json.loads(data).get("CompilationJobName", "")
            requests[key] = RequestRecord(
                path=_rel(manifest, final / rel), sha256=hash_bytes(data), job_name=job_name
            )
        entry = LockEntry(
            fingerprint=fingerprint.digest,
            framework=model.framework,
            framework_version=model.framework_version,
            exported_with=exported_with,
            files=files,
            archive=FileRecord(size=archive.size, sha256=archive.sha256),
            archive_path=_rel(manifest, final / "model.tar.gz"),
            outputs=written,
            requests=requests,
            smoke=smoke_status,
            fingerprint_parts=dict(fingerprint.parts),
            jobs={},
            git_commit=git_state[0],
            git_dirty=git_state[1],
            compile_check=check.summary() if check is not None else None,
        )
        if cancel is not None and cancel.is_set():
            raise Interrupted(f"model {model.name}: interrupted; its outputs were not kept")
        outputs.swap_into_place(staging, final)
        report.status = "built"
        report.archive = entry.archive_path
        report.archive_sha256 = archive.sha256
        report.files = {rel: rec.sha256 for rel, rec in files.items()}
        report.targets = [
            (key, "rendered", str(final / path.relative_to(staging)))
            for key, path in request_paths.items()
        ] or [(t.key, NOT_RENDERED, "no compile settings") for t in model.targets]
        report.smoke = smoke_status
        return report, entry
    except BaseException as exc:
        moved = _keep_failure(manifest, model, staging)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, NeobuildError):
            # The log and the export moved out of staging: messages name where they are now.
            for old, new in moved.items():
                exc.message = exc.message.replace(old, new)
                if exc.hint:
                    exc.hint = exc.hint.replace(old, new)
        raise
    finally:
        report.duration = time.monotonic() - started


def _sources_touched(manifest: Manifest, model: Model, before: Any) -> list[str]:
    """A warning when the export changed files its own ``sources`` match.

    Such a model looks stale right after it was built (``plan --check`` fails in CI);
    the usual cause is a download cache kept next to the export code.
    """
    from neobuild.fingerprint import SOURCE_PREFIX, fingerprint

    after = fingerprint(manifest, model, templates_hash="", details=False).parts
    if after.get("sources") == before.parts.get("sources"):
        return []
    keys = {k for k in (*before.parts, *after) if k.startswith(SOURCE_PREFIX)}
    changed = sorted(k[len(SOURCE_PREFIX) :] for k in keys if before.parts.get(k) != after.get(k))
    shown = ", ".join(changed[:5]) + (f" (+{len(changed) - 5} more)" if len(changed) > 5 else "")
    return [
        f"the export changed files its own sources match ({shown or 'sources'}), so the model "
        "will look stale right after this build; keep caches and outputs outside `sources`, "
        "or narrow `sources` in neo.yaml"
    ]


# Manifest fields that shape only the rendered files and requests, never the export.
RENDER_ONLY_FIELDS = frozenset(
    {
        "compile",
        "targets",
        "compiler_options",
        "tags",
        "timeout",
        "templates_dir",
        "smoke",
        "compile_check",
    }
)


@dataclass(frozen=True)
class ReusedExport:
    """A previous, verified export that a rebuild packs again instead of re-running it."""

    directory: Path
    exported_with: dict[str, str]


def reusable_export(
    manifest: Manifest, model: Model, previous: LockEntry | None, fingerprint: Any
) -> ReusedExport | None:
    """The model's last export when only render-only inputs changed and it is intact.

    Changing ``compile.role_arn`` in ``defaults`` must not re-run every export of a
    monorepo: when sources, requirements, neobuild and adapter versions and every
    export-shaping manifest field are as the lock recorded, and the exported files
    still hash as recorded, the rebuild re-renders, re-packs and re-writes requests.
    """
    from neobuild.archive import hash_file
    from neobuild.plan import changed_fields

    if previous is None:
        return None
    old, new = previous.fingerprint_parts, fingerprint.parts
    for part in ("sources", "requirements", "neobuild", "adapter"):
        if old.get(part) != new.get(part):
            return None
    sources_old = {k: v for k, v in old.items() if k.startswith("source:")}
    sources_new = {k: v for k, v in new.items() if k.startswith("source:")}
    if sources_old != sources_new:
        return None
    fields = changed_fields(old, new)
    if not fields or not set(fields) <= RENDER_ONLY_FIELDS:
        return None
    export = model_dir(manifest, model) / "export"
    try:
        present = sorted(p.relative_to(export).as_posix() for p in export.rglob("*") if p.is_file())
        if present != sorted(previous.files):
            return None
        for rel, record in previous.files.items():
            if hash_file(export / rel) != record.sha256:
                return None
    except OSError:
        return None
    return ReusedExport(directory=export, exported_with=dict(previous.exported_with))


#: A failed export with more files than this is removed, not kept in ``.failed/``.
FAILED_KEEP_FILES = 1000


def _more_files_than(directory: Path, limit: int) -> bool:
    count = 0
    for _, _, files in os.walk(directory):
        count += len(files)
        if count > limit:
            return True
    return False


def _keep_failure(manifest: Manifest, model: Model, staging: Path) -> dict[str, str]:
    """Keep a failed build's log and export for inspection; the previous outputs stay.

    Returns:
        Old path -> new path, for rewriting messages.
    """
    moved: dict[str, str] = {}
    final = model_dir(manifest, model)
    log = staging / "export.log"
    if log.exists() and (not final.exists() or outputs.is_ours(final)):
        with contextlib.suppress(OSError):
            if not final.exists():
                final.mkdir(parents=True)
                outputs.mark(final)
            os.replace(log, final / "export.log")
            moved[str(log)] = str(final / "export.log")
    export = staging / "export"
    if export.is_dir() and _more_files_than(export, FAILED_KEEP_FILES):
        shutil.rmtree(export, ignore_errors=True)  # 100,000 files are not for inspection
    if export.is_dir():
        kept = manifest.build_dir / FAILED_DIR / model.name
        with contextlib.suppress(OSError):
            shutil.rmtree(kept, ignore_errors=True)
            kept.parent.mkdir(parents=True, exist_ok=True)
            os.replace(export, kept)
            moved[str(export)] = str(kept)
    return moved


# --------------------------------------------------------------------------- the run


def load_manifest(manifest_path: Path) -> Manifest:
    from neobuild import manifest as manifest_mod

    return manifest_mod.load(manifest_path)


def _select(
    manifest: Manifest,
    patterns: Sequence[str],
    all_models: bool,
    shard: str | None,
    *,
    require: bool = False,
    command: str = "package",
) -> list[Model]:
    """The selected models; with ``require``, names or ``--all`` must be given."""
    from neobuild.selection import select_models

    if require and not patterns and not all_models:
        raise UsageError(
            "name the models to act on, or pass --all",
            hint=f"e.g. `neobuild {command} resnet18`, `neobuild {command} 'tag:vision'` or "
            f"`neobuild {command} --all`",
        )
    models = select_models(manifest, patterns, all_models=all_models)
    if shard is not None:
        from neobuild import shard as shard_mod

        k, n = shard_mod.parse_shard(shard)
        names = set(shard_mod.shard([m.name for m in models], k, n))
        models = [m for m in models if m.name in names]
    return models


def _check_build_dir(manifest: Manifest, models: Sequence[Model]) -> None:
    """The build directory must not hold anything neobuild reads.

    Raises:
        UsageError: an export entrypoint, requirements file or templates directory lies
            inside ``build_dir``.
    """
    from neobuild.manifest import RealPaths

    realpath = RealPaths()
    build = os.path.realpath(manifest.build_dir)
    root = os.fspath(manifest.root)
    for model in models:
        for rel in (model.export.path, model.requirements_file, model.templates_dir):
            if rel is None:
                continue
            path = realpath(os.path.join(root, rel))
            if path == build or path.startswith(build + os.sep):
                raise UsageError(
                    f"build_dir {_rel(manifest, manifest.build_dir)} contains {rel}, an input of "
                    f"model {model.name!r}; neobuild replaces what is in build_dir",
                    hint="set build_dir in neo.yaml to a directory of its own, e.g. build/neo",
                )


def _check_build_dir_writable(manifest: Manifest) -> None:
    """One clear error for an unusable build directory, not one per model.

    Raises:
        UsageError: ``build_dir`` (or a parent) is a file, or it cannot be written.
    """
    probe_dir = manifest.build_dir / outputs.STAGING
    try:
        probe_dir.mkdir(parents=True, exist_ok=True)
        probe = probe_dir / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UsageError(
            f"build_dir {_rel(manifest, manifest.build_dir)} is not usable: "
            f"{exc.strerror or exc} ({exc.filename or probe_dir})",
            hint="make it a writable directory, or set build_dir in neo.yaml elsewhere",
        ) from exc


class LockWriter:
    """Collects finished models' lock entries and writes them in batches.

    Rewriting neo.lock costs time in proportion to its size, so writing it once per
    model is quadratic in a large repository. Entries are flushed when at least
    ``interval`` seconds passed since the last write, and at the end. Each write merges
    under the lock's file lock, keeping jobs a concurrent ``compile`` recorded.
    A kill between two flushes loses only the newest entries: their outputs are in
    place but unlisted, so the next run rebuilds (or verifies) them.
    """

    def __init__(self, path: Path, *, interval: float = 1.0) -> None:
        self.path = path
        self.interval = interval
        self.pending: dict[str, LockEntry | None] = {}
        self.last = time.monotonic()

    def add(self, name: str, entry: LockEntry | None) -> None:
        self.pending[name] = entry
        if time.monotonic() - self.last >= self.interval:
            self.flush()

    def flush(self) -> None:
        from neobuild import lockfile

        if not self.pending:
            return
        pending = dict(self.pending)

        def change(current: lockfile.Lock) -> dict[str, LockEntry | None]:
            return {
                name: lockfile.carry_jobs(current.models.get(name), entry) if entry else None
                for name, entry in pending.items()
            }

        lockfile.modify_lock(self.path, change)
        # Forget only what was written: an interrupted write is retried by the last flush.
        for name, entry in pending.items():
            if self.pending.get(name) is entry:
                del self.pending[name]
        self.last = time.monotonic()


def build(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    all_models: bool = False,
    jobs: int = 1,
    keep_going: bool = False,
    force: bool = False,
    smoke: bool | None = None,
    allow_incomplete: bool = False,
    since: str | None = None,
    shard: str | None = None,
    wait: bool = False,
    junit: Path | None = None,
    fork_server: bool = True,
    out: Output,
    compile_check: bool | None = None,
    strict: bool = False,
) -> BuildReport:
    """Build the selected models that are stale (all of them with ``force``).

    With ``fork_server`` (and on Linux) exports that share an environment are forked
    from one pre-warmed process (:mod:`neobuild.forkserver`).
    """
    from neobuild import lockfile

    started = time.monotonic()
    manifest = load_manifest(manifest_path)
    for warning in manifest.warnings:
        out.warn(warning.render() if hasattr(warning, "render") else str(warning))
    models = _select(manifest, patterns, all_models, shard, require=True)
    _check_build_dir(manifest, models)
    if junit is not None:
        _check_writable(junit)
    build_cache = _open_cache(manifest, out)
    options = BuildOptions(
        force=force,
        smoke=smoke,
        allow_incomplete=allow_incomplete,
        stream=out.verbosity > 0,
        compile_check=compile_check,
        strict=strict,
    )
    lock_path = manifest.root / lockfile.LOCK_NAME
    reports: dict[str, ModelReport] = {}
    cancel = threading.Event()

    with build_lock(manifest.root, wait=wait):
        outputs.sweep_staging(manifest.build_dir)
        _check_build_dir_writable(manifest)
        with contextlib.suppress(OSError):
            from neobuild.gitignore import ignore_build_dir

            ignore_build_dir(manifest.build_dir)  # keeps `git status` clean
        lock = lockfile.read_lock(lock_path)
        the_plan = _plan(manifest, models, lock, since=since)
        stale = [m for m in models if force or the_plan.is_stale(m.name)]
        if any(compile_check_wanted(options, m) for m in stale):
            from neobuild import compilecheck

            # Before any export: a missing extra is a usage error, not N failed models.
            compilecheck.require_extra(
                m.framework for m in stale if compile_check_wanted(options, m)
            )
        for m in models:
            if m not in stale:
                reports[m.name] = ModelReport(name=m.name, status="fresh", message="up to date")
        git_state = _git_state(manifest) if stale else (None, None)
        fingerprints = {m.name: the_plan.fingerprint(m.name) for m in stale}
        writer = LockWriter(lock_path)

        def one(model: Model) -> tuple[ModelReport, LockEntry | None]:
            t0 = time.monotonic()
            try:
                if build_cache is not None and not force:
                    entry = _fetch_cached(manifest, model, fingerprints[model.name], build_cache)
                    if entry is not None:
                        return ModelReport(
                            name=model.name,
                            status="restored",
                            message="restored from cache",
                            duration=time.monotonic() - t0,
                        ), entry
                reuse = None
                if not force:
                    reuse = reusable_export(
                        manifest, model, lock.models.get(model.name), fingerprints[model.name]
                    )
                report, entry = build_model(
                    manifest,
                    model,
                    options,
                    fingerprint=fingerprints[model.name],
                    git_state=git_state,
                    cancel=cancel,
                    reuse=reuse,
                )
                _check_entry(manifest, model, entry)
                if build_cache is not None and not build_cache.read_only:
                    build_cache.store(
                        entry.fingerprint, model.name, entry, model_dir(manifest, model)
                    )
                return report, entry
            except (NeobuildError, OSError) as exc:
                if isinstance(exc, OSError):
                    exc = PackageError(
                        f"model {model.name}: {exc}",
                        hint="check free space and permissions of the build directory",
                    )
                from neobuild.reports import clean_text  # masks secret-looking env values

                log = model_dir(manifest, model) / "export.log"
                return ModelReport(
                    name=model.name,
                    compile_check=getattr(exc, "compile_check", None),
                    # After Ctrl-C, an export stopped by neobuild fails: it was interrupted.
                    status="interrupted"
                    if isinstance(exc, Interrupted) or cancel.is_set()
                    else "failed",
                    duration=time.monotonic() - t0,
                    message=clean_text(_error_text(exc)),
                    hint=clean_text(exc.hint) if exc.hint else None,
                    log_path=log if log.exists() else None,
                    log_tail=clean_text(_tail(log)) if log.exists() else "",
                ), None

        interrupted = False
        from neobuild import forkserver

        try:
            with forkserver.session(fork_server and len(stale) > 1):
                _run_parallel(
                    stale,
                    one,
                    reports,
                    writer,
                    jobs=jobs,
                    keep_going=keep_going,
                    out=out,
                    cancel=cancel,
                )
            if all_models and since is None and shard is None:
                _prune_undeclared(manifest, lock, writer, out)
        except KeyboardInterrupt:
            interrupted = True  # still report what finished and what did not, below
        finally:
            writer.flush()
            outputs.sweep_staging(manifest.build_dir)  # no empty .staging/ left behind

    built = {r.name: r.duration for r in reports.values() if r.status == "built"}
    if built:
        from neobuild import shard as shard_mod

        with contextlib.suppress(OSError):
            shard_mod.record_weights(manifest.root, built)  # balances the next --matrix
    if interrupted:
        for m in models:
            reports.setdefault(
                m.name,
                ModelReport(name=m.name, status="interrupted", message="not started: interrupted"),
            )
    ordered = [reports[m.name] for m in models if m.name in reports]
    report = BuildReport(
        manifest=manifest_path,
        models=ordered,
        duration=time.monotonic() - started,
        without_requests=[
            r.name
            for r in ordered
            if r.status in ("built", "restored")
            and not writes_requests(manifest.models[r.name], options)
        ],
    )
    _print_summary(report, out)
    _write_reports(report, junit, out)
    if interrupted:
        raise BuildInterrupted(report)
    return report


class BuildInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM ended a ``package`` run; ``report`` says what finished.

    The JUnit report is already written; the CLI prints ``report`` for ``--json`` and
    exits 130.
    """

    def __init__(self, report: BuildReport) -> None:
        super().__init__("interrupted")
        self.report = report


def _git_state(manifest: Manifest) -> tuple[str | None, bool | None]:
    """HEAD and whether the tree is dirty, neobuild's own outputs left out."""
    from neobuild import lockfile, scm

    root = manifest.root
    ignore = [
        root / lockfile.LOCK_NAME,
        root / (lockfile.LOCK_NAME + ".lock"),
        root / STATE_DIR,
        manifest.build_dir,
    ]
    try:
        return scm.repo_state(root, ignore=ignore)
    except NeobuildError:
        return None, None


def _check_writable(path: Path) -> None:
    """Fail before building, not after, when the JUnit report cannot be written."""
    problem = None
    if path.is_dir():
        problem = "it is a directory"
    else:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            problem = exc.strerror or str(exc)
        else:
            if not os.access(path.parent, os.W_OK):
                problem = f"{path.parent} is not writable"
    if problem:
        raise UsageError(
            f"cannot write the JUnit report to {path}: {problem}",
            hint="give a file path in a writable directory",
        )


def _write_reports(report: BuildReport, junit: Path | None, out: Output) -> None:
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if junit is None and not summary:
        return
    from neobuild import reports as reports_mod

    if junit is not None:
        reports_mod.write_junit(junit, report)
    if summary:
        try:
            reports_mod.append_step_summary(report)
        except OSError as exc:
            out.warn(f"could not append to GITHUB_STEP_SUMMARY ({summary}): {exc}")


def _prune_undeclared(manifest: Manifest, lock: Any, writer: LockWriter, out: Output) -> None:
    """``package --all``: drop lock entries (and outputs) of models no longer declared."""
    gone = sorted(set(lock.models) - set(manifest.models))
    for name in gone:
        writer.add(name, None)
        outputs.remove_output(manifest.build_dir / name)
    if gone:
        out.info(f"removed {len(gone)} model(s) no longer in the manifest: {', '.join(gone)}")


def _fetch_cached(
    manifest: Manifest, model: Model, fingerprint: Any, build_cache: Any
) -> LockEntry | None:
    from neobuild import cache

    hit = build_cache.fetch(fingerprint.digest, model.name, model_dir(manifest, model))
    if hit is None:
        return None
    return cache.localize(manifest, model, hit.entry)


def _open_cache(manifest: Manifest, out: Output) -> Any:
    """The shared build cache, opened once (a bad URL is bad input, before any work)."""
    from neobuild import cache

    settings = cache.cache_settings(manifest)
    if settings is None:
        return None
    try:
        return cache.open_cache(settings, root=manifest.root, warn=out.warn)
    except NeobuildError as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc


def _templates_hash(manifest: Manifest) -> Callable[[Model], str]:
    """Per model: the hash of the templates that model renders (its overrides included)."""
    from neobuild import render

    return lambda model: render.templates_hash_for(manifest, model)


def _plan(
    manifest: Manifest, models: Sequence[Model], lock: Any, *, since: str | None = None
) -> Plan:
    """Plan ``models`` against ``lock`` through the repository's stat cache (saved after)."""
    from neobuild import plan as plan_mod
    from neobuild.statcache import StatCache

    stat_cache = StatCache.open(manifest.root)
    the_plan = plan_mod.plan(
        manifest,
        models,
        lock,
        templates_hash=_templates_hash(manifest),
        since=since,
        stat_cache=stat_cache,
    )
    stat_cache.save()
    return the_plan


def _run_parallel(
    models: Sequence[Model],
    one: Callable[[Model], tuple[ModelReport, LockEntry | None]],
    reports: dict[str, ModelReport],
    writer: LockWriter,
    *,
    jobs: int,
    keep_going: bool,
    out: Output,
    cancel: threading.Event,
) -> None:
    """Run ``one`` over ``models`` on ``jobs`` threads (each export is a subprocess).

    Lock entries are handed to ``writer`` from this (the main) thread as models finish.
    Without ``keep_going`` the first failure stops new models from starting; the running
    ones finish, and the rest are reported as not started. On Ctrl-C (or SIGTERM, which
    the CLI turns into one) running exports are stopped, nothing unfinished is kept,
    and what finished before stays recorded.
    """
    if not models:
        return
    from neobuild import runner
    from neobuild.progress import BuildProgress

    workers = max(1, jobs)
    failed = False
    pending = list(models)
    running: dict[cf.Future[tuple[ModelReport, LockEntry | None]], Model] = {}
    progress = BuildProgress(out, len(models))
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neobuild")
    try:
        with progress.shown():
            while pending or running:
                while pending and len(running) < workers and not (failed and not keep_going):
                    model = pending.pop(0)
                    progress.started(model.name)
                    running[pool.submit(one, model)] = model
                if not running:
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    model = running[future]
                    try:
                        rep, entry = future.result()
                        if entry is not None:
                            writer.add(model.name, entry)  # before the future is forgotten
                    except (NeobuildError, OSError) as exc:  # one model never stops the rest
                        writer.pending.pop(model.name, None)
                        rep = _failure(model, exc)
                    reports[model.name] = rep
                    del running[future]
                    failed = failed or rep.status == "failed"
                    progress.finished(rep)
    except KeyboardInterrupt:
        cancel.set()
        runner.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        for future, model in running.items():
            if future.done() and not future.cancelled():
                rep, entry = future.result()
                reports[model.name] = rep
                if entry is not None and rep.status == "built":
                    writer.add(model.name, entry)  # it was swapped in before the interrupt
            else:
                reports[model.name] = ModelReport(
                    name=model.name, status="interrupted", message="interrupted"
                )
        raise
    finally:
        pool.shutdown(wait=True)
    for model in pending:
        reports[model.name] = ModelReport(
            name=model.name,
            status="skipped",
            message="not started: an earlier model failed (use --keep-going)",
        )


def _check_entry(manifest: Manifest, model: Model, entry: LockEntry) -> None:
    """Fail this model, not the lock write of every model, when its entry is invalid.

    Raises:
        LockError: neo.lock cannot hold the entry; the model's outputs are removed.
    """
    from neobuild import lockfile

    try:
        lockfile.LockEntry.from_json(entry.to_json())
    except NeobuildError:
        outputs.remove_output(model_dir(manifest, model))
        raise


def _failure(model: Model, exc: NeobuildError | OSError) -> ModelReport:
    """The report of a model whose result could not be recorded."""
    from neobuild.reports import clean_text

    return ModelReport(
        name=model.name,
        status="failed",
        message=clean_text(f"model {model.name}: {exc}"),
        hint=getattr(exc, "hint", None),
    )


def _error_text(exc: NeobuildError) -> str:
    # By convention a NeobuildError's message already lists its problems.
    return exc.message


def _print_summary(report: BuildReport, out: Output) -> None:
    for m in report.models:
        if m.compile_check:
            line = f"{m.name}: compile check {m.compile_check}"
            passed = m.compile_check.startswith(("passed", "not-checked"))
            (out.info if passed else out.warn)(line)
    failures = [m for m in report.models if m.status == "failed"]
    if failures:
        out.error("failed: " + ", ".join(m.name for m in failures))
    if report.without_requests:
        out.info(no_requests_line(report.without_requests))
    out.info(report.summary())


# --------------------------------------------------------------------------- plan / verify / compile


@dataclass(frozen=True)
class PlanOutput:
    """What ``neobuild plan`` shows: a JSON document, its human text, and the stale count."""

    document: Any
    text: str
    stale_count: int
    warnings: tuple[str, ...] = ()  # the manifest's warnings, shown by `plan` too

    def to_json(self) -> Any:
        return self.document

    def render(self) -> str:
        return self.text


def make_plan(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    since: str | None = None,
    shard: str | None = None,
    matrix: int | None = None,
    explain: str | None = None,
    include_fresh: bool = False,
    weights: Sequence[Path] = (),
) -> PlanOutput:
    """The plan (or, with ``explain``, one model's fingerprint breakdown; with ``matrix``, shards)."""
    from neobuild import lockfile
    from neobuild import plan as plan_mod
    from neobuild import shard as shard_mod
    from neobuild.statcache import StatCache

    manifest = load_manifest(manifest_path)
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    if explain is not None:
        (model,) = _select(manifest, [explain], False, None)[:1]
        stat_cache = StatCache.open(manifest.root)
        explanation = plan_mod.explain(
            manifest, model, lock, templates_hash=_templates_hash(manifest), stat_cache=stat_cache
        )
        stat_cache.save()
        return PlanOutput(
            document=explanation.to_json(),
            text=explanation.render(),
            stale_count=int(explanation.item.stale),
        )
    models = _select(manifest, patterns, False, shard)
    result = _plan(manifest, models, lock, since=since)
    if matrix is not None:
        durations = shard_mod.load_weights(manifest.root)
        durations.update(shard_mod.weights_from_junit(list(weights)))
        document = shard_mod.matrix(
            result, matrix, include_fresh=include_fresh, weights=durations or None
        )
        return PlanOutput(
            document=document,
            text=json.dumps(document, separators=(",", ":")),
            stale_count=result.stale_count,
        )
    document = result.to_json()
    text = result.render(show_fresh=include_fresh)
    removed: list[str] = []
    if not patterns and shard is None:
        # Lock entries of models no longer declared: `package --all` removes them.
        removed = sorted(set(lock.models) - set(manifest.models))
        document["removed"] = removed
        if removed:
            text += "".join(
                f"\n{name}: in neo.lock but no longer declared (`package --all` removes it)"
                for name in removed
            )
    return PlanOutput(
        document=document,
        text=text,
        stale_count=result.stale_count + len(removed),
        warnings=tuple(w.render() if hasattr(w, "render") else str(w) for w in manifest.warnings),
    )


def verify(*, manifest_path: Path) -> VerifyReport:
    from neobuild import lockfile
    from neobuild import verify as verify_mod

    manifest = load_manifest(manifest_path)
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    return verify_mod.verify(manifest, lock)


def _refuse_stale(manifest: Manifest, models: Sequence[Model]) -> None:
    """Compile only what neo.lock says was built from today's inputs.

    Raises:
        NeobuildError: a selected model is stale (its requests would describe old inputs).
    """
    from neobuild import lockfile

    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    stale = _plan(manifest, models, lock).stale
    if stale:
        lines = [f"{item.name}: {item.reasons[0] if item.reasons else 'stale'}" for item in stale]
        names = " ".join(item.name for item in stale)
        raise NeobuildError(
            f"{len(stale)} model(s) changed since they were packaged, so their requests are out "
            "of date:\n  " + "\n  ".join(lines),
            hint=f"run `neobuild package {names}` first",
        )


def _with_compile_settings(
    models: Sequence[Model], *, all_models: bool, out: Output
) -> list[Model]:
    """The models that have requests to compile; a named one without them is a usage error.

    ``--all`` skips models without compile settings (with one line naming them) and
    fails only when none is left.

    Raises:
        UsageError: a named model, or every model, has no compile settings.
    """
    bare = [m.name for m in models if not m.compile.renders_requests]
    if not bare:
        return list(models)
    kept = [m for m in models if m.compile.renders_requests]
    shown = ", ".join(bare[:5]) + (f" and {len(bare) - 5} more" if len(bare) > 5 else "")
    if all_models and kept:
        out.info(f"skipping {len(bare)} model(s) without compile settings: {shown}")
        return kept
    raise UsageError(
        f"nothing to compile for {shown}: compile.role_arn and compile.s3_prefix are not set",
        hint="set both in neo.yaml (under compile:, in the model or in defaults), run "
        "`neobuild package` again to render the requests, then compile",
    )


def compile_(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    all_models: bool = False,
    submit: bool = False,
    wait: bool = False,
    out: Output,
    confirm_stop: Callable[[Sequence[Any]], bool] | None = None,
) -> CompileResult:
    """Pre-flight (and with ``submit`` run) the compilation jobs of the selected models."""
    from neobuild import compile as compile_mod

    manifest = load_manifest(manifest_path)
    models = _select(manifest, patterns, all_models, None, require=True, command="compile")
    models = _with_compile_settings(models, all_models=all_models, out=out)
    _refuse_stale(manifest, models)
    result = compile_mod.compile_models(
        manifest,
        models,
        submit=submit,
        wait=wait,
        on_event=lambda event: (out.detail if event.kind == "checked" else out.info)(
            compile_mod.describe_event(event)
        ),
        confirm_stop=confirm_stop,
        raise_on_failure=False,
    )
    return result  # the CLI prints it: on stdout, or as --json
