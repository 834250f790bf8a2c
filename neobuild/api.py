"""One function per command: keyword arguments in, a result object out.

The CLI is a thin translation layer over these functions; they never print except
through the :class:`~neobuild.console.Output` they are handed, and they raise
:class:`~neobuild.errors.NeobuildError` subclasses for every expected failure.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.console import Output
from neobuild.errors import BuildInterrupted, NeobuildError, UsageError

if TYPE_CHECKING:
    from neobuild.add import AddResult, NewModel
    from neobuild.checkresult import CheckReport
    from neobuild.compilejobs import CompileResult
    from neobuild.model import Manifest, Model
    from neobuild.results import BuildReport, PlanOutput, ValidateResult
    from neobuild.show import ShowResult
    from neobuild.verify import VerifyReport


def locate_manifest(*, directory: Path | None, manifest: Path | None) -> Path:
    """The neo.yaml to use: ``--manifest``, else found from ``-C DIR`` or the cwd upwards."""
    from neobuild import manifest as manifest_mod

    start = (directory or Path.cwd()).resolve()
    explicit = None
    if manifest is not None:
        explicit = manifest if manifest.is_absolute() else start / manifest
    return manifest_mod.find_manifest(start, explicit)


def init(*, directory: Path, manifest: Path | None = None, force: bool = False) -> Path:
    """Write a starter neo.yaml; returns its path."""
    from neobuild import starter

    path = manifest if manifest is not None else directory / "neo.yaml"
    if not path.is_absolute():
        path = directory / path
    if force and path.exists():
        # Write the new file beside the old one, then replace it in one step.
        fresh = path.with_name(f".{path.name}.new")
        fresh.unlink(missing_ok=True)
        starter.write_starter(fresh)
        os.replace(fresh, path)
    else:
        starter.write_starter(path)
    _save_schema(path.parent / starter.SCHEMA_PATH)
    return path


def _save_schema(target: Path) -> None:
    """Save the JSON Schema where the starter's modeline points (in ``.neobuild/``)."""
    from neobuild.atomic import atomic_write_text
    from neobuild.gitignore import ignore_all

    target.parent.mkdir(parents=True, exist_ok=True)
    ignore_all(target.parent)  # .neobuild/ stays out of `git status`
    atomic_write_text(target, json.dumps(schema(), indent=2, sort_keys=True) + "\n")


def validate(*, manifest_path: Path, strict: bool = False) -> ValidateResult:
    """Check the manifest and return every problem (never raises for manifest problems)."""
    from neobuild import manifest as manifest_mod
    from neobuild.results import ValidateResult

    loaded, problems = manifest_mod.check(manifest_path)
    promoted = sum(1 for p in problems if p.severity == "warning") if strict else 0
    if strict:
        problems = [
            replace(p, severity="error") if p.severity == "warning" else p for p in problems
        ]
    return ValidateResult(
        manifest_path=manifest_path,
        problems=tuple(problems),
        strict=strict,
        model_count=len(loaded.models) if loaded is not None else 0,
        promoted=promoted,
    )


def schema() -> dict[str, Any]:
    """The JSON Schema of neo.yaml."""
    from neobuild import schema as schema_mod

    return schema_mod.json_schema()


def plan(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    since: str | None = None,
    shard: str | None = None,
    matrix: int | None = None,
    explain: str | None = None,
    include_fresh: bool = False,
    weights: Sequence[Path] = (),
    memo: bool = True,
) -> PlanOutput:
    """What ``package`` would do, and why (with ``explain``: one model's fingerprint
    breakdown; with ``matrix``: a GitHub Actions matrix of shards).

    A plain plan (no ``since``, ``explain`` or ``matrix``) whose inputs are all as the last
    one's were answers from the plan memo (:mod:`neobuild.planmemo`); ``memo=False``
    always plans from scratch.
    """
    from neobuild import lockfile, pipeline
    from neobuild import shard as shard_mod
    from neobuild.results import PlanOutput
    from neobuild.statcache import StatCache

    if memo and since is None and explain is None and matrix is None:
        return _remembered_plan(manifest_path, patterns, shard, include_fresh)
    if explain is None and matrix is None:
        return _plan_output(manifest_path, patterns, shard, include_fresh, since=since)
    manifest = _load(manifest_path)
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    if explain is not None:
        from neobuild import explanation as explanation_mod

        (model,) = _select(manifest, [explain], False, None)[:1]
        stat_cache = StatCache.open(manifest.root)
        explanation = explanation_mod.explain(
            manifest,
            model,
            lock,
            templates_hash=pipeline.templates_hash(manifest),
            stat_cache=stat_cache,
        )
        stat_cache.save()
        return PlanOutput(
            document=explanation.to_json(),
            text=explanation.render(),
            stale_count=int(explanation.item.stale),
        )
    assert matrix is not None
    models = _select(manifest, patterns, False, shard)
    result = pipeline.plan_models(manifest, models, lock, since=since)
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


def _remembered_plan(
    manifest_path: Path, patterns: Sequence[str], shard: str | None, include_fresh: bool
) -> PlanOutput:
    """The plan from the plan memo when nothing it read changed; else planned and remembered."""
    from neobuild import depends, planmemo

    root = manifest_path.absolute().parent  # as the manifest loader sets it
    memo_key = planmemo.key(manifest_path.absolute(), patterns, shard, include_fresh)
    remembered = planmemo.lookup(root, memo_key)
    if remembered is not None:
        return remembered
    with depends.recording() as deps:
        output = _plan_output(manifest_path, patterns, shard, include_fresh)
    planmemo.store(root, memo_key, deps, output)
    return output


def _plan_output(
    manifest_path: Path,
    patterns: Sequence[str],
    shard: str | None,
    include_fresh: bool,
    *,
    since: str | None = None,
) -> PlanOutput:
    """The plan of the selected models as ``plan`` prints it (table, JSON, stale count)."""
    from neobuild import depends, lockfile, pipeline
    from neobuild.results import PlanOutput

    manifest = _load(manifest_path)
    lock_path = manifest.root / lockfile.LOCK_NAME
    depends.note_path(str(lock_path))
    lock = lockfile.read_lock(lock_path)
    models = _select(manifest, patterns, False, shard)
    result = pipeline.plan_models(manifest, models, lock, since=since)
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


def package(
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
    out: Output | None = None,
    compile_check: bool | None = None,
    strict: bool = False,
) -> BuildReport:
    """Build every selected stale model (all of them with ``force``); see :mod:`neobuild.pipeline`.

    Raises:
        BuildInterrupted: Ctrl-C or SIGTERM; its ``report`` says what finished.
    """
    from neobuild import pipeline, scheduler
    from neobuild.results import BuildReport

    out = out or Output()
    started = time.monotonic()
    if all_models and not patterns and not force and since is None and shard is None:
        nothing = _nothing_to_build(manifest_path, junit=junit, out=out, started=started)
        if nothing is not None:
            return nothing
    manifest = _load(manifest_path)
    for warning in manifest.warnings:
        out.warn(warning.render() if hasattr(warning, "render") else str(warning))
    models = _select(manifest, patterns, all_models, shard, require=True)
    scheduler.check_build_dir(manifest, models)
    if junit is not None:
        _check_writable(junit)
    build_cache = scheduler.open_cache(manifest, out)
    options = pipeline.BuildOptions(
        force=force,
        smoke=smoke,
        allow_incomplete=allow_incomplete,
        stream=out.verbosity > 0,
        compile_check=compile_check,
        strict=strict,
    )
    reports, interrupted = scheduler.run(
        manifest,
        models,
        options,
        jobs=jobs,
        keep_going=keep_going,
        since=since,
        prune=all_models and since is None and shard is None,
        wait=wait,
        fork_server=fork_server,
        build_cache=build_cache,
        out=out,
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
            and not pipeline.writes_requests(manifest.models[r.name], options)
        ],
    )
    _print_summary(report, out)
    _write_reports(report, junit, out)
    if interrupted:
        raise BuildInterrupted(report)
    return report


def _nothing_to_build(
    manifest_path: Path, *, junit: Path | None, out: Output, started: float
) -> BuildReport | None:
    """``package --all`` when the plan (memo) says every model is fresh: the report of a
    run that builds nothing, without loading the manifest; None when anything is stale.

    Read-only, so it takes no build lock: taking it here and again for the full run
    would let another run in between the two. While another run builds, what it is
    changing reads as stale (or racy), so this run goes on to the full run, whose lock
    decides: it waits (``--wait-lock``) or names the holder.
    """
    from neobuild.results import BuildReport, ModelReport

    if junit is not None:
        _check_writable(junit)
    the_plan = _remembered_plan(manifest_path, (), None, False)
    if the_plan.stale_count:
        return None  # something to build or prune: the full run plans again under its lock
    for warning in the_plan.warnings:
        out.warn(warning)
    report = BuildReport(
        manifest=manifest_path,
        models=[
            ModelReport(name=m["name"], status="fresh", message="up to date")
            for m in the_plan.document["models"]
        ],
        duration=time.monotonic() - started,
        without_requests=[],
    )
    _print_summary(report, out)
    _write_reports(report, junit, out)
    return report


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


def _print_summary(report: BuildReport, out: Output) -> None:
    from neobuild.results import no_requests_line

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


def check(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    all_models: bool = False,
    strict: bool = False,
    junit: Path | None = None,
    out: Output | None = None,
) -> CheckReport:
    """Compile packed models locally with TVM/Treelite; see :mod:`neobuild.compilecheck`.

    With ``junit``, also write a JUnit XML report there (one testcase per model); on
    Ctrl-C or SIGTERM it is still written, with the models checked so far.
    """
    from neobuild import checkresult, compilecheck
    from neobuild import reports as reports_mod
    from neobuild.buildlock import build_lock
    from neobuild.progress import env_lines

    output = out or Output()
    started = time.monotonic()
    manifest = _load(manifest_path)
    models = _select(manifest, patterns, all_models, None, require=True, command="check")
    if junit is not None:
        _check_writable(junit)
    done: list[checkresult.CheckResult] = []

    def finished(result: checkresult.CheckResult) -> None:
        done.append(result)
        output.detail(f"{result.model}: {result.summary()}")

    try:
        # The build lock: a concurrent `package` must not swap an export out under the check.
        with build_lock(manifest.root, wait=False), env_lines(output):
            results = compilecheck.check_packed(manifest, models, finished)
    except KeyboardInterrupt:
        if junit is not None:
            reports_mod.write_check_junit(junit, done, strict=strict)
        raise
    report = checkresult.CheckReport(
        results=tuple(results), strict=strict, duration=time.monotonic() - started
    )
    if junit is not None:
        reports_mod.write_check_junit(junit, report.results, strict=strict)
    return report


def verify(*, manifest_path: Path) -> VerifyReport:
    """Re-hash the outputs that neo.lock lists."""
    from neobuild import lockfile
    from neobuild import verify as verify_mod

    manifest = _load(manifest_path)
    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    return verify_mod.verify(manifest, lock)


def compile(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    all_models: bool = False,
    submit: bool = False,
    wait: bool = False,
    out: Output | None = None,
    confirm_stop: Callable[[Sequence[Any]], bool] | None = None,
) -> CompileResult:
    """Pre-flight requests; with ``submit`` upload and create the jobs (``wait``: poll them)."""
    from neobuild import compile as compile_mod
    from neobuild.compilejobs import describe_event

    out = out or Output()
    manifest = _load(manifest_path)
    models = _select(manifest, patterns, all_models, None, require=True, command="compile")
    models = _with_compile_settings(models, all_models=all_models, out=out)
    _refuse_stale(manifest, models)
    result = compile_mod.compile_models(
        manifest,
        models,
        submit=submit,
        wait=wait,
        on_event=lambda event: (out.detail if event.kind == "checked" else out.info)(
            describe_event(event)
        ),
        confirm_stop=confirm_stop,
        raise_on_failure=False,
    )
    return result  # the CLI prints it: on stdout, or as --json


def _refuse_stale(manifest: Manifest, models: Sequence[Model]) -> None:
    """Compile only what neo.lock says was built from today's inputs.

    Raises:
        NeobuildError: a selected model is stale (its requests would describe old inputs).
    """
    from neobuild import lockfile, pipeline

    lock = lockfile.read_lock(manifest.root / lockfile.LOCK_NAME)
    stale = pipeline.plan_models(manifest, models, lock).stale
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


def add(*, manifest_path: Path, name: str, new: NewModel) -> AddResult:
    """Declare model ``name`` in the manifest, as ``new`` describes it."""
    from neobuild.add import add_model

    return add_model(manifest_path, name, new)


def show(*, manifest_path: Path, name: str) -> ShowResult:
    """One model's resolved entry, status, files, hashes, requests and jobs."""
    from neobuild import show as show_mod

    return show_mod.show(manifest_path, name)


def _load(manifest_path: Path) -> Manifest:
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
