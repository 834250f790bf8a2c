"""Parallel runs over models: ``package``'s thread pool, its locks and its interruptions.

:func:`run` holds the repository's build lock (:func:`build_lock`), plans the selected
models, runs :func:`neobuild.pipeline.run_model` for the stale ones on ``jobs`` threads
(:func:`run_parallel`: keep-going, Ctrl-C/SIGTERM) and records each finished model in
neo.lock as it finishes (:class:`LockWriter`).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild import outputs, pipeline
from neobuild.buildlock import build_lock
from neobuild.console import Output
from neobuild.errors import NeobuildError, UsageError
from neobuild.gitignore import STATE_DIR
from neobuild.model import Manifest, Model, repo_relative
from neobuild.results import ModelReport

if TYPE_CHECKING:
    from neobuild.lockfile import Lock, LockEntry


# --------------------------------------------------------------------------- before the run


def check_build_dir(manifest: Manifest, models: Sequence[Model]) -> None:
    """The build directory must not hold anything neobuild reads.

    Raises:
        UsageError: an export entrypoint, requirements file or templates directory lies
            inside ``build_dir``.
    """
    from neobuild.paths import RealPaths

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
                    f"build_dir {repo_relative(manifest.root, manifest.build_dir)} contains {rel}, an input of "
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
            f"build_dir {repo_relative(manifest.root, manifest.build_dir)} is not usable: "
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


def open_cache(manifest: Manifest, out: Output) -> Any:
    """The shared build cache, opened once (a bad URL is bad input, before any work)."""
    from neobuild import buildcache

    settings = buildcache.cache_settings(manifest)
    if settings is None:
        return None
    try:
        return buildcache.open_cache(settings, root=manifest.root, warn=out.warn)
    except NeobuildError as exc:
        raise UsageError(exc.message, hint=exc.hint) from exc


def _prune_undeclared(manifest: Manifest, lock: Lock, writer: LockWriter, out: Output) -> None:
    """``package --all``: drop lock entries (and outputs) of models no longer declared."""
    gone = sorted(set(lock.models) - set(manifest.models))
    for name in gone:
        writer.add(name, None)
        outputs.remove_output(manifest.build_dir / name)
    if gone:
        out.info(f"removed {len(gone)} model(s) no longer in the manifest: {', '.join(gone)}")


# --------------------------------------------------------------------------- the run


def run(
    manifest: Manifest,
    models: Sequence[Model],
    options: pipeline.BuildOptions,
    *,
    jobs: int,
    keep_going: bool,
    since: str | None,
    prune: bool,
    wait: bool,
    fork_server: bool,
    build_cache: Any,
    out: Output,
) -> tuple[dict[str, ModelReport], bool]:
    """Build the stale ones of ``models`` (all with ``options.force``) under the build lock.

    With ``prune``, lock entries and outputs of models no longer declared are removed.
    With ``fork_server`` (and on Linux) exports that share an environment are forked
    from one pre-warmed process (:mod:`neobuild.forkserver`).

    Returns:
        Each model's report by name, and whether the run was interrupted (then the
        models that did not finish are reported ``interrupted``).
    """
    from neobuild import lockfile

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
        the_plan = pipeline.plan_models(manifest, models, lock, since=since)
        stale = [m for m in models if options.force or the_plan.is_stale(m.name)]
        if any(pipeline.compile_check_wanted(options, m) for m in stale):
            from neobuild import compilecheck

            # Before any export: a missing extra is a usage error, not N failed models.
            compilecheck.require_extra(
                m.framework for m in stale if pipeline.compile_check_wanted(options, m)
            )
        for m in models:
            if m not in stale:
                reports[m.name] = ModelReport(name=m.name, status="fresh", message="up to date")
        if any(pipeline.writes_requests(m, options) for m in stale):
            from neobuild import requestshape

            # botocore's service model (~0.4 s) loads while the first exports run
            threading.Thread(
                target=requestshape.warm_validator, name="neobuild-warm", daemon=True
            ).start()
        ctx = pipeline.RunContext(
            manifest=manifest,
            options=options,
            lock=lock,
            git_state=_git_state(manifest) if stale else (None, None),
            cancel=cancel,
            build_cache=build_cache,
        )
        fingerprints = {m.name: the_plan.fingerprint(m.name) for m in stale}
        writer = LockWriter(lock_path)

        def one(model: Model) -> tuple[ModelReport, LockEntry | None]:
            return pipeline.run_model(ctx, model, fingerprints[model.name])

        interrupted = False
        from neobuild import forkserver

        try:
            with forkserver.session(fork_server and len(stale) > 1):
                run_parallel(
                    stale,
                    one,
                    reports,
                    writer,
                    jobs=jobs,
                    keep_going=keep_going,
                    out=out,
                    cancel=cancel,
                )
            if prune:
                _prune_undeclared(manifest, lock, writer, out)
        except KeyboardInterrupt:
            interrupted = True  # still report what finished and what did not
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
    return reports, interrupted


def run_parallel(
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


def _failure(model: Model, exc: NeobuildError | OSError) -> ModelReport:
    """The report of a model whose result could not be recorded."""
    from neobuild.reports import clean_text

    return ModelReport(
        name=model.name,
        status="failed",
        message=clean_text(f"model {model.name}: {exc}"),
        hint=getattr(exc, "hint", None),
    )
