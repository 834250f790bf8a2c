"""One model's build, a straight pipeline (:func:`build_model`)::

    export env -> export (subprocess) -> normalise + check -> render -> pack
    -> requests -> smoke test / compile check -> swap into place -> neo.lock entry

Everything is produced in a staging directory and swapped into
``<build_dir>/<model>/`` only when the whole pipeline succeeded, so a failed or
killed build never leaves half-written outputs; the previous outputs stay.
:func:`run_model` wraps it with the shared build cache and turns a failure into the
model's report; :mod:`neobuild.scheduler` runs it over many models.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild import exportreuse, outputs
from neobuild.errors import (
    CompileCheckError,
    Interrupted,
    ManifestError,
    NeobuildError,
    PackageError,
    RequestError,
)
from neobuild.model import Manifest, Model, repo_relative
from neobuild.results import NOT_RENDERED, ModelReport

if TYPE_CHECKING:
    from neobuild.lockfile import Lock, LockEntry
    from neobuild.plan import Plan

FAILED_DIR = ".failed"  # <build_dir>/.failed/<model>/: the export of the last failed build


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


def writes_requests(model: Model, options: BuildOptions) -> bool:
    """Whether ``package`` writes the model's requests (``--allow-incomplete``: placeholders)."""
    return model.compile.renders_requests or options.allow_incomplete


def preflight_requests(manifest: Manifest, model: Model, options: BuildOptions) -> None:
    """Check every target's request before exporting: a missing ``role_arn`` costs nothing.

    The archive hash is not known yet, so a stand-in is used; the real requests are
    checked again when they are written.
    """
    from neobuild import preflight, request

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
            preflight.preflight(
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
    reuse: exportreuse.ReusedExport | None = None,
) -> tuple[ModelReport, LockEntry]:
    """Run one model's whole pipeline; returns its report and new lock entry.

    The entry carries no compilation jobs: the caller merges the recorded ones in
    under the lock (:func:`neobuild.lockfile.carry_jobs`).

    Raises:
        NeobuildError: any step failed (the staging directory is removed; the log is
            kept at ``<build_dir>/<model>/export.log`` and the export, for inspection,
            at ``<build_dir>/.failed/<model>/``).
    """
    from neobuild import envs, export, render, request
    from neobuild.archive import hash_bytes, pack
    from neobuild.frameworks import get_adapter
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
        export_checks: dict[str, Any] = {}
        if reuse is not None:
            # Only render-only settings changed: pack the verified previous export again.
            shutil.copytree(reuse.directory, export_dir)
            exported_with = dict(reuse.previous.exported_with)
            report.message = "export reused: only request/render settings changed"
        else:
            export_dir.mkdir()
            assert python is not None
            result = export.run_export(
                model,
                root=manifest.root,
                output_dir=export_dir,
                log_path=log_path,
                python=python,
                stream=options.stream,
            )
            exported_with = dict(sorted(result.framework_versions.items()))
            export_checks = result.checks
            report.warnings.extend(_sources_touched(manifest, model, fingerprint))
        adapter = get_adapter(model.framework)
        adapter.normalize(export_dir)
        artifacts = adapter.check(export_dir, model, export_checks=export_checks)
        report.warnings.extend(artifacts.warnings)

        rendered = render.render_model(manifest, model)
        for rel, content in sorted(rendered.items()):
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        extras = render.archive_extras(model, rendered)
        archive = exportreuse.kept_archive(reuse, final, export_dir, artifacts.files, extras)
        if archive is None:
            archive = pack(export_dir, artifacts.files, staging / "model.tar.gz", extra=extras)
        else:
            report.message += "; archive unchanged"
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
                raise CompileCheckError(
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
                path=repo_relative(manifest.root, final / rel),
                sha256=hash_bytes(data),
                job_name=job_name,
            )
        entry = LockEntry(
            fingerprint=fingerprint.digest,
            framework=model.framework,
            framework_version=model.framework_version,
            exported_with=exported_with,
            files=files,
            archive=FileRecord(size=archive.size, sha256=archive.sha256),
            archive_path=repo_relative(manifest.root, final / "model.tar.gz"),
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

    try:
        after = fingerprint(manifest, model, templates_hash="", details=False).parts
    except ManifestError as exc:  # e.g. the export linked a file from outside into its sources
        return [f"the export changed its own sources: {exc.message}; the next plan refuses them"]
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


@dataclass(frozen=True)
class RunContext:
    """What every model of one ``package`` run shares."""

    manifest: Manifest
    options: BuildOptions
    lock: Lock
    git_state: tuple[str | None, bool | None]
    cancel: threading.Event
    build_cache: Any = None  # neobuild.buildcache's shared build cache, when configured


def run_model(
    ctx: RunContext, model: Model, fingerprint: Any
) -> tuple[ModelReport, LockEntry | None]:
    """Restore ``model`` from the build cache or build it; a failure becomes its report."""
    manifest, options, build_cache = ctx.manifest, ctx.options, ctx.build_cache
    t0 = time.monotonic()
    try:
        if build_cache is not None and not options.force:
            entry = _fetch_cached(manifest, model, fingerprint, build_cache)
            if entry is not None:
                return ModelReport(
                    name=model.name,
                    status="restored",
                    message="restored from cache",
                    duration=time.monotonic() - t0,
                ), entry
        reuse = None
        if not options.force:
            reuse = exportreuse.reusable_export(
                manifest, model, ctx.lock.models.get(model.name), fingerprint
            )
        report, entry = build_model(
            manifest,
            model,
            options,
            fingerprint=fingerprint,
            git_state=ctx.git_state,
            cancel=ctx.cancel,
            reuse=reuse,
        )
        _check_entry(manifest, model, entry)
        if build_cache is not None and not build_cache.read_only:
            build_cache.store(entry.fingerprint, model.name, entry, model_dir(manifest, model))
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
            if isinstance(exc, Interrupted) or ctx.cancel.is_set()
            else "failed",
            duration=time.monotonic() - t0,
            message=clean_text(exc.message),  # by convention it already lists its problems
            hint=clean_text(exc.hint) if exc.hint else None,
            log_path=log if log.exists() else None,
            log_tail=clean_text(_tail(log)) if log.exists() else "",
        ), None


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


def _fetch_cached(
    manifest: Manifest, model: Model, fingerprint: Any, build_cache: Any
) -> LockEntry | None:
    from neobuild import buildcache

    hit = build_cache.fetch(fingerprint.digest, model.name, model_dir(manifest, model))
    if hit is None:
        return None
    return buildcache.localize(manifest, model, hit.entry)


def templates_hash(manifest: Manifest) -> Callable[[Model], str]:
    """Per model: the hash of the templates that model renders (its overrides included)."""
    from neobuild import render

    return lambda model: render.templates_hash_for(manifest, model)


def plan_models(
    manifest: Manifest, models: Sequence[Model], lock: Lock, *, since: str | None = None
) -> Plan:
    """Plan ``models`` against ``lock`` through the repository's stat cache (saved after)."""
    from neobuild import plan as plan_mod
    from neobuild.statcache import StatCache

    stat_cache = StatCache.open(manifest.root)
    the_plan = plan_mod.plan(
        manifest,
        models,
        lock,
        templates_hash=templates_hash(manifest),
        since=since,
        stat_cache=stat_cache,
    )
    stat_cache.save()
    return the_plan
