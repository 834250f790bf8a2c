"""The ``neobuild`` command line: options in, one api call, its result out.

Each command turns its options into keyword arguments for one function of
:mod:`neobuild.api` and renders what it returns. Human text goes to stderr and a
``--json`` document alone to stdout. Exit codes: 0 ok, 1 a build or check failed,
2 bad input, 3 internal error (crash log written), 130 interrupted.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from neobuild import __version__, api
from neobuild.console import Output, print_json
from neobuild.crash import guarded
from neobuild.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, UsageError

app = typer.Typer(
    name="neobuild",
    help="Build SageMaker Neo inputs for every model declared in neo.yaml.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Plain click help: typer's rich help imports rich, markdown-it and pygments
    # (~100 ms) before printing a line (issue 14: `--help` within 100 ms).
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@dataclass
class Globals:
    """Options given before the command."""

    directory: Path | None
    manifest: Path | None
    out: Output

    def manifest_path(self) -> Path:
        return api.locate_manifest(directory=self.directory, manifest=self.manifest)


def _globals(ctx: typer.Context) -> Globals:
    obj = ctx.find_root().obj
    if isinstance(obj, Globals):
        return obj
    return Globals(directory=None, manifest=None, out=Output())  # pragma: no cover


def _run(ctx: typer.Context, body: Any) -> None:
    """Run a command body under the error boundary and exit with its code."""
    g = _globals(ctx)
    code = guarded(g.out, lambda: body(g))
    raise typer.Exit(code if isinstance(code, int) else EXIT_OK)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"neobuild {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    directory: Annotated[
        Path | None,
        typer.Option("-C", "--directory", help="Run as if started in DIR.", metavar="DIR"),
    ] = None,
    manifest: Annotated[
        Path | None,
        typer.Option(
            "--manifest", help="Use this neo.yaml instead of searching for one.", metavar="FILE"
        ),
    ] = None,
    verbose: Annotated[
        int, typer.Option("-v", "--verbose", count=True, help="More output (stream export logs).")
    ] = 0,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Only warnings and errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """neobuild: export, check, package and compile every model of a repository for SageMaker Neo."""
    ctx.obj = Globals(
        directory=directory, manifest=manifest, out=Output(verbosity=-1 if quiet else verbose)
    )


@app.command()
def init(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing neo.yaml.")] = False,
) -> None:
    """Write a commented starter neo.yaml in the current directory."""

    def body(g: Globals) -> int:
        path = api.init(directory=g.directory or Path.cwd(), manifest=g.manifest, force=force)
        g.out.info(f"wrote {path}; next: declare your models, then run `neobuild validate`")
        return EXIT_OK

    _run(ctx, body)


@app.command()
def validate(
    ctx: typer.Context,
    strict: Annotated[bool, typer.Option("--strict", help="Treat warnings as errors.")] = False,
    json_: Annotated[
        bool, typer.Option("--json", help="Print problems as JSON on stdout.")
    ] = False,
) -> None:
    """Check neo.yaml and its includes; report every problem with FILE:LINE:COL."""

    def body(g: Globals) -> int:
        result = api.validate(manifest_path=g.manifest_path(), strict=strict)
        if json_:
            print_json([p.as_json() for p in result.problems])
        else:
            for problem in result.problems:
                g.out.console.print(problem.render(), markup=False, highlight=False)
            g.out.info(result.summary())
        return EXIT_OK if result.ok else EXIT_BAD_INPUT

    _run(ctx, body)


@app.command()
def schema(ctx: typer.Context) -> None:
    """Print the JSON Schema of neo.yaml (for editors: yaml-language-server)."""

    def body(g: Globals) -> int:
        print_json(api.schema())
        return EXIT_OK

    _run(ctx, body)


ModelsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Models by name, glob (vision-*) or tag:NAME (or --all).", show_default=False
    ),
]
PlanModelsArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Models by name, glob (vision-*) or tag:NAME; default: all.", show_default=False
    ),
]


@app.command()
def plan(
    ctx: typer.Context,
    models: PlanModelsArg = None,
    json_: Annotated[
        bool, typer.Option("--json", help="Print the plan as JSON on stdout.")
    ] = False,
    check: Annotated[bool, typer.Option("--check", help="Exit 1 if anything is stale.")] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only models affected since git REF.", metavar="REF"),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option("--shard", help="Only shard K of N (1-based), e.g. 2/4.", metavar="K/N"),
    ] = None,
    matrix: Annotated[
        int | None,
        typer.Option(
            "--matrix", help="Print a GitHub Actions matrix of N shards.", metavar="N", min=1
        ),
    ] = None,
    explain: Annotated[
        str | None,
        typer.Option("--explain", help="Show MODEL's fingerprint, old vs new.", metavar="MODEL"),
    ] = None,
    all_: Annotated[
        bool, typer.Option("--all", help="With --matrix: every model, not only stale ones.")
    ] = False,
    weights: Annotated[
        list[Path] | None,
        typer.Option(
            "--weights",
            help="With --matrix: balance shards by model durations from JUnit reports of a previous run.",
            metavar="JUNIT",
        ),
    ] = None,
) -> None:
    """List model x target work, and why each item is stale or fresh."""

    def body(g: Globals) -> int:
        if matrix is not None and shard is not None:
            raise UsageError(
                "--matrix and --shard do not go together",
                hint="--matrix N splits the plan into N shards itself",
            )
        result = api.plan(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            since=since,
            shard=shard,
            matrix=matrix,
            explain=explain,
            include_fresh=all_,
            weights=weights or [],
        )
        for warning in result.warnings:
            g.out.warn(warning)
        if matrix is not None:  # one compact line, ready for $GITHUB_OUTPUT
            sys.stdout.write(json.dumps(result.to_json(), separators=(",", ":")) + "\n")
        elif json_:
            print_json(result.to_json())
        else:
            g.out.rich(result.render())
        if check and result.stale_count:
            return EXIT_FAILED
        return EXIT_OK

    _run(ctx, body)


@app.command()
def package(
    ctx: typer.Context,
    models: ModelsArg = None,
    all_: Annotated[bool, typer.Option("--all", help="Every model of the manifest.")] = False,
    jobs: Annotated[
        int,
        typer.Option(
            "-j",
            "--jobs",
            help="Exports to run at once; 0 means one per core.",
            min=0,
            show_default=False,
        ),
    ] = 0,
    keep_going: Annotated[
        bool, typer.Option("-k", "--keep-going", help="Build the other models when one fails.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Rebuild fresh models too.")] = False,
    smoke: Annotated[
        bool | None,
        typer.Option("--smoke/--no-smoke", help="Run the rendered handler on the exported model."),
    ] = None,
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete",
            help="Render requests with placeholders for missing compile settings.",
        ),
    ] = False,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only models affected since git REF.", metavar="REF"),
    ] = None,
    shard: Annotated[
        str | None, typer.Option("--shard", help="Only shard K of N, e.g. 2/4.", metavar="K/N")
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for another run's lock instead of failing.")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")] = False,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write a JUnit XML report.", metavar="FILE")
    ] = None,
    fork_server: Annotated[
        bool,
        typer.Option(
            "--fork-server/--no-fork-server",
            help="Fork exports that share an environment from one pre-warmed process.",
        ),
    ] = True,
) -> None:
    """Export what is stale, check it, package it, render scripts and requests, update neo.lock."""

    def body(g: Globals) -> int:
        report = api.package(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            all_models=all_,
            jobs=jobs or (os.cpu_count() or 1),
            keep_going=keep_going,
            force=force,
            smoke=smoke,
            allow_incomplete=allow_incomplete,
            since=since,
            shard=shard,
            wait=wait,
            junit=junit,
            fork_server=fork_server,
            out=g.out,
        )
        if json_:
            print_json(report.to_json())
        return EXIT_OK if report.ok else EXIT_FAILED

    _run(ctx, body)


@app.command()
def verify(
    ctx: typer.Context,
    json_: Annotated[bool, typer.Option("--json", help="Print drifts as JSON on stdout.")] = False,
) -> None:
    """Re-hash every output against neo.lock; exit 1 on any drift."""

    def body(g: Globals) -> int:
        result = api.verify(manifest_path=g.manifest_path())
        if json_:
            print_json(result.to_json())
        else:
            g.out.rich(result.render())
        return EXIT_OK if result.ok else EXIT_FAILED

    _run(ctx, body)


@app.command(name="compile")
def compile_(
    ctx: typer.Context,
    models: ModelsArg = None,
    all_: Annotated[bool, typer.Option("--all", help="Every model of the manifest.")] = False,
    submit: Annotated[
        bool, typer.Option("--submit", help="Upload archives and create the compilation jobs.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Poll the jobs until they end.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print a JSON report on stdout.")] = False,
) -> None:
    """Pre-flight the CreateCompilationJob requests; --submit runs them on SageMaker Neo."""

    def body(g: Globals) -> int:
        result = api.compile(
            manifest_path=g.manifest_path(),
            patterns=models or [],
            all_models=all_,
            submit=submit,
            wait=wait,
            out=g.out,
            confirm_stop=_confirm_stop if sys.stdin.isatty() else None,
        )
        if json_:
            print_json(result.to_json())
        return EXIT_OK if result.ok else EXIT_FAILED

    _run(ctx, body)


def _confirm_stop(jobs: Any) -> bool:
    """Asked on Ctrl-C while waiting for compilation jobs."""
    return typer.confirm(
        f"stop {len(jobs)} running compilation job(s) on SageMaker?", default=False
    )


def _terminate(signum: int, frame: object) -> None:
    # CI cancels with SIGTERM: treat it like Ctrl-C, so running exports are stopped
    # and nothing half-built is kept.
    raise KeyboardInterrupt


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    app(prog_name="neobuild")
