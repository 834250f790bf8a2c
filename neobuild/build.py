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
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock

from neobuild import __version__
from neobuild.console import Output
from neobuild.errors import LockError, NeobuildError
from neobuild.model import Manifest, Model

if TYPE_CHECKING:
    from neobuild.compile import CompileResult
    from neobuild.verify import VerifyReport

STATE_DIR = ".neobuild"


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
        }


@dataclass
class BuildReport:
    """The outcome of one ``package`` run."""

    manifest: Path
    models: list[ModelReport]
    duration: float

    def count(self, status: str) -> int:
        return sum(1 for m in self.models if m.status == status)

    @property
    def ok(self) -> bool:
        return not any(m.status in ("failed", "skipped") for m in self.models)

    def summary(self) -> str:
        parts = [f"{self.count('built')} built"]
        for status, label in (
            ("restored", "restored from cache"),
            ("fresh", "up to date"),
            ("failed", "failed"),
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
                s: self.count(s) for s in ("built", "restored", "fresh", "failed", "skipped")
            },
            "models": [m.to_json() for m in self.models],
        }


# --------------------------------------------------------------------------- locking


@contextlib.contextmanager
def build_lock(root: Path, *, wait: bool) -> Iterator[None]:
    """Hold the repository's build lock; say who holds it when it is taken.

    The lock is an ``flock`` on ``.neobuild/build.lock``: the kernel releases it when
    its holder dies, so a lock left by a killed run is never stale.
    """
    state = root / STATE_DIR
    state.mkdir(parents=True, exist_ok=True)
    holder_file = state / "build.lock.json"
    lock = filelock.FileLock(str(state / "build.lock"))
    try:
        lock.acquire(timeout=-1 if wait else 0)
    except filelock.Timeout:
        holder = _read_holder(holder_file)
        raise LockError(
            f"another neobuild run is building in {root}{holder}",
            hint="wait for it to finish, or rerun with --wait to queue behind it",
        ) from None
    try:
        holder_file.write_text(
            json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}),
            encoding="utf-8",
        )
        yield
    finally:
        with contextlib.suppress(OSError):
            holder_file.unlink()
        lock.release()


def _read_holder(path: Path) -> str:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        started = time.strftime("%H:%M:%S", time.localtime(float(data["started"])))
        return f" (pid {data['pid']} on {data['host']}, since {started})"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


# --------------------------------------------------------------------------- one model


@dataclass(frozen=True)
class BuildOptions:
    force: bool = False
    smoke: bool | None = None
    allow_incomplete: bool = False
    stream: bool = False


def model_dir(manifest: Manifest, model: Model) -> Path:
    return manifest.build_dir / model.name


def _rel(manifest: Manifest, path: Path) -> str:
    try:
        return path.relative_to(manifest.root).as_posix()
    except ValueError:
        return path.as_posix()


def _tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def build_model(
    manifest: Manifest,
    model: Model,
    options: BuildOptions,
    *,
    fingerprint: Any,
    git_state: tuple[str | None, bool | None],
    previous: Any,
) -> tuple[ModelReport, Any]:
    """Run one model's whole pipeline; returns its report and new lock entry.

    Raises:
        NeobuildError: any step failed (the staging directory is removed, the log kept).
    """
    from neobuild import envs, package, render, request, runner
    from neobuild.frameworks import get_adapter
    from neobuild.lockfile import FileRecord, LockEntry, RequestRecord

    final = model_dir(manifest, model)
    staging_root = manifest.build_dir / ".staging"
    staging = staging_root / f"{model.name}-{uuid.uuid4().hex[:12]}"
    export_dir = staging / "export"
    export_dir.mkdir(parents=True)
    log_path = staging / "export.log"
    started = time.monotonic()
    report = ModelReport(name=model.name, status="failed", log_path=final / "export.log")
    try:
        python = envs.export_python(
            model, root=manifest.root, log_path=log_path, stream=options.stream
        )
        result = runner.run_export(
            model,
            root=manifest.root,
            output_dir=export_dir,
            log_path=log_path,
            python=python,
            stream=options.stream,
        )
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
        archive = package.pack(export_dir, artifacts.files, staging / "model.tar.gz", extra=extras)
        request_paths = request.write_requests(
            manifest,
            model,
            archive.sha256,
            staging / "requests",
            allow_incomplete=options.allow_incomplete,
            warnings=report.warnings,
        )

        smoke_wanted = options.smoke if options.smoke is not None else model.smoke
        smoke_status: str | None = None
        if smoke_wanted:
            from neobuild import smoke

            smoke_status = smoke.smoke_test(
                manifest,
                model,
                export_dir=export_dir,
                python=python,
                log_path=log_path,
                rendered=rendered,
            )

        # Hashed while packing: multi-GB weights are read once.
        files = {
            rel: FileRecord(size=archive.file_sizes[rel], sha256=archive.file_hashes[rel])
            for rel in artifacts.files
        }
        outputs = {
            rel: FileRecord(size=len(content), sha256=package.hash_bytes(content))
            for rel, content in sorted(rendered.items())
        }
        requests: dict[str, RequestRecord] = {}
        for key, path in sorted(request_paths.items()):
            data = path.read_bytes()
            rel = path.relative_to(staging).as_posix()
            outputs[rel] = FileRecord(size=len(data), sha256=package.hash_bytes(data))
            job_name = json.loads(data).get("CompilationJobName", "")
            requests[key] = RequestRecord(
                path=_rel(manifest, final / rel), sha256=package.hash_bytes(data), job_name=job_name
            )
        # Jobs recorded for a request that did not change stay valid.
        jobs = {}
        if previous is not None:
            jobs = {
                key: job
                for key, job in previous.jobs.items()
                if key in requests and previous.requests.get(key) == requests[key]
            }
        entry = LockEntry(
            fingerprint=fingerprint.digest,
            framework=model.framework,
            framework_version=model.framework_version,
            exported_with=dict(sorted(result.framework_versions.items())),
            files=files,
            archive=FileRecord(size=archive.size, sha256=archive.sha256),
            archive_path=_rel(manifest, final / "model.tar.gz"),
            outputs=outputs,
            requests=requests,
            smoke=smoke_status,
            fingerprint_parts=dict(fingerprint.parts),
            jobs=jobs,
            git_commit=git_state[0],
            git_dirty=git_state[1],
        )
        _swap_into_place(staging, final, staging_root)
        report.status = "built"
        report.archive = entry.archive_path
        report.archive_sha256 = archive.sha256
        report.files = {rel: rec.sha256 for rel, rec in files.items()}
        report.targets = [(key, "rendered", str(path)) for key, path in request_paths.items()]
        report.smoke = smoke_status
        return report, entry
    except BaseException as exc:
        _keep_log(log_path, final)
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, NeobuildError):
            # The log moved: messages must name where it is now.
            moved = str(final / "export.log")
            exc.message = exc.message.replace(str(log_path), moved)
            if exc.hint:
                exc.hint = exc.hint.replace(str(log_path), moved)
        raise
    finally:
        report.duration = time.monotonic() - started


def _swap_into_place(staging: Path, final: Path, staging_root: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames (the old tree is removed after)."""
    old = staging_root / f"{final.name}-old-{uuid.uuid4().hex[:12]}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def _keep_log(log_path: Path, final: Path) -> None:
    """Move a failed build's log to ``<build_dir>/<model>/export.log``; keep old outputs."""
    if not log_path.exists():
        return
    final.mkdir(parents=True, exist_ok=True)
    os.replace(log_path, final / "export.log")


# --------------------------------------------------------------------------- the run


def load_manifest(manifest_path: Path) -> Manifest:
    from neobuild import manifest as manifest_mod

    return manifest_mod.load(manifest_path)


def _select(
    manifest: Manifest, patterns: Sequence[str], all_models: bool, shard: str | None
) -> list[Model]:
    from neobuild.selection import select_models

    models = select_models(manifest, patterns, all_models=all_models)
    if shard is not None:
        from neobuild import shard as shard_mod

        k, n = shard_mod.parse_shard(shard)
        names = set(shard_mod.shard([m.name for m in models], k, n))
        models = [m for m in models if m.name in names]
    return models


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
    out: Output,
) -> BuildReport:
    """Build the selected models that are stale (all of them with ``force``)."""
    from neobuild import lockfile, scm
    from neobuild import plan as plan_mod
    from neobuild.statcache import StatCache

    started = time.monotonic()
    manifest = load_manifest(manifest_path)
    for warning in manifest.warnings:
        out.warn(warning.render() if hasattr(warning, "render") else str(warning))
    models = _select(manifest, patterns, all_models, shard)
    options = BuildOptions(
        force=force, smoke=smoke, allow_incomplete=allow_incomplete, stream=out.verbosity > 0
    )
    lock_path = manifest.root / lockfile.LOCK_NAME
    reports: dict[str, ModelReport] = {}

    with build_lock(manifest.root, wait=wait):
        lock = lockfile.read_lock(lock_path)
        stat_cache = StatCache.open(manifest.root)
        templates_hash = _templates_hash(manifest)
        the_plan = plan_mod.plan(
            manifest,
            models,
            lock,
            templates_hash=templates_hash,
            since=since,
            stat_cache=stat_cache,
        )
        stale = [m for m in models if force or the_plan.is_stale(m.name)]
        for m in models:
            if m not in stale:
                reports[m.name] = ModelReport(name=m.name, status="fresh", message="up to date")
        try:
            git_state = scm.repo_state(manifest.root)
        except NeobuildError:
            git_state = (None, None)
        fingerprints = {m.name: the_plan.fingerprint(m.name) for m in stale}
        stat_cache.save()

        def one(model: Model) -> ModelReport:
            t0 = time.monotonic()
            try:
                if _restore_from_cache(manifest, model, fingerprints[model.name], lock_path, out):
                    return ModelReport(
                        name=model.name,
                        status="restored",
                        message="restored from cache",
                        duration=time.monotonic() - t0,
                    )
                report, entry = build_model(
                    manifest,
                    model,
                    options,
                    fingerprint=fingerprints[model.name],
                    git_state=git_state,
                    previous=lock.models.get(model.name),
                )
                lockfile.update_lock(lock_path, {model.name: entry})
                _store_in_cache(manifest, model, entry, out)
                return report
            except NeobuildError as exc:
                log = model_dir(manifest, model) / "export.log"
                return ModelReport(
                    name=model.name,
                    status="failed",
                    duration=time.monotonic() - t0,
                    message=_error_text(exc),
                    hint=exc.hint,
                    log_path=log if log.exists() else None,
                    log_tail=_tail(log) if log.exists() else "",
                )

        _run_parallel(stale, one, reports, jobs=jobs, keep_going=keep_going, out=out)

    built = {r.name: r.duration for r in reports.values() if r.status == "built"}
    if built:
        from neobuild import shard as shard_mod

        shard_mod.record_weights(manifest.root, built)  # balances the next --matrix
    ordered = [reports[m.name] for m in models if m.name in reports]
    report = BuildReport(
        manifest=manifest_path, models=ordered, duration=time.monotonic() - started
    )
    _print_summary(report, out)
    if junit is not None or os.environ.get("GITHUB_STEP_SUMMARY"):
        from neobuild import reports as reports_mod

        if junit is not None:
            reports_mod.write_junit(junit, report)
        if os.environ.get("GITHUB_STEP_SUMMARY"):
            reports_mod.append_step_summary(report)
    return report


def _templates_hash(manifest: Manifest) -> Callable[[Model], str]:
    """Per model: the hash of the templates that model renders (its overrides included)."""
    from neobuild import render

    return lambda model: render.templates_hash_for(manifest, model)


def _restore_from_cache(
    manifest: Manifest, model: Model, fingerprint: Any, lock_path: Path, out: Output
) -> bool:
    settings = _cache_settings(manifest)
    if settings is None:
        return False
    from neobuild import cache

    return cache.restore(manifest, model, fingerprint.digest, lock_path, settings=settings, out=out)


def _store_in_cache(manifest: Manifest, model: Model, entry: Any, out: Output) -> None:
    settings = _cache_settings(manifest)
    if settings is None or settings.read_only:
        return
    from neobuild import cache

    cache.save(manifest, model, entry, settings=settings, out=out)


def _cache_settings(manifest: Manifest) -> Any:
    from neobuild import cache

    return cache.cache_settings(manifest)


def _run_parallel(
    models: Sequence[Model],
    one: Callable[[Model], ModelReport],
    reports: dict[str, ModelReport],
    *,
    jobs: int,
    keep_going: bool,
    out: Output,
) -> None:
    """Run ``one`` over ``models`` on ``jobs`` threads (each export is a subprocess).

    Without ``keep_going`` the first failure stops new models from starting; the
    running ones finish, and the rest are reported as not started.
    """
    from neobuild.progress import BuildProgress

    if not models:
        return
    workers = max(1, jobs)
    failed = False
    pending = list(models)
    running: dict[cf.Future[ModelReport], Model] = {}
    progress = BuildProgress(out, len(models))
    with (
        progress.shown(),
        cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="neobuild") as pool,
    ):
        try:
            while pending or running:
                while pending and len(running) < workers and not (failed and not keep_going):
                    model = pending.pop(0)
                    progress.started(model.name)
                    running[pool.submit(one, model)] = model
                if not running:
                    break
                finished, _ = cf.wait(running, return_when=cf.FIRST_COMPLETED)
                for future in finished:
                    model = running.pop(future)
                    rep = future.result()
                    failed = failed or rep.status == "failed"
                    reports[model.name] = rep
                    progress.finished(rep)
        except KeyboardInterrupt:
            for future in running:
                future.cancel()
            raise
    for model in pending:
        reports[model.name] = ModelReport(
            name=model.name,
            status="skipped",
            message="not started: an earlier model failed (use --keep-going)",
        )


def _error_text(exc: NeobuildError) -> str:
    # By convention a NeobuildError's message already lists its problems.
    return exc.message


def _print_summary(report: BuildReport, out: Output) -> None:
    failures = [m for m in report.models if m.status == "failed"]
    if failures:
        out.error("failed: " + ", ".join(m.name for m in failures))
    out.info(report.summary())


# --------------------------------------------------------------------------- plan / verify / compile


@dataclass(frozen=True)
class PlanOutput:
    """What ``neobuild plan`` shows: a JSON document, its human text, and the stale count."""

    document: Any
    text: str
    stale_count: int

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
    stat_cache = StatCache.open(manifest.root)
    templates_hash = _templates_hash(manifest)
    if explain is not None:
        (model,) = _select(manifest, [explain], False, None)[:1]
        explanation = plan_mod.explain(
            manifest, model, lock, templates_hash=templates_hash, stat_cache=stat_cache
        )
        stat_cache.save()
        return PlanOutput(
            document=explanation.to_json(),
            text=explanation.render(),
            stale_count=int(explanation.item.stale),
        )
    models = _select(manifest, patterns, False, shard)
    result = plan_mod.plan(
        manifest, models, lock, templates_hash=templates_hash, since=since, stat_cache=stat_cache
    )
    stat_cache.save()
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
    return PlanOutput(
        document=result.to_json(),
        text=result.render(show_fresh=include_fresh),
        stale_count=result.stale_count,
    )


def verify(*, manifest_path: Path) -> VerifyReport:
    from neobuild import lockfile
    from neobuild import verify as verify_mod

    manifest = load_manifest(manifest_path)
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    return verify_mod.verify(manifest, lock)


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
    models = _select(manifest, patterns, all_models, None)
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
    out.info(result.render())
    return result
