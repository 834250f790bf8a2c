"""One function per command: keyword arguments in, a result object out.

The CLI is a thin translation layer over these functions; they never print except
through the :class:`~neobuild.console.Output` they are handed, and they raise
:class:`~neobuild.errors.NeobuildError` subclasses for every expected failure.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from neobuild.console import Output
from neobuild.errors import Problem

if TYPE_CHECKING:
    from neobuild.add import AddResult
    from neobuild.build import BuildReport, PlanOutput
    from neobuild.compile import CompileResult
    from neobuild.compilecheck import CheckReport
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
    import json

    from neobuild.atomic import atomic_write_text
    from neobuild.gitignore import ignore_all

    target.parent.mkdir(parents=True, exist_ok=True)
    ignore_all(target.parent)  # .neobuild/ stays out of `git status`
    atomic_write_text(target, json.dumps(schema(), indent=2, sort_keys=True) + "\n")


@dataclass(frozen=True)
class ValidateResult:
    """Every problem found in the manifest, and whether they fail validation."""

    manifest_path: Path
    problems: tuple[Problem, ...]
    strict: bool
    model_count: int
    promoted: int = 0  # warnings that --strict turned into errors

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")

    @property
    def warnings(self) -> int:
        return sum(1 for p in self.problems if p.severity == "warning")

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not (self.strict and self.warnings)

    def to_json(self) -> dict[str, Any]:
        """The ``validate --json`` document (versioned like the other commands')."""
        return {
            "schema_version": 1,
            "manifest": str(self.manifest_path),
            "ok": self.ok,
            "models": self.model_count,
            "errors": self.errors,
            "warnings": self.warnings,
            "problems": [p.as_json() for p in self.problems],
        }

    def summary(self) -> str:
        if not self.problems:
            return f"{self.manifest_path}: {self.model_count} model(s), no problems"
        verdict = "ok" if self.ok else "invalid"
        promoted = f" ({self.promoted} of them warnings, under --strict)" if self.promoted else ""
        return (
            f"{self.manifest_path}: {verdict}: {self.errors} error(s){promoted}, "
            f"{self.warnings} warning(s)"
        )


def validate(*, manifest_path: Path, strict: bool = False) -> ValidateResult:
    """Check the manifest and return every problem (never raises for manifest problems)."""
    from neobuild import manifest as manifest_mod

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
) -> PlanOutput:
    """What ``package`` would do, and why."""
    from neobuild import build

    return build.make_plan(
        manifest_path=manifest_path,
        patterns=patterns,
        since=since,
        shard=shard,
        matrix=matrix,
        explain=explain,
        include_fresh=include_fresh,
        weights=weights,
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
    """Build every selected stale model; see :func:`neobuild.build.build`."""
    from neobuild import build

    return build.build(
        manifest_path=manifest_path,
        patterns=patterns,
        all_models=all_models,
        jobs=jobs,
        keep_going=keep_going,
        force=force,
        smoke=smoke,
        allow_incomplete=allow_incomplete,
        since=since,
        shard=shard,
        wait=wait,
        junit=junit,
        fork_server=fork_server,
        out=out or Output(),
        compile_check=compile_check,
        strict=strict,
    )


def check(
    *,
    manifest_path: Path,
    patterns: Sequence[str] = (),
    all_models: bool = False,
    strict: bool = False,
    out: Output | None = None,
) -> CheckReport:
    """Compile packed models locally with TVM/Treelite; see :mod:`neobuild.compilecheck`."""
    from neobuild import compilecheck

    output = out or Output()
    return compilecheck.check_packed(
        manifest_path=manifest_path,
        patterns=patterns,
        all_models=all_models,
        strict=strict,
        on_result=lambda r: output.detail(f"{r.model}: {r.summary()}"),
    )


def verify(*, manifest_path: Path) -> VerifyReport:
    """Re-hash the outputs that neo.lock lists."""
    from neobuild import build

    return build.verify(manifest_path=manifest_path)


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
    """Pre-flight requests; with ``submit`` upload and create the jobs."""
    from neobuild import build

    return build.compile_(
        manifest_path=manifest_path,
        patterns=patterns,
        all_models=all_models,
        submit=submit,
        wait=wait,
        out=out or Output(),
        confirm_stop=confirm_stop,
    )


def add(
    *,
    manifest_path: Path,
    name: str,
    framework: str,
    export: str,
    inputs: Sequence[str] = (),
    targets: Sequence[str] = (),
    framework_version: str | None = None,
    tags: Sequence[str] = (),
    requirements: str | None = None,
) -> AddResult:
    """Declare model ``name`` in the manifest; see :func:`neobuild.add.add_model`."""
    from neobuild import add as add_mod

    return add_mod.add_model(
        manifest_path,
        name,
        framework=framework,
        export=export,
        inputs=inputs,
        targets=targets,
        framework_version=framework_version,
        tags=tags,
        requirements=requirements,
    )


def show(*, manifest_path: Path, name: str) -> ShowResult:
    """One model's resolved entry, status, files, hashes, requests and jobs."""
    from neobuild import show as show_mod

    return show_mod.show(manifest_path, name)
